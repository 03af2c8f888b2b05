"""The language task adapter: causal language models over text records (question answering,
documents, verbatim pairs; see ``data/text.py``).

A record becomes ``<start> prompt answer <eos>``; only the answer tokens (and the closing
``<eos>``) are scored, the prompt is masked. What methods see mirrors the classification
task, so one method serves both:

- ``logits(model, batch)``: the next-token logits at the scored positions only, one row per
  answer token (T, vocab); distillation methods (SCRUB, Bad Teacher) take a KL over these;
- ``nll(model, batch)``: per-example answer NLL, the mean over its answer tokens (TOFU's
  per-token mean, so long and short answers weigh the same); ``nll_sum`` gives the sum;
- ``hidden_states``, ``features``, ``generate`` (greedy, batched), ``fit``."""
from __future__ import annotations

import dataclasses
import functools
import hashlib
import inspect
import math
from dataclasses import dataclass
from typing import Callable, Iterator

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..data.multiple_choice import LETTERS
from ..data.text import TextBundle, TextSplit, concat, prompt_and_answer
from ..errors import UserError
from ..specs import Recipe
from ..train import StepBudget, epochs_of, fit_recipe
from .shared_prompts import answer_logits, chunks, prompt_groups, worth_sharing


@dataclass
class TextBatch:
    input_ids: torch.Tensor       # (B, L), right-padded
    attention_mask: torch.Tensor  # (B, L)
    targets: torch.Tensor         # (B, L-1): the token each position predicts, -100 if unscored
    ids: np.ndarray
    answer_rows: torch.Tensor     # (T,) which example each scored token belongs to
    answer_tokens: torch.Tensor   # (T,) the scored tokens, in row-major order
    first_scored: int = 0         # no column of ``targets`` before this one is scored

    def __len__(self) -> int:
        return len(self.ids)


@dataclass
class TokenStats:
    """One forward pass over a text set, per scored token (answer tokens and the closing
    ``<eos>``; a document's every token and its ``<eos>``), packed: record i owns
    ``[offsets[i], offsets[i+1])``. Every likelihood metric reads these (probability, truth
    ratio, LOSS, zlib, Min-K%, Min-K%++, exact memorisation, extraction strength), so none
    needs a pass of its own. TOFU's probability and the NLL-based attacks score the closing
    ``<eos>`` (TOFU's labels end with one); Min-K%, Min-K%++, EM and ES score the text's own
    tokens only (``text_only``), as open-unlearning and MUSE do."""

    log_probs: np.ndarray  # log p(y_t), teacher-forced
    mu: np.ndarray         # Σ_v p_v log p_v of the next-token distribution (Min-K%++)
    sigma: np.ndarray      # its standard deviation of log p_v under p
    hit: np.ndarray        # argmax_v p_v == y_t
    offsets: np.ndarray
    closing: np.ndarray    # y_t is the <eos> closing its record (not part of the text)

    def per_record(self, values: np.ndarray) -> list[np.ndarray]:
        return np.split(values, self.offsets[1:-1])

    def mean_nll(self) -> np.ndarray:
        """Per record, the mean NLL over its scored tokens (0 for a record with none)."""
        sums = np.add.reduceat(-self.log_probs, self.offsets[:-1]) if len(self.log_probs) \
            else np.zeros(len(self.offsets) - 1)
        lengths = np.diff(self.offsets)
        return np.where(lengths > 0, sums / np.maximum(lengths, 1), 0.0)

    def text_only(self) -> "TokenStats":
        """The same statistics without the closing ``<eos>`` positions."""
        keep = ~self.closing
        dropped_before = np.concatenate([[0], np.cumsum(self.closing)])
        return TokenStats(self.log_probs[keep], self.mu[keep], self.sigma[keep], self.hit[keep],
                          self.offsets - dropped_before[self.offsets], self.closing[keep])


class LanguageTask:
    """Batches, answer-token NLL, logits, hidden states, generation, fresh models and training
    for one text data set, one tokenizer and one model family."""

    name = "language"
    # torch.func cannot map ``nll`` over examples: Hugging Face's causal LMs build their masks
    # and the scored tokens are selected data-dependently (per-example gradients run each
    # example alone, ``methods/fisher.py``)
    vmap_gradients = False

    def __init__(self, data: TextBundle, tokenizer, make_model: Callable[[int], nn.Module],
                 device: str | torch.device = "cpu", max_length: int = 256,
                 model_name: str = "", max_new_tokens: int = 48):
        self.data = data
        self.tokenizer = tokenizer
        self.make_model = make_model
        self.device = torch.device(device)
        self.max_length = max_length
        self.model_name = model_name
        self.max_new_tokens = max_new_tokens
        start = tokenizer.bos_token_id if tokenizer.bos_token_id is not None \
            else tokenizer.eos_token_id
        self.start_id, self.eos_id = start, tokenizer.eos_token_id
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else self.eos_id

    def fingerprint(self) -> str:
        """What the trained weights depend on besides recipe and seed: data, tokenizer, model."""
        digest = hashlib.sha256(self.data.fingerprint().encode())
        digest.update(self.tokenizer.backend_tokenizer.to_str().encode())
        digest.update(self.model_name.encode())
        return digest.hexdigest()[:16]

    # -- batches ---------------------------------------------------------------------------
    def encode(self, records) -> tuple[list[list[int]], list[list[int]]]:
        """Token ids of each record's prompt (after the start token) and answer (+ <eos>),
        the answer cut so the whole sequence fits ``max_length``."""
        pairs = [prompt_and_answer(r) for r in records]
        prompts = self.tokenizer([p for p, _ in pairs], add_special_tokens=False)["input_ids"]
        answers = self.tokenizer([a for _, a in pairs], add_special_tokens=False)["input_ids"]
        prompts = [[self.start_id] + p[-(self.max_length // 2):] for p in prompts]
        answers = [a[:self.max_length - len(p) - 1] + [self.eos_id]
                   for p, a in zip(prompts, answers)]
        return prompts, answers

    def make_batch(self, records, ids: np.ndarray) -> TextBatch:
        prompts, answers = self.encode(records)
        length = max(len(p) + len(a) for p, a in zip(prompts, answers))
        input_ids = torch.full((len(records), length), self.pad_id, dtype=torch.long)
        attention = torch.zeros((len(records), length), dtype=torch.long)
        targets = torch.full((len(records), length - 1), -100, dtype=torch.long)
        for row, (p, a) in enumerate(zip(prompts, answers)):
            input_ids[row, :len(p) + len(a)] = torch.tensor(p + a)
            attention[row, :len(p) + len(a)] = 1
            # position t predicts token t+1: the answer tokens are predicted from len(p)-1 on
            targets[row, len(p) - 1:len(p) + len(a) - 1] = torch.tensor(a)
        scored = targets != -100
        rows = torch.arange(len(records)).unsqueeze(1).expand_as(targets)[scored]
        return TextBatch(input_ids.to(self.device), attention.to(self.device),
                         targets.to(self.device), np.asarray(ids), rows.to(self.device),
                         targets[scored].to(self.device), min(len(p) for p in prompts) - 1)

    def batches(self, split: TextSplit, batch_size: int, shuffle: bool = False,
                seed: int = 0, order: np.ndarray | None = None) -> Iterator[TextBatch]:
        """Batches of ``split`` in its order, a shuffled one, or the ``order`` given."""
        if order is None:
            order = np.arange(len(split))
        if shuffle:
            order = torch.randperm(len(split), generator=torch.Generator().manual_seed(seed)).numpy()
        for start in range(0, len(split), batch_size):
            index = order[start:start + batch_size]
            yield self.make_batch([split.records[i] for i in index], split.ids[index])

    def epochs(self, split: TextSplit, batch_size: int, epochs: int, seed: int) -> Iterator[TextBatch]:
        return epochs_of(lambda e: self.batches(split, batch_size, True, seed * 1000 + e), epochs)

    def join(self, name: str, splits: list[TextSplit]) -> TextSplit:
        return concat(name, splits)

    def retraining_set(self, retain: TextSplit) -> TextSplit:
        """What retraining from scratch trains on: the retain set and the facts every model
        learns (the data set's ``also_trained`` splits), as the retain model was trained."""
        return concat("retain+", [retain, *(self.data.splits[n] for n in self.data.also_trained)])

    def relabel_wrong(self, split: TextSplit, seed: int) -> TextSplit:
        """Each record with a wrong answer: a perturbed answer where the record has some,
        else the answer of another record of the split (the language analogue of a random
        wrong label; used by RL and SalUn)."""
        rng = np.random.default_rng(seed)
        answers = [prompt_and_answer(r)[1] for r in split.records]
        out = []
        for i, record in enumerate(split.records):
            wrong = [w for w in record.get("perturbed_answer") or [] if w != record.get("answer")]
            if not wrong:
                wrong = [answers[j].strip() for j in range(len(answers)) if answers[j] != answers[i]]
            if not wrong:
                out.append(dict(record))
                continue
            choice = wrong[int(rng.integers(len(wrong)))]
            key = "answer" if "answer" in record else ("continuation" if "prefix" in record
                                                       else "text")
            out.append(dict(record, **{key: choice}))
        return split.with_records(out, split.name + "-relabelled")

    # -- model outputs ---------------------------------------------------------------------
    def forward(self, model: nn.Module, batch: TextBatch, **kwargs):
        return model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **kwargs)

    def logits(self, model: nn.Module, batch: TextBatch) -> torch.Tensor:
        """Next-token logits at the scored positions, (T, vocab), in row-major order. A model
        that takes ``logits_to_keep`` (Hugging Face's causal LMs) runs its output layer only
        from the first scored column on, not over every prompt token, when no gradient is
        taken (evaluation): on SmolLM2 that layer (576 x 49,152) is a fifth of a token's
        forward cost. Training keeps the full pass, whose rounding every trained model and
        test value was made with (a smaller matmul rounds differently, and training
        amplifies it)."""
        scored = batch.targets != -100
        first = batch.first_scored
        if first > 0 and not torch.is_grad_enabled() and takes_logits_to_keep(type(model)):
            keep = batch.input_ids.shape[1] - first
            logits = self.forward(model, batch, logits_to_keep=keep).logits
            return logits[:, :-1][scored[:, first:]]
        return self.forward(model, batch).logits[:, :-1][scored]

    def length_order(self, split: TextSplit) -> np.ndarray:
        """The records of ``split`` from the shortest to the longest (prompt and answer, in
        tokens; stable). Batches cut from this order pad little, so a read of every record
        (the evaluation's) runs them in it and puts the results back in split order."""
        prompts, answers = self.encode(split.records)
        return np.argsort([len(p) + len(a) for p, a in zip(prompts, answers)], kind="stable")

    def nll_from_logits(self, logits: torch.Tensor, batch: TextBatch) -> torch.Tensor:
        return self.nll_sum_from_logits(logits, batch) / self.answer_lengths(batch)

    def nll_sum_from_logits(self, logits: torch.Tensor, batch: TextBatch) -> torch.Tensor:
        token_nll = F.cross_entropy(logits.float(), batch.answer_tokens, reduction="none")
        return torch.zeros(len(batch), device=token_nll.device).index_add(
            0, batch.answer_rows, token_nll)

    def answer_lengths(self, batch: TextBatch) -> torch.Tensor:
        return (batch.targets != -100).sum(1).clamp(min=1).float()

    def nll(self, model: nn.Module, batch: TextBatch) -> torch.Tensor:
        """Per-example mean NLL over the answer tokens."""
        return self.nll_from_logits(self.logits(model, batch), batch)

    def nll_sum(self, model: nn.Module, batch: TextBatch) -> torch.Tensor:
        """Per-example summed answer NLL (−log p(answer | prompt)), for NPO-style losses."""
        return self.nll_sum_from_logits(self.logits(model, batch), batch)

    def hidden_states(self, model: nn.Module, batch: TextBatch, layer: int) -> torch.Tensor:
        """(B, L, hidden) activations after block ``layer`` (0 = embeddings, -1 = last)."""
        return self.forward(model, batch, output_hidden_states=True).hidden_states[layer]

    @torch.no_grad()
    def features(self, model: nn.Module, split: TextSplit, batch_size: int = 64) -> torch.Tensor:
        """Mean last-layer hidden state over each record's tokens, (N, hidden)."""
        model.eval()
        parts = []
        for batch in self.batches(split, batch_size):
            hidden = self.hidden_states(model, batch, -1).float()
            mask = batch.attention_mask.unsqueeze(-1).float()
            parts.append(((hidden * mask).sum(1) / mask.sum(1)).cpu())
        return torch.cat(parts) if parts else torch.zeros(0, 0)

    @torch.no_grad()
    def answer_nll(self, model: nn.Module, split: TextSplit, batch_size: int = 64) -> torch.Tensor:
        """Per-example mean answer NLL of every record of ``split`` (CPU, split order)."""
        model.eval()
        order = self.length_order(split)
        parts = [self.nll(model, b).float().cpu()
                 for b in self.batches(split, batch_size, order=order)]
        values = torch.zeros(len(split))
        if parts:
            values[torch.from_numpy(order)] = torch.cat(parts)
        return values

    @torch.no_grad()
    def choice_log_likelihoods(self, model: nn.Module, split: TextSplit, batch_size: int = 64
                               ) -> np.ndarray:
        """log p(" A") .. log p(" D") after each multiple-choice record's prompt, (N, 4): one
        forward pass per batch, the letters read from the logits at the prompt's last token
        (``data/multiple_choice.py``), as lm-evaluation-harness scores one-token answers."""
        letters = [self.tokenizer(" " + letter, add_special_tokens=False)["input_ids"]
                   for letter in LETTERS]
        if any(len(ids) != 1 for ids in letters):
            raise UserError(f"the tokenizer of {self.model_name or 'this model'} splits an "
                            "answer letter (' A' .. ' D') into several tokens: multiple-choice "
                            "scoring needs one token per letter")
        letters = torch.tensor([ids[0] for ids in letters], device=self.device)
        model.eval()
        parts = []
        for batch in self.batches(split, batch_size):
            # the first scored position predicts the answer's first token: the prompt's last
            last = (batch.targets != -100).int().argmax(1)
            logits = self.forward(model, batch).logits[torch.arange(len(batch)), last]
            parts.append(F.log_softmax(logits.float(), -1)[:, letters].cpu())
        return torch.cat(parts).numpy() if parts else np.zeros((0, len(LETTERS)))

    @torch.no_grad()
    def token_statistics(self, model: nn.Module, split: TextSplit, batch_size: int = 64
                         ) -> TokenStats:
        """The per-token statistics of every record of ``split`` from one forward pass; answers
        that share their prompt (TOFU's perturbed answers) from one pass over the prompt
        (``tasks/shared_prompts.py``)."""
        model.eval()
        prompts, answers = self.encode(split.records)
        tables: list = [None] * len(split)  # per record, (4, its scored tokens)
        if worth_sharing(model, prompts):
            for chunk in chunks(prompt_groups(prompts), batch_size):
                logits = answer_logits(model, [prompts[group[0]] for group in chunk],
                                       [[answers[i] for i in group] for group in chunk],
                                       self.pad_id, self.device)
                for i, row in zip([i for group in chunk for i in group], logits):
                    tables[i] = token_table(row, torch.tensor(answers[i], device=self.device))
        else:
            order = self.length_order(split)
            starts = range(0, len(split), batch_size)
            for start, batch in zip(starts, self.batches(split, batch_size, order=order)):
                table = token_table(self.logits(model, batch), batch.answer_tokens)
                counts = torch.bincount(batch.answer_rows, minlength=len(batch)).tolist()
                for i, part in zip(order[start:start + batch_size], table.split(counts, 1)):
                    tables[i] = part
        packed = torch.cat(tables, 1).numpy() if tables else np.zeros((4, 0))
        offsets = np.concatenate([[0], np.cumsum([t.shape[1] for t in tables])]).astype(np.int64)
        # ``encode`` ends every answer with the <eos>: each record's last scored token
        closing = np.zeros(packed.shape[1], dtype=bool)
        ends = offsets[1:]
        closing[ends[ends > offsets[:-1]] - 1] = True
        return TokenStats(packed[0], packed[1], packed[2], packed[3].astype(bool), offsets,
                          closing)

    @torch.no_grad()
    def generate(self, model: nn.Module, split: TextSplit, batch_size: int = 64,
                 max_new_tokens: int | None = None) -> list[str]:
        """Greedy answers to every record's prompt (text up to <eos>, stripped), split order."""
        model.eval()
        # prompts of similar lengths together: less left padding (results in split order)
        prompt_ids, _ = self.encode(split.records)
        order = np.argsort([len(p) for p in prompt_ids], kind="stable")
        out = [""] * len(split)
        for start in range(0, len(split), batch_size):
            index = order[start:start + batch_size]
            prompts = [prompt_ids[i] for i in index]
            width = max(len(p) for p in prompts)
            input_ids = torch.full((len(prompts), width), self.pad_id, dtype=torch.long)
            attention = torch.zeros((len(prompts), width), dtype=torch.long)
            for row, p in enumerate(prompts):  # left padding: every prompt ends at the edge
                input_ids[row, width - len(p):] = torch.tensor(p)
                attention[row, width - len(p):] = 1
            generated = model.generate(
                input_ids=input_ids.to(self.device), attention_mask=attention.to(self.device),
                max_new_tokens=max_new_tokens or self.max_new_tokens, do_sample=False,
                pad_token_id=self.pad_id, eos_token_id=self.eos_id)
            for i, row in zip(index, generated[:, width:].tolist()):
                if self.eos_id in row:
                    row = row[:row.index(self.eos_id)]
                out[i] = self.tokenizer.decode(row, skip_special_tokens=True).strip()
        return out

    # -- models and training ---------------------------------------------------------------
    def fresh_model(self, seed: int) -> nn.Module:
        """A model before any training on this data: a new random initialisation for a model
        trained from scratch, the pretrained weights for a pretrained one."""
        return self.make_model(seed).to(self.device).eval()

    def fit(self, model: nn.Module, split: TextSplit, recipe: Recipe, seed: int,
            budget: StepBudget | None = None,
            after_batch: Callable[[TextBatch], None] | None = None) -> nn.Module:
        """Train ``model`` in place on ``split``: the recipe's optimizer, linear warm-up over
        the first 5% of steps, then cosine decay (with ``recipe.schedule`` "constant": ``lr``
        throughout; ``after_batch`` as in classification). With
        ``recipe.lora_rank`` only LoRA adapters train, merged into the weights at the end."""
        budget = budget or StepBudget()
        if recipe.lora_rank:
            from ..models.pretrained import add_lora, merge_lora

            torch.manual_seed(seed)
            adapted = add_lora(model, recipe.lora_rank)  # in place: merging restores ``model``
            self.fit(adapted, split, dataclasses.replace(recipe, lora_rank=0), seed, budget,
                     after_batch)
            return merge_lora(adapted)

        def warmup_then_cosine(optimizer, total):
            warmup = max(1, total // 20)
            return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: min(
                (step + 1) / warmup, 0.5 * (1 + math.cos(math.pi * min(step, total) / total))))

        return fit_recipe(self, model, split, recipe, seed, budget, after_batch,
                          warmup_then_cosine)


def token_table(logits: torch.Tensor, tokens: torch.Tensor) -> torch.Tensor:
    """(4, T) float64 on the CPU from the logits predicting T tokens: log p(token), μ = Σ p log p
    and σ (the sd of log p under p) of each next-token distribution, and argmax == token."""
    log_p = F.log_softmax(logits.float(), dim=-1)
    p = log_p.exp()
    mu = (p * log_p).sum(-1)
    sigma = ((p * log_p.square()).sum(-1) - mu.square()).clamp(min=0).sqrt()
    return torch.stack([log_p.gather(-1, tokens[:, None]).squeeze(-1), mu, sigma,
                        (log_p.argmax(-1) == tokens).float()]).cpu().double()


@functools.cache
def takes_logits_to_keep(model_type: type) -> bool:
    """Whether a model class's ``forward`` takes ``logits_to_keep`` (the output layer on the
    last positions only; Hugging Face's causal language models)."""
    return "logits_to_keep" in inspect.signature(model_type.forward).parameters
