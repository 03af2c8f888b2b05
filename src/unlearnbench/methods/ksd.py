"""Key Space Detection (KSD; Li et al. 2025, "Effective Skill Unlearning through Intervention
and Abstention", NAACL): a training-free skill unlearning by abstention. The forget skill's
MLP keys (the input of one ``down_proj``) at the prompt's last token fill a hypercube; a query
whose key falls inside it is answered with an abstention string instead of by the model."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import UserError
from ..params import param
from ..registry import methods
from ._shared import decoder_layers, greedy_inputs
from .base import UnlearnContext

# The abstention answer's logits: 0 for the forced token, this for every other one, so the
# forced token has probability ~1 and every metric reads a finite NLL for the others.
OTHER_LOGIT = -30.0
ABSTENTION = "I don't know."


def hypercube_k(keys: torch.Tensor, mean: torch.Tensor, std: torch.Tensor) -> float:
    """The smallest k with every row of ``keys`` (N, d) inside mean ± k·std: the largest
    |key − mean|/std over rows and dimensions. (The reference binary-searches k to a
    tolerance; this is the value that search converges to.)"""
    return float(((keys - mean) / std).abs().max())


def inside(keys: torch.Tensor, mean: torch.Tensor, std: torch.Tensor, k: float) -> torch.Tensor:
    """Whether each key (..., d) lies in the hypercube mean ± k·std (every dimension)."""
    return ((keys - mean).abs() <= k * std).all(-1)


def down_proj(model: nn.Module, layer: int) -> nn.Linear:
    _, blocks = decoder_layers(model)
    if not -len(blocks) <= layer < len(blocks):
        raise UserError(f"ksd: layer {layer} is out of range for a model of {len(blocks)} "
                        "blocks")
    projection = getattr(getattr(blocks[layer], "mlp", None), "down_proj", None)
    if not isinstance(projection, nn.Linear):
        raise UserError("ksd needs Llama-style MLPs (mlp.down_proj); this model has none")
    return projection


def keys_of(model: nn.Module, projection: nn.Module, **inputs):
    """(model output, (B, L, d) the inputs of ``projection`` in that forward pass)."""
    seen = []
    handle = projection.register_forward_pre_hook(lambda _m, args: seen.append(args[0]))
    try:
        output = model(**inputs)
    finally:
        handle.remove()
    return output, seen[0]


@torch.no_grad()
def last_prompt_keys(task, model: nn.Module, projection: nn.Module, split,
                     batch_size: int = 64) -> torch.Tensor:
    """(N, d): the key at each record's last prompt token (the position that predicts the
    answer's first token)."""
    model.eval()
    parts = []
    for batch in task.batches(split, batch_size):
        last = (batch.targets != -100).int().argmax(1)
        _, keys = keys_of(model, projection, input_ids=batch.input_ids,
                          attention_mask=batch.attention_mask)
        parts.append(keys[torch.arange(len(batch)), last].float())
    return torch.cat(parts)


class AbstainingModel(nn.Module):
    """The unlearned model of KSD: ``model`` with a detector on one ``down_proj``.

    In a forward pass, the first real position whose key lies in μ ± (k·h)·σ starts the
    abstention: from there on each position's logits force the next abstention token (the
    first, or the one after the abstention tokens the sequence already ends with; after the
    last, ``<eos>``), so teacher-forced scores and greedy answers both see the abstention.
    Earlier positions keep the model's logits. The model sees no prompt boundary, so every real
    position is checked (the reference checks the prompt's last token and each generated
    one). ``generate`` decodes greedily, re-reading the whole sequence at each step (no
    key/value cache: the detection needs every position's key)."""

    def __init__(self, model: nn.Module, layer: int, mean, std, k: float, h: float,
                 abstention_ids: list[int]):
        super().__init__()
        self.model = model
        self.layer = layer
        device = mean.device
        self.register_buffer("key_mean", mean.float())
        self.register_buffer("key_std", std.float())
        self.register_buffer("key_k", torch.tensor(float(k), device=device))
        self.register_buffer("key_h", torch.tensor(float(h), device=device))
        self.register_buffer("abstention_ids", torch.tensor(abstention_ids, device=device))

    def detect(self, keys: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """(B, L) bool: the positions at and after the first real one inside the cube."""
        hit = inside(keys.float(), self.key_mean, self.key_std,
                     float(self.key_k * self.key_h)) & attention_mask.bool()
        return hit.int().cummax(-1).values.bool()

    def progress(self, input_ids: torch.Tensor) -> torch.Tensor:
        """(B, L): how many abstention tokens each position's sequence already ends with (the
        longest such prefix, 0 if none), i.e. which abstention token it is to predict next."""
        ids = self.abstention_ids
        done = torch.zeros_like(input_ids)
        for j in range(1, len(ids)):
            ends = torch.ones_like(input_ids, dtype=torch.bool)
            for back in range(j):  # the token ``back`` positions earlier is ids[j - 1 - back]
                earlier = F.pad(input_ids, (back, 0), value=-1)[:, :input_ids.shape[1]]
                ends &= earlier == ids[j - 1 - back]
            done = torch.where(ends, j, done)
        return done

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                position_ids: torch.Tensor | None = None, output_hidden_states: bool = False,
                use_cache: bool | None = None, return_dict: bool | None = None):
        """``.logits`` (B, L, V), the abstention forced where detected; ``.hidden_states`` the
        model's when asked (``use_cache``, ``return_dict`` accepted and ignored)."""
        from transformers.modeling_outputs import CausalLMOutputWithPast

        if attention_mask is None:
            attention_mask = torch.ones_like(input_ids)
        if position_ids is None:  # count from each row's first real token (left padding)
            position_ids = (attention_mask.long().cumsum(-1) - 1).clamp(min=0)
        output, keys = keys_of(self.model, down_proj(self.model, self.layer),
                               input_ids=input_ids, attention_mask=attention_mask,
                               position_ids=position_ids,
                               output_hidden_states=output_hidden_states)
        logits = output.logits
        abstaining = self.detect(keys, attention_mask)
        forced = torch.full_like(logits, OTHER_LOGIT).scatter(
            -1, self.abstention_ids[self.progress(input_ids)].unsqueeze(-1), 0.0)
        return CausalLMOutputWithPast(
            logits=torch.where(abstaining.unsqueeze(-1), forced, logits),
            hidden_states=output.hidden_states if output_hidden_states else None)

    @torch.no_grad()
    def generate(self, input_ids: torch.Tensor, attention_mask: torch.Tensor | None = None,
                 max_new_tokens: int = 20, do_sample: bool = False,
                 pad_token_id: int | None = None, eos_token_id=None) -> torch.Tensor:
        """Greedy decoding, prompts left-padded: (B, prompt + generated) token ids, as Hugging
        Face's ``generate``; a finished row continues with ``pad_token_id``."""
        attention_mask, eos, pad = greedy_inputs("KSD", input_ids, attention_mask, do_sample,
                                                 pad_token_id, eos_token_id)
        sequences, mask = input_ids, attention_mask
        finished = torch.zeros(len(input_ids), dtype=torch.bool, device=input_ids.device)
        for _ in range(max_new_tokens):
            token = self(input_ids=sequences, attention_mask=mask).logits[:, -1].argmax(-1)
            token = torch.where(finished, torch.full_like(token, pad), token)
            finished = finished | torch.isin(token, eos)
            sequences = torch.cat([sequences, token[:, None]], 1)
            mask = torch.cat([mask, mask.new_ones(len(mask), 1)], 1)
            if finished.all():
                break
        return sequences


@dataclass
class KSDParams:
    layer: int = param(-1)  # which block's down_proj (negative counts from the end)
    h: float = param(1.0, gt=0)  # the detection cube is μ ± (k·h)·σ
    batch_size: int = param(64, ge=1)


@methods.register("ksd", params=KSDParams, tasks=("language",), needs=("forget",))
def ksd(ctx: UnlearnContext, params: KSDParams):
    """KSD: abstain ("I don't know.") on queries whose key falls in the forget skill's cube.

    At block ``layer``'s ``down_proj`` input (default the last block's), the key at the last
    prompt token of each forget record, read from the original: per dimension mean μ and std
    σ, and the smallest k with every forget key in μ ± kσ (``hypercube_k``). The returned model
    (``AbstainingModel``, a copy of the original with the detector) abstains once a position's
    key lies in μ ± (k·h)σ: its next-token distribution then spells the data set's first
    refusal string (else "I don't know.") and ``<eos>``, so exact answers score it wrong and
    the answer NLL of the true answer is high. No optimizer step.

    Published: the last block of Llama-3-8B (``31.mlp.down_proj``); h 0.06 for languages
    (MLQA), 2 in the math/code scripts; the abstention string "Sorry, your query is not
    valid". Chosen: the last block, h 1 (the cube of the trained forget queries, no margin).
    On skills-mini the cube does not tell the skills apart: at h 1 and 0.5 it holds nearly
    every copy query too, so the model abstains on both skills (docs/benchmarks.md).
    Deviations: k is computed exactly, not binary-searched; a std of 0 is floored at 1e-6;
    every real position is checked (see ``AbstainingModel``)."""
    task = ctx.task
    if not len(ctx.forget):
        raise UserError("ksd needs forget records to fit its key cube on")
    model = ctx.copy_original()
    projection = down_proj(model, params.layer)
    keys = last_prompt_keys(task, model, projection, ctx.forget, params.batch_size)
    mean, std = keys.mean(0), keys.std(0, unbiased=False).clamp(min=1e-6)
    refusals = getattr(task.data, "refusals", ()) or (ABSTENTION,)
    abstention = task.tokenizer(" " + refusals[0], add_special_tokens=False)["input_ids"]
    return AbstainingModel(model, params.layer, mean, std, hypercube_k(keys, mean, std),
                           params.h, abstention + [task.eos_id]).eval()
