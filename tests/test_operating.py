"""Runs that survive operators, schedulers and typos: real subprocess runs of train.py, eval.py and sample.py
with bad settings, busy or stale out_dirs, kills at random moments and resumes. Each test names the
defect it prevents: a silent or destructive outcome before these checks existed."""
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time

import pytest
import torch

from conftest import ROOT
from test_train import TOY_ARGS, assert_exactly_the_same_run, load_weights, read_metrics, run_train

ENV = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
TOY_MODEL = os.path.join(ROOT, "toy-model")


def script(name, *args, cwd=ROOT, timeout=300):
    """Run a script; returns the CompletedProcess (any exit code)."""
    return subprocess.run([sys.executable, os.path.join(ROOT, name), *args], cwd=cwd, env=ENV,
                          capture_output=True, text=True, timeout=timeout)


def refused(p, message):
    """A one-line error naming the problem: non-zero exit, no traceback."""
    assert p.returncode != 0 and "Traceback" not in p.stderr and message in p.stderr, (
        p.stdout[-2000:] + p.stderr[-3000:])


def train(out_dir, *args, **kw):
    return script("train.py", *TOY_ARGS, "--out_dir", str(out_dir), *args, **kw)


def start_train(out_dir, *args):
    return subprocess.Popen([sys.executable, os.path.join(ROOT, "train.py"), *TOY_ARGS, "--out_dir",
                             str(out_dir), *args], cwd=ROOT, env=ENV, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for(condition, proc=None, timeout=300, poll_s=0.05):
    end = time.time() + timeout
    while not condition():
        assert proc is None or proc.poll() is None, proc.communicate()
        assert time.time() < end, "timed out"
        time.sleep(poll_s)


def model_copy(tmp_path, name="m", files=None):
    """The toy model's folder, copied (all its files, or only `files`)."""
    out = tmp_path / name
    out.mkdir()
    for f in files or os.listdir(TOY_MODEL):
        shutil.copy(os.path.join(TOY_MODEL, f), out / f)
    return out


# -----------------------------------------------------------------------------
# 1. settings that training cannot use; a non-finite loss

@pytest.mark.parametrize("flag, value, message", [
    ("--temperature", "0", "--temperature must be > 0"), ("--top_p", "0", "--top_p must be in (0, 1]"),
    ("--lr", "nan", "--lr must be > 0"), ("--kl_coef", "-1", "--kl_coef must be >= 0"),
    ("--clip_eps", "1.5", "--clip_eps must be in (0, 1)"),
    ("--dtype", "foo", "--dtype must be float32, bfloat16"),
    ("--device", "mps", "--device must be cpu, cuda or cuda:N"),  # used to fail inside torch, leaving a LOCK
    ("--out_dir", "", "--out_dir is empty"),  # used to train into the current directory
    ("--iters", "2.9e0", "--iters expects an int"), ("--iters", "1e400", "--iters expects an int"),  # read as 2;
    ("--seed", "1e30", "--seed must be in [-2**63, 2**63)")])  # an OverflowError; one inside torch.manual_seed
def test_settings_training_cannot_use_are_refused_before_the_model_loads(tmp_path, flag, value, message):
    # temperature 0 used to exit 0 with every final weight NaN
    p = train(tmp_path / "o", flag, value, "--model", str(tmp_path / "no-model"))  # refused before the load
    refused(p, message)
    assert not (tmp_path / "o").exists()


def test_sample_and_bench_settings_they_cannot_use_are_refused():
    from bench import BenchConfig
    from sample import SampleConfig
    # each used to end in a traceback: an IndexError in the decode step, a StatisticsError, an AttributeError
    for config, key, value, message in [
            (SampleConfig, "max_new_tokens", 0, "--max_new_tokens must be >= 1, got 0"),
            (SampleConfig, "n", 0, "--n must be >= 1, got 0"),
            (SampleConfig, "device", "gpu", "--device must be cpu, cuda or cuda:N"),
            (SampleConfig, "temperature", float("nan"), "--temperature must be >= 0"),  # these two sampled
            (SampleConfig, "temperature", float("inf"), "--temperature must be >= 0"),  # garbage, or EOS only
            (BenchConfig, "repeats", 0, "--repeats must be >= 1, got 0"),
            (BenchConfig, "prompts", 0, "--prompts must be >= 1, got 0"),
            (BenchConfig, "batch", "abc", "--batch takes comma-separated"),
            (BenchConfig, "dtype", "fp16", "--dtype must be float32"),
            (BenchConfig, "device", "CPU", "--device must be cpu, cuda or cuda:N")]:
        with pytest.raises(ValueError, match=message):
            config(**{key: value})


def test_a_held_out_benchmark_that_cannot_load_stops_the_run_before_training(tmp_path):
    # without the initial evaluation it used to train, save final/, then fail: a run that could not be
    # evaluated, nor resumed with the benchmark corrected
    p = train(tmp_path / "o", "--eval_initial", "false", "--eval_benchmark", str(tmp_path / "nosuch.jsonl"))
    refused(p, "nosuch.jsonl' does not exist")
    assert not (tmp_path / "o" / "config.json").exists() and not (tmp_path / "o" / "final").exists()


def test_a_model_without_a_working_chat_template_is_refused_before_training_that_it_would_evaluate(tmp_path):
    no_template = model_copy(tmp_path, "no-template", [f for f in os.listdir(TOY_MODEL)
                                                       if f != "chat_template.jinja"])
    broken = model_copy(tmp_path, "broken")
    (broken / "chat_template.jinja").write_text("{% for %}")
    for model in (no_template, broken):
        # train.py used to train, save final/, then fail at the final evaluation with transformers' or Jinja's
        # traceback; sample.py and eval.py failed with the same
        out = tmp_path / f"o-{model.name}"
        p = train(out, "--model", str(model), "--eval_benchmark", "toy", "--eval_initial", "false")
        refused(p, "cannot render a chat template")
        assert not (out / "final").exists() and not (out / "config.json").exists()
    # the same check (model.load_tokenizer(chat=True)) in the scripts that sample for an evaluation
    refused(script("sample.py", "--model", str(broken)), "cannot render a chat template")
    results = tmp_path / "r.json"
    refused(script("eval.py", "--model", str(no_template), "--benchmark", "toy", "--limit", "2",
                   "--out", str(results)), "cannot render a chat template")
    assert not results.exists()  # its stub used to refuse the rerun with the model mended elsewhere


def test_a_corrupt_tokenizer_file_is_an_error_naming_the_folder(tmp_path):
    from model import load_tokenizer
    for name in ("tokenizer.json", "tokenizer_config.json"):
        model = model_copy(tmp_path, name)
        (model / name).write_text("{")  # used to print only json's "Expecting property name ...: line 1"
        if name == "tokenizer.json":  # as the scripts print it
            refused(script("sample.py", "--model", str(model)), f"cannot load the tokenizer in '{model}'")
        else:
            with pytest.raises(ValueError, match=f"cannot load the tokenizer in '{model}'"):
                load_tokenizer(str(model))


def test_an_out_dir_that_is_a_model_folder_is_refused_and_the_model_is_left_whole(tmp_path):
    from outdir import is_model_folder
    model = model_copy(tmp_path)
    before = {f: (model / f).read_bytes() for f in os.listdir(model)}
    refused(train(model, "--model", str(model)), "is a model folder")
    # --resume, as the old message advised, moved the model's config.json aside as a log of the run
    refused(train(model, "--model", str(model), "--resume"), "is a model folder")
    assert {f: (model / f).read_bytes() for f in os.listdir(model)} == before  # not even a LOCK
    run = tmp_path / "run"  # what a run's own folder holds is not a model: its config.json, its data
    run.mkdir()
    (run / "config.json").write_text(json.dumps({"model": "toy-model", "out_dir": str(run)}))
    (run / "train.bin").write_bytes(b"tokens")
    assert not is_model_folder(str(run)) and is_model_folder(str(model))


def test_a_damaged_checkpoint_is_an_error_naming_it_and_the_fix(tmp_path):
    done = tmp_path / "done"
    assert train(done, "--iters", "2", "--save_every", "1").returncode == 0
    # each used to end in a traceback: a JSONDecodeError, KeyError, TypeError, torch's zip reader error, and
    # a FileNotFoundError after final/ had become iter_000002/ (as a finished run does when it is extended)
    for name, damage, named in [("state.json", lambda p: p.write_text('{"iter": 2'), "final"),
                                ("state.json", lambda p: p.write_text('{"it": 2}'), "final"),
                                ("state.json", lambda p: p.write_text('{"iter": "2"}'), "final"),
                                ("train_state.pt", lambda p: p.write_bytes(p.read_bytes()[:1000]), "iter_000002"),
                                ("train_state.pt", lambda p: p.unlink(), "final")]:
        out = tmp_path / "o"
        shutil.rmtree(out, ignore_errors=True)
        shutil.copytree(done, out)
        damage(out / "final" / name)
        refused(train(out, "--iters", "3", "--resume"), f"the checkpoint {out / named} is damaged ({name}")
        assert (out / named).exists()
    out = tmp_path / "o"  # (train_state.pt removed) the fix the message gives: resume from iteration 1
    shutil.rmtree(out / "final")
    with open(out / "metrics.jsonl", "ab") as f:
        f.write(b'{"iter": 3, "\xff\xfe')  # torn bytes: used to stop the resume with a UnicodeDecodeError
    p = train(out, "--iters", "2", "--resume")
    assert p.returncode == 0 and "resumed from" in p.stdout, p.stderr[-3000:]
    assert [m["iter"] for m in read_metrics(out)] == [1, 2]


def test_a_non_finite_gradient_stops_the_run_before_the_step_and_saves_nothing(tmp_path):
    from safetensors.torch import load_file, save_file
    poisoned = model_copy(tmp_path, "nan-model")
    sd = load_file(poisoned / "model.safetensors")
    sd["model.layers.0.mlp.up_proj.weight"][0, 0] = float("nan")
    save_file(sd, poisoned / "model.safetensors", metadata={"format": "pt"})
    p = train(tmp_path / "o", "--iters", "2", "--save_every", "1", "--model", str(poisoned))
    refused(p, "the gradient norm is nan at iteration 1")
    assert not any(d.startswith(("iter_", "final")) for d in os.listdir(tmp_path / "o"))


# -----------------------------------------------------------------------------
# 2. one run per out_dir

def test_a_second_run_into_a_busy_out_dir_is_refused_and_a_killed_runs_lock_is_taken_over(tmp_path):
    out = tmp_path / "o"
    first = start_train(out, "--iters", "50", "--save_every", "1")
    try:
        wait_for(lambda: (out / "iter_000001" / "state.json").exists(), first)
        refused(train(out, "--iters", "50", "--resume"), "is in use by another run")
        os.kill(first.pid, signal.SIGKILL)  # a scheduler's preemption: the lock stays behind
        first.wait()
    finally:
        first.kill()
    lock = json.loads((out / "LOCK").read_text())
    assert lock["pid"] == first.pid
    done = max(json.loads((d / "state.json").read_text())["iter"] for d in out.glob("iter_*") if d.suffix != ".tmp")
    p = train(out, "--iters", str(done + 1), "--resume")  # same host, that process is gone: the lock is stale
    assert p.returncode == 0 and "took over the stale lock" in p.stdout, p.stderr[-3000:]
    assert not (out / "LOCK").exists()  # released at the end


def test_a_lock_from_another_node_is_respected_while_touched_and_taken_over_when_stale(tmp_path):
    out = tmp_path / "o"
    out.mkdir()
    (out / "LOCK").write_text(json.dumps(dict(host="node-that-is-not-here", pid=1, run="x",
                                              started=time.time())))
    refused(train(out, "--iters", "1"), "in use by another run on host node-that-is-not-here")
    os.utime(out / "LOCK", (time.time() - 3600,) * 2)  # nobody touched it for an hour: its run is dead
    p = train(out, "--iters", "1")
    assert p.returncode == 0 and "took over the stale lock" in p.stdout, p.stderr[-3000:]


def test_a_run_whose_lock_was_taken_stops_before_its_next_write(tmp_path):
    out = tmp_path / "o"
    run = start_train(out, "--iters", "50", "--save_every", "0")
    try:
        wait_for(lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size, run)
        (out / "LOCK").write_text(json.dumps(dict(host="elsewhere", pid=1, run="y", started=time.time())))
        _, err = run.communicate(timeout=300)
    finally:
        run.kill()
    assert run.returncode != 0 and "no longer holds" in err, err[-3000:]
    assert len(read_metrics(out)) < 50


# -----------------------------------------------------------------------------
# 3. eval.py records answer a problem and a gold

def test_eval_refuses_records_of_other_golds_and_a_failed_start_does_not_block_the_rerun(tmp_path):
    problems = [("What is 2 + 3?", "5"), ("What is 4 + 4?", "8")]
    for name, golds in (("A", ["5", "8"]), ("B", ["6", "9"])):
        (tmp_path / name).mkdir()
        (tmp_path / name / "problems.jsonl").write_text(
            "".join(json.dumps(dict(problem=p, answer=g)) + "\n" for (p, _), g in zip(problems, golds)))
    out = str(tmp_path / "r.json")
    common = ["--model", "toy-model", "--max_new_tokens", "100", "--out", out]
    assert script("eval.py", "--benchmark", str(tmp_path / "A" / "problems.jsonl"), *common).returncode == 0
    # B's golds differ: its accuracy used to be A's, read back from A's records
    refused(script("eval.py", "--benchmark", str(tmp_path / "B" / "problems.jsonl"), *common),
            "answer another problem or gold")
    out2 = str(tmp_path / "r2.json")
    refused(script("eval.py", "--benchmark", "toy", "--limit", "3", "--top_p", "2", "--out", out2),
            "--top_p must be")
    p = script("eval.py", "--benchmark", "toy", "--limit", "3", "--top_p", "0.9", "--max_new_tokens", "100",
               "--out", out2)
    assert p.returncode == 0, p.stderr[-3000:]


# -----------------------------------------------------------------------------
# 4 and 5. resume continues the same run; a requeued run without a checkpoint starts over

def test_resuming_a_finished_run_refuses_other_settings_and_extending_it_keeps_its_final_model(tmp_path):
    out = tmp_path / "o"
    assert train(out, "--iters", "2").returncode == 0
    finished, config = load_weights(out / "final"), (out / "config.json").read_text()
    p = train(out, "--iters", "3", "--resume", "--alpha", "0.1", "--seed", "1", "--lr", "1e-3")
    refused(p, "--alpha 0.2 -> 0.1")  # used to overwrite final/ and rewrite config.json
    assert "--seed 42 -> 1" in p.stderr and "--lr 0.0001 -> 0.001" in p.stderr
    assert (out / "config.json").read_text() == config
    p = train(out, "--iters", "2", "--resume")
    assert p.returncode == 0 and "nothing to do" in p.stdout
    (out / "eval_final.json").write_text('{"benchmarks": {"toy": {"accuracy": 0.5}}}')  # iteration 2's
    p = train(out, "--iters", "3", "--resume")
    assert p.returncode == 0 and "final model (and evaluation) is kept as" in p.stdout, p.stderr[-3000:]
    assert not (out / "eval_final.json").exists()  # it was the evaluation of iteration 2's model
    assert "0.5" in (out / "iter_000002" / "eval_final.json").read_text()
    kept = load_weights(out / "iter_000002")
    assert all(torch.equal(kept[k], finished[k]) for k in finished)
    assert [m["iter"] for m in read_metrics(out)] == [1, 2, 3]
    new = load_weights(out / "final")
    assert not all(torch.equal(new[k], finished[k]) for k in finished)


def test_a_requeued_run_killed_before_its_first_checkpoint_starts_over_with_its_logs_moved_aside(tmp_path):
    out = tmp_path / "o"
    run = start_train(out, "--iters", "50", "--save_every", "10")
    try:
        wait_for(lambda: (out / "metrics.jsonl").exists() and (out / "metrics.jsonl").stat().st_size, run)
        os.kill(run.pid, signal.SIGKILL)
        run.wait()
    finally:
        run.kill()
    partial = (out / "metrics.jsonl").read_text()
    refused(train(out, "--iters", "2"), "--resume starts it over")  # a new run would drop those logs
    # the scheduler's command, requeued: used to be refused forever
    p = train(out, "--iters", "2", "--resume")
    assert p.returncode == 0 and "starting over" in p.stdout, p.stderr[-3000:]
    aside = [d for d in os.listdir(out) if d.startswith("restarted-")]
    assert len(aside) == 1 and (out / aside[0] / "metrics.jsonl").read_text() == partial
    assert [m["iter"] for m in read_metrics(out)] == [1, 2]


def test_a_torn_last_metrics_line_does_not_stop_a_resume(tmp_path):
    out = tmp_path / "o"
    assert train(out, "--iters", "2", "--save_every", "1").returncode == 0
    shutil.rmtree(out / "final")
    with open(out / "metrics.jsonl", "a") as f:
        f.write('{"iter": 3, "rew')  # a kill in the middle of a write
    p = train(out, "--iters", "2", "--resume")
    assert p.returncode == 0, p.stderr[-3000:]
    assert [m["iter"] for m in read_metrics(out)] == [1, 2]


# -----------------------------------------------------------------------------
# 6, 7 and 8. one-line errors instead of tracebacks, and inputs that used to pass silently

def test_eval_skips_prompts_longer_than_the_models_context_with_a_report(tmp_path):
    data = tmp_path / "long.jsonl"
    data.write_text(json.dumps(dict(problem="What is 1 + 1?", answer="2")) + "\n"
                    + json.dumps(dict(problem="9 + " * 700 + "9?", answer="6309")) + "\n")
    p = script("eval.py", "--benchmark", str(data), "--max_new_tokens", "50",
               "--out", str(tmp_path / "r.json"))
    assert (p.returncode == 0
            and "1 problems skipped, their prompts longer than the model's 1024" in p.stderr), \
        p.stderr[-3000:]  # used to ask for a negative max_new_tokens and a huge cache
    assert json.loads((tmp_path / "r.json").read_text())["benchmarks"]["long"]["n_problems"] == 1


def test_model_folders_without_a_tokenizer_or_with_broken_weights_are_one_line_errors(tmp_path):
    no_tok = model_copy(tmp_path, "no-tok", ["config.json", "model.safetensors"])
    for name, args in [("sample.py", ["--model", str(no_tok)]),
                       ("eval.py", ["--model", str(no_tok), "--benchmark", "toy",
                                    "--out", str(tmp_path / "r.json")]),
                       ("train.py", [*TOY_ARGS, "--model", str(no_tok), "--out_dir", str(tmp_path / "o")])]:
        refused(script(name, *args), "has no tokenizer")  # transformers built an empty one
    refused(script("sample.py", "--model", ""), "the model path is empty")  # said "/work/main/ has no config"
    cut = model_copy(tmp_path, "cut")
    size = (cut / "model.safetensors").stat().st_size
    with open(cut / "model.safetensors", "r+b") as f:
        f.truncate(size // 2)
    refused(script("sample.py", "--model", str(cut)), "is the file complete")
    wrong = model_copy(tmp_path, "wrong")
    config = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps(dict(config,
                                                       intermediate_size=config["intermediate_size"] * 2)))
    refused(script("sample.py", "--model", str(wrong)), "do not match its config.json")


def test_bad_data_files_and_eval_settings_are_one_line_errors_naming_the_problem(tmp_path):
    latin = tmp_path / "latin.jsonl"
    latin.write_bytes(json.dumps(dict(problem="café", answer="1")).encode("latin-1")
                      .replace(b"\\u00e9", b"\xe9"))
    shaped = tmp_path / "shaped.json"
    shaped.write_text(json.dumps({"rows": [dict(problem="1+1?", answer="2")]}))
    torn = tmp_path / "torn.jsonl"
    torn.write_text(json.dumps(dict(problem="1+1?", answer="2")) + "\n\n"
                    + '{"problem": "2+2?", "answer": 4\n')
    out = ["--out", str(tmp_path / "r.json")]
    for args, message in [(["--benchmark", str(latin)], "is not UTF-8 text"),
                          (["--benchmark", str(shaped)], "found dict"),
                          (["--benchmark", str(torn)], "line 3, is not valid JSON"),  # used to say line 1
                          (["--max_new_tokens", "0"], "--max_new_tokens must be >= 1"),
                          (["--k", "-1"], "--k must be >= 0"),
                          (["--temperature", "-1"], "--temperature must be >= 0"),
                          (["--top_p", "0"], "--top_p must be in (0, 1]"),
                          (["--benchmark", ""], "--benchmark is empty"),
                          (["--device", "mps"], "--device must be cpu, cuda or cuda:N")]:
        refused(script("eval.py", *args, *out), message)
    assert not os.path.exists(tmp_path / "r.json")


def test_objects_and_booleans_are_not_gold_answers(tmp_path, capsys):
    import data
    path = tmp_path / "golds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in [dict(problem="a?", answer=True),
                                                          dict(problem="b?", answer={"value": 3}),
                                                          dict(problem={"text": "c?"}, answer="3"),
                                                          dict(problem="d?", answer="4"),
                                                          dict(problem="e?", answer=float("nan")),
                                                          dict(problem="f?", answer=float("inf"))]))
    assert data.load_rows(str(path)) == [dict(problem="d?", answer="4")]  # used to grade against "True",
    assert "dropped 5 of 6 rows" in capsys.readouterr().err  # "nan" and "inf"


def test_a_table_or_a_folder_given_as_data_is_named_as_such_and_other_files_are_json_lines(tmp_path):
    import data
    (tmp_path / "rows.CSV").write_text("problem,answer\n1+1?,2\n")
    (tmp_path / "dir.jsonl").mkdir()
    for spec, message in [(tmp_path / "rows.CSV", "is a table, not .jsonl, .json or .parquet"),  # "line 1
                          (tmp_path / "dir.jsonl", "is a folder, not a file"),  # is not valid JSON"; "does not exist"
                          ("d/missing.csv", "'d/missing.csv' does not exist")]:  # was looked up on the hub
        with pytest.raises(SystemExit, match=message):
            data.load_rows(str(spec))
    (tmp_path / "problems").write_text(json.dumps(dict(problem="1+1?", answer="2")) + "\n")  # no extension
    assert data.load_rows(str(tmp_path / "problems")) == [dict(problem="1+1?", answer="2")]


def test_an_out_dir_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path):
    (tmp_path / "file").write_text("")
    refused(train(tmp_path / "file" / "o", "--model", str(tmp_path / "no-model")), "cannot use --out_dir")


def test_the_toy_preset_from_another_directory_uses_the_committed_model(tmp_path):
    p = script("train.py", *TOY_ARGS, "--iters", "1", "--out_dir", str(tmp_path / "o"), cwd=tmp_path)
    assert p.returncode == 0, p.stderr[-3000:]
    assert not (tmp_path / "toy-model").exists()  # used to train a new base model into ./toy-model


# -----------------------------------------------------------------------------
# kill -9 at a random moment, including inside a checkpoint save, then resume: bit for bit

def test_a_run_killed_at_random_moments_and_resumed_ends_bit_identical_to_an_uninterrupted_one(tmp_path):
    args = ["--iters", "4", "--save_every", "1"]
    run_train(args, tmp_path / "straight")
    out, rng = tmp_path / "killed", random.Random(os.environ.get("FAULT_SEED", "0"))
    kills = 0
    # First inside a checkpoint save (the moment its .tmp folder exists), then at random times.
    for moment in ["save", rng.uniform(2, 12), rng.uniform(2, 12)]:
        run = start_train(out, *args, "--resume")
        try:
            if moment == "save":
                wait_for(lambda: out.exists() and any(p.endswith(".tmp") for p in os.listdir(out)), run,
                         poll_s=0.002)
            else:
                time.sleep(moment)
            if run.poll() is None:
                os.kill(run.pid, signal.SIGKILL)
                kills += 1
            run.wait()
        finally:
            run.kill()
    assert kills >= 1
    run_train(args + ["--resume"], out)
    assert_exactly_the_same_run(tmp_path / "straight", out)


def test_an_unreadable_lock_is_held_until_stale_and_our_own_pid_in_a_lock_is_an_earlier_life(tmp_path):
    """An empty LOCK is what another run's creation looked like for an instant (before the lock was written
    in one step): it must not be taken over at once. A lock naming this host and our own pid but not our
    run is a restarted container's earlier life: stale at once, or the requeued job refuses itself."""
    import socket
    from outdir import OutDirLock
    out = tmp_path / "o"
    out.mkdir()
    for garbage in ("", "[1]"):  # the second used to be a TypeError; both named "host None, pid None"
        (out / "LOCK").write_text(garbage)
        with pytest.raises(SystemExit, match="in use by a lock file that does not say whose it is"):
            OutDirLock(str(out), 0, torch.device("cpu"))
    os.utime(out / "LOCK", (time.time() - 3600,) * 2)
    lock = OutDirLock(str(out), 0, torch.device("cpu"))
    assert json.loads((out / "LOCK").read_text())["run"] == lock.me["run"]
    lock.release()
    assert not (out / "LOCK").exists()
    (out / "LOCK").write_text(json.dumps(dict(host=socket.gethostname(), pid=os.getpid(), run="old",
                                              started=time.time())))
    lock = OutDirLock(str(out), 0, torch.device("cpu"))
    assert json.loads((out / "LOCK").read_text())["run"] == lock.me["run"]
    (out / "LOCK.takeover").write_text("")  # another run is taking a stale lock over right now
    lock.release()
    (out / "LOCK").write_text(json.dumps(dict(host="elsewhere", pid=1, run="old", started=0)))
    os.utime(out / "LOCK", (time.time() - 3600,) * 2)
    with pytest.raises(SystemExit, match="taking over the stale lock"):
        OutDirLock(str(out), 0, torch.device("cpu"))


def test_a_run_killed_during_its_final_evaluation_resumes_to_do_it(tmp_path):
    out, ev = tmp_path / "o", ["--eval_benchmark", "toy", "--eval_problems", "4", "--eval_initial", "false"]
    assert train(out, "--iters", "1", *ev).returncode == 0
    (out / "eval_final.json").write_text('{"benchmarks": {}}')  # eval.py's file before its first result
    p = train(out, "--iters", "1", "--resume", *ev)
    assert p.returncode == 0 and "final model: held-out accuracy" in p.stdout, p.stderr[-3000:]
    assert json.loads((out / "eval_final.json").read_text())["benchmarks"]["toy"]["n_problems"] == 4
    p = train(out, "--iters", "1", "--resume", *ev)
    assert p.returncode == 0 and "nothing to do" in p.stdout
