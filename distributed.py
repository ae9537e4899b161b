"""
One process or torchrun, for train.py and eval.py: joining the process group, reducing over ranks,
deciding together, and leaving cleanly. Without torchrun a plain process is
rank 0 of 1 and the reductions are no-ops.
"""
import os
import sys
from datetime import timedelta

import torch
import torch.distributed as dist


def init_distributed(device="", timeout_minutes=180):
    """(rank, world_size, torch.device), with or without torchrun. device: "" = CUDA if available, else the
    CPU; "cpu" forces it. Under torchrun: NCCL on GPUs (rank r on GPU LOCAL_RANK), gloo on CPUs.
    timeout_minutes: how long a rank waits for the others at a collective before the job is stopped."""
    # The rollout's KV cache is freed after every rollout, and Adam's state (created at the first update)
    # may land where it was: with expandable segments the next cache maps fresh pages where it needs one
    # contiguous free range otherwise. Set before CUDA initialises.
    os.environ.setdefault("PYTORCH_CUDA_ALLOC_CONF", "expandable_segments:True")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise SystemExit(f"error: --device {device}, but this torch {torch.__version__} sees no CUDA GPU: "
                         "use --device cpu, or a CUDA build of torch on a GPU machine")
    use_cuda = torch.cuda.is_available() and device != "cpu"
    if "RANK" not in os.environ:
        return 0, 1, torch.device(device or ("cuda" if use_cuda else "cpu"))
    if use_cuda:
        torch.cuda.set_device(int(os.environ["LOCAL_RANK"]))
    dist.init_process_group("nccl" if use_cuda else "gloo", timeout=timedelta(minutes=timeout_minutes))
    rank, world = dist.get_rank(), dist.get_world_size()
    return rank, world, (torch.device("cuda", int(os.environ["LOCAL_RANK"])) if use_cuda
                         else torch.device("cpu"))


def all_sum(t):
    """Sum a tensor over ranks, in place; returns it."""
    if dist.is_initialized():
        dist.all_reduce(t)
    return t


def all_max(t):
    if dist.is_initialized():
        dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return t


def everyone(ok, device):
    """True on every rank if ok is true on every rank: a check that one rank fails stops all of them,
    instead of leaving the others waiting at the next collective."""
    return bool(all_sum(torch.tensor([0 if ok else 1], device=device)).item() == 0)


def barrier():
    if dist.is_initialized():
        dist.barrier()


def finish():
    """Leave: every rank past its last collective, the process group destroyed, output flushed, then exit at
    once (torchrun with gloo can abort after the work is done otherwise)."""
    if dist.is_initialized():
        dist.barrier()
        dist.destroy_process_group()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(0)


def broadcast_object(obj):
    """Rank 0's obj on every rank."""
    if not dist.is_initialized():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=0)
    return box[0]


def on_rank0(fn):
    """fn() run on rank 0 alone (it may write files), its result on every rank. A SystemExit there stops
    every rank, not only rank 0 while the others wait at the next collective."""
    out = None
    if not dist.is_initialized() or dist.get_rank() == 0:
        try:
            out = ("ok", fn())
        except SystemExit as e:
            out = ("exit", e.code)
    out = broadcast_object(out)
    if out[0] == "exit":
        raise SystemExit(out[1])
    return out[1]
