"""baselines.py: the rejection-sampling SFT data, the DPO pairs and loss against hand computations, and a
real (tiny) run of each on the toy task."""
import json
import math
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

import baselines
from baselines import dpo_loss, dpo_pairs, shortest_correct, sft_loss
from conftest import ROOT


def s(prompt, n, correct):
    return dict(prompt=prompt, tokens=list(range(n)), correct=correct)


SAMPLES = [s(0, 9, True), s(0, 4, False), s(0, 6, True), s(0, 6, True), s(0, 12, True),  # shortest right: 6
           s(1, 3, False), s(1, 5, False),  # no correct sample: no SFT example, no pair
           s(2, 7, True), s(2, 7, True)]  # correct, but of one length: an SFT example, no pair


def test_sft_keeps_each_prompts_shortest_correct_sample_and_skips_prompts_with_none():
    best = shortest_correct(SAMPLES)
    # the first of equal lengths
    assert set(best) == {0, 2} and best[0] is SAMPLES[2] and best[2] is SAMPLES[7]


def test_dpo_pairs_the_shortest_with_the_longest_correct_sample():
    pairs = dpo_pairs(SAMPLES)
    assert set(pairs) == {0} and pairs[0] == (SAMPLES[2], SAMPLES[4])


def test_dpo_loss_against_a_hand_computation():
    logp_w, logp_l = torch.tensor([-10.0, -4.0]), torch.tensor([-12.0, -3.0])
    ref_w, ref_l = torch.tensor([-11.0, -5.0]), torch.tensor([-11.0, -2.5])
    beta = 0.1
    margins = [(-10 + 11) - (-12 + 11), (-4 + 5) - (-3 + 2.5)]  # 2.0 and 1.5
    hand = sum(-math.log(1 / (1 + math.exp(-beta * m))) for m in margins) / 2
    assert dpo_loss(logp_w, logp_l, ref_w, ref_l, beta).item() == pytest.approx(hand, rel=1e-6)
    assert dpo_loss(ref_w, ref_l, ref_w, ref_l, beta).item() == pytest.approx(math.log(2))  # the base: log 2


def test_sft_loss_is_the_mean_over_sequences_of_their_mean_token_nll():
    logps = [torch.tensor([-1.0, -3.0]), torch.tensor([-2.0, -2.0, -2.0, -6.0])]
    assert sft_loss(logps).item() == pytest.approx((2.0 + 3.0) / 2)


@pytest.mark.parametrize("mode", ["sft", "dpo"])
def test_a_tiny_run_samples_once_fine_tunes_and_evaluates(tmp_path, mode):
    args = ["--prompts", "6", "--samples", "4", "--max_new_tokens", "120", "--epochs", "1",
            "--batch_size", "4", "--eval_problems", "8", "--out_dir", str(tmp_path)]
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "baselines.py", mode, *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0, p.stdout[-2000:] + p.stderr[-3000:]
    samples = [json.loads(line) for line in open(tmp_path / "samples.jsonl")]
    assert len(samples) == 24 and {x["prompt"] for x in samples} == set(range(6))
    run = tmp_path / f"{mode}-lr0.0001"
    metrics = json.loads((run / "eval_final.json").read_text())["benchmarks"]["toy"]
    assert metrics["n_problems"] == 8 and (run / "final" / "model.safetensors").exists()
    if mode == "dpo":
        return
    # again: the finished fine-tune is evaluated, not redone (it used to be overwritten); other settings
    # into the same folder are refused
    weights = (run / "final" / "model.safetensors").stat()
    p = subprocess.run([sys.executable, "baselines.py", mode, *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 0 and "fine-tuned already with these settings" in p.stdout, p.stderr[-3000:]
    assert (run / "final" / "model.safetensors").stat().st_mtime_ns == weights.st_mtime_ns
    assert json.loads((run / "eval_final.json").read_text())["benchmarks"]["toy"] == metrics
    p = subprocess.run([sys.executable, "baselines.py", mode, *args, "--epochs", "2"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=600)
    assert p.returncode == 1 and "holds a model fine-tuned with other settings" in p.stderr, p.stderr[-3000:]
    shutil.rmtree(run / "final")  # its settings say done, its model is gone: one line, not a traceback
    p = subprocess.run([sys.executable, "baselines.py", mode, *args], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=600)
    assert p.returncode == 1 and "to fine-tune again" in p.stderr and "Traceback" not in p.stderr, p.stderr[-3000:]


def test_settings_a_fine_tune_cannot_use_are_refused_before_it_starts(tmp_path):
    from baselines import BaselineConfig
    for key, value, message in [("warmup_steps", -1, "--warmup_steps must be >= 0"),  # was: a negative lr
                                ("eval_problems", 0, "--eval_problems must be >= 1, got 0"),  # was: all
                                ("eval_temperature", -1.0, "--eval_temperature must be >= 0"),
                                ("device", "mps", "--device must be cpu, cuda or cuda:N"),
                                ("seed", 2**63, r"--seed must be in \[-2\*\*63, 2\*\*63\)")]:  # was: a
        #                                                                 traceback from train_config()
        with pytest.raises(ValueError, match=message):
            BaselineConfig(**{key: value})
    env = dict(os.environ, OMP_NUM_THREADS="1")
    for args, message in [(["--eval_benchmark", "nosuch.jsonl"], "data file 'nosuch.jsonl' does not exist"),
                          (["--prompts", "3000"], "--prompts 3000, but toy gives 2048 usable prompts")]:
        # used to fine-tune first, then stop with a traceback, or silently use fewer prompts
        p = subprocess.run([sys.executable, "baselines.py", "sft", *args, "--out_dir", str(tmp_path / "o")],
                           cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
        assert p.returncode == 1 and message in p.stderr and "Traceback" not in p.stderr, p.stderr[-3000:]
        assert not (tmp_path / "o").exists()


def test_an_out_dir_that_is_a_file_or_lies_under_one_is_refused_before_anything_loads(tmp_path, capsys):
    """os.makedirs stopped on it with a traceback, after the model and the prompts had loaded."""
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out_dir in (afile, afile / "x"):
        message = f"error: --out_dir must be a folder ({afile} is a file), got '{out_dir}'"
        with pytest.raises(SystemExit, match=f"^{re.escape(message)}$"):
            baselines.main(["sample", "--out_dir", str(out_dir)])
        assert capsys.readouterr().out == ""  # refused before the config is printed, let alone the model loaded
    assert afile.read_text() == "mine"


def test_damaged_samples_or_fine_tune_settings_are_refused_naming_the_file_and_kept(tmp_path):
    """samples.jsonl cut short or emptied (JSONDecodeError, IndexError) and a garbled config.json of a fine-tune
    (JSONDecodeError) used to stop with a traceback; a file cut at a line's end was used as if whole."""
    from baselines import SAMPLING, BaselineConfig
    args = ["--num_prompts", "8", "--prompts", "4", "--samples", "4", "--max_new_tokens", "120",
            "--out_dir", str(tmp_path)]
    cfg = BaselineConfig(num_prompts=8, prompts=4, samples=4, max_new_tokens=120, out_dir=str(tmp_path))
    drawn = {k: getattr(cfg, k) for k in SAMPLING}
    whole = "".join(json.dumps(dict(prompt=k // 4, tokens=[5] * (3 + k % 4), finished=True, correct=True,
                                    response="", sampling=drawn)) + "\n" for k in range(16))
    path, config = tmp_path / "samples.jsonl", tmp_path / "sft-lr0.0001" / "config.json"
    config.parent.mkdir()
    config.write_text('{"mode": "sft", "lr": 0.0')  # cut short while written by another tool: not ours
    half = "".join(whole.splitlines(keepends=True)[:8])
    for text, problem in [(whole[:len(half) + 20], "line 9 is not a whole sample"),  # cut inside a line
                          ("", "it holds 0 samples of the 16 drawn"),
                          (half, "it holds 8 samples of the 16 drawn"),  # cut at a line's end
                          (whole, None)]:  # whole: on to the fine-tune's config.json
        path.write_text(text)
        message = (f"error: {path} is damaged ({problem}): delete it to sample again" if problem else
                   f"error: {config.parent}/config.json is damaged (Expecting ',' delimiter: line 1 column 26 "
                   f"(char 25)): delete {config.parent} to fine-tune again")
        with pytest.raises(SystemExit, match=f"^{re.escape(message)}$"):
            baselines.main(["sft", *args])
        assert path.read_text() == text  # nothing written is lost
    assert config.read_text() == '{"mode": "sft", "lr": 0.0' and os.listdir(config.parent) == ["config.json"]


def test_sampling_needs_no_chat_template_and_a_fine_tune_that_evaluates_is_refused_without_one(tmp_path):
    """Only the evaluation's prompts go through the chat template: sample mode must not ask for one (it did,
    for a moment), and a fine-tune must stop before it trains, not when it evaluates (its first version)."""
    from baselines import SAMPLING, BaselineConfig
    model = tmp_path / "m"
    shutil.copytree(os.path.join(ROOT, "toy-model"), model)
    (model / "chat_template.jinja").unlink()
    out = tmp_path / "o"
    out.mkdir()
    cfg = BaselineConfig(model=str(model), num_prompts=8, prompts=2, samples=2, out_dir=str(out))
    drawn = {k: getattr(cfg, k) for k in SAMPLING}
    (out / "samples.jsonl").write_text("".join(json.dumps(dict(prompt=k // 2, tokens=[5, 6], finished=True,
                                                               correct=True, response="", sampling=drawn)) + "\n"
                                               for k in range(4)))
    args = ["--model", str(model), "--num_prompts", "8", "--prompts", "2", "--samples", "2", "--out_dir", str(out)]
    baselines.main(["sample", *args])  # returns: the samples are there, and no refusal (no SystemExit)
    with pytest.raises(SystemExit, match="cannot render a chat template"):
        baselines.main(["sft", *args])
    assert sorted(os.listdir(out)) == ["samples.jsonl"]  # nothing fine-tuned

