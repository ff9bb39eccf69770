"""Corpus explanation on Dask: exact merge against a single process, and kill + resume.

Real Dask ``LocalCluster`` (2 worker processes, 1 thread each), the real tiny LSTM, real
IMDB reviews. Chunks of 25 = the single-process batch size, so every review is explained in
exactly the same batch as in the reference run.
"""

from __future__ import annotations

import csv
import json
import os
import random
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import dask
import pytest
import torch
from distributed import Client, LocalCluster

from seqshap.attribution import DeepExplainer
from seqshap.distributed import DistributedError, build_counts, explain_corpus
from seqshap.importance import WordImportance, importance_over

pytestmark = pytest.mark.slow

N, BG, CHUNK = 300, 20, 25
N_CHUNKS = N // CHUNK
# The merge itself is exact (checked bit for bit below, whatever the order). The attributions
# are computed in float32 by the model, in other processes: allow 1e-9 plus float32 rounding
# (relative 1e-6 of the word's summed |attribution|). Usually the results are bit-identical.
TOL, F32 = 1e-9, 1e-6


@pytest.fixture(scope="module")
def corpus(imdb):
    test = imdb["test"].head(N)
    return list(test.texts), [int(x) for x in test.labels], list(test.ids), list(imdb["train"].head(BG).texts)


@pytest.fixture(scope="module")
def reference(tiny_model, corpus) -> WordImportance:
    """The single-process result: what ``seqshap importance`` computes without --scheduler."""
    texts, labels, _, bg = corpus
    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # 2 shared cores: as the workers do
    try:
        return importance_over(DeepExplainer(tiny_model, bg), texts, labels, batch_size=25)
    finally:
        torch.set_num_threads(threads)


def assert_same(acc: WordImportance, ref: WordImportance) -> float:
    """Same words, counts and review counts; sums within TOL + float32 rounding. Returns the largest difference."""
    assert acc.n_explanations == ref.n_explanations == N
    assert acc.n_skipped == ref.n_skipped
    got, want = {r.word: r for r in acc.table(1).rows}, {r.word: r for r in ref.table(1).rows}
    assert set(got) == set(want)
    assert len(want) > 500
    worst = 0.0
    for w, r in want.items():
        g = got[w]
        assert (g.count, g.n_reviews) == (r.count, r.n_reviews), w
        tol = TOL + F32 * r.mean_abs * r.count
        assert abs(g.sum - r.sum) <= tol, w
        assert abs(g.mean_abs - r.mean_abs) * r.count <= tol, w
        worst = max(worst, abs(g.sum - r.sum))
    return worst


def chunk_files(out: Path) -> list[Path]:
    return sorted((out / "chunks").glob("chunk-*.json"))


def test_local_cluster_matches_single_process(tiny_model, corpus, reference, tmp_path):
    texts, labels, ids, bg = corpus
    # glibc defaults in the workers, as explain_corpus sets up its own LocalCluster (see slow_malloc)
    with (
        dask.config.set({"distributed.nanny.pre-spawn-environ.MALLOC_TRIM_THRESHOLD_": None}),
        LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None) as cluster,
        Client(cluster) as client,
    ):
        acc, summary = explain_corpus(
            tiny_model.path,
            texts,
            labels,
            tmp_path,
            scheduler=cluster.scheduler_address,
            chunk_size=CHUNK,
            background=bg,
            ids=ids,
            progress=False,
        )
        builds = client.run(build_counts)
    assert_same(acc, reference)

    # model + background went to each worker once: one explainer build per worker for 12 chunks
    assert len(builds) == 2
    assert all(list(b.values()) == [1] for b in builds.values()), builds

    files = chunk_files(tmp_path)
    assert [p.name for p in files] == [f"chunk-{i:05d}.json" for i in range(N_CHUNKS)]
    chunks = [json.loads(p.read_text()) for p in files]
    assert [i for c in chunks for i in c["review_ids"]] == ids  # every review once, in order
    assert all(c["state"]["n_explanations"] == CHUNK for c in chunks)
    assert len({c["worker"] for c in chunks}) == 2  # both workers did some of the work
    assert not list((tmp_path / "chunks").glob("*.tmp"))

    # the merge does not depend on the order the chunks come back in: bit for bit
    states = [WordImportance.from_state(c["state"]) for c in chunks]
    random.Random(0).shuffle(states)
    shuffled = WordImportance()
    for s in states:
        shuffled.merge(s)
    assert shuffled.table(1).to_csv_text() == acc.table(1).to_csv_text()

    assert summary["reviews"] == summary["reviews_explained"] == N
    assert (summary["workers"], summary["chunks"], summary["chunks_resumed"]) == (2, N_CHUNKS, 0)
    assert summary["reviews_per_s"] > 0
    assert summary["seconds"] >= summary["work_seconds"] > 0

    # resuming a finished run: nothing to redo, same result, no worker started
    logs: list[str] = []
    again, s2 = explain_corpus(
        tiny_model.path,
        texts,
        labels,
        tmp_path,
        chunk_size=CHUNK,
        background=bg,
        ids=ids,
        resume=True,
        progress=False,
        log=logs.append,
    )
    assert logs == [f"resume: {N_CHUNKS} of {N_CHUNKS} chunks already done ({N} reviews); explaining the other 0"]
    assert (s2["chunks_resumed"], s2["reviews_explained"], s2["workers"]) == (N_CHUNKS, 0, 0)
    assert again.table(1).to_csv_text() == acc.table(1).to_csv_text()

    # the same folder again: refused without resume, refused for a different chunking
    with pytest.raises(DistributedError, match="--resume"):
        explain_corpus(tiny_model.path, texts, labels, tmp_path, chunk_size=CHUNK, background=bg, ids=ids)
    with pytest.raises(DistributedError, match=r"different run.*chunk_size 25 -> 50"):
        explain_corpus(tiny_model.path, texts, labels, tmp_path, chunk_size=50, background=bg, ids=ids, resume=True)


def cli(out: Path, model: Path, *extra: str) -> list[str]:
    return [
        sys.executable,
        "-m",
        "seqshap.cli",
        "importance",
        "--model",
        str(model),
        "--n",
        str(N),
        "--background",
        str(BG),
        "--chunk-size",
        str(CHUNK),
        "--min-count",
        "1",
        "--out",
        str(out),
        "--quiet",
        *extra,
    ]


def test_killed_run_resumes_to_the_same_result(tiny_model, reference, tmp_path):
    out = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)  # left in os.environ by any Dask nanny started in this process
    # own session, so that SIGKILL takes the CLI and its Dask worker processes down together
    proc = subprocess.Popen(
        cli(out, tiny_model.path, "--scheduler", "processes", "--workers", "2"),
        env=env,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 300
        while len(chunk_files(out)) < 2:
            if proc.poll() is not None:
                pytest.fail(f"the run ended before it could be killed: {proc.stderr.read().decode()[-2000:]}")
            if time.monotonic() > deadline:
                pytest.fail("no chunk written within 300 s")
            time.sleep(0.02)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL
    saved = {p.name: p.read_bytes() for p in chunk_files(out)}
    assert 2 <= len(saved) < N_CHUNKS, f"{len(saved)} chunks saved: not killed midway"
    assert not (out / "word_importance.csv").exists()

    # without --resume the folder is refused, with one clear line
    again = subprocess.run(
        cli(out, tiny_model.path, "--scheduler", "local"), env=env, capture_output=True, text=True, timeout=300
    )
    assert again.returncode == 1
    assert "pass --resume" in again.stderr
    assert "Traceback" not in again.stderr

    # resume on a different scheduler (the local process pool): the result does not depend on it
    res = subprocess.run(
        cli(out, tiny_model.path, "--scheduler", "local", "--workers", "2", "--resume", "--json"),
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert res.returncode == 0, res.stderr[-2000:]
    k = len(saved)
    assert re.search(
        rf"resume: {k} of {N_CHUNKS} chunks already done \({k * CHUNK} reviews\); "
        rf"explaining the other {N_CHUNKS - k}",
        res.stderr,
    ), res.stderr
    run = json.loads(res.stdout)["run"]
    assert (run["chunks_resumed"], run["reviews_explained"], run["workers"]) == (k, N - k * CHUNK, 2)
    assert f"{k} of {N_CHUNKS} chunks ({k * CHUNK} reviews) resumed" in res.stderr

    # the saved chunks were kept as they were, the missing ones added
    assert len(chunk_files(out)) == N_CHUNKS
    assert all((out / "chunks" / name).read_bytes() == data for name, data in saved.items())

    merged = WordImportance()
    for p in chunk_files(out):
        merged.merge(WordImportance.from_state(json.loads(p.read_text())["state"]))
    assert_same(merged, reference)

    # and the table the command wrote is the single-process table
    with open(out / "word_importance.csv", newline="") as f:
        rows = {r["word"]: r for r in csv.DictReader(f)}
    want = {r.word: r for r in reference.table(1).rows}
    assert set(rows) == set(want)
    for w, r in want.items():
        assert int(rows[w]["count"]) == r.count
        assert int(rows[w]["n_reviews"]) == r.n_reviews
        assert abs(float(rows[w]["sum"]) - r.sum) <= TOL + F32 * r.mean_abs * r.count


# ------------------------------------------------------------- every kind of model directory
def keras_dir(root: Path, imdb) -> Path:
    """A tiny Keras LSTM saved as .keras and converted (``seqshap import-keras``): a native-format directory."""
    os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported
    import json as _json

    import keras

    from seqshap.keras_import import import_keras

    keras.utils.set_random_seed(0)
    model = keras.Sequential(
        [keras.Input((16,), dtype="int32"), keras.layers.Embedding(60, 4), keras.layers.LSTM(3),
         keras.layers.Dense(1, activation="sigmoid")]
    )  # fmt: skip
    model.save(root / "tiny.keras")
    from seqshap.data import Vocab

    # Keras' imdb word index: rank 1 = the most frequent word (id rank + 3 < the embedding's 60 rows)
    words = {w: i - 2 for w, i in Vocab.build(imdb["train"].texts[:300], num_words=59).word_to_id.items()}
    (root / "wi.json").write_text(_json.dumps(words))
    import_keras(root / "tiny.keras", root / "keras-model", word_index=root / "wi.json")
    return root / "keras-model"


def hf_dir(root: Path, imdb) -> Path:
    """A tiny BERT classifier built from a config, with its WordPiece tokenizer (tokenizer.json, vocab.txt, ...)."""
    from helpers import build_hf, wordpiece

    return build_hf("bert", root / "bert-model", wordpiece(imdb["train"].texts[:300]), ["negative", "positive"], 24)


@pytest.mark.parametrize("make", [hf_dir, keras_dir], ids=["hugging-face", "keras-converted"])
def test_processes_scheduler_ships_every_kind_of_model_directory(make, imdb, tmp_path):
    """Workers get every file of the model directory (a Hugging Face one's tokenizer and config too),
    and their table is the single-process table. The native kind: the tests above."""
    model_dir = make(tmp_path, imdb)
    data = tmp_path / "reviews.csv"
    with data.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["text", "label"])
        for t, y in zip(imdb["test"].texts[:6], imdb["test"].labels[:6], strict=True):
            w.writerow([t, int(y)])
    (tmp_path / "bg.txt").write_text("\n".join(imdb["train"].texts[:3]), encoding="utf-8")
    common = ["importance", "--model", str(model_dir), "--data", str(data), "--n", "6", "--background-file",
              str(tmp_path / "bg.txt"), "--min-count", "1", "--quiet", "--json"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    env.pop("MALLOC_TRIM_THRESHOLD_", None)
    spread = subprocess.run(
        [sys.executable, "-m", "seqshap.cli", *common, "--out", str(tmp_path / "dask"), "--scheduler", "processes",
         "--workers", "2", "--chunk-size", "3"],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert spread.returncode == 0, spread.stderr[-2000:]
    assert json.loads(spread.stdout)["run"]["workers"] == 2
    one = subprocess.run(
        [sys.executable, "-m", "seqshap.cli", *common, "--out", str(tmp_path / "one")],
        env=env, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert one.returncode == 0, one.stderr[-2000:]
    read = lambda d: {r["word"]: r for r in csv.DictReader((d / "word_importance.csv").open(newline=""))}
    got, want = read(tmp_path / "dask"), read(tmp_path / "one")
    assert set(got) == set(want)
    assert len(want) > 20
    for word, r in want.items():
        assert (got[word]["count"], got[word]["n_reviews"]) == (r["count"], r["n_reviews"])
        assert abs(float(got[word]["sum"]) - float(r["sum"])) <= TOL + F32 * float(r["mean_abs"]) * int(r["count"])
