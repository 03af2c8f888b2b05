"""Scoring several answers to one prompt with one pass over the prompt.

TOFU's truth ratio scores K perturbed answers per question (five in TOFU, as in the built-in
data), and the retain set's perturbed answers are the largest text set a language evaluation
reads. Read as K separate records, each question is run through the model K times. Here each
distinct prompt is run once with the model's key/value cache kept (Hugging Face's
``cache``), the cache is repeated for each of its answers, and only the answer
tokens are run on top of it.

The positions are those of the plain pass (prompts are left-padded, so each row gets explicit
position ids counted from its first real token), so the logits are the plain pass's up to the
float rounding of a differently shaped computation (about 1e-6 relative in float32)."""
from __future__ import annotations

import functools
import inspect

import torch
from torch import nn


def prompt_groups(prompts: list[list[int]]) -> list[list[int]]:
    """Indices of the records that share each distinct prompt, in order of first appearance."""
    groups: dict[tuple, list[int]] = {}
    for index, prompt in enumerate(prompts):
        groups.setdefault(tuple(prompt), []).append(index)
    return list(groups.values())


@functools.cache
def cache_argument(model_type: type) -> str | None:
    """The name under which a model class's ``forward`` takes and returns its key/value cache
    (``cache`` in transformers 5, ``past_key_values`` before), or None where it takes no
    cache, position ids or ``logits_to_keep``."""
    parameters = inspect.signature(model_type.forward).parameters
    if not all(name in parameters for name in ("position_ids", "use_cache", "logits_to_keep")):
        return None
    return next((name for name in ("cache", "past_key_values") if name in parameters), None)


def worth_sharing(model: nn.Module, prompts: list[list[int]]) -> bool:
    """Share prompt passes where records repeat a prompt of more than the start token at
    least twice on average and the model keeps a cache (documents, which have no prompt, and
    one-answer questions take the plain pass)."""
    return (len(prompts) >= 2 * len(prompt_groups(prompts)) and min(map(len, prompts)) > 1
            and cache_argument(type(model)) is not None)


def chunks(groups: list[list[int]], batch_size: int):
    """Consecutive groups with at most ``batch_size`` answers together; a group larger than
    that is cut into pieces of ``batch_size`` (each runs its prompt again)."""
    pieces = [group[start:start + batch_size] for group in groups
              for start in range(0, len(group), batch_size)]
    chunk, size = [], 0
    for group in pieces:
        if chunk and size + len(group) > batch_size:
            yield chunk
            chunk, size = [], 0
        chunk.append(group)
        size += len(group)
    if chunk:
        yield chunk


@torch.no_grad()
def answer_logits(model: nn.Module, prompts: list[list[int]], answers: list[list[list[int]]],
                  pad_id: int, device: torch.device) -> list[torch.Tensor]:
    """For each prompt and each of its answers (``answers[g]``: the token lists answering
    ``prompts[g]``), the next-token logits that predict the answer's tokens, (len(answer),
    vocab), answers in order (the first group's, then the second's...)."""
    width = max(len(p) for p in prompts)
    input_ids = torch.full((len(prompts), width), pad_id, dtype=torch.long)
    prompt_mask = torch.zeros((len(prompts), width), dtype=torch.long)
    for row, prompt in enumerate(prompts):  # left padding: every prompt ends at the edge
        input_ids[row, width - len(prompt):] = torch.tensor(prompt)
        prompt_mask[row, width - len(prompt):] = 1
    positions = (prompt_mask.cumsum(1) - 1).clamp(min=0)
    out = model(input_ids=input_ids.to(device), attention_mask=prompt_mask.to(device),
                position_ids=positions.to(device), use_cache=True, logits_to_keep=1)
    first = out.logits[:, -1]  # the prompt's last position predicts each answer's first token
    owner = torch.tensor([g for g, group in enumerate(answers) for _ in group])
    name = cache_argument(type(model))
    cache = getattr(out, name)
    cache.reorder_cache(owner.to(device))  # one copy of its prompt's keys and values per answer

    flat = [answer for group in answers for answer in group]
    answer_width = max(len(a) for a in flat)
    answer_ids = torch.full((len(flat), answer_width), pad_id, dtype=torch.long)
    answer_mask = torch.zeros((len(flat), answer_width), dtype=torch.long)
    for row, answer in enumerate(flat):
        answer_ids[row, :len(answer)] = torch.tensor(answer)
        answer_mask[row, :len(answer)] = 1
    positions = prompt_mask.sum(1)[owner, None] + torch.arange(answer_width)
    logits = model(input_ids=answer_ids.to(device), **{name: cache},
                   attention_mask=torch.cat([prompt_mask[owner], answer_mask], 1).to(device),
                   position_ids=positions.to(device), use_cache=False).logits
    return [torch.cat([first[owner[row]][None], logits[row, :len(answer) - 1]])
            for row, answer in enumerate(flat)]
