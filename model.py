"""
Qwen2, the architecture of the DeepSeek-R1-Distill models, in plain PyTorch.

Module and parameter names mirror the Hugging Face state-dict keys, so a checkpoint loads with a strict
`load_state_dict` and `save_pretrained` writes a folder that transformers and vLLM load as is.
One forward serves training (packed sequences), scoring (chunked log-probs) and KV-cached decoding.

    model = Qwen2.from_pretrained("deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B")  # or a local folder
    logits = model(idx)                                   # idx (B, T) -> (B, T, vocab)
    logp = model(idx, targets)                            # log-prob of each target token, (B, T)
"""
import json
import os
import shutil
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.utils.checkpoint import checkpoint


@dataclass
class Qwen2Config:
    vocab_size: int = 151936
    hidden_size: int = 1536
    intermediate_size: int = 8960  # SwiGLU inner width
    num_hidden_layers: int = 28
    num_attention_heads: int = 12
    num_key_value_heads: int = 2  # GQA: each KV head serves num_attention_heads // num_key_value_heads
    head_dim: int = 0  # 0 means hidden_size // num_attention_heads
    max_position_embeddings: int = 131072
    rope_theta: float = 10000.0
    rms_norm_eps: float = 1e-6
    tie_word_embeddings: bool = False
    bos_token_id: int = 151646
    eos_token_id: int = 151643
    torch_dtype: str = "bfloat16"  # dtype the weights are stored in

    def __post_init__(self):
        sizes = ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers", "num_attention_heads",
                 "num_key_value_heads", "max_position_embeddings")
        for k in sizes:  # a config.json written by hand: "12" or 12.5 would fail deep inside torch
            v = getattr(self, k)
            if type(v) is not int or v < 1:
                raise ValueError(f"{k} must be a positive integer, got {v!r}")
        for k in ("rope_theta", "rms_norm_eps"):
            v = getattr(self, k)
            if type(v) not in (int, float) or not 0 < v < float("inf"):
                raise ValueError(f"{k} must be a positive number, got {v!r}")
        if type(self.tie_word_embeddings) is not bool:
            raise ValueError(f"tie_word_embeddings must be true or false, got {self.tie_word_embeddings!r}")
        self.rope_theta = float(self.rope_theta)
        if type(self.head_dim) is not int:
            raise ValueError(f"head_dim must be an integer (0: hidden_size // num_attention_heads), got "
                             f"{self.head_dim!r}")
        self.head_dim = self.head_dim or self.hidden_size // self.num_attention_heads
        if self.head_dim < 2 or self.head_dim % 2:  # RoPE rotates pairs of a head's dimensions
            raise ValueError(f"head_dim must be even and at least 2, got {self.head_dim} (hidden_size "
                             f"{self.hidden_size}, {self.num_attention_heads} attention heads)")
        if self.num_attention_heads % self.num_key_value_heads:
            raise ValueError(f"num_attention_heads ({self.num_attention_heads}) must be a multiple of "
                             f"num_key_value_heads ({self.num_key_value_heads})")

    @classmethod
    def from_hf(cls, d):
        """Read a Hugging Face config.json dict, transformers-4 or -5 style; refuse what we would mis-run."""
        if not isinstance(d, dict):
            raise ValueError(f"holds a JSON {type(d).__name__}, not an object of settings: copy the config.json of "
                             "the model these weights came from")
        arch = d.get("architectures") or []
        if d.get("model_type") != "qwen2" and "Qwen2ForCausalLM" not in arch:
            raise ValueError(f"unsupported model: model_type={d.get('model_type')!r}, architectures={arch}; "
                             "model.py implements Qwen2 (DeepSeek-R1-Distill-Qwen) only")
        missing = [k for k in ("vocab_size", "hidden_size", "intermediate_size", "num_hidden_layers",
                               "num_attention_heads") if k not in d]
        if missing:
            raise ValueError(f"missing {', '.join(missing)}: copy the config.json of the model these weights "
                             "came from")
        rope = d.get("rope_parameters") or d.get("rope_scaling") or {}
        if not isinstance(rope, dict):
            raise ValueError(f"rope_parameters / rope_scaling must be an object, got {rope!r}")
        if rope.get("rope_type", rope.get("type", "default")) != "default":
            raise ValueError(f"unsupported RoPE scaling {rope}; only plain RoPE is implemented")
        n_layers = d["num_hidden_layers"]
        if d.get("use_sliding_window") and d.get("max_window_layers", n_layers) < n_layers:
            raise ValueError("this config uses sliding-window attention, which model.py does not implement")
        dtype = d.get("torch_dtype") or d.get("dtype") or "float32"
        return cls(vocab_size=d["vocab_size"], hidden_size=d["hidden_size"],
                   intermediate_size=d["intermediate_size"], num_hidden_layers=n_layers,
                   num_attention_heads=d["num_attention_heads"],
                   num_key_value_heads=d.get("num_key_value_heads", d["num_attention_heads"]),
                   head_dim=d.get("head_dim") or 0,
                   max_position_embeddings=d.get("max_position_embeddings", 32768),
                   rope_theta=d.get("rope_theta", rope.get("rope_theta", 10000.0)),
                   rms_norm_eps=d.get("rms_norm_eps", 1e-6),
                   tie_word_embeddings=d.get("tie_word_embeddings", False),
                   bos_token_id=d.get("bos_token_id"), eos_token_id=d.get("eos_token_id"),
                   torch_dtype=str(dtype).replace("torch.", ""))

    def to_hf(self):
        d = {k: v for k, v in asdict(self).items()}
        d.update(architectures=["Qwen2ForCausalLM"], model_type="qwen2", hidden_act="silu",
                 attention_dropout=0.0, initializer_range=0.02, use_cache=True,
                 use_sliding_window=False, sliding_window=None, max_window_layers=self.num_hidden_layers)
        return d


# -----------------------------------------------------------------------------
# attention

def attention(q, k, v, cu_seqlens=None, max_seqlen=None, cache=None):
    """Causal attention in FlashAttention's layout: q (B, T, H, D), k and v (B, T, Hkv, D) -> (B, T, H, D).

    - plain: every row of the batch is one sequence starting at position 0.
    - packed (cu_seqlens, int32 (S+1,), with B = 1): the T tokens are S sequences laid end to end;
      sequence s is tokens cu_seqlens[s]:cu_seqlens[s+1] and attends only within itself.
    - cached (cache = (k_cache, v_cache, cache_seqlens, block_table)): the new tokens continue the cached
      rows; paged_attention.cached_attention writes them into the cache and picks the kernel.
    FlashAttention when it is installed and q is a CUDA half tensor, PyTorch SDPA otherwise.
    """
    import paged_attention  # the optional kernels (flash-attn, Triton): imported on first use, not with us
    if cache is not None:
        return paged_attention.cached_attention(q, k, v, *cache)
    flash = paged_attention.flash_attn if paged_attention.use_flash(q) else None
    if cu_seqlens is not None:
        if flash:
            return flash.flash_attn_varlen_func(q[0], k[0], v[0], cu_seqlens, cu_seqlens, max_seqlen,
                                                max_seqlen, causal=True)[None]
        lens = cu_seqlens.diff().tolist()  # SDPA has no packed layout: one call per sequence, split (whose
        # backward is one cat) rather than sliced (whose backward adds a zero-padded copy of each piece)
        return torch.cat([attention(*qkv) for qkv in zip(q.split(lens, 1), k.split(lens, 1), v.split(lens, 1))], 1)
    if flash:
        return flash.flash_attn_func(q, k, v, causal=True)
    y = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2),
                                       is_causal=True, enable_gqa=True)
    return y.transpose(1, 2)


# -----------------------------------------------------------------------------
# the model

class RMSNorm(nn.Module):
    def __init__(self, dim, eps):
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x):
        dtype = x.dtype  # normalise in fp32, as Hugging Face does, then scale in the input dtype
        x = x.float()
        x = x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * x.to(dtype)


def rope_cos_sin(pos, head_dim, theta, dtype):
    """cos and sin for positions pos (B, T): each (B, T, 1, head_dim), computed in fp32."""
    inv_freq = 1.0 / theta ** (torch.arange(0, head_dim, 2, device=pos.device, dtype=torch.float32)
                               / head_dim)
    freqs = pos[..., None].float() * inv_freq  # (B, T, D/2)
    emb = torch.cat([freqs, freqs], -1)[:, :, None]  # (B, T, 1, D)
    return emb.cos().to(dtype), emb.sin().to(dtype)


def apply_rope(x, cos, sin):
    """Rotate x in x's dtype: under autocast cos and sin are fp32 (from the fp32 embedding output) and would
    promote a bf16 q and k to fp32, so that attention got (fp32, fp32, bf16) and no fused kernel."""
    x1, x2 = x.chunk(2, dim=-1)
    return (x * cos + torch.cat([-x2, x1], -1) * sin).to(x.dtype)


class Qwen2Attention(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.H, self.Hkv, self.D = cfg.num_attention_heads, cfg.num_key_value_heads, cfg.head_dim
        self.q_proj = nn.Linear(cfg.hidden_size, self.H * self.D, bias=True)
        self.k_proj = nn.Linear(cfg.hidden_size, self.Hkv * self.D, bias=True)
        self.v_proj = nn.Linear(cfg.hidden_size, self.Hkv * self.D, bias=True)
        self.o_proj = nn.Linear(self.H * self.D, cfg.hidden_size, bias=False)

    def forward(self, x, cos, sin, **attn_kwargs):
        B, T, _ = x.shape
        q = apply_rope(self.q_proj(x).view(B, T, self.H, self.D), cos, sin)
        k = apply_rope(self.k_proj(x).view(B, T, self.Hkv, self.D), cos, sin)
        v = self.v_proj(x).view(B, T, self.Hkv, self.D)
        y = attention(q, k, v, **attn_kwargs)  # (B, T, H, D)
        return self.o_proj(y.reshape(B, T, self.H * self.D))


class Qwen2MLP(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.gate_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.up_proj = nn.Linear(cfg.hidden_size, cfg.intermediate_size, bias=False)
        self.down_proj = nn.Linear(cfg.intermediate_size, cfg.hidden_size, bias=False)

    def forward(self, x):
        return self.down_proj(F.silu(self.gate_proj(x)) * self.up_proj(x))


class Qwen2DecoderLayer(nn.Module):
    def __init__(self, cfg):
        super().__init__()
        self.self_attn = Qwen2Attention(cfg)
        self.mlp = Qwen2MLP(cfg)
        self.input_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)
        self.post_attention_layernorm = RMSNorm(cfg.hidden_size, cfg.rms_norm_eps)

    def forward(self, x, cos, sin, **attn_kwargs):
        x = x + self.self_attn(self.input_layernorm(x), cos, sin, **attn_kwargs)
        return x + self.mlp(self.post_attention_layernorm(x))


@dataclass
class KVCache:
    """Preallocated keys and values of every layer, k and v (layers, B, L, Hkv, D), and seqlens (B,) int32:
    how many positions of each row are filled. The forward writes new tokens at seqlens and advances it.
    Paged: k and v are (layers, blocks, block_size, Hkv, D) and block_table (B, n) maps rows to blocks."""
    k: torch.Tensor
    v: torch.Tensor
    seqlens: torch.Tensor
    block_table: torch.Tensor = None

    @classmethod
    def empty(cls, cfg, batch_size, max_len, device, dtype):
        shape = (cfg.num_hidden_layers, batch_size, max_len, cfg.num_key_value_heads, cfg.head_dim)
        return cls(torch.zeros(shape, device=device, dtype=dtype),
                   torch.zeros(shape, device=device, dtype=dtype),
                   torch.zeros(batch_size, device=device, dtype=torch.int32))

    @staticmethod
    def bytes_per_token(cfg, dtype):
        """Bytes of keys and values that one position takes over all layers."""
        return 2 * cfg.num_hidden_layers * cfg.num_key_value_heads * cfg.head_dim * dtype.itemsize

    def prefix(self, n):
        """A view of the first n positions (SDPA then reads only those); writes go to the same memory."""
        if self.block_table is not None:
            bs = self.k.shape[2]
            return KVCache(self.k, self.v, self.seqlens, self.block_table[:, :-(-n // bs)])
        return KVCache(self.k[:, :, :n], self.v[:, :, :n], self.seqlens)


class Qwen2(nn.Module):
    def __init__(self, config):
        super().__init__()
        self.config = config
        self.model = nn.Module()  # the `model.` prefix of the Hugging Face keys
        self.model.embed_tokens = nn.Embedding(config.vocab_size, config.hidden_size)
        self.model.layers = nn.ModuleList(Qwen2DecoderLayer(config) for _ in range(config.num_hidden_layers))
        self.model.norm = RMSNorm(config.hidden_size, config.rms_norm_eps)
        self.lm_head = nn.Linear(config.hidden_size, config.vocab_size, bias=False)
        if config.tie_word_embeddings:
            self.lm_head.weight = self.model.embed_tokens.weight
        self.gradient_checkpointing = False  # recompute each layer in the backward to save activations
        self.logprob_chunk = 1024  # tokens per chunk of the (tokens, vocab) logits when targets are given
        self.source = None  # folder the weights came from; its tokenizer files are copied on save
        self.apply(self._init_weights)

    @staticmethod
    def _init_weights(m):
        if isinstance(m, (nn.Linear, nn.Embedding)):
            nn.init.normal_(m.weight, std=0.02)
        if isinstance(m, nn.Linear) and m.bias is not None:
            nn.init.zeros_(m.bias)

    def forward(self, idx, targets=None, cu_seqlens=None, cache=None, temperature=1.0, last_only=False):
        """idx (B, T) token ids. Returns logits (B, T, vocab), or with targets (B, T) the fp32 log-prob of
        each target under softmax(logits / temperature), (B, T), 0 where the target is negative (ignored).

        cu_seqlens (int32, S+1): idx is (1, T) holding S packed sequences (see `attention`).
        cache (KVCache): row b continues its cached sequence at position cache.seqlens[b].
        last_only: logits of the last position only, (B, 1, vocab): a prefill needs no more.
        """
        B, T = idx.shape
        if cache is not None:
            pos = cache.seqlens[:, None].long() + torch.arange(T, device=idx.device)
        elif cu_seqlens is not None:
            starts = torch.repeat_interleave(cu_seqlens[:-1], cu_seqlens.diff(), output_size=T)
            pos = (torch.arange(T, device=idx.device) - starts)[None]
        else:
            pos = torch.arange(T, device=idx.device)[None].expand(B, T)
        x = self.model.embed_tokens(idx)
        cos, sin = rope_cos_sin(pos, self.config.head_dim, self.config.rope_theta, x.dtype)
        kw = {}
        if cu_seqlens is not None:
            kw = dict(cu_seqlens=cu_seqlens, max_seqlen=int(cu_seqlens.diff().max()))
        for i, layer in enumerate(self.model.layers):
            if cache is not None:
                kw = dict(cache=(cache.k[i], cache.v[i], cache.seqlens, cache.block_table))
            if self.gradient_checkpointing and self.training and torch.is_grad_enabled():
                x = checkpoint(layer, x, cos, sin, use_reentrant=False, **kw)
            else:
                x = layer(x, cos, sin, **kw)
        if cache is not None:
            cache.seqlens += T
        x = self.model.norm(x[:, -1:] if last_only else x)
        if targets is None:
            return self.lm_head(x)
        # The full (B, T, vocab) fp32 logits would not fit for long responses (vocab 152k): compute them a
        # chunk of positions at a time, and recompute each chunk in the backward instead of keeping it.
        step = max(1, self.logprob_chunk // B)
        chunks = []
        for a in range(0, T, step):
            args = (x[:, a:a + step], targets[:, a:a + step], self.lm_head.weight, temperature)
            chunks.append(checkpoint(_target_logprobs, *args, use_reentrant=False) if x.requires_grad
                          else _target_logprobs(*args))
        return torch.cat(chunks, 1)  # (B, T)

    # -------------------------------------------------------------------------
    # Hugging Face checkpoints

    @classmethod
    def from_pretrained(cls, path, device=None, dtype=None):
        """Load a local Hugging Face folder or a hub id. Default device: CUDA if available, else CPU;
        default dtype: bf16 on GPU, fp32 on CPU."""
        folder = _resolve(path)
        config_path = os.path.join(folder, "config.json")
        try:
            with open(config_path) as f:
                config = Qwen2Config.from_hf(json.load(f))
        except json.JSONDecodeError as e:
            raise ValueError(f"{config_path} is not valid JSON ({e}): copy the config.json of the model these "
                             "weights came from") from None
        except (ValueError, TypeError, OverflowError) as e:  # a key missing or mistyped, another model: name it
            raise ValueError(f"{config_path}: {e}{_checkpoint_hint(folder)}") from None
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
        if device.type == "cuda" and not torch.cuda.is_available():
            raise ValueError(f"device {device} asked for, but this torch {torch.__version__} "
                             "sees no CUDA GPU: load on the CPU (--device cpu in the scripts), "
                             "or install a CUDA build of torch on a GPU machine")
        dtype = dtype or (torch.bfloat16 if device.type == "cuda" else torch.float32)
        with torch.device("meta"):
            model = cls(config)
        sd = _load_safetensors(folder)
        if config.tie_word_embeddings and "model.embed_tokens.weight" in sd:
            sd["lm_head.weight"] = sd["model.embed_tokens.weight"]
        sd = {k: v.to(device=device, dtype=dtype) for k, v in sd.items()}
        try:
            model.load_state_dict(sd, strict=True, assign=True)
        except RuntimeError as e:  # missing, unexpected or mis-shaped tensors: say so in one line
            detail = " ".join(str(e).split())
            raise ValueError(f"the weights in {folder!r} do not match its config.json: "
                             f"{detail[:300]}") from None
        if config.tie_word_embeddings:
            model.lm_head.weight = model.model.embed_tokens.weight
        model.source = folder
        return model

    def save_pretrained(self, out_dir, tokenizer_dir=None, max_shard_bytes=5 * 2**30):
        """Write config.json and safetensors (sharded past max_shard_bytes, with the index file), and copy
        the tokenizer files from tokenizer_dir (default: the folder the model was loaded from)."""
        from safetensors.torch import save_file
        os.makedirs(out_dir, exist_ok=True)
        sd = {k: v.detach().to("cpu").contiguous() for k, v in self.state_dict().items()}
        if self.config.tie_word_embeddings:
            del sd["lm_head.weight"]  # Hugging Face stores tied weights once
        shards, size = [{}], 0
        for k, v in sd.items():
            n = v.numel() * v.element_size()
            if shards[-1] and size + n > max_shard_bytes:
                shards.append({})
                size = 0
            shards[-1][k], size = v, size + n
        names = ["model.safetensors"] if len(shards) == 1 else \
            [f"model-{i + 1:05d}-of-{len(shards):05d}.safetensors" for i in range(len(shards))]
        for name, shard in zip(names, shards):
            save_file(shard, os.path.join(out_dir, name), metadata={"format": "pt"})
        if len(shards) > 1:
            index = {"metadata": {"total_size": sum(v.numel() * v.element_size() for v in sd.values())},
                     "weight_map": {k: name for name, shard in zip(names, shards) for k in shard}}
            with open(os.path.join(out_dir, "model.safetensors.index.json"), "w") as f:
                json.dump(index, f, indent=2)
        config = self.config.to_hf()
        config["torch_dtype"] = str(next(iter(sd.values())).dtype).replace("torch.", "")
        with open(os.path.join(out_dir, "config.json"), "w") as f:
            json.dump(config, f, indent=2)
        src = tokenizer_dir or self.source
        for name in TOKENIZER_FILES:
            if (src and os.path.exists(os.path.join(src, name))
                    and os.path.abspath(src) != os.path.abspath(out_dir)):
                shutil.copy(os.path.join(src, name), os.path.join(out_dir, name))


TOKENIZER_FILES = ["tokenizer.json", "tokenizer_config.json", "special_tokens_map.json", "vocab.json",
                   "merges.txt", "chat_template.jinja", "generation_config.json"]


def _target_logprobs(x, targets, weight, temperature):
    logits = (x @ weight.T).float() / temperature  # (B, t, vocab) in fp32: log-softmax over 152k needs it
    logp = logits.gather(-1, targets.clamp(min=0)[..., None])[..., 0] - logits.logsumexp(-1)
    return torch.where(targets >= 0, logp, 0.0)


def _resolve(path):
    """A local folder as is (a relative one is also looked for next to this file: toy-model from anywhere);
    otherwise a hub id, downloaded (or found in the cache) with huggingface_hub."""
    if not path.strip():  # "" would be this file's own folder, "missing its config.json"
        raise FileNotFoundError("the model path is empty: pass a local Hugging Face folder or a hub id like "
                                "'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B'")
    here = os.path.join(os.path.dirname(os.path.abspath(__file__)), path)
    if not os.path.isdir(path) and not os.path.isabs(path) and os.path.isdir(here):
        path = here
    if os.path.isdir(path):
        if not os.path.exists(os.path.join(path, "config.json")):
            raise FileNotFoundError(f"model folder {path!r} has no config.json: "
                                    "is it a Hugging Face model folder?")
        return path
    if path.startswith((".", "/", "~")) or path.count("/") != 1:
        raise FileNotFoundError(f"model folder {path!r} does not exist (and it is not a hub id like "
                                "'deepseek-ai/DeepSeek-R1-Distill-Qwen-1.5B')")
    from huggingface_hub import snapshot_download
    patterns = ["*.json", "*.safetensors", "*.txt", "*.jinja"]
    try:
        return snapshot_download(path, allow_patterns=patterns)
    except Exception as e:
        raise FileNotFoundError(
            f"could not get {path!r} from the Hugging Face hub ({type(e).__name__}): it is not a local "
            f"folder either. If you are offline, download it where you have internet (`hf download {path} "
            f"--local-dir DIR`), copy DIR here and pass --model DIR.") from None


def _checkpoint_hint(folder):
    """A train.py run folder holds the run's settings as config.json and its models in final/ and iter_*/:
    say which to pass instead."""
    found = [d for d in os.listdir(folder) if (d == "final" or (d.startswith("iter_") and d[5:].isdigit()))
             and os.path.exists(os.path.join(folder, d, "config.json"))]
    if not found:
        return ""
    best = max(found, key=lambda d: (d == "final", d))  # final, else the latest iteration
    return f". {folder!r} looks like a train.py run folder: pass its checkpoint, {os.path.join(folder, best)}"


def _load_safetensors(folder):
    from safetensors.torch import load_file
    index = os.path.join(folder, "model.safetensors.index.json")
    if os.path.exists(index):
        with open(index) as f:
            files = sorted(set(json.load(f)["weight_map"].values()))
    elif os.path.exists(os.path.join(folder, "model.safetensors")):
        files = ["model.safetensors"]
    else:
        raise FileNotFoundError(f"no model.safetensors (or model.safetensors.index.json) in {folder!r}")
    sd = {}
    for name in files:
        try:
            sd.update(load_file(os.path.join(folder, name)))
        except Exception as e:  # safetensors' own errors: a truncated or corrupt file
            raise ValueError(f"cannot read {os.path.join(folder, name)!r} ({type(e).__name__}: {e}): "
                             "is the file complete (an interrupted download or copy)?") from None
    return sd


def load_tokenizer(folder, chat=False):
    """The tokenizer saved beside a model's weights, through transformers. A folder without one is refused:
    transformers would build an empty tokenizer, and the failure would surface later, elsewhere. chat=True
    (the scripts that evaluate) also renders a message through its chat template, as evaluation prompts
    are: a missing or broken template fails here, not after the training or sampling that comes first."""
    if not (os.path.exists(os.path.join(folder, "tokenizer.json"))
            or (os.path.exists(os.path.join(folder, "vocab.json"))
                and os.path.exists(os.path.join(folder, "merges.txt")))):
        raise FileNotFoundError(f"model folder {folder!r} has no tokenizer "
                                "(tokenizer.json, or vocab.json and merges.txt): "
                                "copy the tokenizer files of the model it came from into it")
    from transformers import AutoTokenizer
    try:
        tok = AutoTokenizer.from_pretrained(folder)
    except Exception as e:  # a corrupt tokenizer.json or tokenizer_config.json: transformers' message names neither
        raise ValueError(f"cannot load the tokenizer in {folder!r} ({type(e).__name__}: {e}): are its "
                         "tokenizer files (tokenizer.json, tokenizer_config.json) complete?") from None
    if chat:
        try:
            tok.apply_chat_template([{"role": "user", "content": "1 + 1"}], tokenize=False,
                                    add_generation_prompt=True)
        except Exception as e:  # no template (ValueError), or a Jinja syntax or rendering error
            raise ValueError(f"the tokenizer in {folder!r} cannot render a chat template ({type(e).__name__}: "
                             f"{e}); evaluation prompts go through it: copy chat_template.jinja (or "
                             "tokenizer_config.json's chat_template) from the model it came from") from None
    return tok
