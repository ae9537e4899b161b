"""
Train a reasoning model to think less: PPO with a leave-one-out baseline and the length-penalised reward
of Arora & Zanette (2025). The algorithm, phase by phase, is `main()` at the bottom of this file.

    torchrun --nproc_per_node=8 train.py --alpha 0.2                       # the paper's 1.5B recipe
    torchrun --nproc_per_node=8 train.py --preset r1-7b --alpha 0.2        # 7B, FSDP2-sharded
    python train.py --alpha 0.2                                            # one GPU (same recipe, slower)
    python train.py --preset toy                                           # the built-in task, CPU, minutes
    torchrun --nproc_per_node=2 train.py --preset toy --out_dir out/toy-2  # the same on 2 CPU processes
    torchrun --nnodes=2 --node_rank=$R --rdzv_endpoint=$HOST:29500 --nproc_per_node=8 train.py   # 2 nodes
"""
import dataclasses
import importlib.util
import json
import math
import os
import random
import sys
import time
from contextlib import nullcontext
from dataclasses import dataclass

import torch
import torch.distributed as dist

import eval as evaluation
import grader
import reward
import toy
from configurator import check, check_device, parse_args, print_config
from data import encode, load_rows, train_prompt
from distributed import all_max, all_sum, barrier, finish, init_distributed, on_rank0
from model import KVCache, Qwen2, load_tokenizer
from outdir import OutDirLock, check_out_dir, is_model_folder, load_checkpoint, save_checkpoint, truncate_logs
from paged_attention import decode_path
from sample import check_context, generate, gpu_memory, kv_budget


@dataclass
class TrainConfig:
    preset: str = "r1-1.5b"  # r1-1.5b | r1-7b | toy: a set of defaults below, each overridable by flag
    model: str = "deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B"  # hub id or local HF folder
    dataset: str = "daman1209arora/compression_dataset"  # hub id, local .jsonl/.parquet, or "toy"
    num_prompts: int = 3200  # first rows of the dataset, then shuffled with `seed`
    alpha: float = 0.2  # length-penalty strength, in [0, 1); 0 = plain correctness
    iters: int = 100  # RL iterations (rollout + update)
    prompts_per_iter: int = 32  # prompts sampled per iteration, all ranks together
    group_size: int = 8  # samples per prompt (the leave-one-out group)
    train_batch_size: int = 128  # sequences per optimizer step, all ranks together
    micro_batch_size: int = 8  # sequences per forward/backward on one rank (gradient accumulation)
    micro_batch_tokens: int = 65536  # also cap a micro-batch's packed positions (prompts too); 0 = no cap
    epochs: int = 1  # passes over each rollout batch
    lr: float = 5e-6  # AdamW's peak learning rate (betas 0.9, 0.95), reached after warm-up
    warmup_steps: int = 6  # optimizer steps of linear warm-up, then constant
    weight_decay: float = 0.0  # AdamW's decoupled weight decay
    grad_clip: float = 1.0  # max global grad norm
    clip_eps: float = 0.2  # PPO ratio clip: [1 - eps, 1 + eps]
    kl_coef: float = 1e-3  # k1 KL to the initial model, folded into the reward; 0 = no reference model
    loss_agg: str = "seq-mean"  # seq-mean (authors' code: mean over tokens, then sequences) | token-mean
    adv_norm: str = "batch"  # batch: whiten token advantages over the rollout batch (all ranks; the authors')
    #                          | group: divide by each prompt's reward std (GRPO; the paper's ablation) | none
    max_prompt_tokens: int = 512  # longer prompts are dropped, with a report
    max_new_tokens: int = 32000  # response length limit of a rollout: a truncated response earns 0
    temperature: float = 1.0  # sampling temperature of the rollouts
    top_p: float = 1.0  # nucleus sampling of the rollouts; 1 = the full distribution
    rollout_slots: int = 0  # rows decoded at once per rank; 0 = all samples (at most 256)
    cuda_graph: bool = False  # replay the rollout's decode step as CUDA graphs (sample.generate); CUDA only
    reward_workers: int = 4  # grader processes per rank; 0 = grade in this process
    eval_benchmark: str = ""  # evaluate before and after training: "" = no, or a data spec like "toy"
    eval_problems: int = 200  # held-out problems for that evaluation
    eval_initial: bool = True  # also evaluate the initial model
    #                            (false: after training only, as experiments.py)
    eval_temperature: float = 0.6  # the held-out evaluation's sampling temperature (eval.py's protocol)
    eval_seed: int = 0  # the held-out samples' seed: the same for every run (and eval.py's default), so that
    #                     models are compared on the same random draws
    out_dir: str = "out/r1-1.5b"  # the run's folder: logs, checkpoints (iter_NNNNNN/), the final model (final/)
    save_every: int = 10  # iterations between checkpoints; 0 = only the final model
    resume: bool = False  # continue from the latest checkpoint in out_dir
    seed: int = 42  # seeds the prompt order, the rollouts' samples and the minibatch shuffles
    device: str = ""  # "" = cuda if available, else cpu; or "cpu" to force it
    threads: int = 0  # CPU threads for torch; 0 = torch's default
    dtype: str = ""  # compute dtype: "" = bfloat16 on GPU, float32 on CPU; master weights are always fp32
    fsdp: bool = False  # shard parameters, gradients and optimizer state with FSDP2 (for 7B)
    grad_ckpt: bool = True  # activation checkpointing
    wandb: bool = False  # log to Weights & Biases (rank 0)
    wandb_project: str = "reason-efficiently"  # the W&B project that --wandb logs to
    dist_timeout_min: int = 180  # minutes a rank waits for the others at a collective before the job stops:
    #                              longer than the longest phase (a 32k-token rollout, a 91 GB checkpoint)

    def __post_init__(self):
        reward.check_alpha(self.alpha)
        if self.loss_agg not in ("seq-mean", "token-mean"):
            raise ValueError(f"--loss_agg must be seq-mean or token-mean, got {self.loss_agg!r}")
        if self.adv_norm not in ("batch", "group", "none"):
            raise ValueError(f"--adv_norm must be batch, group or none, got {self.adv_norm!r}")
        check(self, [(k, getattr(self, k) >= 1, ">= 1") for k in (
            "iters", "prompts_per_iter", "group_size", "train_batch_size", "micro_batch_size", "epochs",
            "max_new_tokens", "num_prompts")])
        if self.group_size < 2:
            raise ValueError("--group_size must be at least 2: the leave-one-out baseline needs a group")
        rollout = self.prompts_per_iter * self.group_size
        if rollout % self.train_batch_size:
            raise ValueError(f"prompts_per_iter x group_size = {rollout} sequences must split into whole "
                             f"minibatches of --train_batch_size {self.train_batch_size}")
        # Refused here, before anything loads: a run that could only produce NaN or a broken model.
        checks = [("temperature", 0 < self.temperature < math.inf, "> 0: log-probs are taken at "
                   "logits / temperature, and 0 (greedy) has no gradient; the paper samples at 1.0"),
                  ("top_p", 0 < self.top_p <= 1, "in (0, 1]"), ("lr", 0 < self.lr < math.inf, "> 0"),
                  ("kl_coef", 0 <= self.kl_coef < math.inf, ">= 0"),
                  ("clip_eps", 0 < self.clip_eps < 1, "in (0, 1)"),
                  ("grad_clip", 0 < self.grad_clip < math.inf, "> 0"),
                  ("weight_decay", 0 <= self.weight_decay < math.inf, ">= 0"),
                  ("eval_temperature", 0 <= self.eval_temperature < math.inf, ">= 0 (0 = greedy)"),
                  ("eval_problems", self.eval_problems >= 1, ">= 1"),
                  ("max_prompt_tokens", self.max_prompt_tokens >= 1, ">= 1"),
                  ("dist_timeout_min", self.dist_timeout_min > 0, "> 0"),
                  ("dtype", self.dtype in ("", "float32", "bfloat16", "float16"),
                   "float32, bfloat16 or float16"),
                  ("seed", -2**63 <= self.seed < 2**63, "in [-2**63, 2**63)")]  # torch.manual_seed takes
        #                                                          [-2**63, 2**64); the update adds to it
        checks += [(k, getattr(self, k) >= 0, ">= 0")
                   for k in ("warmup_steps", "micro_batch_tokens", "save_every", "rollout_slots",
                             "reward_workers", "threads")]
        check(self, checks)
        if not self.out_dir:
            raise ValueError("--out_dir is empty: name the folder the run writes to")
        if is_model_folder(self.out_dir):  # the run's config.json and moved-aside logs would break that model
            raise ValueError(f"--out_dir {self.out_dir} is a model folder (its config.json names a model_type): "
                             "pick another --out_dir (a run saves its models in subfolders)")
        if self.wandb and importlib.util.find_spec("wandb") is None:  # found now, not after out_dir is taken
            raise ValueError("--wandb needs the wandb package: pip install wandb, or drop --wandb")
        check_device(self.device)


PRESETS = {
    "r1-1.5b": {},
    "r1-7b": dict(model="deepseek-ai/DeepSeek-R1-Distill-Qwen-7B", lr=2e-6, fsdp=True, out_dir="out/r1-7b",
                  micro_batch_tokens=32768),  # 65,536 would not fit the update on 80 GB (memory_plan)
    "toy": dict(model="toy-model", dataset="toy", num_prompts=2048, iters=30, prompts_per_iter=16,
                train_batch_size=64, micro_batch_size=64, lr=1e-4, warmup_steps=2, max_new_tokens=200,
                kl_coef=1e-3, reward_workers=0, eval_benchmark="toy", eval_problems=200, save_every=10,
                out_dir="out/toy", device="cpu", threads=1,  # a tiny model: more threads only contend
                grad_ckpt=False),  # its activations are small; recomputing them cost a fifth of the update
}


def get_config(argv):
    preset = "r1-1.5b"
    for i, a in enumerate(argv):  # the preset sets defaults; every other flag overrides them
        if a.startswith("--preset"):
            preset = a.partition("=")[2] or (argv[i + 1] if i + 1 < len(argv) else "")
    if preset not in PRESETS:
        raise SystemExit(f"error: unknown --preset {preset!r}; choose from {', '.join(PRESETS)}")
    return parse_args(TrainConfig, argv, **PRESETS[preset])


# -----------------------------------------------------------------------------
# the maths: small pure functions (tests import them)

def rloo_advantages(rewards, group_size):
    """A_i = r_i - mean of the other rewards of its group. rewards (N,), groups are consecutive blocks."""
    r = rewards.view(-1, group_size)  # (prompts, G)
    baseline = (r.sum(1, keepdim=True) - r) / (group_size - 1)
    return (r - baseline).view(-1)


def kl_returns(kl):
    """Return-to-go of the per-token KL penalty, gamma = 1: out[t] = sum_{t' >= t} kl[t']. kl (T,)."""
    return kl.flip(0).cumsum(0).flip(0)


def whiten(x, world_sum=lambda t: t):
    """(x - mean) / std over all tokens of x (T,), token-weighted; world_sum all-reduces the moments."""
    s = world_sum(torch.stack([x.sum(), (x * x).sum(), torch.tensor(float(x.numel()), device=x.device)]))
    mean = s[0] / s[2]
    var = (s[1] / s[2] - mean ** 2).clamp(min=0)
    return (x - mean) * torch.rsqrt(var + 1e-8)


def ppo_loss(logp, old_logp, adv, weight, clip_eps):
    """Clipped PPO surrogate over tokens (T,). weight (T,) holds the aggregation denominator:
    1 / (len_i * n_seqs) for seq-mean, 1 / n_tokens for token-mean, both over the global minibatch,
    so summing micro-batch losses over ranks gives exactly the minibatch loss."""
    ratio = torch.exp(logp - old_logp)
    pg = torch.max(-adv * ratio, -adv * ratio.clamp(1 - clip_eps, 1 + clip_eps))  # = -min(rho A, clip(rho) A)
    clipfrac = ((ratio - 1).abs() > clip_eps).float()
    return (pg * weight).sum(), (clipfrac * weight).sum()


def agg_weights(lengths, loss_agg, n_seqs, n_tokens):
    """Per-token loss weights (sum(lengths),) for sequences of these lengths in a minibatch of n_seqs
    sequences and n_tokens tokens in all."""
    if loss_agg == "token-mean":
        return torch.full((sum(lengths),), 1.0 / n_tokens)
    return torch.cat([torch.full((n,), 1.0 / (n * n_seqs)) for n in lengths])


def group_normalize(adv, rewards, group_size):
    """GRPO's per-prompt normalisation, the paper's ablation: each group's advantages over the std of its
    rewards (+ 1e-4). With correct answers' rewards spread over [1 - alpha, 1] it makes the length signal
    the same size whatever alpha is. A group of equal rewards keeps advantages of 0 (not 0 / 0)."""
    std = rewards.view(-1, group_size).std(1, keepdim=True)  # (prompts, 1), unbiased as GRPO's
    return (adv.view(-1, group_size) / (std + 1e-4)).view(-1)


def get_lr(step, cfg):
    """transformers' constant schedule with warm-up, stepped after each optimizer step as the authors' code
    does: optimizer step s runs at lr * s / warmup_steps (so step 0 at 0) until warmup_steps, then lr."""
    return cfg.lr * min(1.0, step / cfg.warmup_steps) if cfg.warmup_steps else cfg.lr


def micro_batches(idxs, lengths, max_seqs, max_tokens):
    """Split a list of sequence indices into consecutive micro-batches under both caps."""
    out, cur, tokens = [], [], 0
    for i in idxs:
        if cur and (len(cur) == max_seqs or (max_tokens and tokens + lengths[i] > max_tokens)):
            out.append(cur)
            cur, tokens = [], 0
        cur.append(i)
        tokens += lengths[i]
    return out + [cur] if cur else out


def sequence_logprobs(model, seqs, prompt_lens, idxs, temperature, device):
    """Log-probs of the response tokens of sequences idxs, packed into one forward: a list of (resp_len,)."""
    inputs, targets, cu = [], [], [0]
    for i in idxs:
        s, p = seqs[i], prompt_lens[i]
        inputs += s[:-1]
        targets += [-1] * (p - 1) + s[p:]  # position t predicts token t + 1: only response tokens count
        cu.append(len(inputs))
    logp = model(torch.tensor([inputs], device=device), torch.tensor([targets], device=device),
                 cu_seqlens=torch.tensor(cu, dtype=torch.int32, device=device), temperature=temperature)[0]
    return [logp[cu[k] + prompt_lens[i] - 1:cu[k + 1]] for k, i in enumerate(idxs)]


def micro_batch_schedule(members, all_lengths, n_local, rank, world, max_seqs, max_tokens):
    """This rank's micro-batches of one minibatch: lists of its local sequence indices.

    members: the minibatch's global sequence ids; rank r holds ids r * n_local .. (r + 1) * n_local - 1.
    Every rank splits every rank's share the same way and pads its own list with empty micro-batches to the
    longest, so that all ranks run the same number of forwards and backwards: FSDP gathers the sharded
    weights from every rank in each forward, and DDP's gradient sync at the last backward waits for all."""
    splits = [micro_batches([g for g in members if r * n_local <= g < (r + 1) * n_local], all_lengths,
                            max_seqs, max_tokens) for r in range(world)]
    mine = [[g - rank * n_local for g in mb] for mb in splits[rank]]
    return mine + [[]] * (max(len(sp) for sp in splits) - len(mine))


# -----------------------------------------------------------------------------
# memory and checkpoints

def memory_plan(cfg, mcfg, n_params, world, dtype, total_bytes, sharded=None, memory_fraction=0.9):
    """What one rank holds, in bytes, in each phase, and the rollout's KV cache in tokens. Arithmetic only:
    total_bytes is the GPU's memory (None on the CPU: nothing to size); sharded: FSDP runs (default
    cfg.fsdp). An estimate from above, which .ci/gpu checks against a GPU's measured peak.

      states    fp32 master weights + gradients + Adam's two moments, 16 B/param, sharded by FSDP (which
                reduce-scatters every micro-batch, so accumulated gradients stay sharded too)
      copies    the compute-dtype copy the rollouts sample from (FSDP's, or not fp32) and the KL reference
      rollout   states + copies + the KV cache, which takes what is left of memory_fraction of the GPU
      update    states + copies + the checkpointed layer inputs of one micro-batch (T packed positions x
                hidden, per layer) + one layer recomputed in the backward (~10 hidden + 3 kv + 6 ffn values
                per position) + a chunk of fp32 logits and their gradient (12 B x 1,024 x vocab); under
                FSDP two gathered layers and one layer's fp32 gradient, and the root group (the embeddings,
                unsharded from forward to backward: compute-dtype weights and gradients, fp32 gradients);
                under autocast its cached compute-dtype copy of the weights
    """
    sharded = cfg.fsdp if sharded is None else sharded
    cb = dtype.itemsize
    act = cb if sharded else 4  # the residual stream: in the compute dtype under FSDP, fp32 under autocast
    h, L, ffn, V = mcfg.hidden_size, mcfg.num_hidden_layers, mcfg.intermediate_size, mcfg.vocab_size
    kv = mcfg.num_key_value_heads * mcfg.head_dim
    longest = cfg.max_prompt_tokens + cfg.max_new_tokens  # a micro-batch holds at least one sequence
    T = max(cfg.micro_batch_tokens, longest) if cfg.micro_batch_tokens else cfg.micro_batch_size * longest
    root_params = V * h * (1 if mcfg.tie_word_embeddings else 2)
    layer_params = (n_params - root_params) / L
    plan = dict(states=n_params * 16 / (world if sharded else 1),
                copies=n_params * cb * ((dtype != torch.float32 or sharded) + (cfg.kl_coef > 0)),
                checkpointed=L * T * h * act, recomputed_layer=T * (10 * h + 3 * kv + 6 * ffn) * cb,
                logits=12 * 1024 * V, gathered=layer_params * (2 * cb + 4) if sharded else 0,
                root=root_params * (2 * cb + 4) if sharded else 0,
                autocast_cache=n_params * cb if not sharded and cb < 4 else 0)
    plan["update"] = sum(plan.values())
    prefill = cfg.prompts_per_iter // world * cfg.max_prompt_tokens * KVCache.bytes_per_token(mcfg, dtype)
    plan["kv_tokens"] = kv_budget(mcfg, dtype, total_bytes, plan["states"] + plan["copies"] + prefill,
                                  memory_fraction)  # the pages; the prompts' own cache (prefill) aside
    plan["rollout"] = (plan["states"] + plan["copies"]
                       + (plan["kv_tokens"] or 0) * KVCache.bytes_per_token(mcfg, dtype))
    plan["total"], plan["usable"] = total_bytes, total_bytes and memory_fraction * total_bytes
    return plan


def check_memory(plan, cfg, mcfg, dtype, device, log):
    """Print the plan; refuse a run whose rollout cannot cache one sequence or whose update cannot fit."""
    GB, seq_len = 2**30, cfg.max_prompt_tokens + cfg.max_new_tokens
    log(f"memory plan per rank: weights+grads+adam {plan['states'] / GB:.1f} GiB | sampler/reference copies "
        f"{plan['copies'] / GB:.1f} GiB | rollout: KV "
        f"{KVCache.bytes_per_token(mcfg, dtype) / 2**10:.0f} KiB/token"
        + (f" x {plan['kv_tokens']:,} tokens, {plan['rollout'] / GB:.1f} GiB in all" if plan["total"] else "")
        + f" | update: micro-batch {cfg.micro_batch_size} seqs / {cfg.micro_batch_tokens or 'any'} tokens, "
        f"{plan['update'] / GB:.1f} GiB in all (activations {plan['checkpointed'] / GB:.1f} checkpointed + "
        f"{plan['recomputed_layer'] / GB:.1f} recomputed layer + {plan['logits'] / GB:.1f} logits)"
        + (f" | of {plan['usable'] / GB:.0f} GiB usable ({plan['total'] / GB:.0f} GiB GPU)"
           if plan["total"] else "")
        + f" | decoding: {decode_path(mcfg, device, dtype)}")
    if plan["total"] and plan["kv_tokens"] < seq_len:
        raise SystemExit(f"error: this configuration does not fit: the model state takes "
                         f"{(plan['states'] + plan['copies']) / GB:.1f} GiB of {plan['usable'] / GB:.0f} GiB "
                         f"usable, leaving no room to cache one {seq_len:,}-token sequence. "
                         "Use more GPUs with --fsdp, or a smaller --max_new_tokens")
    if plan["total"] and plan["update"] > plan["usable"]:
        raise SystemExit(f"error: the update would need {plan['update'] / GB:.1f} GiB per GPU, more than the "
                         f"{plan['usable'] / GB:.0f} GiB usable: lower --micro_batch_tokens (now "
                         f"{cfg.micro_batch_tokens}), or use more GPUs with --fsdp")


# -----------------------------------------------------------------------------
# setting up a run

@dataclass
class Run:
    """What the phases of an iteration share."""
    cfg: TrainConfig
    rank: int
    world: int
    device: torch.device
    dtype: torch.dtype
    autocast: object  # a context: bf16 autocast on GPU (without FSDP, which casts itself), else nothing
    tokenizer: object
    rows: list  # the training problems, {problem, answer}, shuffled
    prompts: list  # their token ids
    policy: Qwen2  # fp32 master weights, trained (FSDP shards it in place)
    model: torch.nn.Module  # what the update runs: the policy, or DDP around it
    sampler: Qwen2  # the weights rollouts sample from: the policy, or a copy in the compute dtype
    ref: Qwen2  # the frozen initial model for the KL term (None without it)
    opt: torch.optim.Optimizer
    kv_tokens: int  # the rollout's KV cache budget (None: room for every row)
    state: dict  # iter, step (optimizer steps done) and len0 (first iteration's mean length): checkpointed
    lock: OutDirLock  # this run's hold on out_dir, checked before every write
    log: object  # print on rank 0

    @property
    def sharded(self):
        return self.cfg.fsdp and dist.is_initialized()


def load_prompts(cfg, tokenizer, config, log):
    """The first num_prompts rows, shuffled; the prompt is the paper's raw R1 string (no chat template).
    Prompts longer than max_prompt_tokens are dropped, with a report."""
    rows = load_rows(cfg.dataset, split="train", limit=cfg.num_prompts)
    random.Random(cfg.seed).shuffle(rows)
    prompts = [encode(tokenizer, train_prompt(r["problem"])) for r in rows]
    keep = [i for i, p in enumerate(prompts) if len(p) <= cfg.max_prompt_tokens]
    if len(keep) < len(rows):
        log(f"dropped {len(rows) - len(keep)} prompts longer than --max_prompt_tokens "
            f"{cfg.max_prompt_tokens}")
    rows, prompts = [rows[i] for i in keep], [prompts[i] for i in keep]
    if len(rows) < cfg.prompts_per_iter:
        raise SystemExit(f"error: {len(rows)} usable prompts, fewer than --prompts_per_iter "
                         f"{cfg.prompts_per_iter}")
    try:
        check_context(config, max(map(len, prompts)), cfg.max_new_tokens)
    except ValueError as e:
        raise SystemExit(f"error: {e} (--max_new_tokens, --max_prompt_tokens)")
    return rows, prompts


def setup(cfg, rank, world, device, resume_dir, lock, log):
    """Data, models (policy, sampler, reference), the memory plan, DDP or FSDP, the optimizer, and the
    state of a resumed run."""
    dtype = (getattr(torch, cfg.dtype) if cfg.dtype
             else (torch.bfloat16 if device.type == "cuda" else torch.float32))
    sharded = cfg.fsdp and dist.is_initialized()  # FSDP casts to dtype itself (MixedPrecisionPolicy)
    autocast = torch.autocast("cuda", dtype=dtype) if device.type == "cuda" and not sharded else nullcontext()
    random.seed(cfg.seed)
    torch.manual_seed(cfg.seed)
    log(f"training with {world} rank(s) on {device}, compute dtype {str(dtype)[6:]}, master weights fp32")
    print_config(cfg, file=sys.stdout if rank == 0 else open(os.devnull, "w"))
    toy_model = os.path.join(os.path.dirname(os.path.abspath(__file__)), "toy-model")
    if cfg.model == "toy-model" and rank == 0 and not toy.holds_model(toy_model):
        toy.build_base_model(toy_model)  # the committed base model is missing: build it where model.py looks
    barrier()
    try:
        policy = Qwen2.from_pretrained(resume_dir or cfg.model, device=device, dtype=torch.float32)
        tokenizer = load_tokenizer(policy.source, chat=bool(cfg.eval_benchmark))  # held-out prompts use it
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    if cfg.reward_workers:
        grader.warm_up(cfg.reward_workers)  # the sympy helpers start now, not at the first reward
    rows, prompts = load_prompts(cfg, tokenizer, policy.config, log)
    if cfg.eval_benchmark:  # a typo in it stops the run now, not after the training it would evaluate
        load_rows(cfg.eval_benchmark, split="test", limit=cfg.eval_problems)

    # Models: fp32 master weights to train; a copy in the compute dtype to sample from (the same module
    # on CPU); the frozen initial model for the KL term.
    policy.gradient_checkpointing = cfg.grad_ckpt
    sampler = policy  # FSDP needs an unsharded copy: ranks run different numbers of decode steps
    if dtype != torch.float32 or sharded:
        sampler = (Qwen2.from_pretrained(policy.source, device=device, dtype=dtype)
                   .eval().requires_grad_(False))
    ref = None
    if cfg.kl_coef > 0:
        # Always cfg.model, never the checkpoint a resumed run starts from:
        # the KL anchors to the initial model.
        ref = Qwen2.from_pretrained(cfg.model, device=device, dtype=dtype).eval().requires_grad_(False)
    n_params = sum(p.numel() for p in policy.parameters())
    plan = memory_plan(cfg, policy.config, n_params, world, dtype, gpu_memory(device), sharded)
    check_memory(plan, cfg, policy.config, dtype, device, log)
    model = policy
    if sharded:
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        for layer in policy.model.layers:
            fully_shard(layer, mp_policy=mp)
        fully_shard(policy, mp_policy=mp)
    elif dist.is_initialized():
        from torch.nn.parallel import DistributedDataParallel as DDP
        model = DDP(policy, device_ids=[device.index] if device.type == "cuda" else None,
                    gradient_as_bucket_view=True)  # gradients live in DDP's buckets: no second copy
    opt = torch.optim.AdamW(policy.parameters(), lr=cfg.lr, betas=(0.9, 0.95), eps=1e-8,
                            weight_decay=cfg.weight_decay)
    state = dict(iter=0, step=0, len0=None)
    if resume_dir:
        state = load_checkpoint(resume_dir, policy, opt, rank, sharded)
        log(f"resumed from {resume_dir} at iteration {state['iter']}")
    elif cfg.resume:
        log(f"--resume: no checkpoint in {cfg.out_dir}, starting from {cfg.model}")
    return Run(cfg, rank, world, device, dtype, autocast, tokenizer, rows, prompts, policy, model, sampler,
               ref, opt, plan["kv_tokens"], state, lock, log)


# -----------------------------------------------------------------------------
# the phases of an iteration

def rollout(run, it):
    """G samples of each of this rank's prompts, from the current weights. Returns the rows' indices and
    the completions, grouped by prompt."""
    cfg, P = run.cfg, run.cfg.prompts_per_iter
    first = it * P + run.rank * (P // run.world)
    batch = [(first + j) % len(run.rows) for j in range(P // run.world)]  # the data cursor is the iteration
    comps = generate(run.sampler, [run.prompts[i] for i in batch], n=cfg.group_size,
                     max_new_tokens=cfg.max_new_tokens, eos_token_id=run.tokenizer.eos_token_id,
                     temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed * 1_000_003 + it,
                     sample_offset=run.rank * len(batch) * cfg.group_size, slots=cfg.rollout_slots or None,
                     kv_tokens=run.kv_tokens, cuda_graph=cfg.cuda_graph, progress=run.rank == 0)
    return batch, comps


def score(run, seqs, plens, lengths):
    """Old and reference log-probs of the response tokens, recomputed by the training model (not taken from
    the sampler, whose numerics differ: that difference is logged as the mismatch)."""
    cfg = run.cfg
    old_logp, ref_logp = [], []
    run.policy.eval()
    # the same weights; sharded, ranks would need lock-step
    scorer = run.sampler if run.sharded else run.policy
    with torch.no_grad(), run.autocast:
        packed = [len(x) - 1 for x in seqs]  # positions in the packed forward: prompt and response
        for idxs in micro_batches(range(len(seqs)), packed, cfg.micro_batch_size, cfg.micro_batch_tokens):
            old_logp += sequence_logprobs(scorer, seqs, plens, idxs, cfg.temperature, run.device)
            if run.ref is not None:
                ref_logp += sequence_logprobs(run.ref, seqs, plens, idxs, cfg.temperature, run.device)
    return old_logp, ref_logp


def advantages(run, rewards, old_logp, ref_logp, lengths):
    """Per-token advantages (a list of (len_i,)) and the per-token KL: the leave-one-out advantage of each
    sequence (GRPO-normalised per prompt with --adv_norm group), minus the return-to-go of the k1 KL to the
    initial model, whitened over all ranks' tokens (--adv_norm batch, the default)."""
    cfg = run.cfg
    rewards = torch.tensor(rewards, device=run.device)
    adv_seq = rloo_advantages(rewards, cfg.group_size)
    if cfg.adv_norm == "group":
        adv_seq = group_normalize(adv_seq, rewards, cfg.group_size)
    kl = ([o - r for o, r in zip(old_logp, ref_logp)] if run.ref is not None
          else [torch.zeros_like(o) for o in old_logp])
    adv = [adv_seq[k] - cfg.kl_coef * kl_returns(kl[k]) for k in range(len(old_logp))]
    if cfg.adv_norm == "batch":
        adv = list(whiten(torch.cat(adv), all_sum).split(lengths))
    return adv, kl


def micro_batch_loss(run, batch, idxs, B, n_tokens, last):
    """Forward and backward of one micro-batch (idxs: local sequence indices); returns (loss, clipfrac).

    The loss denominator, in one place: ppo_loss weighs token t of sequence i by
        seq-mean:   1 / (len_i * B)   the mean over each sequence's tokens, then over the minibatch's
                                      sequences
        token-mean: 1 / n_tokens      the mean over all tokens of the minibatch
    with B and n_tokens counted over all ranks, so that the micro-batch losses of all ranks sum to the
    minibatch's loss. DDP and FSDP average gradients over ranks: the backward takes loss * world to make
    that average a sum. An empty micro-batch (padding: micro_batch_schedule) runs sequence 0 at weight 0."""
    cfg, seqs, plens, lengths, old_logp, adv = run.cfg, *batch
    # DDP all-reduces at the last micro-batch only; FSDP reduce-scatters every one, so that accumulated
    # gradients stay sharded (unsharded fp32 ones would need 4 B/param per GPU: 30 GB at 7B)
    sync = run.model.no_sync() if run.model is not run.policy and not last else nullcontext()
    ids = idxs or [0]
    with sync, run.autocast:
        logp = torch.cat(sequence_logprobs(run.model, seqs, plens, ids, cfg.temperature, run.device))
        weight = agg_weights([lengths[i] for i in ids], cfg.loss_agg, B, n_tokens).to(run.device) * bool(idxs)
        loss, clipfrac = ppo_loss(logp, torch.cat([old_logp[i] for i in ids]),
                                  torch.cat([adv[i] for i in ids]), weight, cfg.clip_eps)
        (loss * run.world).backward()
    return loss.detach(), clipfrac.detach()


def update(run, batch, it):
    """PPO: the rollout batch shuffled into minibatches of train_batch_size sequences, one optimizer step
    each, for `epochs` passes. Minibatches are drawn from the global batch in an order that does not depend
    on the number of ranks; each rank runs the members it holds. Returns the mean loss, clip fraction and
    gradient norm over the steps, and the last learning rate."""
    cfg, P, G, B = run.cfg, run.cfg.prompts_per_iter, run.cfg.group_size, run.cfg.train_batch_size
    seqs, lengths = batch[0], batch[2]
    n_local = P // run.world * G  # sequences of this rank; its global ids start at rank * n_local
    # every rank's response lengths (the loss denominator) and packed positions (the micro-batch cap)
    both = torch.zeros(2, P * G, dtype=torch.long, device=run.device)
    both[:, run.rank * n_local:(run.rank + 1) * n_local] = torch.tensor([lengths, [len(x) - 1 for x in seqs]],
                                                                        device=run.device)
    all_lengths, all_packed = all_sum(both).tolist()
    run.policy.train()
    upd = torch.zeros(3, device=run.device)  # loss, clipfrac, grad-norm summed over minibatches
    for epoch in range(cfg.epochs):
        perm = torch.randperm(P * G, generator=torch.Generator().manual_seed(cfg.seed + 1000 * it + epoch))
        for mb in range(P * G // B):
            members = perm[mb * B:(mb + 1) * B].tolist()
            n_tokens = sum(all_lengths[g] for g in members)
            schedule = micro_batch_schedule(members, all_packed, n_local, run.rank, run.world,
                                            cfg.micro_batch_size, cfg.micro_batch_tokens)
            for j, idxs in enumerate(schedule):
                upd[:2] += torch.stack(micro_batch_loss(run, batch, idxs, B, n_tokens,
                                                        j == len(schedule) - 1))
            grad_norm = torch.nn.utils.clip_grad_norm_(run.policy.parameters(), cfg.grad_clip)
            grad_norm = grad_norm.full_tensor() if hasattr(grad_norm, "full_tensor") else grad_norm
            if not torch.isfinite(grad_norm):  # the same global norm on every rank: all stop here
                raise SystemExit(f"error: the gradient norm is {grad_norm.item()} at iteration {it + 1}, "
                                 f"optimizer step {run.state['step']}: the run stops before this step, "
                                 "and nothing is saved over the last checkpoint. "
                                 "Look at --lr, --dtype and the data")
            upd[2] += grad_norm
            lr = get_lr(run.state["step"], cfg)
            for group in run.opt.param_groups:
                group["lr"] = lr
            run.opt.step()
            run.opt.zero_grad(set_to_none=True)
            run.state["step"] += 1
    if run.sampler is not run.policy:  # the next rollout samples from the updated weights
        with torch.no_grad():
            for ps, p in zip(run.sampler.parameters(), run.policy.parameters()):
                ps.copy_(p.full_tensor() if hasattr(p, "full_tensor") else p)
    n_steps = cfg.epochs * P * G // B
    loss, clipfrac = (all_sum(upd[:2]) / n_steps).tolist()
    return dict(loss=loss, clipfrac=clipfrac, grad_norm=upd[2].item() / n_steps, lr=lr)


# Why a finished response earned 0 (reward.group_rewards' "why", besides "truncated" and "correct")
ZERO_REWARD = ("no_box", "unparseable", "timeout", "wrong")


def iteration_metrics(run, it, comps, R, kl, old_logp, upd, times):
    """Every logged number of an iteration: sums (and maxima) over all ranks in one reduction each."""
    G = run.cfg.group_size
    corr = torch.tensor(R["correct"], dtype=torch.bool)
    lens = torch.tensor([len(c.tokens) for c in comps], dtype=torch.float)
    groups = corr.view(-1, G)
    kl_tok = torch.cat(kl)
    # the sampler/trainer mismatch: the same tokens' log-probs at sampling and as the trainer recomputes them
    gap = torch.cat(old_logp).cpu() - torch.tensor([lp for c in comps for lp in c.logprobs])
    sums = dict(reward=sum(R["rewards"]), correct=corr.sum(), samples=len(comps), tokens=lens.sum(),
                tokens_correct=(lens * corr).sum(), n_correct=corr.sum(), tokens_wrong=(lens * ~corr).sum(),
                n_wrong=(~corr).sum(), truncated=len(comps) - sum(c.finished for c in comps),
                all_correct=groups.all(1).sum(), all_wrong=(~groups).all(1).sum(), groups=len(groups),
                kl=kl_tok.sum().item(), kl_tokens=kl_tok.numel(), gap=gap.abs().sum().item(),
                **{why: R["why"].count(why) for why in ZERO_REWARD})
    s = dict(zip(sums, all_sum(torch.tensor([float(v) for v in sums.values()], dtype=torch.float64,
                                            device=run.device)).tolist()))
    # the largest importance ratio between the two, either way: exp |gap|
    max_ratio = all_max(torch.tensor(gap.abs().max().exp().item() if len(gap) else 1.0,
                                     device=run.device)).item()
    n = s["samples"]
    run.state["len0"] = run.state["len0"] or s["tokens"] / n
    return dict(iter=it + 1, reward=s["reward"] / n, accuracy=s["correct"] / n, mean_len=s["tokens"] / n,
                len_correct=s["tokens_correct"] / max(s["n_correct"], 1),
                len_wrong=s["tokens_wrong"] / max(s["n_wrong"], 1), truncated=s["truncated"] / n,
                all_correct=s["all_correct"] / s["groups"], all_wrong=s["all_wrong"] / s["groups"],
                kl=s["kl"] / max(s["kl_tokens"], 1), **upd, step=run.state["step"], loss_agg=run.cfg.loss_agg,
                mismatch=s["gap"] / max(s["tokens"], 1), mismatch_max_ratio=max_ratio,
                **{why: s[why] / n for why in ZERO_REWARD},
                time=times.total(), **{f"t_{k}": v for k, v in times.laps.items()})


def log_iteration(run, m, batch_rows, comps, texts, R):
    """One line on stdout; metrics.jsonl, a few samples in samples.jsonl and wandb on rank 0."""
    cfg = run.cfg
    run.log(f"iter {m['iter']:03d}/{cfg.iters} | reward {m['reward']:.3f} | acc {m['accuracy']:.3f} | "
            f"len {m['mean_len']:,.0f} ({m['mean_len'] / run.state['len0'] - 1:+.0%}) | "
            f"len+ {m['len_correct']:,.0f} len- {m['len_wrong']:,.0f} | "
            f"0 reward: trunc {m['truncated']:.0%} nobox {m['no_box']:.0%} unparsed {m['unparseable']:.0%} "
            f"timeout {m['timeout']:.0%} wrong {m['wrong']:.0%} | "
            f"all+ {m['all_correct']:.0%} all- {m['all_wrong']:.0%} | kl {m['kl']:.4f} | "
            f"clip {m['clipfrac']:.3f} | "
            f"lr {m['lr']:.0e} | mismatch {m['mismatch']:.1e} (max ratio {m['mismatch_max_ratio']:.2f}) | "
            f"{m['time']:.1f}s (rollout {m['t_rollout']:.1f}s, logp {m['t_logprobs']:.1f}s, "
            f"update {m['t_update']:.1f}s)")
    if run.rank != 0:
        return
    run.lock.check()
    with open(os.path.join(cfg.out_dir, "metrics.jsonl"), "a") as f:
        f.write(json.dumps(m) + "\n")
    with open(os.path.join(cfg.out_dir, "samples.jsonl"), "a") as f:
        for k in range(min(2, len(comps))):
            row = run.rows[batch_rows[k // cfg.group_size]]
            f.write(json.dumps(dict(iter=m["iter"], problem=row["problem"], gold=row["answer"],
                                    response=texts[k], tokens=len(comps[k].tokens),
                                    finished=comps[k].finished, correct=R["correct"][k],
                                    reward=R["rewards"][k])) + "\n")
    if cfg.wandb:
        import wandb
        wandb.log({k: v for k, v in m.items() if not isinstance(v, str)}, step=m["iter"])


class Stopwatch:
    """Seconds per phase of an iteration."""

    def __init__(self):
        self.start = self.last = time.time()
        self.laps = {}

    def lap(self, name):
        self.laps[name], self.last = time.time() - self.last, time.time()

    def total(self):
        return time.time() - self.start


# -----------------------------------------------------------------------------
# the RL loop

def main(argv):
    cfg = get_config(argv)
    rank, world, device = init_distributed(cfg.device, cfg.dist_timeout_min)
    log = print if rank == 0 else (lambda *a, **k: None)
    if cfg.cuda_graph and device.type != "cuda":
        raise SystemExit(f"error: --cuda_graph true needs a CUDA device, and this run is on {device}")
    if cfg.prompts_per_iter % world or cfg.train_batch_size % world:
        raise SystemExit(f"error: --prompts_per_iter {cfg.prompts_per_iter} and --train_batch_size "
                         f"{cfg.train_batch_size} must be divisible by the {world} ranks")
    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    lock = OutDirLock(cfg.out_dir, rank, device, log)  # before anything in out_dir is read or written
    final_evaluated = lambda: not cfg.eval_benchmark or evaluation.read_metrics(  # noqa: E731
        os.path.join(cfg.out_dir, "eval_final.json")) is not None
    resume_dir = on_rank0(lambda: check_out_dir(cfg, final_evaluated, log))
    if resume_dir == "finished":
        return lock.release()
    run = setup(cfg, rank, world, device, resume_dir, lock, log)
    tokenizer, G, state = run.tokenizer, cfg.group_size, run.state
    if rank == 0:
        lock.check()
        truncate_logs(cfg.out_dir, state["iter"])
        with open(os.path.join(cfg.out_dir, "config.json"), "w") as f:
            json.dump(dataclasses.asdict(cfg), f, indent=2)
        if cfg.wandb:
            import wandb
            wandb.init(project=cfg.wandb_project, config=dataclasses.asdict(cfg), resume="allow")
    summary = {}
    # measured once, before any training (a resumed run reads it back)
    if cfg.eval_benchmark and cfg.eval_initial:
        summary["initial"] = held_out(run, "initial", cfg.model, reuse=state["iter"] > 0)

    for it in range(state["iter"], cfg.iters):
        times = Stopwatch()
        # ---- rollout: G samples of each of this rank's prompts, from the current weights
        batch_rows, comps = rollout(run, it)
        times.lap("rollout")

        # ---- reward: correctness (EOS and the boxed answer) and the length penalty, per group
        texts = tokenizer.batch_decode([c.tokens for c in comps], skip_special_tokens=True)
        golds = [run.rows[i]["answer"] for i in batch_rows for _ in range(G)]
        lengths = [len(c.tokens) for c in comps]
        R = reward.group_rewards(texts, golds, lengths, [c.finished for c in comps], G, cfg.alpha,
                                 processes=cfg.reward_workers)
        times.lap("reward")

        # ---- old and reference log-probs, recomputed by the training model on the sampled tokens
        seqs = [run.prompts[batch_rows[k // G]] + c.tokens for k, c in enumerate(comps)]
        plens = [len(run.prompts[batch_rows[k // G]]) for k in range(len(comps))]
        old_logp, ref_logp = score(run, seqs, plens, lengths)
        times.lap("logprobs")

        # ---- advantages: leave-one-out baseline, k1 KL folded into the reward, whitening over all ranks
        adv, kl = advantages(run, R["rewards"], old_logp, ref_logp, lengths)

        # ---- update: PPO's clipped surrogate, one optimizer step per minibatch; then the sampler's weights
        upd = update(run, (seqs, plens, lengths, old_logp, adv), it)
        times.lap("update")

        # ---- log: every number is reduced over ranks
        m = iteration_metrics(run, it, comps, R, kl, old_logp, upd, times)
        log_iteration(run, m, batch_rows, comps, texts, R)

        # ---- checkpoint
        state["iter"] = it + 1
        if cfg.save_every and (it + 1) % cfg.save_every == 0 and it + 1 < cfg.iters:
            save_checkpoint(os.path.join(cfg.out_dir, f"iter_{it + 1:06d}"), cfg, run.policy, run.opt, state,
                            rank, lock)

    final = os.path.join(cfg.out_dir, "final")
    save_checkpoint(final, cfg, run.policy, run.opt, state, rank, lock)
    log(f"saved {final}")
    if dist.is_initialized() and not run.sharded:  # DDP replicas must hold the same weights: check, not trust
        sums = torch.stack([p.detach().double().sum() for p in run.policy.parameters()])
        log(f"weights identical on all {world} ranks: {torch.equal(all_max(sums.clone()), -all_max(-sums))}")
    if cfg.eval_benchmark:
        summary["final"] = held_out(run, "final", final)
        if rank == 0 and summary.get("initial"):
            with open(os.path.join(cfg.out_dir, "summary.json"), "w") as f:
                json.dump(dict(init_model=cfg.model, final_model=final, **summary), f, indent=2)
            log("\n" + evaluation.before_after_table(summary["initial"], summary["final"], cfg.eval_benchmark,
                                                     cfg.eval_problems, cfg.eval_temperature, cfg.alpha))
    lock.release()
    if rank == 0 and cfg.wandb:
        import wandb
        wandb.finish()  # else the run shows as crashed and its last metrics may be lost


def held_out(run, name, label, reuse=False):
    """eval.py's evaluation of the held-out problems into out_dir/eval_{name}.json; its metrics on rank 0.
    reuse: read back what a resumed run measured before (None if it never did)."""
    cfg, out = run.cfg, os.path.join(run.cfg.out_dir, f"eval_{name}.json")
    if reuse:
        return evaluation.read_metrics(out)
    if run.rank == 0:
        run.lock.check()
    m = evaluation.held_out(run.sampler, run.tokenizer, cfg.eval_benchmark, cfg.eval_problems, out, label,
                            cfg.max_new_tokens, cfg.eval_temperature, cfg.eval_seed, run.rank, run.world)
    if m:
        run.log(f"{name} model: held-out accuracy {m['accuracy']:.3f}, mean tokens {m['mean_tokens']:.1f}")
    return m


if __name__ == "__main__":
    main(sys.argv[1:])
    finish()
