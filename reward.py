"""
The reward of "Training Language Models to Reason Efficiently" (Arora & Zanette, 2025).

For one prompt with G sampled responses y_1..y_G, a response is correct when it ended with EOS (not
truncated) and its last \\boxed{} answer equals the gold answer (grader.py). Over the correct responses
of the group only, mu and sd are the mean and the population std (ddof = 0) of their lengths, and

    r_i = 1 - alpha * sigmoid((len_i - mu) / (sd + 1e-7))    if y_i is correct
    r_i = 0                                                  otherwise

so a correct response earns between 1 - alpha and 1, a shorter one more than a longer one of the same
group, and any correct response beats any wrong one (alpha < 1). One correct response, or correct
responses of equal lengths, earn 1 - alpha / 2; alpha = 0 is plain correctness. The normalisation is per
prompt: an easy problem's short answers are compared with each other, a hard problem's long ones too.

    python reward.py                          # one group's rewards
    python -m pytest tests/test_reward.py -q
"""
import math

from grader import verdicts


def check_alpha(alpha):
    """alpha in [0, 1): any correct response then beats any wrong one. Also rejects NaN."""
    if not 0 <= alpha < 1:
        raise ValueError(f"alpha (--alpha) must be in [0, 1) so that any correct response beats any "
                         f"wrong one (the paper uses 0 to 0.4); got {alpha}")


def length_penalty_rewards(correct, lengths, alpha):
    """The rewards of one prompt's group: correct (G,) bools, lengths (G,) generated tokens."""
    check_alpha(alpha)
    if len(correct) != len(lengths):
        raise ValueError(f"{len(correct)} correctness flags but {len(lengths)} lengths")
    kept = [float(n) for n, c in zip(lengths, correct) if c]  # the statistics see correct responses only
    if not kept:
        return [0.0] * len(correct)
    mu = sum(kept) / len(kept)
    sd = math.sqrt(sum((n - mu) ** 2 for n in kept) / len(kept))
    # |z| <= sqrt(G) for a population z-score of a correct response, so exp cannot overflow
    sigmoid = [1 / (1 + math.exp(-(n - mu) / (sd + 1e-7))) if c else 0.0 for n, c in zip(lengths, correct)]
    return [1 - alpha * s if c else 0.0 for s, c in zip(sigmoid, correct)]


def group_rewards(responses, golds, lengths, finished, group_size, alpha, processes=0):
    """The rewards of a flat batch whose consecutive blocks of group_size are one prompt's samples.

    responses: decoded texts; golds: gold answers; lengths: generated tokens; finished: ended with EOS.
    A truncated response is not graded: it is wrong (reward 0) and left out of its group's statistics.
    Returns lists of the batch's length: "rewards", "correct", and "why": "correct", or why the reward
    is 0: "truncated", "no_box", "unparseable", "timeout" or "wrong" (grader.verdicts).
    """
    check_alpha(alpha)
    n = len(responses)
    if not len(golds) == len(lengths) == len(finished) == n:
        raise ValueError(f"lengths differ: {n} responses, {len(golds)} golds, {len(lengths)} lengths, "
                         f"{len(finished)} finished flags")
    if group_size < 1 or n % group_size:
        raise ValueError(f"{n} responses is not a multiple of group_size={group_size}")
    done = [k for k in range(n) if finished[k]]
    graded = dict(zip(done, verdicts([responses[k] for k in done], [golds[k] for k in done], processes)))
    why = [graded.get(k, "truncated") for k in range(n)]
    correct = [w == "correct" for w in why]
    rewards = [r for s in range(0, n, group_size)
               for r in length_penalty_rewards(correct[s:s + group_size], lengths[s:s + group_size], alpha)]
    return {"rewards": rewards, "correct": correct, "why": why}


if __name__ == "__main__":
    print(group_rewards(["\\boxed{4}", "\\boxed{4}", "\\boxed{5}", "\\boxed{4}"], ["4"] * 4,
                        [100, 300, 200, 900], [True, True, True, False], group_size=4, alpha=0.2))
