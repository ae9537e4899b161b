"""toy.py: the built-in task (splits, overthinking solutions, prompts, tokenisation), the base-model build,
and the committed toy-model/ folder."""
import os
import random
import re

import pytest
import torch

from conftest import ROOT
import toy
import data
from data import toy_problems, train_prompt
from grader import extract_boxed
from model import Qwen2

TOY_MODEL = os.path.join(ROOT, "toy-model")
needs_toy_model = pytest.mark.skipif(not os.path.exists(os.path.join(TOY_MODEL, "config.json")),
                                     reason="toy-model/ not built: python toy.py --out_dir toy-model")


def _texts(n, seed=0):
    rng = random.Random(seed)
    return [train_prompt(p["problem"]) + toy.solution(p["problem"], rng) for p in toy_problems("train", n, seed)]


def test_splits_are_deterministic_and_never_share_a_problem():
    a = toy_problems("train", 500, seed=0)
    assert a == toy_problems("train", 500, seed=0)
    assert a != toy_problems("train", 500, seed=1)
    train = {p["problem"] for s in range(3) for p in toy_problems("train", 3000, s)}
    test = {p["problem"] for s in range(3) for p in toy_problems("test", 3000, s)}
    assert not train & test
    assert len(test) > 1000  # a real held-out set, not a handful of repeats


def test_problems_have_the_sum_as_gold_and_cover_every_difficulty():
    ps = toy_problems("test", 300)
    assert {p["difficulty"] for p in ps} == set(range(data.MIN_K, data.MAX_K + 1))
    for p in ps:
        assert set(p) == {"problem", "answer", "difficulty"}
        nums = [int(x) for x in re.findall(r"\d+", p["problem"])]
        assert len(nums) == p["difficulty"] and p["answer"] == str(sum(nums))


def test_every_sft_solution_boxes_the_gold_and_contains_the_concise_solution():
    rng = random.Random(0)
    for p in toy_problems("train", 500):
        full, short = toy.solution(p["problem"], rng), toy.solution(p["problem"])
        for s in (full, short):
            assert s.startswith("<think>\n") and s.count("\n</think>\n\n") == 1
            assert extract_boxed(s) == p["answer"]
        assert short.count(" = ") == p["difficulty"] - 1  # only the necessary running sums
        # Redundancy only adds lines: the concise solution is the full one with the re-checks taken out.
        lines = iter(full.split("\n"))
        assert all(line in lines for line in short.split("\n"))
        assert (len(full) > len(short)) == ("re-check" in full)


def test_a_recheck_only_repeats_the_step_just_before_it():
    """The re-checks must never change (or carry) the answer, or cutting them would not be free."""
    rng = random.Random(1)
    for p in toy_problems("train", 500):
        lines = toy.solution(p["problem"], rng).split("\n")
        for prev, line in zip(lines, lines[1:]):
            if line.startswith("Wait"):
                assert line == f"Wait, let me re-check: {prev[:-1]}. Yes."


def test_derivation_check_accepts_every_solution_and_shortcut_and_rejects_degraded_text():
    """Every line written must be right; a right boxed answer around anything else fails."""
    rng = random.Random(2)
    for p in toy_problems("test", 300):
        sol = toy.solution(p["problem"], rng, p_direct=0.3).removeprefix(toy.THINK + "\n")
        assert toy.derivation_ok(p["problem"], sol), sol  # as the model writes it
    p = "What is 9 + 6 + 9 + 2?"
    good = toy.solution(p).removeprefix(toy.THINK + "\n")
    assert good == "9 + 6 = 15.\n15 + 9 = 24.\n24 + 2 = 26.\n</think>\n\nThe answer is \\boxed{26}."
    shortcuts = [
        "</think>\n\nThe answer is \\boxed{26}.",  # a direct answer
        good.replace("9 + 6 = 15.\n15 + 9 = 24.", "9 + 6 + 9 = 24."),  # a merged line
        "9 + 6 + 9 + 2 = 26.\n</think>\n\nThe answer is \\boxed{26}.",  # everything in one line
        good.replace("24 + 2 = 26.\n", ""),  # stops early, then boxes the right sum
        good.replace("15.\n", "15.\nWait, let me re-check: 9 + 6 = 15. Yes.\n"),  # a re-check
    ]
    for text in shortcuts:
        assert toy.derivation_ok(p, text), text
    degraded = [
        good.replace("15 + 9", "5 + 9"),  # a wrong step, right total
        good.replace("9 + 6 = 15.\n", ""),  # a skipped step
        good.replace("15.\n", "15.\nWait, let me re-check: 9 + 6 = 14. Yes.\n"),  # a wrong re-check
        good.replace("15.\n", "15.\n15.\n"),  # a stray line
        good.replace("9 + 6 = 15.\n15 + 9 = 24.", "9 + 6 + 9 = 25.\n25 + 2 = 27."),  # a wrong merged sum
        good.replace("9 + 6 = 15.\n15 + 9 = 24.", "9 + 9 = 18.\n18 + 6 = 24."),  # numbers out of order
        good.replace("9 + 6 = 15.", "9 + 6 = 015."),  # a number spelled otherwise
        good.replace("24 + 2 = 26.\n", "24 + 2 = 26.\nWait, let me re-check: 9 + 6 = 15. Yes.\n"),  # stale
        good.replace("24 + 2 = 26.\n", "24 + 2 = 26.\n26 + 0 = 26.\n"),  # a step past the last number
        good.replace("The answer is", "The the answer is"),  # garbled text after </think>
        good + " 26",  # trailing text
        good.replace("26.\n</think>", "26.</think>"),  # a line left open
        good.replace("\n</think>", ""),  # no end of thinking
        "garbage\n</think>\n\nThe answer is \\boxed{26}.",  # garbage instead of a direct answer
    ]
    for text in degraded:
        assert extract_boxed(text) == "26" and not toy.derivation_ok(p, text), text


def test_redundancy_is_a_habit_with_a_concise_minority_and_direct_answers_at_their_rate():
    """~72% of steps re-checked (p_concise 0.1, p_check 0.8), so a low temperature keeps the habit; but
    solutions without any re-check exist (at least the p_concise share), so sampling can find them; and
    a p_direct share are direct answers, at every difficulty."""
    rng = random.Random(0)
    ps = toy_problems("train", 4000)
    sols = [toy.solution(p["problem"], rng) for p in ps]
    steps = sum(p["difficulty"] - 1 for p in ps)
    checks = sum(s.count("re-check") for s in sols)
    assert 0.69 < checks / steps < 0.75
    hard = [s for p, s in zip(ps, sols) if p["difficulty"] == 6]
    assert 0.07 < sum("re-check" not in s for s in hard) / len(hard) < 0.14
    sols = [toy.solution(p["problem"], rng, p_direct=0.4) for p in ps]
    for k in range(data.MIN_K, data.MAX_K + 1):
        direct = [s.startswith(toy.THINK + "\n" + toy.END_THINK) for p, s in zip(ps, sols) if p["difficulty"] == k]
        assert 0.35 < sum(direct) / len(direct) < 0.45


def test_solutions_round_trip_through_the_tokenizer_reloaded_by_transformers(tmp_path):
    from transformers import AutoTokenizer
    built = toy.build_tokenizer(_texts(500), 512, str(tmp_path))
    # A folder whose config.json says qwen2 (as toy-model/ does) makes transformers build its Qwen2Tokenizer.
    (tmp_path / "config.json").write_text('{"model_type": "qwen2"}')
    loaded = AutoTokenizer.from_pretrained(str(tmp_path))
    assert type(loaded).__name__ == "Qwen2Tokenizer"
    rng = random.Random(2)
    texts = [train_prompt(p["problem"]) + toy.solution(p["problem"], rng) for p in toy_problems("test", 200)]
    for text in texts:
        ids = built.encode(text, add_special_tokens=False)
        assert loaded.encode(text, add_special_tokens=False) == ids
        assert loaded.decode(ids) == text
    assert loaded.eos_token_id == built.eos_token_id == 0
    for special in ("<think>", "</think>", "<｜Assistant｜>"):
        assert len(loaded.encode(special, add_special_tokens=False)) == 1


def test_eval_prompt_is_the_training_prompt_plus_the_responses_first_tokens(tmp_path):
    """eval.py prompts with the chat template, which ends in `<｜Assistant｜><think>\\n`; SFT taught the model
    `<｜Assistant｜>` then a response starting `<think>\\n`. Both must be the same token ids."""
    from data import chat_prompt, encode
    tok = toy.build_tokenizer(_texts(500), 512, str(tmp_path))
    problem = toy_problems("test", 1)[0]["problem"]
    train_ids = encode(tok, train_prompt(problem) + toy.solution(problem))
    eval_ids = encode(tok, chat_prompt(tok, problem))
    print("train:", tok.convert_ids_to_tokens(train_ids))
    print("eval: ", tok.convert_ids_to_tokens(eval_ids))
    assert eval_ids == encode(tok, train_prompt(problem)) + encode(tok, "<think>\n")
    assert train_ids[:len(eval_ids)] == eval_ids
    assert tok.convert_ids_to_tokens(eval_ids[-2:]) == ["<think>", "Ċ"]


def test_build_is_deterministic_and_writes_a_loadable_folder(tmp_path):
    kw = dict(steps=3, batch_size=4, hidden_size=32, intermediate_size=64, num_hidden_layers=1, n_eval=0, threads=1)
    toy.build_base_model(str(tmp_path / "a"), **kw)
    toy.build_base_model(str(tmp_path / "b"), **kw)
    a, b = Qwen2.from_pretrained(str(tmp_path / "a"), device="cpu"), Qwen2.from_pretrained(str(tmp_path / "b"), device="cpu")
    for (name, p), q in zip(a.state_dict().items(), b.state_dict().values()):
        assert torch.equal(p, q), name
    for name in ("tokenizer.json", "tokenizer_config.json", "toy_config.json"):
        assert os.path.exists(tmp_path / "a" / name)


@needs_toy_model
def test_committed_toy_model_loads_with_its_tokenizer_and_in_transformers():
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = Qwen2.from_pretrained(TOY_MODEL, device="cpu")
    tok = AutoTokenizer.from_pretrained(TOY_MODEL)
    assert model.config.vocab_size == len(tok)
    assert (model.config.eos_token_id, model.config.bos_token_id) == (tok.eos_token_id, tok.bos_token_id)
    size = sum(os.path.getsize(os.path.join(TOY_MODEL, f)) for f in os.listdir(TOY_MODEL))
    assert size < 10 * 2**20
    idx = torch.tensor([tok.encode(train_prompt("What is 1 + 2?"), add_special_tokens=False)])
    hf = AutoModelForCausalLM.from_pretrained(TOY_MODEL).eval()
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf(idx).logits, atol=1e-4, rtol=1e-4)


@needs_toy_model
def test_committed_toy_model_is_correct_and_overthinks_when_greedy():
    from transformers import AutoTokenizer
    from data import chat_prompt, encode
    from sample import generate
    model = Qwen2.from_pretrained(TOY_MODEL, device="cpu")
    tok = AutoTokenizer.from_pretrained(TOY_MODEL)
    probs = toy_problems("test", 10, seed=1)
    outs = generate(model, [encode(tok, chat_prompt(tok, p["problem"])) for p in probs], max_new_tokens=256,
                    eos_token_id=tok.eos_token_id, temperature=0)
    texts = [tok.decode(o.tokens, skip_special_tokens=True) for o in outs]
    assert sum(o.finished and extract_boxed(t) == p["answer"] for o, t, p in zip(outs, texts, probs)) >= 9
    shortest = sum(len(encode(tok, toy.solution(p["problem"]))) - 1 for p in probs)
    assert sum(len(o.tokens) for o in outs) > 1.5 * shortest


@needs_toy_model
def test_sample_py_poses_the_prompt_as_a_math_problem_so_the_toy_model_solves_it():
    import subprocess
    import sys
    env = dict(os.environ, OMP_NUM_THREADS="1")
    p = subprocess.run([sys.executable, "sample.py", "--model", TOY_MODEL, "--prompt", "What is 3 + 4 + 8?", "--n", "2",
                        "--temperature", "0", "--max_new_tokens", "200", "--device", "cpu"], cwd=ROOT, env=env, capture_output=True,
                       text=True, timeout=300)
    assert p.returncode == 0, p.stderr[-2000:]
    assert p.stdout.count("\\boxed{15}") == 2 and "3 + 4 = 7.\n" in p.stdout, p.stdout


TINY = dict(steps=2, batch_size=2, hidden_size=32, intermediate_size=64, num_hidden_layers=1, n_eval=0)


@pytest.mark.parametrize("argv, named", [
    (["--threads", "0"], "--threads"),  # a raw RuntimeError from torch.set_num_threads
    (["--log_every", "0"], "--log_every"),  # a ZeroDivisionError at the first step, after the tokenizer was written
    (["--eval_temperatures", "0.6,abc"], "--eval_temperatures"),  # a ValueError only after the whole training
    (["--num_attention_heads", "3"], "--num_attention_heads"),  # 128 does not split into 3 heads
    (["--num_key_value_heads", "3"], "--num_key_value_heads"),
    (["--p_check", "1.5"], "--p_check"),
    (["--steps", "0"], "--steps"),
    (["--out_dir", ""], "--out_dir"),  # the files would land in the current folder
])
def test_bad_toy_options_are_refused_naming_the_option(argv, named):
    from configurator import parse_args
    with pytest.raises(SystemExit, match=f"^error: {named} must"):
        parse_args(toy.ToyConfig, argv)


def test_an_out_dir_that_is_a_file_or_lies_under_one_is_refused_naming_the_file(tmp_path):
    """os.makedirs used to stop on it with a FileExistsError or NotADirectoryError traceback."""
    from configurator import parse_args
    afile = tmp_path / "afile"
    afile.write_text("mine")
    for out_dir in (afile, afile / "x"):
        message = f"error: --out_dir must be a folder ({afile} is a file), got '{out_dir}'"
        with pytest.raises(SystemExit, match=f"^{re.escape(message)}$"):
            parse_args(toy.ToyConfig, ["--out_dir", str(out_dir)])
        with pytest.raises(ValueError, match="--out_dir must be a folder"):
            toy.build_base_model(str(out_dir), **TINY)
    assert os.listdir(tmp_path) == ["afile"] and afile.read_text() == "mine"


@pytest.mark.parametrize("model_file", ["config.json", "model.safetensors"])
def test_build_refuses_a_folder_that_already_holds_a_model(tmp_path, model_file):
    """`python toy.py` once rebuilt the committed toy-model/ in place."""
    (tmp_path / model_file).write_text("a model")
    with pytest.raises(SystemExit, match=f"^error: {tmp_path} already holds a model.*--out_dir"):
        toy.build_base_model(str(tmp_path), **TINY)
    assert os.listdir(tmp_path) == [model_file] and (tmp_path / model_file).read_text() == "a model"


def test_a_build_that_fails_part_way_leaves_its_folder_as_it_was(tmp_path, monkeypatch):
    """The tokenizer used to be written first, so a crash left a folder whose tokenizer no weights matched."""
    out = tmp_path / "model"
    out.mkdir()
    (out / "notes.txt").write_text("mine")

    def interrupted(step, cfg):
        raise KeyboardInterrupt
    monkeypatch.setattr(toy, "get_lr", interrupted)
    with pytest.raises(KeyboardInterrupt):
        toy.build_base_model(str(out), **TINY)
    assert os.listdir(out) == ["notes.txt"] and os.listdir(tmp_path) == ["model"]  # no half-built folder left
    monkeypatch.undo()
    toy.build_base_model(str(out), **TINY)  # into a folder without a model: the user's files stay
    assert {"notes.txt", "config.json", "model.safetensors", "tokenizer.json"} <= set(os.listdir(out))
    assert os.listdir(tmp_path) == ["model"] and not [f for f in os.listdir(out) if f.startswith(".")]
