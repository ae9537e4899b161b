"""bench.py: both commands run as scripts and end in a parseable JSON line, and the forced response lengths
make our sampler and transformers generate do exactly the same work. No timing assertions."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from conftest import ROOT
import bench
from configurator import parse_args
from sample import generate


ONE_THREAD = dict(os.environ, OMP_NUM_THREADS="1")


def run_script(*args):
    p = subprocess.run([sys.executable, "bench.py", *args], cwd=ROOT, capture_output=True, text=True,
                       timeout=300, env=ONE_THREAD)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    return json.loads(p.stdout.strip().splitlines()[-1])


def test_sample_command_reports_every_method_with_positive_numbers_in_its_json_line():
    out = run_script("sample", "--shape", "tiny", "--prompts", "6", "--prompt_len", "8",
                     "--max_new_tokens", "12", "--batch", "2,6", "--repeats", "1", "--device", "cpu",
                     "--profile", "true")
    assert out["bench"] == "sample" and out["bandwidth_gb_s"] > 0
    assert {(r["batch"], r["method"]) for r in out["runs"]} == {
        (b, m) for b in (2, 6) for m in ("continuous", "lock-step", "HF static")}
    tokens = {r["tokens"] for r in out["runs"]}
    assert len(tokens) == 1 and tokens.pop() > 6  # the same work for every method, not all 1-token answers
    for r in out["runs"]:
        for k in ("seconds", "tokens_per_s", "decode_steps", "ms_per_step", "bw_util", "peak_mem_mib"):
            assert r[k] > 0, (r["method"], k)
    assert [r["batch"] for r in out["ratios"]] == [2, 6]
    assert all(r["continuous_vs_lockstep"] > 0 and r["ours_vs_hf"] > 0 for r in out["ratios"])


def test_train_command_reports_tokens_per_second_and_mfu():
    out = run_script("train", "--shape", "tiny", "--tokens", "160", "--prompt_len", "16", "--repeats", "1",
                     "--device", "cpu")
    assert out["bench"] == "train" and out["sequences"] >= 2 and 100 <= out["tokens"] <= 160
    for k in ("update_seconds", "update_tokens_per_s", "mfu", "score_tokens_per_s", "peak_flops",
              "peak_mem_mib"):
        assert out[k] > 0, k
    assert out["mfu"] < 1


def test_unknown_shape_is_refused_with_the_valid_ones():
    with pytest.raises(SystemExit, match="tiny, 10m, r1-1.5b, r1-7b"):
        parse_args(bench.BenchConfig, ["--shape", "r1-3b"])


@pytest.mark.skipif(torch.cuda.is_available(), reason="the error is for a torch without CUDA")
def test_cuda_device_without_cuda_is_a_one_line_error():
    p = subprocess.run([sys.executable, "bench.py", "sample", "--shape", "tiny", "--device", "cuda"],
                       cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "sees no CUDA GPU" in p.stderr


def test_response_lengths_count_through_the_first_eos_only():
    E = bench.EOS
    gen = torch.tensor([[5, E, E, E], [5, 6, 7, 8], [E, 3, E, E]])
    assert bench.response_lengths(gen) == [2, 4, 1]


@pytest.mark.parametrize("temperature", [0.0, 1.0])
def test_forced_lengths_are_honoured_identically_by_our_sampler_and_transformers(temperature):
    """Random weights, lengths 1 and max_new_tokens included, slots fewer than prompts (refills happen): every
    row stops exactly at its forced length in our continuous and lock-step modes and in HF generate."""
    cfg = bench.BenchConfig(shape="tiny", max_new_tokens=10, temperature=temperature)
    model = bench.build_model("tiny", torch.device("cpu"), torch.float32, seed=0).eval()
    rng = np.random.default_rng(1)
    targets = [1, 10, 3, 7, 2, 10, 5]
    prompts = [rng.integers(11, model.config.vocab_size, int(n)).tolist() + [t]
               for n, t in zip(rng.integers(3, 9, len(targets)), targets)]
    ours = bench.ForcedLengths(model, cfg.max_new_tokens)
    for continuous in (True, False):
        assert bench.run_ours(ours, prompts, 3, cfg, continuous)[0] == targets
    comps = generate(ours, prompts, max_new_tokens=10, eos_token_id=bench.EOS, temperature=temperature,
                     slots=3)
    assert all(c.finished and c.tokens[-1] == bench.EOS for c in comps)
    hf = bench.hf_twin(model, "sdpa")
    for cache in ("static", "dynamic"):
        assert bench.run_hf(hf, prompts, 3, cfg, cache)[0] == targets
    # without the countdown the same random model runs every row to the limit: the forcing does the work
    free = generate(model, prompts, max_new_tokens=10, eos_token_id=bench.EOS, temperature=temperature,
                    slots=3)
    assert [len(c.tokens) for c in free] != targets


def test_train_command_under_torchrun_with_fsdp_reports_the_planned_peak_beside_the_measured_one():
    """.ci/gpu runs the 7B update this way on one GPU; here the same code path on the CPU (gloo)."""
    p = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=1",
                        "bench.py", "train", "--shape", "tiny", "--repeats", "1", "--fsdp", "true",
                        "--adam", "false"],
                       cwd=ROOT, capture_output=True, text=True, timeout=300, env=ONE_THREAD)
    assert p.returncode == 0, p.stderr[-3000:]
    out = json.loads(p.stdout.strip().splitlines()[-1])
    assert out["fsdp"] and out["planned_peak_mib"] > 0 and out["update_tokens_per_s"] > 0


@pytest.mark.parametrize("mode", ["kernel", "rollouts"])
def test_gpu_only_commands_say_so_on_a_cpu(mode):
    if torch.cuda.is_available():
        pytest.skip("a GPU is here: .ci/gpu runs these")
    p = subprocess.run([sys.executable, "bench.py", mode], cwd=ROOT, capture_output=True, text=True,
                       timeout=120, env=ONE_THREAD)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "needs CUDA" in p.stderr
