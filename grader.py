"""
The math grader: is a response's final boxed answer equal to the gold answer? reward.py calls it.

    python grader.py                          # grade a few examples
    python -m pytest tests/test_grader.py -q  # tests, CPU, under a minute
    python tests/bench_grader.py              # throughput and agreement with math-verify

grade() compares the last \\boxed{} (or \\fbox{}) of a response with the gold answer. Cheap exact
checks run first (normalised strings, exact rationals, tuples, intervals, sets and matrices element
by element); only what they cannot decide goes to sympy, which runs in helper processes that the
caller waits on with select() and kills when late. Unlike signal.alarm this works in any thread and
inside worker processes, and a hung or exploding sympy costs a restart, not the run. Anything that
fails, times out or does not parse counts as "not equal"; grading never raises. POSIX only.
"""
import atexit
import functools
import json
import math
import os
import re
import select
import subprocess
import sys
import threading
import time
from fractions import Fraction

TIMEOUT_S = 1.0      # wall-clock budget of the sympy check of one (answer, gold) pair
STARTUP_S = 60.0     # a fresh helper may take this long to import sympy on a loaded machine
MAX_CHARS = 1000     # longer answers are compared as strings only, so no step below can be slow
MAX_DEPTH = 40       # deeper brace nesting is compared as a string only (parse bombs)
MAX_EXPONENT = 1000  # larger exponents and factorials are refused before sympy evaluates them
REL_TOL = 1e-6       # how close a decimal must be to a non-terminating value (1/3, sqrt 2)

# ----------------------------------------------------------------------------- extraction

def extract_boxed(text):
    """Content of the last \\boxed{...} or \\fbox{...} (also `\\boxed 5`); None if absent or unbalanced."""
    if not isinstance(text, str):
        return None
    start = max(text.rfind("\\boxed"), text.rfind("\\fbox"))
    if start < 0:
        return None
    i = start + (6 if text.startswith("\\boxed", start) else 5)
    m = re.match(r"\s*\{", text[i:i + 100])
    if not m:
        m = re.match(r"\s+([^\s$]+)", text[i:i + 1000])  # `\boxed 5`: one space-delimited token
        return m.group(1) if m else None
    i, depth = i + m.end(), 1
    for m in re.finditer(r"\\.|[{}]", text[i:]):  # escaped braces \{ \} do not count
        depth += {"{": 1, "}": -1}.get(m.group(), 0)
        if depth == 0:
            return text[i:i + m.start()]
    return None


def gold_from_solution(solution):
    """Gold answer of a MATH-style solution: its last \\boxed{} content, or None."""
    answer = extract_boxed(solution)
    return answer.strip() or None if answer else None

# ----------------------------------------------------------------------------- normalisation

_UNICODE = str.maketrans({"\u2212": "-", "\u2013": "-", "\u00d7": "\\times ", "\u00b7": "\\cdot ",
                          "\u03c0": "\\pi ", "\u221e": "\\infty ", "\u221a": "\\sqrt ", "\u00b0": "^\\circ",
                          "\u2264": "\\le ", "\u2265": "\\ge ", "\u222a": "\\cup "})
_RENAME = {"dfrac": "frac", "tfrac": "frac", "cfrac": "frac", "dbinom": "binom", "tbinom": "binom",
           "leq": "le", "geq": "ge", "neq": "ne", "varnothing": "emptyset"}
_DROP = {"left", "right", "big", "Big", "bigl", "bigr", "Bigl", "Bigr", "displaystyle", "quad", "qquad",
         "circ", "degree"}
# thin spaces, ~, %, \$, whitespace runs and degree marks all become a space (spaces go later)
_SPACING = re.compile(r"\\[,;:! ]|~|\\?%|\\\$|\^\s*\{?\s*\\circ\s*\}?|\s+")
_UNITS = (r"units?|sq(?:uare)? units|cm|mm|km|meters?|inch(?:es)?|feet|foot|ft|yards?|miles?|degrees?|"
          r"dollars?|cents?|hours?|minutes?|seconds?|days?|weeks?|years?|mph|kg|grams?|pounds?|liters?")
_TRAILING_TEXT = re.compile(r"(?<=[\w})]) *\\(?:text|mbox|mathrm)\{[^{}]*\}(?:\^\{?[23]\}?)?$")
_TRAILING_UNIT = re.compile(r"(?<=[\d}]) +(?:" + _UNITS + r")(?:\^\{?[23]\}?)?$")
_WRAPPER = re.compile(r"\\(?:text|textbf|textit|mbox|mathrm|mathbf|boldsymbol|operatorname)\{([^{}]*)\}")
_VAR_PREFIX = re.compile(r"(?:[a-zA-Z]|\\[a-zA-Z]+)(?:_\w|_\{\w+\}|\([a-z]\))?(?:=|\\in(?![a-zA-Z]))")
_INT = re.compile(r"-?\d{1,50}")


def _normalize(s):
    """Canonical string of one answer: spacing, \\left, degrees, %, $, units, \\text, \\dfrac removed."""
    s = s.strip()
    if s.startswith(("\\boxed", "\\fbox")):
        s = extract_boxed(s) or s
    return s if len(s) > MAX_CHARS else _normalize_short(s)


@functools.lru_cache(maxsize=1 << 16)  # a group's samples share a gold and often an answer
def _normalize_short(s):
    if _INT.fullmatch(s):  # most GSM8K and AIME answers
        return s
    s = s.translate(_UNICODE).replace("\\\\", "\x02")  # protect matrix row breaks from `\ ` below
    s = _SPACING.sub(" ", s).replace("$", "").strip()
    if "\\" in s:
        s = re.sub(r"\\([a-zA-Z]+)", lambda m: "" if m[1] in _DROP else "\\" + _RENAME.get(m[1], m[1]), s)
        s = _TRAILING_TEXT.sub("", s.strip())
        for _ in range(3):  # \textbf{\text{(C)}}
            s = _WRAPPER.sub(r"\1", s)
    s = _TRAILING_UNIT.sub("", s)
    # drop spaces, except the one that ends a command before a letter (`\pi r` is not `\pir`)
    s = re.sub(r"(\\[a-zA-Z]+) (?=[a-zA-Z])", "\\1\x01", s).replace(" ", "").replace("\x01", " ")
    if "\\frac" in s or "\\binom" in s or "\\sqrt" in s:
        s = re.sub(r"\\(frac|binom) ?(\w) ?(\w)", r"\\\1{\2}{\3}", s)  # \frac12 is \frac{1}{2}
        s = re.sub(r"\\(frac|binom) ?(\w)(?=\{)", r"\\\1{\2}", s)
        s = re.sub(r"\\(frac|binom)(\{[^{}]*\}) ?(\w)", r"\\\1\2{\3}", s)
        s = re.sub(r"\\sqrt ?(\w)", r"\\sqrt{\1}", s)
    s = _unwrap(re.sub(r"([\^_])\{(\w)\}", r"\1\2", s.replace("{,}", ",")).rstrip("."), "{")
    if "," in s and re.fullmatch(r"-?\d{1,3}(?:,\d{3})+(?:\.\d+)?", s):  # thousands separators
        s = s.replace(",", "")
    m = _VAR_PREFIX.match(s)  # "x = 5", "x \in [2, 5)"
    if m and "=" not in s[m.end():]:
        s = s[m.end():]
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

# ----------------------------------------------------------------------------- structure

_MATRIX = re.compile(r"\\begin\{([pbBvV]?matrix|array)\}(?:\{[lcr|]*\})?(.*)\\end\{\1\}", re.S)


def _parse(s, depth=0):
    """Answer -> leaf str, or (kind, tag, items): seq (ordered; tag = its brackets, so open and
    closed intervals differ), set (unordered), list (bare commas) or mat (tag = row lengths)."""
    m = _MATRIX.fullmatch(s) if depth < 4 else None
    if m:
        rows = [_split(r, "&") for r in _split(m.group(2), "\\\\") if r]
        return ("mat", str([len(r) for r in rows]), [_parse(c, depth + 1) for r in rows for c in r])
    if depth >= 4:
        return s
    parts = _split(s, "\\cup")
    if len(parts) > 1:
        return ("set", "", [_parse(p, depth + 1) for p in parts])
    if s.startswith("\\{") and s.endswith("\\}") and _closes_at_end(s[1:]):
        parts = _split(s[2:-2], ",")
        return ("set", "", [_parse(p, depth + 1) for p in parts]) if len(parts) > 1 else _parse(parts[0], depth + 1)
    if s[:1] in ("(", "[") and s[-1:] in (")", "]") and _closes_at_end(s):
        parts = _split(s[1:-1], ",")
        if len(parts) > 1:
            return ("seq", s[0] + s[-1], [_parse(p, depth + 1) for p in parts])
    parts = _split(s, ",")
    if len(parts) > 1:
        return ("list", "", [_parse(p, depth + 1) for p in parts])
    m = _VAR_PREFIX.match(s)
    return _unwrap(s[m.end():] if m and "=" not in s[m.end():] else s, "(")


def _rank(verdict):  # verdicts are three-valued: None means "only sympy can tell"
    return {False: 0, None: 1, True: 2}[verdict]


def _all(verdicts):
    """Three-valued AND, stopping at the first False (so no sympy call is wasted)."""
    out = True
    for v in verdicts:
        if v is False:
            return False
        out = None if v is None else out
    return out


def _match(x, y, leaf):
    """Compare two parsed answers; leaf(a, b) compares two leaves. Returns True, False or None."""
    if isinstance(x, str) or isinstance(y, str):
        if not (isinstance(x, str) and isinstance(y, str)):
            return False
        if x.count("=") == 1 and y.count("=") == 1:  # equations: the same sides, in either order
            (x1, x2), (y1, y2) = x.split("="), y.split("=")
            return max(_all([leaf(x1, y1), leaf(x2, y2)]), _all([leaf(x1, y2), leaf(x2, y1)]), key=_rank)
        return leaf(x, y)
    (kx, tx, xs), (ky, ty, ys) = x, y
    if kx == "list" and ky in ("seq", "set"):  # a bare "1, 2" takes the other side's brackets
        kx, tx = ky, ty
    if ky == "list" and kx in ("seq", "set"):
        ky, ty = kx, tx
    if (kx, tx) != (ky, ty):
        return False
    if kx in ("seq", "mat"):
        return len(xs) == len(ys) and _all(_match(a, b, leaf) for a, b in zip(xs, ys))
    if len(xs) > 30:  # keeps the table below small
        return set(map(str, xs)) == set(map(str, ys))
    # sets: every element has an equal one on the other side, both ways ({1, 1, 2} = {1, 2})
    table = [[_match(a, b, leaf) for b in ys] for a in xs]
    return min([max(row, key=_rank) for row in table] + [max(col, key=_rank) for col in zip(*table)], key=_rank)

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
    """Compare two leaves without sympy: True, False, or None when only sympy can tell."""
    if a == b:
        return True
    if a.isascii() and b.isascii() and a.isalpha() and b.isalpha():  # words, or products of letters
        if a.lower() == b.lower() and len(a) > 1:  # \text{Yes} vs yes
            return True
        if sorted(a) != sorted(b):  # only a reordering (ab vs ba) can still be equal
            return False
    x, y = _number(a), _number(b)
    if x and y:
        return _numbers_equal(x, y)
    if _to_code(a) is None or _to_code(b) is None:  # \pm, inequalities, \text: only the string counts
        return False
    return None


_TOKEN = re.compile(r"[a-zA-Z]_(?:\{\w+\}|\w)|\\[a-zA-Z]+|\\.|\d+(?:\.\d*)?|\.\d+|\S", re.ASCII)
_FUNCS = {"sin": "sin", "cos": "cos", "tan": "tan", "cot": "cot", "sec": "sec", "csc": "csc", "ln": "log",
          "log": "log", "exp": "exp", "arcsin": "asin", "arccos": "acos", "arctan": "atan"}
_CONSTANTS = {"pi": "pi", "infty": "oo", "cdot": "*", "times": "*", "div": "/", "e": "E", "i": "I"}
_GREEK = set("alpha beta gamma delta epsilon varepsilon zeta eta theta vartheta kappa lambda mu nu xi "
             "rho sigma tau phi varphi chi psi omega Gamma Delta Theta Lambda Sigma Phi Psi Omega".split())
_NAMES = set(_FUNCS.values()) | {"sqrt", "binomial", "factorial", "Abs"}


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
        if name == "sqrt" and toks[pos:pos + 1] == ["["]:  # \sqrt[3]{x}
            pos += 1
            index = run("]")
            return ["("] + arg() + ["**", "(", "1", "/", "("] + index + [")", ")", ")"]
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

_POINTS = ["0.5377", "1.8339", "-2.2588", "0.8622", "0.3188", "-1.3077", "-0.4336", "0.3426", "3.5784", "2.7694"]


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


def _sympy_equal(a, b):
    """Equal values to 30 digits (1e-6 if a decimal is involved) at three fixed points for the free
    symbols. Cheaper and harder to hang than simplify(); two different closed forms of an answer do
    not agree at three irrational-looking points."""
    import sympy
    x, y = _sympify(_to_code(a)), _sympify(_to_code(b))
    if x == y or x.is_Rational and y.is_Rational:
        return x == y
    tol = REL_TOL if x.has(sympy.Float) or y.has(sympy.Float) else 1e-20
    syms = sorted(x.free_symbols | y.free_symbols, key=str)
    agree = 0
    for p in range(3 if syms else 1):
        point = {s: sympy.Rational(_POINTS[(3 * p + k) % len(_POINTS)]) for k, s in enumerate(syms)}
        u, v = x.evalf(30, subs=point), y.evalf(30, subs=point)
        if not (u.is_number and v.is_number) or u.has(sympy.nan, sympy.zoo) or v.has(sympy.nan, sympy.zoo):
            continue  # a pole says nothing
        if u != v and not (u.is_finite and v.is_finite and abs(u - v) <= tol * (1 + abs(v))):
            return False
        agree += 1
    return agree > 0


def _leaf_symbolic(a, b):
    fast = _leaf_fast(a, b)
    return _sympy_equal(a, b) if fast is None else fast


def _serve():
    """Helper process: one JSON [answer, gold] per stdin line -> one byte, b"1" equal or b"0"."""
    try:
        import resource  # a memory bomb should raise MemoryError here, not swap the machine
        resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))
    except (ImportError, ValueError, OSError):
        pass
    _sympy_equal("(x+1)^2", "x^2+2x+1")  # imports sympy and its parser, warms evalf: off the clock
    out = sys.stdout.buffer
    out.write(b"R")
    out.flush()
    for line in iter(sys.stdin.buffer.readline, b""):  # EOF: the parent has gone
        try:
            a, g = json.loads(line)
            ok = _match(_parse(a), _parse(g), _leaf_symbolic) is True
        except Exception:
            ok = False
        out.write(b"1" if ok else b"0")
        out.flush()


class _Helper:
    """A child Python running _serve(). The parent waits on it with a deadline and kills it if late."""

    def __init__(self):
        here = os.path.dirname(os.path.abspath(__file__))
        code = f"import sys; sys.path.insert(0, {here!r}); import grader; grader._serve()"
        self.proc = subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, start_new_session=True)  # Ctrl-C is the parent's
        self.fd, self.ready = self.proc.stdout.fileno(), False

    def kill(self):
        self.proc.kill()
        self.proc.wait()
        self.proc.stdin.close()
        self.proc.stdout.close()


_helpers, _lock = [], threading.Lock()


def _forget_helpers():  # a forked child must not share its parent's helpers, nor a lock held at fork
    global _helpers, _lock
    _helpers, _lock = [], threading.Lock()


@atexit.register
def _stop_helpers():  # they would also exit at EOF on stdin; this is just sooner
    for h in _helpers:
        h.kill()


os.register_at_fork(after_in_child=_forget_helpers)


def _symbolic(pairs, workers):
    """Decide normalised (answer, gold) pairs on up to `workers` helpers at once. A pair that takes
    longer than TIMEOUT_S is False and its helper is replaced by a fresh one."""
    results = [False] * len(pairs)
    with _lock:
        while len(_helpers) < min(workers, len(pairs)):
            _helpers.append(_Helper())
        todo, busy = list(range(len(pairs)))[::-1], {}  # busy: helper slot -> (pair index, deadline)

        def restart(k):
            _helpers[k].kill()
            _helpers[k] = _Helper()  # it imports sympy while we carry on
        try:
            while todo or busy:
                for k in range(min(workers, len(_helpers))):
                    if k in busy or not todo:
                        continue
                    if _helpers[k].proc.poll() is not None:  # died while idle
                        restart(k)
                    i, h = todo.pop(), _helpers[k]
                    try:
                        h.proc.stdin.write(json.dumps(pairs[i]).encode() + b"\n")
                        h.proc.stdin.flush()
                    except OSError:
                        restart(k)
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
                        results[i] = byte == b"1"
                        del busy[k]
                        if byte not in (b"0", b"1"):  # EOF: it died (memory limit)
                            restart(k)
                    elif time.monotonic() > deadline:
                        del busy[k]
                        restart(k)
        finally:  # interrupted (Ctrl-C): a late answer must not be read as the next pair's
            for k in busy:
                _helpers[k].kill()
    return results

# ----------------------------------------------------------------------------- grading API

def _prepare(answer, gold):
    """Cheap verdict on one pair: True/False, or the normalised (answer, gold) that needs sympy."""
    if not isinstance(answer, str) or not isinstance(gold, (str, int)):
        return False
    a, g = _normalize(answer), _normalize(str(gold))
    if not a or not g or a == g:
        return bool(a) and a == g
    if _INT.fullmatch(a) and _INT.fullmatch(g):  # GSM8K and AIME: 042 is 42
        return int(a) == int(g)
    letter = re.fullmatch(r"\(?([A-E])\)?", g)
    if letter:  # multiple choice: "(C)", "C", "\text{(C)} 12" all answer C
        m = re.match(r"\(?([A-E])\)?(?![a-zA-Z])", a)
        return bool(m) and m[1] == letter[1]
    if len(a) > MAX_CHARS or len(g) > MAX_CHARS:
        return False
    verdict = _match(_parse(a), _parse(g), _leaf_fast)
    if verdict is False and ("%" in answer) != ("%" in str(gold)):  # 25% is both 25 and 0.25
        x, y = _number(a), _number(g)
        if x and y:
            x, y = ((x[0] / 100, x[1]), y) if "%" in answer else (x, (y[0] / 100, y[1]))
            verdict = _numbers_equal(x, y)
    return (a, g) if verdict is None else verdict


def _grade_pairs(answers, golds, workers):
    verdicts = []
    for a, g in zip(answers, golds):
        try:
            verdicts.append(_prepare(a, g))
        except Exception:  # never raise: a grader bug is a wrong answer, not a crashed run
            verdicts.append(False)
    hard = list(dict.fromkeys(v for v in verdicts if isinstance(v, tuple)))  # a group repeats answers
    try:
        decided = dict(zip(hard, _symbolic(hard, workers))) if hard else {}
    except Exception:
        decided = {}
    return [decided.get(v, False) if isinstance(v, tuple) else v for v in verdicts]


def is_equiv(answer, gold):
    """Whether two bare answers (no \\boxed) are mathematically equal. Bounded in time, never raises."""
    return _grade_pairs([answer], [gold], 1)[0]


def grade(response, gold):
    """Whether the last \\boxed{} answer of response equals gold. No boxed answer is wrong."""
    return _grade_pairs([extract_boxed(response)], [gold], 1)[0]


def grade_many(responses, golds, processes=0):
    """grade() on many pairs. Cheap checks run here; what needs sympy runs on `processes` helper
    processes at once (0: on one), each pair bounded by TIMEOUT_S."""
    if len(responses) != len(golds):
        raise ValueError(f"{len(responses)} responses but {len(golds)} gold answers")
    return _grade_pairs([extract_boxed(r) for r in responses], golds, max(1, processes))


if __name__ == "__main__":
    for response, gold in [("so the answer is \\boxed{\\dfrac{3}{4}}.", "\\frac34"), ("\\boxed{2\\sqrt2}", "\\sqrt{8}"),
                           ("\\boxed{[2,5]}", "[2,5)"), ("\\boxed{\\text{(C)}}", "C"), ("the answer is 42", "42")]:
        print(f"grade({response!r}, {gold!r}) = {grade(response, gold)}")
