"""A tiny mixture-of-experts language model (Mixtral's architecture) trained from scratch, and
what methods and metrics read from a model's routers.

An MoE block holds a router (``gate``: a linear map from the hidden state to one logit per
expert) and its experts; each token goes to the top-k experts of the router's softmax, the
"gate probabilities" read here."""
from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from ..registry import models


@models.register("tiny-moe", tasks=("language",))
def tiny_moe(tokenizer, seed: int, hidden: int = 128, layers: int = 4, heads: int = 4,
             experts: int = 4, top_k: int = 2, max_length: int = 256):
    """A small Mixtral-architecture causal LM (4 experts, top-2 routing) trained from scratch.

    Each expert's MLP is 1.5x hidden wide, so the two experts a token uses hold as many units
    as the tiny Llama's 3x MLP: the same compute per token, 4/2 = 2x the MLP parameters (about
    1.0M parameters at 2 layers and a 2k-token vocabulary). Trained with the plain answer NLL:
    no load-balancing loss (the tiny benchmarks need no balance across devices)."""
    from transformers import MixtralConfig, MixtralForCausalLM

    config = MixtralConfig(
        vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=3 * hidden // 2,
        num_hidden_layers=layers, num_attention_heads=heads, num_key_value_heads=heads,
        num_local_experts=experts, num_experts_per_tok=top_k,
        max_position_embeddings=max_length, tie_word_embeddings=True,
        pad_token_id=tokenizer.pad_token_id, bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id)
    torch.manual_seed(seed)
    return MixtralForCausalLM(config).eval()


def moe_blocks(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(qualified name, block) of every MoE block, in depth order: a module with a router
    (``gate``) and ``experts`` whose weights are stacked per expert (``gate_up_proj``,
    ``down_proj``: (experts, ...), as transformers stores Mixtral's and OLMoE's)."""
    return [(name, module) for name, module in model.named_modules()
            if hasattr(module, "gate") and hasattr(getattr(module, "experts", None),
                                                   "gate_up_proj")]


def has_routers(model: nn.Module) -> bool:
    return bool(moe_blocks(model))


def gate_probabilities(model: nn.Module, forward: Callable[[], object]) -> list[torch.Tensor]:
    """Per MoE block, (tokens, experts): the softmax of its router's logits for every token
    (padding included, batch-major) of the forward pass ``forward()`` runs on ``model``,
    with gradients where the pass has them."""
    seen: list[torch.Tensor] = []

    def hook(_module, _inputs, output):
        logits = output[0] if isinstance(output, tuple) else output
        seen.append(torch.softmax(logits.float(), dim=-1))

    handles = [block.gate.register_forward_hook(hook) for _, block in moe_blocks(model)]
    try:
        forward()
    finally:
        for handle in handles:
            handle.remove()
    return seen
