"""model.py against transformers' Qwen2ForCausalLM, and its packed, cached, chunked and FlashAttention paths
against the plain forward. Everything runs on CPU in fp32 with tiny models built here."""
import json
import math
import os
import re
import subprocess
import sys
from types import SimpleNamespace

import pytest
import torch

import model as M
import paged_attention
from conftest import ROOT, tiny_config
from model import KVCache, Qwen2
from sample import generate


def randomize_(module, seed, scale=0.2):
    """Every parameter random (biases and norm weights too, which the default init leaves at 0 and 1),
    so a swapped, dropped or mis-tied tensor changes the logits."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in module.named_parameters():
            p.copy_((1.0 if "norm" in name else 0.0) + scale * torch.randn(p.shape, generator=g))
    return module


def hf_qwen2(seed, tie, heads, kv_heads, theta, head_dim=None, hidden=48, vocab=97, layers=2):
    """A random transformers Qwen2ForCausalLM, fp32, transformers-5 config form (rope_parameters, dtype)."""
    from transformers import Qwen2Config as HFConfig
    from transformers import Qwen2ForCausalLM
    kw = dict(vocab_size=vocab, hidden_size=hidden, intermediate_size=2 * hidden + 8,
              num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=kv_heads,
              max_position_embeddings=256, rope_parameters={"rope_type": "default", "rope_theta": theta},
              rms_norm_eps=1e-6, tie_word_embeddings=tie, dtype="float32")
    if head_dim:
        kw["head_dim"] = head_dim
    torch.manual_seed(seed)
    return randomize_(Qwen2ForCausalLM(HFConfig(**kw)), seed).eval()


def tiny_model(tok, seed=0, **kw):
    torch.manual_seed(seed)
    return randomize_(Qwen2(tiny_config(tok, **kw)), seed).eval()


@pytest.fixture(scope="module")
def tok(tiny_model_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(tiny_model_dir)


def random_ids(vocab, *shape, seed=0):
    return torch.randint(0, vocab, shape, generator=torch.Generator().manual_seed(seed))


# -----------------------------------------------------------------------------
# Hugging Face parity and checkpoint formats

@pytest.mark.parametrize("tie,heads,kv_heads,theta,head_dim", [
    (True, 4, 4, 10000.0, None),      # tied, MHA (GQA ratio 1)
    (False, 4, 2, 1e6, None),         # untied, GQA 2
    (True, 6, 2, 12345.0, 16),        # tied, GQA 3, head_dim != hidden / heads
    (False, 4, 1, 500.0, None),       # untied, MQA (GQA 4)
])
def test_logits_equal_transformers_qwen2_so_no_weight_or_rope_mismatch(tmp_path, tie, heads, kv_heads, theta,
                                                                      head_dim):
    hf = hf_qwen2(seed=heads + kv_heads, tie=tie, heads=heads, kv_heads=kv_heads, theta=theta,
                  head_dim=head_dim)
    hf.save_pretrained(tmp_path)
    saved = json.load(open(tmp_path / "config.json"))
    # transformers-5 form
    assert "rope_parameters" in saved and "rope_theta" not in saved and "dtype" in saved
    model = Qwen2.from_pretrained(str(tmp_path), device="cpu")
    assert model.config.rope_theta == theta and model.config.tie_word_embeddings == tie
    assert (model.lm_head.weight is model.model.embed_tokens.weight) == tie
    idx = random_ids(97, 2, 40, seed=1)
    with torch.no_grad():
        ref = hf(idx).logits
        out = model(idx)
    assert ref.abs().max() > 1  # logits that vary, so the comparison is not between near-zeros
    torch.testing.assert_close(out, ref, rtol=1e-5, atol=1e-5)


def test_transformers4_r1_config_form_loads_with_its_rope_theta(tmp_path):
    """The config.json of the real R1-Distill checkpoints (transformers 4.44): rope_theta at the top level,
    torch_dtype, and sliding-window fields that are present but switched off."""
    hf = hf_qwen2(seed=3, tie=False, heads=4, kv_heads=2, theta=12345.0)
    hf.save_pretrained(tmp_path)
    d = json.load(open(tmp_path / "config.json"))
    for key in ("rope_parameters", "dtype", "layer_types"):
        d.pop(key, None)
    # R1 has 28 layers and max_window_layers 21; with 2 layers, 1 keeps max_window_layers < num_hidden_layers.
    d.update(rope_theta=12345.0, torch_dtype="float32", use_sliding_window=False, sliding_window=4096,
             max_window_layers=1, rope_scaling=None, use_mrope=False, transformers_version="4.44.0")
    json.dump(d, open(tmp_path / "config.json", "w"))
    model = Qwen2.from_pretrained(str(tmp_path), device="cpu")
    assert model.config.rope_theta == 12345.0 and model.config.torch_dtype == "float32"
    idx = random_ids(97, 1, 48, seed=2)
    with torch.no_grad():
        torch.testing.assert_close(model(idx), hf(idx).logits, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("max_shard_bytes", [5 * 2**30, 30_000])
def test_save_pretrained_loads_in_transformers_with_tokenizer_and_shards(tmp_path, tiny_model_dir, tok,
                                                                         max_shard_bytes):
    from transformers import AutoModelForCausalLM, AutoTokenizer
    model = tiny_model(tok, seed=5, tie_word_embeddings=True, num_key_value_heads=1, rope_theta=5e5)
    out = tmp_path / "saved"
    model.save_pretrained(str(out), tokenizer_dir=tiny_model_dir, max_shard_bytes=max_shard_bytes)
    shards = sorted(f for f in os.listdir(out) if f.endswith(".safetensors"))
    if max_shard_bytes < 2**20:
        assert len(shards) > 2 and (out / "model.safetensors.index.json").exists()
        index = json.load(open(out / "model.safetensors.index.json"))
        assert sorted(set(index["weight_map"].values())) == shards
        assert set(index["weight_map"]) == set(model.state_dict()) - {"lm_head.weight"}  # tied: stored once
    else:
        assert shards == ["model.safetensors"] and not (out / "model.safetensors.index.json").exists()

    idx = random_ids(len(tok), 2, 30, seed=3)
    with torch.no_grad():
        ref = model(idx)
        again = Qwen2.from_pretrained(str(out), device="cpu")
        assert again.lm_head.weight is again.model.embed_tokens.weight
        assert torch.equal(again(idx), ref)
        hf, info = AutoModelForCausalLM.from_pretrained(str(out), output_loading_info=True)
        assert not any(info[k] for k in ("missing_keys", "unexpected_keys", "mismatched_keys")), info
        assert hf.config.get_text_config().rope_parameters["rope_theta"] == 5e5
        torch.testing.assert_close(hf.eval()(idx).logits, ref, rtol=1e-5, atol=1e-5)

    tok2 = AutoTokenizer.from_pretrained(str(out))
    text = tok.apply_chat_template([{"role": "user", "content": "What is 12 + 30?"}], tokenize=False,
                                   add_generation_prompt=True)
    assert tok2.apply_chat_template([{"role": "user", "content": "What is 12 + 30?"}], tokenize=False,
                                    add_generation_prompt=True) == text
    assert tok2.encode(text, add_special_tokens=False) == tok.encode(text, add_special_tokens=False)
    assert tok2.eos_token_id == tok.eos_token_id and tok2.bos_token_id == tok.bos_token_id


def test_save_pretrained_copies_tokenizer_from_the_folder_it_was_loaded_from(tmp_path, tiny_model_dir):
    Qwen2.from_pretrained(tiny_model_dir, device="cpu").save_pretrained(str(tmp_path))
    assert (tmp_path / "tokenizer.json").exists() and (tmp_path / "tokenizer_config.json").exists()


# -----------------------------------------------------------------------------
# clear errors

def test_missing_folder_error_names_it(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        Qwen2.from_pretrained(str(tmp_path / "nope"))
    with pytest.raises(FileNotFoundError, match="no-such-model"):
        Qwen2.from_pretrained("no-such-model")


def test_folder_without_config_json_is_refused(tmp_path):
    (tmp_path / "model.safetensors").write_bytes(b"")
    with pytest.raises(FileNotFoundError, match="no config.json"):
        Qwen2.from_pretrained(str(tmp_path))


def test_folder_without_weights_is_refused(tmp_path, tiny_model_dir):
    (tmp_path / "config.json").write_text(open(os.path.join(tiny_model_dir, "config.json")).read())
    with pytest.raises(FileNotFoundError, match="model.safetensors"):
        Qwen2.from_pretrained(str(tmp_path))


def _write_config(folder, tiny_model_dir, **changes):
    d = json.load(open(os.path.join(tiny_model_dir, "config.json")))
    d.update(changes)
    json.dump(d, open(folder / "config.json", "w"))


def test_other_architecture_is_refused_not_misloaded(tmp_path, tiny_model_dir):
    _write_config(tmp_path, tiny_model_dir, model_type="llama", architectures=["LlamaForCausalLM"])
    with pytest.raises(ValueError, match="llama"):
        Qwen2.from_pretrained(str(tmp_path))


def test_sliding_window_in_use_is_refused(tmp_path, tiny_model_dir):
    _write_config(tmp_path, tiny_model_dir, use_sliding_window=True, sliding_window=16, max_window_layers=1)
    with pytest.raises(ValueError, match="sliding"):
        Qwen2.from_pretrained(str(tmp_path))


def test_rope_scaling_is_refused(tmp_path, tiny_model_dir):
    _write_config(tmp_path, tiny_model_dir, rope_scaling={"type": "yarn", "factor": 4.0})
    with pytest.raises(ValueError, match="RoPE"):
        Qwen2.from_pretrained(str(tmp_path))


def test_a_config_json_missing_a_key_or_not_json_is_an_error_naming_the_file(tmp_path, tiny_model_dir):
    # used to be KeyError: 'vocab_size', and a JSON parser's message naming no file
    path = str(tmp_path / "config.json")
    d = json.load(open(os.path.join(tiny_model_dir, "config.json")))
    del d["vocab_size"], d["hidden_size"]
    json.dump(d, open(path, "w"))
    with pytest.raises(ValueError, match=re.escape(f"{path}: missing vocab_size, hidden_size: copy the")):
        Qwen2.from_pretrained(str(tmp_path))
    (tmp_path / "config.json").write_text('{"vocab_size": 10,\n}')
    with pytest.raises(ValueError, match=re.escape(path) + " is not valid JSON .*line 2 column 1"):
        Qwen2.from_pretrained(str(tmp_path))


@pytest.mark.parametrize("edit, problem", [
    (lambda d: [d], "holds a JSON list, not an object of settings"),
    (lambda d: {**d, "num_key_value_heads": 0}, "num_key_value_heads must be a positive integer, got 0"),
    (lambda d: {**d, "hidden_size": "64"}, "hidden_size must be a positive integer, got '64'"),
    (lambda d: {**d, "num_hidden_layers": 2.5}, "num_hidden_layers must be a positive integer, got 2.5"),
    (lambda d: {**d, "rope_theta": "1e4"}, "rope_theta must be a positive number, got '1e4'"),
    (lambda d: {**d, "rms_norm_eps": None}, "rms_norm_eps must be a positive number, got None"),
    (lambda d: {**d, "tie_word_embeddings": "no"}, "tie_word_embeddings must be true or false, got 'no'"),
    (lambda d: {**d, "rope_scaling": "linear"}, "rope_parameters / rope_scaling must be an object"),
    (lambda d: {**d, "head_dim": "8"}, "head_dim must be an integer (0: hidden_size // num_attention_heads)"),
    (lambda d: {**d, "head_dim": 7}, "head_dim must be even and at least 2, got 7"),
    (lambda d: {**d, "rope_theta": 10**400}, "int too large to convert to float"),
])
def test_a_config_json_with_a_wrong_shape_or_type_is_an_error_naming_the_key(tmp_path, tiny_model_dir, edit,
                                                                                problem):
    # used to be AttributeError / ZeroDivisionError / a TypeError from inside torch
    for f in os.listdir(tiny_model_dir):
        if f != "config.json":
            os.symlink(os.path.join(tiny_model_dir, f), tmp_path / f)
    d = json.load(open(os.path.join(tiny_model_dir, "config.json")))
    json.dump(edit(d), open(tmp_path / "config.json", "w"))
    with pytest.raises(ValueError, match=re.escape(f"{tmp_path / 'config.json'}: {problem}")):
        Qwen2.from_pretrained(str(tmp_path))


def test_an_r1_config_with_an_integer_rope_theta_and_null_fields_loads_as_floats(tmp_path, tiny_model_dir):
    """The real R1-Distill config.json files write "rope_theta": 10000 (an int) and null for what they do not
    use; RoPE's frequencies are then computed from a float, as transformers does."""
    for f in os.listdir(tiny_model_dir):
        if f != "config.json":
            os.symlink(os.path.join(tiny_model_dir, f), tmp_path / f)
    d = json.load(open(os.path.join(tiny_model_dir, "config.json")))
    d.pop("rope_parameters", None)
    json.dump({**d, "rope_theta": 10000, "head_dim": None, "rope_scaling": None, "sliding_window": None},
              open(tmp_path / "config.json", "w"))
    config = Qwen2.from_pretrained(str(tmp_path)).config
    assert type(config.rope_theta) is float and config.rope_theta == 10000.0
    assert config.head_dim == d["hidden_size"] // d["num_attention_heads"]

def test_a_train_run_folder_passed_as_the_model_points_to_its_checkpoint(tmp_path, tiny_model_dir):
    """A run folder's config.json is the run's settings: it used to say only `model_type=None`."""
    (tmp_path / "config.json").write_text(json.dumps({"model": "toy-model", "iters": 20}))
    for d in ("iter_000010", "iter_000020", "iter_000030.tmp"):  # the last one: a save cut short
        (tmp_path / d).mkdir()
        _write_config(tmp_path / d, tiny_model_dir)
    with pytest.raises(ValueError, match="run folder: pass its checkpoint, .*iter_000020$"):
        Qwen2.from_pretrained(str(tmp_path))
    (tmp_path / "final").mkdir()
    _write_config(tmp_path / "final", tiny_model_dir)
    with pytest.raises(ValueError, match="model_type=None.*run folder: pass its checkpoint, .*final$"):
        Qwen2.from_pretrained(str(tmp_path))


def test_offline_hub_id_error_says_what_to_do_without_hub_traceback(tmp_path):
    env = dict(os.environ, HF_HUB_OFFLINE="1", HF_HOME=str(tmp_path / "hf"),
               HF_HUB_CACHE=str(tmp_path / "hub"))
    code = "from model import Qwen2; Qwen2.from_pretrained('someorg/somemodel')"
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert "FileNotFoundError" in r.stderr and "'someorg/somemodel'" in r.stderr
    assert "hf download someorg/somemodel" in r.stderr and "--model DIR" in r.stderr
    assert "huggingface_hub" not in r.stderr  # no frames from inside the hub library


# -----------------------------------------------------------------------------
# packed, scored, checkpointed and cached forwards against the plain one

def test_packed_forward_equals_separate_forwards_so_sequences_do_not_leak(tok):
    model = tiny_model(tok, seed=7)
    lens = [5, 1, 9, 3]
    seqs = [random_ids(len(tok), 1, n, seed=10 + i) for i, n in enumerate(lens)]
    tgts = [random_ids(len(tok), 1, n, seed=20 + i) for i, n in enumerate(lens)]
    cu = torch.tensor([0] + lens, dtype=torch.int32).cumsum(0, dtype=torch.int32)
    with torch.no_grad():
        packed = model(torch.cat(seqs, 1), cu_seqlens=cu)
        packed_lp = model(torch.cat(seqs, 1), torch.cat(tgts, 1), cu_seqlens=cu, temperature=0.7)
        torch.testing.assert_close(packed, torch.cat([model(s) for s in seqs], 1), rtol=1e-5, atol=1e-5)
        sep_lp = torch.cat([model(s, t, temperature=0.7) for s, t in zip(seqs, tgts)], 1)
        torch.testing.assert_close(packed_lp, sep_lp, rtol=1e-5, atol=1e-5)
        # not vacuous: the same tokens as one unpacked sequence give different logits after the first sequence
        assert not torch.allclose(model(torch.cat(seqs, 1))[:, lens[0]:], packed[:, lens[0]:], atol=1e-3)


def _ref_logprobs(logits, targets, temperature):
    logp = (torch.log_softmax(logits.float() / temperature, -1)
            .gather(-1, targets.clamp(min=0)[..., None])[..., 0])
    return torch.where(targets >= 0, logp, torch.zeros_like(logp))


def test_target_logprobs_equal_log_softmax_of_logits_with_temperature_and_ignored_targets(tok):
    model = tiny_model(tok, seed=8)
    idx = random_ids(len(tok), 3, 11, seed=1)
    targets = random_ids(len(tok), 3, 11, seed=2)
    targets[0, :4] = -1
    targets[2, -1] = -1
    model.logprob_chunk = 7  # 33 tokens: several chunks, the last one partial
    with torch.no_grad():
        logits = model(idx)
        for temperature in (1.0, 0.7):
            lp = model(idx, targets, temperature=temperature)
            assert lp.shape == (3, 11) and lp.dtype == torch.float32
            torch.testing.assert_close(lp, _ref_logprobs(logits, targets, temperature), rtol=1e-5, atol=1e-5)
            assert (lp[targets < 0] == 0).all() and (lp[targets >= 0] < 0).all()


@pytest.mark.parametrize("tie", [False, True])
def test_chunked_logprob_gradients_equal_unchunked(tok, monkeypatch, tie):
    model = tiny_model(tok, seed=9, tie_word_embeddings=tie)
    idx = random_ids(len(tok), 2, 9, seed=3)
    targets = random_ids(len(tok), 2, 9, seed=4)
    targets[1, :2] = -1
    w = torch.randn(2, 9, generator=torch.Generator().manual_seed(5))

    model.zero_grad()
    (_ref_logprobs(model(idx), targets, 0.8) * w).sum().backward()
    ref = {n: p.grad.clone() for n, p in model.named_parameters()}

    calls = []
    inner = M._target_logprobs
    monkeypatch.setattr(M, "_target_logprobs", lambda *a: calls.append(1) or inner(*a))
    model.logprob_chunk = 4  # 18 tokens: several chunks
    model.zero_grad()
    lp = model(idx, targets, temperature=0.8)
    chunks = len(calls)
    assert chunks >= 3
    (lp * w).sum().backward()
    # each chunk runs in the forward and again in the backward: its (tokens, vocab) logits are not kept
    assert len(calls) == 2 * chunks
    for n, p in model.named_parameters():
        assert ref[n].abs().max() > 0, n
        torch.testing.assert_close(p.grad, ref[n], rtol=1e-4, atol=1e-5 * ref[n].abs().max().item(),
                                   msg=lambda m: f"{n}: {m}")


def test_gradient_checkpointing_gives_same_gradients(tok):
    model = tiny_model(tok, seed=11).train()
    lens = [6, 4, 7]
    idx = random_ids(len(tok), 1, sum(lens), seed=6)
    targets = random_ids(len(tok), 1, sum(lens), seed=7)
    cu = torch.tensor([0, 6, 10, 17], dtype=torch.int32)

    def grads(checkpointing):
        model.gradient_checkpointing = checkpointing
        model.zero_grad()
        model(idx, targets, cu_seqlens=cu).sum().backward()
        return {n: p.grad.clone() for n, p in model.named_parameters()}

    calls = []
    hook = model.model.layers[0].register_forward_pre_hook(lambda *a: calls.append(1))
    plain = grads(False)
    assert len(calls) == 1
    ckpt = grads(True)
    assert len(calls) == 3  # the layer ran again in the backward: checkpointing was on
    hook.remove()
    for n in plain:
        torch.testing.assert_close(ckpt[n], plain[n], rtol=1e-5, atol=1e-7, msg=lambda m: f"{n}: {m}")


def test_kv_cached_decode_equals_full_forward_with_rows_at_different_positions(tok):
    model = tiny_model(tok, seed=12)
    prompt_lens, total = [1, 6, 3], 14
    seqs = random_ids(len(tok), 3, total, seed=8)
    with torch.no_grad():
        full = model(seqs)  # (3, 14, V): each row is one sequence from position 0
        cache = KVCache.empty(model.config, 3, total + 2, "cpu", torch.float32)
        # Right-padded prefill: garbage lands past each prompt, then seqlens says where each row really is.
        pre = model(seqs[:, :max(prompt_lens)], cache=cache)
        assert cache.seqlens.tolist() == [6, 6, 6]
        for b, n in enumerate(prompt_lens):
            torch.testing.assert_close(pre[b, :n], full[b, :n], rtol=1e-5, atol=1e-5)
        cache.seqlens = torch.tensor(prompt_lens, dtype=torch.int32)
        pos = list(prompt_lens)
        for step in range(total - max(prompt_lens)):
            nxt = torch.stack([seqs[b, p] for b, p in enumerate(pos)])[:, None]
            view = cache.prefix(max(pos) + 1)  # what sample.generate does: attend only the filled prefix
            out = model(nxt, cache=view)[:, 0]
            for b, p in enumerate(pos):  # logits up to ~6: fp32 sums in another order differ by ~1e-5
                torch.testing.assert_close(out[b], full[b, p], rtol=1e-5, atol=3e-5)
            pos = [p + 1 for p in pos]
            assert cache.seqlens.tolist() == pos
        # a multi-token step on top of the cache (chunked prefill), rows again at different positions
        starts = [2, 7, 4]
        cache.seqlens = torch.tensor(starts, dtype=torch.int32)
        out = model(torch.stack([seqs[b, s:s + 3] for b, s in enumerate(starts)]), cache=cache)
        for b, s in enumerate(starts):
            torch.testing.assert_close(out[b], full[b, s:s + 3], rtol=1e-5, atol=1e-5)


# -----------------------------------------------------------------------------
# FlashAttention path: flash-attn is CUDA only, so a pure-torch reference of its API semantics stands in.

def _ref_attend(q, k, v, offset):
    """q (Tq, H, D), k and v (Tk, Hkv, D). Query t sees keys j <= t + offset (offset = Tk - Tq: bottom-right
    aligned causal mask, flash-attn's convention). GQA: query head h uses KV head h // (H // Hkv)."""
    H, Hkv = q.shape[1], k.shape[1]
    k, v = k.repeat_interleave(H // Hkv, dim=1).float(), v.repeat_interleave(H // Hkv, dim=1).float()
    s = torch.einsum("qhd,khd->hqk", q.float(), k) / math.sqrt(q.shape[-1])  # (H, Tq, Tk)
    allowed = torch.arange(k.shape[0])[None] <= torch.arange(q.shape[0])[:, None] + offset
    p = s.masked_fill(~allowed, -float("inf")).softmax(-1)
    return torch.einsum("hqk,khd->qhd", p, v).to(q.dtype)


def ref_flash_attn_func(q, k, v, causal=False):
    assert causal and q.dim() == 4  # (B, T, H, D)
    return torch.stack([_ref_attend(q[b], k[b], v[b], k.shape[1] - q.shape[1]) for b in range(q.shape[0])])


def ref_flash_attn_varlen_func(q, k, v, cu_seqlens_q, cu_seqlens_k, max_seqlen_q, max_seqlen_k, causal=False):
    assert causal and q.dim() == 3  # (total, H, D)
    assert cu_seqlens_q.dtype == cu_seqlens_k.dtype == torch.int32
    cq, ck = cu_seqlens_q.tolist(), cu_seqlens_k.tolist()
    assert max(b - a for a, b in zip(cq, cq[1:])) <= max_seqlen_q
    assert max(b - a for a, b in zip(ck, ck[1:])) <= max_seqlen_k
    out = torch.empty_like(q)
    for a, b, c, d in zip(cq, cq[1:], ck, ck[1:]):
        out[a:b] = _ref_attend(q[a:b], k[c:d], v[c:d], (d - c) - (b - a))
    return out


def ref_flash_attn_with_kvcache(q, k_cache, v_cache, k=None, v=None, cache_seqlens=None, block_table=None,
                                causal=False):
    """Writes k, v into the caches in place at cache_seqlens[b] + t (cache_seqlens itself is not advanced),
    then query t of row b attends cache positions <= cache_seqlens[b] + t. With block_table the caches are
    (blocks, block_size, Hkv, D) pages and position p of row b is page block_table[b, p // block_size]."""
    assert causal and cache_seqlens.dtype == torch.int32 and k_cache.stride(-1) == 1
    B, T = q.shape[:2]
    out = torch.empty_like(q)
    for b in range(B):
        n = int(cache_seqlens[b])
        if block_table is None:
            kc, vc = k_cache[b], v_cache[b]
        else:
            assert block_table.dtype == torch.int32
            kc, vc = (k_cache[block_table[b].long()].flatten(0, 1),
                      v_cache[block_table[b].long()].flatten(0, 1))
        assert n + T <= kc.shape[0], "write past the end of the cache"
        if k is not None:
            kc[n:n + T], vc[n:n + T] = k[b], v[b]
            if block_table is not None:  # scatter the written positions back into their pages
                bs = k_cache.shape[1]
                for t in range(n, n + T):
                    page = int(block_table[b, t // bs])
                    k_cache[page, t % bs], v_cache[page, t % bs] = kc[t], vc[t]
        out[b] = _ref_attend(q[b], kc[:n + T], vc[:n + T], n)
    return out


def install_fake_flash(monkeypatch):
    """Route model.attention through the flash-attn API (the reference above); returns the call counts."""
    calls = {"func": 0, "varlen": 0, "kvcache": 0}

    def counted(name, fn):
        return lambda *a, **kw: calls.__setitem__(name, calls[name] + 1) or fn(*a, **kw)

    fake = SimpleNamespace(flash_attn_func=counted("func", ref_flash_attn_func),
                           flash_attn_varlen_func=counted("varlen", ref_flash_attn_varlen_func),
                           flash_attn_with_kvcache=counted("kvcache", ref_flash_attn_with_kvcache))
    monkeypatch.setattr(paged_attention, "flash_attn", fake)
    monkeypatch.setattr(paged_attention, "use_flash", lambda q: True)
    return calls


def test_flash_attention_path_equals_sdpa_path(tok, monkeypatch):
    """Plain, packed and cached forwards through the flash-attn API give the SDPA results."""
    model = tiny_model(tok, seed=13, num_attention_heads=4, num_key_value_heads=2)
    idx = random_ids(len(tok), 2, 12, seed=9)
    cu = torch.tensor([0, 5, 6, 12], dtype=torch.int32)

    @torch.no_grad()
    def run():
        plain = model(idx)
        packed = model(idx[:1], cu_seqlens=cu)
        cache = KVCache.empty(model.config, 2, 16, "cpu", torch.float32)
        pre = model(idx[:, :7], cache=cache)
        cache.seqlens = torch.tensor([3, 7], dtype=torch.int32)  # rows at different positions
        dec = model(torch.stack([idx[0, 3], idx[1, 7]])[:, None], cache=cache.prefix(8))
        return plain, packed, pre, dec

    sdpa = run()
    calls = install_fake_flash(monkeypatch)
    flash = run()
    L = model.config.num_hidden_layers
    assert calls == {"func": L, "varlen": L, "kvcache": 2 * L}  # every path went through the flash-attn API
    for a, b in zip(sdpa, flash):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-5)
    torch.testing.assert_close(sdpa[3][:, 0], torch.stack([sdpa[0][0, 3], sdpa[0][1, 7]]),
                               rtol=1e-5, atol=1e-5)


def test_generate_through_flash_attention_equals_sdpa(tok, monkeypatch):
    model = tiny_model(tok, seed=14)
    prompts = [random_ids(len(tok), n, seed=30 + n).tolist() for n in (1, 4, 9)]
    kw = dict(n=3, max_new_tokens=10, eos_token_id=tok.eos_token_id, temperature=1.0, seed=3, slots=4,
              sync_every=3)
    sdpa = generate(model, prompts, **kw)
    calls = install_fake_flash(monkeypatch)
    flash = generate(model, prompts, **kw)
    assert calls["kvcache"] > 0 and calls["func"] == calls["varlen"] == 0
    for a, b in zip(sdpa, flash):
        assert a.tokens == b.tokens and a.finished == b.finished
        torch.testing.assert_close(torch.tensor(b.logprobs), torch.tensor(a.logprobs), rtol=1e-5, atol=1e-5)


# -----------------------------------------------------------------------------
# CUDA only: bf16 numerics and the real FlashAttention kernels

cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")


@cuda
def test_bf16_cuda_logits_close_to_fp32(tiny_model_dir):
    idx = random_ids(300, 2, 64, seed=1)
    ref = Qwen2.from_pretrained(tiny_model_dir, device="cpu", dtype=torch.float32)(idx)
    model = Qwen2.from_pretrained(tiny_model_dir, device="cuda")  # bf16 by default on CUDA
    assert model.lm_head.weight.dtype == torch.bfloat16
    with torch.no_grad():
        out = model(idx.cuda()).float().cpu()
    assert (out - ref).abs().max() < 0.05 * ref.abs().max() + 0.02


@cuda
def test_cached_sdpa_attention_runs_on_a_fused_kernel_not_the_math_fallback(tok, monkeypatch):
    """Decoding with a mask and GQA must not need SDPA's math kernel (fp32 K and V copied per query head):
    with the math backend disallowed, a kernel-less call raises."""
    from torch.nn.attention import SDPBackend, sdpa_kernel
    monkeypatch.setattr(paged_attention, "use_flash", lambda q: False)
    model = tiny_model(tok, seed=3).to("cuda", torch.bfloat16)
    idx = random_ids(len(tok), 2, 9, seed=4).cuda()
    cache = KVCache.empty(model.config, 2, 16, "cuda", torch.bfloat16)
    with torch.no_grad(), sdpa_kernel([SDPBackend.EFFICIENT_ATTENTION, SDPBackend.FLASH_ATTENTION,
                                       SDPBackend.CUDNN_ATTENTION]):
        model(idx[:, :8], cache=cache)
        out = model(idx[:, 8:], cache=cache.prefix(9))
    ref = model(idx).float()
    assert (out[:, 0].float() - ref[:, 8]).abs().max() < 0.05 * ref.abs().max() + 0.02


@cuda
@pytest.mark.skipif(paged_attention.flash_attn is None, reason="flash-attn not installed")
def test_real_flash_attn_equals_sdpa_on_cuda(tok, monkeypatch):
    model = tiny_model(tok, seed=15).to("cuda", torch.bfloat16)
    idx = random_ids(len(tok), 2, 40, seed=2).cuda()
    cu = torch.tensor([0, 17, 18, 40], dtype=torch.int32, device="cuda")
    prompts = [random_ids(len(tok), n, seed=40 + n).tolist() for n in (1, 5, 12)]

    @torch.no_grad()
    def run():
        gen = generate(model, prompts, n=2, max_new_tokens=12, eos_token_id=-1, temperature=0)
        return model(idx).float(), model(idx[:1], cu_seqlens=cu).float(), [c.tokens for c in gen]

    assert paged_attention.use_flash(idx.new_zeros(1, dtype=torch.bfloat16))
    flash = run()
    monkeypatch.setattr(paged_attention, "use_flash", lambda q: False)
    sdpa = run()
    for a, b in zip(flash[:2], sdpa[:2]):
        assert (a - b).abs().max() < 0.05 * b.abs().max() + 0.02
    same = sum(x[:3] == y[:3] for x, y in zip(flash[2], sdpa[2]))
    assert same >= len(prompts)  # bf16 kernels may differ later on near-ties, not from the first tokens


def test_compiled_decoding_goes_around_flash_attn_which_torch_compile_cannot_trace(tok, monkeypatch,
                                                                                   traced_compile):
    """flash_attn_with_kvcache calls a C++ extension that torch.compile(fullgraph=True) cannot trace: with
    flash-attn installed, the compiled decode step must take the other path. Here the flash-attn API is
    our reference in Python (traceable), so a call from the compiled step would be counted, not crash."""
    torch._dynamo.reset()
    model = tiny_model(tok, seed=16)
    prompts = [random_ids(len(tok), n, seed=50 + n).tolist() for n in (3, 7)]
    kw = dict(n=2, max_new_tokens=8, eos_token_id=-1, temperature=1.0, seed=5, slots=4)
    sdpa = generate(model, prompts, **kw)
    decode_calls = []
    inner = ref_flash_attn_with_kvcache
    install_fake_flash(monkeypatch)
    paged_attention.flash_attn.flash_attn_with_kvcache = \
        lambda q, *a, **k: decode_calls.append(q.shape[1]) or inner(q, *a, **k)
    eager = generate(model, prompts, **kw)
    assert decode_calls.count(1) > 0  # eager decoding uses flash-attn
    decode_calls.clear()
    compiled = generate(model, prompts, compile=True, **kw)
    assert decode_calls and 1 not in decode_calls  # only the (eager) prefill; no compiled decode step
    assert [c.tokens for c in compiled] == [c.tokens for c in eager] == [c.tokens for c in sdpa]


def test_attention_inputs_arrive_in_one_dtype_under_autocast(tok, monkeypatch):
    """Under autocast the embedding output is fp32, so RoPE's cos and sin are too: q and k must still reach
    attention in the compute dtype, like v, or no fused kernel (flash-attn, cuDNN) takes them."""
    model = tiny_model(tok, seed=17).train()
    seen, inner = [], M.attention
    monkeypatch.setattr(M, "attention", lambda q, k, v, **kw: seen.append({q.dtype, k.dtype, v.dtype}) or
                        inner(q, k, v, **kw))
    idx = random_ids(len(tok), 1, 20, seed=3)
    cu = torch.tensor([0, 8, 20], dtype=torch.int32)
    with torch.autocast("cpu", dtype=torch.bfloat16):
        model(idx, targets=idx, cu_seqlens=cu).sum().backward()  # packed, as in training
        model(idx)
    assert seen and all(s == {torch.bfloat16} for s in seen), seen
