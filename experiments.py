"""
The paper's experiments in miniature, on the built-in task, in one command: the alpha family (0, 0.05, 0.1,
0.2, 0.4; 3 seeds each), the baselines (generation cutoff at every budget, rejection-sampling SFT and DPO at
three learning rates each) and the ablation (GRPO's per-prompt std normalisation at alpha 0.2), every model
evaluated by the same protocol: 1,000 held-out problems, one sample each at T = 0.6, a right boxed answer
counted only with a valid derivation (toy.derivation_ok). Then one figure in the paper's form (accuracy
against mean tokens) and one table, with each of the paper's claims checked.

    python experiments.py                                   # 53 min to 1 h 38 min on 2 cores -> out/experiments/
    python experiments.py --alphas 0,0.2,0.4 --seeds 1      # a smaller family
    python experiments.py --report true                     # only the figure and the table, from what is done

Runs go --jobs at a time (one CPU thread each), each in its own folder with its log; a finished run is
reused, an interrupted one resumed, so the command can be run again until it is done. Writes
out/experiments/results.json, results.md and the figure (--figure, default assets/experiments.png).
"""
import json
import math
import os
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

import reward
from configurator import check, figure_formats, file_in_the_way, parse_args, print_config
from train import PRESETS

HERE = os.path.dirname(os.path.abspath(__file__))
MAX_NEW_TOKENS = PRESETS["toy"]["max_new_tokens"]  # the base model's evaluation, as the RL runs sample


@dataclass
class ExperimentConfig:
    alphas: str = "0,0.05,0.1,0.2,0.4"  # the alpha family
    iters: int = 60  # RL iterations per run (train.py's toy preset runs 30: alpha 0.2 is then mid-way)
    seeds: int = 3  # training seeds per alpha (seeds 1..n)
    ablation_seeds: int = 3  # --adv_norm group at alpha 0.2
    lrs: str = "2e-4,1e-4,4e-5"  # SFT and DPO learning rates: the paper's 2x, 1x, 0.4x RL's, as for the toy
    eval_problems: int = 1000  # held-out problems per model
    budgets: str = "20,30,40,50,60,70,80,100,120,150,200"  # the generation cutoff's token budgets
    jobs: int = 2  # runs at once (each one CPU thread)
    out_dir: str = "out/experiments"
    figure: str = "assets/experiments.png"
    report: bool = False  # only write the figure and the table from the runs that are done

    def __post_init__(self):  # refused here, not by each of the 26 runs in turn (or never: --jobs 0)
        # The figure is written last, after the runs (1.5 hours): what would stop it is refused now. Its type
        # is its extension (none: savefig would write NAME.png, not NAME); paths are the repository's.
        kinds = figure_formats()
        figure = os.path.join(HERE, self.figure)
        out_blocked, figure_blocked = (file_in_the_way(os.path.join(HERE, self.out_dir)),
                                       file_in_the_way(os.path.dirname(figure)))
        checks = [(k, getattr(self, k) >= 1, ">= 1") for k in ("iters", "seeds", "eval_problems", "jobs")]
        checks += [("ablation_seeds", self.ablation_seeds >= 0, ">= 0 (0 = no ablation)"),
                   ("out_dir", self.out_dir.strip() != "", "a folder"),
                   ("out_dir", out_blocked is None, f"a folder ({out_blocked} is a file)"),
                   ("figure", self.figure.strip() != "", "an image file"),
                   ("figure", os.path.splitext(self.figure)[1][1:].lower() in kinds,
                    f"an image file ending in .png, .pdf, .svg or another type matplotlib writes "
                    f"({', '.join(kinds)})"),
                   ("figure", not os.path.isdir(figure), "an image file, not a folder"),
                   ("figure", figure_blocked is None, f"a file in a folder ({figure_blocked} is a file)")]

        def each(key, valid):  # every comma-separated item of a list option
            try:
                return all(valid(x) for x in getattr(self, key).split(","))
            except ValueError:  # not a number, or an alpha out of range (reward.check_alpha)
                return False
        checks += [("alphas", each("alphas", lambda a: reward.check_alpha(float(a)) is None),
                    "alphas in [0, 1) (the paper's 0 to 0.4), comma-separated"),
                   ("lrs", each("lrs", lambda lr: 0 < float(lr) < math.inf), "learning rates > 0, comma-separated"),
                   ("budgets", each("budgets", lambda b: not b.strip() or 0 < int(b) <= MAX_NEW_TOKENS),
                    f"token counts from 1 to {MAX_NEW_TOKENS} (the base model's evaluation length), comma-separated")]
        check(self, checks)


def prompts_seen(iters):
    """The training prompts an RL run of `iters` iterations sees, which the baselines are trained on."""
    return iters * PRESETS["toy"]["prompts_per_iter"]


def jobs(cfg):
    """{name: (command, the file that says it is done, names it waits for)}."""
    py, out = sys.executable, cfg.out_dir
    common = ["--iters", str(cfg.iters), "--eval_problems", str(cfg.eval_problems), "--threads", "1"]
    todo = {"base": ([py, "eval.py", "--model", "toy-model", "--benchmark", "toy",
                      "--limit", str(cfg.eval_problems), "--temperature", "0.6",
                      "--max_new_tokens", str(MAX_NEW_TOKENS), "--seed", "0", "--budgets", cfg.budgets,
                      "--progress", "false", "--out", f"{out}/base/eval_final.json"],
                     f"{out}/base/eval_final.json", [])}
    # seed by seed, so that a partial run has every setting once before any has its second seed; the
    # baselines' fine-tunes (1-3 minutes each) last, longest first, to even out the two cores' last runs
    seen = ["--prompts", str(prompts_seen(cfg.iters))]
    for seed in range(1, max(cfg.seeds, cfg.ablation_seeds) + 1):
        for a in cfg.alphas.split(",") if seed <= cfg.seeds else []:
            d = f"{out}/rl-alpha{a}-seed{seed}"
            todo[f"rl-alpha{a}-seed{seed}"] = ([py, "train.py", "--preset", "toy", "--alpha", a,
                                                "--seed", str(seed), "--eval_initial", "false",
                                                "--out_dir", d, "--resume", *common],
                                               f"{d}/eval_final.json", [])
        if seed <= cfg.ablation_seeds:
            d = f"{out}/grpo-alpha0.2-seed{seed}"
            todo[f"grpo-alpha0.2-seed{seed}"] = ([py, "train.py", "--preset", "toy", "--alpha", "0.2",
                                                  "--seed", str(seed), "--adv_norm", "group",
                                                  "--eval_initial", "false", "--out_dir", d, "--resume",
                                                  *common],
                                                 f"{d}/eval_final.json", [])
        if seed == 1:
            todo["samples"] = ([py, "baselines.py", "sample", "--out_dir", f"{out}/baselines", *seen],
                               f"{out}/baselines/samples.jsonl", [])
    for mode in ("dpo", "sft"):
        for lr in cfg.lrs.split(","):
            d = f"{out}/baselines/{mode}-lr{float(lr):g}"
            todo[f"{mode}-lr{float(lr):g}"] = ([py, "baselines.py", mode, "--lr", lr,
                                                "--out_dir", f"{out}/baselines", *seen,
                                                "--eval_problems", str(cfg.eval_problems)],
                                               f"{d}/eval_final.json", ["samples"])
    return todo


def done(path, iters):
    """A run is done when its result is on disk: an evaluation's metrics (eval.py writes the file first
    with none) of a model trained on `iters` iterations' prompts, or the baselines' samples of them."""
    if path.endswith(".json"):
        return metrics(path, iters) is not None
    try:
        with open(os.path.join(HERE, path)) as f:  # baselines.py's samples: were they drawn for these prompts?
            return json.loads(f.readline())["sampling"]["prompts"] == prompts_seen(iters)
    except (OSError, ValueError, KeyError):
        return False


def run_all(cfg):
    """Run what is not done, cfg.jobs at a time, in the order of jobs() (every setting's first seed first)."""
    todo = {k: v for k, v in jobs(cfg).items() if not done(v[1], cfg.iters)}
    os.makedirs(os.path.join(HERE, cfg.out_dir, "logs"), exist_ok=True)
    env = dict(os.environ, OMP_NUM_THREADS="1", PYTHONUNBUFFERED="1")
    running, t0, failed = {}, time.time(), []
    print(f"{len(jobs(cfg)) - len(todo)} runs done already, {len(todo)} to run, {cfg.jobs} at a time")
    while todo or running:
        for name, (proc, start, log) in list(running.items()):
            if proc.poll() is not None:
                log.close()
                del running[name]
                ok = proc.returncode == 0
                failed += [] if ok else [name]
                print(f"[{time.time() - t0:6.0f}s] {'done' if ok else 'FAILED'} {name} "
                      f"in {time.time() - start:.0f}s"
                      + ("" if ok else f" (see {cfg.out_dir}/logs/{name}.log)"), flush=True)
        for k in [k for k, (_, _, deps) in todo.items() if any(d in failed for d in deps)]:
            failed.append(k)  # what it needs failed: skipped, and reported as failed
            print(f"[{time.time() - t0:6.0f}s] SKIPPED {k}: {', '.join(todo.pop(k)[2])} failed", flush=True)
        ready = [k for k, (_, _, deps) in todo.items() if not any(d in todo or d in running for d in deps)]
        while ready and len(running) < cfg.jobs:
            name = ready.pop(0)
            cmd = todo.pop(name)[0]
            log = open(os.path.join(HERE, cfg.out_dir, "logs", f"{name}.log"), "a")
            running[name] = (subprocess.Popen(cmd, cwd=HERE, env=env, stdout=log, stderr=subprocess.STDOUT),
                             time.time(), log)
            print(f"[{time.time() - t0:6.0f}s] start {name}", flush=True)
        time.sleep(1)
    print(f"all runs ended in {time.time() - t0:.0f}s" + (f"; failed: {', '.join(failed)}" if failed else ""))
    return not failed


# -----------------------------------------------------------------------------
# the report

def metrics(path, iters=None):
    """eval.py's metrics of the toy benchmark in a results file, or None if the run is not done. The final
    evaluation of a train.py run counts only if its final model has `iters` iterations (a shorter run is
    extended by --resume, which moves its evaluation into the kept iter_N/), and a baselines.py model's
    only if it was trained on the prompts of `iters` iterations (its config.json says how many)."""
    try:
        run = os.path.join(HERE, os.path.dirname(path))
        state, config = os.path.join(run, "final", "state.json"), os.path.join(run, "config.json")
        if iters is not None and os.path.exists(state):  # train.py's
            with open(state) as f:
                if json.load(f)["iter"] != iters:
                    return None
        elif iters is not None and os.path.exists(config):  # baselines.py's
            with open(config) as f:
                if json.load(f)["prompts"] != prompts_seen(iters):
                    return None
        with open(os.path.join(HERE, path)) as f:
            return json.load(f)["benchmarks"]["toy"]
    except (OSError, ValueError, KeyError):
        return None


def spread(xs):
    return (max(xs) - min(xs)) / 2 if len(xs) > 1 else 0.0


def collect(cfg):
    """Every evaluated model's metrics, grouped: base, the alpha family by alpha, the ablation, SFT, DPO."""
    out = cfg.out_dir
    res = dict(base=metrics(f"{out}/base/eval_final.json"), alphas={}, grpo=[], sft={}, dpo={})
    for a in cfg.alphas.split(","):
        runs = [m for seed in range(1, cfg.seeds + 1)
                if (m := metrics(f"{out}/rl-alpha{a}-seed{seed}/eval_final.json", cfg.iters))]
        if runs:
            res["alphas"][a] = runs
    res["grpo"] = [m for seed in range(1, cfg.ablation_seeds + 1)
                   if (m := metrics(f"{out}/grpo-alpha0.2-seed{seed}/eval_final.json", cfg.iters))]
    for mode in ("sft", "dpo"):
        for lr in cfg.lrs.split(","):
            if m := metrics(f"{out}/baselines/{mode}-lr{float(lr):g}/eval_final.json", cfg.iters):
                res[mode][f"{float(lr):g}"] = m
    return res


def summary(runs):
    """Mean and half-range (the seeds' spread) of accuracy and tokens over runs, and per difficulty."""
    acc, tok = [r["accuracy"] for r in runs], [r["mean_tokens"] for r in runs]
    by = {}
    for k in sorted(runs[0].get("by_difficulty", {}), key=int):
        by[k] = dict(accuracy=statistics.mean(r["by_difficulty"][k]["accuracy"] for r in runs),
                     tokens=statistics.mean(r["by_difficulty"][k]["mean_tokens"] for r in runs))
    return dict(accuracy=statistics.mean(acc), accuracy_spread=spread(acc), tokens=statistics.mean(tok),
                tokens_spread=spread(tok), n=len(runs), by_difficulty=by)


def frontier_accuracy(points, tokens):
    """The alpha frontier's accuracy at `tokens`: linear between the (mean tokens, mean accuracy) points,
    None outside their range (no extrapolation)."""
    pts = sorted(points)
    for (t0, a0), (t1, a1) in zip(pts, pts[1:]):
        if t0 <= tokens <= t1:
            return a0 + (a1 - a0) * (tokens - t0) / (t1 - t0) if t1 > t0 else max(a0, a1)
    return None


def beyond_spread(hi, lo):
    """Is summary `hi` more accurate than `lo` by more than the seeds' spread? (One seed has no spread.)"""
    noise = max(hi["accuracy_spread"], lo["accuracy_spread"])
    n = min(hi["n"], lo["n"])
    return hi["accuracy"] - lo["accuracy"] > noise and n > 1, f"spread {noise:.1%}, {n} seed(s)"


def claims(res, alphas):
    """The paper's claims, each checked on these numbers: (claim, holds, the numbers)."""
    base, fam = res["base"], {a: summary(r) for a, r in res["alphas"].items()}
    out = []
    if len(fam) == len(alphas) and base:
        toks = [fam[a]["tokens"] for a in alphas]
        out.append(("mean tokens fall monotonically with alpha", all(x >= y for x, y in zip(toks, toks[1:])),
                    " > ".join(f"{t:.1f}" for t in toks)))
        distinct = 1 + sum(abs(x - y) >= 0.05 * max(x, y) for x, y in zip(toks, toks[1:]))
        out.append(("at least four of the five alphas are distinct points (>= 5% apart in tokens)",
                    distinct >= 4, f"{distinct} distinct"))
        a0, a4 = fam[alphas[0]], fam[alphas[-1]]
        holds, noise = beyond_spread(a0, a4)
        out.append((f"accuracy at alpha {alphas[-1]} is below alpha {alphas[0]} "
                    "by more than the seeds' spread", holds,
                    f"{a0['accuracy']:.1%} - {a4['accuracy']:.1%} = "
                    f"{a0['accuracy'] - a4['accuracy']:.1%}, {noise}"))
        if "0.2" in fam:
            claim, cut = ("alpha 0.2 cuts >= 40% of the tokens at >= 96% of the base accuracy",
                          1 - fam["0.2"]["tokens"] / base["mean_tokens"])
            if base["accuracy"] > 0:
                kept = fam["0.2"]["accuracy"] / base["accuracy"]
                out.append((claim, cut >= 0.4 and kept >= 0.96,
                            f"{cut:.0%} of the tokens cut, {kept:.1%} of the accuracy kept"))
            else:  # no accuracy to keep a share of (a smoke run on a few problems): not testable, not held
                out.append((claim, False, f"{cut:.0%} of the tokens cut; not testable: the base model's "
                            "accuracy is 0%"))
        levels = sorted(base.get("by_difficulty", {}), key=int)
        partial = [a for a in alphas[1:] if levels and all(
            0.02 < 1 - fam[a]["by_difficulty"][k]["tokens"] / base["by_difficulty"][k]["mean_tokens"]
            for k in levels)]
        for a in partial:
            easy, hard = (1 - fam[a]["by_difficulty"][k]["tokens"] / base["by_difficulty"][k]["mean_tokens"]
                          for k in (levels[0], levels[-1]))
            out.append((f"alpha {a}: the easiest problems lose a larger fraction of their tokens "
                        "than the hardest",
                        easy > hard, f"k={levels[0]} {-easy:+.0%}, k={levels[-1]} {-hard:+.0%}"))
    if len(fam) >= 2:  # RL against each baseline at equal tokens, where the frontier reaches its tokens
        points = [(s["tokens"], s["accuracy"]) for s in fam.values()]
        others = [(f"{mode.upper()} lr {lr}", m["mean_tokens"], m["accuracy"])
                  for mode in ("sft", "dpo") for lr, m in res[mode].items()]
        if base and "cutoff" in base:
            c = base["cutoff"]
            others += [(f"cutoff {b}", t, a) for b, t, a in zip(c["budgets"], c["mean_tokens"], c["accuracy"])
                       if t < base["mean_tokens"]]  # a budget that cuts nothing is the base model
        for name, tok, acc in others:
            rl = frontier_accuracy(points, tok)
            if rl is not None:
                out.append((f"RL beats {name} at equal tokens", rl > acc,
                            f"{tok:.1f} tokens: RL {rl:.1%}, {name} {acc:.1%}"))
    if res["grpo"] and "0.2" in fam:
        g, d = summary(res["grpo"]), fam["0.2"]
        holds, noise = beyond_spread(d, g)
        out.append(("GRPO's per-prompt std normalisation loses accuracy at alpha 0.2 "
                    "(by more than the seeds' spread)", holds,
                    f"{d['accuracy']:.1%} whitened, {g['accuracy']:.1%} per-prompt std, {noise}"))
    return out


def table(res, alphas):
    base = res["base"]
    rel = lambda t: f" ({t / base['mean_tokens'] - 1:+.0%})" if base else ""  # noqa: E731
    levels = sorted(base.get("by_difficulty", {}), key=int) if base else []
    head = "| model | accuracy | mean tokens | " + " | ".join(f"k={k}" for k in levels) + " |"
    lines = [head, "|---" * (3 + len(levels)) + "|"]

    def row(name, s, n=None):
        spread = lambda v, sp: f"{v:.1%} ± {sp:.1%}" if n and n > 1 else f"{v:.1%}"  # noqa: E731
        tok = f"{s['tokens']:.1f} ± {s['tokens_spread']:.1f}" if n and n > 1 else f"{s['tokens']:.1f}"
        by = ([f"{s['by_difficulty'][k]['tokens']:.0f}" for k in levels] if s.get("by_difficulty")
              else [""] * len(levels))
        lines.append(f"| {name} | {spread(s['accuracy'], s['accuracy_spread'])} | {tok}{rel(s['tokens'])} | "
                     + " | ".join(by) + " |")
    if base:
        row("base model", dict(accuracy=base["accuracy"], accuracy_spread=0, tokens=base["mean_tokens"],
                               tokens_spread=0, by_difficulty={k: dict(tokens=v["mean_tokens"])
                                                               for k, v in base["by_difficulty"].items()}))
    for a in alphas:
        if a in res["alphas"]:
            s = summary(res["alphas"][a])
            row(f"RL, alpha {a} ({s['n']} seed{'s' * (s['n'] > 1)})", s, s["n"])
    if res["grpo"]:
        s = summary(res["grpo"])
        row(f"RL, alpha 0.2, GRPO per-prompt std ({s['n']} seed{'s' * (s['n'] > 1)})", s, s["n"])
    for mode in ("sft", "dpo"):
        for lr, m in res[mode].items():
            row(f"{mode.upper()}, lr {lr}", summary([m]))
    if base and "cutoff" in base:
        c = base["cutoff"]
        lines.append("")
        lines.append("| generation cutoff (base model) | " + " | ".join(f"{b}" for b in c["budgets"]) + " |")
        lines.append("|---" * (1 + len(c["budgets"])) + "|")
        lines.append("| accuracy | " + " | ".join(f"{a:.1%}" for a in c["accuracy"]) + " |")
        lines.append("| mean tokens | " + " | ".join(f"{t:.1f}" for t in c["mean_tokens"]) + " |")
    return "\n".join(lines)


def difficulty_table(res, alphas):
    """Per difficulty: mean tokens (their change from the base model) and accuracy, for the base model, the
    alpha family (seed means) and the ablation: where the tokens were cut, and where accuracy was lost."""
    base = res["base"]
    if not base or not base.get("by_difficulty"):
        return ""
    levels = sorted(base["by_difficulty"], key=int)
    lines = ["| per difficulty: tokens (vs base), accuracy | " + " | ".join(f"k={k}" for k in levels) + " |",
             "|---" * (1 + len(levels)) + "|"]
    rows = [("base model", {k: dict(tokens=v["mean_tokens"], accuracy=v["accuracy"])
                            for k, v in base["by_difficulty"].items()})]
    rows += [(f"RL, alpha {a}", summary(res["alphas"][a])["by_difficulty"]) for a in alphas if a in res["alphas"]]
    if res["grpo"]:
        rows.append(("RL, alpha 0.2, GRPO per-prompt std", summary(res["grpo"])["by_difficulty"]))
    for name, by in rows:
        if any(k not in by for k in levels):  # a run without the breakdown
            continue
        cells = [f"{by[k]['tokens']:.0f} ({by[k]['tokens'] / base['by_difficulty'][k]['mean_tokens'] - 1:+.0%}), "
                 f"{by[k]['accuracy']:.1%}" for k in levels]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def figure(res, alphas, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(6.4, 4.4))
    base = res["base"]
    if base and "cutoff" in base:
        c = base["cutoff"]
        ax.plot(c["mean_tokens"], [100 * a for a in c["accuracy"]], "--", color="gray", lw=1.2,
                label="generation cutoff (base)")
    if base:
        ax.scatter(base["mean_tokens"], 100 * base["accuracy"], marker="*", s=140, color="black",
                   label="base model", zorder=3)
    fam = [(a, summary(res["alphas"][a])) for a in alphas if a in res["alphas"]]
    if fam:
        ax.errorbar([s["tokens"] for _, s in fam], [100 * s["accuracy"] for _, s in fam],
                    xerr=[s["tokens_spread"] for _, s in fam],
                    yerr=[100 * s["accuracy_spread"] for _, s in fam],
                    fmt="o-", color="C0", capsize=3, label="RL, alpha family (mean, seed half-range)",
                    zorder=3)
        for i, (a, s) in enumerate(fam):  # labels below and above by turns: neighbours may be close
            ax.annotate(f"α={a}", (s["tokens"], 100 * s["accuracy"]), fontsize=8,
                        xytext=(4, -12 if i % 2 == 0 else 6), textcoords="offset points")
    if res["grpo"]:
        s = summary(res["grpo"])
        ax.errorbar(s["tokens"], 100 * s["accuracy"], xerr=s["tokens_spread"],
                    yerr=100 * s["accuracy_spread"],
                    fmt="x", color="C3", ms=9, capsize=3, label="RL α=0.2, GRPO per-prompt std", zorder=3)
    for mode, marker, color in (("sft", "s", "C2"), ("dpo", "D", "C1")):
        for i, (lr, m) in enumerate(res[mode].items()):
            ax.scatter(m["mean_tokens"], 100 * m["accuracy"], marker=marker, color=color,
                       label=(f"{mode.upper()} (lr {', '.join(res[mode])})" if lr == next(iter(res[mode]))
                              else None))
            ax.annotate(f"lr {lr}", (m["mean_tokens"], 100 * m["accuracy"]), fontsize=6, color=color,
                        xytext=(8, 4 - 8 * i), textcoords="offset points",  # stacked: the points may touch
                        arrowprops=dict(arrowstyle="-", color=color, lw=0.5))
    ax.set_xlabel("mean tokens per response (held-out, T = 0.6)")
    ax.set_ylabel("accuracy (%), derivation checked")
    ax.set_title("The built-in task: accuracy against tokens")
    ax.grid(alpha=0.3)
    ax.margins(x=0.07)  # room for the labels of the outermost points
    ax.legend(fontsize=7, loc="lower right")
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.join(HERE, path)) or ".", exist_ok=True)
    fig.savefig(os.path.join(HERE, path), dpi=130)


def report(cfg):
    alphas = cfg.alphas.split(",")
    res = collect(cfg)
    # No trained model was found: after runs that all failed, main says so; with --report (a wrong --out_dir
    # or --iters), refused before the figure is overwritten (the base model alone is no figure)
    if not (res["alphas"] or res["grpo"] or res["sft"] or res["dpo"]):
        if not cfg.report:
            return
        raise SystemExit(f"error: {cfg.out_dir} holds no finished training run of {cfg.iters} iterations "
                         "(rl-alpha*-seed*/eval_final.json and the like, as experiments.py writes them), so "
                         "nothing was written: check --out_dir and --iters, or run experiments.py without "
                         "--report first")
    checked = claims(res, alphas)
    md = table(res, alphas) + "\n\n" + difficulty_table(res, alphas) + "\n\n" + "\n".join(
        f"- {'holds' if ok else 'MISSED'}: {c} ({nums})"
                                                  for c, ok, nums in checked)
    with open(os.path.join(HERE, cfg.out_dir, "results.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(HERE, cfg.out_dir, "results.json"), "w") as f:
        json.dump(dict(results=res, claims=[dict(claim=c, holds=ok, numbers=n) for c, ok, n in checked]), f,
                  indent=1)
    figure(res, alphas, cfg.figure)
    print(md)
    print(f"wrote {cfg.out_dir}/results.md, {cfg.out_dir}/results.json and {cfg.figure}")


def main(argv):
    cfg = parse_args(ExperimentConfig, argv)
    print_config(cfg)
    ok = cfg.report or run_all(cfg)
    report(cfg)
    if not ok:
        raise SystemExit("error: some runs failed (their logs are in the out_dir's logs/): run the same command "
                         "again to retry them")


if __name__ == "__main__":
    main(sys.argv[1:])
