"""
Problems and prompts shared by train.py and eval.py.

load_rows(spec) gives [{problem, answer[, difficulty]}] from a benchmark name (gsm8k, math500, aime24), a
Hugging Face dataset id (`org/name` or `org/name:split`, with the `datasets` package), a local .jsonl /
.parquet file, or `toy` (the built-in task of toy.py). Gold answers come from an `answer` field (GSM8K's
`... #### 72` keeps what follows ####) or else the last \\boxed{} of a `solution` field.

    rows = load_rows("math500")                             # HuggingFaceH4/MATH-500, test split
    rows = load_rows("daman1209arora/compression_dataset", split="train")
    ids = encode(tok, chat_prompt(tok, rows[0]["problem"]))  # evaluation prompt
    ids = encode(tok, train_prompt(rows[0]["problem"]))      # training prompt
"""
import hashlib
import json
import math
import os
import random
import sys

BOS, USER, ASSISTANT = "<｜begin▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>"
INSTRUCTION = "Please reason step by step, and put your final answer within \\boxed{{}}. Question: {problem}"

# name: (Hugging Face id, config, split, samples per problem in the paper's evaluation)
BENCHMARKS = {
    "gsm8k": ("openai/gsm8k", "main", "test", 1),  # 1,319 problems, gold after "####"
    "math500": ("HuggingFaceH4/MATH-500", None, "test", 3),  # 500 problems, `answer` column
    "aime24": ("HuggingFaceH4/aime_2024", None, "train", 10),  # 30 problems (its only split is "train")
}
PROBLEM_FIELDS, ANSWER_FIELDS = ("problem", "question"), ("answer", "solution")
TOY_PROBLEMS = 250  # toy problems when no limit is given


def train_prompt(problem):
    """The raw R1 training prompt (not the chat template); it already holds BOS."""
    return BOS + USER + INSTRUCTION.format(problem=problem) + ASSISTANT


def chat_prompt(tokenizer, problem):
    """The evaluation prompt: the same user message through the tokenizer's chat template."""
    return tokenizer.apply_chat_template([{"role": "user", "content": INSTRUCTION.format(problem=problem)}],
                                         tokenize=False, add_generation_prompt=True)


def encode(tokenizer, text):
    return tokenizer.encode(text, add_special_tokens=False)  # both prompts carry their own BOS


def load_rows(spec, split="test", limit=0, seed=0):
    """[{problem, answer[, difficulty]}]: rows without a usable problem or answer are reported on stderr and
    dropped; limit > 0 keeps the first `limit` rows that remain; seed only picks the toy problems."""
    raw = _read(spec, split, limit, seed)
    raw = [{str(k).lower(): v for k, v in r.items()} for r in raw]
    found = sorted({k for r in raw for k in r})
    if not raw or not set(found) & set(PROBLEM_FIELDS) or not set(found) & set(ANSWER_FIELDS):
        raise SystemExit(f"error: {spec}: rows need a problem field ({' or '.join(PROBLEM_FIELDS)}) "
                         f"and an answer field ({' or '.join(ANSWER_FIELDS)}); "
                         f"found {', '.join(found) or 'no rows'}")
    rows, dropped = [], []
    for i, r in enumerate(raw):
        problem = next((r[f] for f in PROBLEM_FIELDS if r.get(f) is not None), "")
        problem = problem.strip() if isinstance(problem, str) else ""  # a number or an object is no problem
        answer = _gold(r)
        if not problem or answer is None:
            dropped.append(i)
            continue
        row = {"problem": problem, "answer": answer}
        difficulty = r.get("difficulty", r.get("level"))  # MATH has "level"; the toy task "difficulty"
        if difficulty is not None:
            row["difficulty"] = difficulty
        rows.append(row)
    if dropped:
        print(f"{spec}: dropped {len(dropped)} of {len(raw)} rows without a usable problem or answer "
              f"(rows {', '.join(map(str, dropped[:5]))}{', ...' if len(dropped) > 5 else ''})",
              file=sys.stderr)
    if not rows:
        raise SystemExit(f"error: {spec}: none of its {len(raw)} rows has a usable problem and answer")
    return rows[:limit] if limit > 0 else rows


def _gold(r):
    answer = r.get("answer")
    # not an answer: str() would make one up ("True", "{...}", and "nan" or "inf" from JSON's NaN, Infinity)
    if isinstance(answer, (dict, list, bool)) or (isinstance(answer, float) and not math.isfinite(answer)):
        return None
    if answer is not None and str(answer).strip():
        answer = str(answer)
        if "####" in answer:  # GSM8K: the worked solution, then "#### 1,234"
            answer = answer.rsplit("####", 1)[1].replace(",", "")
        return answer.strip() or None
    if r.get("solution") is not None:
        from grader import gold_from_solution
        return gold_from_solution(str(r["solution"]))
    return None


def _read(spec, split, limit, seed):
    if spec == "toy":
        return toy_problems(split, limit or TOY_PROBLEMS, seed)
    lowered = spec.lower()  # extensions in any case
    # a file by its name, existing or not (else it is looked up on the hub, which says nothing of a typo)
    if lowered.endswith((".jsonl", ".json", ".parquet", ".csv", ".tsv", ".xlsx")) or os.path.isfile(spec):
        if not os.path.isfile(spec):
            raise SystemExit(f"error: data file {spec!r} " + ("is a folder, not a file" if os.path.isdir(spec)
                                                              else "does not exist"))
        if lowered.endswith((".csv", ".tsv", ".xlsx")):  # any other file is read as JSON lines
            raise SystemExit(f"error: data file {spec!r} is a table, not .jsonl, .json or .parquet: write the "
                             "rows as one of those")
        if lowered.endswith(".parquet"):
            import pyarrow as pa
            import pyarrow.parquet as pq
            try:
                return pq.read_table(spec).to_pylist()
            except pa.ArrowException as e:  # not parquet, or cut short: one line, not pyarrow's traceback
                raise SystemExit(f"error: {spec} is not a readable Parquet file ({str(e).splitlines()[0]}): "
                                 "write it again (pandas' to_parquet), or pass the rows as .jsonl") from None
        try:
            with open(spec, encoding="utf-8") as f:
                if lowered.endswith(".json"):
                    try:
                        rows = json.load(f)
                    except json.JSONDecodeError as e:
                        raise SystemExit(f"error: {spec} is not valid JSON: {e}") from None
                else:
                    rows = []
                    for n, line in enumerate(f, 1):
                        try:
                            rows += [json.loads(line.strip())] if line.strip() else []
                        except json.JSONDecodeError as e:
                            raise SystemExit(f"error: {spec}, line {n}, is not valid JSON ({e.msg} at column "
                                             f"{e.colno}): each line must be one JSON object") from None
        except UnicodeDecodeError as e:
            raise SystemExit(f"error: {spec} is not UTF-8 text ({e.reason} at byte {e.start}): re-save it as "
                             "UTF-8") from None
        bad = type(rows).__name__ if not isinstance(rows, list) else \
            next((f"row {i}, a {type(r).__name__}" for i, r in enumerate(rows)
                  if not isinstance(r, dict)), None)
        if bad:
            raise SystemExit(f"error: {spec} must hold rows that are JSON objects with problem and answer "
                             f"fields (a list of them in a .json file); found {bad}")
        return rows
    if spec in BENCHMARKS:
        return _read_hub(*BENCHMARKS[spec][:3])
    name, _, hub_split = spec.partition(":")
    if name.count("/") == 1 and not name.startswith((".", "/", "~")):
        return _read_hub(name, None, hub_split or split)
    raise SystemExit(f"error: unknown benchmark {spec!r}: use {', '.join(BENCHMARKS)}, toy, a Hugging Face "
                     "dataset id (org/name or org/name:split) or a .jsonl / .parquet file")


def _read_hub(name, config, split):
    try:
        import datasets
    except ImportError:
        raise SystemExit(f"error: loading {name!r} from the Hugging Face hub needs `pip install datasets`; "
                         "or pass a local .jsonl / .parquet file with problem and answer fields") from None
    try:
        return list(datasets.load_dataset(name, config, split=split))
    except Exception as e:  # offline, unknown id or split: one line, not the hub client's traceback
        raise SystemExit(f"error: could not load {name!r} split {split!r} ({type(e).__name__}: "
                         f"{str(e).splitlines()[0] if str(e) else ''}); pass a local .jsonl / .parquet file "
                         "with problem and answer fields instead") from None


# -----------------------------------------------------------------------------
# The built-in task's problems: sums of k one-digit numbers (toy.py has their solutions and its base model).

MIN_K, MAX_K = 2, 6   # difficulty = how many numbers are added
TEST_FRACTION = 0.2   # of all problems, by a hash of the numbers, so the splits never overlap


def _split_of(nums):
    # A hash of the numbers (not Python's hash(), which is salted per process) fixes the split of every
    # problem once and for all, so train and test are disjoint whatever seeds draw from them.
    h = int.from_bytes(hashlib.sha256(",".join(map(str, nums)).encode()).digest()[:8], "big")
    return "test" if h % 1000 < TEST_FRACTION * 1000 else "train"


def toy_problems(split, n, seed=0):
    """n problems of the built-in task (toy.py) from `split` ("train" or "test"), each {problem, answer,
    difficulty}: sums of k one-digit numbers, k the difficulty, uniform over 2..6; the same for the same
    seed. A problem may repeat (there are only 81 k = 2 sums)."""
    assert split in ("train", "test"), split
    rng = random.Random(f"{split}-{seed}")
    out = []
    while len(out) < n:
        k = rng.randint(MIN_K, MAX_K)
        nums = [rng.randint(1, 9) for _ in range(k)]
        if _split_of(nums) == split:
            out.append({"problem": "What is " + " + ".join(map(str, nums)) + "?",
                        "answer": str(sum(nums)), "difficulty": k})
    return out
