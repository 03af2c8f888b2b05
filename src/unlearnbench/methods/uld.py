"""Unlearning from Logit Difference (ULD, Ji et al. 2024, "Reversing the Forget-Retain
Objectives: An Efficient LLM Unlearning Framework from Logit Difference").

A small assistant model is trained with the reversed objectives (remember the forget set,
forget the retain set); the unlearned model is the pair (target, assistant), whose next-token
logits are the target's minus ``w`` times the assistant's on the tokens the target finds
plausible. The pair is an ordinary ``nn.Module`` with the interface ``LanguageTask`` uses
(``model(input_ids=, attention_mask=)`` with ``.logits``, ``.generate(...)``), so every
language metric scores it like any other model."""
from __future__ import annotations

import copy
import inspect
import math
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import UserError
from ..params import param
from ..registry import methods
from ..train import make_optimizer, optimise
from ._shared import decoder_layers, greedy_inputs
from .base import UnlearnContext
from .lm_objectives import retain_stream


# -- the combination ----------------------------------------------------------------------

def plausible_tokens(target_logits: torch.Tensor, relative_top: float) -> torch.Tensor:
    """Bool mask, same shape as ``target_logits``: the tokens the logit difference applies to.

    As the reference implementation (DoLa's relative-top filter as the ULD code sets it): a
    token is plausible if its target probability is at least ``relative_top`` times the top
    token's, or if it is among the ``int(relative_top·V)`` most probable tokens (at least one).
    ``relative_top`` 0 switches the filter off (every token plausible)."""
    if relative_top <= 0:
        return torch.ones_like(target_logits, dtype=torch.bool)
    log_probs = target_logits.float().log_softmax(-1)
    threshold = log_probs.max(-1, keepdim=True).values + math.log(relative_top)
    keep = min(max(1, int(relative_top * log_probs.shape[-1])), log_probs.shape[-1])
    kth = log_probs.topk(keep, dim=-1).values[..., -1:]
    return log_probs >= torch.minimum(threshold, kth)


def logit_difference(target_logits: torch.Tensor, assistant_logits: torch.Tensor,
                     weight: float, relative_top: float) -> torch.Tensor:
    """z_target − w·z_assistant on the plausible tokens, z_target elsewhere (the reference
    code zeroes the assistant's logits outside the plausible set)."""
    plausible = plausible_tokens(target_logits, relative_top)
    assistant = torch.where(plausible, assistant_logits.to(target_logits.dtype),
                            torch.zeros((), dtype=target_logits.dtype,
                                        device=target_logits.device))
    return target_logits - weight * assistant


def uniform_kl(logits: torch.Tensor) -> torch.Tensor:
    """KL(uniform ‖ softmax(logits)) per row: −log V − mean_v log p_v (0 for a uniform row).
    The cross-entropy to the uniform distribution minus its constant log V."""
    log_probs = logits.float().log_softmax(-1)
    return -math.log(logits.shape[-1]) - log_probs.mean(-1)


class LogitDifferenceModel(nn.Module):
    """The unlearned model of ULD: a frozen target and a trained assistant sharing a tokenizer.

    ``target`` is held as it is given (ULD passes the scenario's original itself, not a copy:
    the pair never changes it). It only ever runs under ``torch.no_grad``, so no gradient can
    reach it, and ``train()`` / ``eval()`` switch the assistant alone, leaving the target's
    mode as it was. Training the pair further therefore trains its assistant only. ``weight``
    and ``relative_top`` are buffers, so the state dict (and with it the inference cache's
    fingerprint) tells pairs that differ only in them apart."""

    def __init__(self, target: nn.Module, assistant: nn.Module, weight: float,
                 relative_top: float):
        super().__init__()
        self.target = target
        self.assistant = assistant
        self.register_buffer("logit_weight", torch.tensor(float(weight)))
        self.register_buffer("relative_top", torch.tensor(float(relative_top)))

    def train(self, mode: bool = True):
        self.training = mode
        self.assistant.train(mode)
        return self

    def combine(self, target_logits: torch.Tensor, assistant_logits: torch.Tensor):
        return logit_difference(target_logits, assistant_logits, float(self.logit_weight),
                                float(self.relative_top))

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, output_hidden_states: bool = False,
                use_cache: bool | None = None, return_dict: bool | None = None):
        """``.logits`` (B, L, V) of the pair; ``.hidden_states`` the target's when asked.
        (``use_cache`` and ``return_dict`` are accepted and ignored: no cache is kept.)"""
        from transformers.modeling_outputs import CausalLMOutputWithPast

        inputs = {"input_ids": input_ids, "attention_mask": attention_mask}
        if position_ids is not None:
            inputs["position_ids"] = position_ids
        with torch.no_grad():
            target = self.target(**inputs, output_hidden_states=output_hidden_states)
        assistant = self.assistant(**inputs)
        return CausalLMOutputWithPast(
            logits=self.combine(target.logits, assistant.logits),
            hidden_states=target.hidden_states if output_hidden_states else None)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 20, do_sample: bool = False,
                 pad_token_id: int | None = None, eos_token_id=None) -> torch.Tensor:
        """Greedy decoding of the pair, prompts left-padded: (B, prompt + generated) token ids,
        as Hugging Face's ``generate``. Both models keep their own key/value cache; positions
        count from each row's first real token; a row that has produced ``<eos>`` continues
        with ``pad_token_id``; decoding stops when every row has finished."""
        attention_mask, eos, pad = greedy_inputs("ULD", input_ids, attention_mask, do_sample,
                                                 pad_token_id, eos_token_id)
        sequences, mask, step = input_ids, attention_mask, input_ids
        finished = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        caches = [None, None]
        cache_name = kv_cache_argument(self.target)
        for _ in range(max_new_tokens):
            positions = (mask.long().cumsum(-1) - 1).clamp(min=0)[:, -step.shape[1]:]
            outputs = [model(input_ids=step, attention_mask=mask, position_ids=positions,
                             use_cache=True, **{cache_name: cache})
                       for model, cache in zip((self.target, self.assistant), caches)]
            caches = [getattr(out, cache_name) for out in outputs]
            logits = self.combine(outputs[0].logits[:, -1], outputs[1].logits[:, -1])
            token = logits.argmax(-1)
            token = torch.where(finished, torch.full_like(token, pad), token)
            finished = finished | torch.isin(token, eos)
            sequences = torch.cat([sequences, token[:, None]], 1)
            mask = torch.cat([mask, mask.new_ones(len(mask), 1)], 1)
            step = token[:, None]
            if finished.all():
                break
        return sequences


def kv_cache_argument(model: nn.Module) -> str:
    """The name under which ``model.forward`` takes (and its output returns) the key/value
    cache: ``cache`` in recent transformers, ``past_key_values`` before (now deprecated)."""
    return "cache" if "cache" in inspect.signature(model.forward).parameters else "past_key_values"


# -- the assistant ------------------------------------------------------------------------

def assistant_layer_count(n_layers: int, layers: int | None) -> int:
    """``layers`` if given, else the reference's proportion: 8 of Llama-2-7B's 32 blocks, a
    quarter of the target's blocks (rounded, at least 1)."""
    if layers is None:
        return max(1, round(n_layers / 4))
    if not 1 <= layers <= n_layers:
        raise UserError(f"uld: layers must be between 1 and the target's {n_layers} blocks, "
                        f"got {layers}")
    return layers


def truncated_copy(model: nn.Module, layers: int | None) -> nn.Module:
    """A copy of ``model`` with only its first ``layers`` decoder blocks (the embeddings, final
    norm and LM head copied along), its config saying so: the reference's assistant
    initialisation."""
    try:
        _, blocks = decoder_layers(model)
    except UserError:
        raise UserError("uld needs a transformer with a list of decoder blocks (model.layers "
                        "or transformer.h) to build its assistant from; this model has none"
                        ) from None
    keep = assistant_layer_count(len(blocks), layers)
    # the blocks left out are not copied at all: the copy holds None in their places
    assistant = copy.deepcopy(model, memo={id(block): None for block in list(blocks)[keep:]})
    _, blocks = decoder_layers(assistant)
    del blocks[keep:]
    config = getattr(assistant, "config", None)
    if config is not None:
        config.num_hidden_layers = keep
        if isinstance(getattr(config, "layer_types", None), list):
            config.layer_types = config.layer_types[:keep]
    return assistant


# -- the method ---------------------------------------------------------------------------

@dataclass
class ULDParams:
    epochs: int = param(10, ge=1)
    lr: float = param(1e-3, gt=0)
    batch_size: int = param(32, ge=1)
    weight: float = param(0.8, ge=0)
    retain_weight: float = param(5.0, ge=0)
    relative_top: float = param(0.01, ge=0, le=1)
    layers: int | None = param(None, ge=1)  # None: a quarter of the target's blocks, at least 1
    # None: the recipe's lora_rank; 0: train the whole assistant
    lora_rank: int | None = param(None, ge=0)


def check_params(params: ULDParams) -> None:
    if params.epochs < 0 or params.batch_size < 1 or params.lr <= 0:
        raise UserError("uld: epochs must be >= 0, batch_size >= 1 and lr > 0")
    if not 0 <= params.relative_top <= 1:
        raise UserError(f"uld: relative_top must be between 0 and 1 (0: no filter), got "
                        f"{params.relative_top}")
    if params.lora_rank is not None and params.lora_rank < 0:
        raise UserError(f"uld: lora_rank must be >= 0 (0: no LoRA), got {params.lora_rank}")


@methods.register("uld", params=ULDParams, tasks=("language",), needs=("forget", "retain"))
def uld(ctx: UnlearnContext, params: ULDParams):
    """ULD: the original's logits minus w times an assistant's that remembers f, forgets r.

    The assistant a is trained on L = NLL_a(forget answers) + λ·mean KL(uniform ‖ p_a) over
    the retain answer tokens; the unlearned model is the pair whose logits are z_θ₀ − w·z_a on
    the tokens the target θ₀ finds plausible (p ≥ relative_top·p_max, or among the
    int(relative_top·V) most probable) and z_θ₀ on the others.

    The assistant is the target's first ``layers`` decoder blocks with its embeddings, final
    norm and LM head, copied from θ₀; with a LoRA rank (``lora_rank``, default the recipe's)
    only LoRA adapters on its projections train (alpha 2·rank as the reference's 16/32, no
    dropout) and are merged before the pair is returned; without one the whole assistant
    trains. AdamW, constant lr; the epochs run over the forget set, each forget batch paired
    with the next retain batch (as GradDiff). The target in the pair is ``ctx.original``
    itself, read-only (see ``LogitDifferenceModel``): no second copy of θ₀ is held. Given a
    ULD pair as the model to start from (a later stage of sequential requests), its target is
    kept and a copy of its assistant trains further on the new request.

    Published defaults (reference code, TOFU, Llama-2-7B): assistant 8 of 32 blocks, LoRA
    r 16 / alpha 32 / dropout 0.05, AdamW lr 1e-3, effective batch 32, 10 epochs, retain weight
    5, w 0.8 (their ``weight`` −0.8) and relative-top filter 0.01 at evaluation. Chosen: those;
    ``layers`` defaults to a quarter of the target's blocks (the tiny benchmark models have
    1-2 blocks: the assistant has 1). Tiny models (``benchmarks.language.TINY_METHOD_PARAMS``):
    lr 2e-3 and w 0.6; on entities-forget05 the published values leave forget-answer
    probability 0.41 and retain 0.91 (target 0.98 / 0.97, retain model 0.55), lr 2e-3 makes the
    assistant flatter on the retain set (retain 0.96) and w 0.6 forgets about as much as the
    other methods' tuned values (forget 0.56, retain 0.97). With a 1-2 block target the
    assistant starts as (nearly) the target itself, so the pair starts near (1 − w)·z_θ₀ and
    needs enough steps for the assistant to flatten on the retain set: too few steps cost
    retain probability, not forgetting.
    Deviations: the retain term is averaged over the scored answer tokens (the reference takes
    every position of the retain sequences, prompt and padding included); the reference
    trains on augmented data (paraphrased forget answers, perturbed answers as retain data),
    here on the forget and retain sets as they are; no warm-up or weight decay."""
    check_params(params)
    task = ctx.task
    torch.manual_seed(ctx.seed)
    if isinstance(ctx.original, LogitDifferenceModel):
        target, assistant = ctx.original.target, copy.deepcopy(ctx.original.assistant)
    else:
        target, assistant = ctx.original, truncated_copy(ctx.original, params.layers)
    rank = ctx.recipe.lora_rank if params.lora_rank is None else params.lora_rank
    for parameter in assistant.parameters():
        parameter.requires_grad_(True)
    if rank:
        from ..models.pretrained import add_lora
        assistant = add_lora(assistant, rank, alpha=2 * rank)
    pair = LogitDifferenceModel(target, assistant, params.weight, params.relative_top)
    optimizer = make_optimizer([p for p in assistant.parameters() if p.requires_grad], "adamw",
                               params.lr)
    retain = retain_stream(ctx, params.batch_size)

    def loss(forget_batch):
        value = task.nll(assistant, forget_batch).mean()
        retain_batch = next(retain, None)
        if retain_batch is not None and params.retain_weight != 0:
            value = value + params.retain_weight * uniform_kl(
                task.logits(assistant, retain_batch)).mean()
        return value

    # the pair is what is being unlearned: the step budget's observer sees it
    optimise(pair, optimizer, task.epochs(ctx.forget, params.batch_size, params.epochs,
                                          ctx.seed), loss, ctx.budget)
    if rank:
        from ..models.pretrained import merge_lora
        pair.assistant = merge_lora(pair.assistant)
    return pair.eval()
