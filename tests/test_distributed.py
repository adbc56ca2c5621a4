"""rt.dist from launcher variables (with look-alike guards), init_distributed, and a real
two-process torchrun with gloo."""
from __future__ import annotations

import json
import os
import random
import socket
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path

import pytest

from portarun.distributed import _first_node, backend_for
from portarun.errors import DistributedError, PortarunWarning
from portarun.testing import simulate

REPO = Path(__file__).resolve().parents[1]
TORCHRUN = {"RANK": "3", "LOCAL_RANK": "1", "WORLD_SIZE": "4", "LOCAL_WORLD_SIZE": "2", "GROUP_RANK": "1",
            "MASTER_ADDR": "10.0.0.1", "MASTER_PORT": "29500", "TORCHELASTIC_RUN_ID": "abc"}
SLURM_STEP = {"SLURM_JOB_ID": "123456", "SLURM_STEP_ID": "0", "SLURM_PROCID": "5", "SLURM_LOCALID": "1",
              "SLURM_NTASKS": "8", "SLURM_NNODES": "4", "SLURM_NODEID": "2", "SLURM_JOB_NAME": "train",
              "SLURM_STEP_TASKS_PER_NODE": "2(x4)", "SLURM_JOB_NODELIST": "gpu[03-05,09]"}


def dist_of(env: dict[str, str]):  # type: ignore[no-untyped-def]
    with simulate(env=env) as rt:
        return rt.dist


def test_single_process_by_default() -> None:
    d = dist_of({})
    assert (d.rank, d.world_size, d.is_main, d.launcher, d.is_distributed) == (0, 1, True, None, False)


def test_torchrun_full_set() -> None:
    d = dist_of(TORCHRUN)
    assert (d.launcher, d.rank, d.local_rank, d.world_size, d.local_world_size, d.node_rank, d.is_main) == (
        "torchrun", 3, 1, 4, 2, 1, False)
    assert (d.master_addr, d.master_port) == ("10.0.0.1", 29500)


def test_torchelastic_run_id_by_hand_is_not_a_launch() -> None:
    d = dist_of({"TORCHELASTIC_RUN_ID": "mine"})
    assert d.launcher is None and "missing RANK" in d.evidence[0]


def test_inconsistent_torchrun_values_are_ignored() -> None:
    with pytest.warns(PortarunWarning, match="contradict each other"):
        d = dist_of({**TORCHRUN, "LOCAL_RANK": "2"})  # LOCAL_RANK must be < LOCAL_WORLD_SIZE
    assert d.launcher is None and d.evidence[0] == (
        "ignored torchrun variables: local rank=2 is not below LOCAL_WORLD_SIZE=2")


def test_rank_typed_by_a_user_warns_and_is_ignored() -> None:
    with pytest.warns(PortarunWarning, match="not by a launcher"):
        d = dist_of({"RANK": "1", "WORLD_SIZE": "2"})
    assert (d.launcher, d.rank, d.world_size) == (None, 0, 1)


def test_slurm_step() -> None:
    d = dist_of(SLURM_STEP)
    assert (d.launcher, d.rank, d.local_rank, d.world_size, d.local_world_size, d.node_rank) == ("slurm", 5, 1, 8, 2, 2)
    # Lightning's and ignite's convention: 15000 + the job id's last four digits
    assert (d.master_addr, d.master_port) == ("gpu03", 18456)


def test_torchrun_inside_slurm_wins() -> None:
    assert dist_of({**SLURM_STEP, **TORCHRUN}).launcher == "torchrun"


@pytest.mark.parametrize("drop_or_set", [
    {"SLURM_STEP_ID": None, "SLURM_STEP_TASKS_PER_NODE": None},  # salloc shell / k8s pod: no step
    {"SLURM_STEP_ID": None, "SLURM_STEP_TASKS_PER_NODE": None, "KUBERNETES_SERVICE_HOST": "10.96.0.1"},
    {"SLURM_JOB_NAME": "bash"},                               # interactive srun --pty bash
])
def test_slurm_look_alikes(drop_or_set: dict[str, str | None]) -> None:
    env = {k: v for k, v in {**SLURM_STEP, **drop_or_set}.items() if v is not None}
    d = dist_of(env)
    assert d.launcher is None and d.evidence[0].startswith("ignored slurm variables")


def test_open_mpi_and_pmi() -> None:
    d = dist_of({"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_LOCAL_RANK": "1", "OMPI_COMM_WORLD_SIZE": "4",
                 "OMPI_COMM_WORLD_LOCAL_SIZE": "2", "OMPI_COMM_WORLD_NODE_RANK": "1"})
    assert (d.launcher, d.rank, d.local_rank, d.node_rank) == ("mpi", 3, 1, 1)
    d = dist_of({"PMI_RANK": "2", "PMI_SIZE": "4", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"})
    assert (d.launcher, d.rank, d.world_size, d.node_rank) == ("mpi", 2, 4, 1)


def test_kubeflow_only_on_the_operators_evidence() -> None:
    pod = {"KUBERNETES_PORT": "tcp://10.96.0.1:443", "MASTER_ADDR": "job-master-0", "MASTER_PORT": "23456",
           "WORLD_SIZE": "3", "RANK": "2"}
    d = dist_of(pod)  # any pod with torch's env:// variables: env, not a guessed PyTorchJob
    assert (d.launcher, d.rank, d.world_size, d.local_world_size, d.node_rank) == ("env", 2, 3, 1, 2)
    pet = {"PET_MASTER_ADDR": "job-master-0", "PET_MASTER_PORT": "23456", "PET_NODE_RANK": "2", "PET_NNODES": "3"}
    d = dist_of({**pod, **pet})
    assert (d.launcher, d.rank, d.world_size, d.node_rank) == ("kubeflow", 2, 3, 2)
    d = dist_of({**pod, **pet, "PET_NPROC_PER_NODE": "4", "WORLD_SIZE": "12"})  # torchrun belongs inside the pod
    assert d.launcher is None and "PET_NPROC_PER_NODE=4" in d.evidence[0]
    d = dist_of({**pod, **pet, "PET_NODE_RANK": "1"})
    assert d.launcher == "env" and "PET_NODE_RANK=1 does not match RANK=2" in d.evidence[-1]


def test_xla_world_only_when_torch_xla_is_already_imported(monkeypatch: pytest.MonkeyPatch) -> None:
    from test_devices import XlaRecorder

    monkeypatch.delitem(sys.modules, "torch_xla", raising=False)
    with simulate(tpu="v5e-8") as rt:
        assert rt.dist.launcher is None
    xla = XlaRecorder(monkeypatch)
    with simulate(tpu="v5e-8") as rt:
        d = rt.dist
    assert (d.launcher, d.rank, d.local_rank, d.world_size, d.local_world_size) == ("xla", 3, 3, 8, 8)
    assert "world_size" in xla.names()


def test_first_node_of_a_slurm_nodelist() -> None:
    assert _first_node("gpu[03-05,09],cpu1") == "gpu03"
    assert _first_node("node7,node8") == "node7"
    assert _first_node("alpha beta") == "alpha"
    assert _first_node(None) is None and _first_node("") is None and _first_node("[1-2]") is None


def test_torchrun_without_master_variables_is_still_torchrun() -> None:
    env = {k: v for k, v in TORCHRUN.items() if not k.startswith("MASTER_") and k != "LOCAL_WORLD_SIZE"}
    d = dist_of(env)
    assert (d.launcher, d.rank, d.local_rank, d.world_size, d.node_rank, d.master_addr) == (
        "torchrun", 3, 1, 4, 1, None)
    assert d.local_world_size == 2 and any("LOCAL_WORLD_SIZE unset" in e for e in d.evidence)


def test_torchrun_master_port_zero_means_the_agents_store() -> None:
    d = dist_of({**TORCHRUN, "MASTER_PORT": "0"})  # what `torchrun --master_port=0` gives its workers
    assert (d.launcher, d.rank, d.master_port) == ("torchrun", 3, None)
    with pytest.warns(PortarunWarning):  # torch's env:// cannot use port 0 without torchrun's agent
        plain = {k: v for k, v in TORCHRUN.items() if k != "TORCHELASTIC_RUN_ID"}
        assert dist_of({**plain, "MASTER_PORT": "0"}).launcher is None


def test_env_contract_and_notebook_ranks() -> None:
    d = dist_of({"RANK": "1", "WORLD_SIZE": "2", "MASTER_ADDR": "10.1.1.1", "MASTER_PORT": "29400"})
    assert (d.launcher, d.rank, d.world_size, d.master_addr, d.master_port) == ("env", 1, 2, "10.1.1.1", 29400)
    d = dist_of({"RANK": "0", "WORLD_SIZE": "1"})  # typed into a notebook: alone, and no warning
    assert (d.launcher, d.world_size, d.is_distributed) == (None, 1, False)
    with pytest.warns(PortarunWarning, match="WORLD_SIZE=4 is set.*missing RANK, MASTER_ADDR, MASTER_PORT"):
        d = dist_of({"WORLD_SIZE": "4"})
    assert (d.launcher, d.world_size) == (None, 1)


def test_deepspeed_launcher() -> None:
    env = {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "MASTER_ADDR": "w0", "MASTER_PORT": "29500",
           "LOCAL_SIZE": "4", "CROSS_RANK": "1", "CROSS_SIZE": "2"}
    d = dist_of(env)
    assert (d.launcher, d.rank, d.local_rank, d.world_size, d.local_world_size, d.node_rank) == (
        "deepspeed", 5, 1, 8, 4, 1)
    d = dist_of({**env, "CROSS_RANK": "2"})  # node index outside CROSS_SIZE: not DeepSpeed, but env:// holds
    assert d.launcher == "env" and "CROSS_RANK=2 is not below CROSS_SIZE=2" in d.evidence[-1]
    with pytest.warns(PortarunWarning, match="missing MASTER_ADDR"):
        d = dist_of({k: v for k, v in env.items() if k != "MASTER_ADDR"})
    assert d.launcher is None and d.evidence[0] == "ignored deepspeed variables: missing MASTER_ADDR"


def test_mpirun_inside_a_slurm_allocation() -> None:
    inherited = {**SLURM_STEP, "SLURM_PROCID": "1", "SLURM_LOCALID": "0", "SLURM_NTASKS": "2",
                 "SLURM_STEP_TASKS_PER_NODE": "1(x2)", "SLURM_NODEID": "1"}
    ompi = {"OMPI_COMM_WORLD_RANK": "3", "OMPI_COMM_WORLD_SIZE": "4", "OMPI_COMM_WORLD_LOCAL_RANK": "1",
            "OMPI_COMM_WORLD_LOCAL_SIZE": "2"}
    d = dist_of({**inherited, **ompi})
    assert (d.launcher, d.rank, d.world_size, d.local_rank) == ("mpi", 3, 4, 1)
    assert any("inherited SLURM step" in e for e in d.evidence)
    # srun --mpi=pmix: both describe the same task, SLURM's reader (with its rendezvous) decides
    same = {**ompi, "OMPI_COMM_WORLD_RANK": "5", "OMPI_COMM_WORLD_SIZE": "8"}
    assert dist_of({**SLURM_STEP, **same}).launcher == "slurm"


def test_slurm_with_enroot_pytorch_hook_is_accepted() -> None:
    hook = {"RANK": "5", "LOCAL_RANK": "1", "WORLD_SIZE": "8", "MASTER_ADDR": "gpu03", "MASTER_PORT": "12233"}
    d = dist_of({**SLURM_STEP, **hook})
    assert (d.launcher, d.rank, d.master_port) == ("slurm", 5, 12233)
    d = dist_of({**SLURM_STEP, **hook, "RANK": "2"})  # a launcher inside the step: its variables win
    assert (d.launcher, d.rank) == ("env", 2) and "RANK=2 differs" in d.evidence[-1]


@pytest.mark.parametrize("value", ["-1", "", " ", "abc", "3.0", "²", "1e3", "9" * 5000, "99999999999", "0x10"])
@pytest.mark.parametrize("name", ["RANK", "WORLD_SIZE", "LOCAL_RANK", "SLURM_PROCID", "SLURM_NTASKS",
                                  "OMPI_COMM_WORLD_RANK", "JSM_NAMESPACE_SIZE", "SKYPILOT_NUM_NODES", "MASTER_PORT"])
def test_hostile_values_are_named_never_a_traceback(name: str, value: str) -> None:
    envs = {"RANK": TORCHRUN, "WORLD_SIZE": TORCHRUN, "LOCAL_RANK": TORCHRUN, "MASTER_PORT": TORCHRUN,
            "SLURM_PROCID": SLURM_STEP, "SLURM_NTASKS": {**SLURM_STEP, "SLURM_STEP_TASKS_PER_NODE": "x"},
            "OMPI_COMM_WORLD_RANK": {"OMPI_COMM_WORLD_RANK": "0", "OMPI_COMM_WORLD_SIZE": "2",
                                     "OMPI_COMM_WORLD_LOCAL_RANK": "0"},
            "JSM_NAMESPACE_SIZE": {"JSM_NAMESPACE_RANK": "0", "JSM_NAMESPACE_LOCAL_RANK": "0",
                                   "JSM_NAMESPACE_SIZE": "2", "LSB_JOBID": "7"},
            "SKYPILOT_NUM_NODES": {"SKYPILOT_NODE_RANK": "0", "SKYPILOT_NUM_NODES": "2",
                                   "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2"}}
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        d = dist_of({**envs[name], name: value})
    assert (d.launcher, d.world_size) == (None, 1)
    named = [e for e in d.evidence if name in e]
    assert named and all(len(e) < 400 for e in d.evidence), d.evidence


def test_absurd_slurm_layouts_are_not_expanded() -> None:
    d = dist_of({**SLURM_STEP, "SLURM_STEP_TASKS_PER_NODE": "1(x999999999)", "SLURM_NNODES": "999999999"})
    assert (d.launcher, d.rank, d.local_rank, d.local_world_size, d.node_rank) == ("slurm", 5, 1, 2, 2)


@pytest.mark.parametrize("env", [
    {"RANK": "4", "WORLD_SIZE": "4", "MASTER_ADDR": "a", "MASTER_PORT": "1"},         # rank = world
    {"RANK": "0", "WORLD_SIZE": "0", "MASTER_ADDR": "a", "MASTER_PORT": "1"},         # empty world
    {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": "a", "MASTER_PORT": "70000"},     # not a port
    {"RANK": "0", "WORLD_SIZE": "2", "MASTER_ADDR": " ", "MASTER_PORT": "1"},         # blank address
    {**SLURM_STEP, "SLURM_PROCID": "8"},
    {**SLURM_STEP, "SLURM_LOCALID": "2"},                                             # 2 tasks on this node
])
def test_inconsistent_values_are_never_believed(env: dict[str, str]) -> None:
    with warnings.catch_warnings(record=True):
        warnings.simplefilter("always")
        d = dist_of(env)
    assert d.launcher is None and d.evidence[0].startswith("ignored ")


def test_backends() -> None:
    assert [backend_for(k) for k in ("cuda", "xla", "mps", "cpu")] == ["nccl", "xla", "gloo", "gloo"]


def test_init_distributed_is_a_no_op_for_one_process() -> None:
    import torch.distributed as dist

    with simulate() as rt:
        assert rt.init_distributed().world_size == 1
    assert not dist.is_initialized()


@pytest.mark.slow
def test_a_one_process_launch_gets_its_process_group(tmp_path: Path) -> None:
    # `portarun launch --nproc 1` (torchrun with one worker): the script's first collective
    # must work, as it will with more processes.
    (tmp_path / "one.py").write_text(
        "import torch, torch.distributed as dist, portarun\n"
        "rt = portarun.detect()\nrt.init_distributed()\n"
        "t = torch.ones(1)\ndist.all_reduce(t)\nprint('launcher', rt.dist.launcher, 'sum', t.item())\n"
        "dist.destroy_process_group()\n")
    done = subprocess.run([sys.executable, "-m", "portarun", "launch", "--nproc", "1", str(tmp_path / "one.py")],
                          capture_output=True, text=True, timeout=180, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "launcher torchrun sum 1.0" in done.stdout


def test_mpi_without_rendezvous_address_is_a_clear_error() -> None:
    env = {"PMI_RANK": "0", "PMI_SIZE": "2", "MPI_LOCALRANKID": "0", "MPI_LOCALNRANKS": "2"}
    with simulate(env=env) as rt, pytest.raises(DistributedError, match="MASTER_ADDR"):
        rt.init_distributed()


WORKER = '''
import json, os, sys
import torch, torch.distributed as dist
import portarun

rt = portarun.detect()
rt.init_distributed()
rt.init_distributed()  # idempotent
total = torch.tensor([float(rt.dist.rank + 1)])
dist.all_reduce(total)
out = {"rank": rt.dist.rank, "local_rank": rt.dist.local_rank, "world_size": rt.dist.world_size,
       "is_main": rt.dist.is_main, "launcher": rt.dist.launcher, "sum": total.item(),
       "backend": dist.get_backend(), "device": str(rt.device.torch()),
       "omp": os.environ.get("OMP_NUM_THREADS")}
with open(os.path.join(sys.argv[1], f"rank{rt.dist.rank}.json"), "w") as f:
    json.dump(out, f)
dist.barrier()  # both ranks done before gloo is torn down (a rank still in flight can abort)
dist.destroy_process_group()
# The work is written. Gloo's threads can abort interpreter finalization (SIGABRT, "terminate called
# without an active exception"): a torch teardown race (pytorch/pytorch#179291). Leave without it.
sys.stdout.flush()
os._exit(0)
'''


def run_two(tmp_path: Path, launcher: list[str]) -> list[dict[str, object]]:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out"
    out.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "OMP_NUM_THREADS"))}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PORTARUN_DEVICE"] = "cpu"
    done = subprocess.run([sys.executable, *launcher, str(script), str(out)], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    return [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]


def check_two(results: list[dict[str, object]]) -> None:
    assert [r["rank"] for r in results] == [0, 1]
    assert [r["local_rank"] for r in results] == [0, 1]
    assert [r["is_main"] for r in results] == [True, False]
    assert all(r["world_size"] == 2 and r["launcher"] == "torchrun" for r in results)
    assert all(r["sum"] == 3.0 and r["backend"] == "gloo" and r["device"] == "cpu" for r in results)


@pytest.mark.slow
def test_real_torchrun_two_processes_gloo(tmp_path: Path) -> None:
    check_two(run_two(tmp_path, ["-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2"]))


def free_port() -> int:
    """A free port in 15000-24999, the range SLURM's port convention (15000 + 4 digits) covers."""
    for candidate in random.sample(range(15000, 25000), 200):
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", candidate))
            except OSError:
                continue
            return candidate
    raise AssertionError("no free port in 15000-24999")


def hand_launch(tmp_path: Path, per_rank: list[dict[str, str]]) -> list[dict[str, object]]:
    """Start one real process per entry of ``per_rank`` with exactly those launcher variables,
    as the launcher would, and collect what each worker saw after a gloo all_reduce."""
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out"
    out.mkdir()
    base = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "OMP_NUM_THREADS"))
            and k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT", "TORCHELASTIC_RUN_ID"}
            and not k.startswith(("SLURM_", "OMPI_", "PMI_", "SKYPILOT_", "JSM_", "LSB_", "PET_"))}
    base.update(PYTHONPATH=str(REPO) + os.pathsep + base.get("PYTHONPATH", ""), PORTARUN_DEVICE="cpu")
    procs = [subprocess.Popen([sys.executable, str(script), str(out)], cwd=tmp_path, env={**base, **env},
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True) for env in per_rank]
    logs = [p.communicate(timeout=180)[0] for p in procs]
    assert all(p.returncode == 0 for p in procs), logs
    return [json.loads((out / f"rank{r}.json").read_text()) for r in range(len(per_rank))]


def check_hand_launch(results: list[dict[str, object]], launcher: str) -> None:
    assert [(r["rank"], r["world_size"], r["launcher"]) for r in results] == [(0, 2, launcher), (1, 2, launcher)]
    assert all(r["sum"] == 3.0 and r["backend"] == "gloo" for r in results)


@pytest.mark.slow
@pytest.mark.parametrize("launcher", ["env", "deepspeed", "slurm", "mpi", "skypilot"])
def test_init_distributed_for_each_new_launcher(tmp_path: Path, launcher: str) -> None:
    port = str(free_port())
    master = {"MASTER_ADDR": "127.0.0.1", "MASTER_PORT": port}
    per_rank: Callable[[int], dict[str, str]] = {
        "env": lambda r: {**master, "RANK": str(r), "WORLD_SIZE": "2"},
        "deepspeed": lambda r: {**master, "RANK": str(r), "LOCAL_RANK": str(r), "WORLD_SIZE": "2", "LOCAL_SIZE": "2",
                                "CROSS_RANK": "0", "CROSS_SIZE": "1"},
        # srun's variables only: the rendezvous is the node list's first host and 15000 + the job id's last digits
        "slurm": lambda r: {"SLURM_JOB_ID": str(int(port) - 15000), "SLURM_STEP_ID": "0", "SLURM_PROCID": str(r),
                            "SLURM_LOCALID": str(r), "SLURM_NTASKS": "2", "SLURM_NODEID": "0",
                            "SLURM_STEP_NODELIST": "127.0.0.1", "SLURM_STEP_TASKS_PER_NODE": "2"},
        "mpi": lambda r: {**master, "OMPI_COMM_WORLD_RANK": str(r), "OMPI_COMM_WORLD_SIZE": "2",
                          "OMPI_COMM_WORLD_LOCAL_RANK": str(r), "OMPI_COMM_WORLD_LOCAL_SIZE": "2"},
        "skypilot": lambda r: {"MASTER_PORT": port, "SKYPILOT_NODE_RANK": str(r), "SKYPILOT_NUM_NODES": "2",
                               "SKYPILOT_NODE_IPS": "127.0.0.1\n127.0.0.1", "SKYPILOT_NUM_GPUS_PER_NODE": "0"},
    }[launcher]
    check_hand_launch(hand_launch(tmp_path, [per_rank(0), per_rank(1)]), launcher)


def test_skypilot_without_a_port_is_a_clear_error() -> None:
    env = {"SKYPILOT_NODE_RANK": "0", "SKYPILOT_NUM_NODES": "2", "SKYPILOT_NODE_IPS": "10.0.0.1\n10.0.0.2"}
    with simulate(env=env) as rt, pytest.raises(DistributedError, match="MASTER_PORT"):
        rt.init_distributed()
