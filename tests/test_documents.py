"""Document corpora (MUSE-like): the pieces every corpus shares, synthetic news, and the R
data reader (on R data written by the small writer of ``document_fixtures.py``). The
public-domain books are tested in ``test_documents_books.py``."""
from __future__ import annotations

import pytest

from unlearnbench.data import documents, news, rdata
from unlearnbench.errors import UserError
from unlearnbench.registry import datasets

from document_fixtures import (RWriter, check_corpus_invariants, ids, r_flags, r_serialize,
                               write_lazyload_db)

# ----------------------------------------------------------------------------- shared pieces

def test_split_at_word_reproduces_the_text():
    text = "One  two\nthree four,   five six\tseven eight nine ten"
    prefix, continuation = documents.split_at_word(text, 0.6)
    assert prefix + continuation == text
    assert prefix == "One  two\nthree four,   five six"
    assert continuation.startswith("\tseven")
    assert documents.split_at_word("a b", 0.99) == ("a", " b")  # a word always left over
    with pytest.raises(UserError):
        documents.split_at_word(text, 1.0)


def test_unit_groups_are_near_equal_and_ordered():
    assert documents.unit_groups(list("abcdefghij")) == [["a", "b"], ["c", "d", "e"],
                                                         ["f", "g", "h"], ["i", "j"]]
    assert documents.unit_groups(list("abcd")) == [["a"], ["b"], ["c"], ["d"]]
    with pytest.raises(UserError, match="at least 4"):
        documents.unit_groups(["a", "b", "c"])


# ----------------------------------------------------------------------------- news

def test_news_is_registered_and_deterministic():
    assert datasets.get("news").obj is news.load_news
    a = news.load_news(n_articles=60, seed=3)
    b = news.load_news(n_articles=60, seed=3)
    c = news.load_news(n_articles=60, seed=4)
    assert a.fingerprint() == b.fingerprint() != c.fingerprint()


def test_news_default_sizes_and_article_lengths():
    bundle = news.load_news()
    sizes = {name: len(split) for name, split in bundle.splits.items()}
    assert (sizes["forget"], sizes["retain"], sizes["holdout"]) == (80, 160, 80)
    assert sizes["knowmem_forget"] == 160 and sizes["knowmem_retain"] == 320
    assert [sizes[f"scale_{k}"] for k in range(1, 5)] == [20, 40, 60, 80]
    assert all(sizes[f"sustain_{k}"] == 20 for k in range(1, 5))
    texts = [r["text"] for name in ("forget", "retain", "holdout")
             for r in bundle.splits[name].records]
    lengths = [len(t.split()) for t in texts]
    assert 60 <= min(lengths) and max(lengths) <= 150
    assert len(set(texts)) == len(texts)
    check_corpus_invariants(bundle)


def test_news_questions_are_stated_in_their_own_article_only():
    bundle = news.load_news(n_articles=80, seed=1)
    documents_by_id = {i: r["text"] for name in ("forget", "retain", "holdout")
                       for i, r in zip(bundle.splits[name].ids.tolist(), bundle.splits[name].records)}
    for name in ("knowmem_forget", "knowmem_retain"):
        for record in bundle.splits[name].records:
            (source,) = record["sources"]
            assert record["answer"] in documents_by_id[source]
            assert len(record["answer"].split()) <= 5
    # every question of the whole corpus (asked or not) is unique, so a fact lives in one article
    _, per_article = news.generate_articles(80, seed=1, questions_per_article=10)
    asked = [q["question"] for qs in per_article for q in qs]
    assert len(asked) == len(set(asked))


@pytest.mark.parametrize("chosen", ["scale_2", "sustain_3"])
def test_news_smaller_forget_requests(chosen):
    full = news.load_news(n_articles=60, seed=2)
    part = news.load_news(chosen, n_articles=60, seed=2)
    check_corpus_invariants(part, chosen)
    assert ids(part, "forget") == ids(full, chosen)
    # the target model trains on the same documents whatever the request
    assert set(part.training_split(True).ids.tolist()) == set(full.training_split(True).ids.tolist())
    assert ids(part, "retain") == ids(full, "retain") | (ids(full, "forget") - ids(full, chosen))
    assert ids(part, "knowmem_retain") == ids(full, "knowmem_retain")
    assert ids(part, "knowmem_forget") < ids(full, "knowmem_forget")
    assert ids(part, "verbatim") < ids(full, "verbatim")


def test_news_validation_request_forgets_other_articles_of_the_same_corpus():
    """news[validation=1] (``unlearnbench tune``): as many retain articles forgotten instead,
    the evaluated forget articles retained, the same articles trained, the holdout kept."""
    from unlearnbench.scenarios import get_spec

    full, validation = news.load_news(), news.load_news(validation=True)

    def texts(bundle, split):
        return {r["text"] for r in bundle.splits[split].records}

    assert len(texts(validation, "forget")) == len(texts(full, "forget")) == 80
    assert not texts(validation, "forget") & texts(full, "forget")
    assert texts(validation, "forget") <= texts(full, "retain")
    assert texts(full, "forget") <= texts(validation, "retain")
    assert texts(full, "holdout") == texts(validation, "holdout")
    assert get_spec("news-mini[validation=1]").dataset_options["validation"] is True
    with pytest.raises(UserError, match="validation=1"):
        news.load_news(forget_fraction=0.4, holdout_fraction=0.3, validation=True)


def test_news_bad_options():
    with pytest.raises(UserError, match="scale_1"):
        news.load_news("scale_9")
    with pytest.raises(UserError, match="n_articles"):
        news.load_news(n_articles=5)
    with pytest.raises(UserError, match="fraction"):
        news.load_news(forget_fraction=0.6, holdout_fraction=0.5)


# ----------------------------------------------------------------------------- R data reader

def test_unserialize_vectors_lists_and_attributes():
    w = RWriter()
    item = w.named_list({
        "text": w.strings(["Emma Woodhouse,", None, "café"]),
        "old": w.strings(["naïve"], encoding="latin-1"),
        "n": w.ints([3, None, -7]),
        "flag": w.ints([1, 0, None], kind=10),
        "x": w.doubles([0.5, float("nan")]),
        "labelled": w.strings(["a", "b"], attrs={"names": w.strings(["first", "second"])}),
    })
    for version in (2, 3):
        value = rdata.unserialize(r_serialize(item, version))
        assert isinstance(value, rdata.RVector) and value.rtype == "list"
        named = value.as_dict()
        assert named["text"] == ["Emma Woodhouse,", None, "café"]
        assert named["text"].rtype == "character"
        assert named["old"] == ["naïve"]
        assert named["n"] == [3, None, -7] and named["n"].rtype == "integer"
        assert named["flag"] == [True, False, None]
        assert named["x"] == [0.5, None]
        assert named["labelled"].as_dict() == {"first": "a", "second": "b"}
    assert rdata.unserialize(r_serialize(r_flags(254))) is None


def test_unserialize_refuses_what_it_cannot_read():
    with pytest.raises(UserError, match="closure"):
        rdata.unserialize(r_serialize(r_flags(3)))
    with pytest.raises(UserError, match="ASCII"):
        rdata.unserialize(b"A\n" + b"3\n")
    with pytest.raises(UserError, match="truncated"):
        rdata.unserialize(r_serialize(RWriter().strings(["abc", "def"]))[:-2])
    with pytest.raises(UserError, match="header"):
        rdata.unserialize(b"\x00\x01junk")


@pytest.mark.parametrize("compressed,method", [(1, b"1"), (3, b"Z"), (2, b"0")])
def test_read_lazyload_db(tmp_path, compressed, method):
    w = RWriter()
    rdb, rdx = write_lazyload_db(tmp_path, {"first": w.strings(["A", "", "line two"]),
                                            "second": w.ints([1, 2, 3])}, compressed, method)
    objects = rdata.read_lazyload_db(rdb)
    assert list(objects) == ["first", "second"]
    assert objects["first"] == ["A", "", "line two"] and objects["second"] == [1, 2, 3]
    rdb.write_bytes(rdb.read_bytes()[:10])
    with pytest.raises(UserError, match="outside the file"):
        rdata.read_lazyload_db(rdb, rdx)
    rdx.unlink()
    with pytest.raises(UserError, match=r"\.rdx"):
        rdata.read_lazyload_db(rdb)
