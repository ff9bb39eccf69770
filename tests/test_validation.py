"""One rule, one message: the declared constraints of ``seqshap._validation`` check the library's
arguments and, as argparse ``type=``, the command line's, in the same words."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest
from torch import nn

from seqshap._validation import FRACTION, NON_NEGATIVE, PAIRS, PORT, POSITIVE, POSITIVE_NUMBER
from seqshap.attribution import IntegratedGradients, Occlusion, SamplingShapley
from seqshap.cli import main
from seqshap.importance import WordImportance


def test_a_constraint_checks_values_and_parses_options():
    assert POSITIVE.check("n", 3) == 3
    for bad in (0, -1, 2.0, True, "3"):
        with pytest.raises(ValueError, match=r"^n must be a whole number of at least 1, got "):
            POSITIVE.check("n", bad)
    assert POSITIVE("7") == 7
    with pytest.raises(argparse.ArgumentTypeError, match=r"^must be a whole number of at least 1, got 'x'$"):
        POSITIVE("x")
    assert NON_NEGATIVE("0") == 0
    assert PAIRS("4") == 4
    with pytest.raises(argparse.ArgumentTypeError, match="even number"):
        PAIRS("3")
    assert PORT("65535") == 65535
    with pytest.raises(argparse.ArgumentTypeError, match="from 0 to 65,535"):
        PORT("65536")
    assert POSITIVE_NUMBER("0.5") == 0.5
    for bad in ("0", "nan", "inf", "-1"):
        with pytest.raises(argparse.ArgumentTypeError, match="a positive number"):
            POSITIVE_NUMBER(bad)
    with pytest.raises(argparse.ArgumentTypeError, match="between 0 and 1"):
        FRACTION("1")


def test_the_library_says_what_the_command_line_says(capsys):
    net = nn.Sequential(nn.Embedding(10, 2), nn.Flatten(), nn.Linear(8, 1), nn.Sigmoid())
    cases = [
        (lambda: IntegratedGradients(net, steps=0), ["faithfulness", "--out", "x", "--ig-steps", "0"], "--ig-steps"),
        (lambda: SamplingShapley(net, n_permutations=3), ["faithfulness", "--out", "x", "--permutations", "3"],
         "--permutations"),
        (lambda: Occlusion(net, batch_size=0), ["importance", "--out", "x", "--batch-size", "0"], "--batch-size"),
        (lambda: WordImportance().table(0), ["importance", "--out", "x", "--min-count", "0"], "--min-count"),
    ]  # fmt: skip
    for call, argv, flag in cases:
        with pytest.raises(ValueError, match=" must be ") as e:
            call()
        rule = str(e.value).split(" must be ", 1)[1].rsplit(", got", 1)[0]
        assert main(argv) == 2
        err = capsys.readouterr().err.strip()
        assert err == f"seqshap {argv[0]}: error: argument {flag}: must be {rule}, got '{argv[-1]}'"


BAD_OPTIONS = [
    ["train", "--epochs", "0", "--out", "x"],
    ["train", "--val-fraction", "1.5", "--out", "x"],
    ["explain", "good", "--top", "0"],
    ["report", "--importance-n", "0"],
    ["serve", "--port", "-5"],
    ["import-keras", "m.keras", "--maxlen", "0", "--out", "x"],
    ["faithfulness", "--short-words", "15", "--out", "x"],
    ["faithfulness", "--out"],
]


@pytest.mark.parametrize("argv", BAD_OPTIONS)
def test_a_bad_option_is_one_line_and_exit_2(argv, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1, err
    assert err.startswith(f"seqshap {argv[0]}: error: argument ")


@pytest.mark.parametrize("argv", BAD_OPTIONS[:2])
def test_the_same_from_a_real_process(argv):
    r = subprocess.run([sys.executable, "-m", "seqshap.cli", *argv], capture_output=True, text=True, timeout=120)
    assert r.returncode == 2
    assert len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert r.stderr.startswith(f"seqshap {argv[0]}: error: argument ")
    assert "Traceback" not in r.stderr
