"""Staging against hostile sources: links out of the source, link loops, special files, a
destination inside the source, names at the filesystem's limit, and a file rewritten while it is
copied. All with real files, links and FIFOs."""
from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest

from portarun import staging
from portarun.errors import PortarunWarning, StagingError


def files_under(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def outside(tmp_path: Path) -> Path:
    secret = tmp_path / "elsewhere"
    (secret / "deep").mkdir(parents=True)
    (secret / "id_rsa").write_text("PRIVATE KEY")
    (secret / "deep" / "more.txt").write_text("more")
    return secret


def test_links_out_of_the_source_are_not_followed(tmp_path: Path, outside: Path) -> None:
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "a.txt").write_text("a")
    (src / "sub" / "b.txt").write_text("b")
    (src / "ssl").symlink_to(outside)                     # a folder outside
    (src / "key").symlink_to(outside / "id_rsa")          # a file outside
    (src / "alias.txt").symlink_to(src / "a.txt")         # inside: followed
    (src / "subalias").symlink_to(src / "sub")            # inside: followed
    with pytest.warns(PortarunWarning, match="4 entries not copied|outside the source") as record:
        result = staging.transfer(src, tmp_path / "copy")
    copied = files_under(tmp_path / "copy")
    assert copied == {"a.txt": b"a", "sub/b.txt": b"b", "alias.txt": b"a", "subalias/b.txt": b"b"}
    assert result.files == 4
    text = " ".join(str(r.message) for r in record)
    assert "ssl" in text and "key" in text and "follow_symlinks=True" in text
    assert "PRIVATE KEY" not in text


def test_follow_symlinks_copies_outside_targets(tmp_path: Path, outside: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    (src / "ext").symlink_to(outside)
    staging.transfer(src, tmp_path / "copy", follow_symlinks=True)
    assert files_under(tmp_path / "copy") == {"ext/id_rsa": b"PRIVATE KEY", "ext/deep/more.txt": b"more"}


@pytest.mark.parametrize("follow", [False, True])
def test_link_loops_and_broken_links_are_cut_with_a_warning(tmp_path: Path, follow: bool) -> None:
    src = tmp_path / "data"
    (src / "d").mkdir(parents=True)
    (src / "d" / "f.txt").write_text("f")
    (src / "d" / "up").symlink_to(src)                    # a loop back to the root
    (src / "self").symlink_to(src / "self")               # ELOOP
    (src / "dangling").symlink_to(tmp_path / "nothing")
    with pytest.warns(PortarunWarning, match="loop") as record:
        staging.transfer(src, tmp_path / "copy", follow_symlinks=follow)
    assert files_under(tmp_path / "copy") == {"d/f.txt": b"f"}
    assert "broken or looping" in str(record[0].message)


def test_special_files_are_skipped_and_never_block(tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    (src / "ok.txt").write_text("ok")
    os.mkfifo(src / "pipe")                               # opening it for reading would block
    (src / "pipe-link").symlink_to(src / "pipe")
    done: list[object] = []
    thread = threading.Thread(target=lambda: done.append(staging.transfer(src, tmp_path / "copy")), daemon=True)
    with pytest.warns(PortarunWarning, match="special file"):
        thread.start()
        thread.join(timeout=30)
    assert done, "staging blocked on a FIFO"
    assert files_under(tmp_path / "copy") == {"ok.txt": b"ok"}


@pytest.mark.parametrize("inside", ["data/copy", "data", "data/sub/deeper"])
def test_a_destination_inside_the_source_is_refused(tmp_path: Path, inside: str) -> None:
    src = tmp_path / "data"
    (src / "sub").mkdir(parents=True)
    (src / "sub" / "x.txt").write_text("x")
    before = files_under(src)
    with pytest.raises(StagingError, match="destination is inside the source"):
        staging.transfer(src, tmp_path / inside)
    assert files_under(src) == before


def test_a_destination_reached_through_a_link_into_the_source_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "data"
    src.mkdir()
    (src / "x.txt").write_text("x")
    (tmp_path / "alias").symlink_to(src)
    with pytest.raises(StagingError, match="inside the source"):
        staging.transfer(src, tmp_path / "alias" / "copy")


def test_a_name_at_the_length_limit_is_staged(tmp_path: Path) -> None:
    name = "n" * 250 + ".bin"  # 254 bytes: legal, but ".<name>.portarun-part" is not
    src = tmp_path / "data"
    src.mkdir()
    (src / name).write_bytes(b"long")
    staging.transfer(src, tmp_path / "copy")
    assert (tmp_path / "copy" / name).read_bytes() == b"long"
    assert [p.name for p in (tmp_path / "copy").iterdir()] == [name]  # no part file left


def test_a_file_rewritten_during_its_copy_is_copied_again(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "data"
    src.mkdir()
    target = src / "grows.bin"
    target.write_bytes(b"old" * 1000)
    real_copy = staging._copy_local
    calls: list[int] = []

    def copy_then_rewrite(a: str, b: str) -> None:
        real_copy(a, b)
        calls.append(1)
        if len(calls) == 1:  # a writer replaces the file right after the first pass read it
            target.write_bytes(b"new" * 2000)

    monkeypatch.setattr(staging, "_copy_local", copy_then_rewrite)
    staging.transfer(src, tmp_path / "copy")
    assert len(calls) == 2
    assert (tmp_path / "copy" / "grows.bin").read_bytes() == b"new" * 2000


def test_a_file_that_never_settles_is_reported_not_mixed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    src = tmp_path / "data"
    src.mkdir()
    target = src / "busy.bin"
    target.write_bytes(b"0")
    real_copy = staging._copy_local

    def copy_then_rewrite(a: str, b: str) -> None:
        real_copy(a, b)
        target.write_bytes(target.read_bytes() + b"1")

    monkeypatch.setattr(staging, "_copy_local", copy_then_rewrite)
    with pytest.raises(StagingError, match="kept changing while being copied"):
        staging.transfer(src, tmp_path / "copy")
    assert not (tmp_path / "copy" / "busy.bin").exists()
    assert not any((tmp_path / "copy").glob(".*portarun-part"))


@pytest.mark.parametrize("workers", [0, -1, 2.5, "4"])
def test_bad_worker_counts_are_clear_errors(tmp_path: Path, workers: object) -> None:
    (tmp_path / "f").write_text("x")
    with pytest.raises(StagingError, match="workers must be"):
        staging.transfer(tmp_path / "f", tmp_path / "g", workers=workers)  # type: ignore[arg-type]


@pytest.mark.parametrize("plant", ["symlink", "fifo"])
def test_a_link_or_fifo_planted_as_the_journal_is_never_written_through(tmp_path: Path, plant: str) -> None:
    import fsspec

    fs = fsspec.filesystem("memory")
    fs.pipe(f"/hostile-{plant}/a.bin", b"remote bytes")
    victim = tmp_path / "victim.txt"
    victim.write_text("keep me")
    journal = tmp_path / "journal.jsonl"
    if plant == "symlink":
        journal.symlink_to(victim)
    else:
        os.mkfifo(journal)
    done: list[object] = []
    worker = threading.Thread(target=lambda: done.append(
        staging.transfer(f"memory://hostile-{plant}", tmp_path / "copy", journal=journal)), daemon=True)
    with pytest.warns(PortarunWarning, match="journal .* cannot be written"):
        worker.start()
        worker.join(timeout=30)
    assert done, "staging blocked on its journal"
    assert victim.read_text() == "keep me"
    assert (tmp_path / "copy" / "a.bin").read_bytes() == b"remote bytes"
