"""train.py: the maths against hand-computed examples, and real runs of the script (CPU, tiny model)."""
import json
import os
import re
import shutil
import subprocess
import sys

import pytest
import torch

from conftest import ROOT
from train import (TrainConfig, agg_weights, get_config, get_lr, kl_returns, micro_batches, ppo_loss,
                   group_normalize, rloo_advantages, whiten)


def test_rloo_baseline_is_mean_of_the_other_samples_not_the_whole_group():
    r = torch.tensor([1.0, 0.0, 0.5, 0.5, 0.0, 0.0, 0.0, 0.9])
    adv = rloo_advantages(r, 4)
    # group 1: 1 - (0 + .5 + .5)/3 = 2/3; 0 - (1 + .5 + .5)/3 = -2/3; .5 - (1 + 0 + .5)/3 = 0
    assert torch.allclose(adv[:4], torch.tensor([2 / 3, -2 / 3, 0.0, 0.0]))
    assert torch.allclose(adv[4:], torch.tensor([-0.3, -0.3, -0.3, 0.9]))


def test_kl_in_reward_is_the_return_to_go_with_gamma_one():
    kl = torch.tensor([0.1, -0.2, 0.3, 0.4])
    assert torch.allclose(kl_returns(kl), torch.tensor([0.6, 0.5, 0.7, 0.4]))


def test_whitening_is_token_weighted_over_the_whole_batch():
    x = torch.tensor([1.0, 1.0, 1.0, 5.0])  # one long sequence of 1s, one token of 5: token-weighted mean 2
    w = whiten(x)
    assert torch.allclose(w.mean(), torch.tensor(0.0), atol=1e-6)
    assert torch.allclose(w, (x - 2.0) / x.std(unbiased=False), atol=1e-4)


def test_whiten_uses_the_all_reduced_moments():
    x = torch.tensor([1.0, 3.0])
    # a fake "other rank" holding [5, 7]: the world moments must be used, not the local ones
    other = torch.tensor([12.0, 74.0, 2.0])
    w = whiten(x, world_sum=lambda s: s + other)
    full = whiten(torch.tensor([1.0, 3.0, 5.0, 7.0]))
    assert torch.allclose(w, full[:2], atol=1e-5)


def test_ppo_loss_clips_only_in_the_direction_that_would_overshoot():
    old = torch.zeros(4)
    logp = torch.log(torch.tensor([1.5, 1.5, 0.5, 0.5]))  # ratios 1.5, 1.5, 0.5, 0.5
    adv = torch.tensor([1.0, -1.0, 1.0, -1.0])
    w = torch.ones(4)
    loss, clipfrac = ppo_loss(logp, old, adv, w, 0.2)
    # -min(rA, clip(r)A): 1.5,A=1 -> -1.2 ; 1.5,A=-1 -> 1.5 ; 0.5,A=1 -> -0.5 ; 0.5,A=-1 -> 0.8
    assert torch.allclose(loss, torch.tensor(-1.2 + 1.5 - 0.5 + 0.8))
    assert clipfrac.item() == 4


def test_seq_mean_weights_each_sequence_equally_and_token_mean_each_token():
    w = agg_weights([1, 3], "seq-mean", n_seqs=2, n_tokens=4)
    assert torch.allclose(w, torch.tensor([0.5, 1 / 6, 1 / 6, 1 / 6]))
    w = agg_weights([1, 3], "token-mean", n_seqs=2, n_tokens=4)
    assert torch.allclose(w, torch.full((4,), 0.25))


@pytest.mark.parametrize("loss_agg", ["seq-mean", "token-mean"])
def test_gradient_does_not_depend_on_the_micro_batch_split(tiny_model_dir, loss_agg):
    from model import Qwen2
    from train import sequence_logprobs
    torch.manual_seed(0)
    model = Qwen2.from_pretrained(tiny_model_dir, device="cpu")
    seqs = [torch.randint(5, 200, (n,)).tolist() for n in (7, 12, 5, 9)]
    plens = [3, 4, 2, 5]
    lengths = [len(s) - p for s, p in zip(seqs, plens)]
    old = [torch.randn(n) * 0.1 - 5 for n in lengths]
    adv = [torch.randn(n) for n in lengths]

    def grad(split):
        model.zero_grad()
        for idxs in split:
            logp = torch.cat(sequence_logprobs(model, seqs, plens, idxs, 1.0, "cpu"))
            w = agg_weights([lengths[i] for i in idxs], loss_agg, 4, sum(lengths))
            loss, _ = ppo_loss(logp, torch.cat([old[i] for i in idxs]), torch.cat([adv[i] for i in idxs]),
                               w, 0.2)
            loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    g1, g2 = grad([[0, 1, 2, 3]]), grad([[0], [1, 2], [3]])
    assert torch.allclose(g1, g2, atol=1e-6), (g1 - g2).abs().max()
    assert g1.abs().sum() > 0


def test_micro_batches_respect_both_caps_and_keep_order():
    assert (micro_batches([0, 1, 2, 3, 4], [5, 5, 5, 20, 1], max_seqs=2, max_tokens=12)
            == [[0, 1], [2], [3], [4]])


def test_warmup_matches_transformers_constant_schedule_stepped_after_each_optimizer_step():
    """The authors' schedule: get_constant_schedule_with_warmup, scheduler.step() after optimizer.step(), so
    that optimizer step 0 runs at lr 0 and step s < warmup at lr * s / warmup."""
    from transformers import get_constant_schedule_with_warmup
    cfg = TrainConfig(lr=1e-3, warmup_steps=4)
    assert [get_lr(s, cfg) for s in range(7)] == pytest.approx([0, 2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])
    opt = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=cfg.lr)
    sched = get_constant_schedule_with_warmup(opt, num_warmup_steps=cfg.warmup_steps)
    for step in range(7):
        assert opt.param_groups[0]["lr"] == pytest.approx(get_lr(step, cfg)), step  # the lr this step runs at
        opt.step()
        sched.step()
    assert get_lr(0, TrainConfig(lr=1e-3, warmup_steps=0)) == 1e-3


def test_group_normalisation_divides_each_prompts_advantages_by_its_reward_std_and_keeps_ties_at_zero():
    rewards = torch.tensor([1.0, 0.9, 0.8, 0.0, 0.7, 0.7, 0.7, 0.7])  # two prompts of 4
    adv = rloo_advantages(rewards, 4)
    out = group_normalize(adv, rewards, 4)
    std = rewards[:4].std()  # unbiased, as GRPO's
    assert torch.allclose(out[:4], adv[:4] / (std + 1e-4))
    assert torch.equal(out[4:], torch.zeros(4))  # equal rewards: 0, not NaN
    spread = torch.tensor([1.0, 0.95, 0.9, 0.85])  # all correct, rewards 1 - alpha * sigmoid(z): same shape
    for alpha in (0.05, 0.4):  # the normalised advantage of the shortest answer does not depend on alpha
        r = 1 - alpha * (1 - spread) / 0.15
        assert group_normalize(rloo_advantages(r, 4), r, 4)[0].item() == pytest.approx(
            group_normalize(rloo_advantages(spread, 4), spread, 4)[0].item(), rel=1e-2)  # up to the 1e-4


def test_paper_defaults_and_presets():
    cfg = get_config([])
    assert ((cfg.prompts_per_iter, cfg.group_size, cfg.train_batch_size, cfg.lr, cfg.kl_coef)
            == (32, 8, 128, 5e-6, 1e-3))
    assert cfg.loss_agg == "seq-mean" and cfg.adv_norm == "batch" and cfg.temperature == 1.0
    assert cfg.max_new_tokens == 32000 and cfg.warmup_steps == 6
    cfg = get_config(["--preset", "r1-7b", "--lr", "1e-6"])
    assert cfg.fsdp and cfg.lr == 1e-6 and cfg.model.endswith("7B")


def test_help_shows_the_values_a_preset_sets_with_each_fields_comment(capsys):
    with pytest.raises(SystemExit) as e:
        get_config(["--preset", "toy", "--help"])
    assert e.value.code == 0
    out = capsys.readouterr().out
    # the preset's value, not the 1.5B
    assert re.search(r"--model +'toy-model' +hub id or local HF folder", out)
    assert re.search(r"--alpha +0.2 +length-penalty strength", out)


@pytest.mark.parametrize("args, message", [
    (["--alpha", "1.0"], "alpha (--alpha) must be in [0, 1)"),
    (["--alpha", "-0.1"], "alpha (--alpha) must be in [0, 1)"),
    (["--prompts_per_iter", "3", "--train_batch_size", "16"], "whole minibatches"),
    (["--loss_agg", "sum"], "seq-mean or token-mean"),
    (["--alhpa", "0.1"], "unknown option --alhpa"),
    (["--preset", "huge"], "unknown --preset"),
])
def test_bad_config_is_refused_with_a_message(args, message):
    with pytest.raises(SystemExit, match=None) as e:
        get_config(args)
    assert message in str(e.value)


# -----------------------------------------------------------------------------
# real runs of train.py on the built-in task's base model (toy-model/, committed), a few seconds each

TOY_ARGS = ["--preset", "toy", "--prompts_per_iter", "4", "--group_size", "4", "--train_batch_size", "8",
            "--micro_batch_size", "4", "--max_new_tokens", "96", "--eval_benchmark", "", "--lr", "1e-4"]


def run_train(args, out_dir, nproc=1, timeout=600, env=None, check=True):
    """train.py with the tiny settings; its stdout (check=False: the CompletedProcess, whatever it returned)."""
    cmd = [sys.executable, os.path.join(ROOT, "train.py")] + TOY_ARGS + ["--out_dir", str(out_dir)] + args
    if nproc > 1:
        cmd = ([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", str(nproc)]
               + cmd[1:])
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1", **(env or {}))
    p = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=timeout)
    if not check:
        return p
    assert p.returncode == 0, p.stdout[-3000:] + p.stderr[-3000:]
    return p.stdout


def read_metrics(out_dir):
    with open(os.path.join(out_dir, "metrics.jsonl")) as f:
        return [json.loads(line) for line in f]


def load_weights(folder):
    from safetensors.torch import load_file
    return load_file(os.path.join(folder, "model.safetensors"))


DETERMINISTIC = ("reward", "accuracy", "mean_len", "truncated", "all_correct", "all_wrong")


def test_two_iterations_train_every_parameter_and_write_loadable_checkpoints(tmp_path):
    out = run_train(["--iters", "2", "--save_every", "1"], tmp_path)
    assert "iter 002/2" in out
    m = read_metrics(tmp_path)
    assert [r["iter"] for r in m] == [1, 2] and all(r["loss_agg"] == "seq-mean" for r in m)
    assert 0 < m[0]["accuracy"] <= 1 and m[0]["mean_len"] > 10
    for r in m:  # every zero reward has a cause, and the causes add up
        assert (r["accuracy"] + r["truncated"] + r["no_box"] + r["unparseable"] + r["timeout"] + r["wrong"]
                == pytest.approx(1))
    before, after = load_weights(os.path.join(ROOT, "toy-model")), load_weights(tmp_path / "final")
    unchanged = [k for k in before if torch.equal(before[k], after[k])]
    assert not unchanged, f"parameters that never moved: {unchanged}"
    from transformers import AutoModelForCausalLM

    from model import Qwen2
    ours = Qwen2.from_pretrained(str(tmp_path / "iter_000001"), device="cpu")
    hf = AutoModelForCausalLM.from_pretrained(str(tmp_path / "final"))
    idx = torch.tensor([[3, 1, 40, 41, 42, 2]])
    with torch.no_grad():
        assert torch.allclose(Qwen2.from_pretrained(str(tmp_path / "final"), device="cpu")(idx),
                              hf(idx).logits, atol=1e-5)
        assert not torch.allclose(ours(idx), hf(idx).logits)  # iteration 1 and the final model differ
    with open(tmp_path / "samples.jsonl") as f:
        s = json.loads(f.readline())
    assert {"problem", "response", "reward", "correct", "tokens"} <= set(s)


def assert_exactly_the_same_run(a_dir, b_dir):
    """A resumed run against an uninterrupted one: every metric and every final weight bit for bit."""
    for ra, rb in zip(read_metrics(a_dir), read_metrics(b_dir), strict=True):
        for k in DETERMINISTIC + ("loss", "clipfrac", "kl", "grad_norm"):
            assert ra[k] == rb[k], (ra["iter"], k, ra[k], rb[k])
    wa, wb = load_weights(a_dir / "final"), load_weights(b_dir / "final")
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def offline_hub_cache(root):
    """The toy model as a hub id in a Hugging Face cache (the layout hf download writes), read offline."""
    snap = root / "models--toy-org--toy-model" / "snapshots" / "0123abcd"
    shutil.copytree(os.path.join(ROOT, "toy-model"), snap)
    (root / "models--toy-org--toy-model" / "refs").mkdir()
    (root / "models--toy-org--toy-model" / "refs" / "main").write_text("0123abcd")
    return dict(HF_HUB_CACHE=str(root), HF_HUB_OFFLINE="1")


def test_resume_is_exact_four_iterations_equal_two_plus_resume_plus_two(tmp_path):
    # The model is a hub id, as in the r1 presets: a resumed run must still take its KL reference from the
    # initial model, not from the checkpoint it resumes (the "kl" metric below would differ).
    hub = ["--model", "toy-org/toy-model"]
    env = offline_hub_cache(tmp_path / "hub")
    run_train(hub + ["--iters", "4", "--save_every", "2"], tmp_path / "straight", env=env)
    run_train(hub + ["--iters", "2"], tmp_path / "split", env=env)
    out = run_train(hub + ["--iters", "4", "--resume", "true"], tmp_path / "split", env=env)
    assert "resumed from" in out and "at iteration 2" in out
    assert [r["iter"] for r in read_metrics(tmp_path / "split")] == [1, 2, 3, 4]
    assert_exactly_the_same_run(tmp_path / "straight", tmp_path / "split")


@pytest.fixture(scope="module")
def one_process_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("one")
    run_train(["--iters", "2"], out)
    return out


def assert_same_run(a_dir, b_dir, weight_tol):
    a, b = read_metrics(a_dir), read_metrics(b_dir)
    assert [r["iter"] for r in a] == [r["iter"] for r in b] == [1, 2]
    for ra, rb in zip(a, b):
        for k in DETERMINISTIC:  # the rollouts are the same samples: counter-based RNG, per-sample ids
            assert ra[k] == pytest.approx(rb[k], abs=1e-9), (ra["iter"], k)
        for k in ("loss", "clipfrac", "kl"):
            assert ra[k] == pytest.approx(rb[k], rel=1e-3, abs=1e-6), (ra["iter"], k)
    wa, wb = load_weights(a_dir / "final"), load_weights(b_dir / "final")
    assert wa.keys() == wb.keys() and all(wb[k].dtype == torch.float32 for k in wb)
    assert max((wa[k] - wb[k]).abs().max().item() for k in wa) < weight_tol


def test_torchrun_two_ranks_match_one_process_with_the_same_global_batch(tmp_path, one_process_run):
    out = run_train(["--iters", "2"], tmp_path / "two", nproc=2)
    assert "training with 2 rank(s)" in out and "weights identical on all 2 ranks: True" in out
    assert_same_run(one_process_run, tmp_path / "two", 1e-4)


def test_fsdp_two_ranks_match_one_process_and_resume_exactly(tmp_path, one_process_run):
    """FSDP2 (the 7B preset's sharding) over gloo: parameters, gradients and AdamW state sharded in two,
    checkpoints gathered into one Hugging Face folder, and the sharded optimizer state restored on resume.
    With activation checkpointing, as the r1 presets run (the toy preset turns it off). A damaged optimizer
    state, which only rank 0 reads, stops every rank with its name (the others used to wait at the broadcast
    until the process group's timeout)."""
    sharded = ["--fsdp", "true", "--grad_ckpt", "true"]
    run_train(["--iters", "2", *sharded], tmp_path / "fsdp", nproc=2)
    assert_same_run(one_process_run, tmp_path / "fsdp", 1e-4)
    run_train(["--iters", "1", *sharded], tmp_path / "split", nproc=2)
    shutil.copytree(tmp_path / "split", tmp_path / "damaged")
    state = tmp_path / "damaged" / "final" / "train_state.pt"
    state.write_bytes(state.read_bytes()[:1000])
    p = run_train(["--iters", "2", *sharded, "--resume", "true", "--dist_timeout_min", "5"], tmp_path / "damaged",
                  nproc=2, timeout=240, check=False)
    # every rank says why it stops: rank 1 is not left waiting at the broadcast, killed by torchrun unheard
    assert p.returncode != 0 and p.stderr.count("is damaged (train_state.pt") == 2, p.stderr[-3000:]
    assert (tmp_path / "damaged" / "iter_000001" / "train_state.pt").exists()  # kept, for the fix it names
    out = run_train(["--iters", "2", *sharded, "--resume", "true"], tmp_path / "split", nproc=2)
    assert "at iteration 1" in out
    assert_exactly_the_same_run(tmp_path / "fsdp", tmp_path / "split")


def test_missing_dataset_fields_missing_model_and_cuda_graph_on_cpu_are_clear_errors(tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"question_text": "1+1?", "label": "2"}) + "\n")
    p = subprocess.run([sys.executable, "train.py", "--preset", "toy", "--dataset", str(bad), "--out_dir",
                        str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr
    assert "problem" in p.stderr and "answer" in p.stderr
    p = subprocess.run([sys.executable, "train.py", "--preset", "toy", "--model", str(tmp_path / "nope"),
                        "--out_dir", str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True,
                       timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "does not exist" in p.stderr
    p = subprocess.run([sys.executable, "train.py", "--preset", "toy", "--device", "cpu",
                        "--cuda_graph", "true", "--out_dir", str(tmp_path / "o")], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert (p.returncode != 0 and "Traceback" not in p.stderr
            and "--cuda_graph true needs a CUDA device" in p.stderr)
    if not torch.cuda.is_available():  # also under torchrun, where it used to fall back to the CPU silently
        p = subprocess.run([sys.executable, "train.py", "--preset", "toy", "--device", "cuda", "--out_dir",
                            str(tmp_path / "o")], cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert p.returncode != 0 and "Traceback" not in p.stderr and "sees no CUDA GPU" in p.stderr


def test_a_new_run_into_a_finished_runs_out_dir_or_past_the_context_stops_before_writing(tmp_path):
    """Nothing already written is lost: a second run without --resume would have emptied the first's logs."""
    out = tmp_path / "run"
    out.mkdir()
    (out / "metrics.jsonl").write_text('{"iter": 1}\n')
    (out / "samples.jsonl").write_text('{"iter": 1}\n')
    base = [sys.executable, "train.py", "--preset", "toy", "--out_dir", str(out)]
    # no checkpoint: a new run would drop the logs (--resume starts over, moving them aside: test_operating)
    p = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "Traceback" not in p.stderr and "saved no checkpoint" in p.stderr
    (out / "iter_000001").mkdir()
    (out / "iter_000001" / "state.json").write_text('{"iter": 1}')
    p = subprocess.run(base, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert p.returncode != 0 and "already holds a run: continue it with --resume" in p.stderr
    p = subprocess.run(base + ["--out_dir", str(tmp_path / "new"), "--max_new_tokens", "99999"], cwd=ROOT,
                       capture_output=True, text=True, timeout=120)
    assert (p.returncode != 0 and "Traceback" not in p.stderr
            and "exceeds the model's 1024 positions" in p.stderr)
    # refused before the initial evaluation wrote anything (or the lock)
    assert not (tmp_path / "new").exists()
    assert (out / "metrics.jsonl").read_text() == (out / "samples.jsonl").read_text() == '{"iter": 1}\n'


def test_sampler_trainer_mismatch_is_about_zero_in_one_dtype_and_clear_with_a_bf16_sampler(tmp_path):
    """The rollout's own log-probs against the trainer's recomputation of the same tokens: the same fp32
    weights give fp32 noise (KV-cached decoding vs one packed forward); a bf16 sampler copy against the fp32
    policy is the train-inference mismatch of bf16 rollouts."""
    run_train(["--iters", "1"], tmp_path / "fp32")
    run_train(["--iters", "1", "--dtype", "bfloat16"], tmp_path / "bf16")
    same, bf16 = read_metrics(tmp_path / "fp32")[0], read_metrics(tmp_path / "bf16")[0]
    assert same["mismatch"] < 1e-5 and same["mismatch_max_ratio"] < 1.001
    assert bf16["mismatch"] > 100 * same["mismatch"] and bf16["mismatch"] > 3e-5
    assert bf16["mismatch_max_ratio"] > same["mismatch_max_ratio"]


def r1_params(mcfg):
    from model import Qwen2
    with torch.device("meta"):
        return sum(p.numel() for p in Qwen2(mcfg).parameters())


def test_memory_plan_counts_the_update_for_the_r1_presets_on_80_gb_cards_and_refuses_what_cannot_fit():
    """The update phase by hand (bytes per rank, 8 GPUs of 80 GiB): fp32 weights, gradients and Adam (16 B a
    parameter, sharded under FSDP), bf16 sampler and reference copies, then one micro-batch of T positions:
    checkpointed layer inputs (fp32 under autocast, bf16 under FSDP), one layer recomputed, a logits chunk,
    autocast's bf16 copy of the weights (DDP) or FSDP's gathered layers and unsharded embeddings."""
    from model import Qwen2Config
    from train import check_memory, memory_plan
    GiB, total = 2**30, 80 * 2**30
    r15 = Qwen2Config()  # R1-Distill-Qwen-1.5B
    r7 = Qwen2Config(hidden_size=3584, intermediate_size=18944, num_attention_heads=28, num_key_value_heads=4,
                     vocab_size=152064)
    n15, n7 = r1_params(r15), r1_params(r7)
    assert 1.7e9 < n15 < 1.8e9 and 7.5e9 < n7 < 7.7e9
    T = 65536  # the 1.5B preset: DDP, micro-batches of up to 65,536 tokens
    plan = memory_plan(get_config([]), r15, n15, 8, torch.bfloat16, total)
    hand = dict(states=16 * n15, copies=2 * 2 * n15, checkpointed=28 * T * 1536 * 4,
                recomputed_layer=T * (10 * 1536 + 3 * 2 * 128 + 6 * 8960) * 2, logits=12 * 1024 * 151936,
                gathered=0, root=0, autocast_cache=2 * n15)
    assert {k: plan[k] for k in hand} == pytest.approx(hand)
    assert plan["update"] == pytest.approx(sum(hand.values())) and 50 * GiB < plan["update"] < 0.9 * total
    kv = 2 * 28 * 2 * 128 * 2  # bytes a position of bf16 keys and values takes: 28 layers, 2 KV heads of 128
    prefill = 32 // 8 * 512 * kv  # the prompts of one rank, 512 tokens at most
    assert plan["kv_tokens"] == (0.9 * total - 20 * n15 - prefill) // kv
    check_memory(plan, get_config([]), r15, torch.bfloat16, torch.device("cpu"), print)  # fits: no refusal
    T = 32768  # the 7B preset: FSDP over 8 GPUs, micro-batches of 32,768 positions (one 32,512 sequence)
    cfg7 = get_config(["--preset", "r1-7b"])
    plan = memory_plan(cfg7, r7, n7, 8, torch.bfloat16, total)
    layer = (n7 - 2 * 152064 * 3584) / 28
    hand = dict(states=16 * n7 / 8, copies=2 * 2 * n7, checkpointed=28 * T * 3584 * 2,
                recomputed_layer=T * (10 * 3584 + 3 * 4 * 128 + 6 * 18944) * 2, logits=12 * 1024 * 152064,
                gathered=layer * (2 * 2 + 4), root=2 * 152064 * 3584 * (2 * 2 + 4), autocast_cache=0)
    assert {k: plan[k] for k in hand} == pytest.approx(hand)
    assert plan["update"] == pytest.approx(sum(hand.values())) and 65 * GiB < plan["update"] < 0.9 * total
    check_memory(plan, cfg7, r7, torch.bfloat16, torch.device("cpu"), print)
    cfg7 = get_config(["--preset", "r1-7b", "--micro_batch_tokens", "65536"])  # twice the activations: 85 GiB
    with pytest.raises(SystemExit, match="the update would need 8[0-9].[0-9] GiB per GPU"):
        check_memory(memory_plan(cfg7, r7, n7, 8, torch.bfloat16, total), cfg7, r7, torch.bfloat16,
                     torch.device("cpu"), print)
    cfg7 = get_config(["--preset", "r1-7b", "--fsdp", "false"])  # unsharded 7B: 121 GiB of states alone
    with pytest.raises(SystemExit, match="leaving no room to cache one"):
        check_memory(memory_plan(cfg7, r7, n7, 8, torch.bfloat16, total), cfg7, r7, torch.bfloat16,
                     torch.device("cpu"), print)
