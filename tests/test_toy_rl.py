"""The built-in task end to end, reduced: the length penalty must shorten the toy model's responses at
similar held-out accuracy, and plain correctness (alpha 0) must shorten them clearly less.
Two real runs of `train.py --preset toy` (12 iterations, 60 held-out problems): about 3 minutes."""
import json
import os
import subprocess
import sys

from conftest import ROOT


def run_toy(alpha, out_dir):
    cmd = [sys.executable, "train.py", "--preset", "toy", "--alpha", str(alpha), "--iters", "12",
           "--eval_problems", "60", "--save_every", "0", "--out_dir", str(out_dir)]
    p = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=900,
                       env=dict(os.environ, OMP_NUM_THREADS="1"))
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    # the before/after table
    assert "| initial |" in p.stdout and f"| final (alpha {float(alpha)}) |" in p.stdout
    with open(out_dir / "summary.json") as f:
        s = json.load(f)
    assert set(s) >= {"init_model", "final_model", "initial", "final"}
    assert os.path.exists(os.path.join(s["final_model"], "model.safetensors"))
    return s["initial"], s["final"]


def test_length_penalty_shortens_responses_at_similar_accuracy_and_alpha_zero_cuts_less(tmp_path):
    init, penalised = run_toy(0.2, tmp_path / "alpha0.2")
    _, plain = run_toy(0.0, tmp_path / "alpha0")
    assert init["accuracy"] >= 0.85 and init["mean_tokens"] > 60  # the base model is an accurate overthinker
    cut = 1 - penalised["mean_tokens"] / init["mean_tokens"]
    cut0 = 1 - plain["mean_tokens"] / init["mean_tokens"]
    print(f"alpha 0.2: -{cut:.0%} tokens, accuracy {init['accuracy']:.2f} -> {penalised['accuracy']:.2f}; "
          f"alpha 0: -{cut0:.0%}, accuracy {plain['accuracy']:.2f}")
    assert cut >= 0.2, f"alpha 0.2 cut only {cut:.0%} of the tokens"
    assert penalised["accuracy"] >= init["accuracy"] - 0.07
    assert cut >= cut0 + 0.1, f"alpha 0.2 cut {cut:.0%}, alpha 0 cut {cut0:.0%}"
