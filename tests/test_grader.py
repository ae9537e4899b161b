"""
Tests of grader.py: is a response's boxed answer equal to the gold? CPU only.

    python -m pytest tests/test_grader.py -q
"""
import decimal
import fractions
import multiprocessing
import re
import sys
import threading
import time
from pathlib import Path

import numpy as np

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
import grader  # noqa: E402
from grader import extract_boxed, gold_from_solution, grade, grade_many, is_equiv, verdicts  # noqa: E402

BOUND_S = 5 * grader.TIMEOUT_S  # its budget, plus a helper restart (a sympy import) on a loaded machine


def boxed(answer):
    return "Some reasoning... so the final answer is $\\boxed{" + answer + "}$."


NESTED = "\\frac{1}{" * 200 + "2" + "}" * 200

# (response, gold, expected). Every answer family of MATH / Numina / GSM8K / AIME golds, both ways.
CASES = [
    # --- integers (GSM8K, AIME), extraction rules
    (boxed("42"), "42", True),
    (boxed("41"), "42", False),
    (boxed("042"), "42", True),
    (boxed("-7"), "-7", True),
    (boxed("7"), "-7", False),
    (boxed("+5"), "5", True),
    (boxed("204"), "204", True),
    (boxed("999999999999999999999"), "999999999999999999998", False),
    (boxed("123456789123456789"), "123456789123456789", True),
    ("The answer is 42.", "42", False),
    ("42", "42", False),
    ("\\boxed{41} hmm, no: \\boxed{42}", "42", True),
    ("\\boxed{42} hmm, no: \\boxed{41}", "42", False),
    ("\\boxed{42", "42", False),
    ("\\boxed{}", "42", False),
    ("so \\boxed 42 apples", "42", True),
    ("\\fbox{42}", "42", True),
    ("\\boxed{\\boxed{42}}", "42", True),
    ("\\boxed {42}", "42", True),
    ("<think>maybe \\boxed{3}</think> The answer is \\boxed{4}.", "4", True),
    # --- thousands separators, money, decimals
    (boxed("1,000"), "1000", True),
    (boxed("1000"), "1,000", True),
    (boxed("12,345,678"), "12345678", True),
    (boxed("1{,}000"), "1000", True),
    (boxed("1\\,000"), "1000", True),
    (boxed("1000"), "100", False),
    (boxed("\\$18"), "18", True),
    (boxed("18 dollars"), "18", True),
    (boxed("\\$5.50"), "5.5", True),
    (boxed("5.0"), "5", True),
    (boxed("5.00"), "5", True),
    (boxed("18.5"), "18", False),
    (boxed("0.5"), "0.50", True),
    (boxed(".5"), "\\frac12", True),
    (boxed("12.5"), "12.47", False),
    (boxed("1000000.5"), "1000000", False),
    # --- fractions
    (boxed("\\frac{3}{4}"), "\\frac{3}{4}", True),
    (boxed("\\dfrac{3}{4}"), "\\frac{3}{4}", True),
    (boxed("\\tfrac34"), "\\frac{3}{4}", True),
    (boxed("\\frac34"), "\\dfrac{3}{4}", True),
    (boxed("3/4"), "\\frac{3}{4}", True),
    (boxed("0.75"), "\\frac{3}{4}", True),
    (boxed("\\frac{6}{8}"), "\\frac{3}{4}", True),
    (boxed("\\frac{4}{3}"), "\\frac{3}{4}", False),
    (boxed("-\\frac{3}{4}"), "\\frac{-3}{4}", True),
    (boxed("\\frac{3}{4}"), "-\\frac{3}{4}", False),
    (boxed("-0.5"), "-\\frac{1}{2}", True),
    (boxed("0.333333"), "\\frac{1}{3}", True),
    (boxed("0.33"), "\\frac{1}{3}", False),
    (boxed("0.3"), "\\frac{1}{3}", False),
    (boxed("\\frac{1}{3}"), "0.333333", True),
    (boxed("2\\frac{1}{2}"), "\\frac{5}{2}", True),
    (boxed("\\frac{5}{2}"), "2\\frac{1}{2}", True),
    (boxed("\\frac{1}{0}"), "1", False),
    (boxed("\\frac{10}{3}"), "3.33", False),
    (boxed("\\frac{x}{2}"), "\\frac{x}{2}", True),
    # --- radicals, pi, e, logs
    (boxed("2\\sqrt{2}"), "2\\sqrt{2}", True),
    (boxed("\\sqrt{8}"), "2\\sqrt{2}", True),
    (boxed("2\\sqrt2"), "\\sqrt 8", True),
    (boxed("\\sqrt{2}/2"), "\\frac{\\sqrt{2}}{2}", True),
    (boxed("\\frac{1}{\\sqrt{2}}"), "\\frac{\\sqrt{2}}{2}", True),
    (boxed("\\frac{\\sqrt{3}}{3}"), "\\frac{1}{\\sqrt3}", True),
    (boxed("\\sqrt{48}"), "4\\sqrt{3}", True),
    (boxed("3\\sqrt{2}"), "2\\sqrt{3}", False),
    (boxed("\\sqrt{3}"), "\\sqrt{2}", False),
    (boxed("\\sqrt[3]{27}"), "3", True),
    (boxed("\\sqrt[3]{-8}"), "-2", True),
    (boxed("\\sqrt[3]{2+\\sqrt5}+\\sqrt[3]{2-\\sqrt5}"), "1", True),
    (boxed("\\sqrt[3]{-8}"), "2", False),
    (boxed("1.414214"), "\\sqrt{2}", True),
    (boxed("1.41"), "\\sqrt{2}", False),
    (boxed("2\\pi"), "2\\pi", True),
    (boxed("\\frac{\\pi}{2}"), "\\frac{1}{2}\\pi", True),
    (boxed("\\pi/2"), "\\frac{\\pi}{2}", True),
    (boxed("\\frac{\\pi}{3}"), "\\frac{\\pi}{2}", False),
    (boxed("3.14"), "\\pi", False),
    (boxed("\\pi r^2"), "\\pi r^2", True),
    (boxed("4\\pi"), "4 \\pi", True),
    (boxed("e^{i\\pi}"), "-1", True),
    (boxed("\\ln 8"), "3\\ln 2", True),
    (boxed("\\ln 9"), "3\\ln 2", False),
    (boxed("\\frac{3+\\sqrt{5}}{2}"), "\\frac{3 + \\sqrt5}{2}", True),
    (boxed("\\frac{3-\\sqrt{5}}{2}"), "\\frac{3+\\sqrt{5}}{2}", False),
    (boxed("\\sqrt{-1}"), "i", True),
    # --- powers, scientific notation, factorials, binomials
    (boxed("2^{10}"), "1024", True),
    (boxed("2^{10}"), "1000", False),
    (boxed("10^{3}"), "1000", True),
    (boxed("1.5\\times10^{3}"), "1500", True),
    (boxed("1.5 \\times 10^3"), "1600", False),
    (boxed("5!"), "120", True),
    (boxed("\\dbinom{5}{2}"), "10", True),
    (boxed("\\binom{5}{2}"), "20", False),
    (boxed("2\\cdot 3"), "6", True),
    (boxed("3 \\times 4"), "12", True),
    (boxed("|-3|"), "3", True),
    # --- tuples and points (ordered)
    (boxed("(1,2)"), "(1,2)", True),
    (boxed("(1, 2)"), "(1,2)", True),
    (boxed("(2,1)"), "(1,2)", False),
    (boxed("(1,2,3)"), "(1,2)", False),
    (boxed("\\left(\\frac12, -3\\right)"), "(0.5,-3)", True),
    (boxed("(\\sqrt{8}, 1)"), "(2\\sqrt{2},1)", True),
    (boxed("1, 2"), "(1,2)", True),
    (boxed("(1,2)"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}", False),
    (boxed("(3, -\\frac{1}{2})"), "\\left( 3, -\\frac{1}{2} \\right)", True),
    (boxed("(3, \\frac{1}{2})"), "\\left( 3, -\\frac{1}{2} \\right)", False),
    # --- intervals (open and closed ends differ)
    (boxed("[2,5)"), "[2,5)", True),
    (boxed("[2, 5)"), "[2,5)", True),
    (boxed("[2,5]"), "[2,5)", False),
    (boxed("(2,5)"), "[2,5)", False),
    (boxed("x \\in [2,5)"), "[2,5)", True),
    (boxed("(-\\infty, 3]"), "(-\\infty,3]", True),
    (boxed("(-\\infty,3)"), "(-\\infty,3]", False),
    (boxed("(-\\infty,0)\\cup(1,\\infty)"), "(1,\\infty)\\cup(-\\infty,0)", True),
    (boxed("(-\\infty,0]\\cup(1,\\infty)"), "(-\\infty,0)\\cup(1,\\infty)", False),
    (boxed("(-∞, 0) ∪ (1, ∞)"), "(-\\infty,0)\\cup(1,\\infty)", True),
    (boxed("\\left[ \\frac{1}{2}, 3 \\right]"), "[0.5,3]", True),
    # --- sets and unordered lists of solutions
    (boxed("\\{1,2\\}"), "\\{2,1\\}", True),
    (boxed("\\{1,2,3\\}"), "\\{1,2\\}", False),
    (boxed("\\{1,2\\}"), "\\{1,3\\}", False),
    (boxed("\\{1,1,2\\}"), "\\{1,2\\}", True),
    (boxed("\\left\\{\\frac12, 2\\right\\}"), "\\{2, 0.5\\}", True),
    (boxed("1, 2"), "\\{2, 1\\}", True),
    (boxed("2, 1"), "1, 2", True),
    (boxed("3, -1"), "-1, 3", True),
    (boxed("3, 1"), "-1, 3", False),
    (boxed("\\{5\\}"), "5", True),
    (boxed("1 + \\sqrt{2}, 1 - \\sqrt{2}"), "1-\\sqrt2,1+\\sqrt2", True),
    (boxed("x = 1, y = 2"), "(1, 2)", True),
    # --- multiple choice
    (boxed("\\text{(C)}"), "\\text{(C)}", True),
    (boxed("C"), "\\text{(C)}", True),
    (boxed("(C)"), "\\text{(C)}", True),
    (boxed("\\textbf{(C)}"), "\\text{(C)}", True),
    (boxed("\\text{(C)} 12"), "\\text{(C)}", True),
    (boxed("(D)"), "\\text{(C)}", False),
    (boxed("12"), "\\text{(C)}", False),
    (boxed("\\text{C}"), "C", True),
    (boxed("B"), "(B)", True),
    (boxed("E"), "\\mathrm{(E)}", True),
    # --- polynomials and expressions (symbolic)
    (boxed("x^2+2x+1"), "x^2+2x+1", True),
    (boxed("(x+1)^2"), "x^2+2x+1", True),
    (boxed("x^2+2x+2"), "x^2+2x+1", False),
    (boxed("3+2x"), "2x+3", True),
    (boxed("(x-1)(x+1)"), "x^2-1", True),
    (boxed("ba^2"), "a^2b", True),
    (boxed("6x^3"), "6x^2", False),
    (boxed("\\frac{x+1}{x-1}"), "\\frac{x-1}{x+1}", False),
    (boxed("0.5x"), "\\frac{x}{2}", True),
    (boxed("\\frac{1}{2}x"), "\\frac{x}{2}", True),
    (boxed("x_1+x_2"), "x_2 + x_1", True),
    (boxed("\\sin^2 x + \\cos^2 x"), "1", True),
    (boxed("2\\sin x\\cos x"), "\\sin 2x", True),
    (boxed("2\\sin x \\cos x"), "\\sin(2x)", True),
    (boxed("\\frac{n(n+1)}{2}"), "\\frac{n^2+n}{2}", True),
    (boxed("n^2"), "\\frac{n^2+n}{2}", False),
    # --- equations
    (boxed("x=5"), "5", True),
    (boxed("5"), "x=5", True),
    (boxed("x = -2"), "-2", True),
    (boxed("y=2x+3"), "2x+3", True),
    (boxed("y = 3 + 2x"), "y=2x+3", True),
    (boxed("x+y=1"), "y+x=1", True),
    (boxed("x-y=1"), "x+y=1", False),
    (boxed("f(x) = x^2"), "x^2", True),
    (boxed("x = y"), "y = x", True),
    (boxed("x = 2y"), "y = 2x", False),
    (boxed("2x+3=y"), "y = 2x + 3", True),
    # --- degrees, percents, units
    (boxed("30^\\circ"), "30", True),
    (boxed("30^{\\circ}"), "30", True),
    (boxed("30"), "30^\\circ", True),
    (boxed("30°"), "30", True),
    (boxed("45^\\circ"), "30^\\circ", False),
    (boxed("\\frac{\\pi}{6}"), "30^\\circ", False),
    (boxed("25\\%"), "25", True),
    (boxed("25%"), "25\\%", True),
    (boxed("25"), "25\\%", True),
    (boxed("0.25"), "25\\%", True),
    (boxed("20"), "25\\%", False),
    (boxed("0.2"), "25\\%", False),
    (boxed("25\\%"), "0.25", True),
    (boxed("5\\text{ cm}"), "5", True),
    (boxed("5 \\text{cm}^2"), "5", True),
    (boxed("12\\mbox{ inches}"), "12", True),
    (boxed("5 cm"), "5", True),
    (boxed("6\\text{ cm}"), "5", False),
    (boxed("18 \\text{ dollars}"), "18", True),
    # --- text answers
    (boxed("\\text{Monday}"), "\\text{Monday}", True),
    (boxed("Monday"), "\\text{Monday}", True),
    (boxed("\\text{yes}"), "\\text{Yes}", True),
    (boxed("\\text{odd}"), "\\text{even}", False),
    # --- matrices and vectors
    (boxed("\\begin{pmatrix} 1 & 2 \\\\ 3 & 4 \\end{pmatrix}"), "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
     True),
    (boxed("\\begin{pmatrix} 1 & 2 \\\\ 3 & 5 \\end{pmatrix}"), "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
     False),
    (boxed("\\begin{pmatrix} 1 & 3 \\\\ 2 & 4 \\end{pmatrix}"), "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
     False),
    (boxed("\\begin{bmatrix} 1 & 2 \\\\ 3 & 4 \\end{bmatrix}"), "\\begin{pmatrix}1&2\\\\3&4\\end{pmatrix}",
     True),
    (boxed("\\begin{pmatrix} \\dfrac{1}{2} \\\\ -1 \\end{pmatrix}"),
     "\\begin{pmatrix}\\frac12\\\\-1\\end{pmatrix}", True),
    (boxed("\\begin{pmatrix} -1 \\\\ \\frac{1}{2} \\end{pmatrix}"),
     "\\begin{pmatrix}\\frac12\\\\-1\\end{pmatrix}", False),
    (boxed("\\begin{pmatrix} 2\\sqrt2 & 0 \\end{pmatrix}"), "\\begin{pmatrix}\\sqrt8&0\\end{pmatrix}", True),
    # --- complex numbers, infinity
    (boxed("3+4i"), "3+4i", True),
    (boxed("4i+3"), "3+4i", True),
    (boxed("3-4i"), "3+4i", False),
    (boxed("\\frac{1}{2}+\\frac{\\sqrt{3}}{2}i"), "\\frac{1+i\\sqrt{3}}{2}", True),
    (boxed("\\infty"), "\\infty", True),
    (boxed("-\\infty"), "\\infty", False),
    # --- pathological: must be False (or True when literally identical) and fast
    (boxed("10^{10^{10}}"), "5", False),
    (boxed("9^{9^{9^{9}}}"), "9", False),
    (boxed(NESTED), "2", False),
    (boxed("1000!"), "5", False),
    (boxed("\\frac{0}{0}"), "0", False),
    (boxed("9" * 5000), "9", False),
    (boxed("\\frac{1}{"), "1", False),
    (boxed("}}}{{{"), "1", False),
    (boxed("__import__('os').system('echo pwned')"), "0", False),
    (boxed("\\sqrt{\\sqrt{\\sqrt{\\sqrt{\\sqrt{2}}}}}"), "2^{1/32}", True),
    (boxed(""), "", False),
    # --- hedges: several alternatives for a single-valued gold are wrong, however they are written
    (boxed("\\text{(C) or (D)}"), "\\text{(C)}", False),
    (boxed("C, D"), "\\text{(C)}", False),
    (boxed("(B), (C)"), "(B)", False),
    (boxed("C or D"), "C", False),
    (boxed("CD"), "C", False),
    (boxed("(C)(D)"), "\\text{(C)}", False),
    (boxed("C \\text{ (or maybe D)}"), "\\text{(C)}", False),
    (boxed("2 \\text{ or } 3"), "2", False),
    (boxed("3\\text{ or }4"), "3", False),
    (boxed("2, 3"), "2", False),
    (boxed("x = 2 \\text{ or } x = 3"), "2", False),
    (boxed("\\pm 3"), "3", False),
    ("$\\boxed{2}$ or $\\boxed{3}$", "3", False),
    ("$\\boxed{2}$, $\\boxed{3}$", "2", False),
    # --- ... but a list gold accepts the same members, in any order unless it is a tuple
    ("$\\boxed{2}$ and $\\boxed{3}$", "2, 3", True),
    (boxed("x = 3 \\text{ or } x = 2"), "2, 3", True),
    (boxed("3, 2"), "x=2 \\text{ or } x=3", True),
    # --- \pm golds against their expanded members
    (boxed("1+\\sqrt{19}, 1-\\sqrt{19}"), "1 \\pm \\sqrt{19}", True),
    (boxed("1-\\sqrt{19}, 1+\\sqrt{19}"), "1 \\pm \\sqrt{19}", True),
    (boxed("\\{1-\\sqrt{19}, 1+\\sqrt{19}\\}"), "1 \\pm \\sqrt{19}", True),
    (boxed("1 \\pm \\sqrt{19}"), "1+\\sqrt{19},1-\\sqrt{19}", True),
    (boxed("-2, 1+\\sqrt5, 1-\\sqrt5"), "\\{1\\pm\\sqrt{5},-2\\}", True),
    (boxed("\\frac{-1 \\pm \\sqrt{5}}{2}"), "\\frac{-1+\\sqrt5}{2}, \\frac{-1-\\sqrt5}{2}", True),
    (boxed("1+\\sqrt{19}"), "1 \\pm \\sqrt{19}", False),
    (boxed("1+\\sqrt{19}, 1-\\sqrt{18}"), "1 \\pm \\sqrt{19}", False),
    (boxed("-2, 1+\\sqrt5"), "\\{1\\pm\\sqrt{5},-2\\}", False),
    # --- symbolic equality: not at points a response can know in advance
    (boxed("x^3+3x-6+\\sin(10000\\pi x)"), "x^3+3x-6", False),
    (boxed("x^3+3x-6+\\sin(1073741824\\pi x)"), "x^3+3x-6", False),
    (boxed("x^3+3x-6+(x-0.5377)(x-1.8339)(x+2.2588)"), "x^3+3x-6", False),  # the old fixed points
    (boxed("x^3+3x-6+(x-\\frac{5377}{10000})(x-\\frac{18339}{10000})"), "x^3+3x-6", False),
    (boxed("|x|"), "x", False),
    (boxed("e^{-100}"), "0", False),
    # equal wherever both are real: a branch cut says nothing
    (boxed("\\sqrt{x}\\sqrt{y}"), "\\sqrt{xy}", True),
    (boxed("\\ln(x^2)"), "2\\ln x", True),
    (boxed("\\frac{x^2-1}{x-1}"), "x+1", True),
    (boxed("\\frac{1}{x-1}-\\frac{1}{x+1}"), "\\frac{2}{x^2-1}", True),
    # --- the training set's golds (NuminaMath): labels, ratios, lists, several boxes, \! separators
    (boxed("(3,2)"), "(p,q)=(3,2)", True),
    (boxed("p=3, q=2"), "(p,q)=(3,2)", True),
    (boxed("q=2, p=3"), "(p,q)=(3,2)", True),
    (boxed("(2,3)"), "(p,q)=(3,2)", False),
    (boxed("p=2, q=3"), "(p,q)=(3,2)", False),
    (boxed("\\frac{\\sqrt{6}}{6}"), "\\frac{NO}{BO}=\\frac{1}{\\sqrt{6}}", True),
    (boxed("\\frac{NO}{BO}=\\frac{1}{\\sqrt{6}}"), "\\frac{\\sqrt6}{6}", True),
    (boxed("\\frac{\\sqrt{6}}{3}"), "\\frac{NO}{BO}=\\frac{1}{\\sqrt{6}}", False),
    (boxed("11:21"), "V_{1}:V_{2}=11:21", True),
    (boxed("\\frac{11}{21}"), "V_{1}:V_{2}=11:21", True),
    (boxed("21:11"), "V_{1}:V_{2}=11:21", False),
    (boxed("16, 21"), "21,16", True),
    (boxed("21"), "21,16", False),
    (boxed("21, 16, 5"), "21,16", False),
    (boxed("6, 8"), "6 \\text{ and } 8", True),
    (boxed("8 \\text{ and } 6"), "6 \\text{ and } 8", True),
    (boxed("6"), "6 \\text{ and } 8", False),
    (boxed("4, 5"), "AB=4,CD=5", True),
    (boxed("CD=5, AB=4"), "AB=4,CD=5", True),
    (boxed("5, 4"), "AB=4,CD=5", False),
    (boxed("1, 2"), "\\boxed{1}\\boxed{2}", True),
    (boxed("2"), "\\boxed{1}\\boxed{2}", False),
    (boxed("11111111100"), "11,\\!111,\\!111,\\!100", True),
    (boxed("11,111,111,100"), "11,\\!111,\\!111,\\!100", True),
    (boxed("11111111101"), "11,\\!111,\\!111,\\!100", False),
    (boxed("(C)"), "\\text{C}", True),
    (boxed("\\textbf{(C)}"), "\\text{C}", True),
    (boxed("(D)"), "\\text{C}", False),
    # --- Unicode roots of several digits, spaced function names, matrices in \left( \right)
    (boxed("3√13"), "3\\sqrt{13}", True),
    (boxed("3√13"), "9", False),  # not 3 * sqrt(1) * 3
    (boxed("\\cot \\, x"), "\\cot x", True),
    (boxed("\\cot \\, x"), "\\frac{\\cos x}{\\sin x}", True),
    (boxed("\\cot \\, x"), "\\tan x", False),
    (boxed("\\left( \\begin{matrix} 1 \\\\ 2 \\end{matrix} \\right)"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
     True),
    (boxed("\\left( \\begin{matrix} 2 \\\\ 1 \\end{matrix} \\right)"), "\\begin{pmatrix}1\\\\2\\end{pmatrix}",
     False),
]

# Where math-verify 0.9 (verify(parse("$gold$"), parse(response))) disagrees with our verdict, and why
# ours is the one we want. The agreement test fails on any disagreement missing here (and on stale ones).
MATH_VERIFY_DISAGREES = {
    ("The answer is 42.", "42"): "no \\boxed: our spec forbids the last-number fallback it uses",
    ("42", "42"): "same: an unboxed response is wrong",
    ("\\boxed{41} hmm, no: \\boxed{42}", "42"):
        "it joins every box into the set {41, 42}; the answer is the last box",
    ("\\fbox{42}", "42"): "it ignores \\fbox; our spec counts \\fbox as a final answer",
    ("\\boxed {42}", "42"): "it finds no box when a space precedes the brace, which TeX allows",
    (boxed("1\\,000"), "1000"): "\\, is a thin space used as a thousands separator",
    (boxed("18 dollars"), "18"): "a unit word after the number is dropped, like \\text{ dollars}",
    (boxed("e^{i\\pi}"), "-1"): "Euler's identity: exp(i pi) = -1 exactly",
    (boxed("\\sqrt{-1}"), "i"): "the principal square root of -1 is i",
    (boxed("(-∞, 0) ∪ (1, ∞)"), "(-\\infty,0)\\cup(1,\\infty)"):
        "Unicode ∞ and ∪ mean \\infty and \\cup",
    (boxed("\\text{(C)} 12"), "\\text{(C)}"): "a choice letter followed by its value still names choice C",
    (boxed("30°"), "30"): "Unicode degree sign, like ^\\circ",
    (boxed("\\frac{-1 \\pm \\sqrt{5}}{2}"), "\\frac{-1+\\sqrt5}{2}, \\frac{-1-\\sqrt5}{2}"):
        "\\pm is its two members",
    (boxed("\\sqrt{x}\\sqrt{y}"), "\\sqrt{xy}"):
        "equal wherever both are real; it compares over the complex numbers",
    (boxed("\\ln(x^2)"), "2\\ln x"): "equal on the real domain of ln x",
    (boxed("q=2, p=3"), "(p,q)=(3,2)"): "labelled members are matched by label",
    (boxed("5, 4"), "AB=4,CD=5"): "a labelled list is ordered: 5, 4 says AB=5",
    (boxed("3√13"), "3\\sqrt{13}"): "a Unicode root covers every digit after it",
    (boxed("C \\text{ (or maybe D)}"), "\\text{(C)}"):
        "a hedge between two choices; it reads the first letter",
    (boxed("\\sqrt[3]{-8}"), "-2"):
        "an odd root of a negative number is the real one, not sympy's principal root",
    (boxed("\\sqrt[3]{2+\\sqrt5}+\\sqrt[3]{2-\\sqrt5}"), "1"): "Cardano's real cube roots: 1",
}


@pytest.fixture(scope="module", autouse=True)
def warm_helper():
    is_equiv("\\sqrt{8}", "2\\sqrt{2}")  # start sympy's helper once, outside the timed tests


@pytest.mark.parametrize("response,gold,expected", CASES,
                         ids=[f"{k}:{c[1][:20]}" for k, c in enumerate(CASES)])
def test_hand_labelled_answer_is_not_misgraded(response, gold, expected):
    start = time.perf_counter()
    assert grade(response, gold) is expected
    assert time.perf_counter() - start < BOUND_S


def test_table_covers_every_answer_family_with_positives_and_negatives():
    assert len(CASES) >= 150
    assert sum(e for _, _, e in CASES) >= 60 and sum(not e for _, _, e in CASES) >= 60


def math_verify_verdict(response, gold, timeout_s):
    from math_verify import parse, verify
    try:
        return bool(verify(parse("$" + gold + "$", parsing_timeout=timeout_s),
                           parse(response, parsing_timeout=timeout_s), timeout_seconds=timeout_s))
    except Exception:  # it may raise on malformed input; that is a "not equal"
        return False


def test_agreement_with_math_verify_has_only_listed_disagreements():
    disagree = {}
    for response, gold, _ in CASES:
        ours = grade(response, gold)
        theirs = math_verify_verdict(response, gold, 1)
        if (theirs != ours) != ((response, gold) in MATH_VERIFY_DISAGREES):
            theirs = math_verify_verdict(response, gold, 10)  # its 1 s timeout can fire on a busy machine
        if theirs != ours:
            disagree[(response, gold)] = theirs
    agreement = 1 - len(disagree) / len(CASES)
    print(f"\nagreement with math-verify: {agreement:.1%} ({len(CASES) - len(disagree)}/{len(CASES)})")
    unlisted = {k: v for k, v in disagree.items() if k not in MATH_VERIFY_DISAGREES}
    stale = [k for k in MATH_VERIFY_DISAGREES if k not in disagree]
    assert not unlisted and not stale, (unlisted, stale)


# ----------------------------------------------------------------------------- extraction

def test_extract_boxed_takes_the_last_balanced_box_not_the_first():
    assert extract_boxed("\\boxed{1} then \\boxed{\\frac{a}{b}}") == "\\frac{a}{b}"
    assert extract_boxed("\\boxed{\\{1, 2\\}}") == "\\{1, 2\\}"  # escaped braces do not close the box
    assert extract_boxed("\\fbox{7}") == "7" and extract_boxed("so \\boxed 5$.") == "5"


def test_extract_boxed_returns_none_instead_of_guessing():
    for text in ["", "no box here 42", "\\boxed{1 + \\frac{2}{3}", "\\boxed", "\\boxed{", None, 42]:
        assert extract_boxed(text) is None


def test_gold_from_solution_reads_the_final_boxed_answer_of_a_math_solution():
    solution = "We get $x = \\boxed{2}$ first, so the answer is $\\boxed{\\dfrac{\\sqrt{3}}{2}}$."
    assert gold_from_solution(solution) == "\\dfrac{\\sqrt{3}}{2}"
    assert gold_from_solution("no boxed answer") is None and gold_from_solution("\\boxed{ }") is None


def test_gold_from_solution_keeps_every_box_of_a_multi_box_answer_but_not_earlier_boxes():
    assert gold_from_solution("so $\\boxed{1}$ and $\\boxed{2}$.") == "1, 2"
    assert gold_from_solution("the sides are \\boxed{3}\\boxed{4}") == "3, 4"
    assert gold_from_solution("\\boxed{1}, so twice that is \\boxed{2}") == "2"
    assert (extract_boxed("$\\boxed{2}$, $\\boxed{3}$") == "2, 3"
            and extract_boxed("\\boxed{3} \\boxed{3}") == "3")


def test_extract_boxed_is_bounded_on_a_megabyte_of_braces():
    for text in ["\\boxed{" + "{" * 1_000_000, "\\boxed{" + "{}" * 500_000,
                 "\\boxed{" + "\\{" * 500_000 + "}"]:
        start = time.perf_counter()
        assert extract_boxed(text) is None and grade(text, "1") is False
        assert time.perf_counter() - start < BOUND_S
    assert extract_boxed("\\boxed{" + "{}" * 1000 + "}") == "{}" * 1000  # a long balanced box is still read


# ----------------------------------------------------------------------------- robustness

PATHOLOGICAL = [
    boxed("10^{10^{10}}"), boxed("10^{10^{10^{10}}}"), boxed("2^{2^{2^{2^{2^{2}}}}}"), boxed("9" * 100000),
    boxed(NESTED), boxed("(" * 500 + ")" * 500), boxed("{" * 5000 + "}" * 5000),
    boxed("\\sqrt{" * 300 + "}" * 300),
    boxed("99999!"), boxed("(10^{999})!"), boxed("\\binom{10^{6}}{500000}"), boxed("x^{10^{10}}"),
    boxed("\\begin{pmatrix}" + "1&" * 2000 + "\\end{pmatrix}"), boxed(",".join(["1"] * 5000)),
    boxed("\\frac{\\frac{}{}}{"), boxed("\\left( \\right"), boxed("^^^__!!||"), boxed("\\sin"),
    boxed("\\frac"), boxed("1/0"), boxed("0^0"), boxed("\\infty - \\infty"), "\\boxed{" * 10000,
    "x" * 1_000_000 + "\\boxed{1}", boxed("\x00\x01\ud800"), boxed("é∑∫"), "",
]


@pytest.mark.parametrize("response", PATHOLOGICAL, ids=range(len(PATHOLOGICAL)))
def test_pathological_answers_return_false_quickly_instead_of_hanging_or_raising(response):
    for gold in ["5", "\\frac{1}{2}", "(1, 2)", "x^2+1"]:
        start = time.perf_counter()
        assert grade(response, gold) is False
        assert time.perf_counter() - start < BOUND_S


def test_a_huge_answer_identical_to_the_gold_is_still_correct():
    assert grade(boxed(NESTED), NESTED) is True  # compared as strings: too long for any parser


def test_pathological_golds_and_wrong_types_never_raise():
    for gold in [None, 5, "", "\\frac{", "10^{10^{10}}", NESTED, "9" * 100000]:
        assert grade(boxed("5"), gold) is (gold == 5)
    assert grade(None, "5") is False and is_equiv(None, None) is False


SOUP = st.lists(st.sampled_from(
    ["\\frac", "{", "}", "1", "2", "10", "9999", "x", "y", "e", "i", "^", "_", "\\sqrt", "(", ")", "[", "]",
     ",", "\\{", "\\}", "\\cup", "=", "+", "-", "\\cdot", "\\pi", "!", "|", "\\text{", "\\left(", "\\right)",
     "%", "\\begin{pmatrix}", "\\end{pmatrix}", "&", "\\\\", "^\\circ", "\\infty", ".", "\\sin", "\\ln", " ",
     "\\dfrac"]),
    max_size=25).map("".join)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), SOUP.map(boxed)),
       st.one_of(SOUP, st.sampled_from(["5", "\\frac{1}{2}", "(1,2)"])))
def test_grade_returns_a_bool_within_its_time_bound_on_any_text(response, gold):
    start = time.perf_counter()
    assert grade(response, gold) in (True, False)
    assert time.perf_counter() - start < BOUND_S


@settings(max_examples=300, deadline=None)
@given(st.one_of(st.text(max_size=80), SOUP))
def test_sympy_only_ever_evaluates_whitelisted_names(text):
    code = grader._to_code(text)  # sympy eval()s this string: nothing outside our vocabulary may reach it
    if code is not None:
        allowed = grader._NAMES | {"pi", "oo", "E", "I"}
        for name in re.findall(r"[A-Za-z_]\w*", code):
            assert name in allowed or re.fullmatch(r"_[A-Za-z][A-Za-z0-9_]*", name) and "__" not in name
        assert re.fullmatch(r"[\w+\-*/(),.]+", code)


def test_a_helper_that_overruns_its_budget_is_killed_and_replaced(monkeypatch):
    assert is_equiv("\\sqrt{8}", "2\\sqrt{2}")
    pid = grader._helpers[0].proc.pid
    slow = ["\\{" + ",".join(f"x+\\sqrt{{{k + shift}}}" for k in range(2, 32)) + "\\}" for shift in (0, 100)]
    monkeypatch.setattr(grader, "TIMEOUT_S", 0.05)  # 900 sympy comparisons of 30-element sets take far longer
    start = time.perf_counter()
    assert is_equiv(*slow) is False
    assert time.perf_counter() - start < 1.0
    assert grader._helpers[0].proc.pid != pid
    monkeypatch.undo()
    assert is_equiv("\\sqrt{18}", "3\\sqrt{2}") is True  # the replacement is fresh, not fed a stale answer


def test_a_killed_helper_is_replaced_by_the_warm_spare_without_a_sympy_import(monkeypatch):
    assert is_equiv("\\sqrt{8}", "2\\sqrt{2}")
    spare = grader._spare[0]
    assert spare.proc.poll() is None
    slow = ["\\{" + ",".join(f"x+\\sqrt{{{k + shift}}}" for k in range(2, 32)) + "\\}" for shift in (0, 100)]
    monkeypatch.setattr(grader, "TIMEOUT_S", 0.05)
    assert grader._verdicts([slow[0]], [slow[1]], 1) == ["timeout"]
    monkeypatch.undo()
    assert grader._helpers[0] is spare and len(grader._spare) == 1 and grader._spare[0] is not spare
    assert is_equiv("\\sqrt{12}", "2\\sqrt{3}") is True


def test_warm_up_starts_the_helpers_and_the_spare_that_grading_then_uses():
    with multiprocessing.get_context("fork").Pool(1) as pool:  # a fresh process with no helpers yet
        started, used = pool.apply(warm_up_then_grade)
    assert started == used and len(started) == 3  # two helpers and the spare, none started twice


def warm_up_then_grade():
    grader.warm_up(processes=2)
    started = [h.proc.pid for h in grader._helpers + grader._spare]
    responses, golds = [boxed("2\\sqrt2"), boxed("(x+1)^2")], ["\\sqrt8", "x^2+2x+1"]
    assert grader.grade_many(responses, golds, processes=2) == [True, True]
    return started, [h.proc.pid for h in grader._helpers + grader._spare]


def test_a_pair_that_runs_out_of_budget_is_a_timeout_and_the_helper_survives():
    assert is_equiv("\\sqrt{8}", "2\\sqrt{2}")
    pid = grader._helpers[0].proc.pid
    hard = ["\\{" + ",".join(f"\\sin(x+\\sqrt{{{k}}})^2" for k in range(2, 32)) + "\\}",
            "\\{" + ",".join(f"1-\\cos(\\sqrt{{{k}}}+x)^2" for k in range(31, 1, -1)) + "\\}"]
    start = time.perf_counter()
    assert grader._verdicts([hard[0]], [hard[1]], 1) == ["timeout"]
    assert time.perf_counter() - start < BOUND_S
    assert grader._helpers[0].proc.pid == pid  # its own alarm stopped it: nothing to restart


def next_random_number():  # by name, so the child draws from its own generator, not a pickled copy
    return grader._rng.random()


def test_random_points_differ_between_calls_and_between_forked_processes():
    import sympy
    x = sympy.Symbol("_x")
    assert grader._random_points([x]) != grader._random_points([x])
    with multiprocessing.get_context("fork").Pool(1) as pool:
        child = pool.apply(next_random_number)
    assert child != grader._rng.random()
    signs = [p[x] > 0 for p in grader._random_points([x])]
    third = grader.N_POINTS // 3
    # roots and logs are real somewhere, |x| is not x somewhere
    assert all(signs[:third]) and not signs[third]


def test_power_towers_are_refused_before_sympy_evaluates_them():
    assert is_equiv("\\sqrt{8}", "2\\sqrt{2}")
    pid = grader._helpers[0].proc.pid
    for bomb in ["10^{10^{10}}", "9^{9^{9^{9}}}", "x^{10^{10}}", "\\binom{10^{6}}{500000}",
                 "(10^{100})^{10^{3}}"]:
        assert is_equiv(bomb, "5") is False
    assert grader._helpers[0].proc.pid == pid  # refused by the guard, not killed at the deadline


def test_a_child_forked_while_another_thread_grades_does_not_deadlock():
    with grader._lock:  # as if another thread were inside a sympy call when the pool forks
        with multiprocessing.get_context("fork").Pool(1) as pool:
            assert pool.apply_async(grade, (boxed("2\\sqrt2"), "\\sqrt8")).get(timeout=20) is True


def test_an_interrupted_call_leaves_no_stale_answer_for_the_next_one(monkeypatch):
    assert is_equiv("\\sqrt{8}", "2\\sqrt{2}")

    def interrupted(*args):
        raise KeyboardInterrupt
    monkeypatch.setattr(grader.select, "select", interrupted)  # Ctrl-C while waiting for the helper
    with pytest.raises(KeyboardInterrupt):
        grader._symbolic([("\\sqrt{8}", "2\\sqrt{2}")], 1)
    monkeypatch.undo()
    assert is_equiv("\\sqrt{8}", "3\\sqrt{2}") is False  # not the late "equal" of the interrupted pair


def test_a_helper_that_died_between_requests_is_restarted():
    assert is_equiv("\\sqrt{8}", "2\\sqrt{2}")
    grader._helpers[0].proc.kill()
    grader._helpers[0].proc.wait()
    assert is_equiv("\\sqrt{12}", "2\\sqrt{3}") is True


def test_grading_works_from_worker_threads_where_signal_alarms_cannot():
    pairs = [(boxed("2\\sqrt2"), "\\sqrt8", True), (boxed("10^{10^{10}}"), "5", False),
             (boxed("(x+1)^2"), "x^2+2x+1", True), (boxed("(x+1)^2"), "x^2+1", False)] * 3
    got = [None] * len(pairs)

    def work(k):
        got[k] = grade(*pairs[k][:2])
    threads = [threading.Thread(target=work, args=(k,)) for k in range(len(pairs))]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert got == [e for _, _, e in pairs]


@pytest.mark.parametrize("method", ["fork", "spawn"])
def test_grading_works_inside_daemonic_pool_workers(method):
    # daemonic: may not start multiprocessing children
    with multiprocessing.get_context(method).Pool(2) as pool:
        got = pool.starmap(grade, [(boxed("2\\sqrt2"), "\\sqrt8"), (boxed("10^{10^{10}}"), "5"),
                                   (boxed("x+x"), "2x")])
    assert got == [True, False, True]


def test_verdicts_say_why_a_reward_was_zero(monkeypatch):
    pairs = {"correct": [(boxed("2\\sqrt2"), "\\sqrt8"), (boxed("42"), 42.0)],
             "no_box": [("The answer is 42.", "42"), ("\\boxed{42", "42"), ("\\boxed{}", "42"), (None, "42")],
             "unparseable": [(boxed("x \\geq 2"), "x \\ge 3"), (boxed("x > 2"), "(2, \\infty)"),
                             (boxed("10^{10^{10}}"), "5"), (boxed("5"), None),
                             (boxed("9" * 5000), "9")],
             "wrong": [(boxed("41"), "42"), (boxed("C, D"), "C"), (boxed("x^3+\\sin(10000\\pi x)"), "x^3")]}
    responses, golds, expected = zip(*[(r, g, v) for v, rg in pairs.items() for r, g in rg])
    got = verdicts(list(responses), list(golds), processes=2)
    assert got == list(expected), [(r[-30:] if r else r, g, v) for r, g, v in zip(responses, golds, got)]
    assert grade_many(list(responses), list(golds)) == [v == "correct" for v in got]
    slow = ["\\{" + ",".join(f"x+\\sqrt{{{k + shift}}}" for k in range(2, 32)) + "\\}" for shift in (0, 100)]
    monkeypatch.setattr(grader, "TIMEOUT_S", 0.05)
    assert verdicts([boxed(slow[0]), boxed("1")], [slow[1], "1"]) == ["timeout", "correct"]


def test_non_string_golds_are_graded_by_their_value():
    for gold in [5, 5.0, np.int64(5), np.float64(5.0), fractions.Fraction(5), decimal.Decimal("5.00")]:
        assert grade(boxed("5"), gold) is True and grade(boxed("5.0"), gold) is True, gold
        assert grade(boxed("6"), gold) is False, gold
    assert grade(boxed("\\frac{1}{10}"), 0.1) and grade(boxed("0.5"), fractions.Fraction(1, 2))
    assert grade(boxed("100000000000000000000"), 1e20)
    for gold in [True, float("nan"), float("inf"), [5], None]:
        assert grade(boxed("5"), gold) is False and grade(boxed("1"), gold) is False


def test_grade_many_with_two_processes_matches_the_table():
    responses, golds, expected = zip(*CASES)
    assert grade_many(list(responses), list(golds), processes=2) == list(expected)
    assert len(grader._helpers) >= 2
    with pytest.raises(ValueError, match="gold"):
        grade_many(["\\boxed{1}"], ["1", "2"])


def test_typical_answers_are_decided_without_sympy_in_well_under_a_millisecond():
    typical = [(boxed("42"), "42"), (boxed("41"), "42"), (boxed("\\dfrac{3}{4}"), "\\frac34"),
               (boxed("1,000"), "1000"), (boxed("(1, 2)"), "(1,2)"), (boxed("[2,5]"), "[2,5)"),
               (boxed("C"), "\\text{(C)}"), (boxed("2\\sqrt2"), "2\\sqrt{2}"), (boxed("30^\\circ"), "30"),
               (boxed("\\frac{1}{3}"), "0.333333"), (boxed("\\{1,2\\}"), "\\{2,1\\}"),
               (boxed("\\text{yes}"), "\\text{no}")]
    for response, gold in typical:  # a tuple verdict would mean "needs sympy"
        assert not isinstance(grader._prepare(extract_boxed(response), gold), tuple), gold
    start = time.perf_counter()
    for _ in range(50):
        for response, gold in typical:
            grade(response, gold)
    assert (time.perf_counter() - start) / (50 * len(typical)) < 1e-3
