"""CPU, memory and /dev/shm readers against fixture trees of real cgroup v1 and v2 files."""
from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

from portarun._machine import sysinfo
from portarun.facts import CpuFacts

FIXTURES = Path(__file__).parent / "fixtures" / "cgroup"
GIB = 1024**3


@pytest.mark.parametrize(
    ("tree", "quota", "limit"),
    [
        ("v2-docker", 1.5, 2 * GIB),
        ("v2-unlimited", None, None),
        ("v2-nested", 2.0, 512 * 1024**2),  # CPU limit on the pod slice, memory on the container
        ("v1-docker", 0.5, 256 * 1024**2),  # mount root /docker/<id> translates the host path
        ("v1-unlimited", None, None),  # -1 and 9223372036854771712 mean unlimited
        ("hybrid-v1-v2", 0.5, None),  # v1 cpu controller wins over the empty cgroup2 tree
        ("v2-no-mountinfo", 0.5, GIB),  # usual mount place assumed
        ("malformed", None, None),  # garbage is "no limit known", not a crash
    ],
)
def test_cgroup_limits_from_real_trees(tree: str, quota: float | None, limit: int | None) -> None:
    root = FIXTURES / tree
    assert sysinfo.cpu_quota(root) == quota
    assert sysinfo.memory_limit(root) == limit


def test_nested_chain_is_innermost_first_and_stops_at_the_mount() -> None:
    root = FIXTURES / "v2-nested"
    dirs = list(sysinfo.cgroup_dirs(root, "cpu"))
    assert dirs[0].name.startswith("cri-containerd-")
    assert dirs[-1] == root / "sys/fs/cgroup"
    assert [d.name for d in dirs[1:3]] == [dirs[0].parent.name, "kubepods-burstable.slice"]


def test_hybrid_host_uses_v1_mount_from_mountinfo() -> None:
    root = FIXTURES / "hybrid-v1-v2"
    assert list(sysinfo.cgroup_dirs(root, "cpu"))[0] == root / "sys/fs/cgroup/cpu/prtest"
    mounts = sysinfo.cgroup_mounts(root)
    assert {m.version for m in mounts} == {1, 2}
    assert next(m for m in mounts if m.version == 2).mountpoint == "/sys/fs/cgroup/unified"


def test_v1_container_path_outside_mount_root_maps_to_mount(tmp_path: Path) -> None:
    root = tmp_path / "ctr"
    shutil.copytree(FIXTURES / "v1-docker", root)
    # A runtime that shows a path outside the mounted root: fall back to the mount itself.
    (root / "proc/self/cgroup").write_text("3:cpu,cpuacct:/elsewhere/abc\n11:memory:/elsewhere/abc\n")
    assert sysinfo.cpu_quota(root) == 0.5
    assert sysinfo.memory_limit(root) == 256 * 1024**2


def test_mountinfo_octal_escapes(tmp_path: Path) -> None:
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/mountinfo").write_text(
        "30 25 0:26 / /sys/fs/my\\040cgroup rw - cgroup2 cgroup2 rw\n")
    assert sysinfo.cgroup_mounts(tmp_path)[0].mountpoint == "/sys/fs/my cgroup"


def test_empty_root_has_no_limits(tmp_path: Path) -> None:
    assert sysinfo.cpu_quota(tmp_path) is None
    assert sysinfo.memory_limit(tmp_path) is None
    shm = sysinfo.read_shm(tmp_path)
    assert shm.total is None and shm.free is None


def test_read_memory_caps_available_at_the_cgroup_limit() -> None:
    mem = sysinfo.read_memory(FIXTURES / "v1-docker")
    assert mem.total == 24668192 * 1024
    assert mem.limit == 256 * 1024**2
    assert mem.available == 256 * 1024**2
    assert mem.usable == 256 * 1024**2
    free = sysinfo.read_memory(FIXTURES / "v2-unlimited")
    assert free.limit is None and free.available == 23012340 * 1024


def test_read_cpu_combines_affinity_and_quota() -> None:
    cpu = sysinfo.read_cpu(FIXTURES / "v1-docker")
    assert cpu.logical == os.cpu_count()
    assert cpu.affinity == len(os.sched_getaffinity(0))
    assert cpu.quota == 0.5 and cpu.usable == 1


def test_usable_cpus_is_the_smallest_limit() -> None:
    assert CpuFacts(logical=64, affinity=64, quota=6.0).usable == 6
    assert CpuFacts(logical=64, affinity=8, quota=12.0).usable == 8
    assert CpuFacts(logical=64, affinity=64, hint=6).usable == 6
    assert CpuFacts(logical=2, affinity=2, quota=0.5).usable == 1


def test_read_shm_on_the_real_machine() -> None:
    shm = sysinfo.read_shm(Path("/"))
    if not Path("/dev/shm").is_dir():
        pytest.skip("this machine has no /dev/shm")
    st = os.statvfs("/dev/shm")
    assert shm.total == st.f_blocks * st.f_frsize
    assert shm.free is not None and 0 <= shm.free <= shm.total


@pytest.mark.parametrize(("system", "python", "method"), [
    ("Linux", (3, 11), "fork"), ("Linux", (3, 14), "forkserver"),
    ("Darwin", (3, 11), "spawn"), ("Windows", (3, 12), "spawn"),
])
def test_default_start_method(system: str, python: tuple[int, int], method: str) -> None:
    assert sysinfo.default_start_method(system, python) == method
