"""Pictures of one Explanation: SVG force plot, HTML highlight/top words, PNG/SVG plots, terminal.

Built from Explanations encoded by the real tokenizer and vocabulary (no model needed),
so every number is known exactly; one test runs the whole path through a trained model.
"""

from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser

import numpy as np
import pytest
from PIL import Image

from seqshap.attribution.explanation import Explanation
from seqshap.data.tokenize import FIRST_WORD_ID, words
from seqshap.data.vocab import Vocab
from seqshap.viz import explanation_html, force_plot_svg, highlight_html, standalone_page, top_words_html
from seqshap.viz.html import prediction_html
from seqshap.viz.importance import importance_html, importance_plot
from seqshap.viz.layout import describe_prediction, fmt, force_layout, passage
from seqshap.viz.plots import force_plot_png, training_curves, waterfall
from seqshap.viz.terminal import render

SVG = "{http://www.w3.org/2000/svg}"
SCRIPT_REVIEW = "The acting was GREAT, but the plot was awful!<br /><br />Zyxqv <script>window.pwned=1</script> ok."


def make(
    text: str = SCRIPT_REVIEW,
    maxlen: int = 24,
    oov=("zyxqv",),
    seed: int = 0,
    overrides: dict | None = None,
    base: float = 0.5,
) -> Explanation:
    """An Explanation encoded by the real encoder (``Vocab.encodings``): last ``maxlen``
    positions, <start> in front when it fits, <pad> before, each position's span of text;
    the words in ``oov`` are not in the vocabulary and become <oov>."""
    known = [w for w in dict.fromkeys(words(text)) if w not in oov]
    vocab = Vocab({w: FIRST_WORD_ID + i for i, w in enumerate(known)}, FIRST_WORD_ID + len(known))
    enc = vocab.encodings([text], maxlen)[0]
    toks = list(enc.tokens)
    vals = np.random.default_rng(seed).normal(0, 0.02, maxlen)
    overrides = {"great": 0.31, "awful": -0.22, **(overrides or {})}
    for i, t in enumerate(toks):
        if t == "<pad>":
            vals[i] = 0.0
        if t in overrides:
            vals[i] = overrides[t]
    return Explanation(
        tokens=toks,
        ids=enc.ids,
        values=vals,
        base_value=base,
        output_value=base + float(vals.sum()),
        completeness_error=1e-7,
        text=text,
        label=1,
        model_name="test-lstm",
        spans=enc.spans,
        word_ids=enc.word_ids,
        classes=("negative", "positive"),
        output_name="positive",
    )


class Tags(HTMLParser):
    """Collects (tag, attrs, text inside) for elements with a class."""

    def __init__(self):
        super().__init__()
        self.elems, self.stack, self.text = [], [], []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("br", "img", "meta", "link", "input"):
            self.elems.append([tag, a, ""])
            return
        rec = [tag, a, ""]
        self.elems.append(rec)
        self.stack.append(rec)

    def handle_endtag(self, tag):
        while self.stack:
            rec = self.stack.pop()
            if rec[0] == tag:
                break

    def handle_data(self, data):
        self.text.append(data)
        for rec in self.stack:
            rec[2] += data

    def find(self, tag=None, cls=None):
        return [
            e
            for e in self.elems
            if (tag is None or e[0] == tag) and (cls is None or cls in (e[1].get("class") or "").split())
        ]


def parse(html: str) -> Tags:
    t = Tags()
    t.feed(html)
    return t


# ------------------------------------------------------------------ the text as shown
def _shown(view) -> str:
    return view.unread + "".join(r.text for r in view.runs)


def test_passage_words_are_the_text_as_written():
    text = "It's GREAT!<br />Really... 10/10"
    view = passage(make(text, maxlen=10, oov=()))
    assert [w.text for w in view.words] == ["It's", "GREAT", "Really", "10", "10"]
    assert [w.text.lower() for w in view.words] == words(text)
    assert _shown(view) == text
    assert view.n_unread == 0


def test_passage_hides_pad_and_start_and_keeps_oov_as_written():
    exp = make(maxlen=30)  # the whole review fits: <start> and padding in front
    view = passage(exp)
    assert _shown(view) == exp.text
    assert view.unread == ""
    shown = view.words
    assert len(shown) == int(exp.visible.sum())
    assert all(exp.tokens[p] not in ("<pad>", "<start>") for w in shown for p in w.positions)
    oov = [w for w in shown if w.unknown]
    assert [w.text for w in oov] == ["Zyxqv"]
    assert exp.tokens[oov[0].positions[0]] == "<oov>"
    assert [w.text for w in shown][:4] == ["The", "acting", "was", "GREAT"]
    for w in shown:  # each word is its span of the text, nothing re-read
        assert w.text == exp.text[slice(*exp.spans[w.positions[0]])]


def test_passage_marks_front_truncated_words():
    exp = make(maxlen=8)  # the encoder keeps the last 8 words: no <start>, no padding
    view = passage(exp)
    assert view.unread
    assert view.n_unread == len(words(exp.text)) - 8
    assert view.unread == exp.text[: exp.spans[0][0]]
    kept = [w.text for w in view.words]
    assert [k.lower() for k in kept] == [t if t != "<oov>" else "zyxqv" for t in exp.tokens]
    assert _shown(view) == exp.text


def test_passage_without_leading_words_is_not_truncated():
    exp = make("... (yes) GREAT!", maxlen=10, oov=())
    view = passage(exp)
    assert view.n_unread == 0
    assert view.unread == ""
    assert view.runs[0].text == "... ("
    assert _shown(view) == exp.text


def test_passage_falls_back_to_tokens_without_spans():
    exp = make()
    no_text = Explanation(exp.tokens, exp.ids, exp.values, exp.base_value, exp.output_value, 0.0)
    view = passage(no_text)
    shown = [w.text for w in view.words]
    assert shown == [t for t, v in zip(exp.tokens, exp.visible, strict=True) if v]
    assert _shown(view) == " ".join(shown)
    assert view.n_unread == 0
    # a text without spans (e.g. made by hand) cannot be trusted to match: the tokens are shown
    other = Explanation(
        exp.tokens,
        exp.ids,
        exp.values,
        exp.base_value,
        exp.output_value,
        0.0,
        text="a completely different review with other words in it " * 3,
    )
    assert [w.text for w in passage(other).words] == shown
    t = parse(highlight_html(other))
    assert [e[2] for e in t.find("span", "w")] == shown
    assert "completely" not in "".join(t.text)
    oov = t.find("span", "oov")
    assert [e[2] for e in oov] == ["<oov>"]  # boxed, as the model read it


UNICODE_REVIEW = (
    "Tom &amp; Jerry <b>LOVED</b> it: café, naïve, 映画 🎬 İstanbul, Straße!<br /><br />"
    '"Zyxqv" 10/10 — wow... <i>GREAT</i>&nbsp;fun &lt;3'
)


def _spans_of(exp: Explanation, positions: str) -> tuple[int, int]:
    ps = [int(p) for p in positions.split()]
    return min(exp.spans[p][0] for p in ps), max(exp.spans[p][1] for p in ps)


def _check_every_word_is_its_span(exp: Explanation) -> None:
    t = parse(explanation_html(exp))
    spans = t.find("span", "w")
    assert len(spans) == len(exp.word_list()) > 0
    for _, a, text in spans:  # highlight
        start, end = _spans_of(exp, a["data-positions"])
        assert text == exp.text[start:end]
        assert int(a["data-pos"]) == int(a["data-positions"].split()[0])
    rows = [e for e in t.find("tr") if "data-positions" in e[1]]  # top words
    cells = t.find("td", "word")
    assert len(rows) == len(cells) > 0
    for (_, a, _), (_, _, text) in zip(rows, cells, strict=True):
        assert text == exp.text[slice(*_spans_of(exp, a["data-positions"]))]
    root = ET.fromstring(force_plot_svg(exp))  # force plot labels and segments
    labels = root.findall(f".//{SVG}g[@class='label']")
    assert labels
    for g in labels + root.findall(f".//{SVG}g[@data-word]"):
        if g.get("data-pos") == "-1":
            continue
        want = exp.text[slice(*_spans_of(exp, g.get("data-positions")))]
        word = g.find(f"{SVG}text[@class='word']")
        assert (word.text if word is not None else g.get("data-word")) == want
    # and the text around the words is the review as written (<br /> tags as line breaks),
    # the part the model never read folded away in front
    h = parse(highlight_html(exp))
    shown = "".join(e[2] for e in h.find("div", "unread") + h.find("div", "text"))
    want = exp.text
    for tag in ("<br />", "<br/>", "<br>"):
        want = want.replace(tag, "\n")
    assert shown == want


def test_every_highlighted_word_is_exactly_its_token_span_vocab_path():
    """Punctuation, <br />, entities typed literally, tags, accents, CJK, emoji and letters
    whose case mapping changes their length, through ``Vocab.encodings``."""
    vocab = Vocab.build([UNICODE_REVIEW], num_words=40)
    vocab = Vocab({w: i for w, i in vocab.word_to_id.items() if w != "zyxqv"}, 40)
    enc = vocab.encodings([UNICODE_REVIEW], 60)[0]
    assert "<oov>" in enc.tokens
    assert "i̇stanbul" in enc.tokens
    vals = np.linspace(-0.3, 0.3, len(enc.ids))
    exp = Explanation(
        enc.tokens,
        enc.ids,
        vals,
        0.4,
        0.4 + float(vals.sum()),
        0.0,
        text=UNICODE_REVIEW,
        spans=enc.spans,
        word_ids=enc.word_ids,
    )
    _check_every_word_is_its_span(exp)
    oov = parse(highlight_html(exp)).find("span", "oov")
    assert [e[2] for e in oov] == ["Zyxqv"]


def test_every_highlighted_word_is_exactly_its_token_span_model_path(tiny_model, imdb):
    """The same through ``DeepExplainer.explain`` on a trained model, with front truncation."""
    from seqshap.attribution import DeepExplainer

    explainer = DeepExplainer(tiny_model, list(imdb["train"].head(8).texts))
    long = "An earlier paragraph, cut off by maxlen. " * 4 + UNICODE_REVIEW
    exps = explainer.explain([UNICODE_REVIEW, long], labels=[1, 0])
    for exp in exps:
        assert exp.spans is not None
        _check_every_word_is_its_span(exp)
        t = parse(highlight_html(exp))
        assert any(e[1].get("class") == "w oov" for e in t.find("span", "oov"))  # unknown words boxed
    cut = parse(highlight_html(exps[1])).find("details", "cut")
    assert cut
    assert "not read by the model" in cut[0][2]
    assert not parse(highlight_html(exps[0])).find("details", "cut")
    pred = parse(prediction_html(exps[1])).find("div", "prediction")[0][2]
    assert "true label negative" in pred


def test_a_word_of_several_positions_is_one_word_with_the_summed_value(tmp_path):
    """A subword tokenizer reads one word as several positions that share a word id."""
    text = "Unbelievable film!"
    exp = Explanation(
        ["<start>", "un", "##believ", "##able", "film"],
        [1, 5, 6, 7, 8],
        [0.01, 0.1, 0.2, -0.05, -0.3],
        0.5,
        0.5 + 0.01 + 0.1 + 0.2 - 0.05 - 0.3,
        0.0,
        text=text,
        spans=[None, (0, 2), (2, 8), (8, 12), (13, 17)],
        word_ids=[None, 0, 0, 0, 1],
    )
    whole = 0.1 + 0.2 + -0.05
    t = parse(highlight_html(exp))
    spans = t.find("span", "w")
    assert [(e[2], e[1]["data-pos"], e[1]["data-positions"]) for e in spans] == [
        ("Unbelievable", "1", "1 2 3"),
        ("film", "4", "4"),
    ]
    assert float(spans[0][1]["data-value"]) == whole
    assert "".join(t.find("div", "text")[0][2]) == text
    rows = [e for e in parse(top_words_html(exp)).find("tr") if "data-value" in e[1]]
    assert [float(r[1]["data-value"]) for r in rows] == [-0.3, whole]
    root = ET.fromstring(force_plot_svg(exp))
    segs = {g.get("data-word"): g for g in root.findall(f".//{SVG}g[@data-word]")}
    assert set(segs) == {"Unbelievable", "film", "padding/start"}
    assert float(segs["Unbelievable"].get("data-value")) == whole
    assert segs["Unbelievable"].get("data-positions") == "1 2 3"
    assert "Unbelievable[+0.2500]" in render(exp, k=2)
    text_ = "".join(ET.parse(waterfall(exp, tmp_path / "w.svg", k=1)).getroot().itertext())
    assert "4 other positions" in text_  # 5 positions, the top word "film" is one of them


def test_class_names_come_from_the_explanation():
    exp = make(maxlen=30)
    assert describe_prediction(exp).endswith(f"({exp.predicted_name})")
    named = Explanation(
        exp.tokens,
        exp.ids,
        exp.values,
        exp.base_value,
        exp.output_value,
        0.0,
        text=exp.text,
        label=0,
        spans=exp.spans,
        word_ids=exp.word_ids,
        classes=("bad", "good"),
    )
    pred = parse(prediction_html(named)).find("div", "prediction")[0][2]
    assert "true label bad" in pred
    assert f"({named.predicted_name})" in pred
    assert named.predicted_name in ("bad", "good")
    assert "true label bad" in render(named)
    bare = Explanation(exp.tokens, exp.ids, exp.values, 0.2, 0.7, 0.0, label=1)  # no class names known
    assert describe_prediction(bare) == "0.7000 (1)"
    assert "true label 1" in parse(prediction_html(bare)).find("div", "prediction")[0][2]
    assert "true label 1" in render(bare)
    raw = Explanation(exp.tokens, exp.ids, exp.values, 0.2, 3.5, 0.0, output_space="raw")
    assert describe_prediction(raw) == "3.5000"  # no class to name


# ------------------------------------------------------------------------- force plot SVG
def test_force_plot_svg_is_valid_xml_and_numbers_equal_the_explanation():
    exp = make()
    svg = force_plot_svg(exp)
    root = ET.fromstring(svg)  # well-formed standalone SVG
    assert root.tag == SVG + "svg"
    assert float(root.get("data-base-value")) == exp.base_value
    assert float(root.get("data-output-value")) == exp.output_value
    segs = root.findall(f".//{SVG}g[@data-word]")
    nonzero = [i for i in np.flatnonzero(exp.visible) if exp.values[i] != 0]
    hidden = float(exp.values[~exp.visible].sum())  # <start> has attribution too: one extra segment
    assert hidden != 0
    assert sorted(int(s.get("data-pos")) for s in segs) == [-1, *sorted(nonzero)]
    for s in segs:  # exact values, and the hover title shows the same number
        p = int(s.get("data-pos"))
        v = hidden if p == -1 else exp.values[p]
        assert float(s.get("data-value")) == v
        assert s.find(f"{SVG}title").text.endswith(f"{v:+.4f}")
        colour = s.find(f"{SVG}polygon").get("fill")
        assert colour == ("#ff0051" if v > 0 else "#008bfb")
    total = sum(float(s.get("data-value")) for s in segs)
    assert total == pytest.approx(exp.output_value - exp.base_value, abs=1e-12)
    assert "f(x) = " + f"{exp.output_value:.4f}" in "".join(root.itertext())
    assert f"base value {exp.base_value:.4f}" in "".join(root.itertext())


def test_force_plot_red_left_of_output_blue_right_and_stacked_to_it():
    exp = make()
    root = ET.fromstring(force_plot_svg(exp))
    xf = float(root.find(f".//{SVG}g[@class='output-value']/{SVG}line").get("x1"))
    for s in root.findall(f".//{SVG}g[@data-word]"):
        xs = [float(pt.split(",")[0]) for pt in s.find(f"{SVG}polygon").get("points").split()]
        if float(s.get("data-value")) > 0:
            assert max(xs) <= xf + 0.01
        else:
            assert min(xs) >= xf - 0.01
    lay = force_layout(exp)
    segs, lo, hi = lay.segments, lay.lo, lay.hi
    v = np.append(exp.values[exp.visible], exp.values[~exp.visible].sum())  # + the <start> segment
    assert lo == pytest.approx(exp.output_value - v[v > 0].sum())
    assert hi == pytest.approx(exp.output_value - v[v < 0].sum())
    # the biggest contributors sit right next to f(x)
    red = [s for s in segs if s.value > 0]
    assert red[0].word == "GREAT"
    assert red[0].x1 == exp.output_value


def test_force_plot_labels_the_biggest_contributors_with_their_words():
    exp = make()
    root = ET.fromstring(force_plot_svg(exp, max_labels=3))
    labels = root.findall(f".//{SVG}g[@class='label']")
    assert 1 <= len(labels) <= 3
    top3 = sorted(np.flatnonzero(exp.visible), key=lambda i: -abs(exp.values[i]))[:3]
    assert {int(g.get("data-pos")) for g in labels} <= {int(i) for i in top3}
    texts = {g.find(f"{SVG}text[@class='word']").text for g in labels}
    assert {"GREAT", "awful"} <= texts
    for g in labels:
        assert g.find(f"{SVG}text[@class='value']").text == f"{float(g.get('data-value')):+.4f}"


def test_force_plot_golden_structure():
    """Structure, not pixels: the element skeleton and label order for a fixed explanation."""
    exp = make(seed=3)
    root = ET.fromstring(force_plot_svg(exp, width=960, max_labels=4))
    skeleton = [(c.tag.replace(SVG, ""), c.get("class")) for c in root]
    assert skeleton == [
        ("title", None),
        ("g", "legend"),
        ("g", "axis"),
        ("g", "segments"),
        ("g", "base-value"),
        ("g", "output-value"),
        ("g", "labels"),
    ]
    assert root.get("viewBox").startswith("0 0 960 ")
    words_ = [g.find(f"{SVG}text[@class='word']").text for g in root.find(f"{SVG}g[@class='labels']")]
    assert words_[:2] == ["GREAT", "awful"]  # biggest |value| first
    seg_classes = [g.get("class").split()[1] for g in root.find(f"{SVG}g[@class='segments']")]
    # red block first (left of f(x)), then blue; never interleaved
    assert seg_classes == sorted(seg_classes, key=lambda c: c != "pos")


def test_svg_and_png_force_plots_draw_one_geometry(tmp_path):
    """Both renderers draw force_layout's labels: the same words and values, in the same order."""
    exp = make(seed=3)
    lay = force_layout(exp)
    want = [(lay.segments[lab.segment].word, fmt(lay.segments[lab.segment].value)) for lab in lay.labels]
    assert len(want) >= 4
    assert lay.n_rows >= 1
    root = ET.fromstring(force_plot_svg(exp))
    assert [
        (g.find(f"{SVG}text[@class='word']").text, g.find(f"{SVG}text[@class='value']").text)
        for g in root.findall(f".//{SVG}g[@class='label']")
    ] == want
    value = re.compile(r"[+-]\d\.\d{4}|[+-]\d\.\d\de[+-]\d+")
    texts = [t for t in ET.parse(force_plot_png(exp, tmp_path / "f.svg")).getroot().itertext() if t.strip()]
    assert [t for t in texts if value.fullmatch(t)] == [v for _, v in want]
    for w, v in want:  # each value is drawn right below its word
        assert texts[texts.index(v) - 1] == w
    # the SVG's polygons are the layout's chevrons, mapped to pixels
    xs = [
        float(pt.split(",")[0])
        for g in root.findall(f".//{SVG}g[@data-word]")
        for pt in g.find(f"{SVG}polygon").get("points").split()
    ]
    (dlo, dhi), px = lay.domain, lambda v: 30 + (v - dlo) / (dhi - dlo) * 900
    assert xs == pytest.approx([px(x) for s in lay.segments for x, _ in s.chevron], abs=0.006)


def test_review_text_is_escaped_everywhere():
    exp = make(text='<b onmouseover="x()">Bold</b> & "quoted" review <script>alert(1)</script> end', oov=())
    for fragment in (force_plot_svg(exp), highlight_html(exp), top_words_html(exp), explanation_html(exp)):
        assert "<script" not in fragment
        assert "<b " not in fragment
    t = parse(highlight_html(exp))
    assert not t.find("script")
    assert not t.find("b")
    shown = "".join(t.text)  # ...it is all text, exactly as written
    assert '<b onmouseover="x()">Bold</b> & "quoted" review <script>alert(1)</script> end' in shown
    evil = Explanation(["<pad>", 'a<b&"c', "</svg><script>x</script>"], [0, 3, 4], [0.0, 0.2, -0.1], 0.5, 0.6, 0.0)
    svg = force_plot_svg(evil)
    ET.fromstring(svg)  # still well-formed XML
    assert "<script" not in svg
    assert "a&lt;b&amp;&quot;c" in svg
    page = standalone_page('<script>alert("t")</script>', explanation_html(evil))
    assert "<script" not in page


def test_control_characters_do_not_break_the_svg():
    evil = Explanation(["bell\x07", "esc\x1b[31m"], [3, 4], [0.1, -0.1], 0.5, 0.5, 0.0)
    ET.fromstring(force_plot_svg(evil))


def test_non_finite_values_are_refused_with_a_clear_error():
    exp = Explanation(["a"], [3], [float("nan")], 0.5, 0.5, 0.0)
    with pytest.raises(ValueError, match="non-finite"):
        force_plot_svg(exp)
    with pytest.raises(TypeError, match="Explanation"):
        highlight_html({"tokens": []})


# ---------------------------------------------------------------------- highlight / top words
def test_highlight_shows_words_as_written_with_exact_values_and_legend():
    exp = make(maxlen=30)
    t = parse(highlight_html(exp))
    spans = t.find("span", "w")
    assert len(spans) == int(exp.visible.sum())
    for _tag, a, text in spans:
        p = int(a["data-pos"])
        assert float(a["data-value"]) == exp.values[p]
        assert a["title"].startswith(f"{text}: {exp.values[p]:+.4f}")
        assert exp.tokens[p] in (text.lower(), "<oov>")
        assert "background:rgb(" in a["style"]
    oov = t.find("span", "oov")
    assert [e[2] for e in oov] == ["Zyxqv"]
    assert "not in the vocabulary" in oov[0][1]["title"]
    visible_text = "".join(t.text)
    assert "<pad>" not in visible_text
    assert "<start>" not in visible_text
    assert "<script>window.pwned=1</script>" in visible_text  # shown as text
    legend = t.find("div", "legend")
    assert legend
    assert "+0.3100" in legend[0][2]
    assert "-0.3100" in legend[0][2]


def test_highlight_colours_are_diverging_and_scaled():
    exp = make(maxlen=30)
    spans = {int(a["data-pos"]): a["style"] for _, a, _ in parse(highlight_html(exp)).find("span", "w")}
    great = exp.tokens.index("great")
    awful = exp.tokens.index("awful")
    assert "background:rgb(255,0,81)" in spans[great]  # the largest |value| gets full red
    rgb = re.search(r"background:rgb\((\d+),(\d+),(\d+)\)", spans[awful]).groups()
    r, g, b = map(int, rgb)
    assert b == 255 - round((255 - 251) * 0.22 / 0.31)
    assert r < g < b


def test_highlight_folds_words_the_model_did_not_read():
    exp = make(maxlen=8)
    t = parse(highlight_html(exp))
    cut = t.find("details", "cut")
    assert cut
    assert "not read by the model" in cut[0][2]
    n_cut = len(words(exp.text)) - 8
    assert f"{n_cut} earlier word(s)" in cut[0][2]


def test_top_words_table_lists_largest_values_in_order():
    exp = make()
    rows = parse(top_words_html(exp, k=5)).find("tr")
    rows = [r for r in rows if "data-value" in r[1]]
    vals = [float(r[1]["data-value"]) for r in rows]
    assert len(vals) == 5
    expected = sorted(exp.values[exp.visible], key=lambda v: -abs(v))[:5]
    assert vals == [float(v) for v in expected]


def test_explanation_html_and_repr_html_compose_everything():
    exp = make()
    frag = explanation_html(exp)
    assert exp._repr_html_() == frag
    t = parse(frag)
    assert t.find("svg", "seqshap-force")
    assert t.find("div", "seqshap-highlight")
    assert t.find("table", "seqshap-top")
    assert t.find("div", "prediction")
    pred = t.find("div", "prediction")[0][2]
    assert f"{exp.output_value:.4f}" in pred
    assert "true label positive" in pred


def test_standalone_page_is_self_contained():
    page = standalone_page("A & B <title>", explanation_html(make()))
    assert page.startswith("<!DOCTYPE html>")
    assert "<title>A &amp; B &lt;title&gt;</title>" in page
    csp = [a for _, a, _ in parse(page).find("meta") if a.get("http-equiv") == "Content-Security-Policy"]
    assert csp
    assert "script-src 'none'" in csp[0]["content"]
    # nothing fetched from anywhere: the only URL is the SVG namespace name
    urls = set(re.findall(r"https?://[^\s\"')]+", page))
    assert urls == {"http://www.w3.org/2000/svg"}
    assert not re.search(r"(src|href)=\"(https?:)?//", page)
    assert "@import" not in page
    assert "<script" not in page


# ----------------------------------------------------------------------------- matplotlib
def _png_size(path):
    with Image.open(path) as im:
        assert im.format == "PNG"
        return im.size


def test_force_plot_png_and_svg(tmp_path):
    exp = make()
    p = force_plot_png(exp, tmp_path / "force.png")
    w, h = _png_size(p)
    assert w > 800
    assert h > 200
    s = force_plot_png(exp, tmp_path / "force.svg")
    text = "".join(ET.parse(s).getroot().itertext())
    assert "GREAT" in text
    assert "awful" in text
    assert f"f(x) = {exp.output_value:.4f}" in text


def test_waterfall_png_svg_lists_top_words(tmp_path):
    exp = make()
    _png_size(waterfall(exp, tmp_path / "w.png", k=5))
    root = ET.parse(waterfall(exp, tmp_path / "w.svg", k=5)).getroot()
    text = "".join(root.itertext())
    for _, v in exp.top(5):
        assert f"{v:+.4f}" in text
    assert "other positions" in text


def test_plots_escape_odd_words_and_refuse_unknown_formats(tmp_path):
    evil = Explanation(["$x^2$", "a<b&c"], [3, 4], [0.2, -0.1], 0.5, 0.6, 0.0)
    root = ET.parse(waterfall(evil, tmp_path / "e.svg")).getroot()
    text = "".join(root.itertext())
    assert "$x^2$" in text
    assert "a<b&c" in text
    with pytest.raises(ValueError, match=r"\.png or \.svg"):
        force_plot_png(evil, tmp_path / "x.jpg")
    assert not (tmp_path / "x.jpg").exists()


def test_training_curves(tmp_path):
    metrics = {
        "history": [
            {
                "epoch": e,
                "train_loss": 0.7 - 0.1 * e,
                "train_accuracy": 0.6 + 0.05 * e,
                "val_loss": 0.65 - 0.05 * e,
                "val_accuracy": 0.62 + 0.04 * e,
                "seconds": 3.0,
            }
            for e in range(1, 5)
        ],
        "best_epoch": 3,
        "test_accuracy": 0.81,
    }
    _png_size(training_curves(metrics, tmp_path / "c.png"))
    text = "".join(ET.parse(training_curves(metrics, tmp_path / "c.svg")).getroot().itertext())
    assert "test accuracy 0.8100" in text
    assert "selected epoch 3" in text
    assert "validation" in text
    with pytest.raises(ValueError, match="no training history"):
        training_curves({}, tmp_path / "d.png")


def test_importance_plot(tmp_path):
    from seqshap.importance import WordImportance

    acc = WordImportance()
    acc.add_tokens(["great", "awful", "great", "film"], [0.3, -0.2, 0.1, 0.01])
    table = acc.table(min_count=1)
    _png_size(importance_plot(table, tmp_path / "i.png"))
    text = "".join(ET.parse(importance_plot(table, tmp_path / "i.svg")).getroot().itertext())
    assert "great" in text
    assert "awful" in text
    assert "n=2" in text
    with pytest.raises(ValueError, match="no words"):
        importance_plot(WordImportance().table(1), tmp_path / "none.png")


def test_importance_html_escapes_words_and_lists_both_sides():
    from seqshap.importance import WordImportance

    acc = WordImportance()
    acc.add_tokens(["great", "<b>bad</b>", "great", "film"], [0.3, -0.2, 0.1, 0.01])
    t = parse(importance_html(acc.table(min_count=1), k=5))
    assert not t.find("b")
    rows = [e[1] for e in t.find("tr") if "data-word" in e[1]]
    assert [(r["data-word"], float(r["data-mean"])) for r in rows] == [
        ("great", 0.2),
        ("film", 0.01),
        ("<b>bad</b>", -0.2),
    ]


# ------------------------------------------------------------------------------ terminal
def test_terminal_render_plain_and_coloured():
    exp = make(maxlen=30)
    plain = render(exp, colour_on=False, k=3)
    assert "\x1b" not in plain
    assert f"prediction {exp.output_value:.4f}" in plain
    assert "GREAT[+0.3100]" in plain
    assert "awful[-0.2200]" in plain
    assert "Zyxqv?" in plain
    coloured = render(exp, colour_on=True, k=3)
    assert "\x1b[48;2;255;0;81m" in coloured  # GREAT on full red


def test_terminal_render_names_the_share_of_padding_and_start_so_the_numbers_add_up():
    # padding positions get a share when the background read words there
    exp = make(maxlen=60, overrides={"<pad>": -0.01})
    hidden = float(exp.values[~exp.visible].sum())
    out = render(exp, colour_on=False).splitlines()[-1]
    assert out.startswith(f"padding/start {hidden:+.4f}  (")
    assert out.endswith(f"= {exp.output_value - exp.base_value:+.4f})")
    words = sum(w.value for w in exp.word_list())
    assert abs(words + hidden - (exp.output_value - exp.base_value)) < 1e-12
    nothing_hidden = make(maxlen=60, overrides={"<start>": 0.0})
    assert "padding/start" not in render(nothing_hidden)


def test_terminal_render_strips_escape_sequences_from_reviews():
    exp = make(text="nice \x1b[2J\x1b]0;pwned\x07 movie", oov=())
    out = render(exp, colour_on=False)
    assert "\x1b" not in out
    assert "\x07" not in out
    out = render(exp, colour_on=True)
    assert "\x1b[2J" not in out
    assert "\x1b]0" not in out


def test_explanation_json_roundtrip_matches_values():
    exp = make()
    d = json.loads(json.dumps(exp.to_dict()))
    assert d["values"] == exp.values.tolist()
