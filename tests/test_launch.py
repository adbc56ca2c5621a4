"""`portarun launch`: the plan per device kind, errors, torch_xla's launcher (stand-in), and
a real `portarun launch --nproc 2` run."""
from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from test_distributed import REPO, check_two, run_two

from portarun._cli.launch import _xla_main, plan
from portarun.errors import DistributedError
from portarun.testing import simulate


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "train.py"
    path.write_text("print('hi')\n")
    return str(path)


def test_cpu_auto_uses_half_the_cores_and_spreads_threads(script: str) -> None:
    with simulate(cpus=8) as rt:
        p = plan(rt, "auto", script, ["--lr", "3"])
    assert (p.nproc, p.xla, p.env) == (4, False, {"OMP_NUM_THREADS": "2"})
    assert p.argv[1:] == ("-m", "torch.distributed.run", "--standalone", "--nnodes", "1", "--nproc-per-node", "4",
                          script, "--lr", "3")
    with simulate(cpus=8, env={"OMP_NUM_THREADS": "3"}) as rt:
        assert plan(rt, "2", script, []).env == {}


@pytest.mark.parametrize(("cpus", "expected"), [(1, 1), (2, 2), (3, 2), (16, 8)])
def test_cpu_auto_starts_two_ranks_where_two_cpus_exist(script: str, cpus: int, expected: int) -> None:
    # One rank runs no collective at all: a DDP script "tested" that way can still fail on a
    # real multi-device machine, so auto never starts one process where two CPUs exist.
    with simulate(cpus=cpus) as rt:
        p = plan(rt, "auto", script, [])
    assert p.nproc == expected
    assert ("at least 2" in p.reason) == (cpus >= 2)


def test_gpu_auto_is_one_per_gpu_and_more_is_an_error(script: str) -> None:
    with simulate(gpus=["Tesla T4"] * 2) as rt:
        assert plan(rt, "auto", script, []).nproc == 2
        with pytest.raises(DistributedError, match="more processes than the 2 cuda"):
            plan(rt, "3", script, [])


def test_tpu_uses_torch_xla_launcher(script: str) -> None:
    with simulate(tpu="v5e-8") as rt:
        p = plan(rt, "auto", script, ["x"])
        assert p.xla and p.nproc == 8 and p.argv[1:4] == ("-m", "portarun._cli.launch", "8")
        assert p.env == {"PJRT_DEVICE": "TPU"}
        assert plan(rt, "1", script, []).nproc == 1
        with pytest.raises(DistributedError, match="1 process or one per TPU device"):
            plan(rt, "4", script, [])


@pytest.mark.parametrize("nproc", ["0", "-1", "two"])
def test_bad_nproc(script: str, nproc: str) -> None:
    with simulate() as rt, pytest.raises(DistributedError, match="not 'auto' or a positive number"):
        plan(rt, nproc, script, [])


def test_missing_script(tmp_path: Path) -> None:
    with simulate() as rt, pytest.raises(DistributedError, match="not found"):
        plan(rt, "auto", str(tmp_path / "nope.py"), [])


def test_xla_worker_runs_the_script_as_main(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    from test_devices import XlaRecorder

    xla = XlaRecorder(monkeypatch)
    monkeypatch.setenv("PJRT_DEVICE", "")  # recorded, so the value _xla_main sets is removed afterwards
    monkeypatch.delenv("PJRT_DEVICE")
    monkeypatch.setattr(sys, "argv", list(sys.argv))
    monkeypatch.setattr(sys, "path", list(sys.path))
    marker = tmp_path / "ran.txt"
    script = tmp_path / "tpu_train.py"
    script.write_text("import sys\nif __name__ == '__main__':\n    open(sys.argv[1], 'w').write(' '.join(sys.argv))\n")
    _xla_main(["8", str(script), str(marker)])
    assert marker.read_text() == f"{script} {marker}"
    launch = [args for name, args in xla.calls if name == "launch"]
    assert launch and launch[0][1] == {"args": (str(script), [str(marker)]), "debug_single_process": False}
    import os
    assert os.environ["PJRT_DEVICE"] == "TPU"


def test_dry_run_prints_the_command(script: str) -> None:
    done = subprocess.run([sys.executable, "-m", "portarun", "launch", "--nproc", "1", "--dry-run", script, "--x"],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 0, done.stderr
    assert "-m torch.distributed.run --standalone --nnodes 1 --nproc-per-node 1" in done.stdout
    assert done.stdout.rstrip().endswith(f"{script} --x")


def test_launch_error_is_one_line(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "portarun", "launch", str(tmp_path / "missing.py")],
                          capture_output=True, text=True, timeout=60, cwd=REPO)
    assert done.returncode == 2 and done.stderr.startswith("portarun: error: script")


@pytest.mark.slow
def test_portarun_launch_two_processes(tmp_path: Path) -> None:
    results = run_two(tmp_path, ["-m", "portarun", "launch", "--nproc", "2"])
    check_two(results)
    assert all(r["omp"] is not None for r in results)
