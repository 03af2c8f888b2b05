"""Pure scoring functions for the language-model benchmarks: TOFU, MUSE and RWKU fluency.

Nothing here registers a metric or runs a model: every function takes plain numbers, numpy
arrays or strings (generations, references, per-record mean NLLs from the shared forward
pass) and returns numbers. Definitions: docs/metrics.md (TOFU, MUSE, Fluency); the sources
are TOFU's ``aggregate_stat_eval.py`` (locuslab/tofu, also open-unlearning), MUSE's
``knowmem/get_rouge_qa.py`` (jaechan-repo/muse_bench) and ROME's ``n_gram_entropy``
(``kmeng01/rome``, reused by RWKU).

ROUGE-L is computed here, without the ``rouge_score`` package, and equals
``rouge_score.RougeScorer(["rougeL"], use_stemmer=...)`` (tested against the package when it
is installed): the package's tokenisation (lower-case, every run of characters outside
``[a-z0-9]`` is a separator, tokens longer than 3 characters stemmed) and its stemmer, NLTK's
``PorterStemmer`` in its default mode, reimplemented in ``porter_stem``.

One deviation: the n-gram entropy tokenises with a regular expression (runs of word
characters, and each other non-space character alone) instead of ``nltk.word_tokenize``; the
two differ on contractions ("don't": 3 tokens here, "do" + "n't" in NLTK) and a few quote
forms.
"""
from __future__ import annotations

import math
import re
from collections import Counter
from collections.abc import Iterable, Sequence

import numpy as np
from scipy import stats

# --------------------------------------------------------------------------------------------
# Packed per-token arrays (the shared forward pass's layout)


def split_by(values: np.ndarray, offsets: np.ndarray) -> list[np.ndarray]:
    """Split a flat per-token array into records: record i owns
    ``values[offsets[i]:offsets[i+1]]`` (``offsets`` has N+1 entries, rising from 0 to
    len(values))."""
    values, offsets = np.asarray(values), np.asarray(offsets, dtype=np.int64)
    if offsets.ndim != 1 or len(offsets) == 0 or offsets[0] != 0 or offsets[-1] != len(values) \
            or np.any(np.diff(offsets) < 0):
        raise ValueError("offsets must rise from 0 to len(values)")
    return [values[a:b] for a, b in zip(offsets[:-1], offsets[1:])]


def mean_token_nll(log_probs: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """Per-record mean token NLL, −(1/|y|) Σ_t log p(y_t), from packed log-probabilities
    (N,). A record without scored tokens gets NaN."""
    log_probs = np.asarray(log_probs, dtype=np.float64)
    offsets = np.asarray(offsets, dtype=np.int64)
    lengths = np.diff(offsets)
    cumulative = np.concatenate([[0.0], np.cumsum(log_probs)])
    sums = cumulative[offsets[1:]] - cumulative[offsets[:-1]]
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(lengths > 0, -sums / np.maximum(lengths, 1), np.nan)


# --------------------------------------------------------------------------------------------
# ROUGE-L


_NON_ALNUM = re.compile(r"[^a-z0-9]+")


def rouge_tokens(text: str, stem: bool = False) -> list[str]:
    """``rouge_score``'s default tokenisation: lower-case, split on every run of characters
    outside ``[a-z0-9]``; with ``stem``, Porter-stem tokens longer than 3 characters."""
    tokens = [t for t in _NON_ALNUM.split(text.lower()) if t]
    if stem:
        tokens = [porter_stem(t) if len(t) > 3 else t for t in tokens]
    return tokens


def lcs_length(a: Sequence, b: Sequence) -> int:
    """Length of the longest common subsequence of two token sequences (O(|a||b|) DP)."""
    if len(a) < len(b):
        a, b = b, a
    if not b:
        return 0
    previous = [0] * (len(b) + 1)
    for x in a:
        current = [0] * (len(b) + 1)
        for j, y in enumerate(b, start=1):
            current[j] = previous[j - 1] + 1 if x == y else max(previous[j], current[j - 1])
        previous = current
    return previous[-1]


def rouge_l(prediction: str, reference: str, stem: bool = True) -> tuple[float, float, float]:
    """ROUGE-L between a generation and its reference: (recall, precision, F1) with
    recall = LCS / |reference tokens|, precision = LCS / |prediction tokens| and F1 their
    harmonic mean (0 when either text has no tokens or nothing matches), as
    ``rouge_score.RougeScorer(["rougeL"]).score(reference, prediction)``.

    TOFU reports the recall with stemming on (``use_stemmer=True``); MUSE reports the F1 with
    stemming off. ``stem`` defaults to TOFU's setting."""
    pred = rouge_tokens(prediction, stem)
    ref = rouge_tokens(reference, stem)
    if not pred or not ref:
        return 0.0, 0.0, 0.0
    match = lcs_length(pred, ref)
    recall = match / len(ref)
    precision = match / len(pred)
    f1 = 0.0 if match == 0 else 2 * precision * recall / (precision + recall)
    return recall, precision, f1


def rouge_l_recall(prediction: str, reference: str, stem: bool = True) -> float:
    """TOFU's ROUGE: ROUGE-L recall, stemming on."""
    return rouge_l(prediction, reference, stem)[0]


def rouge_l_f1(prediction: str, reference: str, stem: bool = False) -> float:
    """MUSE's ROUGE (VerbMem, KnowMem): ROUGE-L F1, stemming off (``use_stemmer=False``)."""
    return rouge_l(prediction, reference, stem)[2]


# Porter stemmer as NLTK's PorterStemmer in its default mode (what rouge_score uses) ------


# NLTK looks these words up before applying any rule.
_IRREGULAR = {"skies": "sky", "sky": "sky", "dying": "die", "lying": "lie", "tying": "tie",
              "news": "news", "innings": "inning", "inning": "inning", "outings": "outing",
              "outing": "outing", "cannings": "canning", "canning": "canning", "howe": "howe",
              "proceed": "proceed", "exceed": "exceed", "succeed": "succeed"}


def _consonants(word: str) -> list[bool]:
    """Per letter, whether it is a consonant: not a, e, i, o, u, and a y only when it starts
    the word or follows a vowel."""
    flags: list[bool] = []
    for i, c in enumerate(word):
        flags.append(c not in "aeiou" and (c != "y" or i == 0 or not flags[i - 1]))
    return flags


def _measure(stem: str) -> int:
    """m in [C](VC)^m[V]: the number of vowel→consonant transitions."""
    flags = _consonants(stem)
    return sum(1 for previous, current in zip(flags, flags[1:]) if current and not previous)


def _has_vowel(stem: str) -> bool:
    return not all(_consonants(stem))


def _double_consonant(word: str) -> bool:
    return len(word) >= 2 and word[-1] == word[-2] and _consonants(word)[-1]


def _cvc(word: str) -> bool:
    """*o: ends consonant–vowel–consonant, the last not w, x or y; NLTK also counts a
    two-letter vowel–consonant word."""
    flags = _consonants(word)
    if len(word) == 2:
        return not flags[0] and flags[1]
    return (len(word) >= 3 and flags[-3] and not flags[-2] and flags[-1]
            and word[-1] not in "wxy")


def _first_rule(word: str, rules) -> str:
    """Apply the first rule whose suffix ``word`` ends with, if ``condition(stem)`` holds;
    later rules are not tried either way (NLTK's ``_apply_rule_list``)."""
    for suffix, replacement, condition in rules:
        if word.endswith(suffix):
            stem = word[: len(word) - len(suffix)]
            return stem + replacement if condition(stem) else word
    return word


def _m_positive(stem: str) -> bool:
    return _measure(stem) > 0


def _m_above_one(stem: str) -> bool:
    return _measure(stem) > 1


_STEP2 = [(s, r, _m_positive) for s, r in (
    ("ational", "ate"), ("tional", "tion"), ("enci", "ence"), ("anci", "ance"), ("izer", "ize"),
    ("bli", "ble"), ("alli", "al"), ("entli", "ent"), ("eli", "e"), ("ousli", "ous"),
    ("ization", "ize"), ("ation", "ate"), ("ator", "ate"), ("alism", "al"), ("iveness", "ive"),
    ("fulness", "ful"), ("ousness", "ous"), ("aliti", "al"), ("iviti", "ive"),
    ("biliti", "ble"), ("fulli", "ful"))]
# NLTK's -logi -> -log measures the stem with the "l" kept
_STEP2.append(("logi", "log", lambda stem: _measure(stem + "l") > 0))
_STEP3 = [(s, r, _m_positive) for s, r in (
    ("icate", "ic"), ("ative", ""), ("alize", "al"), ("iciti", "ic"), ("ical", "ic"),
    ("ful", ""), ("ness", ""))]
_STEP4 = [(s, "", _m_above_one) for s in (
    "al", "ance", "ence", "er", "ic", "able", "ible", "ant", "ement", "ment", "ent")]
_STEP4.append(("ion", "", lambda stem: _measure(stem) > 1 and stem[-1] in "st"))
_STEP4 += [(s, "", _m_above_one) for s in ("ou", "ism", "ate", "iti", "ous", "ive", "ize")]


def _step1a(word: str) -> str:
    if len(word) == 4 and word.endswith("ies"):  # NLTK: "ties" -> "tie"
        return word[:-1]
    if word.endswith(("sses", "ies")):  # -sses -> -ss, -ies -> -i
        return word[:-2]
    if word.endswith("s") and not word.endswith("ss"):
        return word[:-1]
    return word


def _step1b(word: str) -> str:
    if word.endswith("ied"):  # NLTK: "tied" -> "tie", "cried" -> "cri"
        return word[:-1] if len(word) == 4 else word[:-2]
    if word.endswith("eed"):
        return word[:-1] if _measure(word[:-3]) > 0 else word
    for suffix in ("ed", "ing"):
        if word.endswith(suffix) and _has_vowel(word[: -len(suffix)]):
            word = word[: -len(suffix)]
            if word.endswith(("at", "bl", "iz")):
                return word + "e"
            if _double_consonant(word):
                return word if word[-1] in "lsz" else word[:-1]
            return word + "e" if _measure(word) == 1 and _cvc(word) else word
    return word


def _step2(word: str) -> str:
    if word.endswith("alli") and _measure(word[:-4]) > 0:  # NLTK: -alli -> -al, then again
        return _step2(word[:-2])
    return _first_rule(word, _STEP2)


def porter_stem(word: str) -> str:
    """Porter's suffix-stripping algorithm on a lower-case word, exactly as NLTK's
    ``PorterStemmer()`` in its default mode (NLTK_EXTENSIONS) stems it: the original (1980)
    rules with NLTK's changes (irregular forms, -ies/-ied in 4-letter words, y -> i only after
    a consonant, -bli, -alli, -fulli, -logi, a two-letter *o)."""
    if word in _IRREGULAR:
        return _IRREGULAR[word]
    if len(word) <= 2:
        return word
    word = _step1b(_step1a(word))
    # Step 1c (NLTK): y -> i after a consonant that is not the word's first letter
    if word.endswith("y") and len(word) > 2 and _consonants(word)[-2]:
        word = word[:-1] + "i"
    word = _first_rule(_step2(word), _STEP3)
    word = _first_rule(word, _STEP4)
    # Step 5a
    if word.endswith("e"):
        stem = word[:-1]
        m = _measure(stem)
        if m > 1 or (m == 1 and not _cvc(stem)):
            word = stem
    # Step 5b
    if _measure(word) > 1 and _double_consonant(word) and word.endswith("l"):
        word = word[:-1]
    return word


# --------------------------------------------------------------------------------------------
# TOFU: probability, truth ratio, forget quality, model utility


def answer_probability(mean_nll: np.ndarray) -> np.ndarray:
    """TOFU's answer probability per record: P(a|q)^(1/|a|) = exp(−mean token NLL of the
    answer). TOFU reports the mean over records (forget and retain sets)."""
    return np.exp(-np.asarray(mean_nll, dtype=np.float64))


def normalised_probability(answer_mean_nll: np.ndarray,
                           perturbed_mean_nll: np.ndarray) -> np.ndarray:
    """TOFU's probability on the real-authors and world-facts sets, per record:
    P(a) / (P(a) + Σ_j P(pert_j)) with every P the length-normalised probability
    exp(−mean token NLL), as TOFU's ``aggregate_stat_eval.py`` computes it from
    ``avg_gt_loss`` and ``average_perturb_loss`` (each a per-token mean). No answer lengths
    are needed. ``answer_mean_nll`` is (N,), ``perturbed_mean_nll`` (N, K); TOFU reports the
    mean over records."""
    answer = np.exp(-np.asarray(answer_mean_nll, dtype=np.float64))
    perturbed = np.exp(-np.asarray(perturbed_mean_nll, dtype=np.float64))
    if perturbed.ndim != 2 or perturbed.shape[0] != answer.shape[0]:
        raise ValueError(f"perturbed_mean_nll must be (N, K) with N={answer.shape[0]}, "
                         f"got {perturbed.shape}")
    return answer / (answer + perturbed.sum(axis=1))


def truth_ratio(paraphrased_mean_nll: np.ndarray, perturbed_mean_nll: np.ndarray) -> np.ndarray:
    """TOFU's truth ratio per record, R = exp(L_para − mean_j L_pert_j), L = per-token mean
    NLL: the geometric mean of the perturbed answers' length-normalised probabilities over
    the paraphrased (base) answer's. R < 1 means the model prefers the true answer.

    TOFU's code computes the reciprocal, exp(mean_j L_pert_j − L_para), and scores it as
    min(x, 1/x) (forget) or max(0, 1 − 1/x) (others): the same numbers as
    ``truth_ratio_per_example`` on R. (Some forks average the perturbed probabilities instead
    of the losses; that is not what TOFU's released aggregation does.)"""
    para = np.asarray(paraphrased_mean_nll, dtype=np.float64)
    pert = np.asarray(perturbed_mean_nll, dtype=np.float64)
    if pert.ndim != 2 or pert.shape[0] != para.shape[0]:
        raise ValueError(f"perturbed_mean_nll must be (N, K) with N={para.shape[0]}, "
                         f"got {pert.shape}")
    return np.exp(para - pert.mean(axis=1))


def truth_ratio_per_example(ratios: np.ndarray, kind: str) -> np.ndarray:
    """Per-record truth-ratio score: ``"forget"`` → min(R, 1/R) (1 = no preference between
    true and false answers, what a model that never saw the data shows); ``"retain"`` (also
    real authors, world facts) → max(0, 1 − R) (higher = prefers the true answer)."""
    r = np.asarray(ratios, dtype=np.float64)
    if kind == "forget":
        return np.minimum(r, 1.0 / r)
    if kind == "retain":
        return np.maximum(0.0, 1.0 - r)
    raise ValueError(f"kind must be 'forget' or 'retain', got {kind!r}")


def truth_ratio_score(ratios: np.ndarray, kind: str) -> float:
    """TOFU's reported truth ratio: the mean of ``truth_ratio_per_example(ratios, kind)``."""
    values = truth_ratio_per_example(ratios, kind)
    return float(values.mean()) if len(values) else float("nan")


def forget_quality(unlearned_ratios: np.ndarray, retain_model_ratios: np.ndarray) -> float:
    """TOFU's forget quality: the p-value of the two-sided two-sample Kolmogorov–Smirnov test
    (``scipy.stats.ks_2samp``) between the per-record forget-set truth ratios of the
    unlearned model and of the retain (gold) model. High (≥ 0.05) = indistinguishable;
    identical samples give 1.0. TOFU passes 1/R; the KS statistic is invariant under the
    strictly monotone map R → 1/R, so the p-value is the same. NaN if either sample is
    empty."""
    u = np.asarray(unlearned_ratios, dtype=np.float64)
    r = np.asarray(retain_model_ratios, dtype=np.float64)
    if len(u) == 0 or len(r) == 0:
        return float("nan")
    return float(stats.ks_2samp(u, r).pvalue)


def model_utility(values: Iterable[float]) -> float:
    """TOFU's model utility: the harmonic mean (``scipy.stats.hmean``) of the nine numbers
    {probability, ROUGE, truth ratio} × {retain, real authors, world facts}. A zero anywhere
    gives 0 (the harmonic-mean limit); a NaN gives NaN; a negative value is an error."""
    v = np.asarray(list(values), dtype=np.float64)
    if len(v) == 0 or np.isnan(v).any():
        return float("nan")
    if (v < 0).any():
        raise ValueError(f"model utility needs non-negative values, got {v.tolist()}")
    if (v == 0).any():
        return 0.0
    return float(stats.hmean(v))


# --------------------------------------------------------------------------------------------
# MUSE: PrivLeak, KnowMem prompt


def privleak(auc_unlearned: float, auc_retain: float) -> float:
    """MUSE's PrivLeak = (AUC_u − AUC_R) / AUC_R × 100: the unlearned model's AUC relative to
    the retain model's, each the AUC of the Min-K% (k = 0.4) attack on forget versus holdout
    texts **in MUSE's orientation**, holdout labelled positive: P(a holdout text looks more
    like training data than a forget text), i.e. 1 − ``mia_text.auc(forget, holdout)``.

    Pass AUCs in that orientation (``membership.privleak_metric`` does): then 0 is ideal, a
    model still leaking its forget set (forget looks trained on, AUC near 0) is strongly
    negative, the target near −100 as in MUSE's tables, and an over-unlearned one (forget
    looks less trained on than never-seen holdout) positive. Member-oriented AUCs would flip
    the reading: PrivLeak would be ((1 − A_R) − (1 − A_u)) / (1 − A_R) × 100 instead."""
    return (float(auc_unlearned) - float(auc_retain)) / float(auc_retain) * 100.0


def knowmem_prompt(examples: Sequence[tuple[str, str]], question: str) -> str:
    """MUSE's KnowMem prompt: for each in-context pair "Question: q\\nAnswer: a\\n\\n", then
    "Question: {question}\\nAnswer: ". The trailing space after "Answer:" is MUSE's
    (``get_rouge_qa.py``: ``f"Question: {question}\\nAnswer: "``)."""
    shots = "".join(f"Question: {q}\nAnswer: {a}\n\n" for q, a in examples)
    return shots + f"Question: {question}\nAnswer: "


_KNOWMEM_STOPS = ("\n\n", "\nQuestion", "Question:")


def cut_knowmem_answer(text: str) -> str:
    """MUSE's cut of a KnowMem generation: keep the text before the first "\\n\\n",
    "\\nQuestion" or "Question:" (applied one after the other, as MUSE does; the result is
    the prefix before the earliest of them)."""
    for stop in _KNOWMEM_STOPS:
        text = text.split(stop)[0]
    return text


# --------------------------------------------------------------------------------------------
# RWKU / ROME fluency


_WORDS = re.compile(r"\w+|[^\w\s]")

NGRAM_ORDERS = (2, 3)
NGRAM_WEIGHTS = (2 / 3, 4 / 3)


def text_ngram_entropy(text: str, ns: Sequence[int] = NGRAM_ORDERS,
                       weights: Sequence[float] = NGRAM_WEIGHTS) -> float:
    """ROME's ``compute_n_gram_entropy`` for one text: for each n, the Shannon entropy (bits)
    of the text's n-gram frequency distribution, H_n = −Σ p log2 p; the result is the
    arithmetic mean of w_n·H_n (defaults n = 2, 3 with w = 2/3, 4/3, i.e. H_2/3 + 2·H_3/3).
    A text too short for any n-gram of order n contributes H_n = 0 (as in ROME, where the
    empty sum is 0). Tokens: see the module docstring (case is kept, as in NLTK)."""
    tokens = _WORDS.findall(text)
    weighted = []
    for n, w in zip(ns, weights):
        counts = Counter(tuple(tokens[i:i + n]) for i in range(len(tokens) - n + 1))
        total = sum(counts.values())
        h = -sum(c / total * math.log2(c / total) for c in counts.values()) if total else 0.0
        weighted.append(w * h)
    return float(np.mean(weighted))


def ngram_entropy(texts: Sequence[str], ns: Sequence[int] = NGRAM_ORDERS,
                  weights: Sequence[float] = NGRAM_WEIGHTS) -> float:
    """RWKU's fluency (ROME's ``n_gram_entropy`` with ``agg="arith"``): the mean over texts of
    ``text_ngram_entropy``. NaN for no texts."""
    if len(texts) == 0:
        return float("nan")
    return float(np.mean([text_ngram_entropy(t, ns, weights) for t in texts]))
