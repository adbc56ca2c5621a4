"""The run monitor while it runs: real processes burning CPU, loaders sleeping a known time per
batch, memory allocated against a simulated limit, files filling a quota, the timeline read
while it is being written. GPUs and hosts are simulated through the probe; GPU readings through
the monitor's one seam for them (``gpu_reader``)."""
from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from portarun.errors import PortarunError, PortarunWarning
from portarun.facts import MemoryFacts
from portarun.monitor import Alert, TimelineError, read_timeline
from portarun.monitor.advice import summarize
from portarun.testing import simulate


class SlowLoader:
    """A loader whose every batch takes ``delay`` seconds to arrive, like a starved DataLoader."""

    def __init__(self, batches: int, delay: float, num_workers: int = 1) -> None:
        self.batches, self.delay, self.num_workers, self.batch_size = batches, delay, num_workers, 4

    def __iter__(self) -> Iterator[int]:
        for i in range(self.batches):
            time.sleep(self.delay)
            yield i


def _busy_samples(path: Path) -> list[float]:
    return [s["cpu"]["busy"] for s in read_timeline(path).samples if s["cpu"]["busy"] is not None]


def _proc_cpu_seconds(pid: int) -> float:
    """A process's user + system time from /proc/<pid>/stat (fields 14 and 15, proc(5))."""
    import os

    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


@pytest.mark.slow  # real subprocesses: run once, not in the host matrix
@pytest.mark.skipif(not Path("/proc/self/stat").exists(), reason="reads the child's CPU time from /proc")
def test_cpu_of_a_child_burning_cpu_is_counted_against_the_usable_cpus(tmp_path: Path) -> None:
    with simulate("local", cpus=4, root=tmp_path / "root") as rt:
        with rt.monitor(interval=0.25, path=tmp_path / "idle.jsonl"):
            time.sleep(1.0)
        child = subprocess.Popen([sys.executable, "-c", "while True: pass"])
        try:
            before = _proc_cpu_seconds(child.pid)
            with rt.monitor(interval=0.25, path=tmp_path / "burn.jsonl") as mon:
                time.sleep(1.5)
            burned = _proc_cpu_seconds(child.pid) - before
        finally:
            child.kill()
            child.wait()
    idle, burn = _busy_samples(tmp_path / "idle.jsonl"), _busy_samples(tmp_path / "burn.jsonl")
    assert burn and idle
    samples = read_timeline(mon.path).samples
    measured = sum(s["cpu"]["busy"] * (s["t"] - prev["t"]) for prev, s in zip(samples, samples[1:]))
    # The child's CPU-seconds, as the kernel counts them, are in the monitor's figure (with this
    # process's own, small, share), whatever share of a CPU a busy shared machine gave it.
    assert burned > 0.1
    assert 0.8 * burned <= measured <= burned + 0.5
    assert sum(burn) / len(burn) > sum(idle) / len(idle) + 0.05
    summary = summarize(read_timeline(mon.path))
    assert summary.cpus_usable == 4  # the simulated machine's usable CPUs, not this one's


@pytest.mark.parametrize("use_wrap", [True, False])
def test_data_wait_matches_a_loader_slowed_by_a_known_time(tmp_path: Path, use_wrap: bool) -> None:
    # 30 ms waiting for each batch, 20 ms of work on it: the loop waits 60% of the time.
    with simulate("local", cpus=4, root=tmp_path / "root") as rt:
        with rt.monitor(interval=0.2, path=tmp_path / "run.jsonl") as mon:
            loader = SlowLoader(25, 0.03, num_workers=1)
            if use_wrap:
                for _ in mon.wrap(loader):
                    time.sleep(0.02)
            else:
                for _ in loader:
                    with mon.step():
                        time.sleep(0.02)
    summary = summarize(read_timeline(mon.path))
    assert summary.steps == 25
    assert summary.wait_fraction is not None
    # The first batch (no previous step to measure from, without wrap) shifts it by one part in 25.
    assert summary.wait_fraction == pytest.approx(0.6, abs=0.12)
    assert summary.step_seconds == pytest.approx(0.05, abs=0.03)
    report = mon.report(plot=False)
    if use_wrap:  # the wrapped loader's num_workers is known
        assert any("raise num_workers from 1 (4 CPUs usable)" in a for a in report.advice), report.advice
    else:
        assert any("load batches in worker processes" in a for a in report.advice), report.advice


def test_a_fast_loader_gets_no_data_advice(tmp_path: Path) -> None:
    with simulate("local", cpus=4, root=tmp_path / "root") as rt:
        with rt.monitor(interval=0.2, path=tmp_path / "run.jsonl") as mon:
            for _ in mon.wrap(SlowLoader(25, 0.0, num_workers=1)):
                time.sleep(0.02)
    summary = summarize(read_timeline(mon.path))
    assert summary.wait_fraction is not None and summary.wait_fraction < 0.1
    assert not any("waited for data" in a for a in mon.report(plot=False).advice)


def test_timeline_is_readable_while_the_run_goes_on_and_skips_a_torn_line(tmp_path: Path) -> None:
    with simulate("kaggle", root=tmp_path / "root") as rt:
        with rt.monitor(interval=0.05) as mon:
            # detect() created nothing; the monitor's first write made the folder under rt.paths.output.
            assert mon.path.parent == Path(rt.paths.output) / "monitor"
            seen = []
            for _ in range(10):
                timeline = read_timeline(mon.path)  # while the sampler thread appends
                seen.append(len(timeline.samples))
                assert timeline.running and timeline.start["host"] == "kaggle" and timeline.skipped == 0
                time.sleep(0.05)
            assert seen[-1] > seen[0]
        finished = read_timeline(mon.path)
        assert not finished.running and finished.end is not None
        # Writable roles only: a read-only dataset mount (/kaggle/input) shows as a full disk.
        assert set(finished.samples[0]["disks"]) == {"scratch", "output", "persist", "cache", "checkpoints"}
        torn = tmp_path / "torn.jsonl"
        data = mon.path.read_bytes()
        torn.write_bytes(data + data.splitlines(keepends=True)[1][:37])  # a crash in the middle of a line
        again = read_timeline(torn)
        assert again.skipped == 1 and len(again.samples) == len(finished.samples)


def test_a_file_that_is_not_a_timeline_is_refused(tmp_path: Path) -> None:
    with pytest.raises(TimelineError, match="no monitor timeline"):
        read_timeline(tmp_path / "missing.jsonl")
    other = tmp_path / "other.jsonl"
    other.write_text(json.dumps({"hello": 1}) + "\n")
    with pytest.raises(TimelineError, match="no monitor start record"):
        read_timeline(other)
    assert issubclass(TimelineError, PortarunError)


def test_gpus_of_a_simulated_host_are_sampled_through_the_reader(tmp_path: Path) -> None:
    calls: list[int] = []

    def reader(gpus: Any) -> list[dict[str, Any]]:
        calls.append(len(gpus))
        return [{"index": g.index, "name": g.name, "util": 15 + 10 * g.index, "mem_used": 2 * 1024**3,
                 "mem_total": g.memory, "temp": 61, "power": 35.5} for g in gpus]

    with simulate("kaggle", gpus=["Tesla T4"] * 2, root=tmp_path / "root") as rt:
        with rt.monitor(interval=0.1, gpu_reader=reader) as mon:
            for _ in mon.wrap(SlowLoader(12, 0.0)):
                time.sleep(0.02)
        with rt.monitor(interval=0.1, path=tmp_path / "unread.jsonl") as unread:
            time.sleep(0.2)
    assert calls and set(calls) == {2}
    gpus = summarize(read_timeline(mon.path)).gpus
    assert [(g.name, g.util_mean, g.temp_peak) for g in gpus] == [("Tesla T4", 15, 61), ("Tesla T4", 25, 61)]
    advice = mon.report(plot=False).advice
    assert any(a.startswith("GPU 0 was busy only 15%") for a in advice)
    assert any(a.startswith("GPU 1 was busy only 25%") for a in advice)
    # Without a reader a simulated host has no NVML to ask: listed, nothing invented.
    plain = summarize(read_timeline(unread.path)).gpus
    assert [g.util_mean for g in plain] == [None, None]
    assert "utilisation not read" in str(unread.report(plot=False))


def _resident() -> int:
    import psutil

    return int(psutil.Process().memory_info().rss)


def test_ram_over_a_simulated_limit_warns_once_and_saves_an_emergency_checkpoint(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    limit = _resident() + 48 * 1024**2
    alerts: list[Alert] = []
    with simulate("local", memory=MemoryFacts(total=64 * 1024**3, available=32 * 1024**3, limit=limit),
                  root=tmp_path / "root") as rt:
        with pytest.warns(PortarunWarning, match=r"RAM at \d+% of the") as caught:
            with rt.monitor(interval=0.05, on_alert=alerts.append, checkpoint=lambda: {"w": torch.ones(3)}) as mon:
                hog = bytearray(b"x") * (96 * 1024**2)  # written, so resident
                for _ in range(20):
                    with mon.step():
                        time.sleep(0.02)
                del hog
        assert len([w for w in caught if "RAM at" in str(w.message)]) == 1
        assert [a.kind for a in alerts] == ["ram"]
        latest = rt.checkpoints.latest()
        assert latest is not None
        assert torch.equal(rt.checkpoints.load()["w"], torch.ones(3))
    timeline = read_timeline(mon.path)
    assert [a["kind"] for a in timeline.alerts] == ["ram"]
    assert any(a.startswith("RAM peaked at") for a in mon.report(plot=False).advice)


def test_ram_well_under_the_limit_neither_warns_nor_advises(tmp_path: Path) -> None:
    # pytest turns a PortarunWarning into an error (pyproject): one here would fail stop().
    with simulate("local", memory=MemoryFacts(total=64 * 1024**3, available=32 * 1024**3,
                                              limit=_resident() + 4 * 1024**3), root=tmp_path / "root") as rt:
        with rt.monitor(interval=0.05) as mon:
            time.sleep(0.3)
    assert mon.alerts == []
    assert not any("RAM" in a for a in mon.report(plot=False).advice)


def test_a_quota_filling_up_warns_once_and_is_advised(tmp_path: Path) -> None:
    with simulate("kaggle", root=tmp_path / "root") as rt:
        out = Path(rt.paths.output)
        with pytest.warns(PortarunWarning, match="/kaggle/working at .* of its 4.0 MiB quota"):
            with rt.monitor(interval=0.05, quotas={"/kaggle/working": (4 * 1024**2, "a test quota")},
                            quota_every=0.0) as mon:
                (out / "model.bin").write_bytes(b"\0" * (4 * 1024**2 - 1000))
                time.sleep(0.4)
    assert [(a.kind, a.subject) for a in mon.alerts] == [("disk", "/kaggle/working")]
    assert any(a.startswith("/kaggle/working at 4.2 MB of 4.2 MB") for a in mon.report(plot=False).advice)


def test_a_warning_made_an_error_by_a_filter_is_raised_in_the_training_thread(tmp_path: Path) -> None:
    with simulate("local", memory=MemoryFacts(total=64 * 1024**3, available=32 * 1024**3, limit=1024**2),
                  root=tmp_path / "root") as rt:
        mon = rt.monitor(interval=0.05)
        with pytest.raises(PortarunWarning, match="RAM at"):  # pyproject: error::PortarunWarning
            with mon:
                time.sleep(0.2)


def test_bad_options_are_refused(tmp_path: Path) -> None:
    with simulate("local", root=tmp_path / "root") as rt:
        with pytest.raises(PortarunError, match="interval"):
            rt.monitor(interval=0)
        with pytest.raises(PortarunError, match="ram_warn"):
            rt.monitor(ram_warn=1.5)


def test_detect_and_import_stay_light() -> None:
    script = ("import sys, portarun\nfrom portarun.testing import simulate\nrt = portarun.detect(); rt.explain()\n"
              "with simulate('kaggle') as s: s.explain()\n"
              "print([m for m in ('psutil', 'matplotlib', 'pynvml', 'portarun.monitor') if m in sys.modules])")
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines()[-1] == "[]"


def test_without_psutil_the_monitor_says_what_to_install(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from portarun.errors import NotAvailableError

    monkeypatch.setitem(sys.modules, "psutil", None)  # what an absent package looks like to import
    with simulate("local", root=tmp_path / "root") as rt:
        with pytest.raises(NotAvailableError, match=r"pip install portarun\[monitor\]"):
            rt.monitor().start()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="/dev/full makes every write fail with ENOSPC")
def test_a_timeline_that_cannot_be_written_is_refused_at_start(tmp_path: Path) -> None:
    from portarun.errors import PathError

    with simulate("local", root=tmp_path / "root") as rt:
        with pytest.raises(PathError, match="cannot write its timeline /dev/full: No space left on device"):
            rt.monitor(path="/dev/full").start()
        blocker = tmp_path / "a-file"
        blocker.write_text("")
        with pytest.raises(PathError, match="writable folder"):
            rt.monitor(path=blocker / "run.jsonl").start()


@pytest.mark.parametrize("fixture, usage_file, stat_key", [
    ("v2-docker", "sys/fs/cgroup/memory.current", "inactive_file"),
    ("v1-docker", "sys/fs/cgroup/memory/memory.usage_in_bytes", "total_inactive_file"),
])
def test_ram_under_a_cgroup_limit_is_its_working_set(tmp_path: Path, fixture: str, usage_file: str,
                                                     stat_key: str) -> None:
    """The kernel's own files (docs.kernel.org cgroup-v2 ``memory.current``/``memory.stat``,
    cgroup-v1 ``memory.usage_in_bytes``), in a copy of a container's cgroup tree: usage less
    the inactive file cache, which the kernel reclaims before it kills."""
    import shutil

    from portarun.monitor.sampler import Sampler, cgroup_memory_used
    from portarun.probe import Probe
    from portarun.runtime import build_runtime

    root = tmp_path / fixture
    shutil.copytree(Path(__file__).parent / "fixtures" / "cgroup" / fixture, root)
    (root / usage_file).write_text("3000000000\n")
    (root / usage_file).with_name("memory.stat").write_text(f"cache 900000000\n{stat_key} 500000000\nrss 2000000000\n")
    assert cgroup_memory_used(root) == 2_500_000_000
    probe = Probe(env={"HOME": str(tmp_path / "home")}, root=root,
                  memory_override=MemoryFacts(total=64 * 1024**3, available=60 * 1024**3, limit=4_000_000_000))
    rt = build_runtime(probe, host="local")
    ram = Sampler(rt, quotas={}).ram([])
    assert ram == {"used": 2_500_000_000, "limit": 4_000_000_000, "run": None, "source": "cgroup"}
