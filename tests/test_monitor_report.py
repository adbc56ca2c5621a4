"""The monitor's report: advice from measurements only (each rule fires on its measurement and
stays silent otherwise), the plot's panels and PNG, the text without matplotlib, budgets as
labelled estimates, and ``portarun monitor report``. Timelines are real files written here in
the monitor's format, with chosen measurements."""
from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from portarun._cli.main import main
from portarun.monitor import build_report, read_timeline
from portarun.monitor.advice import advise, summarize
from portarun.monitor.budgets import Budget, price_override, usage_lines
from portarun.monitor.report import NO_MATPLOTLIB

GiB = 1024**3


def _sample(t: float, **over: Any) -> dict[str, Any]:
    sample: dict[str, Any] = {
        "type": "sample", "t": t, "cpu": {"busy": 1.0, "usable": 4},
        "ram": {"used": 4 * GiB, "limit": 16 * GiB, "run": 3 * GiB, "source": "cgroup"},
        "gpus": [], "shm": {"used": 1 * GiB, "total": 8 * GiB},
        "disks": {"output": {"path": "/out", "free": 50 * GiB, "total": 100 * GiB, "dev": 1}},
        "time_left": 3600.0, "steps": {"n": 10, "wait": 0.1, "busy": 0.9},
    }
    for key, value in over.items():
        sample[key] = value
    return sample


def write_timeline(path: Path, samples: list[dict[str, Any]], *, gpus: int = 0, workers: int | None = 2,
                   cpus: int = 4, budgets: list[Budget] = (), end: bool = True) -> Path:  # type: ignore[assignment]
    records: list[dict[str, Any]] = [{
        "type": "start", "version": 1, "t": 0.0, "host": "kaggle", "host_name": "Kaggle", "cpus_usable": cpus,
        "ram_limit": 16 * GiB, "gpus": [{"index": i, "name": "Tesla T4", "memory": 15 * GiB} for i in range(gpus)],
        "tpu": None, "quotas": {}, "budgets": [b._asdict() for b in budgets],
        "session": {"limit": 43200.0, "source": "Kaggle notebooks: 12 hours", "started_at": 0.0}}]
    if workers is not None:
        records.append({"type": "loader", "t": 0.0, "num_workers": workers, "batch_size": 32})
    records.extend(samples)
    if end:
        records.append({"type": "end", "t": samples[-1]["t"] + 1, "elapsed": samples[-1]["t"] + 1, "steps": 0})
    path.write_text("".join(json.dumps(r) + "\n" for r in records))
    return path


def _advice(path: Path) -> list[str]:
    return advise(summarize(read_timeline(path)))


def _gpu(util: float, mem_used: int = 2 * GiB) -> list[dict[str, Any]]:
    return [{"index": 0, "name": "Tesla T4", "util": util, "mem_used": mem_used, "mem_total": 15 * GiB,
             "temp": 70, "power": 60.0}]


def test_healthy_measurements_give_no_advice(tmp_path: Path) -> None:
    path = write_timeline(tmp_path / "ok.jsonl", [_sample(t, gpus=_gpu(90)) for t in range(1, 20)], gpus=1)
    assert _advice(path) == []


def test_waiting_for_data_with_spare_cpus_says_raise_num_workers(tmp_path: Path) -> None:
    waiting = {"n": 10, "wait": 0.62, "busy": 0.38}
    path = write_timeline(tmp_path / "wait.jsonl", [_sample(t, steps=waiting, gpus=_gpu(35)) for t in range(1, 20)],
                          gpus=1, workers=2, cpus=4)
    advice = _advice(path)
    assert advice[0] == ("the GPU waited for data 62% of the time: raise num_workers from 2 (4 CPUs usable) or use "
                         "rt.dataloader(..., autotune=True)")
    # The GPU was idle because of the data: no "raise the batch size" on top.
    assert not any("busy only" in a for a in advice)


def test_waiting_for_data_with_busy_cpus_says_the_pipeline_is_cpu_bound(tmp_path: Path) -> None:
    waiting = {"n": 10, "wait": 0.5, "busy": 0.5}
    samples = [_sample(t, steps=waiting, cpu={"busy": 3.8, "usable": 4}) for t in range(1, 20)]
    advice = _advice(write_timeline(tmp_path / "cpu.jsonl", samples, workers=4, cpus=4))
    assert len(advice) == 1 and "the data pipeline is CPU-bound" in advice[0]
    idle_cpus = [_sample(t, steps=waiting, cpu={"busy": 1.0, "usable": 4}) for t in range(1, 20)]
    advice = _advice(write_timeline(tmp_path / "io.jsonl", idle_cpus, workers=4, cpus=4))
    assert len(advice) == 1 and "the loader waits on reading, not computing" in advice[0]
    assert "num_workers=8" in advice[0]


def test_too_few_steps_or_little_waiting_give_no_data_advice(tmp_path: Path) -> None:
    few = [_sample(1, steps={"n": 5, "wait": 5.0, "busy": 1.0})]
    assert _advice(write_timeline(tmp_path / "few.jsonl", few)) == []
    little = [_sample(t, steps={"n": 10, "wait": 0.15, "busy": 0.85}) for t in range(1, 5)]
    assert _advice(write_timeline(tmp_path / "little.jsonl", little)) == []


def test_an_idle_gpu_without_data_wait_says_raise_the_batch_size(tmp_path: Path) -> None:
    advice = _advice(write_timeline(tmp_path / "idle.jsonl", [_sample(t, gpus=_gpu(20)) for t in range(1, 9)], gpus=1))
    assert advice == ["GPU 0 was busy only 20% of the time although the loop seldom waited for data: the step keeps "
                      "it idle (small batches, work on the CPU, .item() every step); raise the batch size or move "
                      "the work to the GPU"]


def test_memory_near_its_limits_is_advised(tmp_path: Path) -> None:
    ram = {"used": int(0.96 * 12.7 * GiB), "limit": int(12.7 * GiB), "run": GiB, "source": "machine"}
    samples = [_sample(1), _sample(2, ram=ram, gpus=_gpu(90, mem_used=int(14.5 * GiB)),
                                   shm={"used": 7 * GiB, "total": 8 * GiB})]
    path = write_timeline(tmp_path / "mem.jsonl", samples, gpus=1)
    advice = _advice(path)
    assert any(a.startswith("RAM peaked at 96% of the 12.7 GiB limit") for a in advice)
    assert any(a.startswith("GPU 0 memory peaked at 97% of 15.0 GiB") for a in advice)
    assert any(a.startswith("/dev/shm peaked at 88% of 8.0 GiB") for a in advice)
    assert len(advice) == 3


def test_a_quota_near_full_is_advised_once_and_a_low_disk_too(tmp_path: Path) -> None:
    quota = {"quota": 20 * 1000**3, "quota_path": "/kaggle/working",
             "quota_why": "Kaggle caps /kaggle/working at 20 GB"}
    disks = {role: {"path": f"/kaggle/working/{role}", "free": 60 * GiB, "total": 73 * GiB, "dev": 7,
                    "quota_used": int(18.9 * 1000**3), **quota} for role in ("output", "checkpoints")}
    path = write_timeline(tmp_path / "quota.jsonl", [_sample(1), _sample(2, disks=disks)])
    assert _advice(path) == ["/kaggle/working at 18.9 GB of 20.0 GB (Kaggle caps /kaggle/working at 20 GB): move "
                             "large files to rt.paths.scratch or delete old checkpoints"]
    low = {"output": {"path": "/out", "free": 2 * GiB, "total": 100 * GiB, "dev": 1}}
    advice = _advice(write_timeline(tmp_path / "low.jsonl", [_sample(1, disks=low)]))
    assert advice == ["the disk of output (/out) went down to 2.0 GiB free (2%): free space before the next save fails"]


def test_budgets_become_labelled_estimates() -> None:
    gpu = Budget("Kaggle weekly GPU quota", "accelerator_hours", "gpu", 30, "h/week", "src-g", "2026-11-30")
    tpu = Budget("Kaggle weekly TPU quota", "accelerator_hours", "tpu", 20, "h/week", "src-t", "2026-11-30")
    lines = usage_lines([gpu, tpu], 2 * 3600, gpus=2, tpu=False)
    assert lines[0] == "this run used 4.00 GPU-hours (2.00 h x 2 GPUs)"
    assert lines[1].startswith("≈ 6.7% of the Kaggle weekly GPU quota of 30 h/week") and "estimate" in lines[1]
    assert len(lines) == 2  # the TPU quota does not apply to a GPU run
    assert usage_lines([gpu, tpu], 3600, gpus=0, tpu=False) == []
    price = price_override("1.64")
    assert price is not None
    assert usage_lines([price], 2.5 * 3600, gpus=1, tpu=False)[1].startswith("≈ $4.10 at your price")
    assert price_override("free") is None and price_override("-1") is None and price_override(None) is None


def test_a_kaggle_run_reports_its_share_of_the_weekly_quota(tmp_path: Path) -> None:
    from portarun.testing import simulate

    with simulate("kaggle", gpus=["Tesla T4"], root=tmp_path / "root",
                  env={"PORTARUN_PRICE_PER_HOUR": "0.5"}) as rt:
        budgets = rt.provider.budgets()
        assert {b.accelerator for b in budgets} == {"gpu", "tpu"} and all(b.source and b.checked for b in budgets)
        with rt.monitor(interval=0.05) as mon:
            pass
    text = str(mon.report(plot=False))
    assert "of the Kaggle weekly GPU quota of 30 h/week" in text and "≈ $0.00 at your price" in text
    with simulate("local", root=tmp_path / "local") as rt:
        assert rt.provider.budgets() == ()


def test_the_plot_has_its_panels_and_the_png_is_written(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from portarun.monitor.plot import PANELS, figure

    samples = [_sample(t * 30, gpus=_gpu(50 + t)) for t in range(1, 30)]
    path = write_timeline(tmp_path / "run.jsonl", samples, gpus=1)
    fig = figure(read_timeline(path))
    titles = [ax.get_title(loc="left") for ax in fig.axes]
    assert titles == list(PANELS)
    labels = [[line.get_label() for line in ax.get_lines()] for ax in fig.axes]
    assert (labels[0] == ["CPU (4 usable)", "GPU 0"] and "RAM" in labels[1]
            and labels[2] == ["waiting for the next batch"])
    report = build_report(path)
    assert report.png == tmp_path / "run.png" and report.note is None
    data = report.png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    from matplotlib.image import imread

    pixels = imread(report.png)
    assert pixels.shape[0] > 300 and pixels.shape[1] > 300
    assert pixels[..., :3].std() > 0.05  # lines and text, not a blank canvas
    assert "data:image/png;base64," in report._repr_html_()


def test_without_matplotlib_the_report_is_text_with_a_clear_message(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    for name in [m for m in sys.modules if m == "matplotlib" or m.startswith("matplotlib.")]:
        monkeypatch.delitem(sys.modules, name)
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # what an absent package looks like to import
    path = write_timeline(tmp_path / "run.jsonl", [_sample(1), _sample(2)])
    report = build_report(path)
    assert report.png is None and report.note == NO_MATPLOTLIB
    assert "pip install portarun[plot]" in str(report)
    assert not (tmp_path / "run.png").exists()


def test_cli_reports_a_timeline(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    waiting = {"n": 10, "wait": 0.62, "busy": 0.38}
    path = write_timeline(tmp_path / "run.jsonl", [_sample(t, steps=waiting) for t in range(1, 5)], end=False)
    assert main(["monitor", "report", str(path), "--no-plot"]) == 0
    out = capsys.readouterr().out
    assert "(still running)" in out and "raise num_workers from 2 (4 CPUs usable)" in out
    assert main(["monitor", "report", str(path), "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["summary"]["wait_fraction"] == pytest.approx(0.62) and data["advice"]
    (tmp_path / "junk.jsonl").write_text("not json\n")
    assert main(["monitor", "report", str(tmp_path / "junk.jsonl")]) == 2
    assert "no monitor start record" in capsys.readouterr().err


def test_cli_without_a_path_reports_the_newest_timeline_of_this_host(tmp_path: Path,
                                                                      capsys: pytest.CaptureFixture[str]) -> None:
    import os

    from portarun.testing import simulate

    with simulate("kaggle", root=tmp_path / "root") as rt:
        folder = Path(rt.paths.output) / "monitor"
        assert main(["monitor", "report", "--no-plot"]) == 2
        assert "no monitor timeline under" in capsys.readouterr().err
        folder.mkdir(parents=True)
        old = write_timeline(folder / "run-old.jsonl", [_sample(1)])
        new = write_timeline(folder / "run-new.jsonl", [_sample(1)])
        os.utime(old, (2_000_000_000, 2_000_000_000))  # written last, whatever its name
        os.utime(new, (1_000_000_000, 1_000_000_000))
        assert main(["monitor", "report", "--no-plot"]) == 0
    assert f"Run monitor report: {old}" in capsys.readouterr().out
