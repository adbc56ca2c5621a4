"""The writer lease: two real processes saving into one folder (local, and on the S3-compatible
server), a lease left by a killed process taken over, an expired lease of another machine
taken over with a warning, a live one refused with a CheckpointLockedError naming its holder,
and the documented ways to take it over."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer  # noqa: E402
from portarun.checkpoint.lock import DEFAULT_LEASE, TAKEOVER_ENV, Holder  # noqa: E402
from portarun.checkpoint.storage import LOCK_FILE  # noqa: E402
from portarun.errors import CheckpointLockedError, PortarunWarning  # noqa: E402

WRITER = Path(__file__).parent / "scripts" / "checkpoint_writer.py"


def _writer(root: str, first: int, last: int, *extra: str) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, str(WRITER), root, str(first), str(last), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _result(child: subprocess.Popen[str]) -> dict[str, object]:
    out, err = child.communicate(timeout=120)
    assert child.returncode == 0, err
    result: dict[str, object] = json.loads(out.strip().splitlines()[0])
    return result


def _plant(root: Path, host: str, pid: int, renewed_ago: float, lease: float = DEFAULT_LEASE) -> None:
    now = time.time()
    root.mkdir(parents=True, exist_ok=True)
    (root / LOCK_FILE).write_bytes(Holder(host, pid, "f" * 32, now - 3600, now - renewed_ago, lease).to_json())


def _both_ready(go: Path, count: int = 2) -> None:
    """Wait until ``count`` writers have imported torch and wait for ``go``, so they really
    save at the same time (a fixed sleep lost that race on a loaded machine)."""
    deadline = time.monotonic() + 120
    while len(list(go.parent.glob(go.name + ".ready.*"))) < count:
        assert time.monotonic() < deadline, "the writer processes did not start"
        time.sleep(0.01)


@pytest.mark.slow  # real subprocesses: run once, not in the host matrix
def test_two_processes_saving_into_one_folder(tmp_path: Path) -> None:
    root, go = tmp_path / "ck", tmp_path / "go"
    children = [_writer(str(root), 1, 30, "--wait", str(go)), _writer(str(root), 101, 130, "--wait", str(go))]
    _both_ready(go)
    go.write_text("")
    results = [_result(c) for c in children]
    winners = [r for r in results if r["error"] is None]
    losers = [r for r in results if r["error"] is not None]
    assert len(winners) == 1 and len(losers) == 1, results
    error = losers[0]["error"]
    assert isinstance(error, dict) and error["type"] == "CheckpointLockedError", error
    message = str(error["message"])
    assert f"pid {winners[0]['pid']} on host {socket.gethostname()!r}" in message
    assert "writing since" in message and "break_lock()" in message and TAKEOVER_ENV in message
    assert losers[0]["saved"] == []  # refused before writing anything
    ck = Checkpointer(root, mode="blocking", handle_signals=False)
    assert [i.step for i in ck.list()] == winners[0]["saved"]
    for info in ck.list():
        assert ck.load(step=info.step)["pid"] == winners[0]["pid"]
    assert not (root / LOCK_FILE).exists()  # the winner released its lease at exit
    assert not [n for n in os.listdir(root) if n.startswith(".tmp-")]


@pytest.mark.slow  # real subprocesses: run once, not in the host matrix
def test_lease_of_a_killed_process_is_taken_over(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    child = _writer(str(root), 1, 1, "--hold")
    line = child.stdout.readline()  # type: ignore[union-attr]
    assert json.loads(line)["saved"] == [1], child.stderr.read() if child.stderr else ""  # type: ignore[union-attr]
    holder = Holder.parse((root / LOCK_FILE).read_bytes())
    assert holder is not None and holder.pid == child.pid
    ck = Checkpointer(root, mode="blocking", keep_last=5, handle_signals=False)
    with pytest.raises(CheckpointLockedError, match=f"pid {child.pid} on host"):
        ck.save({"step": 2}, step=2)  # alive: refused, nothing written
    assert [i.step for i in ck.list()] == [1]
    child.send_signal(signal.SIGKILL)
    child.wait()
    ck.save({"step": 2}, step=2)  # provably dead (same host, no such pid): taken over without a word
    holder = Holder.parse((root / LOCK_FILE).read_bytes())
    assert holder is not None and holder.pid == os.getpid()
    assert [i.step for i in ck.list()] == [1, 2]
    ck.close()
    assert not (root / LOCK_FILE).exists()


def test_expired_lease_of_another_machine_is_taken_over_with_a_warning(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    _plant(root, "other-vm", 4242, renewed_ago=DEFAULT_LEASE + 60)
    ck = Checkpointer(root, mode="blocking", handle_signals=False)
    with pytest.warns(PortarunWarning, match="took over the writer lease.*pid 4242 on host 'other-vm'.*600 s lease"):
        ck.save({"step": 1}, step=1)
    assert ck.load()["step"] == 1


def test_live_lease_of_another_machine_and_the_ways_to_take_it_over(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    root = tmp_path / "ck"
    _plant(root, "other-vm", 4242, renewed_ago=30)
    ck = Checkpointer(root, mode="blocking", handle_signals=False)
    with pytest.raises(CheckpointLockedError, match=r"pid 4242 on host 'other-vm', writing since .* UTC, lease "
                                                    r"renewed 30 s ago"):
        ck.save({"step": 1}, step=1)
    assert ck.list() == [] and sorted(os.listdir(root)) == [LOCK_FILE]
    monkeypatch.setenv(TAKEOVER_ENV, "1")
    with pytest.warns(PortarunWarning, match=f"took over.*other-vm.*{TAKEOVER_ENV} is set"):
        ck.save({"step": 1}, step=1)
    monkeypatch.delenv(TAKEOVER_ENV)
    _plant(root, "other-vm", 4242, renewed_ago=0)  # the other one came back and took it
    with pytest.raises(CheckpointLockedError, match="lost the writer lease.*other-vm"):
        ck.save({"step": 2}, step=2)
    other = Checkpointer(root, mode="blocking", handle_signals=False)
    gone = other.break_lock()
    assert gone is not None and gone.host == "other-vm" and gone.pid == 4242
    other.save({"step": 3}, step=3)
    assert [i.step for i in other.list()] == [1, 3]


def test_two_checkpointers_of_one_process_share_the_lease(tmp_path: Path) -> None:
    first = Checkpointer(tmp_path, mode="thread", handle_signals=False)
    second = Checkpointer(tmp_path, mode="blocking", handle_signals=False)
    first.save({"step": 1}, step=1)
    first.wait()
    second.save({"step": 2}, step=2)  # a notebook cell run twice: not another writer
    first.save({"step": 3}, step=3)
    first.wait()
    assert [i.step for i in second.list()] == [1, 2, 3]


def test_lease_on_an_object_store_memory_filesystem() -> None:
    from fsspec.implementations.memory import MemoryFileSystem

    root = f"memory://lease-{time.monotonic_ns()}/run"
    fs = MemoryFileSystem()
    path = root[len("memory://"):]
    now = time.time()
    fs.pipe_file(f"{path}/{LOCK_FILE}", Holder("other-vm", 7, "a" * 32, now - 100, now - 5, 600.0).to_json())
    ck = Checkpointer(root, mode="blocking", handle_signals=False)
    with pytest.raises(CheckpointLockedError, match="pid 7 on host 'other-vm'"):
        ck.save({"step": 1}, step=1)
    assert ck.list() == []
    ck.break_lock()
    ck.save({"step": 1}, step=1)
    assert Holder.parse(fs.cat_file(f"{path}/{LOCK_FILE}")).pid == os.getpid()  # type: ignore[union-attr]
    ck.close()
    assert not fs.exists(f"{path}/{LOCK_FILE}")


@pytest.mark.slow  # real subprocesses: run once, not in the host matrix
def test_two_processes_on_the_s3_server(s3: object, tmp_path: Path) -> None:
    bucket = s3.test_bucket  # type: ignore[attr-defined]
    root = f"s3://{bucket}/run"
    ck = Checkpointer(root, mode="blocking", staging=tmp_path / "staging", handle_signals=False)
    ck.save({"w": torch.ones(10), "step": 1}, step=1)  # this process holds the lease
    child = _writer(root, 2, 2, "--staging", str(tmp_path / "other-staging"))
    result = _result(child)  # AWS_* variables point the child's s3fs at the same server
    assert result["saved"] == [] and isinstance(result["error"], dict), result
    assert result["error"]["type"] == "CheckpointLockedError"
    assert f"pid {os.getpid()}" in result["error"]["message"]
    # the conditional create itself: a second create of the lease object is refused by the server
    assert not ck.storage.lock_create(b"{}")
    ck.close()
    assert ck.storage.lock_create(b"{}")  # released: creatable again
    ck.storage.lock_remove()
    child = _writer(root, 2, 2, "--staging", str(tmp_path / "other-staging"))
    assert _result(child)["saved"] == [2]
    s3.invalidate_cache()  # type: ignore[attr-defined]
    assert [i.step for i in ck.list()] == [1, 2]


@pytest.mark.parametrize("planted", ["link", "fifo", "garbage"])
def test_a_planted_lease_file_is_replaced_never_followed(tmp_path: Path, planted: str) -> None:
    root, outside = tmp_path / "ck", tmp_path / "outside.txt"
    root.mkdir()
    outside.write_text("keep me")
    lease = root / LOCK_FILE
    if planted == "link":
        lease.symlink_to(outside)
    elif planted == "fifo":
        os.mkfifo(lease)
    else:
        lease.write_bytes(b'{"format": "portarun-writer-lease/1", "pid": NaN}')
    ck = Checkpointer(root, mode="blocking", handle_signals=False)
    with pytest.warns(PortarunWarning, match="took over the writer lease.*unreadable"):
        ck.save({"step": 1}, step=1)
    assert outside.read_text() == "keep me"
    holder = Holder.parse(lease.read_bytes())
    assert holder is not None and holder.pid == os.getpid() and not lease.is_symlink()


@pytest.mark.parametrize("lease", [0, -1.0, float("nan"), float("inf"), True, "600", 8 * 24 * 3600])
def test_lease_length_must_be_a_positive_finite_duration(tmp_path: Path, lease: object) -> None:
    from portarun.errors import CheckpointError

    with pytest.raises(CheckpointError, match="lease must be"):
        Checkpointer(tmp_path, lease=lease)  # type: ignore[arg-type]


def test_a_dead_pid_of_another_boot_with_this_host_name_is_not_proof(tmp_path: Path) -> None:
    """Two VMs or containers may share a host name; a pid is only looked up when the boot id
    matches too."""
    root = tmp_path / "ck"
    root.mkdir()
    now = time.time()
    child = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    dead = int(child.stdout)  # a pid that no longer runs here
    (root / LOCK_FILE).write_bytes(Holder(socket.gethostname(), dead, "e" * 32, now - 60, now - 5, DEFAULT_LEASE,
                                          boot="another-boot").to_json())
    ck = Checkpointer(root, mode="blocking", handle_signals=False)
    with pytest.raises(CheckpointLockedError, match=f"pid {dead} on host"):
        ck.save({"step": 1}, step=1)
