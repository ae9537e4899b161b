"""The built-in task end to end, reduced: a strong length penalty (alpha 0.4) must shorten the toy model's
responses, while plain correctness (alpha 0) must not, and the shortening must not come from garbage
(accuracy stays well above chance). Two real runs of `train.py --preset toy` (12 iterations, 60 held-out
problems): about 3 minutes on a quiet 2-core machine."""
import json
import os
import subprocess
import sys

from conftest import ROOT

CUT = 0.12  # half of what one run showed (2026-12-02: alpha 0.4 -24%, alpha 0 +6%)


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


def test_length_penalty_shortens_responses_and_alpha_zero_does_not(tmp_path):
    init, penalised = run_toy(0.4, tmp_path / "alpha0.4")
    _, plain = run_toy(0.0, tmp_path / "alpha0")
    assert init["accuracy"] >= 0.85 and init["mean_tokens"] > 60  # the base model is an accurate overthinker
    cut = 1 - penalised["mean_tokens"] / init["mean_tokens"]
    cut0 = 1 - plain["mean_tokens"] / init["mean_tokens"]
    print(f"alpha 0.4: {-cut:+.0%} tokens, accuracy {init['accuracy']:.2f} -> {penalised['accuracy']:.2f}; "
          f"alpha 0: {-cut0:+.0%}, accuracy {plain['accuracy']:.2f}")
    assert cut >= CUT, f"alpha 0.4 cut only {cut:.0%} of the tokens"
    assert penalised["accuracy"] >= 0.7  # shorter, not broken
    assert cut >= cut0 + CUT, f"alpha 0.4 cut {cut:.0%}, alpha 0 cut {cut0:.0%}"
