"""
Registers and spills of the Triton paged-decode kernel (paged_attention.py) built for a GPU, without one:
Triton compiles it to PTX for sm_90 and its bundled ptxas reports what each launch configuration uses.
A script, not a test (it needs a Triton whose bundled ptxas reads the PTX it emits: Triton 3.6, the one
torch 2.11's CUDA builds pin, does; CI's Triton 3.9 does not):

    python -m venv /tmp/t36 && /tmp/t36/bin/pip install triton==3.6.0
    /tmp/t36/bin/python tests/compile_kernel.py                 # R1 head shapes, bf16 and fp32, sm_90a

paged_attention.launch_config picks, per head size, a configuration this reports without spills.
"""
import importlib.util
import os
import re
import subprocess
import sys
import tempfile

import triton
from triton.backends.compiler import GPUTarget
from triton.compiler import ASTSource

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def kernel():
    """paged_attention._decode_kernel, defined without importing paged_attention (which imports Triton only
    where the kernel can run)."""
    src = open(os.path.join(ROOT, "paged_attention.py")).read()
    body = src[src.index("    @triton.jit("):src.index("_sm_count, _launched, _broken")]
    path = os.path.join(tempfile.mkdtemp(), "decode_kernel.py")  # triton.jit reads the source of a real file
    with open(path, "w") as f:
        f.write("import triton\nimport triton.language as tl\n"
                + "\n".join(line[4:] for line in body.splitlines()))
    spec = importlib.util.spec_from_file_location("decode_kernel", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module._decode_kernel


def usage(fn, dtype, G, D, page, block_n, warps, arch=90):
    """(registers, spill store bytes, stack bytes) of one launch configuration, from ptxas -v."""
    sig = dict(Q=f"*{dtype}", K=f"*{dtype}", V=f"*{dtype}", Table="*i32", Seqlens="*i32", O="*fp32",
               M="*fp32", L="*fp32", stride_qb="i32", stride_qh="i32", stride_kblk="i32", stride_kpos="i32",
               stride_kh="i32", stride_tb="i32", scale="fp32", pages_per_split="i32", G="constexpr",
               GP="constexpr", D="constexpr", BS="constexpr", BLOCK_N="constexpr", PRECISION="constexpr")
    consts = dict(G=G, GP=max(16, triton.next_power_of_2(G)), D=D, BS=page, BLOCK_N=block_n,
                  PRECISION="ieee" if dtype == "fp32" else "tf32")
    compiled = triton.compile(ASTSource(fn, sig, consts), target=GPUTarget("cuda", arch, 32),
                              options=dict(num_warps=warps))
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "k.ptx"), "w") as f:
            f.write(compiled.asm["ptx"])
        ptxas = os.path.join(os.path.dirname(triton.__file__), "backends", "nvidia", "bin", "ptxas")
        info = subprocess.run([ptxas, "-v", f"--gpu-name=sm_{arch}a", os.path.join(tmp, "k.ptx"), "-o",
                               os.path.join(tmp, "k.cubin")], capture_output=True, text=True).stderr
    regs, spill, stack = (re.search(p, info) for p in (r"Used (\d+) registers", r"(\d+) bytes spill stores",
                                                       r"(\d+) bytes stack frame"))
    if not regs:
        sys.exit(f"ptxas could not build it:\n{info}")
    return int(regs[1]), int(spill[1]) if spill else 0, int(stack[1]) if stack else 0


def main():
    fn = kernel()
    print(f"triton {triton.__version__}, sm_90a, 256-position pages")
    for dtype in ("bf16", "fp32"):
        for G, D, model in ((6, 128, "R1 1.5B"), (7, 128, "R1 7B"), (4, 64, "D 64"), (8, 256, "D 256")):
            for block_n, warps in ((64, 4), (64, 8), (32, 4), (32, 8)):
                regs, spill, stack = usage(fn, dtype, G, D, 256, block_n, warps)
                print(f"{dtype} {model:8} G {G} D {D:3} | BLOCK_N {block_n:3} warps {warps} | "
                      f"{regs:3} registers, {spill:5} B spilled, {stack:5} B stack")


if __name__ == "__main__":
    main()
