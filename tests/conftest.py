"""Shared fixtures: a hermetic home for the whole run, and a real S3-compatible server on
loopback (moto's standalone server)."""
from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

# Hermetic: the suite (and every subprocess it starts) sees a temporary HOME and XDG folders,
# set before any test module imports portarun or platformdirs. At the end the real user's
# folders are compared with how they were, and any change fails the run.
_REAL_HOME = Path(os.path.expanduser("~"))
_XDG = ("XDG_DATA_HOME", "XDG_CACHE_HOME", "XDG_CONFIG_HOME", "XDG_STATE_HOME")
_WATCHED = [_REAL_HOME / sub / "portarun" for sub in (".local/share", ".cache", ".config", ".local/state")]
_FAKE_HOME = Path(tempfile.mkdtemp(prefix="portarun-tests-home-"))


def _snapshot() -> set[str]:
    """What the real user's folders hold: HOME's and the working folder's entries, and
    everything under portarun's user folders."""
    seen: set[str] = set()
    for top in (_REAL_HOME, Path.cwd()):
        try:
            seen.update(str(top / name) for name in os.listdir(top))
        except OSError:
            pass
    for folder in _WATCHED:
        for dirpath, dirnames, filenames in os.walk(folder):
            seen.update(os.path.join(dirpath, n) for n in (*dirnames, *filenames))
    return seen


_BEFORE = _snapshot()
os.environ["HOME"] = str(_FAKE_HOME / "home")
for _var in _XDG:
    os.environ[_var] = str(_FAKE_HOME / _var.lower())
(_FAKE_HOME / "home").mkdir()


@pytest.fixture(autouse=True)
def _environment_restored() -> Iterator[None]:
    """Each test starts with the environment the previous one started with: code under test may
    set variables for the rest of its process (``PJRT_DEVICE`` before importing torch_xla, say),
    which must not leak into later tests."""
    saved = dict(os.environ)
    yield
    if dict(os.environ) != saved:
        os.environ.clear()
        os.environ.update(saved)


@pytest.fixture(autouse=True)
def _hosts_marker_is_honest(request: pytest.FixtureRequest) -> Iterator[None]:
    """A test that calls ``portarun.detect()`` on the session's host (this machine, or the
    ``--portarun-host`` simulation) instead of simulating its own must say so with the ``hosts``
    marker (it then runs in the host matrix) or ``real_machine``; every other test simulates
    its host, so the matrix would only repeat it."""
    from portarun._plugins.state import STATE

    depth = STATE.simulation_depth()
    STATE.cache.clear()  # the session's runtimes: detected again if this test asks
    yield
    marked = {m.name for m in request.node.iter_markers()} & {"hosts", "real_machine"}
    if STATE.simulation_depth() == depth and STATE.cache and not marked:
        STATE.cache.clear()
        pytest.fail("this test called portarun.detect() on the session's host without simulating its own: mark it "
                    "@pytest.mark.hosts (it then also runs as if on each host) or wrap it in simulate(...)",
                    pytrace=False)


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    written = sorted(_snapshot() - _BEFORE)
    shutil.rmtree(_FAKE_HOME, ignore_errors=True)
    if written:
        writer = session.config.get_terminal_writer()
        writer.line()
        writer.line(
            "the test run wrote into the real user's folders (tests must stay in temporary ones):\n  "
            + "\n  ".join(written[:20]), red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def s3_server() -> Iterator[str]:
    """Start ``moto.server`` on 127.0.0.1 for the session; yields its endpoint URL and stops it.
    Use :func:`s3_storage_options` (or the ``s3`` fixture) to reach it with s3fs."""
    pytest.importorskip("moto.server", reason="moto[server] is in the test requirements")
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            urllib.request.urlopen(url + "/moto-api/", timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError(f"moto server did not start on {url}")
            time.sleep(0.2)
    try:
        yield url
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def s3_storage_options(endpoint: str) -> dict[str, object]:
    """fsspec/s3fs options for the loopback server (dummy credentials, path-style addressing)."""
    return {"key": "testing", "secret": "testing", "client_kwargs": {"endpoint_url": endpoint}}


@pytest.fixture
def s3(s3_server: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[object]:
    """An ``s3fs.S3FileSystem`` on the loopback server with a fresh bucket; yields the filesystem.
    The bucket's name is ``fs.test_bucket``. Environment credentials point at the server too, so
    plain ``s3://`` URLs opened through fsspec reach it."""
    s3fs = pytest.importorskip("s3fs")
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "testing")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "testing")
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("AWS_ENDPOINT_URL", s3_server)
    s3fs.S3FileSystem.clear_instance_cache()
    fs = s3fs.S3FileSystem(**s3_storage_options(s3_server))
    bucket = f"test-{time.monotonic_ns()}"
    fs.mkdir(bucket)
    fs.test_bucket = bucket
    yield fs
    s3fs.S3FileSystem.clear_instance_cache()
