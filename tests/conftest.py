"""Shared fixtures: tiny Qwen2 models with a real byte-level BPE tokenizer, saved as Hugging Face folders."""
import os
import sys

import pytest
import torch

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from model import Qwen2, Qwen2Config  # noqa: E402
from toy import build_tokenizer  # noqa: E402

CORPUS = [
    "Please reason step by step, and put your final answer within \\boxed{}. Question: What is 12 + 30?\n"
    "<think>\n12 + 30 = 42\n</think>\n\nThe answer is \\boxed{42}.",
    "Natalia sold clips to 48 of her friends in April, and then she sold half as many clips in May.",
    "The roots of x^2 - 5x + 6 = 0 are x = 2 and x = 3, so the answer is \\boxed{(2,3)}.",
    "\\frac{3}{4} + \\sqrt{2} \\text{(C)} 1,000 degrees 50%",
] * 10


def tiny_config(tok, **kw):
    cfg = dict(vocab_size=len(tok), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
               num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=1024,
               rope_theta=10000.0, tie_word_embeddings=False, bos_token_id=tok.bos_token_id,
               eos_token_id=tok.eos_token_id, torch_dtype="float32")
    cfg.update(kw)
    return Qwen2Config(**cfg)


def make_tiny_model(out_dir, seed=0, **kw):
    """A random tiny Qwen2 + R1-style tokenizer in out_dir (an ordinary HF folder). Returns out_dir."""
    tok = build_tokenizer(CORPUS, vocab_size=300, out_dir=out_dir)
    torch.manual_seed(seed)
    Qwen2(tiny_config(tok, **kw)).save_pretrained(out_dir, tokenizer_dir=out_dir)
    return str(out_dir)


def pytest_collection_modifyitems(items):
    """The longest test (two RL runs of minutes) first: with -n 2 the other process runs the rest meanwhile,
    instead of one process finishing it alone at the end."""
    items.sort(key=lambda item: "test_toy_rl.py" not in item.nodeid)


@pytest.fixture(autouse=True, scope="session")
def one_thread():
    """Every test runs on one torch thread, as the subprocesses do (OMP_NUM_THREADS=1): tiny matmuls gain
    nothing from threads, on a busy 2-core machine the thread handoffs cost ~20x, and float sums stay the
    same from run to run."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


@pytest.fixture
def traced_compile(monkeypatch):
    """torch.compile with the aot_eager backend: Dynamo traces the step (fullgraph=True fails on any graph
    break, a wrong guard replays stale values) and AOTAutograd functionalises it, as with the default
    backend, but Inductor's C++ code generation, torch's own part, is skipped: from a cold cache that alone
    took 92 s of a 113 s test on this machine."""
    import functools
    monkeypatch.setattr(torch, "compile", functools.partial(torch.compile, backend="aot_eager"))


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory):
    return make_tiny_model(tmp_path_factory.mktemp("tiny_model"))
