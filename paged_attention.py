"""
Attention of new tokens over a KV cache, and the optional kernels that make it fast. model.attention()
hands every cached call here (prefill into a contiguous cache, decoding from the paged one), and takes
FlashAttention from here when it is installed. Which kernel runs:

    flash-attn's kvcache kernel   CUDA, fp16/bf16, flash-attn installed (requirements-gpu.txt); not under
                                  torch.compile, which cannot trace the extension: compiled steps take
                                  the next line
    our Triton kernel (below)     CUDA (or TRITON_INTERPRET=1 on the CPU), paged, one new token per row
    SDPA                          everywhere else: each row's pages gathered into a padded copy, then
                                  masked attention (and the fallback if the Triton kernel cannot compile);
                                  where the cache has room for every row, sample.py gives each row one
                                  contiguous stretch instead (no pages), which SDPA reads in place

The Triton kernel exists because without it SDPA gathers every row's pages into a padded (B, longest row,
Hkv, D) copy per layer and step: three passes over the keys and values instead of one, padded to the
longest row, and a transient that grows with rows x longest row (GBs per layer at 32k-token rollouts). It
reads each row's pages in place, once: one program per (row, KV head, split of the row's pages), each
keeping its G query heads' online softmax over blocks of BLOCK_N positions ("flash decoding"). Splits are
a few pages long, so that the longest row does not set the step time, and more numerous when there are too
few rows to fill the GPU; they are merged by their log-sum-exp in PyTorch. Triton ships with the CUDA
builds of PyTorch; with TRITON_INTERPRET=1 the same kernel runs on the CPU (slowly, in numpy), which is how
the tests check it on machines without a GPU.
"""
import contextlib
import os
import warnings

import torch
import torch.nn.functional as F

INTERPRET = os.environ.get("TRITON_INTERPRET") == "1"
try:  # optional, CUDA only
    import flash_attn
except ImportError:
    flash_attn = None
triton = None
if torch.cuda.is_available() or INTERPRET:  # the kernel cannot run anywhere else: skip the import (~0.3 s)
    try:
        import triton
        import triton.language as tl
    except ImportError:  # Triton ships with the CUDA builds of PyTorch, not the CPU ones
        pass
use_triton = True  # False: decode through SDPA even where the kernel runs (bench.py's A/B)


def use_flash(q):
    return flash_attn is not None and q.is_cuda and q.dtype in (torch.float16, torch.bfloat16)


def cached_attention(q, k, v, k_cache, v_cache, cache_seqlens, block_table=None):
    """Write k and v into the cache, then attend: q (B, T, H, D), k and v (B, T, Hkv, D) -> (B, T, H, D).

    Row b already holds cache_seqlens[b] (int32 (B,)) positions; its new keys and values go to positions
    cache_seqlens[b] + t, and query t attends to positions <= cache_seqlens[b] + t. The caller advances
    cache_seqlens. Contiguous: k_cache, v_cache (B, L, Hkv, D). Paged (block_table int32 (B, n)): k_cache,
    v_cache (blocks, block_size, Hkv, D), and position p of row b lives in block block_table[b, p //
    block_size] at offset p % block_size.
    """
    if q.is_cuda and q.device not in _sm_count and not torch.compiler.is_compiling():
        # read here, eagerly (the prefill always comes first), not inside a traced decode step
        _sm_count[q.device] = torch.cuda.get_device_properties(q.device).multi_processor_count
    if use_flash(q) and not torch.compiler.is_compiling():
        return flash_attn.flash_attn_with_kvcache(q, k_cache, v_cache, k=k, v=v, cache_seqlens=cache_seqlens,
                                                  block_table=block_table, causal=True)
    B, T = q.shape[:2]
    pos = cache_seqlens[:, None].long() + torch.arange(T, device=q.device)  # (B, T)
    rows = torch.arange(B, device=q.device)[:, None]
    if block_table is None:
        k_cache[rows, pos] = k  # index_put, no torch.cat: the cache is preallocated
        v_cache[rows, pos] = v
        return _sdpa(q, k_cache, v_cache, pos)
    bs = k_cache.shape[1]
    blocks = block_table[rows, pos // bs]  # (B, T)
    k_cache[blocks, pos % bs] = k
    v_cache[blocks, pos % bs] = v
    if supported(q, k_cache):  # reads the pages in place
        y = paged_decode(q, k_cache, v_cache, cache_seqlens, block_table)
        if y is not None:
            return y
    # SDPA has no paging: gather each row's pages into a copy padded to the longest row, (B, n * bs, Hkv, D)
    # (index_select copies whole pages: 1.5x faster on a CPU than the same gather as k_cache[block_table])
    pages = block_table.flatten()
    return _sdpa(q, k_cache.index_select(0, pages).view(B, -1, *k_cache.shape[2:]),
                 v_cache.index_select(0, pages).view(B, -1, *v_cache.shape[2:]), pos)


def _sdpa(q, k_cache, v_cache, pos):
    """Query t of row b (at position pos[b, t]) attends to cache positions <= pos[b, t]. An explicit mask:
    SDPA's is_causal is top-left aligned when queries are fewer than keys. With a mask no fused CUDA kernel
    takes GQA (enable_gqa would fall back to the math kernel, which copies K and V per query head in fp32),
    so each KV head's G query heads become G x T queries of one head instead."""
    B, T, H, _ = q.shape
    Hkv = k_cache.shape[2]
    G = H // Hkv
    mask = torch.arange(k_cache.shape[1], device=q.device) <= pos[:, :, None]  # (B, T, L)
    q = q.view(B, T, Hkv, G, -1).permute(0, 2, 3, 1, 4).reshape(B, Hkv, G * T, -1)  # rows g * T + t
    y = F.scaled_dot_product_attention(q, k_cache.transpose(1, 2), v_cache.transpose(1, 2),
                                       attn_mask=mask.repeat(1, G, 1)[:, None])  # (B, Hkv, G * T, D)
    return y.view(B, Hkv, G, T, -1).permute(0, 3, 1, 2, 4).reshape(B, T, H, -1)


def decode_path(cfg, device, dtype):
    """The kernel that decodes from the paged cache for this model, device and dtype: for logs and benches."""
    # one decode step
    q = torch.empty(1, 1, cfg.num_attention_heads, cfg.head_dim, device=device, dtype=dtype)
    k_cache = torch.empty(1, 1, cfg.num_key_value_heads, cfg.head_dim, device=device, dtype=dtype)
    if use_flash(q):
        return "flash-attn"
    if supported(q, k_cache):
        return "Triton paged kernel"
    return "SDPA"


# -----------------------------------------------------------------------------
# the Triton kernel

if triton is not None:
    @triton.jit(do_not_specialize=["stride_tb", "pages_per_split"])  # these vary per call: no recompiles
    def _decode_kernel(Q, K, V, Table, Seqlens, O, M, L, stride_qb, stride_qh, stride_kblk, stride_kpos,
                       stride_kh, stride_tb, scale, pages_per_split, G: tl.constexpr, GP: tl.constexpr,
                       D: tl.constexpr, BS: tl.constexpr, BLOCK_N: tl.constexpr, PRECISION: tl.constexpr):
        b, h, s = tl.program_id(0), tl.program_id(1), tl.program_id(2)
        n_split = tl.num_programs(2)
        n_keys = tl.load(Seqlens + b) + 1  # the new token was written at position seqlens[b]
        start = s * pages_per_split * BS
        end = tl.minimum(start + pages_per_split * BS, n_keys)
        g, d = tl.arange(0, GP), tl.arange(0, D)
        q = tl.load(Q + b * stride_qb + (h * G + g)[:, None] * stride_qh + d[None, :], mask=(g < G)[:, None],
                    other=0.0)
        m_i = tl.full([GP], float("-inf"), tl.float32)  # running max, sum of exp and weighted values
        l_i = tl.zeros([GP], tl.float32)
        acc = tl.zeros([GP, D], tl.float32)
        for n0 in range(start, end, BLOCK_N):
            pos = n0 + tl.arange(0, BLOCK_N)
            ok = pos < end
            if BS % BLOCK_N == 0:  # the block lies in one page (splits start on page boundaries): one index
                page = tl.load(Table + b * stride_tb + n0 // BS).to(tl.int64)
            else:
                page = tl.load(Table + b * stride_tb + pos // BS, mask=ok, other=0).to(tl.int64)
            off = page * stride_kblk + (pos % BS) * stride_kpos + h * stride_kh  # (BLOCK_N,)
            k = tl.load(K + off[:, None] + d[None, :], mask=ok[:, None], other=0.0)  # (BLOCK_N, D)
            v = tl.load(V + off[:, None] + d[None, :], mask=ok[:, None], other=0.0)
            scores = tl.dot(q, tl.trans(k), input_precision=PRECISION)
            scores = tl.where(ok[None, :], scores * scale, float("-inf"))  # (GP, BLOCK_N)
            m_new = tl.maximum(m_i, tl.max(scores, 1))
            p = tl.exp(scores - m_new[:, None])
            alpha = tl.exp(m_i - m_new)
            l_i = l_i * alpha + tl.sum(p, 1)
            acc = acc * alpha[:, None] + tl.dot(p.to(v.dtype), v, input_precision=PRECISION)
            m_i = m_new
        row = (b * tl.num_programs(1) + h) * n_split + s  # partial results (B, Hkv, splits, G[, D])
        tl.store(O + (row * G + g)[:, None] * D + d[None, :], acc, mask=(g < G)[:, None])
        tl.store(M + row * G + g, m_i, mask=g < G)
        tl.store(L + row * G + g, l_i, mask=g < G)


_sm_count, _launched, _broken = {}, set(), []


def supported(q, k_cache):
    """Whether paged_decode takes these tensors: Triton here and the kernel not broken, one query per row,
    a head size that tl.dot and tl.arange take."""
    D, G = q.shape[-1], q.shape[2] // k_cache.shape[2]
    return (triton is not None and use_triton and not _broken and (q.is_cuda or INTERPRET) and q.shape[1] == 1
            and D in (16, 32, 64, 128, 256) and G <= 64 and q.dtype == k_cache.dtype)


def launch_config(D):
    """(BLOCK_N, num_warps) for head size D: the ones that do not spill registers when built for sm_90
    (tests/compile_kernel.py, Triton 3.6 and its ptxas: BLOCK_N 64 with 4 warps, the first choice, used 255
    registers and spilled 228 bytes at the R1 shapes in bf16 and 2 KB in fp32; BLOCK_N 32 with 8 warps
    uses 178 (bf16) or 128 (fp32) at D = 128 and spills nothing at D = 128 or 256). Speed at these shapes is
    bench.py kernel's to tell on a GPU."""
    return (32, 4) if D <= 64 else (32, 8)


def paged_decode(q, k_cache, v_cache, cache_seqlens, block_table, block_n=None, num_warps=None,
                 max_pages_per_split=8):
    """One decode step of causal attention over a paged cache (keys and values already written).

    q (B, 1, H, D); k_cache, v_cache (blocks, block_size, Hkv, D); cache_seqlens int32 (B,): row b attends
    positions 0 .. cache_seqlens[b]; block_table int32 (B, n): position p of row b is in block
    block_table[b, p // block_size]. A row is split into pieces of at most max_pages_per_split pages, and
    into more when there are too few rows to fill the GPU. block_n, num_warps: default launch_config(D).
    Returns (B, 1, H, D), or None, after one warning, if this Triton cannot compile the kernel (the caller
    then uses SDPA). Launches from shapes only (no host sync), so it can be captured in a CUDA graph.
    """
    B, _, H, D = q.shape
    _, bs, Hkv, _ = k_cache.shape
    G = H // Hkv
    default_n, default_warps = launch_config(D)
    block_n, num_warps = block_n or default_n, num_warps or default_warps
    assert k_cache.stride() == v_cache.stride() and k_cache.stride(-1) == 1 and block_table.stride(-1) == 1
    q = q[:, 0].contiguous()  # (B, H, D)
    n_pages = block_table.shape[1]
    if q.is_cuda:
        if q.device not in _sm_count:
            _sm_count[q.device] = torch.cuda.get_device_properties(q.device).multi_processor_count
        programs = 2 * _sm_count[q.device]
    else:
        programs = 8  # the interpreter: a few splits, so that the tests merge some
    # enough programs to fill the GPU, and no row longer than a few pages in one program: else the longest
    # row would set the step time (programs past a short row's end exit at once)
    splits = min(n_pages, max(programs // (B * Hkv), -(-n_pages // max_pages_per_split), 1))
    pages_per_split = -(-n_pages // splits)
    splits = -(-n_pages // pages_per_split)
    GP = max(16, triton.next_power_of_2(G))  # tl.dot needs at least 16 rows
    O = torch.empty(B, Hkv, splits, G, D, device=q.device, dtype=torch.float32)
    M = torch.empty(B, Hkv, splits, G, device=q.device, dtype=torch.float32)
    L = torch.empty_like(M)

    def launch():
        _decode_kernel[(B, Hkv, splits)](
            q, k_cache, v_cache, block_table, cache_seqlens, O, M, L, q.stride(0), q.stride(1),
            k_cache.stride(0), k_cache.stride(1), k_cache.stride(2), block_table.stride(0), D ** -0.5,
            pages_per_split, G=G, GP=GP, D=D, BS=bs, BLOCK_N=block_n,
            PRECISION="ieee" if q.dtype == torch.float32 else "tf32",  # fp32: no TF32
            num_warps=num_warps)
    config = (q.device, q.dtype, G, D, bs, block_n, num_warps)
    if torch.compiler.is_compiling():  # traced by torch.compile: no Python fallback around the launch
        launch()
    else:
        try:
            with torch.cuda.device(q.device) if q.is_cuda else contextlib.nullcontext():  # Triton launches on
                launch()                                                                # the current device
            _launched.add(config)
        except Exception as e:  # a Triton that cannot build it here: slower SDPA beats a crashed run
            if config in _launched:  # it built and ran before: not a build problem
                raise
            _broken.append(e)
            warnings.warn(f"the Triton paged-attention kernel failed ({type(e).__name__}: {e}); "
                          "decoding falls back to SDPA, which gathers each row's pages "
                          "(slower; flash-attn is the fastest path)")
            return None
    if splits == 1:
        y = O[:, :, 0] / L[:, :, 0, :, None]  # (B, Hkv, G, D)
    else:
        # merge the splits: each holds sum(exp(s - m) v) and sum(exp(s - m)) for its own max m (-inf if empty)
        w = torch.exp(M - M.amax(2, keepdim=True))  # (B, Hkv, splits, G)
        y = (O * w[..., None]).sum(2) / (L * w).sum(2)[..., None]  # (B, Hkv, G, D)
    return y.reshape(B, 1, H, D).to(q.dtype)
