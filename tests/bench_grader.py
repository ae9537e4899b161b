"""
The grader's benchmark: agreement with labels and with math-verify, throughput, and the worst time of a
call on pathological inputs. A script, not a test:

    python tests/bench_grader.py            # a few minutes on 2 cores, most of it math-verify's

Cases: the hand-labelled table of tests/test_grader.py, plus cases generated from GOLDS below (written
for this benchmark in the styles of MATH500 and NuminaMath golds): each gold's equivalent forms and near
misses, under response structures (final box, earlier wrong box, \\fbox, \\dfrac, \\left( \\right),
labels, spacing) and the ways to be wrong that a grader must not reward (no box, an unbalanced box, a
hedge listing the gold with a near miss, a wrong last box). A generated case's label follows from how
it was built.
"""
import logging
import os
import signal
import sys
import time
from pathlib import Path

sys.path[:0] = [str(Path(__file__).resolve().parents[1]), str(Path(__file__).resolve().parent)]
import grader  # noqa: E402
from test_grader import CASES, NESTED, math_verify_verdict  # noqa: E402

REPEATS = 20

# (gold, equivalent answers, near misses): the gold itself is always one of its equivalents
GOLDS = [
    ("42", ["042", "42.0", "\\frac{84}{2}"], ["41", "-42", "4.2"]),
    ("-7", ["-7.00", "-\\frac{14}{2}"], ["7", "-8"]),
    ("2220", ["2,220", "2{,}220"], ["2200", "222"]),
    ("0", ["0.0", "-0"], ["1", "0.01"]),
    ("\\frac{14}{3}", ["4\\frac{2}{3}", "14/3", "4.666667", "\\dfrac{28}{6}"],
     ["\\frac{3}{14}", "4.67", "4\\frac{1}{3}"]),
    ("-\\frac{1}{3}", ["\\frac{-1}{3}", "-0.333333", "-1/3"], ["\\frac{1}{3}", "-0.33", "-\\frac{1}{4}"]),
    ("\\frac{243}{625}", ["0.3888", "\\frac{3^5}{5^4}"], ["\\frac{243}{624}", "0.39"]),
    ("2\\sqrt{2}", ["\\sqrt{8}", "2\\sqrt2", "\\frac{4}{\\sqrt{2}}", "2^{3/2}"], ["\\sqrt{2}", "2.83", "4"]),
    ("3\\sqrt{13}", ["\\sqrt{117}", "3√13", "\\sqrt{9\\cdot 13}"], ["13\\sqrt{3}", "\\sqrt{39}"]),
    ("\\frac{\\sqrt{3}}{2}", ["\\frac{1}{2}\\sqrt{3}", "\\sqrt{\\frac{3}{4}}", "0.866025"],
     ["\\frac{\\sqrt{2}}{2}", "0.87"]),
    ("\\frac{5\\sqrt{3}}{3}", ["\\frac{5}{\\sqrt{3}}", "\\frac{5}{3}\\sqrt3"],
     ["5\\sqrt{3}", "\\frac{3\\sqrt{5}}{5}"]),
    ("2\\pi", ["2 \\pi", "\\pi \\cdot 2", "6.283185"], ["\\pi", "6.28", "4\\pi"]),
    ("\\frac{4}{3}\\pi", ["\\frac{4\\pi}{3}", "\\frac{2\\pi}{3}\\cdot 2"],
     ["\\frac{3}{4}\\pi", "\\frac{4}{3}"]),
    ("1.36", ["1.360", "\\frac{34}{25}"], ["1.37", "1.3"]),
    ("10\\%", ["10", "0.1", "10 \\%"], ["20\\%", "1"]),
    ("30^\\circ", ["30", "30^{\\circ}", "30°"], ["60^\\circ", "\\frac{\\pi}{6}"]),
    ("\\$32,\\!348", ["32348", "32,348", "\\$32348"], ["32349", "3234.8"]),
    ("5\\text{ cm}^2", ["5", "5 \\text{ cm}^2"], ["25", "5\\sqrt{5}"]),
    ("6 - 5i", ["-5i+6", "6-5i"], ["6+5i", "5i-6"]),
    ("-2 + 7i", ["7i-2", "-2+7i"], ["2+7i", "-2-7i"]),
    ("x^2+7x+10", ["(x+5)(x+2)", "10+7x+x^2"], ["x^2+7x+11", "(x+5)(x-2)"]),
    ("p - q", ["-q+p", "-(q-p)"], ["q-p", "p+q"]),
    ("\\frac{n(n+1)}{2}", ["\\frac{n^2+n}{2}", "\\frac{1}{2}n^2+\\frac{n}{2}", "\\binom{n+1}{2}"],
     ["\\frac{n(n-1)}{2}", "n^2"]),
    ("x^3+3x-6", ["3x+x^3-6"], ["x^3+3x-6+\\sin(10000\\pi x)", "x^3+3x-6+(x-1)(x-2)(x-3)", "x^3+3x+6"]),
    ("2\\sin x\\cos x", ["\\sin 2x", "\\sin(2x)"], ["\\sin x", "2\\sin x"]),
    ("\\ln 8", ["3\\ln 2", "\\ln(2^3)"], ["\\ln 9", "8"]),
    ("(3, \\frac{\\pi}{2})", ["\\left( 3, \\frac{\\pi}{2} \\right)", "(3, 0.5\\pi)"],
     ["(\\frac{\\pi}{2}, 3)", "(3, \\pi)"]),
    ("(1,-2)", ["(1, -2)", "x=1, y=-2"], ["(-2,1)", "(1,2)", "1"]),
    ("(6, 31, -1)", ["(6,31,-1)"], ["(6,31,1)", "(6, 31)"]),
    ("[-2,7]", ["x \\in [-2,7]", "[-2, 7]"], ["(-2,7)", "[-2,7)", "[-7,2]"]),
    ("(-\\infty,-4)\\cup(-4,6)\\cup(6,\\infty)", ["(-\\infty,-4)\\cup(6,\\infty)\\cup(-4,6)"],
     ["(-\\infty,-4]\\cup(-4,6)\\cup(6,\\infty)", "(-\\infty,6)\\cup(6,\\infty)"]),
    ("[0,\\infty)", ["[0, \\infty)"], ["(0,\\infty)", "[0,\\infty]"]),
    ("3, 5, 7", ["7, 5, 3", "\\{3,5,7\\}", "x = 3, x = 5, x = 7"], ["3, 5", "3, 5, 7, 9", "3, 5, 8"]),
    ("1,-2", ["-2, 1", "x=1 \\text{ or } x=-2"], ["1, 2", "1"]),
    ("\\{1\\pm\\sqrt{5},-2\\}", ["-2, 1+\\sqrt5, 1-\\sqrt5", "1-\\sqrt{5}, -2, 1+\\sqrt{5}"],
     ["-2, 1+\\sqrt5", "2, 1+\\sqrt5, 1-\\sqrt5"]),
    ("1 \\pm \\sqrt{19}",
     ["1+\\sqrt{19}, 1-\\sqrt{19}", "1-\\sqrt{19},1+\\sqrt{19}", "\\{1+\\sqrt{19}, 1-\\sqrt{19}\\}"],
     ["1+\\sqrt{19}", "1 \\pm \\sqrt{17}", "-1 \\pm \\sqrt{19}"]),
    ("\\frac{-1 \\pm \\sqrt{5}}{2}", ["\\frac{-1+\\sqrt5}{2}, \\frac{-1-\\sqrt5}{2}"],
     ["\\frac{-1+\\sqrt5}{2}"]),
    ("\\text{Devon}", ["Devon", "\\textbf{Devon}"], ["Devin", "\\text{Evan}"]),
    ("\\text{even}", ["even", "\\text{Even}"], ["\\text{odd}", "\\text{neither}"]),
    ("\\text{(C)}", ["C", "(C)", "\\textbf{(C)}", "\\text{C}"],
     ["(D)", "A", "\\text{(C) or (D)}", "C, D", "CD"]),
    ("\\text{(E)}", ["E", "\\mathrm{(E)}"], ["(B)", "B, E"]),
    ("\\begin{pmatrix} 2 \\\\ -1 \\end{pmatrix}",
     ["\\begin{bmatrix} 2 \\\\ -1 \\end{bmatrix}",
      "\\left( \\begin{matrix} 2 \\\\ -1 \\end{matrix} \\right)"],
     ["\\begin{pmatrix} -1 \\\\ 2 \\end{pmatrix}", "\\begin{pmatrix} 2 & -1 \\end{pmatrix}"]),
    ("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}", ["\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}"],
     ["\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}"]),
    ("y = 2x + 3", ["2x+3", "y=3+2x"], ["y=2x-3", "y=3x+2"]),
    ("11,\\!111,\\!111,\\!100", ["11111111100", "11,111,111,100"], ["11111111101", "1111111110"]),
    ("(p,q)=(3,2)", ["(3,2)", "p=3, q=2", "q=2, p=3"], ["(2,3)", "p=2, q=3", "3"]),
    ("\\frac{NO}{BO}=\\frac{1}{\\sqrt{6}}", ["\\frac{\\sqrt{6}}{6}", "\\frac{1}{\\sqrt6}"],
     ["\\sqrt{6}", "\\frac{1}{6}"]),
    ("V_{1}:V_{2}=11:21", ["11:21", "\\frac{11}{21}", "22:42"], ["21:11", "11:20"]),
    ("21,16", ["16, 21", "21 \\text{ and } 16"], ["21", "21, 17"]),
    ("6 \\text{ and } 8", ["6, 8", "8 \\text{ and } 6", "8,6"], ["6", "6, 9"]),
    ("AB=4,CD=5", ["4, 5", "CD=5, AB=4", "AB = 4, CD = 5"], ["5, 4", "AB=5, CD=4"]),
    ("\\boxed{1}\\boxed{2}", ["1, 2", "2, 1"], ["2", "1, 3"]),
    ("\\cot x", ["\\cot \\, x", "\\frac{\\cos x}{\\sin x}", "\\frac{1}{\\tan x}"], ["\\tan x", "\\cos x"]),
]


def responses_for(answer, miss, single):
    """(response, boxes_the_answer, structure) for each response structure; miss is a wrong answer of the
    same gold, single says the gold is one value (listing it with a near miss is then a hedge, not a
    longer list)."""
    out = [(f"So the final answer is $\\boxed{{{answer}}}$.", True, "final box"),
           (f"Thus \\boxed{{{answer}}}", True, "final box"),
           (f"I first got \\boxed{{{miss}}}, but that is wrong. The answer is \\boxed{{{answer}}}.", True,
            "two boxes"),
           (f"\\fbox{{{answer}}}", True, "fbox"),
           (f"the answer is \\boxed{{ {answer} }}", True, "final box"),
           (f"The answer is {answer}.", False, "no box"),  # no last-number fallback
           (f"The answer is \\boxed{{{answer}", False, "no box"),  # unbalanced
           (f"\\boxed{{{answer}}} hmm, no: \\boxed{{{miss}}}", False, "two boxes")]  # the last box counts
    if single:
        out += [(f"\\boxed{{{answer}, {miss}}}", False, "hedge"),
                (f"\\boxed{{{miss} \\text{{ or }} {answer}}}", False, "hedge"),
                (f"$\\boxed{{{answer}}}$ or $\\boxed{{{miss}}}$", False, "hedge")]
    if "\\frac" in answer:
        out.append((f"\\boxed{{{answer.replace(chr(92) + 'frac', chr(92) + 'dfrac')}}}", True, "final box"))
    if "," in answer and "\\," not in answer:
        out.append((f"\\boxed{{{answer.replace(',', ' , ')}}}", True, "final box"))
    if answer.startswith("(") and answer.endswith(")") and "\\cup" not in answer:
        out.append((f"\\boxed{{\\left{answer[:-1]}\\right)}}", True, "final box"))
    return out


def generated_cases():
    """(response, gold, label, structure) for every gold of GOLDS."""
    cases = []
    for gold, equivalents, misses in GOLDS:
        single = not any(t in gold for t in (",", "\\pm", "and", "\\{", "\\cup", "\\boxed"))
        for k, answer in enumerate(equivalents if "\\boxed" in gold else [gold] + equivalents):
            miss = misses[k % len(misses)]
            cases += [(r, gold, ok, tag) for r, ok, tag in responses_for(answer, miss, single)]
        for k, miss in enumerate(misses):
            cases += [(f"So the final answer is $\\boxed{{{miss}}}$.", gold, False, "final box"),
                      (f"\\boxed{{{equivalents[k % len(equivalents)]}}} or rather "
                       f"\\boxed{{{miss}}}", gold, False, "two boxes")]
    return cases


PATHOLOGICAL = {
    "1 MB of {": "\\boxed{" + "{" * 1_000_000, "1 MB of {}": "\\boxed{" + "{}" * 500_000 + "}",
    "1 MB of text, then a box": "x" * 1_000_000 + "\\boxed{1}", "10,000 boxes": "\\boxed{1}, " * 10_000,
    "10,000 open boxes": "\\boxed{" * 10_000, "1 MB of \\\\{": "\\boxed{" + "\\{" * 500_000 + "}",
    "a long command": "\\boxed{\\" + "a" * 999 + "}",
    "500 parentheses": "\\boxed{" + "(" * 500 + ")" * 500 + "}",
    "x= x= ...": "\\boxed{" + "x=" * 499 + "1}", "and and ...": "\\boxed{" + " and" * 249 + "}",
    "\\frac\\frac...": "\\boxed{" + "\\frac" * 150 + "}",
    "_{_{...": "\\boxed{" + "_{" * 300 + "}" * 300 + "}",
    "::::": "\\boxed{" + ":" * 999 + "}", "\\pm\\pm...": "\\boxed{" + "\\pm" * 333 + "}",
    "a list of 500": "\\boxed{" + ",".join(["1"] * 500) + "}",
    "200 nested fractions": "\\boxed{" + NESTED + "}",
    "a set of 30 sets": "\\boxed{\\{" + ",".join(["\\{1,2,3,4,5\\}"] * 30) + "\\}}",
    "a tuple of 30 sets": "\\boxed{(" + ",".join(["\\{x,y,z\\}"] * 30) + ")}",
    "(x+1)^{1000}": "\\boxed{(x+1)^{1000}}",
    "40 nested sines": "\\boxed{" + "\\sin(" * 40 + "x" + ")" * 40 + "}",
    "a degree-199 polynomial": "\\boxed{" + "+".join(f"x^{{{k}}}" for k in range(1, 200)) + "}",
    "10^{10^{10}}": "\\boxed{10^{10^{10}}}", "(10^{999})!": "\\boxed{(10^{999})!}",
    "a labelled 10-tuple": "\\boxed{(" + ",".join("abcdefghij") + ")=(" + ",".join(["x^2+1"] * 10) + ")}",
    "30 roots, \\pm": "\\boxed{\\{" + ",".join(f"1\\pm\\sqrt{{{k}}}" for k in range(2, 32)) + "\\}}",
    "30 trig identities": "\\boxed{\\{" + ",".join(f"\\sin(x+\\sqrt{{{k}}})^2" for k in range(2, 32))
                          + "\\}}",
}
PATHOLOGICAL_GOLDS = ["5", "x^2+1", "\\{1,2\\}", "(p,q)=(3,2)", "\\text{(C)}",
                      "\\{" + ",".join(f"1-\\cos(\\sqrt{{{k}}}+x)^2" for k in range(31, 1, -1)) + "\\}"]


def clear_caches():  # a repeat must not be faster just because it has seen the strings before
    grader._to_code.cache_clear()
    grader._normalize_short.cache_clear()
    grader._sympify.cache_clear()


def rate(n, seconds):
    return f"{n / seconds:,.0f} pairs/s ({seconds / n * 1e6:,.0f} us/pair)"


def worst_case_time():
    """The slowest grade() call over PATHOLOGICAL x PATHOLOGICAL_GOLDS, then a helper frozen mid-pair
    (SIGSTOP: as a C-level hang that its own alarm cannot stop) and the call after its kill."""
    times = []
    for name, response in PATHOLOGICAL.items():
        for gold in PATHOLOGICAL_GOLDS:
            start = time.perf_counter()
            verdict = grader.verdicts([response], [gold])[0]
            times.append((time.perf_counter() - start, name, gold[:20], verdict))
    times.sort(reverse=True)
    print(f"worst-case time per call, {len(times)} pathological pairs (the {grader.TIMEOUT_S} s sympy budget "
          f"included): max {times[0][0]:.3f} s ({times[0][1]} vs {times[0][2]}: {times[0][3]}), "
          f"median {times[len(times) // 2][0] * 1e3:.1f} ms")
    for t, name, gold, verdict in times[1:4]:
        print(f"    then {t:.3f} s ({name} vs {gold}: {verdict})")
    time.sleep(2)  # let the spare finish importing sympy, as it would between RL steps
    os.kill(grader._helpers[0].proc.pid, signal.SIGSTOP)
    start = time.perf_counter()
    verdict = grader.is_equiv("\\sqrt{8}", "2\\sqrt{2}")
    frozen = time.perf_counter() - start
    start = time.perf_counter()
    after = grader.is_equiv("\\sqrt{12}", "2\\sqrt{3}")
    print(f"a frozen helper: {frozen:.3f} s (equal: {verdict}), the next call on the warm spare: "
          f"{time.perf_counter() - start:.3f} s (equal: {after})")
    return times[0][0]


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
    print(f"fast path only ({len(easy)}/{n} pairs, no sympy): "
          f"{rate(REPEATS * len(easy), time.perf_counter() - start)}")

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
        print(f"grade_many(processes={processes}), {REPEATS} calls: "
              f"{rate(REPEATS * n, time.perf_counter() - start)}")

    # an RL batch: 256 long responses (about 4k tokens each), 32 golds, repeated answers within groups
    filler = "Let me think step by step about this problem. " * 300
    batch = [(filler + responses[k % n], golds[k % n]) for k in range(0, 32 * 7, 7) for _ in range(8)]
    start = time.perf_counter()
    grader.grade_many([r for r, _ in batch], [g for _, g in batch], processes=2)
    print(f"RL batch of 256 x {len(batch[0][0]):,} chars, processes=2: {time.perf_counter() - start:.3f} s")

    # generated cases: labels by construction
    cases = generated_cases()
    start = time.perf_counter()
    verdicts = grader.verdicts([c[0] for c in cases], [c[1] for c in cases], processes=2)
    seconds = time.perf_counter() - start
    ours = [v == "correct" for v in verdicts]
    print(f"generated cases: {len(cases)} from {len(GOLDS)} golds ({sum(c[2] for c in cases)} equal), "
          f"verdicts(processes=2) in {seconds:.2f} s; verdicts: "
          + ", ".join(f"{v} {verdicts.count(v)}"
                      for v in ("correct", "wrong", "no_box", "unparseable", "timeout")))
    for (r, g, e, _), o in zip(cases, ours):
        if o != e:
            print(f"    disagrees (label {e}): {r[-60:]!r} vs {g!r}")

    worst_case_time()

    start = time.perf_counter()
    theirs = [math_verify_verdict(r, g, 1) for r, g, *_ in cases]
    print("math-verify on the generated cases (1 s timeouts): "
          f"{rate(len(cases), time.perf_counter() - start)}")
    print("agreement with the labels by response structure: ours, math-verify's")
    for tag in dict.fromkeys(c[3] for c in cases):
        rows = [k for k, c in enumerate(cases) if c[3] == tag]
        a, b = (sum(x[k] == cases[k][2] for k in rows) for x in (ours, theirs))
        print(f"    {tag:10s} {len(rows):5d} cases: {a / len(rows):6.1%} {b / len(rows):6.1%}")
    a, b = (sum(x[k] == c[2] for k, c in enumerate(cases)) for x in (ours, theirs))
    print(f"    {'all':10s} {len(cases):5d} cases: {a / len(cases):6.1%} {b / len(cases):6.1%}")
    theirs = [math_verify_verdict(r, g, 1) for r, g in zip(responses, golds)]
    ours = [grader.grade(r, g) for r, g in zip(responses, golds)]
    agree = sum(a == b for a, b in zip(theirs, ours))
    print(f"hand-labelled table: math-verify agrees with us on {agree}/{n} = {agree / n:.1%}, "
          f"with the labels on {sum(a == b for a, b in zip(theirs, expected))}/{n}; ours match the labels on "
          f"{sum(a == b for a, b in zip(ours, expected))}/{n}")


if __name__ == "__main__":
    main()
