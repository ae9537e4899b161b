"""
The paper's two fine-tuning baselines, beside RL: rejection-sampling SFT on each training prompt's
shortest correct response, and DPO preferring that response to the longest correct one. Both start from
the base model, on the prompts that RL trains on (train.py's first iters x prompts_per_iter rows, in its
order), from one set of samples: 8 per prompt at T = 1.0, graded as the RL reward grades them.

    SFT   minimise  -1/N sum_i 1/|y_i| sum_t log pi(y_i,t | x_i, y_i,<t)
          y_i: prompt i's shortest correct sample; prompts with no correct sample are left out
    DPO   minimise  -1/N sum_i log sigmoid(beta * [log pi(y_w|x_i) - log ref(y_w|x_i)
                                                  - log pi(y_l|x_i) + log ref(y_l|x_i)])
          y_w, y_l: prompt i's shortest and longest correct samples (prompts whose correct samples all have
          one length are left out); log pi(y|x) sums over y's tokens; ref: the frozen base model

    python baselines.py sample --out_dir out/baselines               # the toy task's base model: CPU, minutes
    python baselines.py sft --lr 1e-4 --out_dir out/baselines        # -> out/baselines/sft-lr0.0001/
    python baselines.py dpo --lr 1e-4 --out_dir out/baselines        # -> out/baselines/dpo-lr0.0001/
    python baselines.py sft --model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B \\
        --dataset daman1209arora/compression_dataset --prompts 3200 --max_new_tokens 32000 --lr 1e-5 \\
        --out_dir out/baselines-1.5b   # the paper's scale, one GPU

Each fine-tuned model is saved in its folder (final/) and evaluated as train.py evaluates (eval_final.json).
Run again with the same training settings, a finished fine-tune is evaluated again (with this run's
evaluation settings), not redone; other training settings into the same folder are refused.
The paper does not publish epochs, batch size or beta: here 2 epochs, batches of 16 sequences, beta 0.1,
and its three learning rates (1e-5, 5e-6, 2e-6 at 1.5B, 2x to 0.4x its RL learning rate) scaled to the toy
task's (2e-4, 1e-4, 4e-5).
"""
import json
import math
import os
import random
import sys
import time
from dataclasses import asdict, dataclass

import torch

import eval as evaluation
import reward
from configurator import check, check_device, file_in_the_way, parse_args, print_config
from data import load_rows
from model import Qwen2, load_tokenizer
from sample import generate
from train import TrainConfig, get_lr, load_prompts, sequence_logprobs


@dataclass
class BaselineConfig:
    model: str = "toy-model"  # the base model: hub id or local Hugging Face folder
    dataset: str = "toy"  # as train.py's --dataset
    num_prompts: int = 2048  # as train.py's: the rows it shuffles
    prompts: int = 480  # the first of them, in train.py's order: iters x prompts_per_iter (toy: 30 x 16)
    samples: int = 8  # per prompt, from the base model
    temperature: float = 1.0  # of those samples (train.py's rollouts)
    max_new_tokens: int = 200
    lr: float = 1e-4
    epochs: int = 2
    batch_size: int = 16  # sequences (SFT) or pairs (DPO) per optimizer step
    beta: float = 0.1  # DPO: the strength of the KL anchor to the base model
    warmup_steps: int = 2  # optimizer steps of linear warm-up (step 0 at lr 0, as train.py), then constant
    eval_benchmark: str = "toy"  # "" = no evaluation
    eval_problems: int = 1000
    eval_temperature: float = 0.6
    eval_seed: int = 0  # as train.py's: every model is evaluated on the same random draws
    out_dir: str = "out/baselines"  # samples.jsonl here; each fine-tuned model in its own folder below
    seed: int = 42
    device: str = "cpu"
    threads: int = 1

    def __post_init__(self):
        check(self, [(k, getattr(self, k) >= 1, ">= 1") for k in (
            "num_prompts", "prompts", "samples", "max_new_tokens", "epochs", "batch_size", "eval_problems",
            "threads")])
        if not (0 < self.lr < math.inf and 0 < self.beta < math.inf and 0 < self.temperature < math.inf):
            raise ValueError("--lr, --beta and --temperature must be positive")
        if self.warmup_steps < 0:  # a negative warm-up would make the learning rate negative: ascent
            raise ValueError(f"--warmup_steps must be >= 0, got {self.warmup_steps}")
        if not 0 <= self.eval_temperature < math.inf:
            raise ValueError(f"--eval_temperature must be >= 0 (0 = greedy), got {self.eval_temperature}")
        if not self.out_dir:
            raise ValueError("--out_dir is empty: name the folder the samples and models go to")
        blocked = file_in_the_way(self.out_dir)  # else os.makedirs stops on it, once the model has loaded
        check(self, [("out_dir", blocked is None, f"a folder ({blocked} is a file)"),
                     ("seed", -2**63 <= self.seed < 2**63, "in [-2**63, 2**63)")])  # as train.py's
        check_device(self.device)


SAMPLING = ("model", "dataset", "num_prompts", "prompts", "samples", "temperature", "max_new_tokens", "seed")
TRAINING = SAMPLING + ("lr", "epochs", "batch_size", "beta", "warmup_steps")  # what a fine-tuned model depends on


def read_json_object(path):
    """The JSON object in path, None if there is no file; ValueError if it holds none (cut short, garbled)."""
    if not os.path.exists(path):
        return None
    with open(path) as f:
        d = json.load(f)
    if not isinstance(d, dict):
        raise ValueError("not a JSON object")
    return d


def read_samples(path, drawn):
    """samples.jsonl's samples, which must have been drawn with the settings `drawn`. A damaged file (cut
    short, emptied, garbled: it is written whole or not at all, so something else did it) is refused."""
    samples = []
    with open(path, "rb") as f:  # bytes: json.loads decodes each line, so bad UTF-8 is a ValueError too
        for i, line in enumerate(f, 1):
            try:
                s = json.loads(line)
            except ValueError:
                s = None
            if not (isinstance(s, dict) and {"prompt", "tokens", "correct"} <= s.keys()):
                raise SystemExit(f"error: {path} is damaged (line {i} is not a whole sample): delete it to "
                                 "sample again")
            samples.append(s)
    if samples and samples[0].get("sampling") != drawn:
        raise SystemExit(f"error: {path} holds samples drawn with other settings ({samples[0].get('sampling')}, "
                         f"not {drawn}): pass another --out_dir, or delete it")
    n = drawn["prompts"] * drawn["samples"]
    if len(samples) != n:  # cut at the end of a line, or emptied
        raise SystemExit(f"error: {path} is damaged (it holds {len(samples)} samples of the {n} drawn): "
                         "delete it to sample again")
    return samples


# -----------------------------------------------------------------------------
# the data and the losses (tests import them)

def shortest_correct(samples):
    """{prompt: the shortest correct sample} (the first of equal lengths); prompts with none are left out.
    samples: dicts with prompt, correct, tokens."""
    best = {}
    for s in samples:
        if s["correct"] and (s["prompt"] not in best or len(s["tokens"]) < len(best[s["prompt"]]["tokens"])):
            best[s["prompt"]] = s
    return best


def dpo_pairs(samples):
    """{prompt: (shortest correct, longest correct)} for prompts whose correct samples differ in length."""
    pairs = {}
    for prompt, w in shortest_correct(samples).items():
        longest = max((s for s in samples if s["prompt"] == prompt and s["correct"]),
                      key=lambda s: len(s["tokens"]))
        if len(longest["tokens"]) > len(w["tokens"]):
            pairs[prompt] = (w, longest)
    return pairs


def dpo_loss(logp_w, logp_l, ref_w, ref_l, beta):
    """The DPO loss of a batch of pairs, (N,) sequence log-probs each: mean of -log sigmoid(beta * margin)."""
    margin = (logp_w - ref_w) - (logp_l - ref_l)
    return -torch.nn.functional.logsigmoid(beta * margin).mean()


def sft_loss(logps):
    """-(mean over sequences of the mean log-prob of their tokens); logps: a list of (len_i,)."""
    return -torch.stack([lp.mean() for lp in logps]).mean()


# -----------------------------------------------------------------------------

def train_config(cfg):
    """train.py's settings that pick its prompts, so that the baselines see the same ones in the same
    order."""
    return TrainConfig(model=cfg.model, dataset=cfg.dataset, num_prompts=cfg.num_prompts, seed=cfg.seed,
                       prompts_per_iter=1, train_batch_size=8, max_new_tokens=cfg.max_new_tokens)


def sample(cfg, model, tokenizer, prompts, rows):
    """cfg.samples responses per prompt from the base model, graded as train.py's reward grades them."""
    t0 = time.time()
    comps = generate(model, prompts, n=cfg.samples, max_new_tokens=cfg.max_new_tokens,
                     eos_token_id=tokenizer.eos_token_id, temperature=cfg.temperature, seed=cfg.seed,
                     progress=True)
    texts = tokenizer.batch_decode([c.tokens for c in comps], skip_special_tokens=True)
    golds = [r["answer"] for r in rows for _ in range(cfg.samples)]
    R = reward.group_rewards(texts, golds, [len(c.tokens) for c in comps], [c.finished for c in comps],
                             cfg.samples, alpha=0.0)
    out = [dict(prompt=k // cfg.samples, tokens=c.tokens, finished=c.finished, correct=R["correct"][k],
                response=texts[k]) for k, c in enumerate(comps)]
    print(f"sampled {len(out)} responses in {time.time() - t0:.0f}s: "
          f"{sum(R['correct']) / len(out):.1%} correct, "
          f"{len(shortest_correct(out))} of {len(prompts)} prompts with a correct one, "
          f"{len(dpo_pairs(out))} with two of different lengths")
    return out


def finetune(cfg, mode, model, ref, prompts, data, log):
    """Fine-tune model on data (SFT: samples; DPO: (chosen, rejected) pairs) for cfg.epochs in batches."""
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(0.9, 0.95), weight_decay=0.0)
    rng, device, step = random.Random(cfg.seed), model.lm_head.weight.device, 0
    seqs = lambda items: [prompts[s["prompt"]] + s["tokens"] for s in items]  # noqa: E731
    plens = lambda items: [len(prompts[s["prompt"]]) for s in items]  # noqa: E731
    model.train()
    for epoch in range(cfg.epochs):
        order = list(data)
        rng.shuffle(order)
        for a in range(0, len(order), cfg.batch_size):
            batch = order[a:a + cfg.batch_size]
            if mode == "sft":
                logps = sequence_logprobs(model, seqs(batch), plens(batch), range(len(batch)), 1.0, device)
                loss = sft_loss(logps)
            else:
                both = [w for w, _ in batch] + [lo for _, lo in batch]
                logps = sequence_logprobs(model, seqs(both), plens(both), range(len(both)), 1.0, device)
                with torch.no_grad():
                    refs = sequence_logprobs(ref, seqs(both), plens(both), range(len(both)), 1.0, device)
                lp, rp = torch.stack([x.sum() for x in logps]), torch.stack([x.sum() for x in refs])
                n = len(batch)
                loss = dpo_loss(lp[:n], lp[n:], rp[:n], rp[n:], cfg.beta)
            for group in opt.param_groups:
                group["lr"] = get_lr(step, cfg)  # train.py's warm-up
            opt.zero_grad(set_to_none=True)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            step += 1
        log(f"{mode} epoch {epoch + 1}/{cfg.epochs} | {step} steps | last loss {loss.item():.4f}")


def main(argv):
    modes = ("sample", "sft", "dpo")
    if argv[:1] in (["-h"], ["--help"]):
        parse_args(BaselineConfig, argv)
    if not argv or argv[0] not in modes:
        raise SystemExit(f"usage: python baselines.py {'|'.join(modes)} [--key value ...]  "
                         "(see the docstring)")
    mode, cfg = argv[0], parse_args(BaselineConfig, argv[1:])
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    print_config(cfg)
    try:
        model = Qwen2.from_pretrained(cfg.model, device=cfg.device, dtype=torch.float32)
        tokenizer = load_tokenizer(model.source, chat=bool(cfg.eval_benchmark) and mode != "sample")
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    rows, prompts = load_prompts(train_config(cfg), tokenizer, model.config, print)
    if len(prompts) < cfg.prompts:
        raise SystemExit(f"error: --prompts {cfg.prompts}, but {cfg.dataset} gives {len(prompts)} usable "
                         f"prompts of --num_prompts {cfg.num_prompts}: ask for fewer, or raise --num_prompts")
    rows, prompts = rows[:cfg.prompts], prompts[:cfg.prompts]
    if cfg.eval_benchmark:  # a typo in it stops here, not after the fine-tune it would evaluate
        load_rows(cfg.eval_benchmark, split="test", limit=cfg.eval_problems)
    os.makedirs(cfg.out_dir, exist_ok=True)
    path = os.path.join(cfg.out_dir, "samples.jsonl")
    drawn = {k: getattr(cfg, k) for k in SAMPLING}  # what the samples depend on
    if not os.path.exists(path):  # one set of samples for both baselines and every learning rate
        samples = sample(cfg, model, tokenizer, prompts, rows)
        tmp = f"{path}.{os.getpid()}.tmp"
        with open(tmp, "w") as f:
            f.writelines(json.dumps(dict(s, sampling=drawn)) + "\n" for s in samples)
        os.replace(tmp, path)
    samples = read_samples(path, drawn)
    if mode == "sample":
        return
    data = list(shortest_correct(samples).values()) if mode == "sft" else list(dpo_pairs(samples).values())
    if not data:
        raise SystemExit(f"error: no {'correct sample' if mode == 'sft' else 'pair of correct samples'} "
                         "to train on")
    run_dir = os.path.join(cfg.out_dir, f"{mode}-lr{cfg.lr:g}")
    settings = dict(mode=mode, **{k: getattr(cfg, k) for k in TRAINING})
    try:
        done = read_json_object(os.path.join(run_dir, "config.json"))  # written once the model is saved
    except ValueError as e:  # damaged: which settings made the model, and whether it is whole, is unknown
        raise SystemExit(f"error: {run_dir}/config.json is damaged ({e}): delete {run_dir} to fine-tune again")
    if done is not None and {k: done.get(k) for k in settings} != settings:
        raise SystemExit(f"error: {run_dir} holds a model fine-tuned with other settings: pass another "
                         "--out_dir, or delete it")
    if done is not None:  # the same fine-tune, done: evaluate it (again), never overwrite it
        print(f"{run_dir}: fine-tuned already with these settings, not again")
        try:
            model = Qwen2.from_pretrained(os.path.join(run_dir, "final"), device=cfg.device, dtype=torch.float32)
        except (FileNotFoundError, ValueError) as e:
            raise SystemExit(f"error: {e} (delete {run_dir} to fine-tune again)")
    else:
        ref = None
        if mode == "dpo":
            ref = (Qwen2.from_pretrained(cfg.model, device=cfg.device, dtype=torch.float32)
                   .eval().requires_grad_(False))
        print(f"{mode}: {len(data)} {'responses' if mode == 'sft' else 'pairs'} from {len(prompts)} prompts "
              f"-> {run_dir}")
        finetune(cfg, mode, model, ref, prompts, data, print)
        model.save_pretrained(os.path.join(run_dir, "final"), tokenizer_dir=model.source)
        tmp = os.path.join(run_dir, "config.json.tmp")  # whole or absent: it says the model is complete
        with open(tmp, "w") as f:
            json.dump(dict(mode=mode, **asdict(cfg)), f, indent=2)
        os.replace(tmp, os.path.join(run_dir, "config.json"))
    model.eval()
    if cfg.eval_benchmark:
        m = evaluation.held_out(model, tokenizer, cfg.eval_benchmark, cfg.eval_problems,
                                os.path.join(run_dir, "eval_final.json"), os.path.join(run_dir, "final"),
                                cfg.max_new_tokens, cfg.eval_temperature, cfg.eval_seed, 0, 1)
        print(f"{mode} lr {cfg.lr:g}: held-out accuracy {m['accuracy']:.3f}, "
              f"mean tokens {m['mean_tokens']:.1f}")


if __name__ == "__main__":
    main(sys.argv[1:])
