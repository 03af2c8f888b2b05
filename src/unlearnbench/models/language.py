"""Tiny language models trained from scratch, and the byte-level BPE tokenizer they use.

The tokenizer is trained offline on a data set's own text (Hugging Face ``tokenizers``) and
wrapped as a ``PreTrainedTokenizerFast``; it is saved beside the model so the pair loads
with ``AutoTokenizer`` / ``AutoModelForCausalLM`` like any Hugging Face model."""
from __future__ import annotations

import os
from typing import Iterable

import torch

from ..registry import models

PAD, BOS, EOS = "<pad>", "<bos>", "<eos>"


def train_tokenizer(texts: Iterable[str], vocab_size: int = 2048):
    """A byte-level BPE tokenizer trained on ``texts`` (deterministic for the same texts).
    Byte-level: any text encodes, including names the training text never held."""
    from tokenizers import Tokenizer, decoders, models as tok_models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(tok_models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, special_tokens=[PAD, BOS, EOS],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
                                  show_progress=False)
    tokenizer.train_from_iterator(list(texts), trainer)
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, pad_token=PAD, bos_token=BOS,
                                   eos_token=EOS, padding_side="right")


@models.register("tiny-llama", tasks=("language",))
def tiny_llama(tokenizer, seed: int, hidden: int = 128, layers: int = 4, heads: int = 4,
               max_length: int = 256):
    """A small Llama-architecture causal LM trained from scratch (the language benchmarks' model).

    Defaults: hidden 128, 4 layers, 4 heads, MLP 3x hidden, tied embeddings: about 1.1M
    parameters for a 2k-token vocabulary (the built-in benchmarks use 2 layers, 0.7M). Small
    enough to train on a laptop CPU in minutes, the same code path as a real Llama."""
    from transformers import LlamaConfig, LlamaForCausalLM

    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=3 * hidden,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        max_position_embeddings=max_length, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    return LlamaForCausalLM(config).eval()


def all_text(bundle) -> list[str]:
    """Every prompt and answer of every split (the tokenizer's training text)."""
    from ..data.text import prompt_and_answer

    texts = []
    for split in bundle.splits.values():
        for record in split.records:
            prompt, answer = prompt_and_answer(record)
            texts.extend(t for t in (prompt, answer) if t)
    return texts


def cached_tokenizer(bundle, cache, vocab_size: int):
    """The tokenizer trained on ``bundle``'s text, saved under the cache (trained once)."""
    from transformers import PreTrainedTokenizerFast

    from ..cache import content_key

    directory = cache.root / "tokenizers" / content_key(
        {"data": bundle.fingerprint(), "vocab_size": vocab_size})
    if (directory / "tokenizer.json").exists():
        return PreTrainedTokenizerFast.from_pretrained(str(directory))
    tokenizer = train_tokenizer(all_text(bundle), vocab_size)
    tmp = directory.with_name(f"{directory.name}.tmp{os.getpid()}")
    tokenizer.save_pretrained(str(tmp))
    os.replace(tmp, directory)  # whole or absent, never half-written
    return tokenizer


def language_model_for(model: str, bundle, cache, options: dict | None = None):
    """(tokenizer, make_model(seed)) for a benchmark's ``model``: a registered model trained
    from scratch (a tokenizer is trained on the data), a registered pretrained model (its
    own tokenizer; fetched into the cache), or the path of a Hugging Face model directory."""
    from ..errors import UserError
    from .pretrained import load_hf_model

    options = dict(options or {})
    if model in models and not models.get(model).attributes.get("pretrained"):
        entry = models.get(model)
        if "language" not in entry.attributes.get("tasks", ()):
            raise UserError(f"model {model!r} is not a language model; see "
                            "`unlearnbench list models`")
        tokenizer = cached_tokenizer(bundle, cache, options.pop("vocab_size", 2048))
        return tokenizer, lambda seed: entry.obj(tokenizer, seed, **options)
    # A registered pretrained model's converted directory, else a model directory or hub id.
    path = models.get(model).obj(cache.root) if model in models else model
    _, tokenizer = load_hf_model(str(path))
    return tokenizer, lambda seed: load_hf_model(str(path))[0]
