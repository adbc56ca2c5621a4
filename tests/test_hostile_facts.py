"""Malformed hardware facts and numbers, simulated or read from /proc, sysfs and cgroup files:
never a traceback from deep inside, never a hang, never an absurd answer."""
from __future__ import annotations

import os
import threading
from datetime import timedelta
from pathlib import Path

import pytest

from portarun._machine.accelerators import read_proc_gpus
from portarun._machine.sysinfo import read_cpu, read_memory
from portarun._util.files import read_small
from portarun._util.units import parse_size
from portarun.errors import PortarunError
from portarun.session import parse_duration
from portarun.testing import simulate


def plant(root: Path, files: dict[str, str]) -> None:
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def v2_tree(root: Path, cgroup: str = "0::/\n", cpu_max: str = "max 100000", memory_max: str = "max") -> None:
    plant(root, {"proc/self/cgroup": cgroup,
                 "proc/self/mountinfo": "30 1 0:26 / /sys/fs/cgroup rw - cgroup2 cgroup2 rw\n",
                 "sys/fs/cgroup/cgroup.controllers": "cpu memory", "sys/fs/cgroup/cpu.max": cpu_max,
                 "sys/fs/cgroup/memory.max": memory_max})


@pytest.mark.parametrize("cpu_max", ["", "max 0", "-1 100000", "nan 100000", "100000 0", "1e309 1", "inf 1",
                                     "50000 100000 extra", "99999999999999999999999 1"])
@pytest.mark.parametrize("memory_max", ["", "-1", "nan", "1e400", "0", "99999999999999999999999999"])
def test_malformed_cgroup_limits_mean_no_limit(tmp_path: Path, cpu_max: str, memory_max: str) -> None:
    v2_tree(tmp_path, cpu_max=cpu_max, memory_max=memory_max)
    cpu, memory = read_cpu(tmp_path), read_memory(tmp_path)
    assert cpu.usable >= 1 and (cpu.quota is None or cpu.quota > 0)
    assert memory.limit is None or 0 < memory.limit < 2**62


def test_a_fifo_planted_as_a_cgroup_file_never_blocks(tmp_path: Path) -> None:
    v2_tree(tmp_path)
    for name in ("cpu.max", "memory.max"):
        (tmp_path / "sys/fs/cgroup" / name).unlink()
        os.mkfifo(tmp_path / "sys/fs/cgroup" / name)
    os.mkfifo(tmp_path / "proc/meminfo")
    found: list[object] = []
    reader = threading.Thread(target=lambda: found.append((read_cpu(tmp_path), read_memory(tmp_path))), daemon=True)
    reader.start()
    reader.join(timeout=20)
    assert found, "reading the cgroup limits blocked on a FIFO"


@pytest.mark.parametrize("cgroup", ["0::/" + "a/" * 3000 + "\n", "0::/../../../etc\n", "garbage\x00\n", ""])
def test_forged_cgroup_paths_are_ignored(tmp_path: Path, cgroup: str) -> None:
    v2_tree(tmp_path, cgroup=cgroup)
    plant(tmp_path, {"etc/cpu.max": "1000 100000"})  # a ".." path must not reach this
    cpu = read_cpu(tmp_path)
    assert cpu.quota is None


def test_read_small_refuses_special_files_and_caps_size(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "fifo")
    assert read_small(tmp_path / "fifo") is None
    assert read_small("/dev/zero") is None
    assert read_small(tmp_path / ("x" * 300)) is None          # ENAMETOOLONG
    (tmp_path / "big").write_bytes(b"a" * 5000)
    assert read_small(tmp_path / "big", limit=100) == b"a" * 100


@pytest.mark.parametrize(("text", "name"), [("Model: \n", "NVIDIA GPU"), ("\xff\xfe garbage", "NVIDIA GPU"),
                                            ("Model: " + "A" * 100_000 + "\n", "A" * 96)])
def test_malformed_driver_files_give_a_sane_gpu_name(tmp_path: Path, text: str, name: str) -> None:
    plant(tmp_path, {"proc/driver/nvidia/gpus/0000:00:04.0/information": text})
    (gpu,) = read_proc_gpus(tmp_path)
    assert gpu.name == name


@pytest.mark.parametrize("value", ["inf", "nan", "-5m", "1e400h", "99999999999999h", "2m\x00", "", "h", "1h-5m"])
def test_bad_session_limits_are_clear_errors(value: str) -> None:
    with pytest.raises(PortarunError, match="is not a duration"):
        parse_duration(value)


def test_good_session_limits_still_parse() -> None:
    assert parse_duration("1h30m") == timedelta(minutes=90)
    assert parse_duration("90") == timedelta(seconds=90)
    assert parse_duration("none") is None


@pytest.mark.parametrize("value", [float("inf"), float("nan"), -1, "-5G", "nanG", "1e400G", "infG", True])
def test_bad_sizes_are_clear_errors(value: object) -> None:
    with pytest.raises(PortarunError, match="is not a size"):
        parse_size(value)  # type: ignore[arg-type]


@pytest.mark.parametrize("kwargs", [dict(cpus=0), dict(cpus=-1), dict(cpus=float("nan")), dict(cpus=10**30),
                                    dict(cpus="4"), dict(memory=float("inf")), dict(gpus=["Tesla T4", 5]),
                                    dict(gpus="Tesla T4"), dict(env={"PORTARUN_SESSION_LIMIT": "inf"})])
def test_bad_simulated_hardware_is_a_clear_error(kwargs: dict[str, object]) -> None:
    with pytest.raises(PortarunError):
        with simulate(**kwargs):  # type: ignore[arg-type]
            pass
