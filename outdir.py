"""
A training run's --out_dir: one run at a time in it (the lock), its checkpoints, and what a new or a
resumed run finds there. train.py's operating rules, kept out of its algorithm:

- a new run into an out_dir that holds a run, or its logs, is refused before anything is written;
- --resume continues the same run from its latest complete checkpoint, refusing settings that would change
  what it computes; a larger --iters extends a finished run and keeps its final model;
- a --resume with no checkpoint starts over, its partial logs moved aside, so that a scheduler can requeue
  the same command line forever.
"""
import atexit
import dataclasses
import glob
import json
import os
import random
import re
import shutil
import socket
import threading
import time
import uuid

import torch

from distributed import barrier, broadcast_object, everyone

# Settings a resumed run may change: how it runs, not what it computes. Any other difference from the
# run's settings is refused on --resume, with the list.
RESUMABLE = {"preset", "iters", "resume", "out_dir", "save_every", "device", "threads", "rollout_slots",
             "cuda_graph", "reward_workers", "micro_batch_size", "micro_batch_tokens", "grad_ckpt", "fsdp",
             "wandb", "wandb_project", "dist_timeout_min"}
LOGS = ("metrics.jsonl", "samples.jsonl", "config.json", "summary.json", "eval_initial.json",
        "eval_initial.samples.jsonl", "eval_final.json", "eval_final.samples.jsonl")


def latest_checkpoint(out_dir):
    """The checkpoint (iter_NNNNNN/ or final/) with the most iterations done, or None. A folder counts once
    its state.json exists (written last); iter_NNNNNN.tmp, a save in progress, never does."""
    best, best_iter = None, -1
    for d in glob.glob(os.path.join(out_dir, "iter_*")) + [os.path.join(out_dir, "final")]:
        if (os.path.basename(d) == "final" or re.fullmatch(r"iter_\d+", os.path.basename(d))) and \
                os.path.exists(os.path.join(d, "state.json")):
            n = checkpoint_iter(d)
            best, best_iter = (d, n) if n > best_iter else (best, best_iter)
    return best


def is_model_folder(folder):
    """Is folder a Hugging Face model folder? Its config.json names a model_type; a run's config.json (the
    TrainConfig) does not."""
    config = _read_json(os.path.join(folder, "config.json"))
    return isinstance(config, dict) and "model_type" in config


def checkpoint_iter(checkpoint):
    """The iterations a checkpoint has done, from its state.json."""
    state = _read_json(os.path.join(checkpoint, "state.json"))
    if not (isinstance(state, dict) and type(state.get("iter")) is int and state["iter"] >= 0):
        raise damaged(checkpoint, 'state.json: not {"iter": N, ...}')
    return state["iter"]


def damaged(checkpoint, what):
    return SystemExit(f"error: the checkpoint {checkpoint} is damaged ({what}): delete that folder, and "
                      "--resume continues from the checkpoint before it (or starts over if there is none)")


def check_out_dir(cfg, final_evaluated, log):
    """What out_dir holds decides how the run starts: returns the checkpoint to resume from, None to start
    afresh, or "finished" when a resumed run has nothing left to do. final_evaluated(): whether the held-out
    evaluation of the final model is on disk (a run killed during it resumes to do it)."""
    checkpoint = latest_checkpoint(cfg.out_dir)
    logs = [f for f in LOGS if os.path.exists(os.path.join(cfg.out_dir, f))]
    if checkpoint and not cfg.resume:
        raise SystemExit(f"error: --out_dir {cfg.out_dir} already holds a run: continue it with --resume, "
                         "or pick another --out_dir (or delete this one)")
    if not checkpoint:
        if logs and not cfg.resume:
            raise SystemExit(f"error: --out_dir {cfg.out_dir} holds the logs of a run that saved no "
                             "checkpoint: --resume starts it over (its logs are moved aside), "
                             "or pick another --out_dir")
        if logs:
            aside = os.path.join(cfg.out_dir, time.strftime("restarted-%Y%m%d-%H%M%S"))
            os.makedirs(aside)
            for f in logs:
                os.replace(os.path.join(cfg.out_dir, f), os.path.join(aside, f))
            log(f"--resume: no checkpoint in {cfg.out_dir}: starting over; "
                f"the earlier attempt's logs are in {aside}")
        return None
    saved = _read_json(os.path.join(checkpoint, "train_config.json")) or \
        _read_json(os.path.join(cfg.out_dir, "config.json")) or {}
    new = dataclasses.asdict(cfg)
    changed = [f"--{k} {saved[k]!r} -> {new.get(k)!r}" for k in saved
               if k not in RESUMABLE and saved[k] != new.get(k)]
    if changed:
        raise SystemExit(f"error: --resume continues the run in {cfg.out_dir}, and these settings would "
                         f"change what it computes: {', '.join(changed)}. Resume with the run's settings, "
                         "or start a new run in another --out_dir")
    done = checkpoint_iter(checkpoint)
    for name in ("train_state.pt", "config.json"):  # checked before final/ is renamed below
        if not os.path.exists(os.path.join(checkpoint, name)):
            raise damaged(checkpoint, f"{name}: missing")
    if done > cfg.iters:
        raise SystemExit(f"error: the run in {cfg.out_dir} has done {done} iterations, more than --iters "
                         f"{cfg.iters}: resume it with --iters {done} or more")
    final = os.path.basename(checkpoint) == "final"
    if done == cfg.iters and final and final_evaluated():
        log(f"the run in {cfg.out_dir} finished {done} iterations: nothing to do "
            "(a larger --iters continues it)")
        return "finished"
    if final and done < cfg.iters:  # the finished model stays, as the checkpoint of its iteration
        kept = os.path.join(cfg.out_dir, f"iter_{done:06d}")
        os.replace(checkpoint, kept)
        for f in ("eval_final.json", "eval_final.samples.jsonl"):  # its evaluation goes with it: what is
            if os.path.exists(os.path.join(cfg.out_dir, f)):   # left in out_dir is never another model's
                os.replace(os.path.join(cfg.out_dir, f), os.path.join(kept, f))
        log(f"continuing a finished run past iteration {done}: its final model (and evaluation) is kept "
            f"as {kept}")
        checkpoint = kept
    return checkpoint


def save_checkpoint(path, cfg, policy, opt, state, rank, lock):
    """A Hugging Face model folder + the optimizer, counters and RNG (train_state.pt) + the run's settings
    (train_config.json), written to path.tmp then renamed: a crash mid-save leaves the previous checkpoint
    intact. Every rank joins (FSDP gathers); rank 0 writes."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, get_state_dict

    from model import Qwen2
    options = StateDictOptions(full_state_dict=True, cpu_offload=True)
    model_sd, opt_sd = get_state_dict(policy, opt, options=options)
    if rank == 0:
        lock.check()
        tmp = path + ".tmp"
        shutil.rmtree(tmp, ignore_errors=True)
        with torch.device("meta"):
            full = Qwen2(policy.config)
        full.load_state_dict(model_sd, assign=True)
        full.save_pretrained(tmp, tokenizer_dir=policy.source)
        rng = dict(python=random.getstate(), torch=torch.get_rng_state())
        torch.save(dict(optimizer=opt_sd, state=state, rng=rng), os.path.join(tmp, "train_state.pt"))
        with open(os.path.join(tmp, "train_config.json"), "w") as f:
            json.dump(dataclasses.asdict(cfg), f, indent=2)
        with open(os.path.join(tmp, "state.json"), "w") as f:
            json.dump(state, f)
        shutil.rmtree(path, ignore_errors=True)  # only final/ is ever rewritten; iter_* names are unique
        os.replace(tmp, path)
    barrier()


def load_checkpoint(path, policy, opt, rank, sharded):
    """The optimizer state, counters and RNG of a checkpoint (its weights are loaded with the model).
    The full optimizer state is 8 B a parameter (61 GB at 7B): under FSDP rank 0 alone reads it and sends
    every rank its shard, instead of every process of a node holding a copy. Returns the counters."""
    from torch.distributed.checkpoint.state_dict import StateDictOptions, set_optimizer_state_dict
    ck, error = {}, None
    if rank == 0 or not sharded:
        try:
            ck = torch.load(os.path.join(path, "train_state.pt"), map_location="cpu", weights_only=False)
        except Exception as e:  # a truncated or corrupt file (torch's zip reader and unpickler errors)
            error = damaged(path, f"train_state.pt: {type(e).__name__}: {e}")
    if sharded:  # only rank 0 read it: the others stop with it, not at the broadcast below
        error = broadcast_object(error)
    if error:
        raise error
    set_optimizer_state_dict(policy, opt, ck.get("optimizer", {}),
                             options=StateDictOptions(full_state_dict=True, broadcast_from_rank0=sharded))
    state, rng = broadcast_object((ck.get("state"), ck.get("rng")))
    random.setstate(rng["python"])
    torch.set_rng_state(rng["torch"])
    return state


def truncate_logs(out_dir, n_iters):
    """On resume, drop the log lines of iterations after the checkpoint (they will be run again), and a line
    torn by a kill in the middle of its write."""
    def before(line):
        try:
            return json.loads(line)["iter"] <= n_iters
        except (ValueError, KeyError, TypeError):
            return False
    for name in ("metrics.jsonl", "samples.jsonl"):
        path = os.path.join(out_dir, name)
        if os.path.exists(path):
            with open(path, errors="replace") as f:  # torn bytes fail json.loads: the line is dropped
                lines = [line for line in f if before(line)]
            with open(path, "w") as f:
                f.writelines(lines)


def _read_json(path):
    try:
        with open(path) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


# -----------------------------------------------------------------------------
# the lock

class OutDirLock:
    """One run at a time in an out_dir. out_dir/LOCK names its owner (host, pid, a run id, the start time),
    and a thread touches it every HEARTBEAT_S.

    - It is created complete and at once (a full temporary file hard-linked to LOCK: atomic, also on NFS),
      and owned by its content, not by flock, whose semantics shared filesystems do not all keep.
    - It is stale, and the next run takes it over, when its process is gone (same host; the same pid as
      ours is a restarted container's earlier life) or nobody touched it for STALE_S (a run killed on
      another node cannot), its age read on the filesystem's clock, not ours. An unreadable lock is held
      until it is that old. One run at a time takes a stale lock over (LOCK.takeover, created O_EXCL).
    - Every rank checks that it reads rank 0's lock: ranks on nodes that do not share out_dir would each
      see their own checkpoints, and hang. Rank 0 checks it before every write.
    """
    HEARTBEAT_S, STALE_S = 30, 300

    def __init__(self, out_dir, rank, device, log=print):
        self.path, self.rank, self.created = os.path.join(out_dir, "LOCK"), rank, False
        self.me = dict(host=socket.gethostname(), pid=os.getpid(), run=uuid.uuid4().hex, started=time.time())
        self.lost = None
        error = broadcast_object(self._acquire(log) if rank == 0 else None)
        if error:
            raise SystemExit(error)
        self.me = broadcast_object(self.me)  # every rank holds rank 0's lock
        if not everyone(self.holder().get("run") == self.me["run"], device):
            raise SystemExit(f"error: not every rank reads the lock that rank 0 wrote in {self.path}: "
                             "the nodes do not share --out_dir. Put it on a filesystem that every node "
                             "mounts (checkpoints and --resume need one)")
        if rank == 0:
            threading.Thread(target=self._heartbeat, daemon=True).start()
            atexit.register(self.release)  # a refusal or a crash frees it; only a kill leaves it (stale)

    def holder(self, path=None):
        """The lock's content and age ({} when there is none; run None when it cannot be read)."""
        path = path or self.path
        try:
            age = self._now() - os.path.getmtime(path)
        except OSError:
            return {}
        try:
            with open(path) as f:
                return dict(json.load(f), age=age)
        except (OSError, ValueError, TypeError):  # TypeError: JSON, but not an object
            return dict(run=None, age=age)

    def _now(self):
        """The filesystem's clock: the time stamp a file written now gets (nodes' clocks may disagree)."""
        probe = f"{self.path}.now-{socket.gethostname()}-{os.getpid()}"
        with open(probe, "w"):
            pass
        try:
            return os.path.getmtime(probe)
        finally:
            os.remove(probe)

    def stale(self, h):
        if h.get("run") and h.get("host") == socket.gethostname():
            if h["pid"] == os.getpid():
                return True  # our pid, not our run: an earlier life of this container
            try:
                os.kill(h["pid"], 0)
            except ProcessLookupError:
                return True  # that process is gone
            except PermissionError:
                pass  # alive, another user's
        return h["age"] > self.STALE_S

    def _create(self):
        """LOCK with our content, or FileExistsError: a complete file linked into place in one step."""
        tmp = f"{self.path}.{self.me['run']}"
        with open(tmp, "w") as f:
            json.dump(self.me, f)
        try:
            os.link(tmp, self.path)
        finally:
            os.remove(tmp)

    def _acquire(self, log):
        """Rank 0: take the lock, or say why not (an error line)."""
        folder = os.path.dirname(self.path) or "."
        self.created = not os.path.exists(folder)  # an out_dir this run made is removed again if left empty
        took = None
        try:
            os.makedirs(folder, exist_ok=True)
            for _ in range(3):
                try:
                    self._create()
                    if took:
                        log(f"took over the stale lock of an earlier run ({took})")
                    return None
                except FileExistsError:
                    pass
                h = self.holder()
                if h and not self.stale(h):
                    owner = (f"another run on host {h.get('host')}, pid {h['pid']}" if "pid" in h
                             else "a lock file that does not say whose it is")
                    return (f"error: --out_dir {folder} is in use by {owner} (lock touched {h['age']:.0f} s "
                            f"ago). Pick another --out_dir; if that run is dead, its lock goes stale "
                            f"{self.STALE_S} s after its last touch, or delete {self.path}")
                if h:
                    error, took = self._take_over(h), h
                    if error:
                        return error
        except OSError as e:
            return (f"error: cannot use --out_dir {folder}: {e.strerror or e}. "
                    "Pick a folder this process can create and write")
        return f"error: other runs keep taking {self.path}: run one at a time"

    def _take_over(self, h):
        """Remove the stale lock h, one taker at a time; the caller then creates its own."""
        guard = self.path + ".takeover"
        try:
            os.close(os.open(guard, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o644))
        except FileExistsError:
            if self.holder(guard).get("age", 0) > self.STALE_S:  # its taker died: clear it, try again
                os.remove(guard)
                return None
            return f"error: another run is taking over the stale lock {self.path} at this moment"
        try:
            now = self.holder()
            if now and now.get("run") == h.get("run") and self.stale(now):
                os.remove(self.path)
        finally:
            os.remove(guard)
        return None

    def _heartbeat(self):
        misses = 0
        while self.lost is None:
            time.sleep(self.HEARTBEAT_S)
            h = self.holder()
            if h.get("run") == self.me["run"]:
                misses = 0
                try:
                    os.utime(self.path)
                except OSError:
                    pass
            elif h.get("run") or (misses := misses + 1) >= 3:  # another run's, or gone three times running
                self.lost = h or "deleted"

    def check(self):
        """Before writing into out_dir: stop if another run has taken the lock."""
        for attempt in range(3):  # a transient read error on a network filesystem is not a lost lock
            h = self.holder()
            if self.lost is None and h.get("run") == self.me["run"]:
                return
            if h.get("run") or self.lost is not None:
                break
            time.sleep(1)
        raise SystemExit(f"error: this run no longer holds {self.path} (now: {h or self.lost or 'deleted'}); "
                         "it stops without writing, so as not to mix two runs in one --out_dir")

    def release(self):
        if self.rank != 0 or self.lost == "released":
            return
        self.lost = "released"
        if self.holder().get("run") == self.me["run"]:
            os.remove(self.path)
            if self.created and not os.listdir(os.path.dirname(self.path) or "."):
                os.rmdir(os.path.dirname(self.path))
