"""`portarun.notebook_launch`: real forked gloo workers (from pytest and from a real Jupyter
kernel driven by nbclient), errors with the failing rank's traceback, the CUDA-fork refusal,
torch_xla's launcher through a stand-in torch_xla, and real CUDA where a GPU is lent."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from test_distributed import REPO

import portarun
from portarun.errors import DistributedError
from portarun.notebook_launcher import WorkerError
from portarun.testing import simulate

pytestmark = pytest.mark.hosts  # each worker calls portarun.detect() on the session's host


@pytest.fixture(autouse=True)
def _cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORTARUN_DEVICE", "cpu")
    for name in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"):
        monkeypatch.delenv(name, raising=False)
    portarun.detect(refresh=True)


def all_reduce_rank(scale: float) -> dict[str, Any]:
    import torch
    import torch.distributed as dist

    rt = portarun.detect()
    rt.init_distributed()
    total = torch.tensor([float(rt.dist.rank + 1)]) * scale
    dist.all_reduce(total)
    return {"rank": rt.dist.rank, "local_rank": rt.dist.local_rank, "world_size": rt.dist.world_size,
            "launcher": rt.dist.launcher, "backend": dist.get_backend(), "device": str(rt.device.torch()),
            "sum": total.item(), "pid": os.getpid(), "threads": torch.get_num_threads()}


def test_two_gloo_workers_each_see_their_rank() -> None:
    results = portarun.notebook_launch(all_reduce_rank, 2.0, nproc=2)
    assert [(r["rank"], r["local_rank"], r["world_size"], r["launcher"]) for r in results] == [
        (0, 0, 2, "env"), (1, 1, 2, "env")]
    assert all(r["sum"] == 6.0 and r["backend"] == "gloo" and r["device"] == "cpu" for r in results)
    assert len({r["pid"] for r in results} | {os.getpid()}) == 3  # two real processes besides this one
    assert portarun.detect().dist.world_size == 1  # the caller is untouched


def fail_on_rank_one() -> int:
    rank = portarun.detect().dist.rank
    if rank == 1:
        raise ValueError("bad batch on rank one")
    return rank


def test_a_worker_error_comes_back_with_its_rank_and_traceback() -> None:
    with pytest.raises(WorkerError) as caught:
        portarun.notebook_launch(fail_on_rank_one, nproc=2)
    err = caught.value
    assert err.rank == 1 and str(err).startswith("rank 1 of 2 failed: ValueError: bad batch on rank one")
    assert err.worker_traceback and "fail_on_rank_one" in err.worker_traceback
    assert isinstance(err, portarun.PortarunError)


def killed_on_rank_one() -> int:
    if portarun.detect().dist.rank == 1:
        os.kill(os.getpid(), signal.SIGKILL)
    return 0


def test_a_worker_killed_by_a_signal_is_named() -> None:
    with pytest.raises(WorkerError, match=r"rank 1 of 2 failed: the process was killed by signal 9 \(SIGKILL\)"):
        portarun.notebook_launch(killed_on_rank_one, nproc=2)


def waits_forever() -> None:
    time.sleep(120)


def test_timeout_stops_every_worker() -> None:
    started = time.monotonic()
    with pytest.raises(DistributedError, match="did not finish within timeout=1"):
        portarun.notebook_launch(waits_forever, nproc=2, timeout=1)
    assert time.monotonic() - started < 30


def unpicklable() -> Any:
    return lambda: None


def test_a_result_that_cannot_come_back_is_a_clear_error() -> None:
    with pytest.raises(WorkerError, match="return value cannot be sent back"):
        portarun.notebook_launch(unpicklable, nproc=2)


@pytest.mark.parametrize("nproc", [0, -1, "two", True])
def test_bad_nproc(nproc: Any) -> None:
    with pytest.raises(DistributedError, match="not 'auto' or a positive number"):
        portarun.notebook_launch(all_reduce_rank, 1.0, nproc=nproc)


def test_inside_a_launch_it_refuses() -> None:
    env = {"RANK": "1", "LOCAL_RANK": "1", "WORLD_SIZE": "2", "TORCHELASTIC_RUN_ID": "x", "MASTER_ADDR": "h",
           "MASTER_PORT": "1"}
    with simulate(env=env), pytest.raises(DistributedError, match="already rank 1 of 2"):
        portarun.notebook_launch(all_reduce_rank, 1.0)


def test_initialised_cuda_is_refused_before_forking(monkeypatch: pytest.MonkeyPatch) -> None:
    import torch

    monkeypatch.delenv("PORTARUN_DEVICE")
    with simulate(gpus=["Tesla T4"] * 2):
        with pytest.raises(DistributedError, match="more processes than the 2 cuda"):
            portarun.notebook_launch(all_reduce_rank, 1.0, nproc=3)
        # CPU-only torch here cannot hold a CUDA context: its own answer is replaced, at this one call
        monkeypatch.setattr(torch.cuda, "is_initialized", lambda: True)
        with pytest.raises(DistributedError, match="CUDA is already initialised.*Restart the kernel"):
            portarun.notebook_launch(all_reduce_rank, 1.0)


class XlaLauncher:
    """Stand-in for torch_xla.launch (real signature, pytorch/xla@022ecde6:torch_xla/torch_xla.py):
    records the call and runs the worker as process 0 of 8, in this process: torch_xla.runtime
    answers as it does in a launched process while the worker runs, as in the caller otherwise."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.calls: list[dict[str, Any]] = []
        self.runtime = sys.modules["torch_xla.runtime"]
        self.launched = {name: getattr(self.runtime, name) for name in ("world_size", "local_process_count")}
        for name in ("world_size", "global_ordinal", "local_ordinal", "local_process_count"):
            value = 1 if name in ("world_size", "local_process_count") else 0
            monkeypatch.setattr(self.runtime, name, lambda value=value: value)

    def __call__(self, fn: Any, args: tuple[Any, ...] = (), start_method: str = "spawn",
                 debug_single_process: bool = False) -> None:
        self.calls.append({"start_method": start_method, "debug_single_process": debug_single_process})
        caller = {name: getattr(self.runtime, name) for name in self.launched}
        for name, value in self.launched.items():
            setattr(self.runtime, name, value)
        try:
            fn(0, *args)
        finally:
            for name, value in caller.items():
                setattr(self.runtime, name, value)
            portarun.detect(refresh=True)  # the worker's runtime would have died with its process


def tpu_worker(x: int) -> dict[str, Any]:
    rt = portarun.detect()
    return {"x": x, "launcher": rt.dist.launcher, "world": rt.dist.world_size, "kind": rt.device.kind}


def tpu_failure() -> None:
    raise RuntimeError("XLA compilation failed")


def test_tpu_uses_torch_xlas_launcher_with_fork(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_devices import XlaRecorder

    XlaRecorder(monkeypatch)
    launch = XlaLauncher(monkeypatch)
    monkeypatch.setattr(sys.modules["torch_xla"], "launch", launch)
    monkeypatch.delenv("PORTARUN_DEVICE")
    monkeypatch.setenv("PJRT_DEVICE", "")  # so that the value notebook_launch sets is removed afterwards
    monkeypatch.delenv("PJRT_DEVICE")
    with simulate(tpu="v5e-8"):
        assert portarun.detect().dist.world_size == 1  # torch_xla imported in the notebook: still alone
        assert portarun.notebook_launch(tpu_worker, 7) == [{"x": 7, "launcher": "xla", "world": 8, "kind": "xla"}]
        assert launch.calls == [{"start_method": "fork", "debug_single_process": False}]
        assert os.environ["PJRT_DEVICE"] == "TPU"
        with pytest.raises(WorkerError, match="rank 0 of 1 failed: RuntimeError: XLA compilation failed"):
            portarun.notebook_launch(tpu_failure, nproc=1)
        assert launch.calls[-1]["debug_single_process"] is True
        with pytest.raises(DistributedError, match="1 process or one per TPU device"):
            portarun.notebook_launch(tpu_worker, 1, nproc=4)


NOTEBOOK_CELLS = [
    "import json, portarun, torch, torch.distributed as dist\n"
    "print(type(get_ipython()).__name__)",
    "def train(scale):\n"
    "    rt = portarun.detect()\n"
    "    rt.init_distributed()\n"
    "    print(f'worker {rt.dist.rank} up', flush=True)\n"
    "    t = torch.tensor([float(rt.dist.rank + 1)]) * scale\n"
    "    dist.all_reduce(t)\n"
    "    return {'rank': rt.dist.rank, 'world': rt.dist.world_size, 'device': str(rt.device.torch()), 'sum': t.item()}",
    "print(json.dumps(portarun.notebook_launch(train, 2.0, nproc=2)))",
    "def boom():\n"
    "    if portarun.detect().dist.rank == 1:\n"
    "        raise KeyError('missing column')\n"
    "try:\n"
    "    portarun.notebook_launch(boom, nproc=2)\n"
    "except portarun.PortarunError as e:\n"
    "    print(json.dumps({'rank': e.rank, 'message': str(e).splitlines()[0], 'tb': e.worker_traceback}))",
]


@pytest.mark.slow
def test_from_a_real_jupyter_kernel(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    nbformat = pytest.importorskip("nbformat")
    nbclient = pytest.importorskip("nbclient")
    monkeypatch.setenv("PYTHONPATH", str(REPO) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in NOTEBOOK_CELLS])
    nbclient.NotebookClient(nb, timeout=240, kernel_name="python3",
                            resources={"metadata": {"path": str(tmp_path)}}).execute()
    out = ["".join(o.get("text", "") for o in cell.outputs if o.output_type == "stream") for cell in nb.cells]
    assert out[0].strip() == "ZMQInteractiveShell"  # a real kernel, not a plain interpreter
    assert "worker 0 up" in out[2] and "worker 1 up" in out[2]  # the workers' output reaches the cell
    assert json.loads(out[2].strip().splitlines()[-1]) == [{"rank": 0, "world": 2, "device": "cpu", "sum": 6.0},
                                  {"rank": 1, "world": 2, "device": "cpu", "sum": 6.0}]
    failure = json.loads(out[3].strip().splitlines()[-1])
    assert failure["rank"] == 1 and failure["message"] == "rank 1 of 2 failed: KeyError: 'missing column'"
    assert "in boom" in failure["tb"]


GPU_CHECK = '''
import json, sys, portarun, torch
def on_gpu():
    import torch.distributed as dist
    rt = portarun.detect()
    rt.init_distributed()
    t = torch.ones(1, device=rt.device.torch())
    dist.all_reduce(t)
    return {"device": str(t.device), "backend": dist.get_backend(), "sum": t.item(), "world": rt.dist.world_size}
results = portarun.notebook_launch(on_gpu)
torch.zeros(1, device="cuda")  # now CUDA is initialised in this process: a second launch must refuse
try:
    portarun.notebook_launch(on_gpu)
    refused = None
except portarun.PortarunError as e:
    refused = str(e)
print(json.dumps({"results": results, "count": torch.cuda.device_count(), "refused": refused}))
'''


@pytest.mark.gpu
def test_real_cuda_fork_and_refusal(tmp_path: Path) -> None:
    from portarun.probe import Probe
    from portarun.runtime import build_runtime

    if build_runtime(Probe.real()).device.kind != "cuda":
        pytest.skip("no CUDA GPU here: the real-GPU notebook launch is checked where one is lent")
    env = {k: v for k, v in os.environ.items() if k != "PORTARUN_DEVICE"}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    done = subprocess.run([sys.executable, "-c", GPU_CHECK], capture_output=True, text=True, timeout=300, env=env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert len(report["results"]) == report["count"]
    assert all(r["backend"] == "nccl" and r["sum"] == report["count"] and r["world"] == report["count"]
               for r in report["results"])
    assert [r["device"] for r in report["results"]] == [f"cuda:{i}" for i in range(report["count"])]
    assert report["refused"] and "CUDA is already initialised" in report["refused"]
