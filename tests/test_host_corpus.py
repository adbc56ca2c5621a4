"""Detection is right on a corpus of real host fingerprints (tests/fixtures/hosts/*.json).

Every fixture is one observation from public material nobody on this project wrote (an ``!env``
dump in an issue, a notebook printing ``os.environ``, vendor code); its ``source`` says where.
Each runs through ``portarun.testing.simulate`` with exactly what the source shows, and the
answer (provider, paths, accelerator, launcher) must be the one the fixture expects. The format
and the "never invented" rule are in tests/fixtures/hosts/README.md.

``python tests/test_host_corpus.py`` prints the figures table that docs/hosts.md must carry.
"""
from __future__ import annotations

import json
import re
import warnings
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from itertools import takewhile
from pathlib import Path
from typing import Any

import pytest

from portarun.errors import PortarunWarning
from portarun.runtime import Runtime, providers
from portarun.testing import simulate

HERE = Path(__file__).parent
FOLDER = HERE / "fixtures" / "hosts"
DOCS = HERE.parent / "docs" / "hosts.md"
FIXTURES = sorted(FOLDER.glob("*.json"))
PROJECT = "corpus"

_KEYS = {"id", "source", "source_note", "observed", "kind", "env", "env_names_only", "paths", "files",
         "modules", "kernel", "hardware", "expected", "why"}
_REQUIRED = {"id", "source", "source_note", "observed", "kind", "expected"}
_EXPECTED_KEYS = {"provider", "paths", "accelerator", "launcher"}
_ACCELERATORS = {"cuda", "xla", "mps", "cpu"}
_ROLES = {"input", "scratch", "output", "persist", "checkpoints", "cache"}
# repo@<40-hex commit>:path, an https URL, or a file of the code index whose repository the index
# does not name (read it with the read_file tool, id=<digits>).
_SOURCE = re.compile(r"^(https://\S+|[\w.-]+/[\w.-]+@[0-9a-f]{40}:\S+|github-file-id:\d+)$")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")
# Shapes of live credentials: JWTs, GitHub/HF/OpenAI/AWS keys, long hex or base64 blobs.
_SECRET_VALUE = re.compile(
    r"eyJ[\w-]{8,}\.[\w-]{8,}|gh[pousr]_\w{20,}|hf_[A-Za-z]{20,}|sk-[\w-]{20,}|AKIA[0-9A-Z]{16}"
)
# Names of variables that hold a credential (not a path to one, like GOOGLE_APPLICATION_CREDENTIALS).
_SECRET_NAME = re.compile(r"TOKEN|SECRET|PASSWORD|_KEY$|^KEY$|API_KEY")
_HARMLESS = {"", "redacted", "#"}


def _load(path: Path) -> dict[str, Any]:
    data: dict[str, Any] = json.loads(path.read_text(encoding="utf-8"))
    return data


def _env(fx: dict[str, Any]) -> dict[str, str]:
    env = dict(fx.get("env", {}))
    env.update({name: "redacted" for name in fx.get("env_names_only", [])})
    return env


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_fixture_schema(path: Path) -> None:
    fx = _load(path)
    assert set(fx) <= _KEYS, f"unknown keys {set(fx) - _KEYS}"
    assert _REQUIRED <= set(fx), f"missing {_REQUIRED - set(fx)}"
    assert fx["id"] == path.stem
    assert re.fullmatch(r"[a-z0-9]+(-[a-z0-9]+)*", fx["id"])
    assert _SOURCE.match(fx["source"]), f"source must be repo@commit:path, a URL or github-file-id:N: {fx['source']!r}"
    assert fx["source_note"].strip()
    assert fx["observed"] == "unknown" or _DATE.match(fx["observed"])
    assert fx["kind"] in ("positive", "negative")
    expected = fx["expected"]
    assert set(expected) <= _EXPECTED_KEYS and expected.get("provider")
    if fx["kind"] == "negative":
        assert expected["provider"] == "local" and fx["id"].startswith("neg-")
        assert fx.get("why"), "a negative says what makes it a look-alike"
    else:
        assert expected["provider"] != "local" and fx["id"].startswith(expected["provider"].split("-")[0] + "-")
    assert expected.get("accelerator") is None or expected["accelerator"] in _ACCELERATORS
    assert set(expected.get("paths", {})) <= _ROLES
    env = fx.get("env", {})
    names_only = fx.get("env_names_only", [])
    assert all(isinstance(v, str) for v in env.values())
    assert not set(env) & set(names_only), "a variable is either shown with its value or by name only"
    for name, value in env.items():
        assert not _SECRET_VALUE.search(value), f"{name} looks like a live secret"
        if _SECRET_NAME.search(name):
            assert value in _HARMLESS, f"{name}: credentials go in env_names_only or as 'redacted'"
    for p in (*fx.get("paths", []), *fx.get("files", [])):
        assert p.startswith("/"), p
    assert set(fx.get("hardware", {})) <= {"gpus", "tpu", "cpus"}
    assert fx.get("kernel") in (None, True, False)


@contextmanager
def _simulated(fx: dict[str, Any], root: Path) -> Iterator[Runtime]:
    """The runtime ``simulate`` builds from exactly what the fixture shows. Hosts warn about
    real hazards of these sessions (Colab without Drive mounted); the warnings are tested where
    they are made, here only the answer matters."""
    hardware = fx.get("hardware", {})
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", PortarunWarning)
        with simulate(env=_env(fx), paths=fx.get("paths", ()), files=fx.get("files", ()),
                      modules=fx.get("modules", ()), kernel=fx.get("kernel"), gpus=hardware.get("gpus"),
                      tpu=hardware.get("tpu"), cpus=hardware.get("cpus"), root=root, project=PROJECT) as rt:
            yield rt


@pytest.mark.parametrize("path", FIXTURES, ids=[p.stem for p in FIXTURES])
def test_detection_on_real_fingerprint(path: Path, tmp_path: Path) -> None:
    fx = _load(path)
    expected = fx["expected"]
    # A plugin host (sagemaker-training, runpod, ...) that is not installed must not be claimed
    # by a built-in: the answer is then `local`. With the plugins installed it is checked fully.
    want = expected["provider"] if expected["provider"] in providers() else "local"
    with _simulated(fx, tmp_path) as rt:
        assert rt.host.name == want, f"{fx['id']} ({fx['source']}):\n{rt.explain()}"
        if want == expected["provider"]:
            for role, host_path in expected.get("paths", {}).items():
                assert getattr(rt.paths, role) == rt.probe.path(host_path.replace("<project>", PROJECT)), role
        if expected.get("accelerator"):
            assert rt.device.kind == expected["accelerator"]
        if "launcher" in expected:
            assert rt.dist.launcher == expected["launcher"]


@pytest.mark.parametrize("fixture, provider, lacking", [
    # Colab's variable typed by hand on a TPU-node VM: Colab came close, without its session set.
    ("neg-gce-vm-torch-xla-colab-gpu-exported", "colab", "TBE_CREDS_ADDR"),
    # A notebook id in a laptop's shell profile: Gradient came close, without its repo id.
    ("neg-laptop-paperspace-notebook-id-exported", "paperspace", "PAPERSPACE_NOTEBOOK_REPO_ID"),
])
def test_explain_says_what_a_close_provider_lacked(fixture: str, provider: str, lacking: str, tmp_path: Path) -> None:
    with _simulated(_load(FOLDER / f"{fixture}.json"), tmp_path) as rt:
        assert rt.host.name == "local"
        verdict = next(v for v in rt.verdicts if v.provider == provider)
        assert 0.2 <= verdict.confidence < 0.5
        lines = rt.explain().splitlines()
        start = next(i for i, ln in enumerate(lines) if re.match(rf"\s*\*?\d+\. {provider} ", ln))
        block = list(takewhile(lambda ln: not re.match(r"\s*\*?\d+\. ", ln), lines[start + 1:]))
        assert any(ln.strip().startswith("missing:") and lacking in ln for ln in block), block
        from portarun._cli.report import host_section

        entry = next(e for e in host_section(rt)["ranking"] if e["provider"] == provider)
        assert any(lacking in m for m in entry["missing"])


def test_explain_is_silent_about_far_providers(tmp_path: Path) -> None:
    """A provider far below the threshold gets no 'missing' line: it did not come close."""
    with _simulated(_load(FOLDER / "neg-laptop-jupyterlab-kaggle-project.json"), tmp_path) as rt:
        assert "missing:" not in rt.explain()


def test_corpus_size() -> None:
    """Issue-sized corpus: at least 80 observations, at least a third of them negatives."""
    kinds = Counter(_load(p)["kind"] for p in FIXTURES)
    total = sum(kinds.values())
    assert total >= 80, f"{total} fixtures"
    assert kinds["negative"] * 3 >= total, f"{kinds['negative']} negatives of {total}"


def corpus_table() -> str:
    """The figures table of docs/hosts.md, computed from the folder."""
    rows: Counter[tuple[str, str]] = Counter()
    for p in FIXTURES:
        fx = _load(p)
        rows[(fx["expected"]["provider"], fx["kind"])] += 1
    hosts = sorted({h for h, _ in rows}, key=lambda h: (h == "local", h))
    lines = ["| expected answer | positives | negatives | fixtures |", "|---|---|---|---|"]
    for host in hosts:
        pos, neg = rows[(host, "positive")], rows[(host, "negative")]
        lines.append(f"| `{host}` | {pos} | {neg} | {pos + neg} |")
    pos_total = sum(n for (_, k), n in rows.items() if k == "positive")
    neg_total = sum(n for (_, k), n in rows.items() if k == "negative")
    lines.append(f"| **all** | {pos_total} | {neg_total} | {pos_total + neg_total} |")
    return "\n".join(lines)


def test_docs_state_the_corpus_figures() -> None:
    text = DOCS.read_text(encoding="utf-8")
    found = re.search(r"<!-- corpus-figures:start -->\n(.*?)\n<!-- corpus-figures:end -->", text, re.S)
    assert found, "docs/hosts.md lacks the corpus-figures block"
    assert found.group(1).strip() == corpus_table(), "run `python tests/test_host_corpus.py` and paste its table"


if __name__ == "__main__":
    print(corpus_table())
