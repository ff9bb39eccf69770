"""Plausibility (issue 32): explanations against human word ratings, where the answers are known by hand.

The measures are checked on made-up reviews and a *planted* lexicon (a small dict passed as the
``lexicon``), then through :func:`seqshap.faithfulness.evaluate` on a bag-of-words model whose exact
values are its word scores, then end to end: ``seqshap faithfulness --plausibility`` and ``seqshap
importance --ratings`` in subprocesses on a tiny LSTM, and their refusal for a model whose classes
are not sentiment.
"""

from __future__ import annotations

import csv
import json
import math
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import seqshap
from seqshap.attribution import make_method
from seqshap.data.imdb import RATING_CLASSES
from seqshap.faithfulness import evaluate
from seqshap.faithfulness.evaluate import make_plausibility
from seqshap.faithfulness.plausibility import (
    Direction,
    LexiconMissingError,
    NotApplicableError,
    Plausibility,
    chance_top_k,
    class_sign,
    count_outputs,
    normalise_lexicon,
    rank_correlation,
    rated_top_k,
    sentiment_direction,
    sign_agreement,
    spearman,
    token_word_groups,
    vader_lexicon,
    word_groups,
)
from seqshap.faithfulness.report import csv_rows, load_result, to_markdown, write_outputs
from seqshap.importance import ImportanceTable, WordStat

# The planted lexicon: people call "dull" positive (+1.7) where the model below calls it negative.
LEXICON = {"great": 3.1, "good": 1.9, "fine": 0.8, "Dull": 1.7, "awful": -3.0}


# ---- the three measures, by hand ---------------------------------------------------------------
REVIEWS = [
    [("great", 0.3), ("awful", 0.1), ("fine", -0.2), ("the", 0.5)],
    [("dull", -0.4), ("great", 0.0), (None, 1.0)],
]


def test_sign_agreement_by_hand():
    lex = normalise_lexicon(LEXICON)
    # strong occurrences: great +0.3 (yes), awful +0.1 (no), dull -0.4 (no: people say +1.7), great 0.0 (no sign)
    share, n, per = sign_agreement(REVIEWS, lex)
    assert n == 4
    assert share == pytest.approx(1 / 4)
    np.testing.assert_allclose(per, [1 / 2, 0.0])
    # "fine" (0.8) is rated but not strongly; a lower bar counts it (and it disagrees)
    share, n, _ = sign_agreement(REVIEWS, lex, strong=0.5)
    assert (n, share) == (5, pytest.approx(1 / 5))
    # a review without a strongly rated word has no share
    assert math.isnan(sign_agreement([[("the", 1.0)]], lex)[2][0])
    assert math.isnan(sign_agreement([[("the", 1.0)]], lex)[0])


def test_rated_top_k_and_chance_by_hand():
    lex = normalise_lexicon(LEXICON)
    # review 1 by |value|: the .5, great .3, fine .2, awful .1; review 2: <unknown> 1.0, dull .4, great 0
    p, per = rated_top_k(REVIEWS, lex, k=2)
    np.testing.assert_allclose(per, [1 / 2, 1 / 2])  # {the, great}, {unknown, dull}
    assert p == pytest.approx(1 / 2)
    p, per = rated_top_k(REVIEWS, lex, k=1)
    assert p == 0.0
    p, per = rated_top_k(REVIEWS, lex, k=10)  # all words: 2 of 4, 2 of 3
    np.testing.assert_allclose(per, [2 / 4, 2 / 3])
    assert chance_top_k(REVIEWS, lex) == pytest.approx((2 / 4 + 2 / 3) / 2)
    # ties in |value| go in text order
    assert rated_top_k([[("the", 0.5), ("great", -0.5)]], lex, k=1)[0] == 0.0
    assert math.isnan(rated_top_k([[]], lex)[0])
    with pytest.raises(ValueError, match="k must be at least 1"):
        rated_top_k(REVIEWS, lex, k=0)


def test_spearman_and_rank_correlation_by_hand():
    assert spearman([1, 2, 3, 4], [10, 20, 30, 40]) == pytest.approx(1.0)
    assert spearman([1, 2, 3, 4], [4, 3, 2, 1]) == pytest.approx(-1.0)
    # ties share their mean rank: ranks [1.5, 1.5, 3] against [1, 2, 3]
    assert spearman([1, 1, 2], [1, 2, 3]) == pytest.approx(1.5 / math.sqrt(1.5 * 2))
    assert math.isnan(spearman([1, 2], [1, 2]))
    assert math.isnan(spearman([1, 1, 1], [1, 2, 3]))
    lex = normalise_lexicon(LEXICON)
    # each word's mean over the corpus: great (0.2+0.4)/2, dull -0.1, fine 0.1, awful -0.3 (seen once)
    corpus = [
        [("great", 0.2), ("dull", -0.1), ("fine", 0.1), ("awful", -0.3)],
        [("great", 0.4), ("dull", -0.1), ("fine", 0.1), ("the", 9.0)],
    ]
    # all four rated words: means rank awful<dull<fine<great, ratings awful<fine<dull<great: d = 0,1,-1,0
    rho, n = rank_correlation(corpus, lex, min_count=1)
    assert n == 4
    assert rho == pytest.approx(1 - 6 * 2 / (4 * 15))
    rho, n = rank_correlation(corpus, lex, min_count=2)  # awful drops out: dull, fine, great
    assert n == 3
    assert rho == pytest.approx(0.5)  # ranks [1,2,3] against [2,1,3]
    assert rank_correlation(corpus, lex, min_count=3) == (pytest.approx(float("nan"), nan_ok=True), 0)


def test_the_lexicon_is_matched_case_insensitively_and_checked():
    lex = normalise_lexicon({"Great": 3.0, "great": 2.0, "can't stand": -2.0, ":P": 1.0, ":p": 1.4})
    assert lex == {"great": 2.5, ":p": 1.2}  # case variants: their mean; several words: left out
    with pytest.raises(ValueError, match="rating of 'bad' must be a finite number"):
        normalise_lexicon({"bad": float("nan")})
    with pytest.raises(ValueError, match="rating of 'bad' must be a finite number"):
        normalise_lexicon({"bad": "-2"})
    with pytest.raises(ValueError, match="rates no word"):
        Plausibility({})
    with pytest.raises(ValueError, match="k must be at least 1"):
        Plausibility(LEXICON, k=0)


def test_vader_is_read_from_the_installed_package():
    pytest.importorskip("vaderSentiment", reason="the plausibility extra: pip install 'seqshap[plausibility]'")
    lex = vader_lexicon()
    assert len(lex) > 7000
    assert lex["good"] > 1.5
    assert lex["horrible"] < -1.5
    assert all(k == k.lower() and " " not in k for k in lex)
    p = Plausibility.vader()
    assert "Hutto" in p.source
    assert "ICWSM" in p.source
    assert "vaderSentiment" in p.source


def test_a_missing_lexicon_names_the_extra(monkeypatch):
    monkeypatch.setitem(sys.modules, "vaderSentiment", None)  # import fails as if not installed
    monkeypatch.setitem(sys.modules, "vaderSentiment.vaderSentiment", None)
    with pytest.raises(LexiconMissingError, match=r"pip install 'seqshap\[plausibility\]'"):
        vader_lexicon()
    assert isinstance(LexiconMissingError("x"), ImportError)


# ---- which output is positive sentiment --------------------------------------------------------
def test_sentiment_direction_and_the_refusal():
    assert sentiment_direction(("negative", "positive"), 1).columns == ((0, 1.0),)
    assert sentiment_direction(("NEGATIVE", "POSITIVE"), 2).columns == ((1, 1.0),)  # a softmax's column 1
    stars = sentiment_direction(RATING_CLASSES, 8)
    assert stars.columns == ((7, 1.0), (0, -1.0))
    assert stars.label == "P(10) - P(1)"
    assert sentiment_direction(RATING_CLASSES, 8, task="imdb-rating").columns == ((7, 1.0), (0, -1.0))
    for classes, n in ((("sports", "politics", "tech"), 3), (("spam", "ham"), 1), (("0", "1", "2"), 3)):
        with pytest.raises(NotApplicableError, match="plausibility does not apply to m: its classes"):
            sentiment_direction(classes, n, name="m")
    assert isinstance(NotApplicableError("x"), ValueError)
    # which way a class's explanation points
    assert class_sign(stars, RATING_CLASSES, 8, "10") == 1
    assert class_sign(stars, RATING_CLASSES, 8, "1") == -1
    assert class_sign(stars, RATING_CLASSES, 8, "7") is None
    two = sentiment_direction(("negative", "positive"), 2)
    assert [class_sign(two, ("negative", "positive"), 2, t) for t in (None, "positive", "negative")] == [1, 1, -1]
    # Direction.combine is linear in the explained columns
    got = stars.combine(lambda c: np.full((1, 2), float(c)))
    np.testing.assert_allclose(got, [[7.0, 7.0]])


# ---- through evaluate: a bag of words whose exact values are its word scores --------------------
# id: 0 pad, 1 start, 2 oov, 3 great, 4 good, 5 fine, 6 dull, 7 awful, 8 the
SCORES = [0.0, 0.0, 0.0, 3.0, 2.0, 1.0, -1.0, -2.0, 0.5]
NAMES = {3: "great", 4: "good", 5: "fine", 6: "dull", 7: "awful", 8: "the"}


class BagOfWords(nn.Module):
    """The raw sum of word scores; with ``two``, a second output of the negated sum."""

    def __init__(self, two: bool = False):
        super().__init__()
        self.embedding = nn.Embedding(len(SCORES), 1)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.tensor(SCORES).view(-1, 1))
        self.two = two

    def forward(self, x):
        z = (x if x.is_floating_point() else self.embedding(x)).sum(1)
        return torch.cat([z, -z], 1) if self.two else z


IDS = torch.tensor([[1, 3, 6, 8, 5], [1, 4, 7, 3, 6]])  # great dull the fine; good awful great dull
WORDS = [[(NAMES[int(t)], (p,)) for p, t in enumerate(row) if int(t) >= 3] for row in IDS]


def _bow_result(direction: Direction | None = None, two: bool = False):
    net = BagOfWords(two)
    methods = {n: make_method(n, net, output="raw") for n in ("occlusion", "exact-shapley", "random")}
    plaus = Plausibility(LEXICON, direction or Direction(), k=3, min_count=1)
    return evaluate(methods, IDS, bins=(50,), plausibility=plaus, words=WORDS)


def test_evaluate_scores_exact_values_against_the_planted_lexicon():
    res = _bow_result()
    for name in ("occlusion", "exact-shapley"):  # both give every word its score
        r = res.row(name)
        # strong: great, dull | good, awful, great, dull: all signs agree but dull's (people +1.7, model -1)
        assert (r.sign_agreement, r.n_rated) == (pytest.approx(4 / 6), 6)
        # means great 3, good 2, fine 1, dull -1, awful -2 against 3.1, 1.9, 0.8, 1.7, -3.0: d = 0,0,1,-1,0
        assert (r.spearman, r.n_rank_words) == (pytest.approx(1 - 6 * 2 / (5 * 24)), 5)
        # top 3 by |value|: great dull fine (ties in text order) -> 2/3; great good awful -> 3/3
        assert r.rated_topk == pytest.approx((2 / 3 + 1) / 2)
        assert res.per_review[name]["sign_agreement"] == pytest.approx([1 / 2, 3 / 4])
    assert res.meta["plausibility"]["chance_topk"] == pytest.approx((2 / 4 + 4 / 4) / 2)
    assert res.meta["plausibility"]["direction"] == "the output"
    md = to_markdown(res)
    assert "#### Plausibility: agreement with human word ratings" in md
    assert "| exact-shapley | **0.667** | **0.900** | **0.833** | 6 | 5 |" in md
    assert "rated top-3" in md
    assert "ratings given by the caller" in md
    assert "Where DeepSHAP stands on plausibility" not in md  # no deepshap row here
    row = csv_rows(res)[0]
    assert list(row)[-6:] == ["sign_agreement", "n_rated", "spearman", "n_rank_words", "rated_topk", "note"]


def test_the_direction_flips_signs_and_other_outputs_are_explained_again(tmp_path):
    minus = _bow_result(Direction(((0, -1.0),), "minus the output"))
    for name in ("occlusion", "exact-shapley"):
        r = minus.row(name)
        assert r.sign_agreement == pytest.approx(2 / 6)
        assert r.spearman == pytest.approx(-0.9)
        assert r.rated_topk == pytest.approx(5 / 6)  # |values| do not change
    # two outputs (z, -z): column 0 minus column 1 is 2z, the same signs and ranks as the first result
    both = _bow_result(Direction(((0, 1.0), (1, -1.0)), "z - (-z)"), two=True)
    assert both.row("occlusion").sign_agreement == pytest.approx(4 / 6)
    assert both.row("occlusion").spearman == pytest.approx(0.9)
    # the result round-trips through its JSON, plausibility and all
    paths = write_outputs(both, tmp_path)
    back = load_result(paths["json"])
    assert back.row("exact-shapley").sign_agreement == pytest.approx(4 / 6)
    assert to_markdown(back) == to_markdown(both)


def test_evaluate_without_words_needs_a_vocabulary():
    net = BagOfWords()
    with pytest.raises(ValueError, match=r"bare nn\.Module needs words="):
        evaluate({"occlusion": make_method("occlusion", net, output="raw")}, IDS, plausibility=Plausibility(LEXICON))
    with pytest.raises(ValueError, match="got 1 rows for 2 reviews"):
        evaluate(
            {"occlusion": make_method("occlusion", net, output="raw")},
            IDS,
            plausibility=Plausibility(LEXICON),
            words=WORDS[:1],
        )


def test_words_are_grouped_as_the_global_word_view_groups_them():
    model = seqshap.load()
    groups = word_groups(model, ["A WONDERFUL film, zzqxv!"])[0]
    assert [w for w, _ in groups] == ["a", "wonderful", "film", None]  # lowercased; the unknown word has no text
    ids = model.encode(["A WONDERFUL film, zzqxv!"])
    by_token = token_word_groups([model.tokens(r) for r in ids.tolist()], ids.numpy(), model.vocab.layout)
    assert by_token == [groups]  # the native tokenizer: one word, one token
    assert count_outputs(model) == 1
    with pytest.raises(ValueError, match="plausibility is off"):
        make_plausibility(model, False, LEXICON)


# ---- the importance table with ratings -------------------------------------------------------------
def test_importance_table_carries_ratings_and_marks_disagreements(tmp_path):
    from seqshap.viz.importance import importance_plot

    rows = [
        WordStat("great", 0.3, 0.3, 9, 9, 2.7),
        WordStat("dull", -0.2, 0.2, 7, 7, -1.4),  # people: +1.7 -> disagree
        WordStat("the", 0.01, 0.1, 50, 40, 0.5),
        WordStat("awful", -0.4, 0.4, 6, 6, -2.4),
    ]
    table = ImportanceTable(rows, 40, 5).with_ratings(LEXICON, 1, "planted")
    assert [table.rating(r.word) for r in rows] == [3.1, 1.7, None, -3.0]
    assert [table.disagrees(r) for r in rows] == [False, True, False, False]
    assert [r.word for r in table.disagreements()] == ["dull"]
    flipped = table.with_ratings(LEXICON, -1)  # the table of the negative end: every sign the other way
    assert [flipped.disagrees(r) for r in rows] == [True, False, False, True]
    assert not any(table.with_ratings(LEXICON, None).disagrees(r) for r in rows)
    lines = table.to_csv_text().splitlines()
    assert lines[0] == "word,mean,mean_abs,count,n_reviews,sum,rating,disagrees"
    assert lines[2].endswith(",1.7,1")
    assert lines[3].endswith(",,0")
    d = table.to_dict()
    assert d["disagree"] == ["dull"]
    assert d["ratings"] == {"source": "planted", "sign": 1}
    assert d["words"][1]["rating"] == 1.7
    assert d["words"][1]["disagrees"] is True
    assert "rating" not in ImportanceTable(rows, 40, 5).to_dict()["words"][0]  # no ratings: the old form
    svg = importance_plot(table, tmp_path / "imp.svg").read_text()
    assert "dull [+1.7]" in svg
    assert "disagree in sign" in svg


# ---- end to end, through the command line -----------------------------------------------------------
def _run(*args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(seqshap.__file__).resolve().parents[1])}
    cmd = [sys.executable, "-m", "seqshap.cli", *args]
    return subprocess.run(cmd, capture_output=True, text=True, timeout=300, env=env)


@pytest.mark.slow
def test_cli_faithfulness_plausibility_on_the_tiny_model(tiny_model, tmp_path):
    pytest.importorskip("vaderSentiment", reason="the plausibility extra: pip install 'seqshap[plausibility]'")
    out = tmp_path / "faith"
    common = ["--model", str(tiny_model.path), "--n", "8", "--short", "0", "--planted", "0", "--background", "5"]
    proc = _run(
        "faithfulness",
        *common,
        "--methods",
        "deepshap,gradxinput,random",
        "--plausibility",
        "--out",
        str(out),
        "--quiet",
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    rows = list(csv.DictReader((out / "faithfulness.csv").open()))
    assert [r["method"] for r in rows] == ["deepshap", "gradxinput", "random"]
    for r in rows:
        assert 0 <= float(r["sign_agreement"]) <= 1
        assert int(r["n_rated"]) > 0
        assert 0 <= float(r["rated_topk"]) <= 1
    md = (out / "faithfulness.md").read_text()
    assert "toward P(positive)" in md
    assert "Hutto and E. Gilbert (2014), VADER: A Parsimonious Rule-based Model" in md
    assert "**sign agreement**" in md
    assert "**Spearman ρ**" in md
    assert "**rated top-5**" in md
    assert "| deepshap |" in proc.stdout
    assert "Plausibility" in proc.stdout
    # a planted lexicon from a file
    (tmp_path / "lex.json").write_text(json.dumps({"the": 2.0, "a": -2.0}))
    out2 = tmp_path / "faith2"
    proc = _run(
        "faithfulness", *common, "--methods", "random", "--plausibility", "--lexicon", str(tmp_path / "lex.json"),
        "--out", str(out2), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert f"the lexicon in {tmp_path / 'lex.json'}; 2 rated words" in (out2 / "faithfulness.md").read_text()


@pytest.mark.slow
def test_cli_refuses_plausibility_for_classes_that_are_not_sentiment(tiny_model, tmp_path):
    spam = tmp_path / "spam-model"
    shutil.copytree(tiny_model.path, spam)
    config = json.loads((spam / "config.json").read_text())
    (spam / "config.json").write_text(json.dumps({**config, "classes": ["ham", "spam"]}))
    for args in (
        ["faithfulness", "--methods", "random", "--plausibility", "--out", str(tmp_path / "f")],
        ["importance", "--n", "3", "--ratings", "--out", str(tmp_path / "i")],
    ):
        proc = _run(args[0], "--model", str(spam), *args[1:], "--quiet")
        assert proc.returncode == 2, proc.stderr
        err = proc.stderr.strip().splitlines()
        assert len(err) == 1
        assert "plausibility does not apply to" in err[0]
        assert "classes (ham, spam)" in err[0]
        assert not (tmp_path / args[-1]).exists()  # refused before any work
    proc = _run("faithfulness", "--model", str(spam), "--lexicon", "x.json", "--out", str(tmp_path / "f"))
    assert proc.returncode == 2
    assert "add --plausibility" in proc.stderr


@pytest.mark.slow
def test_cli_importance_ratings_on_the_tiny_model(tiny_model, tmp_path):
    (tmp_path / "lex.json").write_text(json.dumps(dict.fromkeys(("the", "a", "and", "of", "to", "is"), 2.0)))
    out = tmp_path / "imp"
    proc = _run(
        "importance", "--model", str(tiny_model.path), "--n", "20", "--min-count", "3", "--background", "5",
        "--ratings", "--lexicon", str(tmp_path / "lex.json"), "--out", str(out), "--quiet",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "human" in proc.stdout
    assert "disagree in sign" in proc.stdout
    header = (out / "word_importance.csv").read_text().splitlines()[0]
    assert header.endswith(",rating,disagrees")
    table = json.loads((out / "word_importance.json").read_text())
    rated = {w["word"]: w for w in table["words"] if w["rating"] is not None}
    assert set(rated) <= {"the", "a", "and", "of", "to", "is"}
    assert rated
    assert all(w["disagrees"] == (w["mean"] < 0) for w in rated.values())  # every rating is +2
    assert (out / "word_importance.png").stat().st_size > 5000


# ---- many classes: star ratings explain P(10) - P(1); other classes are refused -------------------------
class Stars(nn.Module):
    """Eight star-rating classes: logits ``z * a_c`` with ``a`` from -1 (1 star) to +1 (10 stars) and
    ``z`` the sum of word scores (+2 for "great", -2 for "awful"), so P(10) - P(1) rises with ``z``."""

    def __init__(self, vocab):
        super().__init__()
        self.embedding = nn.Embedding(vocab.num_words, 1)
        with torch.no_grad():
            self.embedding.weight.zero_()
            self.embedding.weight[vocab.word_to_id["great"]] = 2.0
            self.embedding.weight[vocab.word_to_id["awful"]] = -2.0
        self.fc = nn.Linear(1, 8, bias=False)
        with torch.no_grad():
            self.fc.weight.copy_(torch.linspace(-1, 1, 8).view(8, 1))
        self.out = nn.Softmax(dim=-1)

    def forward(self, x):
        e = x if x.is_floating_point() else self.embedding(x)
        return self.out(self.fc(e.sum(1)))


def _stars_model(classes, task):
    from seqshap.store import SeqshapModel

    vocab = seqshap.load().vocab
    config = {
        "arch": "stars",
        "maxlen": 8,
        "name": "stars",
        "classes": list(classes),
        **({"task": task} if task else {}),
    }
    return SeqshapModel(Stars(vocab), vocab, config)


def test_star_ratings_are_scored_toward_the_positive_end_and_other_classes_refused():
    from seqshap.faithfulness.evaluate import run_on_imdb

    texts = ["a great film", "an awful film", "great great acting", "awful and great", "the awful plot"]
    model = _stars_model(RATING_CLASSES, "imdb-rating")
    assert count_outputs(model) == 8
    lexicon = {"great": 3.1, "awful": -3.0, "film": 2.0}  # planted: people call "film" positive, the model ignores it
    res = run_on_imdb(model, texts, [], ["occlusion"], n=5, n_short=0, n_planted=0, plausibility=True, lexicon=lexicon)
    row = res.row("occlusion")
    assert res.meta["plausibility"]["direction"] == "P(10) - P(1)"
    # strong occurrences: great x4 and awful x3 agree; "film" x2 gets exactly 0 (no sign): 7 of 9
    assert (row.sign_agreement, row.n_rated) == (pytest.approx(7 / 9), 9)
    topics = _stars_model(("sports", "politics", "tech", "a", "b", "c", "d", "e"), None)
    with pytest.raises(NotApplicableError, match="plausibility does not apply to stars"):
        run_on_imdb(topics, texts, [], ["occlusion"], n=5, n_short=0, n_planted=0, plausibility=True, lexicon=lexicon)
