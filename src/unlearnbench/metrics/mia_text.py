"""Membership inference and memorisation scores for language models, per record.

Pure functions over the packed per-token statistics of one teacher-forced forward pass
(``LanguageTask.token_statistics``): for the T scored tokens of N records,

- ``log_probs`` (T,): log p(y_t) of the true token;
- ``mu`` (T,) = Σ_v p_v log p_v and ``sigma`` (T,) = sqrt(Σ_v p_v (log p_v)² − mu²) of the
  next-token distribution at that position;
- ``hit`` (T,) bool: the distribution's argmax is the true token;
- ``offsets`` (N+1,) int64: record i owns tokens [offsets[i], offsets[i+1]).

Sign convention: every ``*_score`` function returns a **member score**, higher = more
likely a member (trained on). ``auc(member, nonmember)`` is then P(member score >
nonmember score), ties counted ½: 0.5 = indistinguishable, 1 = every member ranked above
every non-member. The reference code (open-unlearning ``src/evals/metrics/mia``) scores the
other way round (a loss-like "non-member" score, e.g. Min-K returns −mean(lowest log p)) and
labels forget 0 / holdout 1 in ``roc_auc_score``; the two conventions give the same AUC.
MUSE's PrivLeak uses the Min-K% (k = 0.4) AUC of forget versus holdout texts in MUSE's own
orientation, holdout labelled positive: 1 − ``auc(forget, holdout)`` (see
``text_scores.privleak``).

A record without scored tokens gets NaN from every per-record function; ``auc`` drops NaN
scores. Which tokens are scored is the caller's choice: ``membership.py`` gives Min-K%,
Min-K%++, EM and ES a record's text tokens without the closing <eos> (``TokenStats.text_only``;
open-unlearning drops the last label, MUSE's texts have no <eos>), so a record with an empty
text gets NaN there; LOSS, zlib and the reference attack read the mean NLL with the <eos>.

Sources: Shokri/Yeom LOSS; Carlini et al. 2021 (zlib); Shi et al. 2024 (Min-K% Prob,
swj0419/detect-pretrain-code, used by MUSE); Zhang et al. 2024 (Min-K%++,
zjysteven/mink-plus-plus); open-unlearning (reference, GradNorm, exact memorisation,
extraction strength); definitions: docs/metrics.md, "Membership inference on text"."""
from __future__ import annotations

import zlib

import numpy as np
import torch
from scipy.stats import rankdata

from .text_scores import mean_token_nll, split_by

# open-unlearning's Min-K%++ clamps the variance at 1e-6 before the square root.
MIN_SIGMA = 1e-3


def _per_record(values, offsets, reduce) -> np.ndarray:
    return np.array([reduce(np.asarray(v, dtype=np.float64)) if len(v) else np.nan
                     for v in split_by(values, offsets)], dtype=np.float64)


def _lowest_k_mean(values: np.ndarray, k: float) -> float:
    """Mean of the lowest max(1, int(k·n)) values (the Min-K% count)."""
    if not 0 < k <= 1:
        raise ValueError(f"k must lie in (0, 1], got {k}")
    count = max(1, int(len(values) * k))
    return float(np.sort(values)[:count].mean())


# -- attacks (member scores, higher = member) -----------------------------------------------------
def loss_score(log_probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """LOSS attack: members have lower loss, so the member score is −(mean token NLL)
    = mean log p(y_t) over the record's scored tokens."""
    return -mean_token_nll(log_probs, offsets)


def zlib_score(log_probs: np.ndarray, offsets: np.ndarray, texts) -> np.ndarray:
    """zlib attack (Carlini et al. 2021): −(mean token NLL) / len(zlib.compress(text bytes)).

    The NLL is the per-token **mean**, as in open-unlearning's ZLIBAttack (``avg_loss /
    zlib_entropy``) and the Min-K% / MUSE code (log perplexity / zlib entropy); ``texts[i]``
    should be the record's scored text (answer / continuation / document), UTF-8 encoded and
    compressed at zlib's default level. A text that compresses well (low entropy) divides by
    a small number, so its loss counts for more."""
    texts = list(texts)
    if len(texts) != len(offsets) - 1:
        raise ValueError("one text per record")
    entropy = np.array([len(zlib.compress(t.encode("utf-8"))) for t in texts], dtype=np.float64)
    return -mean_token_nll(log_probs, offsets) / entropy


def min_k_score(log_probs: np.ndarray, offsets: np.ndarray, k: float = 0.4) -> np.ndarray:
    """Min-K% Prob (Shi et al. 2024): mean of the record's lowest-k share of token log-probs.

    The count is ``int(k·n)`` (floor), as in the Min-K% / MUSE / open-unlearning code, raised
    to at least 1 as open-unlearning does (the original code averages an empty slice, NaN,
    for records shorter than 1/k). k = 0.4 is MUSE's PrivLeak setting (open-unlearning's
    default is 0.2). Members score higher (the reference returns the negation)."""
    return _per_record(log_probs, offsets, lambda v: _lowest_k_mean(v, k))


def min_k_plus_plus_score(log_probs: np.ndarray, mu: np.ndarray, sigma: np.ndarray,
                          offsets: np.ndarray, k: float = 0.4) -> np.ndarray:
    """Min-K%++ (Zhang et al. 2024): per token z = (log p(y_t) − mu_t) / sigma_t, then the
    mean of the record's lowest ``max(1, int(k·n))`` z values (count as in ``min_k_score``).

    sigma is floored at ``MIN_SIGMA`` = 1e-3, i.e. the variance at 1e-6, as open-unlearning
    does (the original code divides by zero on a one-hot distribution). Members score higher."""
    log_probs, mu = np.asarray(log_probs, np.float64), np.asarray(mu, np.float64)
    sigma = np.maximum(np.asarray(sigma, np.float64), MIN_SIGMA)
    return _per_record((log_probs - mu) / sigma, offsets, lambda v: _lowest_k_mean(v, k))


def reference_score(nll_model: np.ndarray, nll_reference: np.ndarray) -> np.ndarray:
    """Reference-model attack: the member score is NLL_ref(x) − NLL_model(x) (per-record mean
    NLLs), i.e. minus open-unlearning's ``target_loss − ref_loss``: a record the model fits
    much better than a reference model (not trained on it) is likely a member."""
    nll_model = np.asarray(nll_model, dtype=np.float64)
    nll_reference = np.asarray(nll_reference, dtype=np.float64)
    if nll_model.shape != nll_reference.shape:
        raise ValueError("one reference NLL per record")
    return nll_reference - nll_model


# -- AUC ------------------------------------------------------------------------------------
def _finite(scores) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64).ravel()
    return scores[~np.isnan(scores)]


def _rank_auc(member: np.ndarray, nonmember: np.ndarray) -> float:
    m, n = len(member), len(nonmember)
    ranks = rankdata(np.concatenate([member, nonmember]))  # ties get the average rank
    return float((ranks[:m].sum() - m * (m + 1) / 2) / (m * n))


def auc(member_scores, nonmember_scores) -> float:
    """ROC AUC of separating members from non-members by score (higher = member):
    P(member > nonmember) + ½ P(tie), the Mann–Whitney statistic; equal to
    ``sklearn.metrics.roc_auc_score`` with members labelled 1. NaN scores are dropped; NaN
    when either group is then empty."""
    member, nonmember = _finite(member_scores), _finite(nonmember_scores)
    if len(member) == 0 or len(nonmember) == 0:
        return float("nan")
    return _rank_auc(member, nonmember)


def bootstrap_auc(member_scores, nonmember_scores, n: int = 1000, seed: int = 0,
                  level: float = 0.95) -> tuple[float, float, float]:
    """(auc, low, high): the AUC and its percentile bootstrap interval at ``level``.
    Each replicate resamples members and non-members separately, with replacement, at their
    own sizes; the interval is the (1−level)/2 and (1+level)/2 quantiles of the ``n``
    replicate AUCs. Deterministic for a given seed (numpy ``default_rng(seed)``)."""
    member, nonmember = _finite(member_scores), _finite(nonmember_scores)
    if len(member) == 0 or len(nonmember) == 0:
        return float("nan"), float("nan"), float("nan")
    if n < 1 or not 0 < level < 1:
        raise ValueError("need n >= 1 and 0 < level < 1")
    rng = np.random.default_rng(seed)
    replicates = np.empty(n)
    for b in range(n):
        replicates[b] = _rank_auc(member[rng.integers(len(member), size=len(member))],
                                  nonmember[rng.integers(len(nonmember), size=len(nonmember))])
    low, high = np.quantile(replicates, [(1 - level) / 2, (1 + level) / 2])
    return _rank_auc(member, nonmember), float(low), float(high)


# -- memorisation --------------------------------------------------------------------------
def exact_memorisation(hit: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Exact memorisation EM (Tirumala et al. 2022; open-unlearning ``exact_memorization``):
    per record, the share of its scored tokens whose teacher-forced argmax is the label."""
    return _per_record(np.asarray(hit, dtype=np.float64), offsets, np.mean)


def extraction_strength(hit: np.ndarray, offsets: np.ndarray,
                        reference_code: bool = False) -> np.ndarray:
    """Extraction strength ES = 1 − k*/|y| (Carlini et al. 2021 style; open-unlearning
    ``extraction_strength``): k* is the smallest prefix length after which the teacher-forced
    argmax reproduces every remaining token, i.e. one past the record's last miss (0 when
    every token is a hit: ES 1; |y| when the last token is a miss: ES 0).

    Deviation: open-unlearning loops k over 0..|y|−1 and, when no suffix matches (last token
    a miss), keeps k = |y|−1, giving ES = 1/|y| instead of 0. ``reference_code=True``
    reproduces that (k* capped at |y|−1)."""
    def strength(h: np.ndarray) -> float:
        misses = np.flatnonzero(h == 0)
        k_star = 0 if len(misses) == 0 else int(misses[-1]) + 1
        if reference_code:
            k_star = min(k_star, len(h) - 1)
        return 1.0 - k_star / len(h)

    return _per_record(np.asarray(hit, dtype=np.float64), offsets, strength)


# -- gradient norm ---------------------------------------------------------------------------
def gradient_norm(loss: torch.Tensor, params, per_tensor_mean: bool = False) -> float:
    """The L2 norm of d loss / d params over all of ``params`` together (computed with
    ``torch.autograd.grad``: no ``.grad`` is written; the graph is retained so a caller can
    differentiate further losses of the same forward pass). Parameters the loss does not
    depend on contribute 0.

    ``per_tensor_mean=True`` gives open-unlearning's GradNormAttack reduction instead: the mean
    over parameter tensors of each tensor's own L2 norm."""
    params = list(params)
    grads = [g for g in torch.autograd.grad(loss, params, retain_graph=True, allow_unused=True)
             if g is not None]
    if not grads:
        return 0.0
    norms = torch.stack([g.detach().double().norm() for g in grads])
    return float(norms.mean() if per_tensor_mean else norms.square().sum().sqrt())


def gradnorm_scores(task, model: torch.nn.Module, split, batch_size: int = 8,
                    per_tensor_mean: bool = False) -> np.ndarray:
    """GradNorm attack, member scores (N,) in split order: −‖∇_θ NLL(x)‖₂ with NLL the
    record's mean answer NLL (``task.nll``) and θ the trainable parameters (those with
    ``requires_grad``). Members sit nearer a minimum, so have smaller gradients; the score
    is the negated norm (open-unlearning scores ``-norm`` the same way).

    One backward pass per record (batched forward over ``task.batches(split, batch_size)``,
    which uses ``task.make_batch``; rows do not interact, the attention mask hides padding).
    The model is run in eval mode (no dropout), its mode restored after; gradients are taken
    with ``torch.autograd.grad``, so no ``.grad`` is written and the weights are untouched."""
    params = [p for p in model.parameters() if p.requires_grad]
    if not params:
        raise ValueError("gradnorm_scores needs parameters with requires_grad")
    was_training = model.training
    model.eval()
    scores = []
    try:
        with torch.enable_grad():
            for batch in task.batches(split, batch_size):
                nll = task.nll(model, batch)
                for row in range(len(nll)):
                    scores.append(-gradient_norm(nll[row], params, per_tensor_mean))
                del nll
    finally:
        model.train(was_training)
    return np.asarray(scores, dtype=np.float64)
