"""Hostile input and faults against checkpoints: tampered files, malformed manifests, special
files and links planted in the folder, out-of-range numbers, SIGKILL during promotion, a
read-only folder and a full disk. Whatever happens, a bad checkpoint is skipped with one
PortarunWarning for the previous good one, nothing blocks, and every error is a PortarunError."""
from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")

from portarun.checkpoint import Checkpointer, SavePolicy, training_state  # noqa: E402
from portarun.checkpoint.manifest import MANIFEST, STATE_FILE  # noqa: E402
from portarun.checkpoint.writer import write_state  # noqa: E402
from portarun.errors import CheckpointError, CorruptCheckpointError, PortarunWarning  # noqa: E402

WRITER = Path(__file__).parent / "scripts" / "checkpoint_writer.py"


@contextmanager
def deadline(seconds: int) -> Iterator[None]:
    """Fail (instead of hanging the suite) when the body blocks longer than ``seconds``."""
    def expired(signum: int, frame: object) -> None:
        raise TimeoutError(f"blocked for more than {seconds} s")

    previous = signal.signal(signal.SIGALRM, expired)
    signal.alarm(seconds)
    try:
        yield
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, previous)


def _two_checkpoints(root: Path) -> Checkpointer:
    ck = Checkpointer(root, mode="blocking", keep_last=10, handle_signals=False)
    ck.save({"w": torch.full((64,), 1.0), "step": 1}, step=1)
    ck.save({"w": torch.full((64,), 2.0), "step": 2}, step=2)
    return ck


def _fresh(root: Path) -> Checkpointer:
    return Checkpointer(root, mode="blocking", keep_last=10, handle_signals=False)


def _portarun_warnings(body: Callable[[], object]) -> tuple[object, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        result = body()
    assert all(issubclass(w.category, PortarunWarning) for w in caught), [str(w.message) for w in caught]
    return result, [str(w.message) for w in caught]


# -- CRC before unpickling ---------------------------------------------------------------------

class _Planted:
    """Unpickling this runs os.mkdir(path): evidence that code from the file ran."""

    def __init__(self, path: str) -> None:
        self.path = path

    def __reduce__(self) -> tuple[object, tuple[str]]:
        return (os.mkdir, (self.path,))


def test_crc_is_checked_before_any_unpickling(tmp_path: Path) -> None:
    root, marker = tmp_path / "ck", tmp_path / "code-ran"
    ck = Checkpointer(root, mode="blocking", keep_last=10, handle_signals=False)
    ck.save({"obj": Path("/one"), "pad": "a" * 500}, step=1, weights_only=False)
    ck.save({"obj": Path("/two"), "pad": "a" * 500}, step=2, weights_only=False)
    target = root / "step-000000002" / STATE_FILE
    size = target.stat().st_size
    for pad in range(0, 1500):  # a tampered file of exactly the recorded size: only the CRC differs
        write_state({"obj": _Planted(str(marker)), "pad": "b" * pad}, tmp_path / "evil.pt", show_progress=False)
        if (tmp_path / "evil.pt").stat().st_size == size:
            break
    else:
        pytest.fail("could not build a same-size tampered file")
    shutil.copyfile(tmp_path / "evil.pt", target)
    with pytest.warns(PortarunWarning, match="step-000000002.*CRC-32"):
        assert ck.load(weights_only=False)["obj"] == Path("/one")
    with pytest.raises(CorruptCheckpointError, match="CRC-32"):
        ck.load(step=2, weights_only=False)
    assert not marker.exists(), "code in a file that fails its CRC-32 was run"


# -- one manifest reader that validates everything ---------------------------------------------

def test_every_single_bit_flip_of_a_manifest_is_skipped_or_harmless(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    _two_checkpoints(root)
    path = root / "step-000000002" / MANIFEST
    original = path.read_bytes()
    outcomes = {1: 0, 2: 0}
    for index in range(len(original) * 8):
        flipped = bytearray(original)
        flipped[index // 8] ^= 1 << (index % 8)
        path.write_bytes(bytes(flipped))
        ck = _fresh(root)

        def body() -> object:
            listed = [i.step for i in ck.list()]
            state = ck.load(map_location="cpu")
            return listed, state

        (listed, state), messages = _portarun_warnings(body)  # type: ignore[misc]
        assert state["step"] in (1, 2) and torch.equal(state["w"], torch.full((64,), float(state["step"])))
        assert len(messages) <= 1, (index, messages)
        if state["step"] == 1:
            assert messages and "step-000000002" in messages[0], (index, messages)
        outcomes[state["step"]] += 1
    path.write_bytes(original)
    assert outcomes[1] > len(original)  # most flips break the manifest, and each was skipped


def _nested(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def _edit(key: str, value: object) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        data = json.loads((folder / MANIFEST).read_text())
        if key == "drop-file":
            data["files"] = {}
        else:
            data[key] = value
        (folder / MANIFEST).write_text(json.dumps(data))
    return apply


def _replace(make: Callable[[Path], None]) -> Callable[[Path], None]:
    def apply(folder: Path) -> None:
        (folder / MANIFEST).unlink()
        make(folder / MANIFEST)
    return apply


HOSTILE_MANIFESTS: dict[str, Callable[[Path], None]] = {
    "missing file entry": _edit("drop-file", None),
    "saved_at 1e20": _edit("saved_at", 1e20),
    "saved_at NaN": _edit("saved_at", math.nan),
    "saved_at infinite": _edit("saved_at", math.inf),
    "step -1": _edit("step", -1),
    "step 2**70": _edit("step", 2**70),
    "step not the folder's": _edit("step", 7),
    "step a float": _edit("step", 2.5),
    "world_size 0": _edit("world_size", 0),
    "metrics not a dict": _edit("metrics", [1, 2]),
    "metric NaN": _edit("metrics", {"loss": math.nan}),
    "unknown kind": _edit("kind", "pickle"),
    "nested 200k deep": _replace(lambda p: p.write_bytes(_nested(200_000))),
    "huge": _replace(lambda p: p.write_bytes(b'{"pad": "' + b"x" * (64 << 20) + b'"}')),
    "not UTF-8": _replace(lambda p: p.write_bytes(b"\xff\xfe{}")),
    "a FIFO": _replace(lambda p: os.mkfifo(p)),
    "a link to /dev/zero": _replace(lambda p: p.symlink_to("/dev/zero")),
    "a folder": _replace(lambda p: p.mkdir()),
}


@pytest.mark.parametrize("attack", list(HOSTILE_MANIFESTS))
def test_hostile_manifest_is_skipped_with_one_warning(tmp_path: Path, attack: str) -> None:
    root = tmp_path / "ck"
    _two_checkpoints(root)
    HOSTILE_MANIFESTS[attack](root / "step-000000002")
    ck = _fresh(root)
    with deadline(30):
        listed, messages = _portarun_warnings(lambda: [i.step for i in ck.list()])
        assert listed == [1]
        assert len(messages) == 1 and "step-000000002" in messages[0] and "manifest" in messages[0], messages
        (state, more) = _portarun_warnings(lambda: ck.load(map_location="cpu"))
        assert state["step"] == 1 and more == []  # warned once per checkpointer, not on every call  # type: ignore[index]
        assert _portarun_warnings(lambda: ck.latest())[0].step == 1  # type: ignore[union-attr]
        model = torch.nn.Linear(4, 2)
        ck.save(training_state(model), step=3)
        again = _fresh(root)
        _, messages = _portarun_warnings(lambda: again.resume(model))
        # a folder without a manifest *file* is an interrupted save: the save above removed it
        assert len(messages) == (0 if attack == "a folder" else 1), messages
        assert [i.step for i in _portarun_warnings(again.list)[0]] == [1, 3]  # type: ignore[attr-defined]


def test_newer_format_is_skipped_with_a_warning_to_upgrade(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    _two_checkpoints(root)
    _edit("format", "portarun-checkpoint/2")(root / "step-000000002")
    ck = _fresh(root)
    with pytest.warns(PortarunWarning, match=r"step-000000002.*portarun-checkpoint/2.*upgrade portarun"):
        assert [i.step for i in ck.list()] == [1]
    assert ck.load()["step"] == 1


# -- links and special files planted in the folder ---------------------------------------------

def test_planted_links_and_special_files_are_never_followed(tmp_path: Path) -> None:
    root, outside = tmp_path / "ck", tmp_path / "outside"
    ck = _two_checkpoints(root)
    shutil.copytree(root / "step-000000001", outside / "step-000000001")
    (root / "step-000000009").symlink_to(outside / "step-000000001")  # a checkpoint name pointing away
    (root / ".tmp-step-000000005-host-1-abcdef01").symlink_to(outside)  # a leftover-looking link
    (root / "step-000000001" / "extra").symlink_to(outside / "step-000000001" / MANIFEST)  # rotated away below
    (root / "step-000000002" / STATE_FILE).unlink()
    os.mkfifo(root / "step-000000002" / STATE_FILE)  # a FIFO where the data should be
    with deadline(30):
        assert [i.step for i in ck.list()] == [1, 2]
        with pytest.warns(PortarunWarning, match="step-000000002"):
            assert ck.load()["step"] == 1
        (root / "step-000000002" / STATE_FILE).unlink()
        (root / "step-000000002" / STATE_FILE).symlink_to("/dev/zero")
        with pytest.warns(PortarunWarning, match="step-000000002"):
            assert ck.load()["step"] == 1
        small = Checkpointer(root, mode="blocking", keep_last=1, handle_signals=False)
        for step in (10, 11):
            small.save({"w": torch.zeros(4), "step": step}, step=step)
    assert [i.step for i in small.list()] == [11]
    assert (outside / "step-000000001" / STATE_FILE).is_file()  # nothing outside was deleted
    assert (outside / "step-000000001" / MANIFEST).is_file()
    assert (root / "step-000000009").is_symlink()


# -- numbers -----------------------------------------------------------------------------------

@pytest.mark.parametrize("step", [-1, 2**70, True, 1.5, math.nan])
def test_out_of_range_steps_are_refused_at_the_api(tmp_path: Path, step: object) -> None:
    ck = _fresh(tmp_path)
    with pytest.raises(CheckpointError, match="step must be"):
        ck.save({"w": 1}, step=step)  # type: ignore[arg-type]
    assert ck.list() == []


@pytest.mark.parametrize("value", [math.nan, math.inf, -math.inf, "0.1"])
def test_non_finite_metrics_are_refused_at_the_api(tmp_path: Path, value: object) -> None:
    ck = _fresh(tmp_path)
    with pytest.raises(CheckpointError, match="metric 'loss'"):
        ck.save({"w": 1}, step=1, metrics={"loss": value})  # type: ignore[dict-item]
    assert ck.list() == []


@pytest.mark.parametrize("field", ["every_minutes", "before_deadline"])
@pytest.mark.parametrize("value", [math.inf, math.nan, -1.0, 0.0, True])
def test_policy_refuses_non_finite_and_non_positive_times(field: str, value: object) -> None:
    with pytest.raises(CheckpointError, match=field):
        SavePolicy(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize("value", [True, 0, -3, 2.0])
def test_policy_refuses_bad_every_steps(value: object) -> None:
    with pytest.raises(CheckpointError, match="every_steps"):
        SavePolicy(every_steps=value)  # type: ignore[arg-type]


# -- SIGKILL during promotion from a staging folder --------------------------------------------

@pytest.mark.slow
def test_sigkill_during_promotion_leaves_nothing_behind_after_the_next_save(tmp_path: Path) -> None:
    root, staging = tmp_path / "ck", tmp_path / "staging"
    kills = 0
    for _ in range(8):
        child = subprocess.Popen([sys.executable, str(WRITER), str(root), "1", "1000", "--staging", str(staging),
                                  "--floats", str(4_000_000)], stdout=subprocess.DEVNULL)
        started = time.monotonic()
        while time.monotonic() - started < 30:  # kill as soon as a promotion is under way
            if root.exists() and any(n.startswith(".tmp-") for n in os.listdir(root)):
                break
        child.send_signal(signal.SIGKILL)
        child.wait()
        kills += 1
    assert kills == 8
    ck = Checkpointer(root, mode="blocking", keep_last=2, staging=staging, handle_signals=False)
    latest = ck.latest()
    ck.save({"w": torch.zeros(4), "step": -1}, step=(latest.step + 1) if latest else 1)
    ck.close()  # and gives its writer lease back
    assert not [n for n in os.listdir(root) if not n.startswith("step-")], os.listdir(root)
    assert os.listdir(staging) == []  # every staged copy of a killed writer is gone
    for info in ck.list():
        ck.load(step=info.step)


# -- a read-only folder and a full disk, on real mounts in a private mount namespace -----------

def _can_unshare() -> bool:
    if not shutil.which("unshare") or os.geteuid() != 0:
        return False
    probe = subprocess.run(["unshare", "-m", "sh", "-c", "mount -t tmpfs -o size=64k tmpfs /mnt"],
                           capture_output=True)
    return probe.returncode == 0


def _in_namespace(mount: Path, script: str) -> subprocess.CompletedProcess[str]:
    mount.mkdir()
    return subprocess.run(["unshare", "-m", "sh", "-c", script, "sh", str(mount), sys.executable, str(WRITER)],
                          capture_output=True, text=True, timeout=120)


@pytest.mark.slow
def test_read_only_folder_is_a_clear_error_and_keeps_what_was_published(tmp_path: Path) -> None:
    if not _can_unshare():
        pytest.skip("needs root and unshare to mount a tmpfs read-only")
    script = ('mount -t tmpfs -o size=16m tmpfs "$1" && "$2" "$3" "$1/ck" 1 2 && '
              'mount -o remount,ro "$1" && "$2" "$3" "$1/ck" 3 3 && '
              '"$2" -c "from portarun.checkpoint import Checkpointer; import sys; '
              'print([i.step for i in Checkpointer(sys.argv[1]).list()], '
              'Checkpointer(sys.argv[1]).load()[\'step\'])" "$1/ck"')
    out = _in_namespace(tmp_path / "mnt", script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    first, second = json.loads(lines[0]), json.loads(lines[1])
    assert first["saved"] == [1, 2] and first["error"] is None
    assert second["saved"] == [] and second["error"]["type"] == "CheckpointError"
    assert "read-only" in second["error"]["message"] and "PORTARUN_CHECKPOINTS_DIR" in second["error"]["message"]
    assert lines[2] == "[1, 2] 2"


@pytest.mark.slow
def test_disk_full_error_says_the_real_size_and_free_space(tmp_path: Path) -> None:
    if not _can_unshare():
        pytest.skip("needs root and unshare to mount a small tmpfs")
    script = ('mount -t tmpfs -o size=2m tmpfs "$1" && "$2" "$3" "$1/ck" 1 50 --floats 100000 && '
              '"$2" -c "from portarun.checkpoint import Checkpointer; import sys; '
              'print([i.step for i in Checkpointer(sys.argv[1]).list()])" "$1/ck"')
    out = _in_namespace(tmp_path / "mnt", script)
    assert out.returncode == 0, out.stderr
    lines = out.stdout.strip().splitlines()
    result = json.loads(lines[0])
    assert result["error"]["type"] == "StorageFullError"
    message = result["error"]["message"]
    assert " 0 B " not in message and "writing a 0 B" not in message, message
    assert "writing a checkpoint of at least" in message and "KiB" in message and "free" in message, message
    assert "PORTARUN_CHECKPOINTS_DIR" in message
    assert lines[1] == str(result["saved"])


def test_a_root_that_is_a_file_is_a_clear_error(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    root.write_text("not a folder")
    ck = _fresh(root)
    assert ck.list() == [] and ck.latest() is None
    with pytest.raises(CheckpointError, match="cannot save a checkpoint in .*ck.*PORTARUN_CHECKPOINTS_DIR"):
        ck.save({"w": 1}, step=1)
    assert root.read_text() == "not a folder"


def test_an_unreachable_store_is_a_clear_error(tmp_path: Path) -> None:
    pytest.importorskip("aiohttp")  # fsspec's http filesystem
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ck = Checkpointer(f"http://127.0.0.1:{port}/ck", mode="blocking", staging=tmp_path / "staging",
                      handle_signals=False)
    with pytest.raises(CheckpointError, match="cannot list the checkpoints in http://127.0.0.1"):
        ck.list()
    with pytest.raises(CheckpointError, match="cannot save a checkpoint in http://127.0.0.1"):
        ck.save({"w": 1}, step=1)
    assert not (tmp_path / "staging").exists() or os.listdir(tmp_path / "staging") == []
