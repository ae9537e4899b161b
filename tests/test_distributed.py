"""distributed.py and the decisions ranks must take together: real torchrun processes over gloo."""
import json
import os
import subprocess
import sys
import tempfile

from conftest import ROOT


def torchrun(code, *args, nproc=2, timeout=300):
    """Run code on nproc ranks, with report(**result) writing each rank's result; returns {rank: result} and
    the CompletedProcess."""
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONPATH=ROOT)
    with tempfile.TemporaryDirectory() as tmp:
        with open(os.path.join(tmp, "script.py"), "w") as f:
            f.write(REPORT + code)
        p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone",
                            f"--nproc_per_node={nproc}", f.name, tmp, *args], cwd=ROOT, env=env,
                           capture_output=True, text=True, timeout=timeout)
        out = {}
        for r in range(nproc):
            if os.path.exists(os.path.join(tmp, f"{r}.json")):
                with open(os.path.join(tmp, f"{r}.json")) as f:
                    out[r] = json.load(f)
    return out, p


REPORT = r"""
import json, os, sys
REPORT_DIR = sys.argv.pop(1)
def report(**result):
    with open(os.path.join(REPORT_DIR, os.environ["RANK"] + ".json"), "w") as f:
        json.dump(result, f)
"""


TIMEOUT = r"""
import json, sys, time, torch.distributed as dist
from distributed import init_distributed
rank, world, _ = init_distributed("cpu", timeout_minutes=0.05)  # 3 s
if rank == 0:
    time.sleep(10)  # never reaches the barrier in time
else:
    t = time.time()
    try:
        dist.barrier()
        report(error=None)
    except Exception as e:
        report(error=str(e)[:200], waited=time.time() - t)
import os; os._exit(0)
"""


def test_the_timeout_given_to_init_distributed_is_the_process_groups():
    """A rank waiting at a collective gives up after the timeout passed to the process group (train.py's
    --dist_timeout_min), not the default (NCCL's 10 minutes would kill a 32k-token rollout)."""
    out, p = torchrun(TIMEOUT, timeout=120)
    assert out[1]["error"] and out[1]["waited"] < 7, (out, p.stderr[-2000:])  # 3 s, not until rank 0 ends


KV = r"""
import json, sys, torch
from distributed import init_distributed
from eval import shared_kv_budget
from model import Qwen2Config
rank, world, device = init_distributed("cpu")
cfg = Qwen2Config()
totals = json.loads(sys.argv[1])  # one GPU size per rank: ranks that see different free memory
try:
    kv = shared_kv_budget(cfg, torch.bfloat16, device, totals[rank], 4 * 2**30, 0.9, 33000)
    report(kv=kv)
except SystemExit as e:
    report(refused=str(e))
import os; os._exit(0)
"""


def test_eval_kv_budget_is_decided_by_all_ranks_alike():
    GiB = 2**30
    out, p = torchrun(KV, json.dumps([80 * GiB, 40 * GiB]))
    assert (out[0]["kv"] == out[1]["kv"]
            == (0.9 * 40 * GiB - 4 * GiB) // (2 * 28 * 2 * 128 * 2)), (out, p.stderr)
    out, p = torchrun(KV, json.dumps([80 * GiB, 5 * GiB]))  # one rank too small: both refuse, none waits
    assert "less than one 33,000-token sequence" in out[0]["refused"] and "refused" in out[1], (out, p.stderr)


ON_RANK0 = r"""
import json, os, sys
from distributed import init_distributed, on_rank0
rank, world, _ = init_distributed("cpu")
def decide():
    with open(sys.argv[1], "a") as f:
        f.write(f"rank {rank}\n")  # only rank 0 may write
    if sys.argv[2] == "refuse":
        raise SystemExit("error: refused on rank 0")
    return "go"
try:
    report(result=on_rank0(decide))
except SystemExit as e:
    report(exit=str(e))
os._exit(0)
"""


def test_a_decision_taken_on_rank_0_reaches_every_rank_and_so_does_its_refusal(tmp_path):
    log = tmp_path / "writes"
    out, p = torchrun(ON_RANK0, str(log), "go")
    assert out[0]["result"] == out[1]["result"] == "go" and log.read_text() == "rank 0\n", (out, p.stderr)
    out, p = torchrun(ON_RANK0, str(log), "refuse")
    assert out[0]["exit"] == out[1]["exit"] == "error: refused on rank 0", (out, p.stderr)
