"""sample.py: the batched, KV-cached, continuously batched sampler against the naive full-forward generator,
transformers' greedy generate and a full forward pass; its randomness and its command line."""
import os
import re
import subprocess
import sys
from collections import Counter

import pytest
import torch

import paged_attention
from conftest import ROOT, tiny_config
from model import Qwen2
from sample import _uniform, generate, generate_naive, sample_tokens


@pytest.fixture(scope="module")
def model_dir(tiny_model_dir, tmp_path_factory):
    """The tiny model with every weight random at a scale that gives peaked logits (no near-ties for greedy
    to break differently under fp32 noise), saved with the tokenizer as a Hugging Face folder."""
    from transformers import AutoTokenizer
    tok = AutoTokenizer.from_pretrained(tiny_model_dir)
    torch.manual_seed(0)
    model = Qwen2(tiny_config(tok))
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            p.copy_((1.0 if "norm" in name else 0.0) + 0.2 * torch.randn(p.shape, generator=g))
    out = tmp_path_factory.mktemp("peaked_model")
    model.save_pretrained(str(out), tokenizer_dir=tiny_model_dir)
    return str(out)


@pytest.fixture(scope="module")
def model(model_dir):
    return Qwen2.from_pretrained(model_dir, device="cpu").eval()


def prompts_of(lens, vocab=300, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randint(4, vocab, (n,), generator=g).tolist() for n in lens]


PROMPT_LENS = [1, 3, 6, 11, 17, 4]
MAX_NEW = 12


@pytest.fixture(scope="module")
def greedy_refs(model, model_dir):
    """Per prompt, alone: naive greedy tokens and transformers' greedy tokens, with an EOS that some prompts
    produce early and others never do (picked from what the model generates without an EOS)."""
    from transformers import AutoModelForCausalLM
    prompts = prompts_of(PROMPT_LENS)
    free = [generate_naive(model, p, max_new_tokens=MAX_NEW, eos_token_id=-1, temperature=0).tokens
            for p in prompts]
    # the token whose first appearance splits the prompts most evenly into "stops early" and "never stops"
    candidates = {t for f in free for t in f[:MAX_NEW - 2]}
    eos = max(sorted(candidates), key=lambda t: min(sum(t in f[:MAX_NEW - 2] for f in free),
                                                     sum(t not in f for f in free)))
    stops = [eos in f[:MAX_NEW - 2] for f in free]
    assert any(stops) and any(eos not in f for f in free)  # the setup mixes both endings
    naive = [generate_naive(model, p, max_new_tokens=MAX_NEW, eos_token_id=eos, temperature=0)
             for p in prompts]
    hf = AutoModelForCausalLM.from_pretrained(model_dir).eval()
    hf_tokens = []
    for p in prompts:
        ids = torch.tensor([p])
        out = hf.generate(ids, attention_mask=torch.ones_like(ids), max_new_tokens=MAX_NEW, do_sample=False,
                          eos_token_id=eos, pad_token_id=eos)
        hf_tokens.append(out[0, len(p):].tolist())
    return prompts, eos, naive, hf_tokens


@pytest.mark.parametrize("slots,sync_every,prefill_batch", [(None, 1, 16), (3, 1, 2), (2, 5, 4), (5, 3, 16)])
def test_batched_greedy_equals_naive_and_transformers_per_prompt(model, greedy_refs, slots, sync_every,
                                                                 prefill_batch):
    """Batching prompts of different lengths, continuous batching (fewer slots than samples), checking for
    EOS only every sync_every steps, and prefilling in batches must not change any sample's tokens."""
    prompts, eos, naive, hf_tokens = greedy_refs
    n = 2
    outs = generate(model, prompts, n=n, max_new_tokens=MAX_NEW, eos_token_id=eos, temperature=0, slots=slots,
                    sync_every=sync_every, prefill_batch=prefill_batch)
    assert len(outs) == len(prompts) * n
    for i in range(len(prompts)):
        assert naive[i].tokens == hf_tokens[i], f"naive generator disagrees with transformers on prompt {i}"
        for k in range(n):
            c = outs[i * n + k]
            assert c.tokens == naive[i].tokens, f"prompt {i} sample {k}"
            assert c.finished == naive[i].finished
    assert any(c.finished for c in naive) and not all(c.finished for c in naive)
    assert any(len(c.tokens) < MAX_NEW // 2 for c in naive)  # some rows stop early while others go on


def _nucleus_logprobs(logits, temperature, top_p):
    """log-probs (T, V) of the tempered distribution restricted to its top_p nucleus and renormalised."""
    if temperature == 0:
        return torch.log_softmax(logits, -1)
    logp = torch.log_softmax(logits / temperature, -1)
    if top_p < 1:
        for row in logp:
            p, order = row.exp().sort(descending=True)
            keep = order[:int(((p.cumsum(0) - p) < top_p).sum())]
            out = torch.full_like(row, -float("inf"))
            out[keep] = row[keep] - row[keep].logsumexp(0)
            row.copy_(out)
    return logp


@pytest.mark.parametrize("temperature,top_p", [(1.0, 1.0), (0.7, 1.0), (1.3, 0.6), (0, 1.0)])
def test_returned_logprobs_equal_full_forward_over_prompt_and_completion(model, temperature, top_p):
    prompts = prompts_of([2, 7, 5], seed=1)
    outs = generate(model, prompts, n=3, max_new_tokens=10, eos_token_id=-1, temperature=temperature,
                    top_p=top_p, seed=4, slots=4)
    excluded = 0
    for j, c in enumerate(outs):
        p = prompts[j // 3]
        with torch.no_grad():
            logits = model(torch.tensor([p + c.tokens]))[0, len(p) - 1:-1]  # predicts each completion token
            scored = model(torch.tensor([p + c.tokens[:-1]]), torch.tensor([p[1:] + c.tokens]),
                           temperature=temperature or 1.0)[0, len(p) - 1:]  # model.py's scoring path
        ref = _nucleus_logprobs(logits, temperature, top_p)
        lp = ref.gather(1, torch.tensor(c.tokens)[:, None])[:, 0]
        assert torch.isfinite(lp).all(), "a token outside the nucleus was sampled"
        torch.testing.assert_close(torch.tensor(c.logprobs), lp, rtol=1e-5, atol=1e-5)
        excluded += int(torch.isinf(ref).sum())
        if top_p == 1:  # what train.py recomputes as old_logp must equal what the sampler returned
            torch.testing.assert_close(torch.tensor(c.logprobs), scored, rtol=1e-5, atol=1e-5)
    assert (excluded > 0) == (top_p < 1)  # the nucleus really cut tokens off


def test_same_seed_same_samples_and_different_seed_differs(model):
    prompts = prompts_of([3, 8], seed=2)
    kw = dict(n=4, max_new_tokens=12, eos_token_id=-1, temperature=1.0)
    a, b, c = (generate(model, prompts, seed=s, **kw) for s in (7, 7, 8))
    assert ([x.tokens for x in a] == [x.tokens for x in b]
            and [x.logprobs for x in a] == [x.logprobs for x in b])
    assert sum(x.tokens != y.tokens for x, y in zip(a, c)) >= 6


def test_samples_of_one_prompt_differ_at_temperature_1(model):
    outs = generate(model, prompts_of([5], seed=3), n=6, max_new_tokens=10, eos_token_id=-1, temperature=1.0)
    assert len({tuple(c.tokens) for c in outs}) == 6


def test_finished_iff_last_token_is_eos_and_length_within_max_new_tokens(model):
    prompts = prompts_of([2, 9, 4], seed=4)
    # EOS := the most frequent sampled token, so that many samples stop early and some never do
    free = generate(model, prompts, n=8, max_new_tokens=10, eos_token_id=-1, temperature=1.0, seed=1)
    eos = Counter(t for c in free for t in c.tokens).most_common(1)[0][0]
    outs = generate(model, prompts, n=8, max_new_tokens=10, eos_token_id=eos, temperature=1.0, seed=1,
                    slots=5, sync_every=3)
    assert 0 < sum(c.finished for c in outs) < len(outs)
    for c in outs:
        assert 1 <= len(c.tokens) <= 10 and len(c.logprobs) == len(c.tokens)
        assert c.finished == (c.tokens[-1] == eos)
        assert eos not in c.tokens[:-1]  # nothing is generated after EOS
        assert c.finished or len(c.tokens) == 10


def test_samples_independent_of_slots_sync_every_rank_split_and_cache_evictions(model):
    """The counter-based randomness makes a sample's tokens a function of (seed, sample id, step) only.
    Logits differ across batch shapes by fp32 rounding (~1e-7), so tokens must match exactly and log-probs
    to 1e-5."""
    prompts = prompts_of([4, 1, 9, 6], seed=5)
    kw = dict(n=3, max_new_tokens=12, temperature=1.0, seed=11)
    free = generate(model, prompts, eos_token_id=-1, **kw)
    # many stop early
    kw["eos_token_id"] = Counter(t for c in free for t in c.tokens[:6]).most_common(1)[0][0]
    ref = generate(model, prompts, **kw)
    assert 0 < sum(c.finished for c in ref) < len(ref)
    rows = []  # rows of each decode step
    hook = model.register_forward_pre_hook(
        lambda m, a: rows.append(a[0].shape[0]) if a[0].shape[1] == 1 else None)
    runs = [generate(model, prompts, slots=4, sync_every=3, **kw)]
    hook.remove()
    assert 2 in rows  # the tail compaction ran with 2 of the 4 rows left: it must keep each row's own cache
    runs += [generate(model, prompts, slots=s, sync_every=e, **kw) for s, e in [(1, 1), (7, 16)]]
    runs.append(generate(model, prompts, slots=5, continuous=False, **kw))  # the lock-step baseline
    # A paged cache too small for all rows at once: samples are evicted and regenerated, identically.
    runs += [generate(model, prompts, slots=6, kv_tokens=t, block_size=b, sync_every=2, **kw)
             for t, b in [(24, 4), (40, 4), (25, 1)]]
    # two "ranks": the second half of the prompts with sample_offset = the first half's sample count
    runs.append(generate(model, prompts[:2], **kw) + generate(model, prompts[2:], sample_offset=6, **kw))
    for run in runs:
        assert [c.tokens for c in run] == [c.tokens for c in ref]
        assert [c.finished for c in run] == [c.finished for c in ref]
        for a, b in zip(run, ref):
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs),
                                       rtol=1e-5, atol=1e-5)


def test_unpaged_rows_are_the_cpu_default_and_sample_bit_for_bit_as_pages(model, monkeypatch):
    """Where decoding runs through SDPA (here) and the cache has room for every row, each row owns one
    contiguous stretch, which SDPA reads in place instead of a copy of the row's pages: the same attention
    over the same positions, so the same tokens and log-probs bit for bit, through refills, the tail
    compaction and the lock-step mode. The compaction moves the live rows' stretches within the one cache
    (a copy would hold a second cache). A cache too small for every row needs pages: paged=False refuses."""
    prompts = prompts_of([4, 1, 9, 6], seed=5)
    kw = dict(n=3, max_new_tokens=12, temperature=1.0, seed=11)
    free = generate(model, prompts, eos_token_id=-1, **kw)
    kw["eos_token_id"] = Counter(t for c in free for t in c.tokens[:6]).most_common(1)[0][0]  # many stop early
    tables = []  # the block table of every decode call: None when the rows are unpaged
    caches = []  # (rows, storage) of every decode call's k_cache
    attend = paged_attention.cached_attention

    def recorded(q, k, v, k_cache, *args):
        if q.shape[1] == 1:
            tables.append(args[-1])
            caches.append((k_cache.shape[0], k_cache.untyped_storage().data_ptr()))
        return attend(q, k, v, k_cache, *args)
    monkeypatch.setattr(paged_attention, "cached_attention", recorded)
    compacted = []
    for extra in (dict(), dict(slots=4, sync_every=3), dict(slots=5, continuous=False)):
        tables.clear()
        caches.clear()
        unpaged = generate(model, prompts, **kw, **extra)
        assert tables and all(t is None for t in tables)
        assert len({ptr for _, ptr in caches}) == 1  # all layers, all steps: one cache
        compacted.append(len({rows for rows, _ in caches}) > 1)
        tables.clear()
        paged = generate(model, prompts, paged=True, **kw, **extra)
        assert tables and all(t is not None for t in tables)
        assert 0 < sum(c.finished for c in paged) < len(paged)
        assert [(c.tokens, c.logprobs, c.finished) for c in unpaged] == \
            [(c.tokens, c.logprobs, c.finished) for c in paged]
    assert any(compacted)
    tables.clear()
    generate(model, prompts, kv_tokens=24, block_size=4, **kw)  # too small for every row: pages, evictions
    assert tables and all(t is not None for t in tables)
    with pytest.raises(ValueError, match="paged=False gives each of the 6 rows its own stretch"):
        generate(model, prompts, kv_tokens=24, block_size=4, paged=False, slots=6, **kw)


def test_stats_count_the_decode_steps_and_cuda_graph_needs_cuda(model):
    prompts = prompts_of([4, 1, 9], seed=3)
    calls = []  # decode forwards: one new token per row
    hook = model.register_forward_pre_hook(lambda m, a: calls.append(1) if a[0].shape[1] == 1 else None)
    stats = {}
    out = generate(model, prompts, n=2, max_new_tokens=7, eos_token_id=-1, slots=4, stats=stats)
    hook.remove()
    # 6 samples of 7 in 4 slots
    assert stats == {"decode_steps": len(calls), "graphs": 0, "capture_seconds": 0.0} and len(calls) >= 14
    assert all(len(c.tokens) == 7 for c in out)
    with pytest.raises(ValueError, match="cuda_graph=True needs the model on a CUDA device"):  # model: on CPU
        generate(model, prompts, max_new_tokens=4, eos_token_id=-1, cuda_graph=True)


def test_compiled_decode_step_is_one_graph_and_samples_as_the_eager_one(model, traced_compile):
    """fullgraph=True fails on any graph break: the step reads nothing back to Python (no host sync), which
    is also what a CUDA graph capture needs. Refills, the tail compaction and evictions change its shapes."""
    torch._dynamo.reset()
    prompts = prompts_of([4, 1, 9, 6], seed=5)
    kw = dict(max_new_tokens=12, temperature=1.0, eos_token_id=7, kv_tokens=40, block_size=4)
    # the calls of a training run: new seeds, sample offsets and batch sizes; each is one graph,
    # no recompile limit
    for call in [dict(n=3, seed=11, slots=6), dict(n=3, seed=12, slots=6, sample_offset=12),
                 dict(n=2, seed=2**40 + 3, slots=5), dict(n=1, seed=13, slots=3)]:
        eager = generate(model, prompts, **kw, **call)
        compiled = generate(model, prompts, compile=True, **kw, **call)
        assert [c.tokens for c in compiled] == [c.tokens for c in eager]
        for a, b in zip(compiled, eager):
            torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs),
                                       rtol=1e-5, atol=1e-5)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16])
def test_cuda_graph_decode_equals_eager_decode(model_dir, dtype):
    """Replaying captured decode steps runs the same kernels on the same memory as the eager steps: the same
    tokens and log-probs, through slot refills, the tail compaction (new graphs), cache evictions and
    unpaged rows (SDPA reading each row's stretch)."""
    gpu = Qwen2.from_pretrained(model_dir, device="cuda", dtype=dtype).eval()
    prompts = prompts_of([4, 1, 9, 6, 30], seed=5)
    kw = dict(n=3, max_new_tokens=300, temperature=1.0, seed=11)  # two 256-position blocks: two table widths
    free = generate(gpu, prompts, eos_token_id=-1, **kw)
    # many stop early
    kw["eos_token_id"] = Counter(t for c in free for t in c.tokens[:20]).most_common(1)[0][0]
    for extra in [dict(slots=4), dict(slots=16, sync_every=1, top_p=0.9), dict(slots=6, kv_tokens=4 * 256),
                  dict(slots=5, paged=False)]:
        eager, stats = generate(gpu, prompts, **kw, **extra), {}
        graphed = generate(gpu, prompts, cuda_graph=True, stats=stats, **kw, **extra)
        assert 1 <= stats["graphs"] < stats["decode_steps"] // 4  # most steps were replays
        assert [c.tokens for c in graphed] == [c.tokens for c in eager], extra
        assert [c.logprobs for c in graphed] == [c.logprobs for c in eager], extra
    assert 0 < sum(c.finished for c in eager) < len(eager)
    assert not paged_attention._broken  # no silent fallback from the Triton kernel
    if dtype != torch.float32:
        return
    # Long enough for more than 8 blocks: a graph then attends over a table rounded up to its width, so
    # compare greedy tokens exactly and log-probs to fp32 rounding (bf16 could flip a near-tie).
    bs = 256 if paged_attention.flash_attn is not None else 16  # flash-attn pages are multiples of 256
    kw = dict(n=2, max_new_tokens=12 * bs, temperature=0, eos_token_id=kw["eos_token_id"], block_size=bs,
              slots=4)
    eager, graphed = generate(gpu, prompts, **kw), generate(gpu, prompts, cuda_graph=True, **kw)
    assert [c.tokens for c in graphed] == [c.tokens for c in eager]
    for a, b in zip(graphed, eager):
        torch.testing.assert_close(torch.tensor(a.logprobs), torch.tensor(b.logprobs), rtol=1e-3, atol=1e-3)


# -----------------------------------------------------------------------------
# the sampling distribution

LOGITS = torch.tensor([2.0, 1.0, 0.5, 0.0, -0.5, -1.5, -3.0])


def _draw(temperature, top_p, n=40_000, seed=0):
    u = _uniform(seed, torch.arange(n), torch.zeros(n, dtype=torch.long))
    return sample_tokens(LOGITS.expand(n, -1), temperature, top_p, u)


def _chi2(counts, probs, n):
    return sum((counts.get(i, 0) - n * p) ** 2 / (n * p) for i, p in enumerate(probs) if p > 0)


@pytest.mark.parametrize("temperature", [1.0, 0.5])
def test_sample_tokens_frequencies_match_softmax(temperature):
    n = 40_000
    tok, lp = _draw(temperature, 1.0, n)
    probs = torch.softmax(LOGITS / temperature, -1)
    counts = Counter(tok.tolist())
    # chi-square with 6 degrees of freedom: 30 is p < 1e-4. The uniforms are a fixed hash, so no flakiness.
    assert _chi2(counts, probs.tolist(), n) < 30
    torch.testing.assert_close(lp, probs.log()[tok])


def test_top_p_samples_only_the_nucleus_renormalised():
    n = 40_000
    probs = torch.softmax(LOGITS, -1)  # 0.51, 0.19, 0.11, 0.07, ...: top_p 0.75 keeps the first three
    tok, lp = _draw(1.0, 0.75, n)
    counts = Counter(tok.tolist())
    assert set(counts) == {0, 1, 2}
    nucleus = probs[:3] / probs[:3].sum()
    assert _chi2(counts, nucleus.tolist(), n) < 25
    torch.testing.assert_close(lp, nucleus.log()[tok])


@pytest.mark.parametrize("top_p", [1.0, 0.75])
def test_sample_tokens_never_picks_a_zero_probability_token_at_extreme_uniforms(top_p):
    """u = 1 (what an fp32 uniform just below 1 can round to) and u near 0 must still land on a token of the
    distribution: never on a masked token (log-prob -inf) or an underflowed one."""
    logits = torch.tensor([[-200.0, 3.0, 2.5, 1.0, -200.0]]).expand(4, -1)
    u = torch.tensor([1.0, 1 - 2**-24, 2**-25, 0.5])
    tok, lp = sample_tokens(logits, 1.0, top_p, u)
    assert torch.isfinite(lp).all() and set(tok.tolist()) <= ({1, 2, 3} if top_p == 1 else {1, 2})


def test_uniforms_are_uniform_and_strictly_inside_0_1():
    u = _uniform(123, torch.arange(200_000), torch.full((200_000,), 5))
    hist = torch.histc(u, bins=20, min=0, max=1)
    assert ((hist - 10_000).abs() < 500).all()  # 5 sigma
    # different steps give unrelated numbers
    v = _uniform(123, torch.arange(200_000), torch.full((200_000,), 6))
    assert abs(torch.corrcoef(torch.stack([u, v]))[0, 1]) < 0.01
    # Sample ids (seed 0, step 0) whose hash is all ones / all zeros in its top 24 bits, found by search: the
    # extreme values must not round to 1 or 0 in fp32. (If the hash changes, search for new ids.)
    ext = _uniform(0, torch.tensor([1645470, 3512470, 0, 12425094]), torch.zeros(4, dtype=torch.long))
    assert ext[:2].tolist() == [1 - 2**-24] * 2 and ext[2:].tolist() == [2**-24] * 2


# -----------------------------------------------------------------------------
# errors and the command line

def test_generate_rejects_prompt_longer_than_limit(model):
    limit = model.config.max_position_embeddings
    with pytest.raises(ValueError, match="max_position_embeddings"):
        generate(model, [[5] * (limit - 3)], max_new_tokens=8, eos_token_id=0)
    # fits exactly
    generate(model, [[5] * (limit - 8)], max_new_tokens=8, eos_token_id=-1, temperature=0, n=1)


def test_generate_rejects_empty_prompt(model):
    with pytest.raises(ValueError, match="at least one token"):
        generate(model, [[5, 6], []], max_new_tokens=4, eos_token_id=0)
    with pytest.raises(ValueError, match="at least one prompt"):
        generate(model, [], max_new_tokens=4, eos_token_id=0)


def _run_sample_py(*args):
    env = dict(os.environ, HF_HUB_OFFLINE="1", TOKENIZERS_PARALLELISM="false", OMP_NUM_THREADS="1")
    return subprocess.run([sys.executable, "sample.py", *args], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=120)


def test_sample_py_prints_completions_and_tokens_per_second(tiny_model_dir):
    r = _run_sample_py("--model", tiny_model_dir, "--prompt", "What is 12 + 30?", "--n", "2",
                       "--max_new_tokens", "8")
    assert r.returncode == 0, r.stderr
    assert r.stdout.count("--- sample ") == 2 and "--- sample 1 (" in r.stdout
    assert "tokens/s" in r.stdout.splitlines()[-1]


def test_sample_py_unknown_option_exits_naming_valid_options(tiny_model_dir):
    r = _run_sample_py("--model", tiny_model_dir, "--foo", "1")
    assert r.returncode != 0
    assert "--foo" in r.stderr and "--max_new_tokens" in r.stderr and "--temperature" in r.stderr
    assert "Traceback" not in r.stderr


def test_sample_py_bad_limits_and_devices_are_one_line_errors_and_help_lists_the_options(tiny_model_dir):
    cases = [(["--max_new_tokens", "999999"], "exceeds the model's 1024 positions (max_position_embeddings)"),
             (["--temperature", "-1"], "--temperature must be >= 0")]
    if not torch.cuda.is_available():
        cases.append((["--device", "cuda"], "sees no CUDA GPU: load on the CPU (--device cpu"))
    for args, message in cases:
        r = _run_sample_py("--model", tiny_model_dir, *args)
        assert r.returncode != 0 and "Traceback" not in r.stderr and message in r.stderr, (args, r.stderr)
    r = _run_sample_py("--help")
    assert r.returncode == 0 and "python sample.py --model" in r.stdout  # the docstring's commands
    assert re.search(r"--temperature +0.6 +0 = greedy", r.stdout)  # every field, its default and its comment
    r = _run_sample_py("--model", tiny_model_dir, "--prompt", "-h", "--n", "1", "--max_new_tokens", "2")
    # "-h" as a value is a prompt, not a request for help
    assert r.returncode == 0 and "--- sample 0" in r.stdout


def test_kv_budget_larger_than_every_slot_can_use_allocates_only_what_they_can(model):
    prompts = prompts_of([4, 1, 9], seed=3)
    kw = dict(n=2, max_new_tokens=9, eos_token_id=-1, temperature=1.0, seed=4)
    huge = generate(model, prompts, kv_tokens=10**13, **kw)  # 10^13 positions would be petabytes
    assert [c.tokens for c in huge] == [c.tokens for c in generate(model, prompts, **kw)]


def test_kv_budget_smaller_than_one_sample_is_refused(model):
    with pytest.raises(ValueError, match="cannot hold one sample"):
        generate(model, [[5, 6, 7]], max_new_tokens=30, eos_token_id=-1, kv_tokens=16, block_size=4)


def test_sample_py_poses_problems_with_the_instruction_eval_py_uses():
    """sample.py (the engine) does not import data.py: its default instruction is a copy, kept equal here."""
    import data
    from sample import SampleConfig
    assert SampleConfig().instruction + "What is 1 + 2?" == data.INSTRUCTION.format(problem="What is 1 + 2?")
