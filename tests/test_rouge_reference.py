"""ROUGE-L against Google's ``rouge_score`` package (a test dependency only): the project's
tokeniser and Porter stemmer must give the package's tokens and scores exactly."""
from __future__ import annotations

import random

import pytest

from unlearnbench.metrics.text_scores import porter_stem, rouge_l, rouge_tokens

rouge_scorer = pytest.importorskip(
    "rouge_score.rouge_scorer", reason="rouge_score is not installed (pip install rouge-score)")
from rouge_score.tokenizers import DefaultTokenizer  # noqa: E402

STEMS = ["day", "happy", "city", "study", "cry", "play", "enjoy", "toy", "sky", "spy", "die",
         "lie", "tie", "run", "hop", "fall", "file", "fail", "agree", "feed", "plaster",
         "motor", "sing", "relate", "condition", "rational", "generalize", "hope", "good",
         "replace", "adopt", "control", "probate", "rate", "cease", "valency", "digit",
         "conform", "radical", "different", "analogous", "operate", "feudal", "decisive",
         "callous", "formal", "sensitive", "sensible", "electric", "triplicate", "revival",
         "allowance", "inference", "airline", "gyroscope", "adjust", "defense", "irritant",
         "homolog", "communism", "activate", "bowdler", "caress", "pony", "news", "inning",
         "outing", "canning", "howe", "proceed", "exceed", "succeed", "axe", "ace", "biology",
         "hopeful", "beautiful", "national", "station", "mission", "leaf", "bus", "box",
         "yyyy", "syzygy", "ivy", "oats", "trouble", "orrery"]
SUFFIXES = ["", "s", "es", "ies", "ied", "ed", "ing", "y", "ly", "ally", "ness", "ful",
            "fully", "ational", "ation", "ations", "izer", "ization", "ism", "ist", "ity",
            "ities", "ive", "ively", "iveness", "ous", "ously", "able", "ably", "ment",
            "ments", "er", "ers", "est", "logy", "logies", "ic", "ical", "ically", "ance",
            "ence", "ant", "ent", "ently"]
OTHER = ["1990s", "2024", "y2k", "3rd", "42", "it's", "don't", "e-mail", "co-operate",
         "U.S.", "café", "naïve", "Über", "...", ",", ";", "—", "(", ")", "!?", "'", "\"",
         "a", "an", "of", "to", "by", "is"]


def vocabulary(rng: random.Random) -> list[str]:
    words = [stem + suffix for stem in STEMS for suffix in rng.sample(SUFFIXES, 12)]
    return words + OTHER


def cased(word: str, rng: random.Random) -> str:
    roll = rng.random()
    return word.upper() if roll < 0.1 else word.capitalize() if roll < 0.3 else word


def sentence(words: list[str], rng: random.Random) -> str:
    tokens = [cased(rng.choice(words), rng) for _ in range(rng.randint(0, 14))]
    separators = [" ", " ", " ", ", ", "-", "  ", "\n", "/", ". "]
    return "".join(t + rng.choice(separators) for t in tokens).strip()


@pytest.fixture(scope="module")
def pairs():
    rng = random.Random(1234)
    words = vocabulary(rng)
    out = []
    for _ in range(3000):
        reference = sentence(words, rng)
        # a prediction that shares words with its reference, so the LCS is usually not 0
        shared = reference.split() if reference and rng.random() < 0.7 else []
        prediction = " ".join(rng.sample(shared, rng.randint(0, len(shared)))) \
            + " " + sentence(words, rng)
        out.append((prediction.strip(), reference))
    return words, out


@pytest.mark.parametrize("stem", [True, False])
def test_tokens_equal_rouge_score(pairs, stem):
    words, texts = pairs
    tokenizer = DefaultTokenizer(use_stemmer=stem)
    mismatched = [w for w in words if rouge_tokens(w, stem) != tokenizer.tokenize(w)]
    assert mismatched == []
    for prediction, reference in texts[:500]:
        assert rouge_tokens(reference, stem) == tokenizer.tokenize(reference)


def test_step_1c_and_nltk_extensions():
    """Cases where the original Porter algorithm and NLTK's default mode differ."""
    words = ["days", "enjoy", "ties", "tied", "dying", "skies", "biology", "axes"]
    assert [porter_stem(w) for w in words] == \
        ["day", "enjoy", "tie", "tie", "die", "sky", "biolog", "axe"]


@pytest.mark.parametrize("stem", [True, False])
def test_rouge_l_equals_rouge_score(pairs, stem):
    """Recall, precision and F1 equal to 1e-12: both compute the same integer LCS and the
    same float expressions, so any difference is a tokenisation or stemming difference."""
    scorer = rouge_scorer.RougeScorer(["rougeL"], use_stemmer=stem)
    _, texts = pairs
    nonzero = 0
    for prediction, reference in texts:
        expected = scorer.score(reference, prediction)["rougeL"]
        recall, precision, f1 = rouge_l(prediction, reference, stem=stem)
        assert recall == pytest.approx(expected.recall, abs=1e-12), (prediction, reference)
        assert precision == pytest.approx(expected.precision, abs=1e-12), (prediction, reference)
        assert f1 == pytest.approx(expected.fmeasure, abs=1e-12), (prediction, reference)
        nonzero += 0 < expected.recall < 1
    assert nonzero > len(texts) // 3  # the pairs exercise partial matches, not only 0 and 1
