"""seqshap.to_shap: explanations and word importance as shap.Explanation, drawn by the installed
shap's own text, waterfall and bar plots (matplotlib on Agg, HTML as a string)."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
import numpy as np
import pytest
import shap
from PIL import Image

import seqshap
from seqshap.attribution.explanation import Explanation
from seqshap.importance import WordImportance, word_importance

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def shipped_exps(imdb):
    """The shipped model's explanations of the first 4 test reviews against 20 training reviews."""
    model = seqshap.load()
    explainer = seqshap.DeepExplainer(model, imdb["train"].texts[:20])
    # review 2 is short: padding at the front, which carries attribution
    return explainer.explain(imdb["test"].texts[:4], labels=[int(x) for x in imdb["test"].labels[:4]])


def subword_exp() -> Explanation:
    """Hand-made: '<pad> <start> un ##real film' where 'un'+'##real' are one word."""
    text = "Unreal film!"
    return Explanation(
        tokens=["<pad>", "<start>", "un", "##real", "film"],
        ids=[0, 1, 7, 8, 9],
        values=[0.05, -0.01, 0.2, 0.1, -0.3],
        base_value=0.5,
        output_value=0.5 + 0.04,
        completeness_error=0.0,
        text=text,
        spans=[None, None, (0, 2), (2, 6), (7, 11)],
        word_ids=[None, None, 0, 0, 1],
        classes=("negative", "positive"),
        output_name="positive",
    )


def png_ok(path: Path) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size[0] > 300
        assert im.size[1] > 150


def tick_labels() -> list[str]:
    return [t.get_text() for ax in plt.gcf().axes for t in ax.get_yticklabels()]


def test_installed_shap_is_the_pinned_one():
    pins = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["shap"]
    assert "shap==0.51.0" in pins
    assert "shap==0.51.0" in (ROOT / "constraints.txt").read_text().split()
    assert shap.__version__ == "0.51.0"


def test_one_explanation_is_its_words_with_exact_values(shipped_exps):
    exp = shipped_exps[0]
    sv = seqshap.to_shap(exp)
    words = exp.word_list()
    assert isinstance(sv, shap.Explanation)
    assert sv.output_names == "positive"
    assert float(sv.base_values) == exp.base_value
    hidden = float(exp.values[~exp.visible].sum())
    offset = 1 if hidden != 0.0 else 0
    assert len(sv.values) == len(words) + offset
    np.testing.assert_array_equal(sv.values[offset:], [w.value for w in words])
    assert [d.rstrip(" ") for d in sv.data[offset:]] == [w.text for w in words]
    assert list(sv.feature_names[offset:]) == [w.token for w in words]
    # the words as written (case kept), one space apart
    assert "".join(sv.data[offset:]) == " ".join(w.text for w in words)
    # base + sum(values) is the model's output, to the explanation's own completeness error
    assert abs(sv.base_values + sv.values.sum() - exp.prediction) <= exp.completeness_error + 1e-12


def test_padding_and_start_are_one_feature_so_the_output_adds_up(shipped_exps):
    short = next(e for e in shipped_exps if float(e.values[~e.visible].sum()) != 0.0)
    sv = seqshap.to_shap(short)
    assert sv.feature_names[0] == "padding/start"
    assert sv.values[0] == float(short.values[~short.visible].sum())
    assert abs(sv.base_values + sv.values.sum() - short.prediction) <= short.completeness_error + 1e-12
    bare = seqshap.to_shap(short, padding=False)
    assert "padding/start" not in bare.feature_names
    assert len(bare.values) == len(sv.values) - 1


def test_words_read_as_several_positions_stay_summed():
    sv = seqshap.to_shap(subword_exp())
    assert list(sv.feature_names) == ["padding/start", "un##real", "film"]
    assert list(sv.data) == ["padding/start ", "Unreal ", "film"]
    np.testing.assert_allclose(sv.values, [0.04, 0.3, -0.3])
    assert float(sv.base_values + sv.values.sum()) == pytest.approx(0.54)


def test_many_explanations_are_ragged_rows_of_the_same_numbers(shipped_exps):
    sv = seqshap.to_shap(shipped_exps)
    assert sv.shape[0] == len(shipped_exps)
    assert sv.output_names == "positive"
    np.testing.assert_array_equal(sv.base_values, [e.base_value for e in shipped_exps])
    for i, e in enumerate(shipped_exps):
        one = seqshap.to_shap(e)
        np.testing.assert_array_equal(sv[i].values, one.values)
        assert list(sv[i].data) == list(one.data)
        assert list(sv[i].feature_names) == list(one.feature_names)
    # shap's own pooling by word (feature name) over the rows equals the mean over occurrences
    pooled = sv.abs.mean(0)
    j = list(pooled.feature_names).index("the")
    occurrences = [abs(w.value) for e in shipped_exps for w in e.word_list() if w.token == "the"]
    assert pooled.values[j] == pytest.approx(np.mean(occurrences))


def test_shap_text_plot_shows_the_words(shipped_exps):
    exp = shipped_exps[0]
    html = shap.plots.text(seqshap.to_shap(exp), display=False)
    top_word = max(exp.word_list(), key=lambda w: abs(w.value))
    assert f">{top_word.text} </div>" in html or f">{top_word.text}</div>" in html
    assert "positive" in html  # the output name labels shap's force bar
    many = shap.plots.text(seqshap.to_shap(shipped_exps[:2]), display=False)
    assert many.count("[0]") == 1
    assert many.count("[1]") == 1


def test_shap_waterfall_and_bar_draw_the_top_words(shipped_exps, tmp_path):
    exp = shipped_exps[0]
    sv = seqshap.to_shap(exp)
    top = sorted(exp.word_list(), key=lambda w: -abs(w.value))[:5]

    shap.plots.waterfall(sv, max_display=10, show=False)
    labels = tick_labels()
    for w in top:
        assert any(lab.endswith(f"= {w.token}") for lab in labels), (w.token, labels)
    plt.savefig(tmp_path / "waterfall.png")
    plt.close("all")
    png_ok(tmp_path / "waterfall.png")

    shap.plots.bar(sv, max_display=10, show_data=False, show=False)
    labels = tick_labels()
    assert {w.token for w in top} <= set(labels)
    plt.savefig(tmp_path / "bar_one.png")
    plt.close("all")
    png_ok(tmp_path / "bar_one.png")

    shap.plots.bar(seqshap.to_shap(shipped_exps).abs.mean(0), max_display=12, show=False)
    assert tick_labels()
    plt.savefig(tmp_path / "bar_many.png")
    plt.close("all")
    png_ok(tmp_path / "bar_many.png")


def test_word_importance_converts_for_shap_bar(shipped_exps, tmp_path):
    table = word_importance(shipped_exps, min_count=2)
    sv = seqshap.to_shap(table)
    assert sorted(sv.feature_names) == sorted(r.word for r in table.rows)
    for name, v in zip(sv.feature_names, sv.values, strict=True):
        assert v == table[name].mean
    strongest = seqshap.to_shap(table, by="mean_abs", k=5)
    assert list(strongest.feature_names) == [r.word for r in table.by_mean_abs(5)]
    np.testing.assert_array_equal(strongest.values, [r.mean_abs for r in table.by_mean_abs(5)])

    shap.plots.bar(seqshap.to_shap(table, k=8), max_display=8, show=False)
    labels = tick_labels()
    assert set(labels) == set(seqshap.to_shap(table, k=8).feature_names)  # every bar a word, no "other" bar
    plt.savefig(tmp_path / "importance.png")
    plt.close("all")
    png_ok(tmp_path / "importance.png")


def test_bad_input_gets_a_clear_error(shipped_exps):
    with pytest.raises(ValueError, match="no explanations"):
        seqshap.to_shap([])
    with pytest.raises(TypeError, match="item 1 is a str"):
        seqshap.to_shap([shipped_exps[0], "a review"])
    with pytest.raises(TypeError, match="expected an Explanation"):
        seqshap.to_shap("a review")
    logit = Explanation(["good"], [5], [1.0], 0.0, 1.0, 0.0, output_space="logit", output_name="positive")
    with pytest.raises(ValueError, match="convert them separately"):
        seqshap.to_shap([shipped_exps[0], logit])
    broken = Explanation(["good"], [5], [float("nan")], 0.0, 1.0, 0.0)
    with pytest.raises(ValueError, match="explanation 0 has NaN"):
        seqshap.to_shap(broken)
    acc = WordImportance().update(shipped_exps)
    with pytest.raises(TypeError, match=r"acc\.table\(min_count\)"):
        seqshap.to_shap(acc)
    with pytest.raises(TypeError, match="padding applies to explanations"):
        seqshap.to_shap(acc.table(1), padding=False)
    with pytest.raises(TypeError, match="importance table"):
        seqshap.to_shap(shipped_exps, k=3)
    with pytest.raises(ValueError, match="by must be one of mean, mean_abs"):
        seqshap.to_shap(acc.table(1), by="median")
    with pytest.raises(ValueError, match="has no words"):
        seqshap.to_shap(acc.table(10_000))


def test_missing_shap_says_how_to_install_it(monkeypatch, shipped_exps):
    monkeypatch.setitem(sys.modules, "shap", None)  # what an environment without shap sees
    with pytest.raises(ImportError, match=r"pip install 'seqshap\[shap\]'"):
        seqshap.to_shap(shipped_exps[0])


def test_importing_seqshap_does_not_import_shap():
    code = "import sys, seqshap; print('shap' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"
