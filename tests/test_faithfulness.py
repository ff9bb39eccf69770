"""Faithfulness metrics and attribution methods, checked where the right answer is known by hand.

The hand-checkable model is a bag of words: every word id has a fixed score ``s``, the model
outputs ``sigmoid(sum_t s(x_t))`` (or the raw sum). Its exact word ranking is the score order,
its Shapley values are the scores (raw) and every removal's effect can be computed on paper.
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import seqshap
from seqshap.attribution import (
    METHODS,
    Attribution,
    DeepExplainer,
    DeepLift,
    ExactShapley,
    IntegratedGradients,
    RandomBaseline,
    SamplingShapley,
    TooManyPlayersError,
    make_method,
    parse_methods,
)
from seqshap.cli import main
from seqshap.data.layout import NATIVE, TokenLayout
from seqshap.faithfulness import evaluate
from seqshap.faithfulness.evaluate import empty_row_output, layout_of, whole_texts
from seqshap.faithfulness.metrics import (
    agreement,
    in_top,
    keep_words,
    kendall_tau,
    n_top,
    pad_in_place,
    pearson,
    plant_word,
    removal_scores,
    remove_words,
    top_overlap,
)
from seqshap.faithfulness.report import load_result, not_best_sentence, to_markdown, write_outputs
from seqshap.train import TrainConfig, train

# id:      0 pad, 1 start, 2 oov, 3..8 words, 9 the "planted" word
SCORES = [0.0, 0.0, 0.0, 3.0, 2.0, 1.0, -1.0, -2.0, 0.5, 10.0]


def sig(z: float) -> float:
    return 1 / (1 + math.exp(-z))


class BagOfWords(nn.Module):
    """``sigmoid(sum_t score[x_t])`` (or the raw sum): ids ``[n, T]`` or embeddings ``[n, T, 1]``."""

    def __init__(self, squash: bool = True):
        super().__init__()
        self.embedding = nn.Embedding(len(SCORES), 1)
        self.fc = nn.Linear(1, 1)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.tensor(SCORES).view(-1, 1))
            self.fc.weight.fill_(1.0)
            self.fc.bias.zero_()
        self.out = nn.Sigmoid() if squash else nn.Identity()

    def forward(self, x):
        e = x if x.is_floating_point() else self.embedding(x)
        return self.out(self.fc(e.sum(1)))


class LastWord(nn.Module):
    """Looks only at the last position: ``sigmoid(score[x_T])``. Position matters, order matters."""

    def __init__(self):
        super().__init__()
        self.embedding = nn.Embedding(len(SCORES), 1)
        with torch.no_grad():
            self.embedding.weight.copy_(torch.tensor(SCORES).view(-1, 1))

    def forward(self, x):
        e = x if x.is_floating_point() else self.embedding(x)
        return torch.sigmoid(e[:, -1])


def bow_predict(ids) -> np.ndarray:
    return np.array([sig(sum(SCORES[int(t)] for t in row)) for row in np.asarray(ids)])


# ---- removal metrics -------------------------------------------------------------------------
def test_removal_helpers_by_hand():
    row = np.array([0, 0, 1, 3, 4, 5])
    assert pad_in_place(row, np.array([3, 5])).tolist() == [0, 0, 1, 0, 4, 0]
    assert remove_words(row, np.array([3, 5])).tolist() == [0, 0, 0, 0, 1, 4]  # shift right, pad front
    assert keep_words(row, np.array([4])).tolist() == [0, 0, 0, 0, 1, 4]  # start token kept
    assert [n_top(80, k) for k in (1, 5, 10, 20, 50)] == [1, 4, 8, 16, 40]
    assert [n_top(3, k) for k in (1, 34, 100)] == [1, 2, 3]
    assert n_top(0, 50) == 0


def test_deletion_comprehensiveness_sufficiency_on_bag_of_words_by_hand():
    ids = np.array([[1, 3, 4, 5, 6, 7]])  # z = 3+2+1-1-2 = 3, predicted positive
    oracle = np.array([SCORES[i] for i in ids[0]])[None]
    s3 = sig(3)
    got = removal_scores(bow_predict, ids, oracle, bins=(20, 40, 100))
    # top 1 word: "3" (score 3) -> z=0; top 2: "3","4" -> z=-2; all words -> z=0
    expect_del = [s3 - sig(0), s3 - sig(-2), s3 - sig(0)]
    np.testing.assert_allclose(got["deletion"][0], expect_del, atol=1e-12)
    np.testing.assert_allclose(got["comprehensiveness"][0], expect_del, atol=1e-12)  # order-free model
    np.testing.assert_allclose(got["sufficiency"][0], [0.0, s3 - sig(5), 0.0], atol=1e-12)
    # The reversed ranking removes the most *negative* word first: the class gets more likely.
    rev = removal_scores(bow_predict, ids, -oracle, bins=(20, 40, 100))
    np.testing.assert_allclose(rev["deletion"][0, :2], [s3 - sig(5), s3 - sig(6)], atol=1e-12)
    assert got["deletion"].mean() > rev["deletion"].mean()
    assert got["sufficiency"].mean() < rev["sufficiency"].mean()


def test_negative_prediction_ranks_by_support_for_class_zero():
    ids = np.array([[1, 7, 6, 5]])  # z = -2-1+1 = -2: predicted negative
    values = np.array([SCORES[i] for i in ids[0]])[None]
    got = removal_scores(bow_predict, ids, values, bins=(34,))
    # ceil(34% of 3) = 2 words: "7" and "6" (most negative) -> z = 1; p(class 0) = 1 - sig(1)
    np.testing.assert_allclose(got["deletion"][0], [(1 - sig(-2)) - (1 - sig(1))], atol=1e-12)


def test_comprehensiveness_removes_words_where_deletion_pads_in_place():
    ids = np.array([[1, 4, 3]])  # LastWord sees "3": p = sig(3)
    values = np.array([[0.0, 0.0, 1.0]])  # rank the last word first
    net = LastWord()
    predict = ExactShapley(net, output="raw").predict
    got = removal_scores(predict, ids, values, bins=(50,))
    # in place: last position becomes padding -> sig(0); removed: "4" slides to the end -> sig(2)
    np.testing.assert_allclose(got["deletion"][0], [sig(3) - sig(0)], atol=1e-7)
    np.testing.assert_allclose(got["comprehensiveness"][0], [sig(3) - sig(2)], atol=1e-7)
    np.testing.assert_allclose(got["sufficiency"][0], [0.0], atol=1e-7)


# ---- methods on the hand model -------------------------------------------------------------------
def _bow_batch() -> torch.Tensor:
    return torch.tensor([[0, 1, 3, 6, 4, 8, 7], [1, 5, 7, 3, 6, 4, 8]])


@pytest.mark.parametrize("name", ["deeplift", "gradxinput", "ig", "occlusion", "exact-shapley", "sampling-shapley"])
def test_every_method_recovers_the_bag_of_words_ranking(name):
    ids = _bow_batch()
    method = make_method(name, BagOfWords())
    values = method.attribute(ids)
    for row, v in zip(ids.numpy(), values, strict=True):
        vis = row > 1
        want = np.argsort([-SCORES[t] for t in row[vis]], kind="stable")
        assert np.argsort(-v[vis], kind="stable").tolist() == want.tolist(), name
        assert np.all(v[~vis] == 0)  # pad and start score 0: nothing to attribute there


def test_ig_matches_the_closed_form_and_reports_its_delta():
    ids = _bow_batch()
    ig = IntegratedGradients(BagOfWords(), steps=32)
    ex = ig.explain(ids)
    for row, e in zip(ids.numpy(), ex, strict=True):
        s = np.array([SCORES[t] if t > 1 else 0.0 for t in row])
        z = s.sum()
        # path from "all words padded" (z=0) to x: phi_t = s_t (sig(z) - sig(0)) / z
        np.testing.assert_allclose(e.values, s * (sig(z) - sig(0)) / z, atol=1e-6)
        assert e.method == "ig"
        assert e.completeness_error < 1e-6
        assert e.base_value == pytest.approx(sig(0), abs=1e-6)


def test_exact_shapley_matches_permutation_definition_and_is_efficient():
    ids = torch.tensor([[1, 3, 7, 5, 5]])  # two identical words: symmetric
    net = BagOfWords()
    ex = ExactShapley(net).explain(ids)[0]
    words = [1, 2, 3, 4]

    def v(present):
        row = [int(t) if (i in present or i == 0) else 0 for i, t in enumerate(ids[0])]
        return sig(sum(SCORES[t] for t in row))

    brute = np.zeros(5)
    for perm in itertools.permutations(words):
        for k, i in enumerate(perm):
            brute[i] += v(set(perm[: k + 1])) - v(set(perm[:k]))
    brute /= math.factorial(len(words))
    np.testing.assert_allclose(ex.values, brute, atol=1e-7)
    assert ex.values[3] == pytest.approx(ex.values[4], abs=1e-9)
    assert ex.completeness_error < 1e-7
    assert ex.base_value == pytest.approx(sig(0), abs=1e-7)


def test_exact_shapley_equals_deepshap_on_a_linear_model():
    net = BagOfWords(squash=False)
    x = torch.tensor([[3, 6, 4, 8, 7], [5, 5, 3, 7, 4]])  # every position a word
    background = torch.tensor([[4, 4, 6, 3, 8], [7, 5, 0, 0, 3], [8, 6, 5, 4, 7]])
    deep = DeepExplainer(net, background, output="raw").attribute(x)
    exact = ExactShapley(net, reference=background, output="raw").attribute(x)
    np.testing.assert_allclose(exact, deep, atol=1e-6)
    # and by hand: phi_t = s(x_t) - mean_j s(r_jt)
    s = np.array(SCORES)
    np.testing.assert_allclose(exact, s[x.numpy()] - s[background.numpy()].mean(0), atol=1e-6)
    # single reference: DeepLIFT against all padding == exact Shapley with padding == the scores
    np.testing.assert_allclose(DeepLift(net, output="raw").attribute(x), s[x.numpy()], atol=1e-6)


@pytest.mark.parametrize("name", ["deeplift", "gradxinput", "ig", "occlusion", "exact-shapley", "sampling-shapley"])
def test_every_method_explains_the_logit_through_the_one_output_space(name):
    """In logit space the bag of words is linear: every method's values are the word scores."""
    ids = _bow_batch()
    values = make_method(name, BagOfWords(), output="logit").attribute(ids)
    s = np.array(SCORES)[ids.numpy()]
    s[ids.numpy() <= 1] = 0.0
    np.testing.assert_allclose(values, s, atol=1e-5)
    with pytest.raises(ValueError, match="output='logit' needs a model"):
        make_method(name, BagOfWords(squash=False), output="logit").attribute(ids)


def test_deeplift_on_a_module_without_maxlen_takes_the_first_length():
    net = BagOfWords(squash=False)
    dl = DeepLift(net, output="raw")
    x = torch.tensor([[3, 6, 4, 8, 7]])
    np.testing.assert_allclose(dl.attribute(x), np.array(SCORES)[x.numpy()], atol=1e-6)
    assert dl.background.shape == (1, 5)
    assert dl.expected_value[0] == pytest.approx(0.0)
    with pytest.raises(ValueError, match=r"has shape \(1, 4\) but the background rows are \(5,\)"):
        dl.attribute(x[:, :4])


def test_exact_shapley_refuses_long_inputs_in_one_line():
    with pytest.raises(TooManyPlayersError, match="has 15 words \\(limit 14\\); use sampling-shapley"):
        ExactShapley(BagOfWords()).attribute(torch.full((1, 16), 3).index_fill_(1, torch.tensor([0]), 1))


# ---- methods on a real (tiny) LSTM ------------------------------------------------------------------
@pytest.fixture(scope="module")
def short_ids(tiny_model, imdb):
    from seqshap.faithfulness import short_texts

    return short_texts(tiny_model, imdb["test"].texts[:3], 6)


def test_ig_convergence_delta_is_small_on_the_lstm(tiny_model, imdb):
    ig = IntegratedGradients(tiny_model, steps=32)
    ex = ig.explain(imdb["test"].texts[:4])
    assert max(e.completeness_error for e in ex) < 1e-3
    np.testing.assert_allclose([e.completeness_error for e in ex], ig.last_deltas_)
    # a one-point rule is a much worse quadrature on the same path
    ig1 = IntegratedGradients(tiny_model, steps=1)
    ig1.attribute(tiny_model.encode(imdb["test"].texts[:4]))
    assert ig1.last_deltas_.mean() > ig.last_deltas_.mean()


@pytest.mark.slow
def test_sampling_shapley_converges_to_exact_and_adds_up(tiny_model, short_ids):
    exact = ExactShapley(tiny_model).explain(short_ids)
    few = SamplingShapley(tiny_model, n_permutations=4, seed=0).explain(short_ids)
    many = SamplingShapley(tiny_model, n_permutations=400, seed=0).explain(short_ids)
    err_many = max(np.abs(m.values - e.values).max() for m, e in zip(many, exact, strict=True))
    err_few = max(np.abs(f.values - e.values).max() for f, e in zip(few, exact, strict=True))
    assert err_many < 0.01
    assert err_many < err_few
    assert max(m.completeness_error for m in few + many + exact) < 1e-6
    assert all(m.base_value == pytest.approx(e.base_value) for m, e in zip(many, exact, strict=True))


# What an Explanation says about its input and model, whatever the method: one builder fills these.
SHARED_FIELDS = (
    "tokens",
    "ids",
    "text",
    "label",
    "spans",
    "word_ids",
    "classes",
    "output_name",
    "predicted",
    "output_space",
    "model_name",
    "output_index",
)


def _same_fields(ex, ref, name):
    for e, r in zip(ex, ref, strict=True):
        for f in SHARED_FIELDS:
            assert getattr(e, f) == getattr(r, f), (name, f)
        assert e.output_value == pytest.approx(r.output_value, abs=1e-9), name


def test_every_method_gives_the_same_explanation_object(tiny_model, imdb):
    texts = imdb["test"].texts[:2]
    bg = imdb["train"].texts[:5]
    ref = DeepExplainer(tiny_model, bg).explain(texts, labels=[1, 0])
    assert ref[0].spans is not None
    assert ref[0].word_ids is not None
    assert ref[0].classes == tiny_model.classes
    assert ref[0].output_name == tiny_model.classes[-1]
    for name in ["deepshap", "deeplift", "gradxinput", "ig", "occlusion", "sampling-shapley", "random"]:
        method = make_method(name, tiny_model, background=bg, n_permutations=4)
        assert type(method) is METHODS[name]
        assert isinstance(method, Attribution)
        ex = method.explain(texts, labels=[1, 0])
        assert [e.method for e in ex] == [name, name]
        assert ex[0].text == texts[0]
        assert ex[1].label == 0
        assert ex[0].tokens[-1] != "<pad>"
        assert ex[0].values.shape == (tiny_model.maxlen,)
        assert ex[0].output_value == pytest.approx(float(tiny_model.predict(texts[:1])[0]), abs=1e-6)
        if name in ("deepshap", "deeplift", "ig", "sampling-shapley"):
            assert ex[0].completeness_error < 1e-3, name
        else:
            assert math.isnan(ex[0].completeness_error), name
        _same_fields(ex, ref, name)
    # deepshap here is DeepExplainer's numbers, unchanged
    ours = make_method("deepshap", tiny_model, background=bg).attribute(tiny_model.encode(texts))
    ref_values = DeepExplainer(tiny_model, bg).shap_values(tiny_model.encode(texts))[:, :, 0]
    np.testing.assert_allclose(ours, ref_values, atol=1e-9)


def test_every_registered_method_explains_short_texts_alike(tiny_model, imdb):
    """All eight, exact Shapley included (short texts): the same interface, the same fields."""
    texts = ["the acting was great but the plot was awful", "a dull, lifeless film"]
    bg = imdb["train"].texts[:5]
    ref = DeepExplainer(tiny_model, bg).explain(texts)
    assert ref[0].spans[-1] == (len(texts[0]) - 5, len(texts[0]))  # "awful"
    assert set(METHODS) == {
        "deepshap",
        "deeplift",
        "gradxinput",
        "ig",
        "occlusion",
        "exact-shapley",
        "sampling-shapley",
        "random",
    }
    for name, cls in METHODS.items():
        assert issubclass(cls, Attribution), name
        assert cls._values is not Attribution._values, name
        method = make_method(name, tiny_model, background=bg, n_permutations=4)
        assert type(method) is cls
        ex = method.explain(texts)
        _same_fields(ex, ref, name)
        np.testing.assert_allclose(np.stack([e.values for e in ex]), method.attribute(texts), atol=1e-9)
        if cls.additive:
            assert max(e.completeness_error for e in ex) < 1e-3, name
    # ids in, no text: the same builder, without spans
    ids = tiny_model.encode(texts)
    e = make_method("occlusion", tiny_model).explain(ids)[0]
    assert e.text is None
    assert e.spans is None
    assert e.tokens == ref[0].tokens
    assert e.output_name == "positive"
    with pytest.raises(ValueError, match=r"inputs: unknown word ids \[5000\]"):
        make_method("gradxinput", tiny_model).attribute(torch.full((1, 40), 5000))
    with pytest.raises(ValueError, match="labels: got 1 for 2 inputs"):
        make_method("random", tiny_model).explain(texts, labels=[1])


def test_random_baseline_is_random_and_seeded(tiny_model, imdb):
    ids = tiny_model.encode(imdb["test"].texts[:20])
    a, b = RandomBaseline(tiny_model, seed=0).attribute(ids), RandomBaseline(tiny_model, seed=0).attribute(ids)
    c = RandomBaseline(tiny_model, seed=1).attribute(ids)
    np.testing.assert_array_equal(a, b)
    vis = ids.numpy() > 1
    assert np.all(a[~vis] == 0)
    assert not np.allclose(a[vis], c[vis])
    assert abs(np.corrcoef(a[vis], c[vis])[0, 1]) < 0.2  # unrelated draws, not a shifted copy
    assert abs(a[vis].mean()) < 0.15
    assert 0.85 < a[vis].std() < 1.15
    # a review gets the same values whatever batch it is in
    np.testing.assert_array_equal(RandomBaseline(tiny_model, seed=0).attribute(ids[5:7]), a[5:7])


# ---- agreement and planted words -----------------------------------------------------------------------
def test_agreement_metrics_by_hand():
    assert kendall_tau([1, 2, 3], [1, 3, 2]) == pytest.approx(1 / 3)  # 2 concordant, 1 discordant pair
    assert kendall_tau([1, 2, 3], [3, 2, 1]) == pytest.approx(-1)
    assert kendall_tau([1, 1, 2], [1, 2, 3]) == pytest.approx(2 / math.sqrt(2 * 3))  # tau-b with a tie
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1)
    assert pearson([1, 2, 3], [-1, -2, -3]) == pytest.approx(-1)
    assert math.isnan(pearson([1, 1, 1], [1, 2, 3]))
    assert math.isnan(kendall_tau([2, 2], [1, 3]))
    assert top_overlap(np.array([5, -4, 3, 0.1]), np.array([-9, 0, 8, 7]), k=3) == pytest.approx(2 / 3)
    ids = np.array([[0, 1, 3, 4, 5, 6]])
    ref = np.array([[9.0, 9.0, 1.0, 2.0, 3.0, 4.0]])  # pad/start values are ignored
    got = agreement(np.array([[0, 0, 1.0, 2.0, 4.0, 3.0]]), ref, ids)
    assert got["pearson"][0] == pytest.approx(0.8)
    assert got["kendall"][0] == pytest.approx(4 / 6)
    assert got["top3"][0] == pytest.approx(1.0)


def test_plant_word_positions_and_truncation():
    rng = np.random.default_rng(0)
    row = np.array([0, 0, 1, 4, 5])
    for _ in range(20):
        out, at = plant_word(row, 9, rng)
        assert out[at] == 9
        assert sorted(out.tolist()) == [0, 1, 4, 5, 9]
        assert at > out.tolist().index(1)
    full = np.array([3, 4, 5, 6])
    for _ in range(20):
        out, at = plant_word(full, 9, rng)
        assert out[at] == 9
        assert len(out) == 4
        assert 3 not in out.tolist()
    assert in_top(np.array([0, 0, 5.0, -6, 1]), np.array([0, 1, 3, 4, 5]), 3, k=1)


def test_planted_strong_word_is_found_by_every_method_but_random():
    net = BagOfWords()
    rng = np.random.default_rng(1)
    hosts = torch.from_numpy(np.concatenate([np.ones((40, 1), int), rng.choice([5, 6, 8], size=(40, 11))], 1))
    methods = {n: make_method(n, net) for n in ["gradxinput", "ig", "occlusion", "sampling-shapley", "random"]}
    res = evaluate(methods, hosts[:4], planted_hosts=hosts, planted_words=(9,), seed=0)
    for name in ["gradxinput", "ig", "occlusion", "sampling-shapley"]:
        assert res.row(name).planted_top5 == 1.0
        assert res.row(name).n_planted == 40
    # chance for random: 5 of 12 words ~ 0.42
    assert 0.1 < res.row("random").planted_top5 < 0.8
    assert res.meta["planted_mean_abs_shift"] > 0.3


# ---- the whole evaluation, writers, CLI ----------------------------------------------------------------
def test_evaluate_scores_the_oracle_above_random_and_writes_files(tmp_path):
    net = BagOfWords()
    rng = np.random.default_rng(0)
    ids = torch.from_numpy(
        np.concatenate([np.zeros((30, 2), int), np.ones((30, 1), int), rng.integers(3, 9, size=(30, 9))], 1)
    )
    methods = {n: make_method(n, net) for n in ["exact-shapley", "occlusion", "random"]}
    res = evaluate(methods, ids, short_ids=ids[:10], reference=methods["exact-shapley"], bins=(10, 50))
    ex, occ, rnd = (res.row(n) for n in ("exact-shapley", "occlusion", "random"))
    assert ex.aopc > rnd.aopc + 0.1
    assert ex.comp > rnd.comp + 0.1
    assert ex.suff < rnd.suff - 0.1
    assert ex.pearson == pytest.approx(1.0)
    assert ex.kendall == pytest.approx(1.0)
    assert ex.top3 == 1.0
    assert occ.kendall > 0.9
    assert abs(rnd.kendall) < 0.4
    assert ex.completeness_error < 1e-9
    assert math.isnan(occ.completeness_error)
    assert all(r.seconds_per_review > 0 for r in res.rows)
    md = to_markdown(res)
    assert "| exact-shapley |" in md
    assert "1.000 (ref)" in md
    paths = write_outputs(res, tmp_path)
    assert paths["png"].read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    back = load_result(paths["json"])
    assert back.row("occlusion").deletion == pytest.approx(occ.deletion)
    assert to_markdown(back) == md


def test_not_best_sentence_names_the_winner():
    from seqshap.faithfulness import FaithfulnessResult, MethodScores

    rows = [
        MethodScores("deepshap", 5, (10,), [0.2], [0.2], [0.1], 0.2, 0.2, 0.1, seconds_per_review=1.0),
        MethodScores("occlusion", 5, (10,), [0.3], [0.1], [0.1], 0.3, 0.1, 0.1, seconds_per_review=0.1),
    ]
    s = not_best_sentence(FaithfulnessResult("m", 5, (10,), rows))
    assert "not the best on deletion AOPC (best: occlusion 0.300 vs deepshap 0.200)" in s
    assert "s / review (best: occlusion" in s
    assert "It is the best on comprehensiveness (runner-up occlusion" in s
    # with per-review values the difference comes with its paired standard error
    per = {"deepshap": {"aopc": [0.1, 0.2, 0.3]}, "occlusion": {"aopc": [0.2, 0.4, 0.3]}}
    s = not_best_sentence(FaithfulnessResult("m", 3, (10,), rows, per_review=per))
    se = np.std([0.1, 0.2, 0.0], ddof=1) / math.sqrt(3)
    assert f"difference +0.100 ± {se:.3f} SE over 3 paired" in s


def test_parse_methods_errors():
    assert parse_methods("deepshap, ig") == ["deepshap", "ig"]
    with pytest.raises(ValueError, match="unknown method\\(s\\) shap"):
        parse_methods("deepshap,shap")
    with pytest.raises(ValueError, match="listed twice"):
        parse_methods("ig,ig")


def test_cli_end_to_end_on_the_tiny_model(tiny_model, tmp_path, capsys):
    out = tmp_path / "faith"
    rc = main(
        [
            "faithfulness",
            "--model",
            str(tiny_model.path),
            "--n",
            "6",
            "--methods",
            "deepshap,ig,gradxinput,occlusion,random",
            "--background",
            "5",
            "--short",
            "3",
            "--short-words",
            "5",
            "--planted",
            "4",
            "--out",
            str(out),
            "--quiet",
        ]
    )
    assert rc == 0
    rows = list(csv.DictReader((out / "faithfulness.csv").open()))
    assert [r["method"] for r in rows] == ["deepshap", "ig", "gradxinput", "occlusion", "random"]
    for r in rows:
        assert r["n"] == "6"
        assert r["n_short"] == "3"
        assert r["n_planted"] == "4"
        for col in (
            "deletion_aopc",
            "comprehensiveness",
            "sufficiency",
            "deletion@50",
            "kendall",
            "planted_top5",
            "seconds_per_review",
        ):
            assert math.isfinite(float(r[col])), (r["method"], col)
    md = (out / "faithfulness.md").read_text()
    assert md.startswith("### Faithfulness on")
    assert "| random |" in md
    assert (out / "faithfulness.png").stat().st_size > 10_000
    assert "| deepshap |" in capsys.readouterr().out
    # bad input: exit 2, one line
    rc = main(["faithfulness", "--model", str(tiny_model.path), "--methods", "deepshap,lime", "--out", str(out)])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2
    assert len(err) == 1
    assert "unknown method(s) lime" in err[0]


# ---- Hugging Face row layout ([CLS] words [SEP], padding at the end) -------------------------------------
HF = TokenLayout(
    pad_id=0, padding_side="right", special_ids=frozenset({2, 3}), empty_ids=(2, 3)
)  # [PAD] 0, [CLS] 2, [SEP] 3


def test_removal_helpers_with_padding_at_the_end_keep_cls_and_sep():
    row = np.array([2, 5, 6, 7, 3, 0, 0])
    assert HF.visible(row).tolist() == [False, True, True, True, False, False, False]
    assert pad_in_place(row, np.array([2]), HF).tolist() == [2, 5, 0, 7, 3, 0, 0]  # positions stay
    assert remove_words(row, np.array([1, 3]), HF).tolist() == [2, 6, 3, 0, 0, 0, 0]  # closes up, pads the end
    assert keep_words(row, np.array([3]), HF).tolist() == [2, 7, 3, 0, 0, 0, 0]  # [CLS] and [SEP] kept
    # the native defaults are unchanged
    assert remove_words(np.array([0, 1, 3, 4]), np.array([2])).tolist() == [0, 0, 1, 4]


def test_removal_scores_rank_only_words_with_padding_at_the_end():
    # BagOfWords scores: ids 4 (+2), 5 (+1), 7 (-2); the markers [CLS]=8 (+0.5) and [SEP]=1 (0) never count as words
    layout = TokenLayout(pad_id=0, padding_side="right", special_ids=frozenset({8, 1}))
    ids = np.array([[8, 4, 5, 7, 1, 0]])  # z = 0.5 + 2 + 1 - 2 = 1.5
    values = np.array([[100.0, 2.0, 1.0, -2.0, 100.0, 0.0]])  # huge marker values must be ignored
    got = removal_scores(bow_predict, ids, values, bins=(34,), layout=layout)  # top ceil(34% of 3) = 2 words
    s = sig(1.5)
    np.testing.assert_allclose(got["deletion"][0], [s - sig(-1.5)], atol=1e-12)  # "4", "5" padded
    np.testing.assert_allclose(got["sufficiency"][0], [s - sig(3.5)], atol=1e-12)  # keeps [CLS] 4 5 [SEP]


def test_plant_word_between_cls_and_sep_and_full_rows_lose_their_last_word():
    rng = np.random.default_rng(0)
    row = np.array([2, 5, 6, 3, 0, 0])
    seen = set()
    for _ in range(30):
        out, at = plant_word(row, 9, rng, HF)
        seen.add(at)
        assert out[at] == 9
        assert out[0] == 2
        assert out.tolist().index(3) == 4
        assert out[5] == 0
    assert seen == {1, 2, 3}
    full = np.array([2, 5, 6, 7, 3])
    for _ in range(30):
        out, at = plant_word(full, 9, rng, HF)
        assert out[at] == 9
        assert out[0] == 2
        assert out[-1] == 3
        assert 7 not in out.tolist()
        assert 1 <= at <= 3
    assert in_top(np.array([9.0, 0, 5.0, 0, 9.0]), np.array([2, 5, 6, 7, 3]), 2, k=1, layout=HF)


# ---- peers from other libraries through the benchmark (benchmarks/peers.py) ------------------------------
BENCH = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def peers_module():
    sys.path.insert(0, str(BENCH))
    try:
        import peers

        yield peers
    finally:
        sys.path.remove(str(BENCH))


@pytest.fixture(scope="module")
def tiny_transformer(imdb, tmp_path_factory):
    out = tmp_path_factory.mktemp("faith-peers") / "tiny-tf"
    cfg = TrainConfig(
        arch="transformer",
        epochs=1,
        maxlen=32,
        num_words=2000,
        seed=0,
        model={"embed_dim": 16, "heads": 2, "layers": 1, "ff_dim": 32},
    )
    return train(imdb["train"].head(600), out, cfg, test_split=imdb["test"].head(100), progress=False)


@pytest.fixture(scope="module")
def tiny_bert(imdb, tmp_path_factory, peers_module):
    import hf_build

    tok = hf_build.wordpiece(imdb["train"].texts[:500], 600, 32)
    torch.manual_seed(0)
    net = hf_build.classifier("bert", tok, 16, 1, 2, 32, positions=32)
    return seqshap.load(hf_build.save(net, tok, tmp_path_factory.mktemp("faith-peers") / "tiny-bert"))


def test_layout_of_native_and_hugging_face_models(tiny_transformer, tiny_bert):
    assert layout_of(tiny_transformer) == NATIVE
    lay = layout_of(tiny_bert)
    tok = tiny_bert.vocab.tokenizer
    assert lay.pad_id == tok.pad_token_id
    assert lay.padding_side == "right"
    assert lay.special_ids == {tok.cls_token_id, tok.sep_token_id}  # [UNK] and [MASK] would be words
    assert lay.unknown_id == tok.unk_token_id
    assert lay.empty_ids == (tok.cls_token_id, tok.sep_token_id)
    ids = tiny_bert.encode(["a fine film"]).numpy()[0]
    assert lay.visible(ids).sum() == len(tiny_bert.encodings(["a fine film"])[0].tokens) - 2 - (ids == lay.pad_id).sum()


@pytest.mark.parametrize("which", ["tiny_transformer", "tiny_bert"])
def test_peer_adapters_give_one_value_per_position_and_their_own_base(which, request, peers_module, imdb):
    model = request.getfixturevalue(which)
    texts = [" ".join(t.split()[:15]) for t in imdb["test"].texts[:3]]
    ids = model.encode(texts)
    layout = layout_of(model)
    made = peers_module.make_peers(peers_module.PEERS, model, imdb["train"].texts[:4], seed=0, ig_steps=8, max_evals=40)
    fx = made["captum-lig"].predict(ids)
    for name, peer in made.items():
        values, base = peer.attribute_with_base(ids)
        assert values.shape == tuple(ids.shape), name
        assert np.isfinite(values).all(), name
        assert np.isfinite(base).all(), name
        assert (values[ids.numpy() == layout.pad_id] == 0).all(), name  # padding gets nothing
        c = peer.completeness(ids)
        assert c["n"] == 3
        if name == "shap-partition":
            # Owen values add up exactly; the base is "every word padded", seqshap's Shapley game
            words_out = layout.blank_words(ids)
            np.testing.assert_allclose(base, peer.predict(words_out), atol=1e-9)
            np.testing.assert_allclose(values.sum(1), fx - base, atol=1e-6)
            if layout.padding_side == "left":  # the start token is no shap token ([CLS]/[SEP] are: kept, valued)
                assert (values[~layout.visible(ids.numpy())] == 0).all()
        if name == "captum-deepliftshap":
            bg = model.encode(imdb["train"].texts[:4])
            np.testing.assert_allclose(base, peer.predict(bg).mean(), atol=1e-12)
        if name == "captum-lig":
            assert c["median"] < 0.05  # 8 Gauss-Legendre points on a tiny model: close, not exact
            assert math.isnan(c["median_vs_seqshap"])


class NoOutputForPadding(nn.Module):
    """The bag of words, but NaN for a row of padding only (as the native Transformer was before it
    pooled over nothing to the zero vector)."""

    def __init__(self):
        super().__init__()
        self.bow = BagOfWords()
        self.embedding = self.bow.embedding

    def forward(self, x):
        out = self.bow(x)
        empty = (x == 0).all(1, keepdim=True) if not x.is_floating_point() else torch.zeros_like(out, dtype=torch.bool)
        return torch.where(empty, torch.full_like(out, float("nan")), out)


def test_benchmark_refuses_methods_only_where_a_row_of_padding_gives_no_number(
    tiny_transformer, tiny_bert, peers_module
):
    import faithfulness as bench
    from seqshap.store import SeqshapModel

    # the native Transformer pools over no token to the zero vector: its answer is its head's bias
    bias = float(torch.sigmoid(tiny_transformer.net.fc.bias.detach())[0])
    assert empty_row_output(tiny_transformer) == pytest.approx(bias, abs=1e-6)
    bench.check_empty_row(tiny_transformer, ["deepshap", "ig", "shap-partition"], whole_reviews=False)  # none refused
    # a model with no number for that row is still refused before any work, unless only whole texts are scored
    nan_model = SeqshapModel(NoOutputForPadding(), tiny_transformer.vocab, {"arch": "bow", "maxlen": 8, "name": "bow"})
    assert math.isnan(empty_row_output(nan_model))
    bench.check_empty_row(nan_model, ["deepshap", "deeplift"], whole_reviews=False)
    with pytest.raises(SystemExit, match=r"ig, shap-partition explain a review relative to it.*--whole-reviews"):
        bench.check_empty_row(nan_model, ["deepshap", "ig", "shap-partition"], whole_reviews=False)
    bench.check_empty_row(nan_model, ["deepshap", "ig", "shap-partition"], whole_reviews=True)
    bench.check_empty_row(tiny_bert, ["deeplift", "ig"], whole_reviews=False)  # [CLS]/[SEP] always stay
    kept = whole_texts(tiny_transformer, ["a good film", " ".join(["word"] * 31), " ".join(["word"] * 30)])
    assert kept == ["a good film", " ".join(["word"] * 30)]  # start + 31 words fill all 32 positions


@pytest.mark.slow
def test_benchmark_entry_point_runs_the_peers_beside_seqshap(tiny_transformer, tiny_bert, tmp_path):
    out = tmp_path / "faith"
    cmd = [sys.executable, str(BENCH / "faithfulness.py"), "--skip-default", "--other", str(tiny_transformer.path)]
    cmd += ["--other", str(tiny_bert.path), "--n", "3", "--methods", "deepshap,deeplift,occlusion,random"]
    cmd += ["--background", "4", "--short", "2", "--short-words", "4", "--planted", "2", "--max-evals", "40"]
    cmd += ["--ig-steps", "8", "--whole-reviews", "--out", str(out), "--quiet"]
    env = {**os.environ, "PYTHONPATH": str(Path(seqshap.__file__).resolve().parents[1])}
    proc = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    assert proc.returncode == 0, proc.stderr[-3000:]
    results = sorted(out.glob("*/faithfulness.json"))
    assert len(results) == 2
    for path in results:
        res = load_result(path)
        assert [r.method for r in res.rows] == [
            "deepshap",
            "deeplift",
            "occlusion",
            "random",
            "shap-partition",
            "captum-deepliftshap",
            "captum-lig",
        ]
        for r in res.rows:
            assert (r.n, r.n_short, r.n_planted) == (3, 2, 2), r.method
            for attr in ("aopc", "comp", "suff", "kendall", "planted_top5", "seconds_per_review"):
                assert math.isfinite(getattr(r, attr)), (path.parent.name, r.method, attr)
        table = res.meta["completeness"]
        assert set(table) == {"deepshap", "deeplift", "shap-partition", "captum-deepliftshap", "captum-lig"}
        assert table["deepshap"]["max"] < 1e-4  # exact
        assert table["deeplift"]["max"] < 1e-4
        empty = "[CLS] [SEP]" if res.meta["layout"]["padding_side"] == "right" else "the start token alone"
        assert table["deeplift"]["reference"] == f"f(the empty text: {empty})"
        assert table["shap-partition"]["max"] < 1e-6  # additive by construction
    md = (out / "BENCHMARKS-faithfulness.md").read_text()
    assert md.count("| captum-lig |") == 4  # two models: the faithfulness table and the completeness table
    assert "Peers (same run): shap-partition: shap 0.51.0 PartitionExplainer" in md
    assert "baseline the padding embedding at every position" in md
