"""The Triton paged-decode kernel (paged_attention.py), on the CPU through Triton's interpreter.

On CUDA without flash-attn, model.attention decodes from the paged cache with this kernel. Here each check
runs in a subprocess with TRITON_INTERPRET=1 (read when triton is imported), which executes the same kernel
code in numpy; the interpreter's bf16 tl.dot is broken, so these checks are fp32. The CUDA-only tests here
and in test_sample.py run the compiled kernel, in bf16 too, on a GPU.
"""
import functools
import json
import os
import subprocess
import sys
from collections import Counter

import pytest
import torch

from conftest import ROOT
from test_sample import model, model_dir, prompts_of  # noqa: F401  (fixtures)
from sample import generate

# requirements-dev.txt on Linux
pytest.importorskip("triton", reason="Triton has no wheels for this platform")


def run_script(code, *args, interpret=True):
    env = dict(os.environ, OMP_NUM_THREADS="1",
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    env.pop("TRITON_INTERPRET", None)
    if interpret:  # read when triton is imported: only a fresh process can switch it
        env["TRITON_INTERPRET"] = "1"
    r = subprocess.run([sys.executable, "-c", code, *args], env=env, capture_output=True, text=True,
                       timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    return r


LOOP = r"""
import torch, triton, triton.language as tl
@triton.jit
def ones(X, n):
    for i in range(0, n):
        tl.store(X + i, 1.0)
ones[(1,)](torch.zeros(2), 2)
"""


@pytest.fixture
def interpreter():
    """Skips where Triton's interpreter cannot run a loop at all: Triton 3.6 (what torch 2.11 bundles) calls
    int() on 1-element arrays, which NumPy 2.4 refuses. CI's Triton can; a GPU machine runs the CUDA tests
    below, on the compiled kernel, instead. Any other failure of the probe fails the test."""
    if not _interpreter_runs_loops():
        pytest.skip("this Triton's interpreter cannot run loops with this NumPy")


@functools.lru_cache(maxsize=None)
def _interpreter_runs_loops():
    try:
        run_script(LOOP)
    except AssertionError as e:
        if "only 0-dimensional arrays can be converted" not in str(e):
            raise
        return False
    return True


KERNEL_VS_REFERENCE = r"""
import json, sys, torch
import paged_attention
from paged_attention import paged_decode
cases, device, dtype = json.loads(sys.argv[1]), sys.argv[2], getattr(torch, sys.argv[3])
assert paged_attention.INTERPRET == (device == "cpu")
g = torch.Generator(device).manual_seed(0)
out = []
for B, H, Hkv, D, bs, width, block_n, scale in cases:
    n_blocks = B * width + 1
    k, v = (torch.randn(n_blocks, bs, Hkv, D, generator=g, device=device).to(dtype) for _ in range(2))
    seqlens = torch.randint(0, width * bs, (B,), generator=g, device=device, dtype=torch.int32)
    seqlens[0], seqlens[-1] = 0, width * bs - 1  # one key, and the full table
    table = torch.zeros(B, width + 2, dtype=torch.int32, device=device)  # sliced below: a strided view
    table[:, :width] = (torch.randperm(n_blocks - 1, generator=g, device=device)[:B * width]
                        + 1).view(B, width)
    table = table[:, :width]
    q = (scale * torch.randn(B, 1, H, D, generator=g, device=device)).to(dtype)
    y = paged_decode(q, k, v, seqlens, table, block_n=block_n)
    assert y is not None, paged_attention._broken
    err = 0.0
    for b in range(B):
        n = int(seqlens[b]) + 1
        kk = k[table[b].long()].flatten(0, 1)[:n].repeat_interleave(H // Hkv, 1).double()  # (n, H, D)
        vv = v[table[b].long()].flatten(0, 1)[:n].repeat_interleave(H // Hkv, 1).double()
        att = torch.softmax(torch.einsum("hd,nhd->hn", q[b, 0].double(), kk) / D ** 0.5, -1)
        err = max(err, (torch.einsum("hn,nhd->hd", att, vv) - y[b, 0].double()).abs().max().item())
    out.append(dict(case=[B, H, Hkv, D, bs, width, block_n, scale], err=err, finite=bool(y.isfinite().all())))
print(json.dumps(out))
"""


def kernel_errors(cases, device="cpu", dtype="float32"):
    """Largest difference per case between the kernel and float64 attention over each row's pages in
    order."""
    out = json.loads(run_script(KERNEL_VS_REFERENCE, json.dumps(cases), device, dtype,
                                interpret=device == "cpu").stdout)
    assert len(out) == len(cases) and all(r["finite"] for r in out), out
    return out


def test_triton_paged_decode_equals_softmax_attention_over_each_rows_pages(interpreter):
    """Rows of one position and of the full table in scattered pages, GQA groups of 1 to 7 heads (padded
    to 16 rows for tl.dot), pages that BLOCK_N does not divide or does not fill, pages of several blocks
    (one page index per block), a strided table, 1 to 8 splits per row, and logits up to ~100 (the online
    softmax must subtract its running max). In the interpreter, fp32."""
    # (rows, query heads, KV heads, head size, page size, table width, BLOCK_N, query scale)
    cases = [(5, 4, 2, 16, 16, 7, 64, 1), (1, 7, 1, 32, 5, 9, 16, 30), (3, 12, 2, 16, 48, 3, 32, 1),
             (2, 2, 2, 16, 16, 12, 16, 1), (9, 28, 4, 16, 8, 4, 64, 1), (1, 1, 1, 64, 4, 40, 16, 30),
             (4, 12, 2, 32, 128, 10, 64, 1)]
    for r in kernel_errors(cases):
        assert r["err"] < 1e-5 * (1 + r["case"][-1]), r


GENERATE = r"""
import json, sys, warnings
import torch
import paged_attention
from model import Qwen2
from sample import generate
calls = []
kernel = paged_attention.paged_decode
paged_attention.paged_decode = lambda *a, **k: calls.append(a[0].shape[0]) or kernel(*a, **k)
if sys.argv[2] == "broken":  # a Triton that cannot compile the kernel: its launch raises
    class Broken:
        def __getitem__(self, grid):
            raise RuntimeError("PTX: no such instruction")
    paged_attention._decode_kernel = Broken()
model = Qwen2.from_pretrained(sys.argv[1], device="cpu").eval()
kw = json.loads(sys.argv[3])
prompts = kw.pop("prompts")
with warnings.catch_warnings(record=True) as caught:
    warnings.simplefilter("always")
    runs = [generate(model, prompts, **kw, **extra) for extra in json.loads(sys.argv[4])]
print(json.dumps(dict(calls=len(calls), rows=sorted(set(calls)), warnings=[str(w.message) for w in caught],
                      decoding=paged_attention.decode_path(model.config, torch.device("cpu"), torch.float32),
                      runs=[[(c.tokens, c.logprobs, c.finished) for c in run] for run in runs])))
"""
EXTRAS = [dict(slots=4, sync_every=3), dict(slots=6, kv_tokens=24, block_size=4, sync_every=2),
          dict(slots=12, block_size=64)]


@pytest.fixture(scope="module")
def sdpa_runs(model):  # noqa: F811
    prompts = prompts_of([4, 1, 9, 6], seed=5)
    kw = dict(n=3, max_new_tokens=12, temperature=1.0, seed=11)
    free = generate(model, prompts, eos_token_id=-1, **kw)
    # many stop early
    kw["eos_token_id"] = Counter(t for c in free for t in c.tokens[:6]).most_common(1)[0][0]
    return dict(prompts=prompts, **kw), [generate(model, prompts, **kw, **extra) for extra in EXTRAS]


def test_generate_through_triton_paged_decode_equals_sdpa_decode(model_dir, sdpa_runs,  # noqa: F811
                                                                 interpreter):
    """The whole sampler on the kernel (slot refills, the tail compaction, evictions and regeneration, pages
    of 4, 16 and 64 positions): the same tokens as the SDPA path, log-probs to fp32 rounding."""
    kw, sdpa = sdpa_runs
    out = json.loads(run_script(GENERATE, model_dir, "ok", json.dumps(kw), json.dumps(EXTRAS)).stdout)
    # every decode step, all row counts
    assert out["calls"] > 100 and len(out["rows"]) > 2 and not out["warnings"]
    assert out["decoding"] == "Triton paged kernel"
    assert 0 < sum(c.finished for c in sdpa[0]) < len(sdpa[0])
    for run, ref in zip(out["runs"], sdpa):
        assert [c[0] for c in run] == [c.tokens for c in ref]
        assert [c[2] for c in run] == [c.finished for c in ref]
        for (_, lp, _), c in zip(run, ref):
            torch.testing.assert_close(torch.tensor(lp), torch.tensor(c.logprobs), rtol=1e-5, atol=1e-5)


def test_a_kernel_that_fails_to_compile_warns_once_and_decodes_through_sdpa(model_dir,  # noqa: F811
                                                                           sdpa_runs, interpreter):
    kw, sdpa = sdpa_runs
    out = json.loads(run_script(GENERATE, model_dir, "broken", json.dumps(kw), json.dumps(EXTRAS[:1])).stdout)
    assert out["calls"] == 1  # tried once
    assert len(out["warnings"]) == 1 and "falls back to SDPA" in out["warnings"][0]
    assert out["decoding"].startswith("SDPA")  # what train.py and bench.py then report
    assert [c[0] for c in out["runs"][0]] == [c.tokens for c in sdpa[0]]


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", ["float32", "bfloat16"])
def test_compiled_kernel_on_cuda_equals_attention_at_the_r1_head_shapes(dtype):
    """The compiled kernel (not the interpreter) at the R1 1.5B and 7B head layouts and the 256-position
    pages used on CUDA: one long row (many splits), 64 rows of mixed lengths; bf16 to bf16 rounding."""
    cases = [(1, 12, 2, 128, 256, 12, 64, 1), (64, 12, 2, 128, 256, 12, 64, 1),
             (8, 28, 4, 128, 256, 12, 64, 3)]
    for r in kernel_errors(cases, "cuda", dtype):
        assert r["err"] < (1e-4 if dtype == "float32" else 5e-2), r


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_compiled_and_graphed_decode_step_with_the_kernel_inside_equals_eager_on_cuda(
        model_dir):  # noqa: F811
    """torch.compile traces the kernel launch (a user-defined Triton kernel, no Python fallback there) and a
    CUDA graph replays it: the same tokens and log-probs as eager decoding."""
    import paged_attention
    from model import Qwen2
    # bf16 fusions could flip a token
    gpu = Qwen2.from_pretrained(model_dir, device="cuda", dtype=torch.float32).eval()
    prompts = prompts_of([4, 1, 9, 6], seed=5)
    kw = dict(n=3, max_new_tokens=40, temperature=1.0, seed=11, eos_token_id=7, slots=6, block_size=16)
    eager = generate(gpu, prompts, **kw)
    compiled = generate(gpu, prompts, compile=True, cuda_graph=True, **kw)
    assert [c.tokens for c in compiled] == [c.tokens for c in eager]
    for a, b in zip(compiled, eager):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-4, atol=1e-4)
    assert paged_attention.triton and not paged_attention._broken  # fp32: flash-attn would not take it either
