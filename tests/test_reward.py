"""
Tests of reward.py: the paper's length-penalised reward of a group and of a batch. CPU only.

    python -m pytest tests/test_reward.py -q
"""
import math
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from reward import group_rewards, length_penalty_rewards  # noqa: E402


def boxed(answer):
    return "Some reasoning... so the final answer is $\\boxed{" + answer + "}$."

def sigmoid(z):
    return 1 / (1 + math.exp(-z))


@pytest.mark.parametrize("alpha", [0.0, 0.05, 0.1, 0.2, 0.4])
def test_single_correct_or_equal_lengths_get_one_minus_half_alpha(alpha):
    one = length_penalty_rewards([False, True, False], [10, 500, 20], alpha)
    assert one == [0.0, pytest.approx(1 - alpha / 2), 0.0]
    assert length_penalty_rewards([True] * 4, [300] * 4, alpha) == pytest.approx([1 - alpha / 2] * 4)


def test_all_wrong_group_gets_zeros_not_nan():
    assert length_penalty_rewards([False] * 8, list(range(8)), 0.2) == [0.0] * 8


def test_alpha_zero_is_plain_correctness():
    assert length_penalty_rewards([True, False, True, True], [5, 50, 500, 5000], 0.0) == [1.0, 0.0, 1.0, 1.0]


def test_std_is_population_over_correct_responses_only():
    lengths, correct = [100, 200, 300, 10], [True, True, True, False]
    sd = math.sqrt(((100 - 200) ** 2 + 0 + 100 ** 2) / 3)  # ddof = 0; the wrong 10-token answer is left out
    expected = [1 - 0.2 * sigmoid((n - 200) / (sd + 1e-7)) for n in lengths[:3]] + [0.0]
    assert length_penalty_rewards(correct, lengths, 0.2) == pytest.approx(expected, abs=1e-12)


def test_rewards_fall_strictly_as_length_rises_among_correct_responses():
    lengths = [830, 120, 4000, 77, 1500, 2600, 900, 310]
    r = length_penalty_rewards([True] * 8, lengths, 0.1)
    by_length = [r[k] for k in sorted(range(8), key=lambda k: lengths[k])]
    assert all(a > b for a, b in zip(by_length, by_length[1:]))


def test_rewards_are_invariant_to_a_constant_added_to_every_length():
    correct, lengths = [True, False, True, True, False, True], [50, 60, 700, 1200, 3, 90]
    shifted = length_penalty_rewards(correct, [n + 512 for n in lengths], 0.2)  # e.g. prompt tokens included
    assert shifted == pytest.approx(length_penalty_rewards(correct, lengths, 0.2), abs=1e-9)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.integers(1, 32000)), min_size=1, max_size=16),
       st.floats(0, 0.99))
def test_any_correct_response_beats_any_wrong_one(group, alpha):
    correct, lengths = zip(*group)
    for c, r in zip(correct, length_penalty_rewards(list(correct), list(lengths), alpha)):
        assert (1 - alpha <= r <= 1) if c else r == 0.0


@pytest.mark.parametrize("alpha", [-0.1, 1.0, 1.5, float("nan")])
def test_alpha_outside_zero_one_is_rejected(alpha):
    with pytest.raises(ValueError, match="alpha"):
        length_penalty_rewards([True], [1], alpha)
    with pytest.raises(ValueError, match="alpha"):
        group_rewards(["\\boxed{1}"], ["1"], [1], [True], 1, alpha)


def test_truncated_responses_get_zero_and_are_left_out_of_group_statistics():
    responses = [boxed("4"), boxed("4"), boxed("4"), boxed("5")]
    out = group_rewards(responses, ["4"] * 4, [100, 300, 5, 50], [True, True, False, True], group_size=4,
                        alpha=0.2)
    assert out["correct"] == [True, True, False, False]  # the 5-token answer is right but never finished
    assert out["rewards"] == pytest.approx(length_penalty_rewards([True, True], [100, 300], 0.2) + [0.0, 0.0])
    assert out["rewards"] == pytest.approx([1 - 0.2 * sigmoid(-1), 1 - 0.2 * sigmoid(1), 0.0, 0.0], abs=1e-6)


def test_group_statistics_are_per_prompt_not_per_batch():
    responses = [boxed("1")] * 3 + [boxed("x+1")] * 3
    golds, lengths = ["1"] * 3 + ["1+x"] * 3, [10, 20, 30, 1000, 2000, 3000]
    out = group_rewards(responses, golds, lengths, [True] * 6, group_size=3, alpha=0.1, processes=2)
    assert out["rewards"][:3] == pytest.approx(length_penalty_rewards([True] * 3, lengths[:3], 0.1))
    assert out["rewards"][3:] == pytest.approx(out["rewards"][:3])  # same shape, 100x longer


def test_group_rewards_rejects_a_batch_that_is_not_whole_groups():
    with pytest.raises(ValueError, match="group_size"):
        group_rewards([boxed("1")] * 10, ["1"] * 10, [1] * 10, [True] * 10, group_size=8, alpha=0.1)
    with pytest.raises(ValueError, match="lengths"):
        group_rewards([boxed("1")] * 8, ["1"] * 8, [1] * 7, [True] * 8, group_size=8, alpha=0.1)


def test_every_zero_reward_says_why_truncated_unboxed_unparseable_or_wrong():
    responses = [boxed("4"), boxed("4"), "I think it is 4.", boxed("x^{}+"), boxed("5")]
    out = group_rewards(responses, ["4", "4", "4", "x^2", "4"], [10, 20, 30, 40, 50],
                        [True, False, True, True, True], group_size=5, alpha=0.2)
    assert out["why"] == ["correct", "truncated", "no_box", "unparseable", "wrong"]
    assert [r > 0 for r in out["rewards"]] == [True, False, False, False, False]
