"""
The built-in task: a tiny reasoning model that overthinks, so the length penalty has something to cut.

This file is shared by train.py (--preset toy), eval.py (--benchmark toy) and the tests.
"""
import os

# The DeepSeek-R1 special tokens, spelled as in the real tokenizer (full-width bars, U+2581 spaces).
BOS = "<｜begin▁of▁sentence｜>"
EOS = "<｜end▁of▁sentence｜>"
USER = "<｜User｜>"
ASSISTANT = "<｜Assistant｜>"
THINK, END_THINK = "<think>", "</think>"

# A trimmed R1 chat template: BOS, user turns, assistant turns closed by EOS, and the later revision's
# generation prompt that opens the thinking block.
CHAT_TEMPLATE = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}"
    "{% elif m['role'] == 'user' %}{{ '<｜User｜>' + m['content'] }}"
    "{% elif m['role'] == 'assistant' %}{{ '<｜Assistant｜>' + m['content'] + '<｜end▁of▁sentence｜>' }}"
    "{% endif %}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<｜Assistant｜><think>\\n' }}{% endif %}"
)

# Qwen2's pre-tokenizer split. transformers' Qwen2Tokenizer re-applies it to any folder whose config
# says qwen2, so a tokenizer trained with another split would tokenise differently once reloaded.
QWEN2_SPLIT = (r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}|"""
               r""" ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+""")


def build_tokenizer(texts, vocab_size=512, out_dir=None):
    """Train a byte-level BPE tokenizer on `texts` with the R1 special tokens and chat template.

    Token ids: 0 EOS (also pad), 1 User, 2 Assistant, 3 BOS, then bytes and merges, then <think>, </think>.
    Returns a transformers PreTrainedTokenizerFast; also saved to `out_dir` when given.
    """
    from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast
    tok = Tokenizer(models.BPE())
    tok.normalizer = normalizers.NFC()
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(QWEN2_SPLIT), behavior="isolated"),
        pre_tokenizers.ByteLevel(add_prefix_space=False, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 2, special_tokens=[EOS, USER, ASSISTANT, BOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator(texts, trainer)
    # <think> and </think> are added but not special, as in R1: skip_special_tokens keeps them.
    tok.add_tokens([AddedToken(THINK, special=False), AddedToken(END_THINK, special=False)])
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS, pad_token=EOS,
                                 unk_token=None, chat_template=CHAT_TEMPLATE)
    hf.add_special_tokens({"additional_special_tokens": [USER, ASSISTANT]})
    if out_dir is not None:
        os.makedirs(out_dir, exist_ok=True)
        hf.save_pretrained(out_dir)
    return hf
