"""The entry-point cache: used when nothing changed, rebuilt when a distribution is installed."""
from __future__ import annotations

import marshal
import os
import sys

import portarun._entrypoints as ep


def test_cache_is_written_and_reused(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "ep.marshal"
    monkeypatch.setattr(ep, "_cache_file", lambda: str(cache))
    first = ep.portarun_entry_points({})
    assert {e.name for e in first} >= {"local", "colab", "kaggle", "paperspace"}
    assert marshal.loads(cache.read_bytes())["entry_points"]
    # Reused: a scan would not return this made-up row.
    data = marshal.loads(cache.read_bytes())
    data["entry_points"].append(["fake", "fake.module", "fake-dist", "9.9"])
    cache.write_bytes(marshal.dumps(data))
    assert any(e.name == "fake" for e in ep.portarun_entry_points({}))
    # Turned off: always a real scan.
    assert not any(e.name == "fake" for e in ep.portarun_entry_points({"PORTARUN_ENTRY_POINT_CACHE": "0"}))


def test_installing_something_invalidates_the_cache(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "ep.marshal"
    site = tmp_path / "site"
    site.mkdir()
    monkeypatch.setattr(ep, "_cache_file", lambda: str(cache))
    monkeypatch.setattr(sys, "path", [sys.path[0], str(site), *sys.path[1:]])
    ep.portarun_entry_points({})
    assert not any(e.name == "newhost" for e in ep.portarun_entry_points({}))
    dist = site / "newhost-1.0.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: newhost\nVersion: 1.0\n")
    (dist / "entry_points.txt").write_text("[portarun]\nnewhost = newhost_plugin\n")
    os.utime(site, ns=(1, os.stat(site).st_mtime_ns + 1_000_000_000))  # mtime moves, as an install does
    found = {e.name: e for e in ep.portarun_entry_points({})}
    assert found["newhost"].distribution == "newhost" and found["newhost"].version == "1.0"


def test_unwritable_cache_is_ignored(monkeypatch) -> None:
    monkeypatch.setattr(ep, "_cache_file", lambda: "/proc/portarun-cannot-write/ep.marshal")
    assert {e.name for e in ep.portarun_entry_points({})} >= {"local", "kaggle"}


def test_corrupt_cache_is_rebuilt(tmp_path, monkeypatch) -> None:
    cache = tmp_path / "ep.marshal"
    cache.write_bytes(b"\x00not marshal at all")
    monkeypatch.setattr(ep, "_cache_file", lambda: str(cache))
    assert {e.name for e in ep.portarun_entry_points({})} >= {"local", "kaggle"}
    assert marshal.loads(cache.read_bytes())["format"] == ep._FORMAT
