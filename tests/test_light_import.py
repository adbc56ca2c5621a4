"""`import portarun` and `portarun.detect()` never import torch, torch_xla or IPython — checked in
a fresh interpreter, where nothing else could have imported them first."""
from __future__ import annotations

import json
import subprocess
import sys

HEAVY = ("torch", "torch_xla", "IPython", "numpy", "pandas", "tqdm", "s3fs")


def _imported_after(code: str) -> list[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps([m for m in {HEAVY!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_import_and_detect_stay_light() -> None:
    assert _imported_after("import portarun; rt = portarun.detect(); rt.explain()") == []


def test_simulated_detection_stays_light() -> None:
    assert _imported_after("from portarun.testing import simulate\nwith simulate('kaggle') as rt: rt.explain()") == []


def test_info_report_stays_light() -> None:
    assert _imported_after("import portarun._cli.report as r, portarun; r.build(portarun.detect())") == []


def test_plain_import_loads_neither_typing_nor_pluggy() -> None:
    """`import portarun` alone (say, for ``__version__``) stays cheaper than `typing`; pluggy and
    the plugins load at the first ``detect()``."""
    script = ("import sys, portarun\n"
              "print(sorted(m for m in ('typing', 'pluggy', 'portarun.runtime') if m in sys.modules))")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


def _modules_after(code: str, names: tuple[str, ...]) -> list[str]:
    script = f"import sys, json\n{code}\nprint(json.dumps([m for m in {names!r} if m in sys.modules]))"
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    return list(json.loads(proc.stdout.strip().splitlines()[-1]))


def test_detection_skips_hashlib() -> None:
    """The project's folder name hashes a path with SHA-256: through the interpreter's built-in
    SHA-256, since hashlib loads OpenSSL (about 2 ms, most of a bare interpreter start's tenth)."""
    assert _modules_after("import portarun; portarun.detect()", ("hashlib",)) == []


def test_hosted_detection_skips_platformdirs() -> None:
    """Only the local provider's folders come from platformdirs (with tempfile, shutil, random:
    about 4 ms); a hosted platform's detection never imports it."""
    code = "from portarun.testing import simulate\nwith simulate('kaggle') as rt: rt.paths, rt.session"
    assert _modules_after(code, ("platformdirs", "hashlib")) == []
