"""
Evaluate a model as in the paper: chat-template prompt, temperature 0.6, top_p 1.0, 32,768 new tokens,
k samples per problem (GSM8K 1, MATH500 3, AIME 2024 10); accuracy = mean over problems of the mean
correctness of its k samples (a truncated response is wrong), tokens = mean generated tokens per sample.

    python eval.py --model deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B --out results/base.json     # one GPU
    torchrun --nproc_per_node=8 eval.py --model out/r1-1.5b/final --out results/alpha0.2.json    # 8 GPUs
    python eval.py --model toy-model --benchmark toy --limit 200 --seed 42 --max_new_tokens 200 \\
        --out results/toy.json                                       # CPU, seconds: the toy table's base row
    python eval.py --benchmark problems.jsonl --k 4 --model DIR    # a local file with problem/answer fields
    python eval.py --plot results/base.json results/alpha0.2.json --out pareto.png
    python eval.py --curves out/a0 out/a0.2 --out curves.png     # train.py runs: length and accuracy
                                                                 # per iteration

Writes --out (metrics per benchmark, JSON), the per-sample records beside it (NAME.samples.jsonl) and a
markdown table on stdout. Rerunning with the same --out skips the problems already recorded.
"""
import glob
import json
import math
import os
import sys
import tempfile
import time
from collections import defaultdict
from dataclasses import asdict, dataclass

import torch

import toy
from configurator import check, check_device, figure_formats
from data import BENCHMARKS, chat_prompt, encode, load_rows
from distributed import all_max, barrier, finish, init_distributed
import grader
from grader import extract_boxed, grade_many, is_equiv
from model import KVCache
from sample import generate, gpu_memory, kv_budget

RESUME_KEYS = ("model", "k", "temperature", "top_p", "max_new_tokens", "seed")  # must match to resume


@dataclass
class EvalConfig:
    model: str = "toy-model"  # local Hugging Face folder or hub id
    benchmark: str = "gsm8k,math500,aime24"  # comma-separated: those names, toy, an HF id, a .jsonl/.parquet
    k: int = 0  # samples per problem (alias --n); 0 = the paper's: gsm8k 1, math500 3, aime24 10, others 1
    #             (by name: a local aime24.jsonl gets 10 too)
    temperature: float = 0.6  # 0 = greedy
    top_p: float = 1.0
    max_new_tokens: int = 32768  # capped at the model's context length minus the longest prompt
    seed: int = 0  # sample j of problem i draws from (seed, i * k + j): results do not depend on the ranks
    limit: int = 0  # first problems of each benchmark only; 0 = all
    out: str = "results.json"  # metrics; per-sample records go to NAME.samples.jsonl beside it
    chunk: int = 512  # samples per generate call; records are appended to the JSONL after each
    slots: int = 0  # rows decoded at once; 0 = all samples of a chunk, at most 256
    kv_memory: float = 0.9  # GPU: fraction of its memory for the weights and the KV cache
    #                         (the rest: activations)
    cuda_graph: bool = False  # replay the decode step as CUDA graphs (sample.generate); CUDA only
    grader_processes: int = 0  # worker processes for grading; 0 = in this process
    device: str = ""  # "" = cuda if available, else cpu
    progress: bool = True  # progress bars on stderr (rank 0, when it is a terminal)
    plot: str = ""  # comma-separated result JSON files:
    #                 plot accuracy vs tokens to --out instead of evaluating
    curves: str = ""  # comma-separated train.py out_dirs:
    #                   plot their length and accuracy per iteration to --out
    budgets: str = ""  # comma-separated token budgets:
    #                    the generation-cutoff curve from the same samples (cutoff)

    def __post_init__(self):  # refused before anything is loaded or written
        checks = [("temperature", 0 <= self.temperature < math.inf, ">= 0 (0 = greedy)"),
                  ("top_p", 0 < self.top_p <= 1, "in (0, 1]"),
                  ("max_new_tokens", self.max_new_tokens >= 1, ">= 1"),
                  ("k", self.k >= 0, ">= 0 (0 = the paper's per benchmark)"),
                  ("chunk", self.chunk >= 1, ">= 1"),
                  ("kv_memory", 0 < self.kv_memory < 1, "a fraction of the GPU's memory, in (0, 1)")]
        checks += [(key, getattr(self, key) >= 0, ">= 0") for key in ("limit", "slots", "grader_processes")]
        check(self, checks)
        try:  # past max_new_tokens a budget would count responses cut there as never finishing: not exact
            assert all(0 < int(b) <= self.max_new_tokens for b in self.budgets.split(",") if b.strip())
        except (ValueError, AssertionError):
            raise ValueError("--budgets must be token counts from 1 to --max_new_tokens, comma-separated, "
                             f"got {self.budgets!r}")
        if not (self.plot or self.curves or self.benchmark.strip(" ,")):
            raise ValueError("--benchmark is empty: name one or more "
                             "(gsm8k, math500, aime24, toy, a hub id, a file)")
        benchmark_specs(self.benchmark)  # two benchmarks of one name are refused
        check_device(self.device)


def benchmark_specs(benchmark):
    """{name: spec} of a comma-separated --benchmark; a file is named by its file name less the extension.
    Results and samples are keyed by name: two specs of one name would silently keep only the last."""
    specs = {}
    for spec in (s.strip() for s in benchmark.split(",") if s.strip()):
        name = os.path.splitext(os.path.basename(spec))[0] if spec.endswith((".jsonl", ".json", ".parquet")) \
            else spec
        if name in specs:
            raise ValueError(f"--benchmark names two benchmarks {name!r} ({specs[name]} and {spec}): "
                             "results are keyed by name; rename one of the files")
        specs[name] = spec
    return specs


def majority_correct(samples):
    """Vote over the extracted answers of the finished samples (equal answers by grader.is_equiv); the most
    voted answer's correctness, ties going to the answer seen first. No vote at all is wrong."""
    votes = []  # [representative sample, count]
    for s in samples:
        if not s["finished"] or s["answer"] is None:
            continue
        for v in votes:
            if s["answer"] == v[0]["answer"] or is_equiv(s["answer"], v[0]["answer"]):
                v[1] += 1
                break
        else:
            votes.append([s, 1])
    return bool(votes) and bool(max(votes, key=lambda v: v[1])[0]["correct"])


def summarize(problems):
    """problems: one list of sample records per problem. Accuracy is per problem first, then averaged."""
    samples = [s for p in problems for s in p]
    correct = [[s["correct"] and s["finished"] for s in p] for p in problems]  # truncated = wrong
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    return {"accuracy": mean([mean(c) for c in correct]),
            "mean_tokens": mean([s["tokens"] for s in samples]),
            "truncated_frac": mean([not s["finished"] for s in samples]),
            "n_problems": len(problems), "n_samples": len(samples),
            "answer_accuracy": mean([mean([s.get("answer_correct", s["correct"]) and s["finished"]
                                           for s in p])
                                     for p in problems]),  # the boxed answer alone; differs on toy only
            "pass_at_k": mean([any(c) for c in correct]),
            "majority_accuracy": mean([majority_correct(p) for p in problems])}


def cutoff(problems, budgets, max_new_tokens):
    """The generation-cutoff baseline from one set of samples: at token budget B a sample counts if it ended
    (EOS) within B tokens and is correct, and spends min(its length, B) tokens. Sampling is counter-based,
    so a run with max_new_tokens B would have produced exactly these samples cut at B: the curve is exact.
    area: the accuracy integrated over every budget 1..max_new_tokens, over max_new_tokens (in [0, 1])."""
    mean = lambda xs: sum(xs) / max(len(xs), 1)  # noqa: E731
    ok = [[s["correct"] and s["finished"] for s in p] for p in problems]
    return {"budgets": budgets,
            "accuracy": [mean([mean([c and s["tokens"] <= B for c, s in zip(cp, p)])
                               for cp, p in zip(ok, problems)])
                         for B in budgets],
            "mean_tokens": [mean([min(s["tokens"], B) for p in problems for s in p]) for B in budgets],
            "area": mean([mean([c * max(0, max_new_tokens - s["tokens"] + 1) / max_new_tokens
                                for c, s in zip(cp, p)]) for cp, p in zip(ok, problems)])}


def metrics(records, rows, k, budgets=(), max_new_tokens=0):
    """The metrics of one benchmark from its per-sample records, with a per-difficulty breakdown when the
    rows carry a difficulty."""
    by_problem = defaultdict(list)
    for r in records:
        by_problem[r["problem_id"]].append(r)
    ids = sorted(by_problem)
    out = {**summarize([by_problem[i] for i in ids]), "samples_per_problem": k}
    if budgets:
        out["cutoff"] = cutoff([by_problem[i] for i in ids], list(budgets), max_new_tokens)
    levels = sorted({rows[i]["difficulty"] for i in ids if "difficulty" in rows[i]}, key=str)
    if levels:
        out["by_difficulty"] = {str(d): summarize([by_problem[i] for i in ids
                                                   if rows[i].get("difficulty") == d])
                                for d in levels}
    return out


def table(benchmarks):
    lines = ["| benchmark | problems | k | accuracy | pass@k | maj@k | tokens | truncated |",
             "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for name, m in benchmarks.items():
        lines.append(f"| {name} | {m['n_problems']} | {m['samples_per_problem']} | {m['accuracy']:.1%} | "
                     f"{m['pass_at_k']:.1%} | {m['majority_accuracy']:.1%} | {m['mean_tokens']:,.0f} | "
                     f"{m['truncated_frac']:.1%} |")
    return "\n".join(lines)


# ----------------------------------------------------------------------------------------------------
# Per-sample records: each rank appends to NAME.samples.rankR.jsonl; rank 0 merges them into
# NAME.samples.jsonl.

def samples_path(out, rank=None):
    """The merged per-sample file beside --out, or the part that rank `rank` appends to."""
    return os.path.splitext(out)[0] + (".samples.jsonl" if rank is None else f".samples.rank{rank}.jsonl")


def part_paths(out):
    return sorted(glob.glob(glob.escape(os.path.splitext(out)[0]) + ".samples.rank*.jsonl"))


def read_records(out):
    """Every whole line of the merged file and of any rank parts, one record per
    (benchmark, problem, sample). Any other line but a crashed run's torn last one is refused: the merge
    would drop it."""
    seen = {}
    for path in [samples_path(out)] + part_paths(out):
        if not os.path.exists(path):
            continue
        with open(path, "rb") as f:  # bytes: the torn last line may end inside a UTF-8 character
            lines = f.readlines()
        for n, line in enumerate(lines, 1):
            try:
                r = json.loads(line.decode("utf-8"))  # a UnicodeDecodeError is a ValueError
                key = (r["benchmark"], r["problem_id"], r["sample"])
                ok = isinstance(key[0], str) and type(key[1]) is int and type(key[2]) is int
            except (ValueError, KeyError, TypeError):  # TypeError: JSON but not an object
                ok = False
            if ok:
                seen.setdefault(key, r)
            elif line.strip() and (n < len(lines) or line.endswith(b"\n")):  # not the torn last line
                raise SystemExit(f"error: {path} line {n} is not a sample record of eval.py: delete {path} "
                                 "to start over, or pass another --out")
    return [seen[key] for key in sorted(seen)]


def merge_records(out):
    records = read_records(out)
    write_atomic(samples_path(out), "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records))
    for path in part_paths(out):
        os.remove(path)
    return records


def write_atomic(path, text):
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with open(path + ".tmp", "w", encoding="utf-8") as f:
        f.write(text)
    os.replace(path + ".tmp", path)


def check_out(out, what="a results file path like results/NAME.json"):
    """Refuse an --out that cannot be written (a folder, a path through a file, a read-only place, empty):
    found only at the end, it cost all the sampling, or left .tmp files in the working directory."""
    folder = os.path.dirname(os.path.abspath(out))
    if not out or os.path.isdir(out) or out.endswith(os.sep):
        problem = "names a folder" if out else "is empty"
    else:
        try:
            os.makedirs(folder, exist_ok=True)
            with tempfile.NamedTemporaryFile(dir=folder):  # a probe, removed at once; unique on every rank
                return
        except (FileExistsError, NotADirectoryError) as e:
            problem = f"lies under a file, not a folder ({e.strerror}: {e.filename})"
        except OSError as e:
            problem = f"cannot be written in {folder} ({e.strerror or e})"
    raise SystemExit(f"error: --out {out!r} {problem}: pass {what}, in a folder this process can write")


def settings(cfg):
    """What a sample depends on besides its problem: the model and the sampling settings."""
    return {key: getattr(cfg, key) for key in RESUME_KEYS}


def results_config(path):
    """The config of a results file of eval.py (a JSON object with "config" and "benchmarks"), or None."""
    try:
        with open(path, encoding="utf-8") as f:
            results = json.load(f)
    except (OSError, ValueError):  # ValueError: not JSON, or not UTF-8
        return None
    if isinstance(results, dict) and isinstance(results.get("config"), dict) \
            and isinstance(results.get("benchmarks"), dict):
        return results["config"]
    return None


def check_resumable(cfg):
    """Before anything loads: refuse an --out that eval.py did not write (the benchmark file itself, notes:
    it would be replaced), one of other settings (their samples would mix with these; with the samples
    deleted, that run's metrics would be lost), and samples files with a line that is not a record."""
    read_records(cfg.out)
    if not os.path.exists(cfg.out):
        return
    old = results_config(cfg.out)
    if old is None:
        raise SystemExit(f"error: --out {cfg.out} exists and is not a results file of eval.py: "
                         "pass a new path")
    for key in RESUME_KEYS:
        if key in old and old[key] != getattr(cfg, key):
            raise SystemExit(f"error: {cfg.out} holds results of --{key} {old[key]}, "
                             f"not {getattr(cfg, key)}: "
                             "pass another --out, or delete it and its .samples.jsonl")


def shared_kv_budget(config, dtype, device, total_bytes, held_bytes, memory_fraction, sequence):
    """On a GPU, the KV cache's token budget that the rows share (most responses end long before the
    limit): memory_fraction of the GPU less held_bytes (what the process holds: the weights, and inside
    train.py the policy, optimizer and reference too; the prompts' prefill cache), the smallest over ranks,
    so that every rank decides alike, and a budget that cannot hold one sequence stops them all, not one
    rank while the others wait at the next barrier. None on the CPU."""
    kv_tokens = kv_budget(config, dtype, total_bytes, held_bytes, memory_fraction)
    if kv_tokens is None:
        return None
    kv_tokens = int(-all_max(torch.tensor(-kv_tokens, device=device)).item())
    if kv_tokens < sequence:
        raise SystemExit(f"error: {memory_fraction:.0%} of the GPU's memory, less the weights, "
                         f"holds {kv_tokens:,} tokens of KV cache on the smallest rank, "
                         f"less than one {sequence:,}-token sequence: lower --max_new_tokens")
    return kv_tokens


def runs(ids, size):
    """Runs of consecutive problem ids, at most `size` long: a run's sample ids start at its first id * k."""
    run = []
    for i in ids:
        if run and (i != run[-1] + 1 or len(run) == size):
            yield run
            run = []
        run.append(i)
    if run:
        yield run


def evaluate(cfg, model, tok, name, rows, k, rank, world, done, master):
    """Sample and grade this rank's share of the problems not in `done`, appending records as it goes."""
    lo, hi = rank * len(rows) // world, (rank + 1) * len(rows) // world  # contiguous shard
    todo = [i for i in range(lo, hi) if (name, i) not in done]
    skipped = sum((name, i) in done for i in range(len(rows)))
    if master and skipped:
        print(f"{name}: skipping {skipped} problems already in {samples_path(cfg.out)}", file=sys.stderr)
    prompts = [encode(tok, chat_prompt(tok, r["problem"])) for r in rows]
    context = model.config.max_position_embeddings
    too_long = [i for i, p in enumerate(prompts) if len(p) >= context]  # no room for one token: not evaluated
    if too_long:
        todo = [i for i in todo if i not in set(too_long)]
        if master:
            print(f"{name}: {len(too_long)} problems skipped, their prompts longer than the model's "
                  f"{context} positions "
                  f"(problems {', '.join(map(str, too_long[:5]))}{', ...' if len(too_long) > 5 else ''})",
                  file=sys.stderr)
    longest = max([len(p) for p in prompts if len(p) < context], default=1)  # every rank and rerun caps alike
    max_new = min(cfg.max_new_tokens, context - longest)
    if max_new < cfg.max_new_tokens and master:
        print(f"{name}: max_new_tokens capped at {max_new} by the model's context length", file=sys.stderr)
    weight, per_call = model.lm_head.weight, min(len(todo), max(1, cfg.chunk // k))
    # On the built-in task a right answer counts only with a valid derivation (see toy.derivation_ok);
    # not on a file that happens to be named toy.jsonl.
    builtin_toy = benchmark_specs(cfg.benchmark).get(name) == "toy"
    held = torch.cuda.memory_allocated(weight.device) if weight.is_cuda else 0  # all this process holds
    prefill = per_call * longest * KVCache.bytes_per_token(model.config, weight.dtype)  # a call's prompts
    kv_tokens = shared_kv_budget(model.config, weight.dtype, weight.device, gpu_memory(weight.device),
                                 held + prefill, cfg.kv_memory, longest + max_new)
    t0, tokens, accs = time.time(), 0, []
    for run in runs(todo, max(1, cfg.chunk // k)):
        outs = generate(model, [prompts[i] for i in run], n=k, max_new_tokens=max_new,
                        eos_token_id=tok.eos_token_id, temperature=cfg.temperature, top_p=cfg.top_p,
                        seed=cfg.seed, sample_offset=run[0] * k, slots=cfg.slots or None, kv_tokens=kv_tokens,
                        cuda_graph=cfg.cuda_graph, progress=master and cfg.progress)
        texts = [tok.decode(c.tokens, skip_special_tokens=True) for c in outs]
        golds = [rows[i]["answer"] for i in run for _ in range(k)]
        graded = grade_many(texts, golds, processes=cfg.grader_processes)
        records = [{"benchmark": name, "problem_id": i, "sample": j, "settings": settings(cfg),
                    "problem": rows[i]["problem"], "gold": golds[g], "answer": extract_boxed(texts[g]),
                    "correct": bool(graded[g] and outs[g].finished),
                    "tokens": len(outs[g].tokens), "finished": outs[g].finished, "response": texts[g]}
                   for g, (i, j) in enumerate((i, j) for i in run for j in range(k))]
        if builtin_toy:
            for r in records:
                r["answer_correct"] = r["correct"]
                r["correct"] = r["correct"] and toy.derivation_ok(rows[r["problem_id"]]["problem"],
                                                                  r["response"])
        with open(samples_path(cfg.out, rank), "a", encoding="utf-8") as f:
            f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
            f.flush()
            os.fsync(f.fileno())
        tokens += sum(r["tokens"] for r in records)
        accs += [sum(r["correct"] for r in records[a:a + k]) / k for a in range(0, len(records), k)]
        if master and cfg.progress:
            print(f"{name}{' rank 0' if world > 1 else ''}: {len(accs)}/{len(todo)} problems"
                  f" | {tokens:,} tokens | {tokens / (time.time() - t0):,.0f} tok/s"
                  f" | acc {sum(accs) / len(accs):.1%}", file=sys.stderr)
    return max_new


def figure_path(out, default):
    """The figure file of --plot / --curves (default when --out is not given), refused before anything is
    read if matplotlib cannot write its format. Without an extension: out + ".png", as matplotlib would."""
    out = default if out == EvalConfig.out else out
    ext = os.path.splitext(out)[1].lower().lstrip(".")
    formats = figure_formats()
    if not ext:
        out += ".png"
    elif ext not in formats:
        raise SystemExit(f"error: --out {out!r}: matplotlib cannot write a .{ext} figure: pass a path ending "
                         f"in one of {', '.join('.' + f for f in formats)}")
    check_out(out, f"a figure path like {default}")
    return out


def plot(files, out):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    results = []
    for path in files:
        try:
            with open(path) as f:
                benchmarks = json.load(f)["benchmarks"]
            shaped = all(isinstance(m[key], (int, float)) for m in benchmarks.values()
                         for key in ("accuracy", "mean_tokens"))
        except (KeyError, TypeError, AttributeError):  # JSON of another shape
            shaped = False
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: cannot read results file {path!r} ({type(e).__name__}: {e})")
        if not shaped:
            raise SystemExit(f"error: {path} is not a results file of eval.py (accuracy and mean_tokens per "
                             "benchmark): pass the --out files of eval.py runs")
        results.append((os.path.splitext(os.path.basename(path))[0], benchmarks))
    names = [b for b in results[0][1] if all(b in r for _, r in results)]
    if not names:
        raise SystemExit(f"error: the result files share no benchmark: {', '.join(files)}")
    fig, axes = plt.subplots(1, len(names) + 1, figsize=(4.2 * (len(names) + 1), 3.8), squeeze=False)
    ref = results[0][1]
    for ax, name in zip(axes[0], names + ["normalised average"]):
        for label, r in results:
            if name in r:
                x, y = r[name]["mean_tokens"], 100 * r[name]["accuracy"]
            else:  # each model's accuracy and tokens over the first file's, averaged over benchmarks
                x = sum(r[b]["mean_tokens"] / max(ref[b]["mean_tokens"], 1e-9) for b in names) / len(names)
                y = sum(r[b]["accuracy"] / max(ref[b]["accuracy"], 1e-9) for b in names) / len(names)
            ax.scatter(x, y, label=label)
            ax.annotate(label, (x, y), fontsize=7, xytext=(3, 3), textcoords="offset points")
            if name in r and "cutoff" in r[name]:  # the generation-cutoff curve of the same samples
                c = r[name]["cutoff"]
                ax.plot(c["mean_tokens"], [100 * a for a in c["accuracy"]], "--", lw=1,
                        label=f"{label} cutoff")
        ax.set_title(name)
        ax.set_xlabel("mean tokens per sample" if name in ref else f"tokens (relative to {results[0][0]})")
        ax.set_ylabel("accuracy (%)" if name in ref else "accuracy (relative)")
        ax.grid(alpha=0.3)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def curves(dirs, out):
    """Training curves from train.py's metrics.jsonl: rollout length and accuracy at every iteration."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, (ax_len, ax_acc) = plt.subplots(1, 2, figsize=(9, 3.6))
    for d in dirs:
        try:
            with open(os.path.join(d, "metrics.jsonl")) as f:
                ms = [json.loads(line) for line in f]
            it, lens, accs = ([m[key] for m in ms] for key in ("iter", "mean_len", "accuracy"))
        except (OSError, ValueError) as e:
            raise SystemExit(f"error: cannot read {d}/metrics.jsonl; --curves takes train.py out_dirs ({e})")
        except (KeyError, TypeError):  # JSON of another shape
            raise SystemExit(f"error: {d}/metrics.jsonl has a line without iter, mean_len and accuracy: "
                             "--curves takes train.py out_dirs")
        label = os.path.basename(os.path.normpath(d))
        ax_len.plot(it, lens, label=label)
        ax_acc.plot(it, [100 * a for a in accs], label=label)
    for ax, y in ((ax_len, "mean response tokens (rollouts)"), (ax_acc, "accuracy of rollouts (%)")):
        ax.set_xlabel("iteration")
        ax.set_ylabel(y)
        ax.grid(alpha=0.3)
    ax_len.legend(fontsize=7)
    fig.tight_layout()
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    fig.savefig(out, dpi=120)
    print(f"wrote {out}")


def run(cfg, benchmarks, model, tok, rank, world):
    """Evaluate model on {name: rows}, resuming from cfg.out; every rank joins. Returns {name: metrics} on
    rank 0 (also written to cfg.out), None elsewhere. train.py calls this before and after training."""
    master = rank == 0
    if master:  # fold the parts of an earlier run into one file before anyone reads it
        merge_records(cfg.out)
        if not os.path.exists(cfg.out):  # the settings, for check_resumable after a crash
            write_atomic(cfg.out, json.dumps({"model": cfg.model, "config": asdict(cfg), "benchmarks": {}}))
    barrier()
    counts = defaultdict(int)
    for r in read_records(cfg.out):
        rows = benchmarks.get(r["benchmark"])
        if rows is None or r["problem_id"] >= len(rows):  # another benchmark, or past --limit: not used
            continue
        row = rows[r["problem_id"]]
        if r.get("settings") != settings(cfg):  # the results file that names them may be gone
            raise SystemExit(f"error: {samples_path(cfg.out)} holds samples of other settings "
                             f"({r.get('settings')}, not {settings(cfg)}): pass another --out, or delete "
                             f"{cfg.out} and its samples")
        if (r.get("problem"), r["gold"]) != (row["problem"], row["answer"]):  # every rank decides alike
            raise SystemExit(f"error: {samples_path(cfg.out)} holds samples of {r['benchmark']} problem "
                             f"{r['problem_id']} that answer another problem or gold ({r['gold']!r} there, "
                             f"{row['answer']!r} here): pass another --out, or delete {cfg.out} "
                             "and its samples")
        counts[r["benchmark"], r["problem_id"]] += 1
    ks = {name: cfg.k or (BENCHMARKS[name][3] if name in BENCHMARKS else 1) for name in benchmarks}
    done = {key for key, c in counts.items() if c >= ks.get(key[0], 1)}
    max_new = {name: evaluate(cfg, model, tok, name, rows, ks[name], rank, world, done, master)
               for name, rows in benchmarks.items()}
    barrier()

    if master:
        records = merge_records(cfg.out)
        results = {}
        for name, rows in benchmarks.items():
            mine = [r for r in records if r["benchmark"] == name and r["problem_id"] < len(rows)]
            # budgets past a limit that the context capped are not exact: left out
            budgets = [int(b) for b in cfg.budgets.split(",") if b.strip() and int(b) <= max_new[name]]
            results[name] = {**metrics(mine, rows, ks[name], budgets, max_new[name]),
                             "max_new_tokens": max_new[name]}
        write_atomic(cfg.out, json.dumps({"model": cfg.model, "config": asdict(cfg), "benchmarks": results},
                                         indent=2))
        print(table(results))
        print(f"wrote {cfg.out} and {samples_path(cfg.out)}")
        return results


def held_out(model, tokenizer, spec, n_problems, out, label, max_new_tokens, temperature, seed, rank, world):
    """train.py's evaluation before and after training: this protocol with k = 1 on the first n_problems of
    the test split of spec, into out (what is there is removed first: never the records of another run).
    Returns the benchmark's metrics on rank 0, None elsewhere; every rank joins."""
    if rank == 0:
        for path in glob.glob(glob.escape(os.path.splitext(out)[0]) + "*"):
            os.remove(path)
    barrier()
    cfg = EvalConfig(model=label, benchmark=spec, k=1, temperature=temperature, max_new_tokens=max_new_tokens,
                     limit=n_problems, out=out, seed=seed, progress=False)
    name = next(iter(benchmark_specs(spec)))
    res = run(cfg, {name: load_rows(spec, split="test", limit=n_problems)}, model, tokenizer, rank, world)
    return res and res[name]


def read_metrics(out):
    """The metrics of the first benchmark of a results file (what held_out returned), or None."""
    if not os.path.exists(out):
        return None
    with open(out) as f:
        return next(iter(json.load(f)["benchmarks"].values()), None)


def before_after_table(initial, final, benchmark, n_problems, temperature, alpha):
    """train.py's summary: the held-out metrics before and after training, as a markdown table."""
    i, f = initial, final
    return (f"| {benchmark} held-out ({n_problems} problems, T={temperature}) "
            f"| accuracy | answer only | mean tokens |\n|---|---|---|---|\n"
            f"| initial | {i['accuracy']:.3f} | {i['answer_accuracy']:.3f} | {i['mean_tokens']:.1f} |\n"
            f"| final (alpha {alpha}) | {f['accuracy']:.3f} | {f['answer_accuracy']:.3f} "
            f"| {f['mean_tokens']:.1f} ({f['mean_tokens'] / i['mean_tokens'] - 1:+.0%}) |")


def main(argv):
    from configurator import parse_args, print_config
    for flag in ("--plot", "--curves"):  # `--plot a.json b.json` -> `--plot a.json,b.json`
        if flag in argv:
            a = argv.index(flag) + 1
            b = next((i for i in range(a, len(argv)) if argv[i].startswith("--")), len(argv))
            argv = argv[:a - 1] + [flag, ",".join(argv[a:b])] + argv[b:]
    # --n is --k; torchrun's own parser rejects --n anywhere on its command line (a prefix of its --nnodes).
    argv = ["--k" + a[3:] if a == "--n" or a.startswith("--n=") else a for a in argv]
    cfg = parse_args(EvalConfig, argv)
    if cfg.plot:
        return plot(cfg.plot.split(","), figure_path(cfg.out, "pareto.png"))
    if cfg.curves:
        return curves(cfg.curves.split(","), figure_path(cfg.out, "curves.png"))
    check_out(cfg.out)  # before anything is loaded: it used to fail after all the sampling
    check_resumable(cfg)
    from model import Qwen2, load_tokenizer
    rank, world, device = init_distributed(cfg.device, timeout_minutes=24 * 60)  # ranks wait at the final
    #                                                      barrier for the slowest shard: hours at 32k tokens
    if cfg.cuda_graph and device.type != "cuda":
        raise SystemExit(f"error: --cuda_graph true needs a CUDA device, and this run is on {device}")
    master = rank == 0
    if master:
        print("eval config:")
        print_config(cfg, file=sys.stdout)  # not its default: that is bound to sys.stdout at import time
    benchmarks = {name: load_rows(s, limit=cfg.limit) for name, s in benchmark_specs(cfg.benchmark).items()}
    try:
        model = Qwen2.from_pretrained(cfg.model, device=device)
        tok = load_tokenizer(model.source, chat=True)
    except (FileNotFoundError, ValueError) as e:
        raise SystemExit(f"error: {e}")
    if cfg.grader_processes:
        grader.warm_up(cfg.grader_processes)  # the sympy helpers start now, not at the first answers
    run(cfg, benchmarks, model, tok, rank, world)


if __name__ == "__main__":
    main(sys.argv[1:])
    finish()
