"""Disk full: a clear StorageFullError, previous checkpoints intact, partial files removed.

On a real 2 MiB tmpfs mounted in a private mount namespace (``unshare -m``, root only), and
always on an fsspec filesystem that refuses writes past a byte budget (remote targets)."""
from __future__ import annotations

import errno
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

torch = pytest.importorskip("torch")
fsspec = pytest.importorskip("fsspec")

from fsspec.implementations.memory import MemoryFileSystem  # noqa: E402

from portarun.checkpoint import Checkpointer  # noqa: E402
from portarun.errors import StorageFullError  # noqa: E402

SCRIPT = Path(__file__).parent / "scripts" / "checkpoint_enospc.py"


def _can_mount_tmpfs() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


@pytest.mark.slow
def test_enospc_on_small_tmpfs(tmp_path: Path) -> None:
    if not _can_mount_tmpfs():
        pytest.skip("mounting a tmpfs needs root and unshare; the byte-budget test below covers ENOSPC")
    mountpoint = tmp_path / "tiny"
    mountpoint.mkdir()
    command = ['unshare', '-m', 'sh', '-c', 'mount -t tmpfs -o size=2m tmpfs "$1" && exec "$2" "$3" "$1" "$4"',
               "sh", str(mountpoint), sys.executable, str(SCRIPT), "fork,thread,blocking"]
    out = subprocess.run(command, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    results = [json.loads(line) for line in out.stdout.strip().splitlines()]
    assert len(results) == 3
    for result in results:
        assert result["error"] and "no space left" in result["error"]
        assert "previous checkpoints are intact" in result["error"]
        assert 2 <= len(result["saved"]) <= 5  # 400 KB each on 2 MiB
        assert result["listed"] == result["saved"] and all(result["intact"])
        assert result["entries"] == [f"step-{s:09d}" for s in result["saved"]]  # no temp files left


class BudgetFileSystem(MemoryFileSystem):  # type: ignore[misc]
    """An in-memory filesystem that fails with ENOSPC once ``budget`` bytes are stored, like a
    bucket or mount at its quota; whatever it refuses is half-written, as on a real disk."""

    protocol = "budgetmem"
    store: dict[str, Any] = {}
    pseudo_dirs = [""]
    budget = 0

    def _used(self) -> int:
        return sum(len(f.getbuffer()) for f in self.store.values())

    def pipe_file(self, path: str, value: bytes, *args: Any, **kwargs: Any) -> None:
        room = self.budget - self._used()
        if len(value) > room:
            super().pipe_file(path, value[:max(room, 0)])
            raise OSError(errno.ENOSPC, "No space left on device", path)
        super().pipe_file(path, value, *args, **kwargs)

    def put_file(self, lpath: str, rpath: str, callback: Any = None, **kwargs: Any) -> None:
        self.pipe_file(rpath, Path(lpath).read_bytes())


def test_enospc_on_remote_byte_budget(tmp_path: Path) -> None:
    fsspec.register_implementation("budgetmem", BudgetFileSystem, clobber=True)
    BudgetFileSystem.store.clear()
    BudgetFileSystem.budget = 1_000_000
    ck = Checkpointer("budgetmem://bucket/run", keep_last=10, mode="thread", staging=tmp_path / "staging",
                      handle_signals=False)
    ck.save({"w": torch.ones(100_000), "step": 1}, step=1)  # ~400 KB
    ck.save({"w": torch.ones(100_000), "step": 2}, step=2)
    ck.wait()
    with pytest.raises(StorageFullError,
                       match="no space left.*budgetmem://bucket/run.*previous checkpoints are intact"):
        ck.save({"w": torch.ones(100_000), "step": 3}, step=3)
        ck.wait()
    assert [i.step for i in ck.list()] == [1, 2]
    assert [ck.load(step=s)["step"] for s in (1, 2)] == [1, 2]
    ck.close()  # releases the writer lease, so the bucket holds checkpoints only
    assert (sorted(k.rsplit("/", 2)[-2] for k in BudgetFileSystem.store)
            == ["step-000000001"] * 2 + ["step-000000002"] * 2)
    assert os.listdir(tmp_path / "staging") == []
    BudgetFileSystem.budget = 10_000_000  # space freed: saving works again
    ck.save({"w": torch.ones(100_000), "step": 3}, step=3, blocking=True)
    assert ck.latest().step == 3
