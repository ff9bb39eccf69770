"""Global word importance: grouping by word, filters, exact merging, CSV/JSON writers."""

from __future__ import annotations

import csv
import json
import random
import subprocess
import sys

import numpy as np
import pytest

from seqshap.attribution.explanation import Explanation
from seqshap.importance import WordImportance, word_importance
from seqshap.viz.importance import write_outputs

NATIVE_IDS = {"<pad>": 0, "<start>": 1, "<oov>": 2}  # the native layout's padding, start and unknown ids


def exp(tokens, values, space="probability") -> Explanation:
    """Hand-built with native ids: padding, start and unknown as the native tokenizer numbers them,
    every other token its own word id (which positions are words is the layout's answer)."""
    words = sorted({t for t in tokens if t not in NATIVE_IDS})
    ids = [NATIVE_IDS.get(t, 3 + words.index(t) if t in words else 0) for t in tokens]
    return Explanation(tokens, ids, values, 0.5, 0.5 + float(np.sum(values)), 0.0, output_space=space)


REVIEWS = [
    exp(["<pad>", "<start>", "great", "film", "great"], [0.9, 0.8, 0.30, 0.01, 0.10]),
    exp(["<start>", "awful", "film", "<oov>"], [0.5, -0.40, -0.03, 0.7]),
    exp(["<pad>", "great", "awful", "plot"], [0.0, 0.20, -0.20, -0.05]),
]


def test_groups_by_word_with_means_counts_and_reviews():
    t = word_importance(REVIEWS, min_count=1)
    g = t["great"]
    assert g.count == 3
    assert g.n_reviews == 2
    assert g.mean == pytest.approx((0.30 + 0.10 + 0.20) / 3)
    assert g.mean_abs == pytest.approx(0.2)
    a = t["awful"]
    assert (a.count, a.n_reviews) == (2, 2)
    assert a.mean == pytest.approx(-0.3)
    assert a.mean_abs == pytest.approx(0.3)
    f = t["film"]
    assert f.mean == pytest.approx(-0.01)
    assert f.mean_abs == pytest.approx(0.02)
    assert t.n_explanations == 3


def test_pad_start_and_oov_are_not_words():
    acc = WordImportance().update(REVIEWS)
    t = acc.table(min_count=1)
    assert {r.word for r in t.rows} == {"great", "film", "awful", "plot"}
    assert acc.n_skipped == 1  # the one <oov> position, counted but not pooled


def test_min_count_filter_and_top_lists():
    t = word_importance(REVIEWS, min_count=2)
    assert {r.word for r in t.rows} == {"great", "awful", "film"}
    assert [r.word for r in t.top_positive(5)] == ["great"]
    assert [r.word for r in t.top_negative(5)] == ["awful", "film"]  # most negative first
    assert [r.word for r in t.by_mean_abs(2)] == ["awful", "great"]
    with pytest.raises(ValueError, match="min_count"):
        WordImportance().table(0)


def test_merge_is_exact_whatever_the_split_or_order():
    # Magnitudes chosen so plain float addition depends on the order: 1e16 + 1 - 1e16.
    rng = random.Random(0)
    vocab = ["great", "awful", "film", "plot", "the"]
    reviews = []
    for _ in range(60):
        toks = [rng.choice(vocab) for _ in range(12)]
        vals = [rng.choice([1e16, -1e16, 1.0, 1e-8, -3.3, 0.1]) * rng.random() for _ in toks]
        reviews.append(exp(toks, vals))
    reviews += [exp(["great"], [1e16]), exp(["great"], [1.0]), exp(["great"], [-1e16])]
    whole = WordImportance().update(reviews).table(1)
    for cut in (1, 17, 40, 62):
        a = WordImportance().update(reviews[:cut])
        b = WordImportance().update(reviews[cut:])
        assert b.merge(a).table(1).rows == whole.rows  # merged in the other order, still identical
    shuffled = reviews[:]
    rng.shuffle(shuffled)
    parts = [WordImportance().update(shuffled[i::4]) for i in range(4)]
    total = parts[0] + parts[1] + parts[2] + parts[3]
    assert total.table(1).rows == whole.rows
    assert total.n_explanations == len(reviews)
    # plain float summation would not give this: the exact sums are kept
    assert sum([1e16, 1.0, -1e16]) != sum([1e16, -1e16, 1.0])


def test_state_roundtrip_through_json_is_exact():
    acc = WordImportance().update(REVIEWS)
    again = WordImportance.from_state(json.loads(json.dumps(acc.to_state())))
    assert again.table(1).rows == acc.table(1).rows
    assert again.n_skipped == acc.n_skipped


def test_refuses_mixed_output_spaces_and_bad_values():
    acc = WordImportance().add(exp(["a"], [0.1]))
    with pytest.raises(ValueError, match="output spaces"):
        acc.add(exp(["a"], [0.1], space="logit"))
    with pytest.raises(ValueError, match="output spaces"):
        acc.merge(WordImportance("logit"))
    with pytest.raises(ValueError, match="NaN"):
        WordImportance().add_tokens(["a"], [float("nan")])
    with pytest.raises(ValueError, match="2 tokens but 1 values"):
        WordImportance().add_tokens(["a", "b"], [0.1])


def test_csv_json_png_svg_written(tmp_path):
    t = word_importance(REVIEWS, min_count=1)
    paths = write_outputs(t, tmp_path, k=3)
    assert set(paths) == {"csv", "json", "png", "svg"}
    with open(paths["csv"], newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert [r["word"] for r in rows] == [r.word for r in t.rows]
    great = next(r for r in rows if r["word"] == "great")
    assert float(great["mean"]) == t["great"].mean
    assert int(great["count"]) == 3
    assert int(great["n_reviews"]) == 2
    data = json.loads(paths["json"].read_text())
    assert data["top_positive"] == ["great"]
    assert data["top_negative"] == ["awful", "plot", "film"]
    assert data["n_explanations"] == 3
    assert len(data["words"]) == 4
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "great" in paths["svg"].read_text()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temp files left behind


def test_importance_is_numbers_only():
    """The numbers do not import the pictures (viz imports importance, not the other way)."""
    code = (
        "import sys, seqshap.importance; "
        "print(sorted(m for m in sys.modules if m.startswith(('seqshap.viz', 'matplotlib'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
