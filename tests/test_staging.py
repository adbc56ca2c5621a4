"""rt.stage / rt.stage_out: real files, the real loopback S3 server, a real subprocess killed
mid-copy and resumed, a real tiny tmpfs for the free-space warning."""
from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pytest

from portarun import staging
from portarun.errors import PortarunWarning, StagingError
from portarun.hosts.kaggle import KaggleProvider
from portarun.provider import Quota
from portarun.testing import simulate


def make_tree(root: Path, files: int = 20, size: int = 3000, big: int = 0) -> dict[str, bytes]:
    """A folder of ``files`` small files in nested folders plus one ``big``-byte file."""
    contents = {}
    for i in range(files):
        rel = f"part{i % 3}/sub{i % 2}/file{i:04d}.bin"
        contents[rel] = hashlib.sha256(str(i).encode()).digest() * (size // 32) + bytes([i % 256])
    if big:
        contents["large.bin"] = os.urandom(big)
    for rel, data in contents.items():
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        (root / rel).write_bytes(data)
    return contents


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


def test_stage_local_folder_to_scratch_and_resume(tmp_path):
    src = tmp_path / "data"
    contents = make_tree(src, files=30, big=5 * 1024 * 1024)
    with simulate("local", root=tmp_path / "host") as rt:
        first = rt.stage(src)
        assert Path(first) == Path(rt.paths.scratch) / "data"
        assert tree(Path(first)) == contents
        assert (first.files, first.copied, first.skipped) == (31, 31, 0)
        assert first.bytes_copied == sum(len(v) for v in contents.values())
        again = rt.stage(src)
        assert (again.copied, again.skipped, again.bytes_copied) == (0, 31, 0)
        assert "31 already present" not in first.summary() and "31 already present" in again.summary()


def test_same_size_but_different_bytes_is_copied_again(tmp_path):
    src = tmp_path / "data"
    make_tree(src, files=5)
    with simulate("local", root=tmp_path / "host") as rt:
        dest = Path(rt.stage(src))
        victim = dest / "part0/sub0/file0000.bin"
        victim.write_bytes(b"x" * victim.stat().st_size)  # corrupted copy, same size
        changed = src / "part1/sub1/file0001.bin"
        changed.write_bytes(b"y" * changed.stat().st_size)  # source changed, same size
        result = rt.stage(src)
        assert (result.copied, result.skipped) == (2, 3)
        assert tree(dest) == tree(src)


def test_single_file_and_explicit_destination(tmp_path):
    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(10_000))
    with simulate("local", root=tmp_path / "host") as rt:
        result = rt.stage(src, to=tmp_path / "fast" / "w.bin")
        assert result.path == tmp_path / "fast" / "w.bin" and result.files == 1
        assert (tmp_path / "fast" / "w.bin").read_bytes() == src.read_bytes()
        assert rt.stage(src, to=tmp_path / "fast" / "w.bin").skipped == 1


def test_summary_is_logged(tmp_path, caplog):
    src = tmp_path / "d"
    make_tree(src, files=3)
    with simulate("local", root=tmp_path / "host") as rt, caplog.at_level(logging.INFO, "portarun.staging"):
        rt.stage(src)
    assert "staged 3 of 3 files" in caplog.text


def test_missing_source_is_a_clear_error(tmp_path):
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(StagingError, match="does not exist"):
            rt.stage(tmp_path / "nope")


def test_failed_files_are_listed_and_the_rest_copied(tmp_path):
    src = tmp_path / "d"
    contents = make_tree(src, files=6)
    dest = tmp_path / "out"
    (dest / "part1").mkdir(parents=True)
    (dest / "part1" / "sub0").write_text("a file where a folder must go")
    with simulate("local", root=tmp_path / "host") as rt:
        with pytest.raises(StagingError) as info:
            rt.stage(src, to=dest)
    assert "1 of 6 files could not be copied" in str(info.value) and "part1/sub0/file0004.bin" in str(info.value)
    assert {k: v for k, v in tree(dest).items() if k.endswith(".bin")} == {
        k: v for k, v in contents.items() if not k.startswith("part1/sub0")}


def test_quota_warning_before_writing(tmp_path, monkeypatch):
    src = tmp_path / "d"
    make_tree(src, files=4, size=1000)
    monkeypatch.setattr(KaggleProvider, "quotas", lambda self: {"/kaggle/working": Quota(3000, "test quota")})
    with simulate("kaggle", root=tmp_path / "host") as rt:
        with pytest.warns(PortarunWarning, match="past its 2.9 KiB limit"):
            rt.stage(src, to="output")
        rt.stage(src, to="scratch")  # /kaggle/temp is outside the quota: no warning


def test_kaggle_working_quota_is_20_gb():
    with simulate("kaggle") as rt:
        ((folder, (limit, why)),) = rt.provider.quotas().items()
    assert (folder, limit) == ("/kaggle/working", 20 * 10**9) and "20 GB" in why


@pytest.mark.skipif(os.geteuid() != 0 or shutil.which("unshare") is None, reason="needs root and unshare for a tmpfs")
def test_free_space_warning_on_a_real_tiny_disk(tmp_path):
    src = tmp_path / "d"
    make_tree(src, files=2, big=2 * 1024 * 1024)
    mnt = tmp_path / "tiny"
    mnt.mkdir()
    code = textwrap.dedent(f"""
        import warnings, portarun
        from portarun.errors import PortarunWarning
        rt = portarun.detect()
        with warnings.catch_warnings(record=True) as seen:
            warnings.simplefilter("always")
            try:
                rt.stage({str(src)!r}, to={str(mnt / "copy")!r})
            except portarun.errors.StagingError as exc:
                print("STAGING ERROR", exc)
        print([str(w.message) for w in seen if issubclass(w.category, PortarunWarning)])
    """)
    script = tmp_path / "fill.py"
    script.write_text(code)
    env = {**os.environ, "PORTARUN_CACHE_DIR": str(tmp_path), "PORTARUN_PROGRESS": "0"}
    out = subprocess.run(["unshare", "-m", "sh", "-c", f"mount -t tmpfs -o size=1m tmpfs {mnt} && "
                          f"{sys.executable} {script}"], env=env, capture_output=True, text=True, timeout=120)
    if "mount" in out.stderr and out.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {out.stderr.strip()}")
    assert "only 1.0 MiB is free" in out.stdout, out.stdout + out.stderr
    assert "STAGING ERROR" in out.stdout and "large.bin" in out.stdout  # the disk really filled up


# -- remote sources and destinations: the loopback S3 server ----------------------------------
def upload_tree(s3, prefix: str, contents: dict[str, bytes]) -> str:
    s3.pipe({f"{s3.test_bucket}/{prefix}/{rel}": data for rel, data in contents.items()})
    return f"s3://{s3.test_bucket}/{prefix}"


def test_stage_from_s3_and_resume(tmp_path, s3):
    contents = make_tree(tmp_path / "src", files=40, big=6 * 1024 * 1024)
    url = upload_tree(s3, "dataset", contents)
    with simulate("local", root=tmp_path / "host") as rt:
        first = rt.stage(url)
        assert Path(first) == Path(rt.paths.scratch) / "dataset"
        assert tree(Path(first)) == contents and first.copied == 41
        again = rt.stage(url)
        assert (again.copied, again.skipped) == (0, 41)
        s3.pipe_file(f"{s3.test_bucket}/dataset/part0/sub0/file0000.bin",
                     b"z" * len(contents["part0/sub0/file0000.bin"]))
        (Path(first) / "part1/sub1/file0001.bin").write_bytes(b"q" * len(contents["part1/sub1/file0001.bin"]))
        third = rt.stage(url)
        assert (third.copied, third.skipped) == (2, 39)
        assert tree(Path(first))["part0/sub0/file0000.bin"].startswith(b"zzz")
        assert tree(Path(first))["part1/sub1/file0001.bin"] == contents["part1/sub1/file0001.bin"]


def test_stage_out_to_a_bucket_and_resume(tmp_path, s3):
    results = tmp_path / "run1"
    contents = make_tree(results, files=10, big=5 * 1024 * 1024)
    persist = f"s3://{s3.test_bucket}/persist"
    with simulate("local", root=tmp_path / "host", env={"PORTARUN_PERSIST_DIR": persist}) as rt:
        out = rt.stage_out(results)
        assert out.path == f"{persist}/run1" and out.copied == 11
        for rel, data in contents.items():
            assert s3.cat_file(f"{s3.test_bucket}/persist/run1/{rel}") == data
        again = rt.stage_out(results)
        assert (again.copied, again.skipped) == (0, 11)
        (results / "part0/sub0/file0000.bin").write_bytes(b"n" * len(contents["part0/sub0/file0000.bin"]))
        assert rt.stage_out(results).copied == 1


def test_storage_options_reach_the_remote_side(tmp_path, s3, s3_server, monkeypatch):
    contents = make_tree(tmp_path / "src", files=3)
    url = upload_tree(s3, "opts", contents)
    monkeypatch.delenv("AWS_ENDPOINT_URL")  # only the explicit options know the server now
    import s3fs

    s3fs.S3FileSystem.clear_instance_cache()
    with simulate("local", root=tmp_path / "host") as rt:
        result = rt.stage(url, storage_options={"key": "testing", "secret": "testing",
                                                "client_kwargs": {"endpoint_url": s3_server}})
    assert tree(Path(result)) == contents


@pytest.mark.slow
def test_killed_mid_stage_then_resumed(tmp_path, s3, s3_server):
    """A real subprocess staging from S3 is SIGKILLed part-way; the next call copies only
    what is missing, and no partial file is left visible."""
    contents = make_tree(tmp_path / "src", files=400, size=2000)
    url = upload_tree(s3, "many", contents)
    dest = tmp_path / "dest"
    journal = tmp_path / "journal.jsonl"
    code = ("from portarun import staging; "
            f"staging.transfer({url!r}, {str(dest)!r}, journal={str(journal)!r}, workers=2)")
    env = {**os.environ, "PORTARUN_PROGRESS": "0"}
    proc = subprocess.Popen([sys.executable, "-c", code], env=env, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while sum(1 for p in dest.rglob("*.bin")) < 40:
        assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
        assert time.monotonic() < deadline, "staging made no progress"
        time.sleep(0.01)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=10)
    done_before = sum(1 for p in dest.rglob("*.bin"))
    assert proc.returncode == -signal.SIGKILL and done_before < len(contents)
    result = staging.transfer(url, dest, journal=journal)
    assert result.skipped >= done_before - 2  # at most the files in flight lacked a journal line
    assert result.copied + result.skipped == len(contents) and result.copied < len(contents)
    assert tree(dest) == contents  # everything there, byte for byte, and no .portarun-part left
