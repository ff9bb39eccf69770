"""seqshap as a user installs it: the sdist and wheel built (``python -m build``), the wheel
installed into a fresh virtualenv outside the checkout, and the commands run from another
folder with no network and no IMDB archive.

The network is taken away with ``unshare -rn`` (a user + network namespace: only a loopback
device) where the kernel allows it; elsewhere the processes get proxy variables pointing at a
closed port. Either way ``$HOME``, ``$SEQSHAP_CACHE`` and ``$SEQSHAP_IMDB`` point at empty
folders. A control run that does need IMDB proves the sandbox: it must fail, and its message
must say what to do.

The fresh venv gets the wheel alone (``pip install --no-deps --no-index``); its dependencies
(torch and the rest, pinned by constraints.txt) come from the test's own environment through a
``.pth`` line, which adds that site-packages folder but not its ``.pth`` files, so the
checkout's editable seqshap stays invisible: every test checks that seqshap was imported from
the fresh venv. Reinstalling torch per run would cost minutes and a gigabyte, and prove
nothing about seqshap; the wheel's declared requirements are checked against what is there.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import sysconfig
import textwrap
import zipfile
from pathlib import Path

import pytest

import seqshap

pytestmark = [pytest.mark.install, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[1]
TEXT = "A wonderful, moving film with a weak ending."
HANG = 600  # seconds: a guard against a hung process, never a measure of speed
MODEL_FILES = ("config.json", "vocab.json", "model.safetensors", "background.json")


def run(argv, **kw) -> subprocess.CompletedProcess:
    kw.setdefault("env", CLEAN)
    return subprocess.run(argv, capture_output=True, text=True, timeout=HANG, **kw)


# without $PYTHONPATH (the checkout's src/ while developing): pip and python see only what is installed
CLEAN = {k: v for k, v in os.environ.items() if not k.startswith(("SEQSHAP_", "PYTHON"))}


@pytest.fixture(scope="module")
def dist(tmp_path_factory) -> dict[str, Path]:
    """``python -m build`` (sdist, then the wheel from the sdist) on a copy of the project."""
    work = tmp_path_factory.mktemp("build")
    src = work / "seqshap"
    src.mkdir()
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info", "*.pyc")
    for name in ("pyproject.toml", "README.md", "LICENSE", "src"):
        if (ROOT / name).is_dir():
            shutil.copytree(ROOT / name, src / name, ignore=ignore)
        else:
            shutil.copy2(ROOT / name, src / name)
    # --no-isolation: the pinned setuptools of this environment, no download
    r = run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(work / "dist"), str(src)])
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    (wheel,) = (work / "dist").glob("seqshap-*.whl")
    (sdist,) = (work / "dist").glob("seqshap-*.tar.gz")
    return {"wheel": wheel, "sdist": sdist}


@pytest.fixture(scope="module")
def venv(dist, tmp_path_factory) -> Path:
    """A fresh virtualenv outside the checkout with the wheel installed in it."""
    env = tmp_path_factory.mktemp("venv") / "venv"
    r = run([sys.executable, "-m", "venv", str(env)])
    assert r.returncode == 0, r.stderr
    py = env / "bin" / "python"
    r = run([str(py), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet", str(dist["wheel"])])
    assert r.returncode == 0, r.stdout + r.stderr
    site = Path(run([str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"]).stdout.strip())
    ours = {sysconfig.get_paths()["purelib"], sysconfig.get_paths()["platlib"]}
    (site / "_seqshap_test_dependencies.pth").write_text("\n".join(sorted(ours)) + "\n")
    return env


@pytest.fixture(scope="module")
def sandbox(venv, tmp_path_factory) -> dict:
    """How to run a command with no network, no archive, from a folder that is not the checkout."""
    base = tmp_path_factory.mktemp("elsewhere")
    for d in ("home", "cache", "imdb", "cwd"):
        (base / d).mkdir()
    env = {k: v for k, v in CLEAN.items() if "proxy" not in k.lower()}
    closed = "http://127.0.0.1:9"  # the discard port: nothing listens there
    env.update(
        PATH=f"{venv / 'bin'}{os.pathsep}{env.get('PATH', '')}",
        HOME=str(base / "home"),
        SEQSHAP_CACHE=str(base / "cache"),
        SEQSHAP_IMDB=str(base / "imdb" / "aclImdb_v1.tar.gz"),  # named, absent
        HTTP_PROXY=closed,
        HTTPS_PROXY=closed,
        http_proxy=closed,
        https_proxy=closed,
        MPLCONFIGDIR=str(base / "home" / "mpl"),
    )
    unshare = shutil.which("unshare")
    namespace = unshare is not None and run([unshare, "-rn", "true"]).returncode == 0
    prefix = [unshare, "-rn"] if namespace else []
    return {
        "env": env,
        "cwd": base / "cwd",
        "prefix": prefix,
        "mode": "unshare -rn (no network device but loopback)" if namespace else "proxy variables at a closed port",
    }


def offline(sandbox, *argv: str | Path) -> subprocess.CompletedProcess:
    return run([*sandbox["prefix"], *map(str, argv)], env=sandbox["env"], cwd=sandbox["cwd"])


def adds_up(d: dict) -> None:
    assert d["completeness_error"] < 1e-5
    assert sum(d["values"]) == pytest.approx(d["prediction"] - d["base_value"], abs=1e-5)


def test_wheel_and_sdist_carry_the_model_its_background_the_license_and_the_metadata(dist):
    with zipfile.ZipFile(dist["wheel"]) as z:
        names = set(z.namelist())
        meta = z.read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
        entry_points = z.read(next(n for n in names if n.endswith(".dist-info/entry_points.txt"))).decode()
    assert {f"seqshap/default_model/{f}" for f in MODEL_FILES} <= names
    assert {"seqshap/web/static/app.js", "seqshap/__main__.py"} <= names
    assert any(n.endswith(".dist-info/licenses/LICENSE") for n in names)
    assert not any(n.endswith(".tar.gz") for n in names)  # the 28 MB IMDB archive stays in the repository
    assert f"Version: {seqshap.__version__}" in meta
    assert "Requires-Python: >=3.11" in meta
    assert "License-Expression: MIT" in meta
    assert "Classifier: Programming Language :: Python :: 3.11" in meta
    assert re.search(r"^Project-URL: ", meta, re.M)
    assert "Requires-Dist: torch==" in meta
    assert "seqshap = seqshap.cli:main" in entry_points
    import tarfile

    with tarfile.open(dist["sdist"]) as t:
        members = {m.split("/", 1)[1] for m in t.getnames() if "/" in m}
    assert {"LICENSE", "pyproject.toml", "README.md"} <= members
    assert {f"src/seqshap/default_model/{f}" for f in MODEL_FILES} <= members


def test_readme_states_the_wheel_size(dist):
    """The README says how big the wheel is (it carries the model); it must not go stale."""
    found = re.search(r"the wheel is ([\d.]+) MB", (ROOT / "README.md").read_text(encoding="utf-8"))
    assert found, "README.md should state 'the wheel is N.N MB'"
    assert float(found.group(1)) == pytest.approx(dist["wheel"].stat().st_size / 1e6, abs=0.15)


def test_installed_seqshap_comes_from_the_wheel_and_its_requirements_are_met(venv, sandbox):
    check = textwrap.dedent(
        """
        import json, importlib.metadata as md, seqshap
        from packaging.requirements import Requirement
        unmet = []
        for line in md.requires("seqshap") or []:
            req = Requirement(line)
            if req.marker is not None and not req.marker.evaluate({"extra": ""}):
                continue  # an extra's requirement
            try:
                have = md.version(req.name)
            except md.PackageNotFoundError:
                have = None
            if have is None or not req.specifier.contains(have, prereleases=True):
                unmet.append(f"{line} (found {have})")
        print(json.dumps({"file": seqshap.__file__, "version": md.version("seqshap"), "unmet": unmet}))
        """
    )
    r = offline(sandbox, venv / "bin" / "python", "-c", check)
    assert r.returncode == 0, r.stderr
    d = json.loads(r.stdout)
    assert Path(d["file"]).is_relative_to(venv), d["file"]
    assert d["version"] == seqshap.__version__
    assert d["unmet"] == []


def test_version_from_the_script_and_python_m(venv, sandbox):
    for argv in (["seqshap", "--version"], [venv / "bin" / "python", "-m", "seqshap", "--version"]):
        r = offline(sandbox, *argv)
        assert r.returncode == 0, r.stderr
        assert r.stdout.strip() == f"seqshap {seqshap.__version__}"


def test_explain_offline_with_the_shipped_background(venv, sandbox):
    r = offline(sandbox, "seqshap", "explain", TEXT, "--json")
    assert r.returncode == 0, f"[{sandbox['mode']}] {r.stderr}"
    d = json.loads(r.stdout)
    adds_up(d)
    assert d["model"] == "imdb-lstm"
    assert (
        r.stderr.splitlines()[-1] == "background: the first 100 IMDB training reviews (default_model/background.json)"
    )
    assert d["base_value"] == pytest.approx(0.5802, abs=1e-4)  # the README's number: the same 100 reviews


def test_explain_offline_with_a_background_file(venv, sandbox, tmp_path):
    bg = tmp_path / "bg.txt"
    bg.write_text("a dull film\n\nan excellent, moving story\nit was fine\n", encoding="utf-8")
    r = offline(sandbox, venv / "bin" / "python", "-m", "seqshap", "explain", TEXT, "--json", "--background-file", bg)
    assert r.returncode == 0, r.stderr
    adds_up(json.loads(r.stdout))
    assert r.stderr.splitlines()[-1] == f"background: the 3 texts of {bg}"


def test_importance_and_report_offline_on_your_own_texts(venv, sandbox, tmp_path):
    """The corpus commands need texts to explain: with --data they need no archive and no network."""
    data = tmp_path / "reviews.csv"
    rows = [
        ("A wonderful, moving film with a weak ending.", "positive"),
        ("Dull, far too long, and the acting was awful.", "negative"),
        ("One of the best films of the year: funny and warm.", "positive"),
        ("A waste of time. The plot makes no sense at all.", "negative"),
        ("Great music, great cast, a story that stays with you.", "positive"),
        ("Boring from start to end; I nearly walked out.", "negative"),
    ]
    data.write_text("text,label\n" + "".join(f'"{t}",{y}\n' for t, y in rows), encoding="utf-8")
    out = tmp_path / "importance"
    r = offline(sandbox, "seqshap", "importance", "--data", data, "--n", "6", "--min-count", "1",
                "--out", out, "--json", "--quiet")  # fmt: skip
    assert r.returncode == 0, f"[{sandbox['mode']}] {r.stderr}"
    assert json.loads(r.stdout)["n_explanations"] == 6
    for kind in ("csv", "json", "png", "svg"):
        assert (out / f"word_importance.{kind}").stat().st_size > 0
    report = tmp_path / "report"
    r = offline(sandbox, "seqshap", "report", "--data", data, "--n", "2", "--importance-n", "6", "--out", report)
    assert r.returncode == 0, f"[{sandbox['mode']}] {r.stderr}"
    index = (report / "index.html").read_text(encoding="utf-8")
    assert "wonderful" in index
    # without --data they would explain the IMDB test reviews: the message says where to get them
    r = offline(sandbox, "seqshap", "importance", "--n", "6", "--out", tmp_path / "imdb-importance")
    assert r.returncode == 1
    message = r.stderr.strip()
    assert "\n" not in message, message
    for part in ("cannot download the IMDB reviews", "$SEQSHAP_IMDB (or --imdb PATH)", "--data FILE"):
        assert part in message, f"[{sandbox['mode']}] {message}"


def test_offline_failure_names_imdb_where_from_and_what_to_do(venv, sandbox, tmp_path):
    """The control: a model without background.json needs the IMDB reviews, which the sandbox
    cannot fetch. The message says what, from where, and the alternatives."""
    model = tmp_path / "no-background"
    shutil.copytree(Path(seqshap.__file__).parent / "default_model", model)
    (model / "background.json").unlink()
    r = offline(sandbox, "seqshap", "explain", TEXT, "--model", model)
    assert r.returncode == 1
    message = r.stderr.strip()
    assert "\n" not in message, message  # one line, no traceback
    for part in (
        f"{model} has no background.json",
        "cannot download the IMDB reviews (aclImdb_v1.tar.gz",
        "from https://ai.stanford.edu/",
        "$SEQSHAP_IMDB (or --imdb PATH)",
        "--background-file FILE",
    ):
        assert part in message, f"[{sandbox['mode']}] {message}"


SERVE_CLIENT = r"""
import fcntl, json, socket, struct, subprocess, sys, urllib.request

if sys.argv[1] == "up":  # a fresh network namespace's loopback starts down
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    flags = struct.unpack("16sH", fcntl.ioctl(s, 0x8913, struct.pack("16sH", b"lo", 0))[:18])[1]  # SIOCGIFFLAGS
    fcntl.ioctl(s, 0x8914, struct.pack("16sH", b"lo", flags | 1))  # SIOCSIFFLAGS |= IFF_UP
server = subprocess.Popen(["seqshap", "serve", "--port", "0", "--log-level", "warning"],
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
out = {}
try:
    line = server.stdout.readline()
    if "http://" not in line:
        server.kill()
        raise SystemExit("serve did not start: " + line + server.stderr.read())
    url = line.split("http://", 1)[1].split()[0].rstrip("/")
    direct = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # the proxy variables point nowhere
    out["health"] = json.load(direct.open(f"http://{url}/api/health"))
    out["model"] = json.load(direct.open(f"http://{url}/api/model"))
    body = json.dumps({"text": sys.argv[2]}).encode()
    req = urllib.request.Request(f"http://{url}/api/explain", body, {"Content-Type": "application/json"})
    out["explanation"] = json.load(direct.open(req))
finally:
    server.terminate()
    server.wait()
print(json.dumps(out))
"""


def test_serve_offline_health_and_one_explanation(venv, sandbox):
    up = "up" if sandbox["prefix"] else "as-is"
    r = offline(sandbox, venv / "bin" / "python", "-c", SERVE_CLIENT, up, TEXT)
    assert r.returncode == 0, f"[{sandbox['mode']}] {r.stdout[-2000:]} {r.stderr[-3000:]}"
    d = json.loads(r.stdout)
    assert d["health"]["status"] == "ok"
    assert d["model"]["background"] == "the first 100 IMDB training reviews (default_model/background.json)"
    adds_up(d["explanation"])
    assert d["explanation"]["base_value"] == pytest.approx(0.5802, abs=1e-4)
