"""eval.py and data.py: metrics, resumable runs, torchrun sharding, loading errors, plots and the prompts."""
import json
import os
import re
import subprocess
import sys

import pytest

from conftest import ROOT

import data
import eval as ev

ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONPATH": ROOT}  # one thread: same float sums in every run
PROBLEMS = [("What is 12 + 30?", "42"), ("What is 3 + 4?", "7"), ("What is 1 + 1?", "2"),
            ("What is 9 + 9?", "18"), ("What is 2 + 5?", "7")]


def write_jsonl(path, rows):
    with open(path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in rows)
    return str(path)


def run_eval(args, torchrun=False):
    launch = ["-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2"] if torchrun else []
    cmd = [sys.executable, *launch, os.path.join(ROOT, "eval.py"), *args]
    p = subprocess.run(cmd, cwd=ROOT, env=ENV, capture_output=True, text=True, timeout=180)
    assert p.returncode == 0, p.stdout + p.stderr
    return p


def eval_error(args):
    """eval.py's stderr when it refuses args: an error, not a traceback."""
    p = subprocess.run([sys.executable, os.path.join(ROOT, "eval.py"), *args], cwd=ROOT, env=ENV,
                       capture_output=True, text=True, timeout=180)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stdout + p.stderr
    return p.stderr


def run_in_process(args):
    """ev.main in this process (no start-up cost), on one thread like the subprocesses (conftest)."""
    ev.main(args)


def read_jsonl(path):
    with open(path) as f:
        return [json.loads(line) for line in f]


def rec(pid, j, answer, correct, tokens, finished=True):
    return {"benchmark": "b", "problem_id": pid, "sample": j, "answer": answer, "correct": correct,
            "tokens": tokens, "finished": finished}


def test_metrics_match_hand_computed_values_with_truncation_pass_at_k_and_majority_vote():
    records = [
        # problem 0 (gold 4): majority "5" is wrong, one sample right
        rec(0, 0, "5", False, 10), rec(0, 1, "5", False, 20), rec(0, 2, "4", True, 30),
        # problem 1 (gold 4): "4" and "\frac{8}{2}" are one answer by is_equiv, so they outvote "3"
        rec(1, 0, "3", False, 40), rec(1, 1, "4", True, 50), rec(1, 2, "\\frac{8}{2}", True, 60),
        # problem 2 (gold 7): the right answer is truncated, so it is wrong and does not vote
        rec(2, 0, "7", True, 100, finished=False), rec(2, 1, None, False, 5), rec(2, 2, "8", False, 5),
    ]
    rows = [{"problem": "p", "answer": a, "difficulty": d} for a, d in (("4", 1), ("4", 1), ("7", 2))]
    m = ev.metrics(records, rows, k=3)
    assert m["accuracy"] == pytest.approx((1 / 3 + 2 / 3 + 0) / 3)
    assert m["pass_at_k"] == pytest.approx(2 / 3)
    assert m["majority_accuracy"] == pytest.approx(1 / 3)
    assert m["mean_tokens"] == pytest.approx(320 / 9)
    assert m["truncated_frac"] == pytest.approx(1 / 9)
    assert (m["n_problems"], m["samples_per_problem"], m["n_samples"]) == (3, 3, 9)
    assert m["by_difficulty"]["1"]["accuracy"] == pytest.approx(0.5)
    assert m["by_difficulty"]["2"]["accuracy"] == 0 and m["by_difficulty"]["2"]["n_problems"] == 1
    assert m["by_difficulty"]["2"]["mean_tokens"] == pytest.approx(110 / 3)


def test_eval_writes_json_jsonl_table_and_resumes_without_redoing_or_duplicating(tiny_model_dir, tmp_path,
                                                                                 capsys):
    bench = write_jsonl(tmp_path / "sums.jsonl", [{"problem": p, "answer": a} for p, a in PROBLEMS[:4]])
    out = str(tmp_path / "res" / "tiny.json")
    args = ["--model", tiny_model_dir, "--benchmark", bench, "--n", "2", "--max_new_tokens", "12",
            "--out", out, "--chunk", "4", "--device", "cpu"]
    p = run_eval(args)
    assert "| sums | 4 | 2 |" in p.stdout  # the markdown table
    result = json.load(open(out))
    m = result["benchmarks"]["sums"]
    assert result["model"] == tiny_model_dir and result["config"]["temperature"] == 0.6
    assert {"accuracy", "mean_tokens", "truncated_frac", "n_problems", "samples_per_problem", "pass_at_k",
            "majority_accuracy"} <= set(m)
    assert m["n_problems"] == 4 and m["samples_per_problem"] == 2 and 0 < m["mean_tokens"] <= 12
    samples = str(tmp_path / "res" / "tiny.samples.jsonl")
    first = read_jsonl(samples)
    assert [(r["problem_id"], r["sample"]) for r in first] == [(i, j) for i in range(4) for j in range(2)]
    assert {"response", "answer", "correct", "tokens", "finished"} <= set(first[0])
    assert not [f for f in os.listdir(tmp_path / "res") if ".rank" in f or f.endswith(".tmp")]

    # A crash after the first problem, mid-line: the rerun redoes problems 1-3 only (in other chunks than the
    # first run) and draws the same samples (sample ids depend on the problem, not on what runs beside it).
    with open(samples, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in first[:2])
        f.write('{"benchmark": "sums", "problem_id": 1, "sam')
    run_in_process(args)
    assert "skipping 1 problems" in capsys.readouterr().err
    assert read_jsonl(samples) == first
    assert json.load(open(out))["benchmarks"]["sums"] == m

    # Same --out with other sampling settings would mix two runs' samples: refused, one line.
    with pytest.raises(SystemExit, match="--temperature 0.6, not 1.0"):
        ev.main(args + ["--temperature", "1.0"])


def test_records_grade_the_decoded_response_and_count_a_right_but_truncated_answer_wrong(tiny_model_dir,
                                                                                          tmp_path,
                                                                                          monkeypatch):
    from transformers import AutoTokenizer

    from model import Qwen2
    from sample import Completion
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    rows = [{"problem": p, "answer": a} for p, a in PROBLEMS[:3]]

    def fake_generate(model, prompts, *, n, sample_offset, **kw):  # per problem: right, right but cut, wrong
        outs = []
        for g in range(len(prompts)):
            gold = rows[sample_offset // n + g]["answer"]
            for text, eos in ((f"<think>\nok\n</think>\n\\boxed{{{gold}}}", True),
                              (f"\\boxed{{{gold}}}", False), ("\\boxed{1000}", True)):
                ids = data.encode(tok, text) + [tok.eos_token_id] * eos
                outs.append(Completion(ids, [0.0] * len(ids), eos))
        return outs
    monkeypatch.setattr(ev, "generate", fake_generate)
    cfg = ev.EvalConfig(out=str(tmp_path / "r.json"), chunk=6, progress=False)
    ev.evaluate(cfg, Qwen2.from_pretrained(tiny_model_dir, device="cpu"), tok, "b", rows, 3, 0, 1, set(),
                True)
    records = ev.read_records(cfg.out)
    assert [(r["problem_id"], r["sample"]) for r in records] == [(i, j) for i in range(3) for j in range(3)]
    assert [r["correct"] for r in records] == [True, False, False] * 3
    assert ([r["answer"] for r in records[:3]] == ["42", "42", "1000"]
            and records[0]["response"].endswith("{42}"))
    m = ev.metrics(records, rows, 3)
    assert m["accuracy"] == pytest.approx(1 / 3) and m["truncated_frac"] == pytest.approx(1 / 3)
    assert m["pass_at_k"] == 1 and m["majority_accuracy"] == 1  # "42" vs "1000": a tie goes to the first


def test_two_torchrun_ranks_give_the_same_samples_and_metrics_as_one_process(tiny_model_dir, tmp_path):
    bench = write_jsonl(tmp_path / "sums.jsonl", [{"problem": p, "answer": a} for p, a in PROBLEMS])
    args = ["--model", tiny_model_dir, "--benchmark", bench, "--k", "3", "--max_new_tokens", "10",
            "--temperature", "0.6", "--seed", "7", "--device", "cpu", "--progress", "false"]
    run_in_process(args + ["--out", str(tmp_path / "one.json")])
    run_eval(args + ["--out", str(tmp_path / "two.json")], torchrun=True)
    one, two = (json.load(open(tmp_path / f"{x}.json")) for x in ("one", "two"))
    assert one["benchmarks"] == two["benchmarks"]
    a, b = read_jsonl(tmp_path / "one.samples.jsonl"), read_jsonl(tmp_path / "two.samples.jsonl")
    assert len(a) == 15 and a == b
    assert len({r["response"] for r in a}) > 1  # really sampled, not one greedy answer
    assert not [f for f in os.listdir(tmp_path) if ".rank" in f]


def test_load_rows_errors_are_one_line_and_rows_without_answers_are_dropped_with_a_report(tmp_path, capsys):
    with pytest.raises(SystemExit, match="unknown benchmark 'gsm9k'"):
        data.load_rows("gsm9k")
    with pytest.raises(SystemExit, match="does not exist"):
        data.load_rows(str(tmp_path / "missing.jsonl"))
    bad = write_jsonl(tmp_path / "bad.jsonl", [{"text": "What is 1 + 1?", "label": "2"}])
    with pytest.raises(SystemExit, match=r"problem field \(problem or question\).*found label, text"):
        data.load_rows(bad)

    mixed = write_jsonl(tmp_path / "mixed.jsonl", [
        {"problem": "a", "answer": "1"},
        {"problem": "b", "answer": ""},  # no answer
        {"problem": "c", "solution": "so \\boxed{x} then \\boxed{\\frac{1}{2}}"},  # gold: the last box
        {"problem": "d", "solution": "no box here"},
        {"question": "e", "answer": "Janet has 3.\n#### 1,234"},  # GSM8K layout
    ])
    rows = data.load_rows(mixed)
    assert rows == [{"problem": "a", "answer": "1"}, {"problem": "c", "answer": "\\frac{1}{2}"},
                    {"problem": "e", "answer": "1234"}]
    err = capsys.readouterr().err
    assert "dropped 2 of 5 rows" in err and "(rows 1, 3)" in err
    with pytest.raises(SystemExit, match="does not exist"):
        ev.main(["--model", str(tmp_path / "no_model"), "--benchmark", mixed,
                 "--out", str(tmp_path / "r.json")])
    with pytest.raises(SystemExit,
                       match=r"--kv_memory must be a fraction of the GPU's memory, in \(0, 1\), got 70"):
        ev.main(["--model", "toy-model", "--benchmark", mixed, "--kv_memory", "70"])
    with pytest.raises(SystemExit, match="--cuda_graph true needs a CUDA device"):
        ev.main(["--model", "toy-model", "--benchmark", mixed, "--device", "cpu", "--cuda_graph", "true"])


def test_hub_benchmark_offline_is_a_one_line_error_naming_the_local_file_alternative(tmp_path):
    env = dict(ENV, HF_HUB_OFFLINE="1", HF_DATASETS_OFFLINE="1", HF_HOME=str(tmp_path / "hf"))
    p = subprocess.run([sys.executable, "eval.py", "--model", "toy-model", "--benchmark", "gsm8k", "--out",
                        str(tmp_path / "r.json")], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=180)
    assert p.returncode != 0 and "Traceback" not in p.stderr, p.stderr
    assert "could not load 'openai/gsm8k'" in p.stderr and ".jsonl / .parquet" in p.stderr


def test_drop_report_counts_empty_problems_and_null_answers(tmp_path, capsys):
    path = write_jsonl(tmp_path / "d.jsonl", [{"problem": "a", "answer": None},
                                              {"problem": "b", "answer": "2"},
                                              {"problem": "", "answer": "3"}])
    assert data.load_rows(path) == [{"problem": "b", "answer": "2"}]
    err = capsys.readouterr().err
    assert "dropped 2 of 3 rows" in err and "(rows 0, 2)" in err


def test_parquet_and_toy_benchmarks_load_with_their_fields(tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq
    path = str(tmp_path / "aime.parquet")
    pq.write_table(pa.table({"ID": ["x"], "Problem": ["Find n."], "Answer": [204]}), path)  # AIME_2024 layout
    assert data.load_rows(path) == [{"problem": "Find n.", "answer": "204"}]
    toy_rows = data.load_rows("toy", limit=7)
    assert len(toy_rows) == 7 and all({"problem", "answer", "difficulty"} <= set(r) for r in toy_rows)


def test_plot_writes_a_png_from_two_result_files(tmp_path):
    def result(acc, tokens):
        return {"model": "m", "config": {}, "benchmarks": {
            b: {"accuracy": acc, "mean_tokens": tokens * s} for b, s in (("gsm8k", 1), ("math500", 3))}}
    paths = [str(tmp_path / n) for n in ("base.json", "alpha0.2.json")]
    for path, r in zip(paths, (result(0.9, 1000), result(0.85, 400))):
        json.dump(r, open(path, "w"))
    ev.main(["--plot", *paths, "--out", str(tmp_path / "pareto.png")])
    with open(tmp_path / "pareto.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_toy_accuracy_needs_a_valid_derivation_and_answer_accuracy_reports_the_boxed_answer_alone():
    import toy
    rows = data.toy_problems("test", 2)
    good = [toy.solution(r["problem"]).removeprefix(toy.THINK + "\n") for r in rows]
    records = [{"benchmark": "toy", "problem_id": i, "sample": 0, "tokens": 5, "finished": True,
                "answer": r["answer"], "answer_correct": True,
                "correct": toy.derivation_ok(r["problem"], text)}
               for i, (r, text) in enumerate(zip(rows, [good[0], "garbage\n" + good[1]]))]
    m = ev.metrics(records, rows, 1)
    assert m["accuracy"] == 0.5 and m["answer_accuracy"] == 1.0


def test_curves_plots_train_runs_and_names_a_folder_without_metrics(tmp_path):
    for name, slope in (("a0", 0), ("a0.2", -10)):
        os.makedirs(tmp_path / name)
        write_jsonl(tmp_path / name / "metrics.jsonl",
                    [{"iter": i, "mean_len": 100 + slope * i, "accuracy": 0.9} for i in range(1, 6)])
    ev.main(["--curves", str(tmp_path / "a0"), str(tmp_path / "a0.2"), "--out", str(tmp_path / "c.png")])
    with open(tmp_path / "c.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    with pytest.raises(SystemExit, match="nothing/metrics.jsonl"):
        ev.main(["--curves", str(tmp_path / "nothing"), "--out", str(tmp_path / "d.png")])


def test_train_and_eval_prompts_share_one_bos_and_eval_ends_with_think(tiny_model_dir):
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    problem = "What is 12 + 30?"
    train_ids = data.encode(tok, data.train_prompt(problem))
    eval_ids = data.encode(tok, data.chat_prompt(tok, problem))
    print("train prompt ids:", train_ids, tok.convert_ids_to_tokens(train_ids), sep="\n")
    print("eval prompt ids: ", eval_ids, tok.convert_ids_to_tokens(eval_ids), sep="\n")
    bos = tok.bos_token_id
    assert train_ids[0] == eval_ids[0] == bos and train_ids.count(bos) == eval_ids.count(bos) == 1
    tail = [tok.convert_tokens_to_ids(t) for t in (data.ASSISTANT, "<think>")] + data.encode(tok, "\n")
    assert eval_ids[-len(tail):] == tail
    assert eval_ids[:len(train_ids)] == train_ids  # the same prompt up to <think>\n


def test_accuracy_at_budget_counts_a_sample_only_if_it_ended_within_the_budget_and_is_right():
    problems = [[rec(0, 0, "1", True, 5), rec(0, 1, "1", True, 12)],  # right, ended at 5 and at 12
                # wrong; right but cut off
                [rec(1, 0, "2", False, 3), rec(1, 1, "2", True, 20, finished=False)]]
    c = ev.cutoff(problems, [4, 5, 12, 20], max_new_tokens=20)
    assert c["accuracy"] == [0.0, 0.25, 0.5, 0.5]  # per problem, then over problems
    assert c["mean_tokens"] == [(4 + 4 + 3 + 4) / 4, (5 + 5 + 3 + 5) / 4, (5 + 12 + 3 + 12) / 4,
                                (5 + 12 + 3 + 20) / 4]
    # sum over B of acc(B) / 20
    assert c["area"] == pytest.approx(((20 - 5 + 1) / 20 + (20 - 12 + 1) / 20) / 2 / 2)


def test_a_shorter_limit_gives_exactly_the_prefixes_of_the_longer_runs_samples(tiny_model_dir):
    """Counter-based sampling: sample j's tokens depend on (seed, j, step) only, so the cutoff curve that
    eval.py computes from one set of samples is what reruns at each budget would give."""
    from model import Qwen2
    from sample import generate
    model = Qwen2.from_pretrained(tiny_model_dir, device="cpu")
    prompts = [[3, 5, 7], [3, 9], [3, 11, 13, 15]]
    kw = dict(n=4, eos_token_id=4, temperature=1.0, seed=9)
    long = generate(model, prompts, max_new_tokens=30, **kw)
    assert 0 < sum(c.finished for c in long) < len(long)
    for B in (3, 10):
        short = generate(model, prompts, max_new_tokens=B, **kw)
        for a, b in zip(short, long):
            assert a.tokens == b.tokens[:B]
            assert a.finished == (b.finished and len(b.tokens) <= B)


@pytest.mark.parametrize("out", ["folder", "file/r.json", "", "/proc/r.json"])
def test_an_out_that_cannot_be_written_is_refused_before_the_model_loads(tmp_path, monkeypatch, out):
    # each used to fail only after all the sampling (or at its first write), in a traceback
    if out.startswith("/proc") and not os.path.isdir("/proc"):
        pytest.skip("no /proc here")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "folder").mkdir()
    (tmp_path / "file").write_text("")
    with pytest.raises(SystemExit, match=f"--out '{out}'"):  # not the missing model: refused before it loads
        ev.main(["--model", str(tmp_path / "no-model"), "--benchmark", "toy", "--out", out])
    assert sorted(os.listdir(tmp_path)) == ["file", "folder"] and not os.listdir(tmp_path / "folder")


def test_an_out_that_eval_did_not_write_or_of_other_settings_is_refused_not_overwritten(tiny_model_dir,
                                                                                         tmp_path):
    # the benchmark file and notes used to be replaced by the results JSON; so was a results file of other
    # settings whose samples had been deleted
    bench = write_jsonl(tmp_path / "p.jsonl", [{"problem": p, "answer": a} for p, a in PROBLEMS[:2]])
    before = open(bench).read()
    args = ["--model", tiny_model_dir, "--benchmark", bench, "--limit", "1", "--max_new_tokens", "2",
            "--device", "cpu", "--progress", "false"]
    err = eval_error(args + ["--out", bench])
    assert f"error: --out {bench} exists and is not a results file of eval.py: pass a new path" in err
    notes = tmp_path / "notes.txt"
    notes.write_text("notes\n")
    with pytest.raises(SystemExit, match="notes.txt exists and is not a results file of eval.py"):
        ev.main(args + ["--out", str(notes)])
    old = {"model": tiny_model_dir, "config": {"model": tiny_model_dir, "temperature": 1.0},
           "benchmarks": {"p": {"accuracy": 0.5, "mean_tokens": 2}}}
    json.dump(old, open(tmp_path / "old.json", "w"))
    with pytest.raises(SystemExit, match="old.json holds results of --temperature 1.0, not 0.6"):
        ev.main(args + ["--out", str(tmp_path / "old.json")])
    assert open(bench).read() == before and notes.read_text() == "notes\n"
    assert json.load(open(tmp_path / "old.json")) == old
    assert sorted(os.listdir(tmp_path)) == ["notes.txt", "old.json", "p.jsonl"]  # no samples, no .tmp


def test_a_figure_out_matplotlib_cannot_write_or_a_results_file_of_another_shape_is_a_one_line_error(tmp_path,
                                                                                                     capsys):
    # were matplotlib's "Format 'json' is not supported" after reading everything, a KeyError 'mean_tokens',
    # a FileNotFoundError, and "wrote plot" for a figure written to plot.png
    good = {"model": "m", "config": {}, "benchmarks": {"gsm8k": {"accuracy": 0.9, "mean_tokens": 100}}}
    for name, r in (("a", good), ("b", good), ("bad", {**good, "benchmarks": {"gsm8k": {}}})):
        json.dump(r, open(tmp_path / f"{name}.json", "w"))
    a, b, bad = (str(tmp_path / f"{name}.json") for name in ("a", "b", "bad"))
    err = eval_error(["--plot", a, b, "--out", str(tmp_path / "x.json")])
    assert "matplotlib cannot write a .json figure: pass a path ending in one of" in err and ".png" in err
    err = eval_error(["--plot", a, bad, "--out", str(tmp_path / "p.png")])
    assert f"error: {bad} is not a results file of eval.py" in err
    os.makedirs(tmp_path / "run")
    write_jsonl(tmp_path / "run" / "metrics.jsonl", [{"iter": 1, "mean_len": 5, "accuracy": 0.5}])
    with pytest.raises(SystemExit, match=r"cannot write a \.bak figure"):
        ev.main(["--curves", str(tmp_path / "run"), "--out", str(tmp_path / "c.bak")])
    if os.path.isdir("/proc"):
        with pytest.raises(SystemExit, match="--out '/proc/x.png' cannot be written in /proc"):
            ev.main(["--plot", a, b, "--out", "/proc/x.png"])
    assert sorted(os.listdir(tmp_path)) == ["a.json", "b.json", "bad.json", "run"]
    ev.main(["--plot", a, b, "--out", str(tmp_path / "plot")])  # no extension: a PNG, named as written
    assert capsys.readouterr().out == f"wrote {tmp_path / 'plot.png'}\n"
    with open(tmp_path / "plot.png", "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"


def test_a_samples_line_that_is_not_a_record_is_a_one_line_error_naming_the_file_and_line(tiny_model_dir,
                                                                                           tmp_path):
    # were KeyError: 'benchmark' for {} and a UnicodeDecodeError for bytes that are not UTF-8
    bench = write_jsonl(tmp_path / "p.jsonl", [{"problem": p, "answer": a} for p, a in PROBLEMS[:2]])
    out, samples = str(tmp_path / "r.json"), tmp_path / "r.samples.jsonl"
    args = ["--model", tiny_model_dir, "--benchmark", bench, "--limit", "1", "--max_new_tokens", "2",
            "--device", "cpu", "--progress", "false", "--out", out]
    record = {"benchmark": "p", "problem_id": 0, "sample": 0}
    samples.write_text(json.dumps(record) + "\n{}\n")
    err = eval_error(args)
    assert (f"error: {samples} line 2 is not a sample record of eval.py: delete {samples} to start over, "
            "or pass another --out") in err
    samples.write_bytes(b"\xff\xfe\n" + json.dumps(record).encode() + b"\n")
    with pytest.raises(SystemExit, match=re.escape(f"{samples} line 1 is not a sample record")):
        ev.main(args)
    assert sorted(os.listdir(tmp_path)) == ["p.jsonl", "r.samples.jsonl"]  # nothing written
    # a crashed run's last line, cut inside a UTF-8 character, is skipped (it used to stop the read)
    samples.write_bytes(json.dumps(record).encode() + b'\n{"benchmark": "p", "response": "\xc3')
    assert ev.read_records(out) == [record]


def test_two_benchmarks_of_one_name_are_refused_not_silently_merged(tmp_path):
    rows = [{"problem": p, "answer": x} for p, x in PROBLEMS[:2]]
    for d in ("a", "b"):
        (tmp_path / d).mkdir()
    a, b = (write_jsonl(tmp_path / d / "test.jsonl", rows) for d in ("a", "b"))  # used to evaluate b only
    with pytest.raises(SystemExit, match=re.escape(f"names two benchmarks 'test' ({a} and {b})")):
        ev.main(["--model", str(tmp_path / "no-model"), "--benchmark", f"{a},{b}",
                 "--out", str(tmp_path / "r.json")])
    assert not os.path.exists(tmp_path / "r.json")


def test_a_local_file_named_toy_is_graded_by_its_answers_not_by_the_toy_tasks_derivation_check(
        tiny_model_dir, tmp_path, monkeypatch):
    """train.py's --eval_benchmark data/toy.jsonl (through eval.held_out) used to count every right answer
    wrong: the built-in task's derivation check went by the file's name."""
    from transformers import AutoTokenizer

    from model import Qwen2
    from sample import Completion
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    model = Qwen2.from_pretrained(tiny_model_dir, device="cpu")
    rows = data.load_rows("toy", split="test", limit=3)
    local = write_jsonl(tmp_path / "toy.jsonl", rows)  # the same problems, in a file of that name

    def fake_generate(model, prompts, *, n, sample_offset, **kw):  # the right answer, boxed, no derivation
        ids = [data.encode(tok, f"\\boxed{{{rows[sample_offset // n + g]['answer']}}}") + [tok.eos_token_id]
               for g in range(len(prompts)) for _ in range(n)]
        return [Completion(x, [0.0] * len(x), True) for x in ids]
    monkeypatch.setattr(ev, "generate", fake_generate)

    def held_out(spec, out):
        return ev.held_out(model, tok, spec, 3, str(tmp_path / out), "m", 20, 0.6, 0, 0, 1)
    assert held_out(local, "r_file.json")["accuracy"] == 1.0
    builtin = held_out("toy", "r_builtin.json")
    assert builtin["accuracy"] == 0.0 and builtin["answer_accuracy"] == 1.0


def test_a_file_that_is_not_parquet_is_a_one_line_error_naming_it(tmp_path):
    for name, content in (("text.parquet", b"problem,answer\n1+1?,2\n"), ("empty.parquet", b"")):
        (tmp_path / name).write_bytes(content)
        with pytest.raises(SystemExit, match=f"{name} is not a readable Parquet file"):  # was pyarrow's
            data.load_rows(str(tmp_path / name))                                          # ArrowInvalid
