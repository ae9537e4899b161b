"""
The math grader: is a response's final boxed answer equal to the gold answer? reward.py calls it.

    python grader.py                          # grade a few examples
    python -m pytest tests/test_grader.py -q  # tests, CPU, under a minute
    python tests/bench_grader.py              # agreement, throughput and worst-case time per call

verdicts() says why each (response, gold) pair earned what it did: "correct", "no_box" (no balanced
\\boxed{} or \\fbox{}, or an empty one), "unparseable" (an answer the grader cannot read or compare),
"timeout" (the sympy budget ran out or its helper died) or "wrong"; grade() and grade_many() are its
"correct". Cheap exact checks run first (normalised strings, exact rationals, tuples, intervals, sets
and matrices element by element); only what they cannot decide goes to sympy, in helper processes. A
helper stops a pair itself (SIGALRM) at 0.9 of TIMEOUT_S; the caller waits on it with select() and
kills it if even that is late (a hang in C), and a warm spare takes its place, so a kill costs the next
call no sympy import. Unlike signal.alarm in the caller this works in any thread and inside worker
processes. The cheap checks are bounded too (MAX_BOX_CHARS, MAX_CHARS, MAX_LEAF_PAIRS, no regex that
can backtrack), so a call takes at most TIMEOUT_S plus a few tens of milliseconds whatever the input;
only the first sympy call of a process waits for its helper to import sympy (about 1 s; warm_up() starts
them ahead). Grading never raises. POSIX only.

Policy, where graders differ. Inside an RL loop every leniency is a behaviour the policy can learn, so:
- The answer is the response's last \\boxed{} (or \\fbox{}), joined to the boxes just before it that
  only spaces, commas, `$` or "and"/"or" separate (`$\\boxed{1}$ and $\\boxed{2}$` is the list 1, 2).
  No box is wrong: there is no fallback to the last number of the text, which would pay for unboxed
  rambling that happens to end on the right number.
- Several alternatives for a single-valued gold are wrong: `2 or 3`, `2, 3`, `\\pm 3`, `\\text{(C) or
  (D)}`, `C, D`, `\\boxed{2}, \\boxed{3}`. A lenient grader that accepts a hedge when one alternative
  is right pays a policy for listing every candidate; RL finds that.
- A list gold accepts the same members: unordered for sets and bare lists (the roots `21,16` or `6
  \\text{ and } 8` accept `16, 21` and `8 or 6`), ordered for tuples, points, intervals and ratios
  (`(3,2)` is not `(2,3)`, `[2,5)` is not `[2,5]`). `\\pm` is expanded: `1 \\pm \\sqrt{19}` is the list
  `1+\\sqrt{19}, 1-\\sqrt{19}`, also inside sets.
- Labels are dropped, from the gold as from the response: `x = 5`, `(p,q)=(3,2)`, `\\frac{NO}{BO}=...`,
  `V_1:V_2=11:21` (a ratio a:b is the number a/b), `x \\in [2,5)`. Where both sides label every member,
  members are matched by label (`q=2, p=3` is `(p,q)=(3,2)`); a labelled list is ordered
  (`AB=4,CD=5` is not `5, 4`).
- Numbers are exact, except that a decimal equals a value with no finite decimal form within 1e-6
  relative (0.333333 = 1/3, 0.33 != 1/3): a model has to round somewhere, and 1e-6 is far tighter
  than any wrong answer a problem has. Thousands separators, `\\$`, `%` (25% is 25 and 0.25),
  `^\\circ` and trailing units (`5\\text{ cm}`, `18 dollars`; a trailing \\text{} without digits or
  "or") are ignored: a unit is not the maths, and a grader that demands or forbids one grades typography.
- Expressions: a difference of rational functions with rational coefficients is decided exactly
  (sympy.cancel); anything else is evaluated to 30 digits at 12 points drawn afresh from the OS's
  randomness for every comparison, so no response can be built to agree only where the grader looks
  (`x^3+3x-6+\\sin(10000\\pi x)` is not `x^3+3x-6`); points outside the real domain of a root or a
  log, and poles, say nothing (unless fewer than two points are left). An exact sympy.simplify of
  the difference then gets what is left of a small budget, to catch differences below 30 digits.
- Unparseable, so correct only when identical to the gold as a string: inequalities (`x>2` is not
  `(2,\\infty)`), `\\log_b`, set-builder notation, answers over MAX_CHARS, powers and factorials over
  MAX_EXPONENT. Degrees inside trig functions are read as radians.
"""
import atexit
import contextlib
import decimal
import functools
import json
import math
import numbers
import os
import random
import re
import select
import signal
import subprocess
import sys
import threading
import time
from fractions import Fraction

TIMEOUT_S = 1.0       # wall-clock budget of the sympy check of one (answer, gold) pair
STARTUP_S = 60.0      # a fresh helper may take this long to import sympy on a loaded machine
EXACT_S = 0.3         # of TIMEOUT_S, what exact simplification may spend on one pair
MAX_CHARS = 1000      # longer answers are compared as strings only, so no step below can be slow
MAX_BOX_CHARS = 20000  # a box whose content is longer is no answer (and scanning it is bounded)
MAX_DEPTH = 40        # deeper brace nesting is compared as a string only (parse bombs)
MAX_EXPONENT = 1000   # larger exponents and factorials are refused before sympy evaluates them
MAX_LEAF_PAIRS = 3000  # leaf comparisons per pair (sets of sets): more is unparseable, not slow
REL_TOL = 1e-6        # how close a decimal must be to a non-terminating value (1/3, sqrt 2)
N_POINTS = 12         # random points at which two expressions must agree

# verdict ranks: "all of" is the minimum, "any of" the maximum; UNKNOWN means "only sympy can tell"
WRONG, UNPARSEABLE, UNKNOWN, CORRECT = range(4)
_NAME = {WRONG: "wrong", UNPARSEABLE: "unparseable", CORRECT: "correct"}

# ----------------------------------------------------------------------------- extraction

_BRACE = re.compile(r"\\.|[{}]", re.S)  # escaped braces \{ \} do not count
# what may stand between two boxes of one answer: `$\boxed{1}$, $\boxed{2}$`, `\boxed{1} and \boxed{2}`
_BETWEEN = re.compile(r"(?:\s|[,;$]|\\[,;:! ]|\\q?quad|\\text\{ *(?:and|or|,)? *\}|and|or)*\Z")


def _last_box(text, end):
    return max(text.rfind("\\boxed", 0, end), text.rfind("\\fbox", 0, end))


def _box_at(text, start):
    """(content, end) of the \\boxed or \\fbox at text[start]; None if unbalanced or over MAX_BOX_CHARS."""
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    m = re.match(r"\s*\{", text[i:i + 100])
    if not m:
        m = re.match(r"\s+([^\s$]+)", text[i:i + 1000])  # `\boxed 5`: one space-delimited token
        return (m.group(1), i + m.end()) if m else None
    i, depth = i + m.end(), 1
    for m in _BRACE.finditer(text, i, i + MAX_BOX_CHARS):  # bounded: a megabyte of `{` costs nothing
        depth += {"{": 1, "}": -1}.get(m.group(), 0)
        if depth == 0:
            return text[i:m.start()], m.end()
    return None


def extract_boxed(text):
    """The final boxed answer: the content of the last \\boxed{...} or \\fbox{...} (also `\\boxed 5`),
    joined by ", " to the boxes just before it that only separators part (`$\\boxed{1}$ and
    $\\boxed{2}$` -> "1, 2"; repeats dropped). None if there is none or the last one is unbalanced."""
    if not isinstance(text, str):
        return None
    start = _last_box(text, len(text))
    box = _box_at(text, start) if start >= 0 else None
    if box is None:
        return None
    answers = [box[0]]
    while len(answers) < 10:
        cut = start - len(_BETWEEN.search(text[max(0, start - 100):start]).group())
        start = _last_box(text, cut)
        box = _box_at(text, start) if start >= 0 else None
        if box is None or box[1] != cut:
            break
        answers.insert(0, box[0])
    return ", ".join(dict.fromkeys(answers))


def gold_from_solution(solution):
    """Gold answer of a MATH-style solution: its final boxed answer (extract_boxed), or None."""
    answer = extract_boxed(solution)
    return answer.strip() or None if answer else None

# ----------------------------------------------------------------------------- normalisation

_UNICODE = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00d7": "\\times ", "\u00b7": "\\cdot ",
                          "\u03c0": "\\pi ", "\u221e": "\\infty ", "\u221a": "\\sqrt ", "\u00b0": "^\\circ",
                          "\u2264": "\\le ", "\u2265": "\\ge ", "\u222a": "\\cup ", "\u00b1": "\\pm "})
_RENAME = {"dfrac": "frac", "tfrac": "frac", "cfrac": "frac", "dbinom": "binom", "tbinom": "binom",
           "leq": "le", "geq": "ge", "neq": "ne", "varnothing": "emptyset"}
_DROP = {"left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr", "displaystyle", "quad", "qquad",
         "circ", "degree"}
# thin spaces, ~, %, \$, whitespace runs and degree marks all become a space (spaces go later)
_SPACING = re.compile(r"\\[,;:! ]|~|\\?%|\\\$|\^\s*\{?\s*\\circ\s*\}?|\s+")
_UNITS = (r"units?|sq(?:uare)? units|cm|mm|km|meters?|inch(?:es)?|feet|foot|ft|yards?|miles?|degrees?|"
          r"dollars?|cents?|hours?|minutes?|seconds?|days?|weeks?|years?|mph|kg|grams?|pounds?|liters?")
_TRAILING_TEXT = re.compile(r"(?<=[\w})]) *\\(?:text|mbox|mathrm)\{([^{}]*)\}(?:\^\{?[23]\}?)?$")
_TRAILING_UNIT = re.compile(r"(?<=[\d}]) +(?:" + _UNITS + r")(?:\^\{?[23]\}?)?$")
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|textrm|mbox|mathrm|mathbf|boldsymbol|operatorname)"
                      r"\{([^{}]*)\}")
_AND_OR = re.compile(r" ?,? ?(?<![a-zA-Z\\])(?:and|or)(?![a-zA-Z]) ?")  # spaces are single here
_INT = re.compile(r"-?\d{1,50}")


def _normalize(s):
    """Canonical string of one answer: spacing, \\left, degrees, %, $, units, \\text, \\dfrac removed;
    "and"/"or" become commas, `\\in` becomes `=`."""
    s = s.strip()
    if s.startswith(("\\boxed", "\\fbox")):  # a gold written as `\boxed{1}\boxed{2}`
        s = extract_boxed(s) or s
    return s if len(s) > MAX_CHARS else _normalize_short(s)


@functools.lru_cache(maxsize=1 << 16)  # a group's samples share a gold and often an answer
def _normalize_short(s):
    if _INT.fullmatch(s):  # most GSM8K and AIME answers
        return s
    # 3√13 is 3\sqrt{13}, where TeX's \sqrt 13 is 3
    s = re.sub("\u221a(\\d+(?:\\.\\d+)?)", r"\\sqrt{\1}", s)
    s = s.translate(_UNICODE).replace("\\\\", "\x02")  # protect matrix row breaks from `\ ` below
    s = re.sub(" +", " ", _SPACING.sub(" ", s)).replace("$", "").strip()
    if "\\" in s:
        s = re.sub(r"\\([a-zA-Z]+)", lambda m: "" if m[1] in _DROP else "\\" + _RENAME.get(m[1], m[1]), s)
        m = _TRAILING_TEXT.search(s.strip())
        if m and not re.search(r"\d|(?<![a-zA-Z])(?:and|or)(?![a-zA-Z])", m[1]):  # a unit, not `\text{ or 4}`
            s = s.strip()[:m.start()]
        for _ in range(3):  # \textbf{\text{(C)}}
            s = _WRAPPER.sub(r"\1", s)
        s = re.sub(r"\\in(?![a-zA-Z])", "=", s)  # x \in [2,5) is labelled like x = 5
    s = _TRAILING_UNIT.sub("", re.sub(" +", " ", s))
    if "and" in s or "or" in s:  # `6 \text{ and } 8`, `x=2 or x=3`: a list
        s = _AND_OR.sub(",", s)
    # drop spaces, except the one that ends a command before a letter (`\pi r` is not `\pir`)
    s = re.sub(r"(\\[a-zA-Z]+) +(?=[a-zA-Z])", "\\1\x01", s).replace(" ", "").replace("\x01", " ")
    if "\\frac" in s or "\\binom" in s or "\\sqrt" in s:
        s = re.sub(r"\\(frac|binom) ?(\w) ?(\w)", r"\\\1{\2}{\3}", s)  # \frac12 is \frac{1}{2}
        s = re.sub(r"\\(frac|binom) ?(\w)(?=\{)", r"\\\1{\2}", s)
        s = re.sub(r"\\(frac|binom)(\{[^{}]*\}) ?(\w)", r"\\\1\2{\3}", s)
        s = re.sub(r"\\sqrt ?(\w)", r"\\sqrt{\1}", s)
    s = _unwrap(re.sub(r"([\^_])\{(\w)\}", r"\1\2", s.replace("{,}", ",")).rstrip("."), "{")
    if "," in s and re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):  # thousands separators
        s = s.replace(",", "")
    return s.replace("\x02", "\\\\")


def _closes_at_end(s):
    """True if the bracket opening s is first closed by its last character."""
    depth = 0
    for k, c in enumerate(s):
        depth += (c in "([{") - (c in ")]}")
        if depth == 0:
            return k == len(s) - 1
    return False


def _unwrap(s, opener):
    for _ in range(3):  # {{5}}; a few levels only, each check scans s
        if len(s) > 1 and s[0] == opener and _closes_at_end(s):
            s = s[1:-1]
    return s


def _split(s, sep):
    """Split s at the occurrences of sep that are outside every bracket."""
    if sep not in s:
        return [s]
    parts, depth, last, k = [], 0, 0, 0
    while k < len(s):
        if depth == 0 and s.startswith(sep, k):
            parts.append(s[last:k])
            k = last = k + len(sep)
            continue
        depth += (s[k] in "([{") - (s[k] in ")]}")
        k += 1
    return parts + [s[last:]]


def _as_text(x):
    """An answer or gold as text: a str as is, a number (5, 5.0, Fraction(1, 2), Decimal) as its exact
    value, anything else (None, bool, nan) None."""
    if isinstance(x, str):
        return x
    if isinstance(x, bool) or not isinstance(x, (numbers.Real, decimal.Decimal)):
        return None
    if isinstance(x, numbers.Integral):
        return str(int(x))
    if isinstance(x, numbers.Rational):
        return f"{x.numerator}/{x.denominator}"
    x = decimal.Decimal(x) if isinstance(x, decimal.Decimal) else decimal.Decimal(repr(float(x)))
    return format(x, "f") if x.is_finite() else None  # 1e+20 -> 100000000000000000000

# ----------------------------------------------------------------------------- structure

_MATRIX = re.compile(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}", re.S)
_LABEL_COMMANDS = {"angle", "overline", "triangle", "frac", "sin", "cos", "tan", "cot", "log", "ln", "vec",
                   "hat", "bar", "widehat", "overrightarrow", "prime"}  # and the Greek letters


def _is_label(t):
    """Whether t names a quantity instead of being one: x, a_{10}, f(x), (p,q), \\frac{NO}{BO}, V_1:V_2,
    AB, \\angle A, \\tan\\theta. No digits (but in subscripts and arguments), no operators."""
    t = re.sub(r"_\{[^{}]*\}|_\w|(?<=[a-zA-Z'])\([^()=]*\)", "", t)  # subscripts and arguments say nothing
    names = re.findall(r"\\([a-zA-Z]+)", t)
    return (bool(re.fullmatch(r"(?:[a-zA-Z{}(),:' ]|\\[a-zA-Z]+(?![a-zA-Z]))+", t))  # no backtracking
            and all(c in _LABEL_COMMANDS or c in _GREEK for c in names)
            and (bool(re.search(r"[a-zA-Z]", re.sub(r"\\[a-zA-Z]+", "", t)))
                 or any(c in _GREEK for c in names)))


def _parse(s, depth=0):
    """Answer -> a leaf str, ("lab", label, node), or (kind, tag, items): seq (ordered; tag = its
    brackets, so open and closed intervals differ, or ":" for a ratio a:b:c), set (unordered), list
    (bare commas, and, or, \\pm: unordered) or mat (tag = row lengths)."""
    if depth >= 4:
        return s
    if s[:1] in "([" and s[-1:] in ")]" and _MATRIX.fullmatch(s[1:-1]):  # \left( \begin{matrix}..\right)
        s = s[1:-1]
    m = _MATRIX.fullmatch(s)
    if m:
        rows = [_split(r, "&") for r in _split(m.group(2), "\\\\") if r]
        return ("mat", str([len(r) for r in rows]), [_parse(c, depth + 1) for r in rows for c in r])
    parts = _split(s, "\\cup")
    if len(parts) > 1:
        return ("set", "", _flat(parts, depth))
    if s.startswith("\\{") and s.endswith("\\}") and _closes_at_end(s[1:]):
        items = _flat(_split(s[2:-2], ","), depth)
        return ("set", "", items) if len(items) > 1 else items[0]
    if s[:1] in "([" and s[-1:] in ")]" and _closes_at_end(s):
        parts = _split(s[1:-1], ",")
        if len(parts) > 1:
            return ("seq", s[0] + s[-1], [_parse(p, depth + 1) for p in parts])
    parts = _split(s, ",")
    if len(parts) > 1:
        return ("list", "", _flat(parts, depth))
    parts = _split(s, "=")
    k = 0
    while k < len(parts) - 1 and _is_label(parts[k]):
        k += 1
    if k == 0 or k < len(parts) - 1:  # no label, or an equation such as x+y=1 (compared side by side)
        return _value(s if k == 0 else "=".join(parts[k:]), depth)
    label, node = _parse(parts[k - 1], depth + 1), _parse(parts[k], depth + 1)
    if (isinstance(label, tuple) and label[0] in ("seq", "list") and isinstance(node, tuple)
            and node[0] in ("seq", "list") and len(label[2]) == len(node[2])):  # (p,q)=(3,2)
        return (node[0], node[1], [("lab", str(t), v) for t, v in zip(label[2], node[2])])
    return ("lab", parts[k - 1], node)


def _flat(parts, depth):
    """Parse the members of a set or list; a member that is itself a list (1\\pm\\sqrt5) adds its members."""
    out = []
    for p in parts:
        node = _parse(p, depth + 1)
        inner = node[2] if isinstance(node, tuple) and node[0] == "lab" else node
        out += inner[2] if isinstance(inner, tuple) and inner[0] == "list" else [node]
    return out


def _value(s, depth):
    """One value: 1\\pm\\sqrt5 is the list of both, a:b the fraction a/b, a:b:c an ordered triple."""
    if "\\pm" in s or "\\mp" in s:
        plus = re.sub(r"\\mp(?![a-zA-Z])", "-", re.sub(r"\\pm(?![a-zA-Z])", "+", s))
        minus = re.sub(r"\\mp(?![a-zA-Z])", "+", re.sub(r"\\pm(?![a-zA-Z])", "-", s))
        if plus != s and depth < 4:
            return ("list", "", [_value(plus, depth + 1), _value(minus, depth + 1)])
    parts = _split(s, ":")
    if len(parts) == 2 and all(parts):
        s = "\\frac{" + parts[0] + "}{" + parts[1] + "}"
    elif len(parts) > 2 and all(parts):
        return ("seq", ":", [_unwrap(p, "(") for p in parts])
    return _unwrap(s, "(")


def _all(ranks):
    """All of: the minimum rank, stopping at the first WRONG (so no sympy call is wasted)."""
    out = CORRECT
    for r in ranks:
        if r == WRONG:
            return WRONG
        out = min(out, r)
    return out


def _unlabel(x):
    return (x[2], x[1]) if isinstance(x, tuple) and x[0] == "lab" else (x, None)


def _labels(items):
    """The members' labels if every member has one and they differ, else None."""
    labels = [_unlabel(x)[1] for x in items]
    return labels if None not in labels and len(set(labels)) == len(labels) else None


def _match(x, y, leaf):
    """Rank of parsed answer x against parsed answer y; leaf(a, b) ranks two leaves."""
    (x, lx), (y, ly) = _unlabel(x), _unlabel(y)
    if isinstance(x, str) and isinstance(y, str):
        if lx and ly and lx != ly and "=" not in x + y:  # x = y against y = x
            return max(leaf(x, y), _all([leaf(lx, y), leaf(x, ly)]))
        if ("=" in x) != ("=" in y) and (lx or ly):  # y=2x+3 against 2x+3=y: compare the equations
            x, y = (lx + "=" + x if lx else x), (ly + "=" + y if ly else y)
        if x.count("=") == 1 and y.count("=") == 1:  # equations: the same sides, in either order
            (x1, x2), (y1, y2) = x.split("="), y.split("=")
            return max(_all([leaf(x1, y1), leaf(x2, y2)]), _all([leaf(x1, y2), leaf(x2, y1)]))
        return leaf(x, y)
    if isinstance(x, str) or isinstance(y, str):  # one value against several (a hedge), a tuple, a matrix
        return UNPARSEABLE if _to_code(x if isinstance(x, str) else y) is None else WRONG  # x>2 vs (2,\infty)
    (kx, tx, xs), (ky, ty, ys) = x, y
    if kx == "list" and ky in ("seq", "set"):  # a bare "1, 2" takes the other side's brackets
        kx, tx = ky, ty
    if ky == "list" and kx in ("seq", "set"):
        ky, ty = kx, tx
    if (kx, tx) != (ky, ty):
        return WRONG
    labels_x, labels_y = _labels(xs), _labels(ys)
    if labels_x and labels_y and sorted(labels_x) == sorted(labels_y):  # q=2, p=3 against (p,q)=(3,2)
        ys, kx = [ys[labels_y.index(label)] for label in labels_x], "seq"
    elif (labels_x or labels_y) and kx == "list":  # labels order a list: AB=4, CD=5 is not 5, 4
        kx = "seq"
    if kx in ("seq", "mat"):
        return _all(_match(a, b, leaf) for a, b in zip(xs, ys)) if len(xs) == len(ys) else WRONG
    if len(xs) > 30 or len(ys) > 30:  # keeps the table below small
        return CORRECT if set(map(str, xs)) == set(map(str, ys)) else UNPARSEABLE
    # sets: every member has an equal one on the other side, both ways ({1, 1, 2} = {1, 2})
    table = [[_match(a, b, leaf) for b in ys] for a in xs]
    return min([max(row) for row in table] + [max(col) for col in zip(*table)])


class _TooBig(Exception):
    pass


def _compare(a, g, leaf):
    """Rank of normalised answer a against normalised gold g, with at most MAX_LEAF_PAIRS leaf calls."""
    calls = 0

    def counted(p, q):
        nonlocal calls
        calls += 1
        if calls > MAX_LEAF_PAIRS:
            raise _TooBig
        return leaf(p, q)
    try:
        return _match(_parse(a), _parse(g), counted)
    except (_TooBig, RecursionError):
        return UNPARSEABLE

# ----------------------------------------------------------------------------- leaves

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)"
_PLAIN = re.compile(_NUM)
_FRAC = re.compile(r"([-+]?)\\frac\{(" + _NUM + r")\}\{(" + _NUM + r")\}")
_SLASH = re.compile(r"()(" + _NUM + r")/(" + _NUM + r")")
_MIXED = re.compile(r"([-+]?)(\d+)\\frac\{(\d+)\}\{(\d+)\}")


def _exact(literal):
    return Fraction(literal) if "." in literal else Fraction(int(literal))  # int() is much faster


def _number(s):
    """Value of a plain number, fraction or mixed number: (Fraction, written_as_decimal), or None."""
    try:
        if _PLAIN.fullmatch(s):
            return _exact(s), "." in s
        m = _FRAC.fullmatch(s) or _SLASH.fullmatch(s)
        if m:
            sign, num, den = m.groups()
            return (-1 if sign == "-" else 1) * _exact(num) / _exact(den), "." in num + den
        m = _MIXED.fullmatch(s)
        if m and int(m[3]) < int(m[4]):  # 2\frac{1}{2} is two and a half
            return (-1 if m[1] == "-" else 1) * (int(m[2]) + Fraction(int(m[3]), int(m[4]))), False
    except (ValueError, ZeroDivisionError):  # over Python's int-string limit, x/0
        pass
    return None


def _numbers_equal(x, y):
    """Exact, unless one side is a decimal and the other a non-terminating value (0.333333 vs 1/3)."""
    (vx, dx), (vy, dy) = x, y
    if vx == vy or dx == dy:
        return vx == vy
    exact = vy if dx else vx
    d = exact.denominator
    while d % 2 == 0:
        d //= 2
    while d % 5 == 0:
        d //= 5
    return d != 1 and abs(vx - vy) <= REL_TOL * max(1, abs(exact))


def _leaf_fast(a, b):
    """Rank two leaves without sympy: UNKNOWN when only sympy can tell."""
    if a == b:
        return CORRECT
    if a.isascii() and b.isascii() and a.isalpha() and b.isalpha():  # words, or products of letters
        if a.lower() == b.lower() and len(a) > 1:  # \text{Yes} vs yes
            return CORRECT
        if sorted(a) != sorted(b):  # only a reordering (ab vs ba) can still be equal
            return WRONG
    x, y = _number(a), _number(b)
    if x and y:
        return CORRECT if _numbers_equal(x, y) else WRONG
    if _to_code(a) is None or _to_code(b) is None:  # \pm, inequalities, \text: only the string counts
        return UNPARSEABLE
    return UNKNOWN


_TOKEN = re.compile(r"[a-zA-Z]_(?:\{\w+\}|\w)|\\[a-zA-Z]+|\\.|\d+(?:\.\d*)?|\.\d+|\S", re.ASCII)
_FUNCS = {"sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc", "ln": "log",
          "log": "log", "exp": "exp", "arcsin": "asin", "arccos": "acos", "arctan": "atan"}
_CONSTANTS = {"pi": "pi", "infty": "oo", "cdot": "*", "times": "*", "div": "/", "e": "E", "i": "I"}
_GREEK = set("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta kappa lambda mu nu xi "
             "rho sigma tau phi varphi chi psi omega Gamma Delta Theta Lambda Sigma Phi Psi Omega".split())
_NAMES = set(_FUNCS.values()) | {"sqrt", "real_root", "binomial", "factorial", "Abs"}


def _operand_end(t):
    return t == ")" or t in ("pi", "oo", "E", "I") or t[0] in "0123456789._"


@functools.lru_cache(maxsize=4096)  # set comparisons ask for the same leaves many times
def _to_code(latex):
    """LaTeX leaf -> a Python expression for sympy made only of whitelisted tokens, or None.
    Letters become symbols `_x`; e and i are Euler's number and the imaginary unit."""
    depth = 0
    for c in latex:
        depth += (c == "{") - (c == "}")
        if depth > MAX_DEPTH:
            return None
    toks, pos = _TOKEN.findall(latex), 0

    def arg():  # one TeX argument: a {group} or a single token
        nonlocal pos
        pos += 1
        return ["("] + (run("}") if toks[pos - 1] == "{" else atom(toks[pos - 1])) + [")"]

    def run(end):  # tokens up to the closing `end`
        nonlocal pos
        out = []
        while pos < len(toks):
            pos += 1
            t = toks[pos - 1]
            if t == end:
                return out
            if t == "!" and out and out[-1].isdigit() and int(out[-1]) <= MAX_EXPONENT:  # 5!
                out[-1:] = ["factorial", "(", out[-1], ")"]
            else:
                out += atom(t)
        if end:
            raise ValueError("unclosed group")
        return out

    def atom(t):
        nonlocal pos
        name = t[1:] if t[0] == "\\" else t
        if t in ("{", "(", "["):
            return ["("] + run({"{": "}", "(": ")", "[": "]"}[t]) + [")"]
        if t == "|":
            return ["Abs", "("] + run("|") + [")"]
        if t == "^":
            return ["**"] + arg()
        if t in "+-*/" or t[0] in "0123456789.":
            return [t]
        if name in _CONSTANTS:  # \pi, \cdot, e, i
            return [_CONSTANTS[name]]
        if t.isascii() and t.isalpha() or t[1:2] == "_" or name in _GREEK:  # x, x_1, a_{10}, \theta
            return ["_" + re.sub(r"\W", "", name)]
        if name == "frac":
            return ["("] + arg() + ["/"] + arg() + [")"]
        if name == "binom":
            return ["binomial", "("] + arg() + [","] + arg() + [")"]
        # \sqrt[3]{x}, real: \sqrt[3]{-8} is -2, not 1+i\sqrt3
        if name == "sqrt" and toks[pos:pos + 1] == ["["]:
            pos += 1
            index = run("]")
            return ["real_root", "("] + arg() + [","] + index + [")"]
        if name == "sqrt":
            return ["sqrt"] + arg()
        if t[0] == "\\" and name in _FUNCS:  # \sin(x), \sin^2 x, and \sin 2x is sin(2x) as printed
            power = []
            if toks[pos:pos + 1] == ["^"]:
                pos += 1
                power = ["**"] + arg()
            if toks[pos:pos + 1] in (["{"], ["("], ["\\frac"], ["\\sqrt"]):
                pos += 1
                term = atom(toks[pos - 1])
            else:  # a run of digits, letters and Greek letters: \sin 2x, \cos 2\theta
                term = []
                while pos < len(toks) and (toks[pos][0].isalnum() or toks[pos][1:] in _GREEK | {"pi"}):
                    pos += 1
                    term += atom(toks[pos - 1])
            if not term:
                raise ValueError(f"{t} without an argument")
            return ["(", _FUNCS[name], "("] + term + [")"] + power + [")"]
        raise ValueError(f"unsupported token {t!r}")

    try:
        out = run(None)
    except (ValueError, IndexError, RecursionError):
        return None
    code = []
    for t in out:  # implicit multiplication: 2x, 2\sqrt{3}, (a)(b), x y
        if code and _operand_end(code[-1]) and (t == "(" or t in _NAMES or t != ")" and _operand_end(t)):
            code.append("*")
        code.append(t)
    code = "".join(code)
    # Only these characters and names can appear by construction; check anyway, sympy will eval() it.
    if not code or re.search(r"[^\w+\-*/(),.]|\.[A-Za-z_]|__", code, re.ASCII):
        return None
    return code

# ----------------------------------------------------------------------------- sympy (helpers only)

_rng = random.Random()  # seeded from os.urandom in each process: the points cannot be known in advance
_in_helper = False       # SIGALRM budgets are used only in a helper's main thread
_pair_deadline = math.inf
_exact_left = EXACT_S


class _Late(BaseException):
    """SIGALRM in a helper: a budget ran out. A BaseException, because sympy catches Exception."""


def _on_alarm(signum, frame):
    raise _Late


def _arm(deadline):
    signal.setitimer(signal.ITIMER_REAL,
                     0 if deadline == math.inf else max(1e-4, deadline - time.monotonic()))


@contextlib.contextmanager
def _exact_budget():
    """Run an exact (possibly slow) sympy step in what is left of EXACT_S for this pair; a step that
    runs out is abandoned, not the pair. Outside a helper the step simply runs."""
    global _exact_left
    if not _in_helper:
        yield
        return
    start = time.monotonic()
    if _exact_left <= 0.01 or _pair_deadline - start < 0.1:
        raise _Abandoned
    _arm(min(start + _exact_left, _pair_deadline))
    try:
        yield
    except _Late:
        if time.monotonic() >= _pair_deadline:
            raise
        raise _Abandoned from None
    finally:
        _exact_left -= time.monotonic() - start
        _arm(_pair_deadline)


class _Abandoned(Exception):
    pass


@functools.lru_cache(maxsize=1024)
def _sympify(code):
    """Parse code into sympy, refusing power towers and huge factorials before evaluating them."""
    import sympy
    from sympy.parsing.sympy_parser import parse_expr
    names = {n: sympy.Symbol(n) for n in re.findall(r"\b_\w+", code)}
    if "**" not in code and "factorial" not in code and "binomial" not in code:  # nothing can blow up
        return parse_expr(code, local_dict=names)
    with sympy.evaluate(False):  # else binomial(10**6, 500000) is computed while parsing
        raw = parse_expr(code, local_dict=names, evaluate=False)
    for node in sympy.postorder_traversal(raw):  # innermost first: 10^(10^10) stops at 10^10
        if isinstance(node, sympy.Pow) and node.exp.is_number:
            e, b = abs(node.exp.evalf(15)), abs(node.base.evalf(15)) if node.base.is_number else 0
            if e > MAX_EXPONENT or (b > 1 and e * math.log10(b) > 10 * MAX_EXPONENT):
                raise ValueError("power too large")
        if isinstance(node, (sympy.factorial, sympy.binomial)) and any(
                a.is_number and abs(a.evalf(15)) > MAX_EXPONENT for a in node.args):
            raise ValueError("factorial too large")
    return parse_expr(code, local_dict=names)


def _random_points(syms, top=1):
    """N_POINTS points: in the first third every symbol is positive (roots and logs are real there),
    in the next one every symbol is negative (|x| is not x), in the rest signs are random. Coordinates
    are rationals with random denominators near 2^30 and magnitudes log-uniform in [0.1, 10^top], so
    no term can vanish at all of them (sin(2^k pi x), (x - a)(x - b) at guessed points)."""
    import sympy
    points = []
    for k in range(N_POINTS):
        point = {}
        for s in syms:
            q = _rng.randrange(1 << 29, 1 << 30)
            v = sympy.Rational(max(1, round(10 ** _rng.uniform(-1, top) * q)), q)
            negative = k >= N_POINTS // 3 and (k == N_POINTS // 3 or _rng.random() < 0.5)
            point[s] = -v if negative else v
        points.append(point)
    return points


def _close(u, v, tol):
    return u == v or bool(abs(u - v) <= tol * (1 + abs(u) + abs(v)))


def _sympy_equal(a, b):
    """Rank of two leaves that the cheap checks could not decide (see the module docstring's policy)."""
    import sympy
    x, y = _sympify(_to_code(a)), _sympify(_to_code(b))
    if x == y:
        return CORRECT
    if x.is_Rational and y.is_Rational:
        return WRONG
    floats = x.has(sympy.Float) or y.has(sympy.Float)
    d = x - y  # sympy cancels what it can at once: 2*sqrt(2) - sqrt(8) is 0, 1 + 10^-40 - 1 is 10^-40
    if d == 0:
        return CORRECT
    if d.is_Rational and not floats:
        return WRONG
    syms = sorted(d.free_symbols, key=str)
    if syms and all(t.is_Symbol or t.is_Rational for t in d.atoms()) and d.is_rational_function(*syms):
        with contextlib.suppress(_Abandoned):  # rational functions over Q: decided exactly
            with _exact_budget():
                return CORRECT if sympy.cancel(d) == 0 else WRONG
    tol = REL_TOL if floats else 1e-20
    cuts = [p.base for p in (x.atoms(sympy.Pow) | y.atoms(sympy.Pow)) if not p.exp.is_integer]
    cuts += [f.args[0] for f in x.atoms(sympy.log) | y.atoms(sympy.log)]
    inside, outside = [], []  # values in the real domain of every root and log, and elsewhere
    points = _random_points(syms) if syms else [{}]
    for k, point in enumerate(points):
        u, v = x.evalf(30, subs=point), y.evalf(30, subs=point)
        if (not (u.is_number and v.is_number)
                or any(w.has(sympy.nan, sympy.zoo, sympy.oo, -sympy.oo) for w in (u, v))):
            continue  # a pole says nothing
        real = all(c.evalf(15, subs=point).is_extended_nonnegative for c in cuts)
        (inside if real else outside).append((u, v))
        if k == len(points) - 1 and len(inside) < 2 and len(points) < 3 * N_POINTS:
            points += _random_points(syms, top=len(points) // N_POINTS + 1)  # a domain such as x >= 2
    pairs = inside if len(inside) >= 2 else inside + outside  # off the real domain only as a last resort
    if not pairs or not all(_close(u, v, tol) for u, v in pairs):
        return WRONG
    if floats:
        return CORRECT
    with contextlib.suppress(_Abandoned):  # a difference below 30 digits: e^{-100} is not 0
        with _exact_budget():
            if d.is_zero is False:
                return WRONG
            s = sympy.simplify(d) if syms else d
            if s.is_number and s.is_zero is False:
                return WRONG
    return CORRECT


def _leaf_symbolic(a, b):
    fast = _leaf_fast(a, b)
    if fast != UNKNOWN:
        return fast
    try:
        return _sympy_equal(a, b)
    except Exception:  # refused powers, sympy's own parse or evaluation errors: read, but not comparable
        return UNPARSEABLE


def _serve():
    """Helper process: one JSON [answer, gold] per stdin line -> one byte: b"c" correct, b"w" wrong,
    b"u" unparseable, b"t" its own budget ran out (the parent kills it if even that is late)."""
    global _in_helper, _pair_deadline, _exact_left
    try:
        import resource  # a memory bomb should raise MemoryError here, not swap the machine
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    except (ImportError, ValueError, OSError):
        pass
    _rng.seed(os.urandom(32))
    _sympy_equal("(x+1)^2", "x^2+2x+1")  # imports sympy and its parser, warms evalf: off the clock
    _sympy_equal("\\sin^2x+\\cos^2 x", "1")
    signal.signal(signal.SIGALRM, _on_alarm)
    _in_helper = True
    out = sys.stdout.buffer
    out.write(b"R")
    out.flush()
    for line in iter(sys.stdin.buffer.readline, b""):  # EOF: the parent has gone
        _pair_deadline, _exact_left = time.monotonic() + 0.9 * TIMEOUT_S, EXACT_S
        try:
            try:
                _arm(_pair_deadline)
                a, g = json.loads(line)
                byte = {CORRECT: b"c", WRONG: b"w"}.get(_compare(a, g, _leaf_symbolic), b"u")
            except Exception:
                byte = b"u"
            finally:
                signal.setitimer(signal.ITIMER_REAL, 0)
        except _Late:  # also when it fires inside the handlers above
            byte = b"t"
        out.write(byte)
        out.flush()


class _Helper:
    """A child Python running _serve(). The parent waits on it with a deadline and kills it if late."""

    def __init__(self):
        here = os.path.dirname(os.path.abspath(__file__))
        code = f"import sys; sys.path.insert(0, {here!r}); import grader; grader._serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                     start_new_session=True)  # Ctrl-C is the parent's
        self.fd, self.ready = self.proc.stdout.fileno(), False

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


# _spare holds one started helper that imports sympy while nobody needs it, so that replacing a killed
# or dead helper costs a pipe, not a sympy import
_helpers, _spare, _lock = [], [], threading.Lock()


def _forget_helpers():
    # a forked child must not share its parent's helpers, a lock held at fork, or its points
    global _helpers, _spare, _lock
    _helpers, _spare, _lock = [], [], threading.Lock()
    _rng.seed(os.urandom(32))


@atexit.register
def _stop_helpers():  # they would also exit at EOF on stdin; this is just sooner
    for h in _helpers + _spare:
        h.kill()


os.register_at_fork(after_in_child=_forget_helpers)


def _replace(k):
    """Kill helper k; the warm spare takes its place and a new spare starts importing sympy."""
    _helpers[k].kill()
    _helpers[k] = _spare.pop() if _spare else _Helper()
    _spare.append(_Helper())


_BYTES = {b"c": "correct", b"w": "wrong", b"u": "unparseable", b"t": "timeout"}


def _symbolic(pairs, workers):
    """Verdicts of normalised (answer, gold) pairs, on up to `workers` helpers at once. A pair that
    takes longer than TIMEOUT_S is "timeout" and its helper is replaced by the spare."""
    results = ["timeout"] * len(pairs)
    with _lock:
        while len(_helpers) < min(workers, len(pairs)):
            _helpers.append(_Helper())
        todo, busy = list(range(len(pairs)))[::-1], {}  # busy: helper slot -> (pair index, deadline)
        try:
            while todo or busy:
                for k in range(min(workers, len(_helpers))):
                    if k in busy or not todo:
                        continue
                    if _helpers[k].proc.poll() is not None:  # died while idle
                        _replace(k)
                    i, h = todo.pop(), _helpers[k]
                    try:
                        h.proc.stdin.write(json.dumps(pairs[i]).encode() + b"\n")
                        h.proc.stdin.flush()
                    except OSError:
                        _replace(k)
                        continue
                    busy[k] = (i, time.monotonic() + TIMEOUT_S + (0 if h.ready else STARTUP_S))
                wait = max(0.0, min([d for _, d in busy.values()], default=0) - time.monotonic())
                readable = select.select([_helpers[k].fd for k in busy], [], [], wait)[0]
                for k, (i, deadline) in list(busy.items()):
                    h = _helpers[k]
                    if h.fd in readable:
                        byte = os.read(h.fd, 1)
                        if byte == b"R":  # sympy imported: the pair's own budget starts now
                            h.ready, busy[k] = True, (i, time.monotonic() + TIMEOUT_S)
                            continue
                        results[i] = _BYTES.get(byte, "timeout")
                        del busy[k]
                        if byte not in _BYTES:  # EOF: it died (memory limit)
                            _replace(k)
                    elif time.monotonic() > deadline:
                        del busy[k]
                        _replace(k)
        finally:  # interrupted (Ctrl-C): a late answer must not be read as the next pair's
            for k in busy:
                _helpers[k].kill()
            if not _spare:  # started after the first helpers are in use, so as not to slow their import
                _spare.append(_Helper())
    return results

# ----------------------------------------------------------------------------- grading API

_CHOICE = re.compile(r"\(?([A-E])\)?(?![a-zA-Z])")


def _choice(answer):
    """The one option letter an answer names ("C", "(C)", "(C) 12"); None if it names none or several."""
    m = _CHOICE.match(answer)
    rest = re.sub(r"\\[a-zA-Z]+", "", answer[m.end():]) if m else ""  # a value may follow: (C) \frac{1}{2}
    if not m or rest.startswith(",") or re.search("[A-E]", rest):  # (C),(D); C or D; C (or maybe D)
        return None
    return m[1]


def _prepare(answer, gold):
    """Cheap verdict on one pair: a verdict, or the normalised (answer, gold) that needs sympy."""
    if answer is None:
        return "no_box"
    answer, gold = _as_text(answer), _as_text(gold)
    if answer is None or gold is None:
        return "unparseable"
    a, g = _normalize(answer), _normalize(gold)
    if not a:
        return "no_box"  # \boxed{}: a box with no answer in it
    if not g:
        return "unparseable"
    if a == g:
        return "correct"
    if _INT.fullmatch(a) and _INT.fullmatch(g):  # GSM8K and AIME: 042 is 42
        return "correct" if int(a) == int(g) else "wrong"
    letter = re.fullmatch(r"\(?([A-E])\)?", g)
    if letter:  # multiple choice: "(C)", "C", "\text{(C)} 12" answer C; "C, D" and "(C) or (D)" do not
        return "correct" if _choice(a) == letter[1] else "wrong"
    if len(a) > MAX_CHARS or len(g) > MAX_CHARS:
        return "unparseable"
    rank = _compare(a, g, _leaf_fast)
    if rank in (WRONG, UNPARSEABLE) and ("%" in answer) != ("%" in gold):  # 25% is both 25 and 0.25
        x, y = _number(a), _number(g)
        if x and y:
            x, y = ((x[0] / 100, x[1]), y) if "%" in answer else (x, (y[0] / 100, y[1]))
            rank = CORRECT if _numbers_equal(x, y) else rank
    return (a, g) if rank == UNKNOWN else _NAME[rank]


def _verdicts(answers, golds, workers):
    out = []
    for a, g in zip(answers, golds):
        try:
            out.append(_prepare(a, g))
        except Exception:  # never raise: a grader bug is an unreadable answer, not a crashed run
            out.append("unparseable")
    hard = list(dict.fromkeys(v for v in out if isinstance(v, tuple)))  # a group repeats answers
    try:
        decided = dict(zip(hard, _symbolic(hard, workers))) if hard else {}
    except Exception:  # no helper could be started
        decided = {}
    return [decided.get(v, "timeout") if isinstance(v, tuple) else v for v in out]


def verdicts(responses, golds, processes=0):
    """Why each response earned its reward: "correct", "no_box", "unparseable", "timeout" or "wrong"
    (see the module docstring). What needs sympy runs on `processes` helper processes at once (0: one),
    each pair bounded by TIMEOUT_S. Truncation is the caller's to decide."""
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
    return _verdicts([extract_boxed(r) for r in responses], golds, max(1, processes))


def warm_up(processes=0):
    """Start the sympy helpers of grade_many(..., processes) and the spare now, without waiting: they
    import sympy while the caller does something else (sampling), and the first call does not wait."""
    with _lock:
        while len(_helpers) < max(1, processes):
            _helpers.append(_Helper())
        if not _spare:
            _spare.append(_Helper())


def is_equiv(answer, gold):
    """Whether two bare answers (no \\boxed) are mathematically equal. Bounded in time, never raises."""
    return _verdicts([answer], [gold], 1)[0] == "correct"


def grade(response, gold):
    """Whether the final \\boxed{} answer of response equals gold. No boxed answer is wrong."""
    return verdicts([response], [gold])[0] == "correct"


def grade_many(responses, golds, processes=0):
    """grade() on many pairs: [v == "correct" for v in verdicts(responses, golds, processes)]."""
    return [v == "correct" for v in verdicts(responses, golds, processes)]


if __name__ == "__main__":
    for response, gold in [("so the answer is \\boxed{\\dfrac{3}{4}}.", "\\frac34"),
                           ("\\boxed{2\\sqrt2}", "\\sqrt{8}"), ("\\boxed{[2,5]}", "[2,5)"),
                           ("\\boxed{\\text{(C)}}", "C"), ("the answer is 42", "42"),
                           ("\\boxed{C, D}", "\\text{(C)}"),
                           ("\\boxed{1+\\sqrt{19}, 1-\\sqrt{19}}", "1 \\pm \\sqrt{19}")]:
        print(f"verdicts([{response!r}], [{gold!r}]) = {verdicts([response], [gold])}")
