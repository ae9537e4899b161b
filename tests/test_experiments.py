"""experiments.py's report: the paper's claims checked on known numbers (each one able to fail), and a real
`--report` run over evaluation files laid out as the runs write them (the runs themselves are train.py,
eval.py and baselines.py, tested elsewhere)."""
import json
import os
import re
import subprocess
import sys

import pytest

import experiments as ex
from conftest import ROOT

ALPHAS = ["0", "0.05", "0.1", "0.2", "0.4"]


def m(acc, tokens, by=None):
    """eval.py's metrics of the toy benchmark, reduced to what the report reads."""
    out = dict(accuracy=acc, mean_tokens=tokens)
    if by:
        out["by_difficulty"] = {k: dict(accuracy=acc, mean_tokens=t) for k, t in by.items()}
    return out


def family(points):
    """{alpha: [seed metrics]} from {alpha: [(acc, tokens, {k: tokens})]}."""
    return {a: [m(acc, t, by) for acc, t, by in runs] for a, runs in points.items()}


BASE = dict(m(0.97, 80.0, {"2": 40.0, "6": 120.0}),
            cutoff=dict(budgets=[30, 60, 200], accuracy=[0.2, 0.7, 0.97], mean_tokens=[29.0, 55.0, 80.0]))


def result(fam, grpo=(), sft=None, dpo=None):
    return dict(base=BASE, alphas=family(fam), grpo=[m(a, t) for a, t in grpo], sft=sft or {}, dpo=dpo or {})


def verdicts(res):
    return {c: ok for c, ok, _ in ex.claims(res, ALPHAS)}


def test_frontier_accuracy_interpolates_between_the_alpha_points_and_never_extrapolates():
    pts = [(80.0, 0.96), (40.0, 0.90), (60.0, 0.94)]
    assert ex.frontier_accuracy(pts, 50.0) == pytest.approx(0.92)
    assert ex.frontier_accuracy(pts, 80.0) == pytest.approx(0.96)
    assert ex.frontier_accuracy(pts, 39.0) is None and ex.frontier_accuracy(pts, 81.0) is None


def test_claims_hold_on_a_frontier_with_a_trade_off_and_fail_without_one():
    good = {"0": [(0.97, 85, {"2": 42, "6": 125}), (0.96, 86, {"2": 42, "6": 126})],
            "0.05": [(0.96, 70, {"2": 30, "6": 110})] * 2,
            "0.1": [(0.95, 60, {"2": 22, "6": 100})] * 2,
            "0.2": [(0.94, 45, {"2": 15, "6": 80})] * 2,
            "0.4": [(0.85, 30, {"2": 12, "6": 50})] * 2}
    v = verdicts(result(good, grpo=[(0.5, 20), (0.6, 22)], sft={"1e-4": m(0.80, 50)}))
    assert v["mean tokens fall monotonically with alpha"]
    assert v["at least four of the five alphas are distinct points (>= 5% apart in tokens)"]
    assert v["accuracy at alpha 0.4 is below alpha 0 by more than the seeds' spread"]
    assert v["alpha 0.2 cuts >= 40% of the tokens at >= 96% of the base accuracy"]
    assert v["alpha 0.1: the easiest problems lose a larger fraction of their tokens than the hardest"]
    assert v["RL beats SFT lr 1e-4 at equal tokens"]
    assert v["RL beats cutoff 60 at equal tokens"]
    assert "RL beats cutoff 30 at equal tokens" not in v  # 29 tokens: left of the frontier, not compared
    assert "RL beats cutoff 200 at equal tokens" not in v  # cuts nothing: the base model itself
    assert v["GRPO's per-prompt std normalisation loses accuracy at alpha 0.2 (by more than the seeds' spread)"]

    flat = {a: [(0.97, t, {"2": 40 * t / 80, "6": 120 * t / 80})] * 2
            for a, t in zip(ALPHAS, [85, 84, 60, 40, 41])}  # 0 and 0.05 the same, 0.4 no shorter, no trade-off
    v = verdicts(result(flat, grpo=[(0.97, 40)], sft={"1e-4": m(0.99, 50)}))
    one_seed = {a: runs[:1] for a, runs in good.items()}  # no spread to beat: not shown
    v1 = verdicts(result(one_seed, grpo=[(0.5, 20)]))
    assert not v1["accuracy at alpha 0.4 is below alpha 0 by more than the seeds' spread"]
    assert not v1["GRPO's per-prompt std normalisation loses accuracy at alpha 0.2 (by more than the seeds' spread)"]
    assert not v["mean tokens fall monotonically with alpha"]
    assert not v["at least four of the five alphas are distinct points (>= 5% apart in tokens)"]
    assert not v["accuracy at alpha 0.4 is below alpha 0 by more than the seeds' spread"]
    assert not v["alpha 0.1: the easiest problems lose a larger fraction of their tokens than the hardest"]
    assert not v["RL beats SFT lr 1e-4 at equal tokens"]
    assert not v["GRPO's per-prompt std normalisation loses accuracy at alpha 0.2 (by more than the seeds' spread)"]
    # seeds that disagree by more than the gap make the trade-off unproven
    noisy = dict(good, **{"0": [(0.99, 85, {"2": 42, "6": 125}), (0.70, 86, {"2": 42, "6": 126})]})
    assert not verdicts(result(noisy))["accuracy at alpha 0.4 is below alpha 0 by more than the seeds' spread"]


def test_a_base_model_that_is_never_right_leaves_the_accuracy_claim_untested_not_a_crash():
    """A smoke run on a few problems: the share of the base accuracy kept divided by zero."""
    fam = {a: [(0.0, 80 - 10 * i, {"2": 40 - 5 * i, "6": 120 - 15 * i})] for i, a in enumerate(ALPHAS)}
    res = dict(result(fam), base=dict(BASE, accuracy=0.0))
    checked = {c: (ok, nums) for c, ok, nums in ex.claims(res, ALPHAS)}
    ok, nums = checked["alpha 0.2 cuts >= 40% of the tokens at >= 96% of the base accuracy"]
    assert not ok and nums == "38% of the tokens cut; not testable: the base model's accuracy is 0%"
    assert checked["mean tokens fall monotonically with alpha"][0]  # the other claims are still checked


def test_report_reads_the_runs_files_and_writes_the_table_the_claims_and_the_figure(tmp_path):
    out = tmp_path / "exp"

    def write(rel, metrics):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(dict(benchmarks=dict(toy=metrics))))

    write("base/eval_final.json", BASE)
    for i, a in enumerate(ALPHAS):
        for seed, acc in ((1, 0.97 - 0.03 * i), (2, 0.96 - 0.03 * i)):
            write(f"rl-alpha{a}-seed{seed}/eval_final.json", m(acc, 85 - 12 * i, {"2": 40 - 5 * i, "6": 120 - 15 * i}))
    write("grpo-alpha0.2-seed1/eval_final.json", m(0.4, 20))
    write("baselines/sft-lr0.0001/eval_final.json", m(0.8, 50))
    (out / "baselines/sft-lr0.0001/config.json").write_text('{"prompts": 960}')  # 60 iterations x 16 prompts
    write("baselines/dpo-lr0.0001/eval_final.json", m(0.2, 30))  # trained on 30 iterations' prompts: left out
    (out / "baselines/dpo-lr0.0001/config.json").write_text('{"prompts": 480}')
    (out / "rl-alpha0.4-seed3").mkdir()  # a run that never finished: no metrics, left out
    write("rl-alpha0.2-seed3/eval_final.json", m(0.1, 10))  # a run of 30 iterations, not the 60 asked for:
    (out / "rl-alpha0.2-seed3" / "final").mkdir()        # left out too
    (out / "rl-alpha0.2-seed3" / "final" / "state.json").write_text('{"iter": 30}')
    fig = tmp_path / "fig.png"
    p = subprocess.run([sys.executable, "experiments.py", "--report", "true", "--seeds", "3", "--out_dir", str(out),
                        "--figure", str(fig), "--lrs", "1e-4"], cwd=ROOT, capture_output=True, text=True,
                       timeout=300)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-2000:]
    md = (out / "results.md").read_text()
    assert "| RL, alpha 0.4 (2 seeds) | 84.5% ± 0.5% | 37.0 ± 0.0 (-54%) | 20 | 60 |" in md, md
    assert "| RL, alpha 0.2 (2 seeds) |" in md
    assert "| SFT, lr 0.0001 | 80.0% | 50.0 (-38%) |" in md
    assert "DPO" not in md
    assert "| RL, alpha 0.4 | 20 (-50%), 84.5% | 60 (-50%), 84.5% |" in md  # per difficulty
    assert "- MISSED: alpha 0.2 cuts >= 40% of the tokens" in md  # 61 tokens, -24%
    res = json.loads((out / "results.json").read_text())
    assert {c["claim"] for c in res["claims"] if c["holds"]} >= {"mean tokens fall monotonically with alpha"}
    assert fig.stat().st_size > 10_000


def test_every_setting_runs_once_before_any_runs_its_second_seed_and_the_fine_tunes_come_last():
    todo = ex.jobs(ex.ExperimentConfig())
    names = list(todo)
    assert len(names) == 1 + 5 * 3 + 3 + 1 + 6
    firsts = [n for n in names if n.endswith("seed1")] + ["base", "samples"]
    assert max(names.index(n) for n in firsts) < min(names.index(n) for n in names if n.endswith("seed2"))
    tunes = [n for n in names if n.startswith(("sft", "dpo"))]
    assert names[-6:] == tunes and tunes[0].startswith("dpo")  # the short runs last, the longer DPO first
    assert all(todo[n][2] == ["samples"] for n in tunes)
    assert "--adv_norm" in todo["grpo-alpha0.2-seed3"][0] and "--adv_norm" not in todo["rl-alpha0.2-seed3"][0]
    cmd = todo["rl-alpha0.2-seed3"][0]
    assert cmd[cmd.index("--iters") + 1] == "60"
    for name in ("samples", "sft-lr0.0001", "dpo-lr4e-05"):  # the baselines see the RL runs' 60 x 16 prompts
        cmd = todo[name][0]
        assert cmd[cmd.index("--prompts") + 1] == "960"


def test_samples_drawn_for_other_prompts_are_not_taken_as_done(tmp_path):
    path = tmp_path / "samples.jsonl"
    for prompts, done in ((960, True), (480, False)):
        path.write_text(json.dumps(dict(prompt=0, tokens=[1], sampling=dict(prompts=prompts))) + "\n")
        assert ex.done(str(path), 60) is done
    assert not ex.done(str(tmp_path / "none.jsonl"), 60)


@pytest.mark.parametrize("argv, named", [
    (["--jobs", "0"], "--jobs"),  # run_all waited forever for a free slot
    (["--lrs", "abc"], "--lrs"),  # a raw float() traceback from jobs()
    (["--alphas", "0,abc"], "--alphas"),  # each train.py run failed on its own, one by one
    (["--alphas", "0,1"], "--alphas"),  # alpha 1: a correct response no longer beats a wrong one
    (["--seeds", "0"], "--seeds"),  # no alpha family at all
    (["--iters", "-5"], "--iters"),
    (["--eval_problems", "0"], "--eval_problems"),
    (["--budgets", "20,abc"], "--budgets"),
    (["--budgets", "20,500"], "--budgets"),  # past the base model's 200-token evaluation
    (["--out_dir", ""], "--out_dir"),  # the runs' folders would land in /
    (["--figure", "fig.txt"], "--figure"),  # matplotlib's ValueError, after all the runs
    (["--figure", "fig"], "--figure"),  # savefig wrote fig.png, and the report said fig
])
def test_bad_options_are_refused_up_front_naming_the_option(argv, named):
    from configurator import parse_args
    with pytest.raises(SystemExit, match=f"^error: {named} must be"):
        parse_args(ex.ExperimentConfig, argv)


def test_a_figure_or_out_dir_that_a_file_blocks_is_refused_up_front(tmp_path):
    """A figure under a file (or a folder in its place) failed only at the very end, after every run; an
    out_dir that is a file failed in os.makedirs with a traceback."""
    from configurator import parse_args
    afile, folder = tmp_path / "afile", tmp_path / "fig.png"
    afile.write_text("mine")
    folder.mkdir()
    for argv, message in [(["--figure", f"{afile}/fig.png"], f"a file in a folder ({afile} is a file)"),
                          (["--figure", str(folder)], "an image file, not a folder"),
                          (["--out_dir", f"{afile}/exp"], f"a folder ({afile} is a file)")]:
        with pytest.raises(SystemExit, match=re.escape(f"error: {argv[0]} must be {message}, got '{argv[1]}'")):
            parse_args(ex.ExperimentConfig, argv)
    assert afile.read_text() == "mine"
    ex.ExperimentConfig(figure=str(tmp_path / "new" / "fig.PDF"))  # a folder still to make, any case: fine


def test_report_refuses_an_out_dir_without_finished_runs_and_writes_nothing(tmp_path):
    """An empty or wrong --out_dir, or --iters that no run was trained for, used to overwrite the figure with an
    empty plot (and results.md with an empty table); a folder that does not exist crashed on results.md."""
    fig = tmp_path / "fig.png"
    fig.write_text("the figure of a finished family")
    run = tmp_path / "exp" / "rl-alpha0.2-seed1"
    run.mkdir(parents=True)
    (run / "eval_final.json").write_text(json.dumps(dict(benchmarks=dict(toy=m(0.9, 50)))))
    (tmp_path / "exp" / "base").mkdir()
    (tmp_path / "exp" / "base" / "eval_final.json").write_text(json.dumps(dict(benchmarks=dict(toy=BASE))))
    (run / "final").mkdir()
    (run / "final" / "state.json").write_text('{"iter": 60}')
    (tmp_path / "empty").mkdir()
    for out_dir, iters in ((tmp_path / "missing", 60), (tmp_path / "empty", 60), (tmp_path / "exp", 30)):
        cfg = ex.ExperimentConfig(out_dir=str(out_dir), figure=str(fig), iters=iters, report=True)
        with pytest.raises(SystemExit, match=f"^error: {out_dir} holds no finished training run of {iters} iterations"):
            ex.report(cfg)
        assert not (out_dir / "results.md").exists() and not (out_dir / "results.json").exists()
        assert fig.read_text() == "the figure of a finished family"
    # after a run in which every job failed there is nothing to report (main then names the failed runs):
    # no refusal, and nothing written
    ex.report(ex.ExperimentConfig(out_dir=str(tmp_path / "empty"), figure=str(fig)))
    assert not (tmp_path / "empty" / "results.md").exists()
    assert fig.read_text() == "the figure of a finished family"
    # a partial family is reported from the runs that are done, as the README says
    ex.report(ex.ExperimentConfig(out_dir=str(tmp_path / "exp"), figure=str(fig), report=True))
    assert "| RL, alpha 0.2 (1 seed) | 90.0% | 50.0 (-38%) |" in (tmp_path / "exp" / "results.md").read_text()
    assert fig.stat().st_size > 10_000


def test_when_every_run_fails_the_command_names_them_skips_what_needs_them_and_writes_no_report(tmp_path):
    """A real `python experiments.py` whose runs all fail (their output paths blocked): each failure is named,
    what depends on a failed run is skipped, the exit is one line, and no table or figure is written."""
    out, fig = tmp_path / "exp", tmp_path / "fig.png"
    (out / "base" / "eval_final.json").mkdir(parents=True)  # eval.py refuses an --out that is a folder
    (out / "rl-alpha0-seed1").write_text("a file where train.py wants its out_dir")
    (out / "baselines").write_text("a file where baselines.py wants its out_dir")
    p = subprocess.run([sys.executable, "experiments.py", "--alphas", "0", "--seeds", "1", "--ablation_seeds", "0",
                        "--lrs", "1e-4", "--iters", "1", "--eval_problems", "2", "--budgets", "50",
                        "--out_dir", str(out), "--figure", str(fig)],
                       cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert p.returncode == 1 and "Traceback" not in p.stderr, p.stdout[-2000:] + p.stderr[-2000:]
    assert p.stderr.strip().endswith("run the same command again to retry them")
    failed = p.stdout.split("failed: ")[-1].splitlines()[0].split(", ")
    assert sorted(failed) == ["base", "dpo-lr0.0001", "rl-alpha0-seed1", "samples", "sft-lr0.0001"]
    assert "SKIPPED dpo-lr0.0001: samples failed" in p.stdout
    assert not fig.exists() and not (out / "results.md").exists()
