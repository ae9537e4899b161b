"""
One process or torchrun, for train.py and eval.py: joining the process group, reducing over ranks,
deciding together, owning an output folder, and leaving cleanly. Without torchrun a plain process is
rank 0 of 1 and the reductions are no-ops.
"""
import atexit
import json
import os
import socket
import sys
import threading
import time
import uuid
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


class OutDirLock:
    """One run at a time in an out_dir. out_dir/LOCK names its owner (host, pid, a run id, the start time),
    and a thread touches it every HEARTBEAT_S. A lock is stale, and the next run takes it over, when its
    process is gone (same host) or nobody touched it for STALE_S (a run killed on another node cannot).
    It is created with O_EXCL and owned by its content, not by flock, so that it works on shared
    filesystems whose advisory locks cannot be trusted. Every rank checks that it reads rank 0's lock: ranks
    on nodes that do not share out_dir would otherwise each see their own checkpoints, and hang."""
    HEARTBEAT_S, STALE_S = 30, 300

    def __init__(self, out_dir, rank, device, log=print):
        self.path, self.rank, self.created = os.path.join(out_dir, "LOCK"), rank, False
        self.me = dict(host=socket.gethostname(), pid=os.getpid(), run=uuid.uuid4().hex, started=time.time())
        self.lost = None
        error = broadcast_object(self._acquire(log) if rank == 0 else None)
        if error:
            raise SystemExit(error)
        self.me = broadcast_object(self.me)  # every rank holds rank 0's lock
        if not everyone((self.holder() or {}).get("run") == self.me["run"], device):
            raise SystemExit(f"error: not every rank reads the lock that rank 0 wrote in {self.path}: "
                             "the nodes do not share --out_dir. Put it on a filesystem that every node "
                             "mounts (checkpoints and --resume need one)")
        if rank == 0:
            threading.Thread(target=self._heartbeat, daemon=True).start()
            atexit.register(self.release)  # a refusal or a crash frees it; only a kill leaves it (stale)

    def holder(self):
        """The lock's content, or None when there is none (or it cannot be read)."""
        try:
            with open(self.path) as f:
                return dict(json.load(f), age=time.time() - os.path.getmtime(self.path))
        except (OSError, ValueError):
            return None

    def stale(self, h):
        if h["host"] == socket.gethostname():
            try:
                os.kill(h["pid"], 0)
            except ProcessLookupError:
                return True  # that process is gone
            except PermissionError:
                pass  # alive, another user's
        return h["age"] > self.STALE_S

    def _acquire(self, log):
        """Rank 0: take the lock, or say why not (an error line)."""
        folder = os.path.dirname(self.path) or "."
        self.created = not os.path.exists(folder)  # an out_dir this run made is removed again if left empty
        try:
            os.makedirs(folder, exist_ok=True)
            fd = os.open(self.path, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644)
        except FileExistsError:
            h = self.holder()
            if h and not self.stale(h):
                return (f"error: --out_dir {folder} is in use by another run "
                        f"(host {h['host']}, pid {h['pid']}, started {time.ctime(h['started'])}, "
                        f"lock touched {h['age']:.0f} s ago). Pick another --out_dir; if that run is dead, "
                        f"its lock goes stale {self.STALE_S} s after its last touch, or delete {self.path}")
            tmp = f"{self.path}.{self.me['run']}"  # take over a stale lock: the last writer wins
            try:
                with open(tmp, "w") as f:
                    json.dump(self.me, f)
                os.replace(tmp, self.path)
            except OSError as e:
                return f"error: cannot write in --out_dir {folder}: {e.strerror or e}"
            if (self.holder() or {}).get("run") != self.me["run"]:
                return f"error: another run took the stale lock {self.path} at the same moment: pick one run"
            log(f"took over the stale lock of an earlier run ({h or 'unreadable'})")
            return None
        except OSError as e:
            return (f"error: cannot use --out_dir {folder}: {e.strerror or e}. "
                    "Pick a folder this process can create and write")
        with os.fdopen(fd, "w") as f:
            json.dump(self.me, f)
        return None

    def _heartbeat(self):
        while self.lost is None:
            time.sleep(self.HEARTBEAT_S)
            h = self.holder()
            if not h or h.get("run") != self.me["run"]:
                self.lost = h or "deleted"
                return
            try:
                os.utime(self.path)
            except OSError:
                pass

    def check(self):
        """Before writing into out_dir: stop if another run has taken the lock."""
        h = self.holder()
        if self.lost is not None or not h or h.get("run") != self.me["run"]:
            raise SystemExit(f"error: this run no longer holds {self.path} "
                             f"(now: {h or self.lost or 'deleted'}); it stops without writing, "
                             "so as not to mix two runs in one --out_dir")

    def release(self):
        self.lost = "released"
        h = self.holder()
        if self.rank == 0 and h and h.get("run") == self.me["run"]:
            os.remove(self.path)
            if self.created and not os.listdir(os.path.dirname(self.path) or "."):
                os.rmdir(os.path.dirname(self.path))
