"""
KV-cached batched sampling of many variable-length responses at once, with continuous batching.

A fixed number of decode slots share one preallocated KV cache. Each prompt is prefilled once; a
sample starts by copying its prompt's keys and values into a free slot, and when a row ends (EOS or
the length limit) the next waiting sample takes its slot, so no slot decodes padding while work is
waiting. Randomness is counter-based, keyed by (seed, sample id, step): a sample draws the same
numbers whatever slot, batch or rank it runs in. The decode step works in place and never syncs with the
host, so on a GPU it replays as a CUDA graph (cuda_graph=True).

    python sample.py --model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --prompt "What is 7 * 6?"
    python sample.py --model toy-model --prompt "What is 3 + 4 + 5?" --n 4 --temperature 0.6   # CPU, seconds
"""
import sys
import time
from collections import deque
from dataclasses import dataclass

import torch

from model import KVCache


@dataclass
class Completion:
    tokens: list  # generated ids, ending with EOS when it stopped on EOS
    logprobs: list  # log-prob of each token under the distribution it was sampled from
    finished: bool  # stopped on EOS (False: hit max_new_tokens)


def _uniform(seed, sample_ids, steps):
    """One uniform in (0, 1) per row from a counter-based integer hash of (seed, sample id, step); seed is
    an int or a 0-d int64 tensor below 2**32. All constants are below 2**31 so every product of a 32-bit
    value stays inside int64."""
    M = 0xFFFFFFFF
    x = (sample_ids * 0x2545F491 + steps * 0x6C8E9CF5 + (seed * 0x1B873593 & M)) & M
    for c in (0x7FEB352D, 0x68E31DA5, 0x1B56C4E9):
        x = ((x ^ (x >> 16)) * c) & M
    x = x ^ (x >> 15)
    return ((x >> 9).float() + 0.5) / 2**23  # 23 bits, so k + 0.5 is exact in fp32: never 0 or 1


def sample_tokens(logits, temperature, top_p, u):
    """Draw one token per row of logits (S, V) by inverse CDF with uniforms u (S,).
    Returns tokens (S,) and their log-probs under the (tempered, nucleus-truncated) distribution."""
    logits = logits.float()
    if temperature == 0:
        tok = logits.argmax(-1)
        return tok, torch.log_softmax(logits, -1).gather(1, tok[:, None])[:, 0]
    logp = torch.log_softmax(logits / temperature, -1)
    order = None
    if top_p < 1.0:  # keep the smallest set of most likely tokens whose mass reaches top_p
        logp, order = logp.sort(-1, descending=True)
        mass_before = logp.exp().cumsum(-1) - logp.exp()
        logp = torch.log_softmax(logp.masked_fill(mass_before >= top_p, -float("inf")), -1)
    cdf = logp.exp().cumsum(-1)  # (S, V)
    # First index with cdf >= u * total: never a zero-probability token (its cdf step is empty), even when
    # u * total rounds up to the total.
    idx = torch.searchsorted(cdf, (u * cdf[:, -1])[:, None]).clamp(max=cdf.shape[1] - 1)
    lp = logp.gather(1, idx)[:, 0]
    tok = idx[:, 0] if order is None else order.gather(1, idx)[:, 0]
    return tok, lp


@torch.no_grad()
def generate(model, prompts, *, n=1, max_new_tokens, eos_token_id, temperature=1.0, top_p=1.0, seed=0,
             sample_offset=0, slots=None, kv_tokens=None, block_size=None, sync_every=None, prefill_batch=16,
             continuous=True, compile=False, cuda_graph=False, stats=None, progress=False):
    """Sample n completions for each prompt (lists of token ids, any lengths).

    Returns len(prompts) * n Completions grouped by prompt: prompt i's samples at i*n .. i*n+n-1.
    temperature 0 is greedy (its logprobs are then those of softmax(logits)). Sample j (global id
    sample_offset + j) draws its randomness from (seed, sample id, step) only.
    slots: rows decoded together (default all samples, at most 256). kv_tokens: the KV cache's size in
    tokens, shared by all rows in pages of block_size positions (default, and at most: room for every slot
    to reach the length limit); when it runs out, the youngest sample is evicted and later regenerated,
    identically.
    sync_every: decode steps between the host's checks for finished rows (1 on CPU, 8 on CUDA).
    continuous=False is the lock-step baseline: a batch of slots runs until all its rows end.
    compile: the decode step through torch.compile as one graph (fullgraph: it never reads a tensor back to
    Python, so it also fits a CUDA graph). cuda_graph: replay each decode step as a captured CUDA graph (one
    per table width and row count): no Python and no kernel launches per layer. stats: a dict that receives
    decode_steps, graphs (captured) and capture_seconds (their warm-up steps and captures). progress: a bar on
    stderr when it is a terminal.
    """
    cfg, device = model.config, model.lm_head.weight.device
    progress = progress and sys.stderr.isatty()  # a live bar on a terminal; in a log, every frame would stay
    dtype = model.lm_head.weight.dtype
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, and every prompt at least one token")
    longest = max(len(p) for p in prompts)
    if longest + max_new_tokens > cfg.max_position_embeddings:
        raise ValueError(f"prompt of {longest} tokens + max_new_tokens {max_new_tokens} exceeds the model's "
                         f"max_position_embeddings {cfg.max_position_embeddings}: shorten one of them")
    if not 0 < top_p <= 1 or temperature < 0:
        raise ValueError(f"need 0 < top_p <= 1 and temperature >= 0, got top_p={top_p}, temperature={temperature}")
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph=True needs the model on a CUDA device, not {device}")
    N = len(prompts) * n
    S = min(N, slots or 256)
    sync_every = sync_every or (8 if device.type == "cuda" else 1)
    bs = block_size or (256 if device.type == "cuda" else 16)  # flash-attn pages are multiples of 256
    per_sample = -(-(longest + max_new_tokens) // bs)  # blocks one sample may need
    n_blocks = min(-(-(kv_tokens or S * per_sample * bs) // bs), S * per_sample)  # a budget past that is unusable
    if n_blocks < per_sample:
        raise ValueError(f"kv_tokens {kv_tokens} cannot hold one sample of {longest + max_new_tokens} positions: "
                         "raise kv_tokens or lower max_new_tokens")
    model.eval()

    # Prefill every prompt but its last token once; the last token is fed by a sample's first decode step,
    # which then produces that sample's first token.
    P = KVCache.empty(cfg, len(prompts), -(-max(longest - 1, 1) // bs) * bs, device, dtype)
    for a in range(0, len(prompts), prefill_batch):
        batch = [p[:-1] for p in prompts[a:a + prefill_batch]]
        T = max(len(p) for p in batch)
        if T == 0:
            continue
        # Right padding is safe: a pad writes cache positions past the prompt, which are never attended.
        idx = torch.tensor([p + [0] * (T - len(p)) for p in batch], device=device)
        model(idx, cache=KVCache(P.k[:, a:a + len(batch)], P.v[:, a:a + len(batch)], P.seqlens[a:a + len(batch)]),
              last_only=True)

    # The paged cache: block 0 is scratch, where idle rows write and unused table entries point.
    pool = KVCache.empty(cfg, n_blocks + 1, bs, device, dtype)  # k, v: (layers, blocks, bs, Hkv, D)
    cache = KVCache(pool.k, pool.v, torch.zeros(S, dtype=torch.int32, device=device),
                    torch.zeros(S, per_sample, dtype=torch.int32, device=device))
    free, owned = list(range(n_blocks, 0, -1)), [[] for _ in range(S)]
    out_tok = torch.zeros(N + 1, max_new_tokens, dtype=torch.long, device=device)  # row N: writes of idle slots
    out_lp = torch.zeros(N + 1, max_new_tokens, device=device)
    out_len = torch.zeros(N + 1, dtype=torch.long, device=device)
    out_eos = torch.zeros(N + 1, dtype=torch.bool, device=device)
    slot_sample = torch.full((S,), N, dtype=torch.long, device=device)  # which sample each slot holds
    cur_tok = torch.zeros(S, dtype=torch.long, device=device)
    active = torch.zeros(S, dtype=torch.bool, device=device)
    host_sample, host_len = [None] * S, [0] * S  # the host's view: no sync needed to size the attention
    pending = deque(range(N))
    t0, t_shown, done = time.time(), 0.0, 0

    def release(s):
        free.extend(owned[s])
        owned[s], host_sample[s], host_len[s] = [], None, 0
        cache.block_table[s], cache.seqlens[s], active[s] = 0, 0, False

    def grow(s, n_tokens):  # give slot s blocks for n_tokens positions; False when none are left
        while len(owned[s]) < min(per_sample, -(-n_tokens // bs)):
            if not free:
                return False
            owned[s].append(free.pop())
            cache.block_table[s, len(owned[s]) - 1] = owned[s][-1]
        return True

    def fill(s, j):  # start sample j in slot s: its prompt's keys and values go into fresh blocks
        g = j // n
        L = len(prompts[g]) - 1
        if len(free) < min(per_sample, -(-(L + sync_every) // bs)):
            return False
        grow(s, L + sync_every)
        nb = -(-L // bs)
        if nb:
            blocks = torch.tensor(owned[s][:nb], device=device)
            cache.k[:, blocks] = P.k[:, g, :nb * bs].unflatten(1, (nb, bs))
            cache.v[:, blocks] = P.v[:, g, :nb * bs].unflatten(1, (nb, bs))
        cache.seqlens[s], cur_tok[s], slot_sample[s], active[s] = L, prompts[g][-1], j, True
        host_sample[s], host_len[s] = j, L
        return True

    def step(nb):
        """One decode step on the state tensors, in place only (a CUDA graph replays it on their memory)."""
        was_active = active.clone()
        logits = model(cur_tok[:, None], cache=cache.prefix(nb * bs))
        cache.seqlens.sub_((~was_active).int())  # idle rows stay where they are
        row = torch.where(active, slot_sample, idle_row)
        at = out_len[row]
        tok, lp = sample_tokens(logits[:, -1], temperature, top_p, _uniform(seed_t, row + offset_t, at))
        out_tok[row, at.clamp(max=max_new_tokens - 1)] = tok
        out_lp[row, at.clamp(max=max_new_tokens - 1)] = lp
        out_len[row] += active.long()
        hit_eos = active & (tok == eos_token_id)
        out_eos[row] |= hit_eos
        active.logical_and_(~hit_eos & (out_len[row] < max_new_tokens))
        cur_tok.copy_(tok)

    def capture(fn):
        """Run fn once for real on the capture stream (the warm-up a capture needs: cuBLAS sets up its
        workspace there, outside the graph's memory), then record it into a graph without running it."""
        side = _capture_stream(device)
        graph = torch.cuda.CUDAGraph()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.device(device), torch.cuda.stream(side):
            fn()
            torch.cuda.synchronize()
            graph.capture_begin(pool=graph_pool)
            fn()
            graph.capture_end()
        torch.cuda.current_stream().wait_stream(side)
        return graph

    # Tensors, not Python numbers, for what differs between calls: a compiled step then serves every call.
    seed_t, offset_t, idle_row = (torch.tensor(x, device=device) for x in (seed & 0xFFFFFFFF, sample_offset, N))
    if compile:
        step = torch.compile(step, fullgraph=True)
    graphs, decode_steps, n_graphs, capture_s = {}, 0, 0, 0.0  # graphs: (rows, table width) -> a decode step
    graph_pool = torch.cuda.graph_pool_handle() if cuda_graph else None
    width = -(-per_sample // 8)
    while True:
        # Sync point: harvest finished rows, make room for the next steps, hand free slots to waiting samples.
        alive = active.tolist()
        for s in range(S):
            if host_sample[s] is not None and not alive[s]:
                release(s)
                done += 1
        for s in sorted(range(S), key=lambda s: -1 if host_sample[s] is None else host_sample[s]):
            while host_sample[s] is not None and not grow(s, host_len[s] + sync_every):
                victim = max((v for v in range(S) if host_sample[v] is not None), key=lambda v: host_sample[v])
                out_len[host_sample[victim]], out_eos[host_sample[victim]] = 0, False  # evicted: start again
                pending.appendleft(host_sample[victim])
                release(victim)
        if continuous or not any(alive):
            for s in range(S):
                if host_sample[s] is None and pending:
                    if not fill(s, pending[0]):
                        break  # the cache is full: the rest wait for blocks to come free
                    pending.popleft()
        if progress and (time.time() - t_shown > 0.5 or done == N):
            _progress(done, N, int(out_len.sum()), time.time() - t0)
            t_shown = time.time()
        live = [s for s in range(S) if host_sample[s] is not None]
        if not live:
            break
        if continuous and not pending and len(live) <= S // 2:  # the tail: stop decoding the idle rows
            keep = torch.tensor(live, device=device)
            cache = KVCache(cache.k, cache.v, cache.seqlens[keep], cache.block_table[keep])
            slot_sample, cur_tok, active = slot_sample[keep], cur_tok[keep], active[keep]
            host_sample, host_len, owned = [host_sample[s] for s in live], [host_len[s] for s in live], \
                [owned[s] for s in live]
            S = len(live)  # new state tensors: the graphs of the old ones are stale
            graphs.clear()
            graph_pool = torch.cuda.graph_pool_handle() if cuda_graph else None
        for _ in range(sync_every):
            nb = -(-min(per_sample * bs, max(host_len) + 1) // bs)  # blocks the longest row needs
            if cuda_graph:  # a few table widths, so that a few graphs serve every step
                nb = min(per_sample, -(-nb // width) * width)
                graph = graphs.get((S, nb))
                if graph is None:  # run this step eagerly (a capture needs a warm-up), then capture it
                    t = time.time()
                    graphs[(S, nb)] = capture(lambda: step(nb))
                    n_graphs, capture_s = n_graphs + 1, capture_s + time.time() - t
                else:
                    graph.replay()
            else:
                step(nb)
            host_len = [min(h + 1, per_sample * bs - 1) for h in host_len]
            decode_steps += 1
    if progress:
        print(file=sys.stderr)
    if stats is not None:
        stats.update(decode_steps=decode_steps, graphs=n_graphs, capture_seconds=capture_s)
    lens, eos = out_len.tolist(), out_eos.tolist()
    toks, lps = out_tok.tolist(), out_lp.tolist()
    return [Completion(toks[j][:lens[j]], lps[j][:lens[j]], eos[j]) for j in range(N)]


_capture_streams = {}


def _capture_stream(device):
    """One side stream per device for all captures: each stream keeps its own cuBLAS workspace."""
    if device not in _capture_streams:
        _capture_streams[device] = torch.cuda.Stream(device)
    return _capture_streams[device]


def _progress(done, total, tokens, seconds):
    bar = "#" * int(30 * done / total)
    print(f"\rsampling [{bar:<30}] {done}/{total} | {tokens:,} tokens | {tokens / max(seconds, 1e-9):,.0f} tok/s",
          end="", file=sys.stderr, flush=True)


@torch.no_grad()
def generate_naive(model, prompt, *, max_new_tokens, eos_token_id, temperature=1.0, top_p=1.0, seed=0,
                   sample_id=0):
    """The test oracle: one sequence, a full forward pass over everything for every new token."""
    device = model.lm_head.weight.device
    ids, lps = list(prompt), []
    for step in range(max_new_tokens):
        logits = model(torch.tensor([ids], device=device))[:, -1]
        u = _uniform(seed, torch.tensor([sample_id], device=device), torch.tensor([step], device=device))
        tok, lp = sample_tokens(logits, temperature, top_p, u)
        ids.append(int(tok))
        lps.append(float(lp))
        if ids[-1] == eos_token_id:
            return Completion(ids[len(prompt):], lps, True)
    return Completion(ids[len(prompt):], lps, False)


@dataclass
class SampleConfig:
    model: str = "toy-model"  # local Hugging Face folder or hub id
    prompt: str = "What is 3 + 4 + 5?"  # user message, sent through the tokenizer's chat template
    math: bool = True  # pose --prompt as train.py and eval.py pose problems (data.INSTRUCTION); false = as is
    n: int = 4  # samples
    max_new_tokens: int = 256
    temperature: float = 0.6  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    device: str = ""  # "" = cuda if available, else cpu


def main(argv):
    from configurator import parse_args
    cfg = parse_args(SampleConfig, argv)
    from transformers import AutoTokenizer

    from data import INSTRUCTION
    from model import Qwen2
    try:
        model = Qwen2.from_pretrained(cfg.model, device=cfg.device or None)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    tok = AutoTokenizer.from_pretrained(model.source)
    message = INSTRUCTION.format(problem=cfg.prompt) if cfg.math else cfg.prompt
    text = tok.apply_chat_template([{"role": "user", "content": message}], tokenize=False, add_generation_prompt=True)
    ids = tok.encode(text, add_special_tokens=False)  # the template already holds BOS
    t0 = time.time()
    try:
        outs = generate(model, [ids], n=cfg.n, max_new_tokens=cfg.max_new_tokens, eos_token_id=tok.eos_token_id,
                        temperature=cfg.temperature, top_p=cfg.top_p, seed=cfg.seed)
    except ValueError as e:  # a prompt or limit the model cannot take, a temperature or top_p out of range
        raise SystemExit(f"error: {e}")
    dt = time.time() - t0
    for i, c in enumerate(outs):
        print(f"--- sample {i} ({len(c.tokens)} tokens, {'EOS' if c.finished else 'truncated'})")
        print(tok.decode(c.tokens, skip_special_tokens=True))
    total = sum(len(c.tokens) for c in outs)
    print(f"--- {total} tokens in {dt:.2f}s: {total / dt:,.1f} tokens/s")


if __name__ == "__main__":
    main(sys.argv[1:])
