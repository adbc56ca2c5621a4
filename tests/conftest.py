"""Shared fixtures: a real S3-compatible server on loopback (moto's standalone server)."""
from __future__ import annotations

import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator

import pytest


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
