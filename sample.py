"""
KV-cached batched sampling of many variable-length responses at once, with continuous batching.

A fixed number of rows are decoded together over one paged KV cache. Each prompt is prefilled once; a
sample starts by copying its prompt's keys and values into a free row's pages, and when a row ends (EOS or
the length limit) the next waiting sample takes it, so no row decodes padding while work is waiting. Where
attention runs through SDPA (the CPU), which cannot read pages in place, and the cache has room for every
row, each row owns one contiguous stretch instead (Tuning.paged).
Randomness is counter-based, keyed by (seed, sample id, step): a sample draws the same numbers whatever
row, batch or rank it runs in. The decode step works in place and never syncs with the host, so on a GPU
it replays as a CUDA graph (cuda_graph=True). The engine, in named parts:

    PagePool     the KV cache's pages and their free list; a row owns pages as it grows (or one stretch)
    Rows         the rows decoded together: device tensors for the step, a host mirror for the scheduler
    Scheduler    harvest finished rows, make room (evict the youngest sample), admit waiting samples
    DecodeStep   one in-place decode step of every row: forward, sample, append, retire
    GraphRunner  the decode step captured as CUDA graphs, one per (rows, table width)

    python sample.py --model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --prompt "What is 7 * 6?"
    python sample.py --model toy-model --prompt "What is 3 + 4 + 8?"      # CPU, seconds
    python sample.py --model DIR --instruction "" --prompt "Hello"        # the message as is
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
    logprobs: list  # log-prob of each token under the distribution it was sampled from (train.py compares
    #                 them with the trainer's own: the sampler/trainer mismatch)
    finished: bool  # stopped on EOS (False: hit max_new_tokens)


@dataclass
class Tuning:
    """Engine knobs that change speed, never results (bench.py and the tests turn them)."""
    block_size: int = 0  # positions per KV page; 0 = 256 on CUDA (flash-attn's unit), 16 on CPU
    sync_every: int = 0  # decode steps between the host's checks for finished rows; 0 = 8 on CUDA, 1 on CPU
    prefill_batch: int = 16  # prompts per prefill forward
    continuous: bool = True  # False: the lock-step baseline, where a batch decodes until its longest row ends
    compile: bool = False  # the decode step through torch.compile(fullgraph=True): proof that it never syncs
    paged: bool = None  # None: pages where a kernel reads them in place (flash-attn, Triton) or where the
    #                     cache is too small for every row; else each row its own contiguous stretch, which
    #                     SDPA reads in place instead of gathering the pages at every layer and step


def check_context(config, prompt_tokens, max_new_tokens):
    """Refuse a prompt + response that the model's positions cannot hold (ValueError naming the fix)."""
    if prompt_tokens + max_new_tokens > config.max_position_embeddings:
        raise ValueError(f"a prompt of {prompt_tokens} tokens + max_new_tokens {max_new_tokens} exceeds the "
                         f"model's {config.max_position_embeddings} positions (max_position_embeddings): "
                         "shorten one of them")


def kv_budget(config, dtype, total_bytes, other_bytes, memory_fraction=0.9):
    """Tokens of KV cache for generate on a GPU of total_bytes: memory_fraction of it, less other_bytes
    (what the process holds besides the cache: weights, gradients, optimizer state); the rest is for the
    activations and the allocator's slack. Arithmetic, not a reading of free memory, so that every call and
    every rank of a job decide alike. None on the CPU (total_bytes None): generate then makes room for
    every row to finish."""
    if total_bytes is None:
        return None
    return int((memory_fraction * total_bytes - other_bytes) // KVCache.bytes_per_token(config, dtype))


def gpu_memory(device):
    """The GPU's memory in bytes, None on the CPU."""
    return torch.cuda.get_device_properties(device).total_memory if device.type == "cuda" else None


@torch.no_grad()
def generate(model, prompts, *, n=1, max_new_tokens, eos_token_id, temperature=1.0, top_p=1.0, seed=0,
             sample_offset=0, slots=None, kv_tokens=None, cuda_graph=False, stats=None, progress=False,
             **tuning):
    """Sample n completions for each prompt (lists of token ids, any lengths).

    Returns len(prompts) * n Completions grouped by prompt: prompt i's samples at i*n .. i*n+n-1.
    temperature 0 is greedy (its logprobs are then those of softmax(logits)). Sample j (global id
    sample_offset + j) draws its randomness from (seed, sample id, step) only.
    slots: rows decoded together (default all samples, at most 256). kv_tokens: the KV cache's size in
    tokens, shared by all rows in pages (default, and at most: room for every row to reach the length
    limit); when it runs out, the youngest sample is evicted and later regenerated, identically.
    cuda_graph: replay each decode step as a captured CUDA graph. stats: a dict that receives
    decode_steps, graphs (captured) and capture_seconds. progress: a bar on stderr when it is a terminal.
    tuning: the fields of Tuning.
    """
    cfg, device, dtype = model.config, model.lm_head.weight.device, model.lm_head.weight.dtype
    opt = Tuning(**tuning)
    if not prompts or any(len(p) == 0 for p in prompts):
        raise ValueError("generate needs at least one prompt, and every prompt at least one token")
    longest = max(len(p) for p in prompts)
    check_context(cfg, longest, max_new_tokens)
    if not 0 < top_p <= 1 or temperature < 0:
        raise ValueError(f"need 0 < top_p <= 1 and temperature >= 0, got top_p={top_p}, "
                         f"temperature={temperature}")
    if cuda_graph and device.type != "cuda":
        raise ValueError(f"cuda_graph=True needs the model on a CUDA device, not {device}")
    N = len(prompts) * n
    S = min(N, slots or 256)
    ahead = opt.sync_every or (8 if device.type == "cuda" else 1)  # decode steps between host checks
    bs = opt.block_size or (256 if device.type == "cuda" else 16)  # flash-attn pages are multiples of 256
    max_blocks = -(-(longest + max_new_tokens) // bs)  # pages one sample may need
    n_blocks = min(-(-(kv_tokens or S * max_blocks * bs) // bs), S * max_blocks)  # more would go unused
    if n_blocks < max_blocks:
        raise ValueError(f"kv_tokens {kv_tokens} cannot hold one sample of {longest + max_new_tokens} "
                         "positions: raise kv_tokens or lower max_new_tokens")
    import paged_attention  # imported on first use, as model.py does
    room = n_blocks == S * max_blocks  # every row can reach the length limit at once: no eviction
    paged = opt.paged if opt.paged is not None else (
        not room or not paged_attention.decode_path(cfg, device, dtype).startswith("SDPA"))
    if not paged and not room:
        raise ValueError(f"paged=False gives each of the {S} rows its own stretch of the cache, which "
                         f"kv_tokens {kv_tokens} cannot hold: drop kv_tokens, or leave paged at None")
    model.eval()

    pool = PagePool(cfg, n_blocks, bs, max_blocks, device, dtype, None if paged else S)
    rows = Rows(S, N, max_blocks, pool, device)
    step = DecodeStep(model, rows, N, max_new_tokens, eos_token_id, temperature, top_p, seed, sample_offset,
                      bs, opt.compile)
    runner = GraphRunner(step, max_blocks, device) if cuda_graph else None
    sched = Scheduler(pool, rows, step, prefill(model, prompts, bs, opt.prefill_batch), prompts, n, ahead)
    progress = progress and sys.stderr.isatty()  # a live bar on a terminal; in a log every frame would stay
    t0, t_shown, done, decode_steps = time.time(), 0.0, 0, 0
    while True:
        # Sync point: harvest finished rows, make room for the next steps, give free rows to waiting samples.
        alive = rows.active.tolist()
        done += sched.harvest(alive)
        sched.make_room()
        if opt.continuous or not any(alive):
            sched.admit()
        if progress and (time.time() - t_shown > 0.5 or done == N):
            _progress(done, N, int(step.lengths.sum()), time.time() - t0)
            t_shown = time.time()
        live = rows.live()
        if not live:
            break
        if opt.continuous and not sched.pending and len(live) <= len(rows) // 2:
            rows.keep(live)  # the tail: stop decoding idle rows (new row tensors: old graphs are stale)
            if runner:
                runner.reset()
        for _ in range(ahead):
            nb = -(-min(max_blocks * bs, max(rows.host_len) + 1) // bs)  # pages the longest row needs
            (runner or step)(nb)
            rows.host_len = [min(h + 1, max_blocks * bs - 1) for h in rows.host_len]
            decode_steps += 1
    if progress:
        print(file=sys.stderr)
    if stats is not None:
        stats.update(decode_steps=decode_steps, graphs=runner.captured if runner else 0,
                     capture_seconds=runner.capture_seconds if runner else 0.0)
    return step.completions()


def prefill(model, prompts, bs, batch_size):
    """Keys and values of every prompt but its last token, (layers, prompts, L, Hkv, D) with L a multiple
    of bs; the last token is fed by a sample's first decode step, which then produces its first token."""
    cfg, device, dtype = model.config, model.lm_head.weight.device, model.lm_head.weight.dtype
    longest = max(len(p) for p in prompts)
    P = KVCache.empty(cfg, len(prompts), -(-max(longest - 1, 1) // bs) * bs, device, dtype)
    for a in range(0, len(prompts), batch_size):
        batch = [p[:-1] for p in prompts[a:a + batch_size]]
        T = max(len(p) for p in batch)
        if T == 0:
            continue
        # Right padding is safe: a pad writes cache positions past the prompt, which are never attended.
        idx = torch.tensor([p + [0] * (T - len(p)) for p in batch], device=device)
        b = slice(a, a + len(batch))
        model(idx, cache=KVCache(P.k[:, b], P.v[:, b], P.seqlens[b]), last_only=True)
    return P


class PagePool:
    """The paged KV cache: k and v (layers, blocks, block_size, Hkv, D) and the free list. Block 0 is
    scratch: idle rows write there and unused block-table entries point at it. Pages are handed to a row as
    it grows and come back when its sample ends or is evicted.
    Unpaged (S rows given): k and v (layers, S, max_blocks * block_size, Hkv, D), row s's stretch s for the
    whole call: room for every row, so nothing to hand out, nothing to evict, and no block table (an idle
    row writes in its own stretch, just past its last sample or at position 0 once emptied, where nothing
    reads before the next prompt overwrites it)."""

    def __init__(self, cfg, n_blocks, block_size, max_blocks, device, dtype, unpaged_rows=None):
        self.paged = unpaged_rows is None
        self.kv = (KVCache.empty(cfg, n_blocks + 1, block_size, device, dtype) if self.paged
                   else KVCache.empty(cfg, unpaged_rows, max_blocks * block_size, device, dtype))
        self.bs, self.max_blocks = block_size, max_blocks
        self.free = list(range(n_blocks, 0, -1)) if self.paged else []

    def blocks_for(self, n_tokens):
        return min(self.max_blocks, -(-n_tokens // self.bs)) if self.paged else 0

    def grow(self, rows, s, n_tokens):
        """Give row s pages for n_tokens positions; False when the pool runs dry (it keeps what it got)."""
        owned = rows.blocks[s]
        while len(owned) < self.blocks_for(n_tokens):
            if not self.free:
                return False
            owned.append(self.free.pop())
            rows.cache.block_table[s, len(owned) - 1] = owned[-1]
        return True

    def release(self, rows, s):
        self.free.extend(rows.blocks[s])
        rows.clear(s)


class Rows:
    """The S rows decoded together. On the device, what the decode step reads and writes in place: each
    row's cache view (seqlens (S,), block_table (S, max_blocks) or None unpaged), its next input token,
    whether it is active and the sample it holds (N: none). On the host, a mirror (sample, length, pages)
    that the scheduler reads without a sync."""

    def __init__(self, S, N, max_blocks, pool, device):
        table = torch.zeros(S, max_blocks, dtype=torch.int32, device=device) if pool.paged else None
        self.cache = KVCache(pool.kv.k, pool.kv.v, torch.zeros(S, dtype=torch.int32, device=device), table)
        self.token = torch.zeros(S, dtype=torch.long, device=device)
        self.active = torch.zeros(S, dtype=torch.bool, device=device)
        self.sample = torch.full((S,), N, dtype=torch.long, device=device)
        self.host_sample, self.host_len, self.blocks = [None] * S, [0] * S, [[] for _ in range(S)]

    def __len__(self):
        return len(self.host_sample)

    def live(self):
        return [s for s in range(len(self)) if self.host_sample[s] is not None]

    def clear(self, s):
        self.host_sample[s], self.host_len[s], self.blocks[s] = None, 0, []
        self.cache.seqlens[s], self.active[s] = 0, False
        if self.cache.block_table is not None:
            self.cache.block_table[s] = 0

    def keep(self, live):
        """Keep only the rows `live` (ascending): new, smaller tensors for the rows' state. Unpaged, the live
        stretches move to the front of the cache in place, so no second cache is ever allocated."""
        idx = torch.tensor(live, device=self.token.device)
        c = self.cache
        if c.block_table is not None:
            self.cache = KVCache(c.k, c.v, c.seqlens[idx], c.block_table[idx])
        else:
            for i, s in enumerate(live):  # i <= s: a stretch is read before anything lands on it
                if i != s:
                    c.k[:, i].copy_(c.k[:, s])
                    c.v[:, i].copy_(c.v[:, s])
            self.cache = KVCache(c.k[:, :len(live)], c.v[:, :len(live)], c.seqlens[idx])
        self.token, self.active, self.sample = self.token[idx], self.active[idx], self.sample[idx]
        self.host_sample = [self.host_sample[s] for s in live]
        self.host_len = [self.host_len[s] for s in live]
        self.blocks = [self.blocks[s] for s in live]


class Scheduler:
    """Which sample runs in which row. Samples wait in id order; a free row takes the oldest waiting one
    once the pool has pages for its prompt and the next steps. When the pool runs dry, the youngest running
    sample is evicted and waits again at the front: its randomness depends on its id and step only, so it
    is regenerated identically."""

    def __init__(self, pool, rows, step, prefix, prompts, n, ahead):
        self.pool, self.rows, self.step, self.prefix = pool, rows, step, prefix
        self.prompts, self.n, self.ahead = prompts, n, ahead
        self.pending = deque(range(len(prompts) * n))

    def harvest(self, alive):
        """Free the rows whose sample ended (alive: rows.active read back); returns how many ended."""
        ended = [s for s in range(len(self.rows)) if self.rows.host_sample[s] is not None and not alive[s]]
        for s in ended:
            self.pool.release(self.rows, s)
        return len(ended)

    def make_room(self):
        """Pages for every running row's next `ahead` steps, oldest sample first; evict the youngest when
        the pool runs dry."""
        rows = self.rows
        for s in sorted(range(len(rows)),
                        key=lambda s: -1 if rows.host_sample[s] is None else rows.host_sample[s]):
            while (rows.host_sample[s] is not None
                   and not self.pool.grow(rows, s, rows.host_len[s] + self.ahead)):
                victim = max(rows.live(), key=lambda v: rows.host_sample[v])
                self.step.restart(rows.host_sample[victim])
                self.pending.appendleft(rows.host_sample[victim])
                self.pool.release(rows, victim)

    def admit(self):
        """Start waiting samples in free rows while the pool has pages for them."""
        for s in range(len(self.rows)):
            if self.rows.host_sample[s] is None and self.pending:
                if not self.start(s, self.pending[0]):
                    return  # the pool is short: the rest wait for pages to come free
                self.pending.popleft()

    def start(self, s, j):
        """Sample j in row s: its prompt's keys and values are copied into fresh pages or the row's stretch."""
        rows, pool, g = self.rows, self.pool, j // self.n
        L = len(self.prompts[g]) - 1
        if len(pool.free) < pool.blocks_for(L + self.ahead):
            return False
        pool.grow(rows, s, L + self.ahead)
        nb = -(-L // pool.bs)
        if not pool.paged:
            rows.cache.k[:, s, :L] = self.prefix.k[:, g, :L]
            rows.cache.v[:, s, :L] = self.prefix.v[:, g, :L]
        elif nb:
            blocks = torch.tensor(rows.blocks[s][:nb], device=rows.token.device)
            pool.kv.k[:, blocks] = self.prefix.k[:, g, :nb * pool.bs].unflatten(1, (nb, pool.bs))
            pool.kv.v[:, blocks] = self.prefix.v[:, g, :nb * pool.bs].unflatten(1, (nb, pool.bs))
        rows.cache.seqlens[s], rows.token[s], rows.sample[s], rows.active[s] = L, self.prompts[g][-1], j, True
        rows.host_sample[s], rows.host_len[s] = j, L
        return True


class DecodeStep:
    """One decode step of every row, in place only (a CUDA graph replays it on the same memory): feed each
    row its token, sample the next one from counter-based uniforms, append it to the row's sample, and
    retire rows that hit EOS or the length limit. Idle rows run too and change nothing (they write where
    nothing reads: the scratch page, or unpaged their own stretch).
    Outputs: tokens and log-probs (N + 1, max_new_tokens), lengths and eos (N + 1,); row N takes the
    writes of idle rows."""

    def __init__(self, model, rows, N, max_new_tokens, eos_token_id, temperature, top_p, seed, sample_offset,
                 block_size, compile=False):
        device = rows.token.device
        self.model, self.rows, self.N, self.max_new = model, rows, N, max_new_tokens
        self.eos_token_id, self.temperature, self.top_p = eos_token_id, temperature, top_p
        self.bs = block_size
        self.tokens = torch.zeros(N + 1, max_new_tokens, dtype=torch.long, device=device)
        self.logprobs = torch.zeros(N + 1, max_new_tokens, device=device)
        self.lengths = torch.zeros(N + 1, dtype=torch.long, device=device)
        self.eos = torch.zeros(N + 1, dtype=torch.bool, device=device)
        # Tensors, not Python numbers, for what differs between calls: a compiled step then serves every call.
        self.seed, self.offset, self.idle = (torch.tensor(x, device=device)
                                             for x in (seed & 0xFFFFFFFF, sample_offset, N))
        self.run = torch.compile(self.decode, fullgraph=True) if compile else self.decode

    def __call__(self, nb):
        self.run(nb)

    def decode(self, nb):
        """The step, attending over the first nb pages of every row (nb * block_size positions)."""
        rows = self.rows
        was_active = rows.active.clone()
        logits = self.model(rows.token[:, None], cache=rows.cache.prefix(nb * self.bs))
        rows.cache.seqlens.sub_((~was_active).int())  # idle rows stay where they are
        row = torch.where(rows.active, rows.sample, self.idle)
        at = self.lengths[row]
        u = _uniform(self.seed, row + self.offset, at)
        tok, lp = sample_tokens(logits[:, -1], self.temperature, self.top_p, u)
        self.tokens[row, at.clamp(max=self.max_new - 1)] = tok
        self.logprobs[row, at.clamp(max=self.max_new - 1)] = lp
        self.lengths[row] += rows.active.long()
        hit_eos = rows.active & (tok == self.eos_token_id)
        self.eos[row] |= hit_eos
        rows.active.logical_and_(~hit_eos & (self.lengths[row] < self.max_new))
        rows.token.copy_(tok)

    def restart(self, j):
        """Forget what sample j generated (it was evicted and will start again)."""
        self.lengths[j], self.eos[j] = 0, False

    def completions(self):
        lens, eos, toks, lps = (self.lengths.tolist(), self.eos.tolist(), self.tokens.tolist(),
                                self.logprobs.tolist())
        return [Completion(toks[j][:lens[j]], lps[j][:lens[j]], eos[j]) for j in range(self.N)]


class GraphRunner:
    """The decode step as CUDA graphs: one per (rows, table width), captured the first time that shape is
    seen and replayed after, so a step costs no Python and no kernel launch per layer. Table widths are
    rounded up to at most 8 buckets, so that a few graphs serve every step."""

    def __init__(self, step, max_blocks, device):
        self.step, self.max_blocks, self.device = step, max_blocks, device
        self.width = -(-max_blocks // 8)
        self.graphs, self.pool = {}, torch.cuda.graph_pool_handle()
        self.captured, self.capture_seconds = 0, 0.0

    def reset(self):
        """The rows' tensors were replaced: the graphs recorded the old ones."""
        self.graphs.clear()
        self.pool = torch.cuda.graph_pool_handle()

    def __call__(self, nb):
        nb = min(self.max_blocks, -(-nb // self.width) * self.width)
        key = (len(self.step.rows), nb)
        if key in self.graphs:
            self.graphs[key].replay()
            return
        t = time.time()  # this step runs eagerly (a capture needs a warm-up run), then it is captured
        self.graphs[key] = self.capture(lambda: self.step(nb))
        self.captured, self.capture_seconds = self.captured + 1, self.capture_seconds + time.time() - t

    def capture(self, fn):
        """Run fn once for real on the capture stream (the warm-up a capture needs: cuBLAS sets up its
        workspace there, outside the graph's memory), then record it into a graph without running it."""
        side = _capture_stream(self.device)
        graph = torch.cuda.CUDAGraph()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.device(self.device), torch.cuda.stream(side):
            fn()
            torch.cuda.synchronize()
            graph.capture_begin(pool=self.pool)
            fn()
            graph.capture_end()
        torch.cuda.current_stream().wait_stream(side)
        return graph


_capture_streams = {}


def _capture_stream(device):
    """One side stream per device for all captures: each stream keeps its own cuBLAS workspace."""
    if device not in _capture_streams:
        _capture_streams[device] = torch.cuda.Stream(device)
    return _capture_streams[device]


# -----------------------------------------------------------------------------
# sampling one token per row

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


def _progress(done, total, tokens, seconds):
    bar = "#" * int(30 * done / total)
    print(f"\rsampling [{bar:<30}] {done}/{total} | {tokens:,} tokens"
          f" | {tokens / max(seconds, 1e-9):,.0f} tok/s",
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


# -----------------------------------------------------------------------------
# command line

@dataclass
class SampleConfig:
    model: str = "toy-model"  # local Hugging Face folder or hub id
    prompt: str = "What is 3 + 4 + 5?"  # the question; instruction + prompt go through the chat template
    instruction: str = "Please reason step by step, and put your final answer within \\boxed{}. Question: "
    #                  the paper's (data.INSTRUCTION, as eval.py poses problems); "" sends the prompt as is
    n: int = 4  # samples
    max_new_tokens: int = 256
    temperature: float = 0.6  # 0 = greedy
    top_p: float = 1.0
    seed: int = 0
    device: str = ""  # "" = cuda if available, else cpu

    def __post_init__(self):
        from configurator import check, check_device
        check(self, [(k, getattr(self, k) >= 1, ">= 1") for k in ("n", "max_new_tokens")]
              + [("temperature", 0 <= self.temperature < float("inf"), ">= 0 (0 = greedy)"),
                 ("top_p", 0 < self.top_p <= 1, "in (0, 1]")])
        check_device(self.device)


def main(argv):
    from configurator import parse_args
    cfg = parse_args(SampleConfig, argv)
    from model import Qwen2, load_tokenizer
    try:
        model = Qwen2.from_pretrained(cfg.model, device=cfg.device or None)
        tok = load_tokenizer(model.source, chat=True)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    text = tok.apply_chat_template([{"role": "user", "content": cfg.instruction + cfg.prompt}],
                                   tokenize=False, add_generation_prompt=True)
    ids = tok.encode(text, add_special_tokens=False)  # the template already holds BOS
    t0 = time.time()
    try:
        outs = generate(model, [ids], n=cfg.n, max_new_tokens=cfg.max_new_tokens,
                        eos_token_id=tok.eos_token_id, temperature=cfg.temperature, top_p=cfg.top_p,
                        seed=cfg.seed)
    except ValueError as e:  # a prompt or limit the model cannot take
        raise SystemExit(f"error: {e}")
    dt = time.time() - t0
    for i, c in enumerate(outs):
        print(f"--- sample {i} ({len(c.tokens)} tokens, {'EOS' if c.finished else 'truncated'})")
        print(tok.decode(c.tokens, skip_special_tokens=True))
    total = sum(len(c.tokens) for c in outs)
    print(f"--- {total} tokens in {dt:.2f}s: {total / dt:,.1f} tokens/s")


if __name__ == "__main__":
    main(sys.argv[1:])
