"""
Throughput of the grader and its agreement with math-verify on the hand-labelled table of
tests/test_grader.py. A script, not a test:

    python tests/bench_grader.py            # about a minute on 2 cores
"""
import logging
import os
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
import grader  # noqa: E402
from test_grader import CASES, math_verify_verdict  # noqa: E402

REPEATS = 20


def clear_caches():  # a repeat must not be faster just because it has seen the strings before
    grader._to_code.cache_clear()
    grader._normalize_short.cache_clear()


def rate(n, seconds):
    return f"{n / seconds:,.0f} pairs/s ({seconds / n * 1e6:,.0f} us/pair)"


def main():
    logging.disable(logging.WARNING)  # math-verify logs every timeout it hits
    responses, golds, expected = map(list, zip(*CASES))
    n = len(CASES)
    print(f"table: {n} pairs, {os.cpu_count()} CPUs (load average {os.getloadavg()[0]:.1f}), "
          f"timeout {grader.TIMEOUT_S} s per symbolic pair")
    grader.is_equiv("\\sqrt{8}", "2\\sqrt{2}")  # start the helper outside the timings

    # which pairs the cheap checks decide on their own, and how fast
    answers = [grader.extract_boxed(r) for r in responses]
    hard = [k for k in range(n) if isinstance(grader._prepare(answers[k], golds[k]), tuple)]
    easy = [k for k in range(n) if k not in hard]
    start = time.perf_counter()
    for _ in range(REPEATS):
        clear_caches()
        for k in easy:
            grader.grade(responses[k], golds[k])
    print(f"fast path only ({len(easy)}/{n} pairs, no sympy): {rate(REPEATS * len(easy), time.perf_counter() - start)}")

    # typical answers: an int (GSM8K, AIME), a fraction, a tuple, an interval, a choice, a wrong int
    typical = [("\\boxed{42}", "42"), ("\\boxed{\\dfrac{3}{4}}", "\\frac34"), ("\\boxed{(1, 2)}", "(1,2)"),
               ("\\boxed{[2,5]}", "[2,5)"), ("\\boxed{C}", "\\text{(C)}"), ("\\boxed{41}", "42")]
    start = time.perf_counter()
    for _ in range(500):
        clear_caches()
        for r, g in typical:
            grader.grade(r, g)
    print(f"typical answers, cold caches:    {rate(500 * len(typical), time.perf_counter() - start)}")

    # one core: grade() on every pair, in order, the symbolic ones on one helper
    start = time.perf_counter()
    got = [grader.grade(r, g) for r, g in zip(responses, golds)]
    print(f"grade() in-process, first pass:    {rate(n, time.perf_counter() - start)}")
    assert got == expected
    start = time.perf_counter()
    for _ in range(REPEATS):
        clear_caches()
        for r, g in zip(responses, golds):
            grader.grade(r, g)
    print(f"grade() in-process, {REPEATS} repeats:     {rate(REPEATS * n, time.perf_counter() - start)}"
          f"  ({len(hard)} pairs per pass need sympy)")

    # the batch API, one call per copy of the table (a call deduplicates repeated pairs)
    for processes in (0, 2):
        grader.grade_many(responses, golds, processes)  # start its helpers
        start = time.perf_counter()
        for _ in range(REPEATS):
            clear_caches()
            assert grader.grade_many(responses, golds, processes) == expected
        print(f"grade_many(processes={processes}), {REPEATS} calls: {rate(REPEATS * n, time.perf_counter() - start)}")

    # an RL batch: 256 long responses (about 4k tokens each), 32 golds, repeated answers within groups
    filler = "Let me think step by step about this problem. " * 300
    batch = [(filler + responses[k % n], golds[k % n]) for k in range(0, 32 * 7, 7) for _ in range(8)]
    start = time.perf_counter()
    grader.grade_many([r for r, _ in batch], [g for _, g in batch], processes=2)
    print(f"RL batch of 256 x {len(batch[0][0]):,} chars, processes=2: {time.perf_counter() - start:.3f} s")

    start = time.perf_counter()
    theirs = [math_verify_verdict(r, g, 1) for r, g in zip(responses, golds)]
    seconds = time.perf_counter() - start
    ours = [grader.grade(r, g) for r, g in zip(responses, golds)]
    agree = sum(a == b for a, b in zip(theirs, ours))
    print(f"math-verify on the table (1 s timeouts): {rate(n, seconds)}")
    print(f"agreement with math-verify: {agree}/{n} = {agree / n:.1%} "
          f"(ours match the hand labels on {sum(a == b for a, b in zip(ours, expected))}/{n})")


if __name__ == "__main__":
    main()
