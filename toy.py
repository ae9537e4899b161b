"""
The built-in task: a tiny reasoning model that overthinks, so the length penalty has something to cut,
and that knows shorter ways to answer which cost accuracy, so that cutting has a price.

Problems are sums of k = 2..6 one-digit numbers (k is the difficulty), solved as running sums in a
`<think>` block. The supervised solutions re-check most steps, a habit the base model keeps at temperature
0.6 while still sampling shorter solutions at temperature 1.0; for this small a model the re-checks are not
pure waste: without them it loses its place in long sums more often. And some solutions are direct
answers, the sum in one go, which the model gets right less and less often as the numbers add up (about
0.8, 0.5, 0.5, 0.4 and 0.3 of the time for k = 2..6 at temperature 1). This file is shared by train.py
(--preset toy), eval.py (--benchmark toy) and the tests.

    python toy.py                    # build a base model into out/toy-model: CPU, 1 thread, about 7 minutes
    python toy.py --out_dir /tmp/toy --steps 50 --n_eval 20   # a smoke run, under a minute

    data.toy_problems("test", 200)  ->  [{"problem": "What is 3 + 6 + 2?", "answer": "11", "difficulty": 3}, ...]
"""
import json
import math
import os
import random
import re
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, replace

import torch

from configurator import check, file_in_the_way, parse_args, print_config
from data import ASSISTANT, BOS, USER, chat_prompt, encode, toy_problems, train_prompt

# The rest of the DeepSeek-R1 special tokens (data.py has BOS, User and Assistant), spelled as in the real
# tokenizer (full-width bars, U+2581 spaces).
EOS = "<｜end▁of▁sentence｜>"
THINK, END_THINK = "<think>", "</think>"

# A trimmed R1 chat template: BOS, user turns, assistant turns closed by EOS, and the later revision's
# generation prompt that opens the thinking block.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
    "{% elif m['role'] == 'assistant' %}{{ '<｜Assistant｜>' + m['content'] + '<｜end▁of▁sentence｜>' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)

# Qwen2's pre-tokenizer split. transformers' Qwen2Tokenizer re-applies it to any folder whose config
# says qwen2, so a tokenizer trained with another split would tokenise differently once reloaded.
QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
               r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def build_tokenizer(texts, vocab_size=512, out_dir=None):
    """Train a byte-level BPE tokenizer on `texts` with the R1 special tokens and chat template.

    Token ids: 0 EOS (also pad), 1 User, 2 Assistant, 3 BOS, then bytes and merges, then <think>, </think>.
    Returns a transformers PreTrainedTokenizerFast; also saved to `out_dir` when given.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 2, special_tokens=[EOS, USER, ASSISTANT, BOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    # <think> and </think> are added but not special, as in R1: skip_special_tokens keeps them.
    tok.add_tokens([AddedToken(THINK, special=False), AddedToken(END_THINK, special=False)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=EOS,
                                 unk_token=None, chat_template=CHAT_TEMPLATE)
    hf.add_special_tokens({"additional_special_tokens": [USER, ASSISTANT]})
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        hf.save_pretrained(out_dir)
    return hf


# ----------------------------------------------------------------------------------------------------
# The task: add k one-digit numbers (k = 2..6 is the difficulty; data.toy_problems draws them) as a chain
# of running sums.
# The necessary chain has k - 1 steps; the "overthinking" is a re-check line after a step that copies
# the step again and never changes the answer, so the shortest correct solution is always within reach.

def _numbers(problem):
    return [int(x) for x in re.findall(r"\d+", problem)]


def solution(problem, rng=None, p_check=0.8, p_concise=0.1, p_direct=0.0):
    """A response `<think>\\n...</think>\\n\\n... \\boxed{answer}` (EOS not included).

    Each line adds the next number to the running total and is followed by a redundant re-check with
    probability p_check, decided per line, so the first token after a line is where a policy can learn to
    stop re-checking; with probability p_concise the whole solution has no re-checks. With probability
    p_direct it is a direct answer: no lines, the sum in one go, which the tiny model gets right almost
    always for two numbers and less and less often as they add up: the shortcut that trades accuracy for
    tokens, the more so the harder the problem. rng=None gives the shortest derivation: one line per
    number, no re-checks. (Rewriting the whole sum each step, `= 11 + 4 + 4`, was tried to spare the model
    from counting its place in the question; the tiny model copied the tails worse than it counted.)
    """
    nums = _numbers(problem)
    direct = rng is not None and rng.random() < p_direct
    concise = rng is None or rng.random() < p_concise
    lines, total = [], nums[0]
    for x in nums[1:] if not direct else []:
        lines.append(f"{total} + {x} = {total + x}.")
        if not concise and rng.random() < p_check:
            lines.append(f"Wait, let me re-check: {lines[-1][:-1]}. Yes.")
        total += x
    # The think block opens with "<think>\n" exactly as the chat template's generation prompt, and the
    # first character after it is a digit or "</think>", so "\n" is its own token either way.
    return (THINK + "\n" + "".join(line + "\n" for line in lines) + END_THINK
            + f"\n\nThe answer is \\boxed{{{sum(nums)}}}.")


STEP = re.compile(r"\d+(?: \+ \d+)+ = \d+\.")  # total + number(s) = sum.


def derivation_ok(problem, response):
    """Is `response` (the text after "<think>\\n") a valid derivation in the task's format? Each line of the
    think block adds the next number(s) of the question, in order, to the running total and writes the
    right sum, or re-checks the line just before it word for word; after `</think>` the boxed answer is the
    sum. So a shortcut is valid when all it writes is right: no lines at all (a direct answer), a line that
    adds several numbers at once (`3 + 4 + 5 = 12.`), lines that stop before the last number. eval.py
    requires it on the toy benchmark on top of the boxed answer, so a policy whose text degrades around a
    right answer (too high a learning rate, no KL term) is caught by the held-out grading."""
    nums = _numbers(problem)
    think, sep, tail = response.partition(END_THINK)
    if not sep or (think and not think.endswith("\n")) or tail != f"\n\nThe answer is \\boxed{{{sum(nums)}}}.":
        return False
    total, i, last = nums[0], 1, None  # running total, numbers added, the line a re-check may repeat
    for line in think.split("\n")[:-1]:
        n = line.count("+") if STEP.fullmatch(line) else 0  # numbers this line adds
        step = f"{total}{''.join(f' + {x}' for x in nums[i:i + n])} = {total + sum(nums[i:i + n])}."
        if last is not None and line == f"Wait, let me re-check: {last[:-1]}. Yes.":
            last = None
        elif 0 < n <= len(nums) - i and line == step:
            total, i, last = total + sum(nums[i:i + n]), i + n, step
        else:
            return False
    return True


# ----------------------------------------------------------------------------------------------------
# The base model: a tiny Qwen2 trained from scratch by supervised learning on the overthinking solutions.

@dataclass
class ToyConfig:
    out_dir: str = "out/toy-model"  # where the Hugging Face folder (weights + tokenizer) is written; refused if
    #                                 it holds a model already (the committed one is toy-model/)
    seed: int = 0  # seeds the data, the init and the evaluation samples
    threads: int = 1  # torch CPU threads; fixed: the reduction order (so the weights) depends on it, and one
    #                  thread is as fast on tiny matmuls and much faster on a busy machine
    vocab_size: int = 512  # upper bound for the BPE; the task's text saturates it at fewer tokens
    hidden_size: int = 128
    intermediate_size: int = 384  # SwiGLU inner width
    num_hidden_layers: int = 4
    num_attention_heads: int = 4
    num_key_value_heads: int = 2
    max_position_embeddings: int = 1024  # context length written to config.json (prompt + response)
    steps: int = 1200  # optimizer steps
    batch_size: int = 32  # sequences per step
    lr: float = 3e-3  # peak AdamW learning rate: linear warm-up, then cosine decay to lr / 10
    warmup_steps: int = 30
    weight_decay: float = 0.01
    p_check: float = 0.8  # chance that a step is followed by a redundant re-check
    p_concise: float = 0.1  # chance that a solution has no re-checks at all
    p_direct: float = 0.5  # chance that a solution is a direct answer (no lines): enough to learn to add
    #                        in one go as well as the tiny model can
    p_direct_late: float = 0.12  # the same over the last late_steps, which sets how often the model then
    #                              answers directly: 11% at T = 1, 3% at T = 0.6 (README)
    late_steps: int = 250  # the final steps, at the end of the cosine schedule
    n_eval: int = 200  # held-out problems of the final report (0 = skip it)
    eval_temperatures: str = "0.6,1.0"  # comma-separated sampling temperatures of the final report
    max_new_tokens: int = 256  # generation limit of the final report
    log_every: int = 50  # steps between progress lines

    def __post_init__(self):  # refused before anything is trained or written
        checks = [(k, getattr(self, k) >= 1, ">= 1") for k in (
            "threads", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
            "num_key_value_heads", "steps", "batch_size", "max_new_tokens", "log_every")]
        checks += [(k, getattr(self, k) >= 0, ">= 0") for k in ("warmup_steps", "late_steps", "n_eval")]
        checks += [(k, 0 <= getattr(self, k) <= 1, "a probability in [0, 1]")
                   for k in ("p_check", "p_concise", "p_direct", "p_direct_late")]
        blocked = file_in_the_way(self.out_dir)  # else a FileExistsError or NotADirectoryError from os.makedirs
        checks += [("out_dir", self.out_dir.strip() != "", "a folder"),
                   ("out_dir", blocked is None, f"a folder ({blocked} is a file)"),
                   ("vocab_size", self.vocab_size >= 262, ">= 262 (the 256 bytes and 6 special tokens)"),
                   ("lr", 0 < self.lr < math.inf, "> 0"),
                   ("weight_decay", 0 <= self.weight_decay < math.inf, ">= 0"),
                   ("max_position_embeddings", self.max_position_embeddings > self.max_new_tokens,
                    f"> --max_new_tokens ({self.max_new_tokens}): the prompt needs room too")]
        check(self, checks)
        H = self.num_attention_heads
        if self.hidden_size % H or self.hidden_size // H % 2:  # RoPE rotates pairs of a head's dimensions
            raise ValueError(f"--num_attention_heads must split --hidden_size {self.hidden_size} into heads of an "
                             f"even size, got {H}")
        if H % self.num_key_value_heads:
            raise ValueError(f"--num_key_value_heads must divide --num_attention_heads {H}, "
                             f"got {self.num_key_value_heads}")
        try:
            ok = all(0 <= float(t) < math.inf for t in self.eval_temperatures.split(","))
        except ValueError:  # not a number
            ok = False
        if not ok:
            raise ValueError("--eval_temperatures must be temperatures >= 0 (0 = greedy), comma-separated, "
                             f"got {self.eval_temperatures!r}")


def sft_batches(tok, cfg):
    """Yield cfg.steps packed batches (idx, targets, cu_seqlens): cfg.batch_size sequences of prompt +
    solution + EOS laid end to end, idx and targets (1, N) int64, cu_seqlens (batch_size + 1,) int32.
    targets are the next tokens on the response only, -1 (ignored) on the prompt and across sequences.
    Packing instead of padding: the lengths vary 3x with the difficulty and the re-checks."""
    rng = random.Random(f"sft-{cfg.seed}")
    probs = toy_problems("train", cfg.steps * cfg.batch_size, cfg.seed)
    for s in range(cfg.steps):
        idx, targets, cu = [], [], [0]
        for p in probs[s * cfg.batch_size:(s + 1) * cfg.batch_size]:
            prompt = encode(tok, train_prompt(p["problem"]))
            p_direct = cfg.p_direct_late if s >= cfg.steps - cfg.late_steps else cfg.p_direct
            response = tok.encode(solution(p["problem"], rng, cfg.p_check, cfg.p_concise, p_direct),
                                  add_special_tokens=False) + [tok.eos_token_id]
            seq = prompt + response
            idx += seq[:-1]
            targets += [-1] * (len(prompt) - 1) + response  # position t predicts token t + 1
            cu.append(len(idx))
        yield torch.tensor([idx]), torch.tensor([targets]), torch.tensor(cu, dtype=torch.int32)


def get_lr(step, cfg):
    if step < cfg.warmup_steps:
        return cfg.lr * (step + 1) / cfg.warmup_steps
    frac = (step - cfg.warmup_steps) / max(1, cfg.steps - cfg.warmup_steps)
    return cfg.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * frac)))


def holds_model(folder):
    return any(os.path.exists(os.path.join(folder, f)) for f in ("config.json", "model.safetensors"))


def build_base_model(out_dir, seed=0, **overrides):
    """Train the overthinking base model from scratch and save it (weights + tokenizer) to out_dir, which
    must not hold a model already. Deterministic for a given config on a given machine. Returns (model,
    tokenizer, cfg)."""
    cfg = replace(ToyConfig(), out_dir=out_dir, seed=seed, **overrides)
    if holds_model(out_dir):
        raise SystemExit(f"error: {out_dir} already holds a model: pick another --out_dir, or remove it to build "
                         "it again")
    t0 = time.time()
    # Built in a hidden folder inside out_dir (the same file system, so the files move by rename) and moved
    # in only once complete: a failure part-way leaves out_dir as it was, not a tokenizer no weights match.
    os.makedirs(out_dir, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".building-", dir=out_dir) as tmp:
        model, tok = train_base_model(cfg, tmp)
        # config.json last: it is what marks a folder as holding a model (train.py looks for it)
        for f in sorted(os.listdir(tmp), key=lambda n: n == "config.json"):
            os.replace(os.path.join(tmp, f), os.path.join(out_dir, f))
    print(f"saved {out_dir} in {time.time() - t0:.0f}s")
    return model, tok, cfg


def train_base_model(cfg, out_dir):
    """build_base_model's work: the tokenizer, then SFT, all saved to out_dir. Returns (model, tokenizer)."""
    from model import Qwen2, Qwen2Config
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    t0 = time.time()

    # The tokenizer sees training text only; the test problems use the same words and digits.
    rng = random.Random(f"tok-{cfg.seed}")
    texts = [train_prompt(p["problem"]) + solution(p["problem"], rng, cfg.p_check, cfg.p_concise, cfg.p_direct)
             for p in toy_problems("train", 2000, cfg.seed)]
    tok = build_tokenizer(texts, cfg.vocab_size, out_dir)

    mcfg = Qwen2Config(vocab_size=len(tok), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
                       num_hidden_layers=cfg.num_hidden_layers, num_attention_heads=cfg.num_attention_heads,
                       num_key_value_heads=cfg.num_key_value_heads,
                       max_position_embeddings=cfg.max_position_embeddings, rope_theta=10000.0,
                       tie_word_embeddings=True, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
                       torch_dtype="float32")
    model = Qwen2(mcfg)
    print(f"model: {sum(p.numel() for p in model.parameters()) / 1e6:.2f}M parameters, vocab {len(tok)}")
    # No weight decay on norms and biases, as usual.
    params = [{"params": [p for p in model.parameters() if p.dim() >= 2], "weight_decay": cfg.weight_decay},
              {"params": [p for p in model.parameters() if p.dim() < 2], "weight_decay": 0.0}]
    opt = torch.optim.AdamW(params, lr=cfg.lr, betas=(0.9, 0.95))
    model.train()
    for step, (idx, targets, cu_seqlens) in enumerate(sft_batches(tok, cfg)):
        for g in opt.param_groups:
            g["lr"] = get_lr(step, cfg)
        logp = model(idx, targets=targets, cu_seqlens=cu_seqlens)  # (1, N), 0 where ignored
        loss = -logp.sum() / (targets >= 0).sum()  # mean over the response tokens of the batch
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        if step % cfg.log_every == 0 or step == cfg.steps - 1:
            print(f"step {step:4d}/{cfg.steps} | loss {loss.item():.4f} | lr {get_lr(step, cfg):.1e} | "
                  f"{time.time() - t0:.0f}s", flush=True)
    model.eval()
    model.save_pretrained(out_dir, tokenizer_dir=out_dir)
    with open(os.path.join(out_dir, "toy_config.json"), "w") as f:
        json.dump(asdict(cfg), f, indent=2)
    return model, tok


def evaluate(model, tok, n=200, temperature=0.6, max_new_tokens=256, seed=0):
    """Accuracy and mean generated tokens on n held-out problems, prompted as eval.py does (chat template,
    so `<think>\n` is already in the prompt), plus the same count for the shortest correct solutions.
    Returns {acc, tokens, shortest, ratio, by_difficulty: {k: (acc, tokens, shortest)}, sample: {problem,
    answer, correct, response}}."""
    from grader import grade
    from sample import generate
    probs = toy_problems("test", n, seed)
    prompts = [encode(tok, chat_prompt(tok, p["problem"])) for p in probs]
    outs = generate(model, prompts, max_new_tokens=max_new_tokens, eos_token_id=tok.eos_token_id,
                    temperature=temperature, seed=seed)
    # The shortest correct response after the prompt's "<think>\n": the concise solution minus those two
    # tokens, plus EOS.
    think = len(tok.encode(THINK + "\n", add_special_tokens=False))
    rows = []
    for p, o in zip(probs, outs):
        text = tok.decode(o.tokens, skip_special_tokens=True)
        shortest = len(tok.encode(solution(p["problem"]), add_special_tokens=False)) - think + 1
        rows.append((p["difficulty"], o.finished and grade(text, p["answer"]), len(o.tokens), shortest))

    def summary(rs):
        return tuple(sum(r[i] for r in rs) / len(rs) for i in (1, 2, 3))
    acc, tokens, shortest = summary(rows)
    by_k = {k: summary([r for r in rows if r[0] == k]) for k in sorted({r[0] for r in rows})}
    i = max(range(len(probs)), key=lambda j: probs[j]["difficulty"])  # show the first hardest problem
    sample = dict(problem=probs[i]["problem"], answer=probs[i]["answer"], correct=rows[i][1],
                  response=tok.decode(outs[i].tokens, skip_special_tokens=False))
    return dict(acc=acc, tokens=tokens, shortest=shortest, ratio=tokens / shortest, by_difficulty=by_k,
                sample=sample)


def main(argv):
    cfg = parse_args(ToyConfig, argv)
    print("toy config:")
    print_config(cfg)
    t0 = time.time()
    model, tok, cfg = build_base_model(**asdict(cfg))
    for temperature in [float(t) for t in cfg.eval_temperatures.split(",") if cfg.n_eval > 0]:
        r = evaluate(model, tok, cfg.n_eval, temperature, cfg.max_new_tokens, cfg.seed)
        print(f"held-out, temperature {temperature}: accuracy {r['acc']:.1%} | mean tokens {r['tokens']:.1f} | "
              f"shortest correct {r['shortest']:.1f} | ratio {r['ratio']:.2f}")
        for k, (acc, tokens, shortest) in r["by_difficulty"].items():
            print(f"  k={k}: accuracy {acc:.1%} | tokens {tokens:.1f} | shortest {shortest:.1f}")
        s = r["sample"]
        print(f"  sample: {s['problem']} (gold {s['answer']}, {'correct' if s['correct'] else 'wrong'})\n"
              + s["response"])
    print(f"total {time.time() - t0:.0f}s")


if __name__ == "__main__":
    main(sys.argv[1:])
