"""
Speed and memory at the real shapes with random weights (speed does not depend on their values): the
sampler against its own lock-step mode and transformers `generate` on the same work, one PPO update step
(its peak memory against train.memory_plan's), the Triton decode kernel's launch configurations, and two
rollouts with an update between, as train.py's memory plan sizes them.

    python bench.py sample --shape r1-1.5b --batch 64,256 --lengths heavy    # one GPU (bf16);
                                                                             # also --lengths fixed
    python bench.py sample --shape r1-7b --batch 64 --repeats 1
    python bench.py train --shape r1-1.5b                                    # one GPU; tokens/s and MFU
    torchrun --nproc_per_node=1 bench.py train --shape r1-7b --fsdp true --adam false --tokens 32768
    python bench.py kernel --shape r1-1.5b --batch 64,256 --max_new_tokens 8192   # CUDA, Triton
    python bench.py rollouts --shape r1-1.5b --prompts 32 --prompt_len 512 --max_new_tokens 32000
    OMP_NUM_THREADS=1 python bench.py sample --shape 10m --prompts 64 --lengths heavy   # CPU, about 5 minutes
    OMP_NUM_THREADS=1 python bench.py train --shape 10m                                 # CPU, seconds
    python bench.py sample --shape tiny --repeats 1                          # CI-sized

Random weights never emit EOS, so the lengths are forced: the last prompt token c (1 <= c <= max_new_tokens)
starts a countdown. A +1e4 logit bias makes token c followed by c - 1, and token 1 by EOS, so each response
is exactly c tokens long (EOS included) whatever the batching; `ForcedLengths` applies it to our model,
`force_countdown` as a logits processor to transformers. Both do the full forward, lm_head and sampling.
On CUDA without flash-attn, `cont. SDPA gather` also times paged decoding through SDPA (each row's pages
gathered per layer) against the Triton kernel that is the default there (paged_attention.py).
Lengths are all max_new_tokens (fixed) or lognormal, median max_new_tokens / 8, sigma 1.2, clipped (heavy:
most short, a few at the limit). Bandwidth utilisation counts, per decode step, every weight but the
embedding table once, plus the keys and values each generated token must attend to, over the bandwidth of
a large tensor copy on the device. MFU counts 6 x non-embedding params x tokens + causal attention,
over the bf16 dense peak of the GPU (table below) or a measured fp32 matmul on CPU. Every figure is the
median of --repeats runs after a warm-up; the last line of output is all of them as JSON.
"""
import json
import os
import statistics
import sys
import time
from contextlib import nullcontext
from dataclasses import asdict, dataclass, replace

import numpy as np
import torch
import torch.distributed as dist
import torch.nn as nn

import paged_attention
from configurator import check, check_device, parse_args, print_config
from distributed import finish, init_distributed
from model import KVCache, Qwen2, Qwen2Config
from sample import generate, gpu_memory
from train import TrainConfig, agg_weights, memory_plan, ppo_loss, sequence_logprobs

SHAPES = {  # 10m: 11.5M parameters, 7.3M of them outside the embedding; vocab / hidden = 64 as in R1 (99)
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2, vocab_size=512),
    "10m": dict(hidden_size=256, intermediate_size=768, num_hidden_layers=4, num_attention_heads=4,
                num_key_value_heads=2, vocab_size=16384),
    "r1-1.5b": dict(hidden_size=1536, intermediate_size=8960, num_hidden_layers=28, num_attention_heads=12,
                    num_key_value_heads=2, vocab_size=151936),
    "r1-7b": dict(hidden_size=3584, intermediate_size=18944, num_hidden_layers=28, num_attention_heads=28,
                  num_key_value_heads=4, vocab_size=152064),
}
DEFAULT_MAX_NEW = {"tiny": 24, "10m": 512, "r1-1.5b": 1024, "r1-7b": 1024}
DEFAULT_TRAIN_TOKENS = {"tiny": 256, "10m": 8192, "r1-1.5b": 32768, "r1-7b": 8192}
# bf16 dense
GPU_PEAK_TFLOPS = [("H200", 989), ("H100 PCIe", 756), ("H100 NVL", 835), ("H100", 989), ("A100", 312)]
EOS = 0  # countdown tokens are 1..max_new_tokens; prompt bodies use the ids above
FORCE = 1e4


@dataclass
class BenchConfig:
    shape: str = "10m"  # tiny | 10m | r1-1.5b | r1-7b
    batch: str = "16,64"  # comma-separated decode batch sizes: our slots, lock-step and HF batch size
    lengths: str = "heavy"  # fixed (every response max_new_tokens) | heavy (lognormal, clipped)
    prompts: int = 64  # responses per run (one per prompt)
    prompt_len: int = 128  # prompt lengths are uniform in [prompt_len / 2, prompt_len] tokens
    max_new_tokens: int = 0  # 0 = the shape's default (tiny 24, 10m 512, r1 1024)
    temperature: float = 0.0  # 0 = greedy, in both samplers
    hf: bool = True  # also run transformers generate
    cuda_graph: bool = True  # on a GPU, also our continuous sampler replaying CUDA graphs of the decode step
    compile: bool = False  # also our continuous sampler with torch.compile'd decode steps
    #                        (and graphs on a GPU)
    profile: bool = False  # sample: after the timings, the operators that take the most time in one eager run
    hf_cache: str = "static"  # static | dynamic | static,dynamic: transformers' KV cache;
    #                           ratios use the fastest
    tokens: int = 0  # train: packed tokens per update step; 0 = the shape's default
    adam: bool = True  # train: include the AdamW step (8 bytes/param of state: turn off for 7B on one GPU)
    fsdp: bool = False  # train: shard with FSDP2 as train.py --fsdp does
    #                     (under torchrun; one process will do)
    repeats: int = 3  # timed runs after one warm-up; the median is reported
    device: str = ""  # "" = cuda if available, else cpu
    dtype: str = ""  # "" = bfloat16 on GPU, float32 on CPU (train: the autocast dtype; weights are fp32)
    seed: int = 0

    def __post_init__(self):
        if self.shape not in SHAPES:
            raise ValueError(f"--shape must be one of {', '.join(SHAPES)}, got {self.shape!r}")
        if (self.lengths not in ("fixed", "heavy")
                or not set(self.hf_cache.split(",")) <= {"static", "dynamic"}):
            raise ValueError("--lengths must be fixed or heavy, --hf_cache static or dynamic")
        self.max_new_tokens = self.max_new_tokens or DEFAULT_MAX_NEW[self.shape]
        self.tokens = self.tokens or DEFAULT_TRAIN_TOKENS[self.shape]
        if self.max_new_tokens + 1 >= SHAPES[self.shape]["vocab_size"] or self.prompt_len < 4:
            raise ValueError("the countdown needs max_new_tokens < vocab_size - 1, and --prompt_len >= 4")
        check(self, [(k, getattr(self, k) >= 1, ">= 1") for k in ("prompts", "repeats", "max_new_tokens", "tokens")])
        if not all(b.strip().isdigit() and int(b) >= 1 for b in self.batch.split(",")):
            raise ValueError(f"--batch takes comma-separated positive batch sizes, got {self.batch!r}")
        if self.dtype not in ("", "float32", "bfloat16", "float16"):
            raise ValueError(f"--dtype must be float32, bfloat16 or float16, got {self.dtype!r}")
        if self.temperature < 0:
            raise ValueError(f"--temperature must be >= 0 (0 = greedy), got {self.temperature}")
        check_device(self.device)


def build_model(shape, device, dtype, seed):
    cfg = Qwen2Config(**SHAPES[shape], bos_token_id=1, eos_token_id=EOS, torch_dtype=str(dtype)[6:])
    torch.manual_seed(seed)
    default = torch.get_default_dtype()
    torch.set_default_dtype(dtype)  # initialise in place at the final dtype and device: 7B fits once
    try:
        with torch.device(device):
            return Qwen2(cfg)
    finally:
        torch.set_default_dtype(default)


def force_countdown(last, logits, max_count):
    """In place on logits (B, V): +FORCE on the token that follows last (B,) in the countdown.
    scatter_add with a zero for rows outside it, so no host sync."""
    on = (last >= 1) & (last <= max_count)
    nxt = torch.where(last > 1, last - 1, EOS)
    logits.scatter_add_(1, nxt[:, None], (on * FORCE).to(logits.dtype)[:, None])
    return logits


class ForcedLengths(nn.Module):
    """Our model with the countdown on its last-position logits."""

    def __init__(self, model, max_count):
        super().__init__()
        self.inner, self.max_count = model, max_count

    config = property(lambda self: self.inner.config)
    lm_head = property(lambda self: self.inner.lm_head)

    def forward(self, idx, **kw):
        logits = self.inner(idx, **kw)
        force_countdown(idx[:, -1], logits[:, -1], self.max_count)
        return logits


class HFCountdown:
    """The same countdown as a transformers logits processor; one call per decode step."""

    def __init__(self, max_count):
        self.max_count, self.steps = max_count, 0

    def __call__(self, input_ids, scores):
        self.steps += 1
        return force_countdown(input_ids[:, -1], scores, self.max_count)


def hf_twin(model, attn):
    """transformers Qwen2ForCausalLM sharing our model's weight tensors (no second copy in memory)."""
    from transformers import Qwen2Config as HFConfig
    from transformers import Qwen2ForCausalLM
    from transformers.models.qwen2.modeling_qwen2 import Qwen2RotaryEmbedding
    w = model.lm_head.weight
    hf_cfg = HFConfig(**{k: v for k, v in model.config.to_hf().items()
                         if k not in ("torch_dtype", "rope_theta")},
                      rope_parameters={"rope_type": "default", "rope_theta": model.config.rope_theta},
                      dtype=str(w.dtype)[6:], pad_token_id=EOS)
    hf_cfg._attn_implementation = attn
    with torch.device("meta"):
        hf = Qwen2ForCausalLM(hf_cfg)
    hf.load_state_dict(model.state_dict(), strict=True, assign=True)
    hf.model.rotary_emb = Qwen2RotaryEmbedding(hf_cfg).to(w.device)  # its buffers were made on meta
    return hf.eval()


def response_lengths(gen):
    """Tokens up to and including the first EOS of each row of gen (B, T); T where there is none."""
    is_eos = gen == EOS
    first = is_eos.int().argmax(1)
    return torch.where(is_eos.any(1), first + 1, gen.shape[1]).tolist()


def run_ours(ours, prompts, batch, cfg, continuous, **kw):
    """Our sampler with batch slots. Returns (response lengths, decode steps, CUDA graph counts)."""
    stats = {}
    comps = generate(ours, prompts, max_new_tokens=cfg.max_new_tokens, eos_token_id=EOS,
                     temperature=cfg.temperature, seed=cfg.seed, slots=batch, continuous=continuous,
                     stats=stats, **kw)
    return ([len(c.tokens) for c in comps], stats["decode_steps"],
            dict(graphs=stats["graphs"], capture_seconds=stats["capture_seconds"]))


def without_triton(fn):
    """Run fn with paged decoding through SDPA (each row's pages gathered per layer), not the Triton
    kernel."""
    paged_attention.use_triton = False
    try:
        return fn()
    finally:
        paged_attention.use_triton = True


def run_hf(hf, prompts, batch, cfg, cache):
    """transformers generate, batch by batch, left-padded to the longest prompt of all (fixed shapes: one
    compiled graph on GPU). Returns (response lengths, decode steps, {})."""
    from transformers import LogitsProcessorList
    device, L, lens, proc = hf.device, max(len(p) for p in prompts), [], HFCountdown(cfg.max_new_tokens)
    sampling = dict(do_sample=True, temperature=cfg.temperature, top_k=0, top_p=1.0) if cfg.temperature else \
        dict(do_sample=False)
    for a in range(0, len(prompts), batch):
        chunk = prompts[a:a + batch]
        ids = torch.tensor([[EOS] * (L - len(p)) + p for p in chunk], device=device)
        mask = torch.tensor([[0] * (L - len(p)) + [1] * len(p) for p in chunk], device=device)
        out = hf.generate(ids, attention_mask=mask, max_new_tokens=cfg.max_new_tokens, eos_token_id=EOS,
                          pad_token_id=EOS, logits_processor=LogitsProcessorList([proc]),
                          cache_implementation=cache, **sampling)
        lens += response_lengths(out[:, L:])
    return lens, proc.steps, {}


def target_lengths(cfg, n, rng):
    if cfg.lengths == "fixed":
        return np.full(n, cfg.max_new_tokens)
    t = np.round(rng.lognormal(np.log(cfg.max_new_tokens / 8), 1.2, n))
    return np.clip(t, 1, cfg.max_new_tokens).astype(int)


def sync(device):
    if device.type == "cuda":
        torch.cuda.synchronize()


def timed(fn, device):
    """One call: wall seconds, peak memory in MiB (GPU: allocated; CPU: resident set of the process), its
    result, and CPU seconds of this process (on a shared CPU machine the steadier figure)."""
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    else:
        with open("/proc/self/clear_refs", "w") as f:  # Linux: "5" resets the peak resident set (VmHWM)
            f.write("5")
    sync(device)
    t0, c0 = time.perf_counter(), time.process_time()
    out = fn()
    sync(device)
    wall, cpu = time.perf_counter() - t0, time.process_time() - c0
    if device.type == "cuda":
        return wall, torch.cuda.max_memory_allocated() / 2**20, out, cpu
    with open("/proc/self/status") as f:
        return wall, next(int(l.split()[1]) for l in f if l.startswith("VmHWM")) / 2**10, out, cpu


def best_seconds(fn, device, n=6):
    return min(timed(fn, device)[0] for _ in range(n))


def bandwidth(device):
    """Bytes/s of a large copy (read + write)."""
    n = 2**28 if device.type == "cuda" else 2**26  # fp32 elements: 1 GiB on GPU, 256 MiB on CPU
    a, b = torch.ones(n, device=device), torch.empty(n, device=device)
    return 2 * 4 * n / best_seconds(lambda: b.copy_(a), device)


def peak_flops(device, dtype):
    """The GPU's bf16 dense peak from the table, else a measured matmul (CPU, unknown GPU, fp32)."""
    if device.type == "cuda" and dtype == torch.bfloat16:
        name = torch.cuda.get_device_name(device)
        for key, tflops in GPU_PEAK_TFLOPS:
            if key in name:
                return tflops * 1e12, f"{name} bf16 dense peak"
    n = 4096 if device.type == "cuda" else 1024
    a = torch.randn(n, n, device=device, dtype=dtype)
    return 2 * n**3 / best_seconds(lambda: a @ a, device), f"measured {n}x{n} {str(dtype)[6:]} matmul"


def bench_sample(cfg, device, dtype):
    model = build_model(cfg.shape, device, dtype, cfg.seed).eval()
    mc, rng = model.config, np.random.default_rng(cfg.seed)
    targets = target_lengths(cfg, cfg.prompts, rng)
    plens = rng.integers(cfg.prompt_len // 2, cfg.prompt_len + 1, cfg.prompts)
    prompts = [rng.integers(cfg.max_new_tokens + 1, mc.vocab_size, p - 1).tolist() + [int(t)]
               for p, t in zip(plens, targets)]
    warm = [p[:-1] + [min(p[-1], 4)] for p in prompts]  # the same shapes, 4 tokens each
    weight_bytes = sum(p.numel() * p.element_size() for n, p in model.named_parameters() if "embed" not in n)
    kv_token = KVCache.bytes_per_token(mc, dtype)
    # keys and values each generated token attends to: the prompt but its last token, and the response so far
    kv_bytes = kv_token * sum(t * (p - 1) + t * (t + 1) // 2
                              for p, t in zip(plens.tolist(), targets.tolist()))
    bw = bandwidth(device)
    print(f"{cfg.prompts} prompts of {plens.min()}-{plens.max()} tokens | responses ({cfg.lengths}): "
          f"{targets.sum():,} tokens, mean {targets.mean():.0f}, median {np.median(targets):.0f}, "
          f"{(targets == cfg.max_new_tokens).sum()} at the limit {cfg.max_new_tokens} | "
          f"weights {weight_bytes / 2**20:,.0f} MiB/step | copy bandwidth {bw / 1e9:,.1f} GB/s | decoding: "
          f"{paged_attention.decode_path(mc, device, dtype)}")

    ours = ForcedLengths(model, cfg.max_new_tokens)
    hf = hf_twin(model, "sdpa") if cfg.hf else None
    runs, ratios, cuda = [], [], device.type == "cuda"
    for B in [int(b) for b in cfg.batch.split(",")]:
        methods = {"continuous": lambda ps: run_ours(ours, ps, B, cfg, True),
                   "lock-step": lambda ps: run_ours(ours, ps, B, cfg, False)}
        if cfg.cuda_graph and cuda:
            methods["cont. graphs"] = lambda ps: run_ours(ours, ps, B, cfg, True, cuda_graph=True)
        # the Triton kernel against SDPA
        if cuda and paged_attention.triton and paged_attention.flash_attn is None:
            methods["cont. SDPA gather"] = lambda ps: without_triton(lambda: run_ours(ours, ps, B, cfg, True,
                                                                                      paged=True))
        if cfg.compile:
            methods["cont. compiled" + " + graphs" * cuda] = lambda ps: run_ours(
                ours, ps, B, cfg, True, compile=True, cuda_graph=cuda)
        for c in cfg.hf_cache.split(",") if hf is not None else []:
            methods[f"HF {c}"] = lambda ps, c=c: run_hf(hf, ps, B, cfg, c)
        for fn in methods.values():
            fn(warm)
        # Interleaved repeats: a slow spell on a shared machine then hits every method alike.
        meas = {name: [] for name in methods}
        for _ in range(cfg.repeats):
            for name, fn in methods.items():
                meas[name].append(timed(lambda: fn(prompts), device))  # (seconds, peak MiB, result, CPU s)
                # a timeout still leaves these
                print(f"  batch {B} | {name}: {meas[name][-1][0]:.2f} s", flush=True)
        row = {}
        for name, m in meas.items():
            sec, cpu = statistics.median(x[0] for x in m), statistics.median(x[3] for x in m)
            peak, (lens, steps, graphs) = max(x[1] for x in m), m[-1][2]
            if lens != targets.tolist():  # the same work or no comparison
                bad = next(i for i, (a, b) in enumerate(zip(lens, targets)) if a != b)
                raise SystemExit(f"error: {name} generated {lens[bad]} tokens for prompt {bad}, "
                                 f"forced {targets[bad]}")
            tokens = sum(lens)
            r = dict(batch=B, method=name, tokens=tokens, seconds=sec, tokens_per_s=tokens / sec,
                     decode_steps=steps, ms_per_step=1e3 * sec / steps,
                     bw_util=(steps * weight_bytes + kv_bytes) / sec / bw, peak_mem_mib=peak,
                     cpu_seconds=cpu, all_seconds=[x[0] for x in m], **graphs)
            row[name] = r
            runs.append(r)
            print(f"batch {B:>4} | {name:<14} | {tokens:>8,} tokens | {sec:8.2f} s"
                  f" | {r['tokens_per_s']:>9,.0f} tok/s | {steps:>6,} steps | {r['ms_per_step']:7.2f} ms/step"
                  f" | BW {r['bw_util']:6.1%} | peak {peak:>8,.0f} MiB"
                  + (f" | CPU {cpu:.2f} s" if device.type == "cpu" else "")
                  + (f" | {graphs['graphs']} graphs captured in {graphs['capture_seconds']:.2f} s"
                     if graphs.get("graphs") else ""))
        ratio = dict(batch=B, continuous_vs_lockstep=(row["continuous"]["tokens_per_s"]
                                                      / row["lock-step"]["tokens_per_s"]))
        vs_eager = {name[6:]: r["tokens_per_s"] / row["continuous"]["tokens_per_s"]  # faster decode steps
                    for name, r in row.items() if name.startswith("cont. ")}
        ratio.update({"_".join(k.replace("+", " ").split()) + "_vs_eager": v for k, v in vs_eager.items()})
        if hf is not None:  # our fastest continuous mode against the fastest transformers configuration
            ratio["ours_vs_hf"] = (
                max(r["tokens_per_s"] for name, r in row.items() if name.startswith("cont"))
                / max(r["tokens_per_s"] for name, r in row.items() if name.startswith("HF")))
        ratios.append(ratio)
        print(f"batch {B:>4} | continuous / lock-step {ratio['continuous_vs_lockstep']:.2f}x"
              + "".join(f" | {k} / eager {v:.2f}x" for k, v in vs_eager.items())
              + (f" | ours / HF {ratio['ours_vs_hf']:.2f}x" if "ours_vs_hf" in ratio else ""))
    if cfg.profile:  # where an eager decode step's time goes: 32 steps at the last batch size
        profile_top_ops(lambda: run_ours(ours, prompts[:B], B, replace(cfg, max_new_tokens=32), True), device)
    return dict(bandwidth_gb_s=bw / 1e9, weight_mib=weight_bytes / 2**20, runs=runs, ratios=ratios)


def profile_top_ops(fn, device, rows=15):
    from torch.profiler import ProfilerActivity, profile
    cuda = device.type == "cuda"
    with profile(activities=[ProfilerActivity.CPU] + [ProfilerActivity.CUDA] * cuda) as prof:
        fn()
        sync(device)
    print(prof.key_averages().table(sort_by="self_cuda_time_total" if cuda else "self_cpu_time_total",
                                    row_limit=rows))


def bench_train(cfg, device, dtype):
    """One PPO update on one packed micro-batch, as train.py runs it: fp32 master weights, autocast to the
    compute dtype on GPU, activation checkpointing, chunked log-probs, AdamW."""
    model = build_model(cfg.shape, device, torch.float32, cfg.seed)
    model.gradient_checkpointing = True
    mc, rng = model.config, np.random.default_rng(cfg.seed)
    n_all = sum(p.numel() for p in model.parameters())
    if cfg.fsdp:  # as train.py shards it: each layer, then the whole model; the compute dtype in the forward
        from torch.distributed.fsdp import MixedPrecisionPolicy, fully_shard
        mp = MixedPrecisionPolicy(param_dtype=dtype, reduce_dtype=torch.float32)
        for layer in model.model.layers:
            fully_shard(layer, mp_policy=mp)
        fully_shard(model, mp_policy=mp)
    seqs, plens = [], []
    while sum(map(len, seqs)) < cfg.tokens:  # prompts and heavy-tailed responses until the token budget
        p = int(rng.integers(cfg.prompt_len // 2, cfg.prompt_len + 1))
        r = min(int(target_lengths(cfg, 1, rng)[0]), cfg.tokens - sum(map(len, seqs)) - p)
        if r < 1:
            break
        seqs.append(rng.integers(2, mc.vocab_size, p + r).tolist())
        plens.append(p)
    idxs, lengths = list(range(len(seqs))), [len(s) - p for s, p in zip(seqs, plens)]
    T = sum(map(len, seqs)) - len(seqs)  # positions in the packed forward (each sequence but its last token)
    autocast = torch.autocast("cuda", dtype=dtype) if device.type == "cuda" and dtype != torch.float32 and \
        not cfg.fsdp else nullcontext()
    opt = torch.optim.AdamW(model.parameters(), lr=1e-6, betas=(0.9, 0.95)) if cfg.adam else None
    with torch.no_grad(), autocast:
        model.eval()
        old_logp = torch.cat(sequence_logprobs(model, seqs, plens, idxs, 1.0, device))
    adv = torch.randn(old_logp.shape, device=device)
    weight = agg_weights(lengths, "seq-mean", len(seqs), sum(lengths)).to(device)

    def score():
        with torch.no_grad(), autocast:
            return sequence_logprobs(model, seqs, plens, idxs, 1.0, device)

    def update():
        model.train()
        with autocast:
            logp = torch.cat(sequence_logprobs(model, seqs, plens, idxs, 1.0, device))
            loss, _ = ppo_loss(logp, old_logp, adv, weight, 0.2)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        if opt is not None:
            opt.step()
        model.zero_grad(set_to_none=True)

    score(), update()  # warm-up (AdamW allocates its state here)
    m = [(timed(score, device), timed(update, device)) for _ in range(cfg.repeats)]  # interleaved
    t_score, peak_score = statistics.median(s[0] for s, _ in m), max(s[1] for s, _ in m)
    t_update, peak = statistics.median(u[0] for _, u in m), max(u[1] for _, u in m)
    n_params = sum(p.numel() for n, p in model.named_parameters() if "embed" not in n)
    attn = sum((len(s) - 1) ** 2 for s in seqs) * mc.num_attention_heads * mc.head_dim * mc.num_hidden_layers
    flops = 6 * n_params * T + 6 * attn  # causal attention: 2 L^2 H D per layer forward, x3 with the backward
    peak_fl, peak_src = peak_flops(device, dtype)
    # train.py's plan of the same update, less what this benchmark does not hold (the sampler and reference
    # copies; Adam's state without --adam)
    world = dist.get_world_size() if dist.is_initialized() else 1
    tcfg = TrainConfig(fsdp=cfg.fsdp, micro_batch_tokens=T, kl_coef=0)
    plan = memory_plan(tcfg, mc, n_all, world, dtype, None)
    planned = (plan["update"] - plan["copies"]
               - (0 if cfg.adam else 8 * n_all / (world if cfg.fsdp else 1))) / 2**20
    r = dict(sequences=len(seqs), tokens=T, non_embedding_params=n_params, update_seconds=t_update,
             update_tokens_per_s=T / t_update, mfu=flops / t_update / peak_fl, score_seconds=t_score,
             score_tokens_per_s=T / t_score, peak_flops=peak_fl, peak_flops_source=peak_src,
             peak_mem_mib=peak, planned_peak_mib=planned, fsdp=cfg.fsdp)
    print(f"{len(seqs)} sequences packed into {T:,} tokens (responses mean {np.mean(lengths):.0f}) | "
          f"{n_params / 1e6:,.1f}M non-embedding params | peak {peak_fl / 1e12:,.2f} TFLOP/s ({peak_src})")
    label = "update (fwd + bwd with checkpointing" + (" + AdamW)" if cfg.adam else ")")
    print(f"{label:<45} | {t_update:.3f} s | {T / t_update:,.0f} tok/s | MFU {r['mfu']:.1%}"
          f" | peak {peak:,.0f} MiB"
          + (f" (train.memory_plan: {planned:,.0f} MiB{', FSDP' if cfg.fsdp else ''})"
             if device.type == "cuda" else ""))
    print(f"{'score (no-grad log-probs, as for old/ref)':<45} | {t_score:.3f} s | {T / t_score:,.0f} tok/s | "
          f"peak {peak_score:,.0f} MiB")
    return r


KERNEL_CONFIGS = [(64, 4), (64, 8), (32, 4), (32, 8)]  # (BLOCK_N, warps): the first spilled on sm_90


def bench_kernel(cfg, device, dtype):
    """The Triton paged-decode kernel alone, one decode step of one layer at the shape's head layout, in each
    launch configuration, against SDPA's gather-then-attend: rows of --max_new_tokens positions (fixed) or
    heavy-tailed ones in 256-position pages. CUDA only: the interpreter's speed means nothing."""
    if device.type != "cuda" or not paged_attention.triton:
        raise SystemExit("error: bench.py kernel needs CUDA and Triton")
    mc, rng, bs = Qwen2Config(**SHAPES[cfg.shape]), np.random.default_rng(cfg.seed), 256
    H, Hkv, D = mc.num_attention_heads, mc.num_key_value_heads, mc.hidden_size // mc.num_attention_heads
    bw, runs = bandwidth(device), []
    for B in [int(b) for b in cfg.batch.split(",")]:
        lens = target_lengths(cfg, B, rng)
        width = -(-int(lens.max()) // bs)
        k, v = (torch.randn(B * width + 1, bs, Hkv, D, device=device, dtype=dtype) for _ in range(2))
        table = torch.arange(1, B * width + 1, device=device, dtype=torch.int32).view(B, width)
        seqlens = torch.tensor(lens - 1, device=device, dtype=torch.int32)
        q = torch.randn(B, 1, H, D, device=device, dtype=dtype)
        read = 2 * int(lens.sum()) * Hkv * D * dtype.itemsize  # keys and values, once
        pos = seqlens[:, None].long()
        methods = {f"Triton BLOCK_N {n} warps {w}": lambda n=n, w=w: paged_attention.paged_decode(
            q, k, v, seqlens, table, block_n=n, num_warps=w) for n, w in KERNEL_CONFIGS}
        methods["SDPA gather"] = lambda: paged_attention._sdpa(q, k[table].flatten(1, 2),
                                                               v[table].flatten(1, 2), pos)
        for name, fn in methods.items():
            fn()  # compile
            sec = statistics.median(timed(fn, device)[0] for _ in range(max(cfg.repeats, 5)))
            runs.append(dict(batch=B, method=name, us=1e6 * sec, bw_util=read / sec / bw,
                             default=name == "Triton BLOCK_N {} warps {}".format(
                                 *paged_attention.launch_config(D))))
            print(f"rows {B:>4} x {int(lens.mean()):,} positions (max {int(lens.max()):,}) | {name:<26} | "
                  f"{1e6 * sec:8.1f} us | {read / sec / 1e9:7.1f} GB/s | BW {read / sec / bw:6.1%}"
                  + (" | default" if runs[-1]["default"] else ""))
    return dict(bandwidth_gb_s=bw / 1e9, runs=runs)


def bench_rollouts(cfg, device, dtype):
    """train.py's memory between two rollouts at the real shape: the KV cache that train.memory_plan sizes
    (most of the GPU), a PPO update that creates Adam's state, then a second rollout that must allocate its
    cache again. Every row is forced to end after a few tokens, but --max_new_tokens (32,000 by default
    here) sizes the cache as a real rollout's."""
    if device.type != "cuda":
        raise SystemExit("error: bench.py rollouts needs CUDA (on the CPU there is no memory plan)")
    policy = build_model(cfg.shape, device, torch.float32, cfg.seed)
    mc, rng = policy.config, np.random.default_rng(cfg.seed)
    sampler = build_model(cfg.shape, device, dtype, cfg.seed).eval()  # the compute-dtype copy
    ref = build_model(cfg.shape, device, dtype, cfg.seed).eval()  # the KL reference
    tcfg = TrainConfig(max_new_tokens=cfg.max_new_tokens, max_prompt_tokens=cfg.prompt_len)
    plan = memory_plan(tcfg, mc, sum(p.numel() for p in policy.parameters()), 1, dtype, gpu_memory(device))
    opt = torch.optim.AdamW(policy.parameters(), lr=1e-6, betas=(0.9, 0.95))
    prompts = [rng.integers(cfg.max_new_tokens + 1, mc.vocab_size, cfg.prompt_len - 1).tolist() + [16]
               for _ in range(cfg.prompts)]
    ours, out = ForcedLengths(sampler, cfg.max_new_tokens), {}
    for i in (1, 2):
        torch.cuda.reset_peak_memory_stats()
        try:
            generate(ours, prompts, n=8, max_new_tokens=cfg.max_new_tokens, eos_token_id=EOS,
                     kv_tokens=plan["kv_tokens"])
            out[f"rollout_{i}_peak_gib"] = torch.cuda.max_memory_allocated() / 2**30
        except torch.OutOfMemoryError as e:
            out[f"rollout_{i}_error"] = str(e).splitlines()[0]
        print(f"rollout {i}: "
              + (f"peak {out[f'rollout_{i}_peak_gib']:.1f} GiB" if f"rollout_{i}_peak_gib" in out
                 else f"FAILED: {out[f'rollout_{i}_error']}"))
        if i == 1:  # an update: Adam's state is created now, possibly where the cache was
            policy.gradient_checkpointing = True
            with torch.autocast("cuda", dtype=dtype):
                idx = torch.randint(2, mc.vocab_size, (1, cfg.tokens), device=device)
                policy(idx, targets=idx).sum().backward()
            opt.step()
            opt.zero_grad(set_to_none=True)
            with torch.no_grad():
                for ps, p in zip(sampler.parameters(), policy.parameters()):
                    ps.copy_(p)
    print(f"KV cache {plan['kv_tokens']:,} tokens "
          f"({plan['kv_tokens'] * KVCache.bytes_per_token(mc, dtype) / 2**30:.1f}"
          f" GiB), allocator {os.environ.get('PYTORCH_CUDA_ALLOC_CONF', 'default')}: "
          + ("both rollouts allocated" if "rollout_2_peak_gib" in out else "the second rollout failed"))
    del ref
    return dict(kv_tokens=plan["kv_tokens"], alloc_conf=os.environ.get("PYTORCH_CUDA_ALLOC_CONF", ""), **out)


MODES = {"sample": bench_sample, "train": bench_train, "kernel": bench_kernel, "rollouts": bench_rollouts}


def main(argv):
    if argv[:1] in (["-h"], ["--help"]):
        parse_args(BenchConfig, argv)  # prints the docstring and the options
    if not argv or argv[0] not in MODES:
        raise SystemExit(f"usage: python bench.py {'|'.join(MODES)} [--key value ...]  (see the docstring)")
    cfg = parse_args(BenchConfig, argv[1:])
    sys.stdout.reconfigure(line_buffering=True)  # each result as it comes, also into a file or a pipe
    _, _, device = init_distributed(cfg.device)  # under torchrun for --fsdp; the allocator as train.py's
    dtype = (getattr(torch, cfg.dtype) if cfg.dtype
             else (torch.bfloat16 if device.type == "cuda" else torch.float32))
    name = (torch.cuda.get_device_name(device) if device.type == "cuda"
            else f"CPU, {torch.get_num_threads()} threads")
    print(f"bench {argv[0]} on {device} ({name}), {str(dtype)[6:]}, torch {torch.__version__}, "
          f"{time.strftime('%Y-%m-%d %H:%M')}")
    print_config(cfg)
    result = MODES[argv[0]](cfg, device, dtype)
    print(json.dumps(dict(bench=argv[0], device=name, dtype=str(dtype)[6:], config=asdict(cfg), **result)))


if __name__ == "__main__":
    main(sys.argv[1:])
    finish()
