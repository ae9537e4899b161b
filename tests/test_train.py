"""train.py: the maths against hand-computed examples, and real runs of the script (CPU, tiny model)."""
import json
import os
import subprocess
import sys

import pytest
import torch

from conftest import ROOT, make_tiny_model
from train import (TrainConfig, agg_weights, get_config, get_lr, kl_returns, micro_batches, ppo_loss,
                   rloo_advantages, whiten)


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
            loss, _ = ppo_loss(logp, torch.cat([old[i] for i in idxs]), torch.cat([adv[i] for i in idxs]), w, 0.2)
            loss.backward()
        return torch.cat([p.grad.flatten() for p in model.parameters()])

    g1, g2 = grad([[0, 1, 2, 3]]), grad([[0], [1, 2], [3]])
    assert torch.allclose(g1, g2, atol=1e-6), (g1 - g2).abs().max()
    assert g1.abs().sum() > 0


def test_micro_batches_respect_both_caps_and_keep_order():
    assert micro_batches([0, 1, 2, 3, 4], [5, 5, 5, 20, 1], max_seqs=2, max_tokens=12) == [[0, 1], [2], [3], [4]]


def test_warmup_is_linear_then_constant():
    cfg = TrainConfig(lr=1e-3, warmup_steps=4)
    assert [get_lr(s, cfg) for s in range(6)] == pytest.approx([2.5e-4, 5e-4, 7.5e-4, 1e-3, 1e-3, 1e-3])


def test_paper_defaults_and_presets():
    cfg = get_config([])
    assert (cfg.prompts_per_iter, cfg.group_size, cfg.train_batch_size, cfg.lr, cfg.kl_coef) == (32, 8, 128, 5e-6, 1e-3)
    assert cfg.loss_agg == "seq-mean" and cfg.whiten and cfg.temperature == 1.0 and cfg.max_new_tokens == 32000
    cfg = get_config(["--preset", "r1-7b", "--lr", "1e-6"])
    assert cfg.fsdp and cfg.lr == 1e-6 and cfg.model.endswith("7B")


@pytest.mark.parametrize("args, message", [
    (["--alpha", "1.0"], "--alpha must be in [0, 1)"),
    (["--alpha", "-0.1"], "--alpha must be in [0, 1)"),
    (["--prompts_per_iter", "3", "--train_batch_size", "16"], "whole minibatches"),
    (["--loss_agg", "sum"], "seq-mean or token-mean"),
    (["--alhpa", "0.1"], "unknown option --alhpa"),
    (["--preset", "huge"], "unknown --preset"),
])
def test_bad_config_is_refused_with_a_message(args, message):
    with pytest.raises(SystemExit, match=None) as e:
        get_config(args)
    assert message in str(e.value)
