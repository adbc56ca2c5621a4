"""`portarun launch` across nodes: the torchrun command from the options and from real SLURM and
SkyPilot variable sets (tests/fixtures/launchers/, each case citing its source), and a real
two-"node" run on this machine over torchrun's c10d rendezvous."""
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
from test_distributed import REPO, WORKER, free_port

from portarun._cli.launch import RDZV_PORT, Nodes, plan
from portarun.errors import DistributedError
from portarun.testing import simulate

LAUNCHERS = Path(__file__).parent / "fixtures" / "launchers"


def case(peer: str, case_id: str) -> dict[str, Any]:
    """A launcher case from the corpus: its environment as the peer's test or docs set it."""
    cases = json.loads((LAUNCHERS / f"{peer}.json").read_text())["cases"]
    found: dict[str, Any] = next(c for c in cases if c["id"] == case_id)
    return found


def torchrun_args(argv: tuple[str, ...], script: str) -> list[str]:
    """The torchrun options of a plan, between `-m torch.distributed.run` and the script."""
    assert argv[1:3] == ("-m", "torch.distributed.run")
    return list(argv[3:argv.index(script)])


@pytest.fixture
def script(tmp_path: Path) -> str:
    path = tmp_path / "train.py"
    path.write_text("print('hi')\n")
    return str(path)


def test_options_give_a_c10d_rendezvous(script: str) -> None:
    with simulate(cpus=4) as rt:
        p = plan(rt, "2", script, ["--lr", "3"], Nodes(nnodes=3, node_rank=2, endpoint="10.0.0.1:1234",
                                                       rdzv_id="job7", max_restarts=1))
    assert torchrun_args(p.argv, script) == [
        "--nnodes", "3", "--nproc-per-node", "2", "--rdzv-backend", "c10d", "--rdzv-endpoint", "10.0.0.1:1234",
        "--rdzv-id", "job7", "--node-rank", "2", "--max-restarts", "1"]
    assert p.argv[-2:] == ("--lr", "3") and "--standalone" not in p.argv
    assert p.nodes == "3 node(s) (--nnodes), this is node 2"


def test_a_bare_host_gets_torchruns_c10d_port(script: str) -> None:
    with simulate() as rt:
        p = plan(rt, "1", script, [], Nodes(nnodes=2, endpoint="head-node"))
    assert f"head-node:{RDZV_PORT}" in p.argv and "--node-rank" not in p.argv


def test_one_node_stays_standalone_with_restarts(script: str) -> None:
    with simulate() as rt:
        p = plan(rt, "2", script, [], Nodes(max_restarts=2))
    assert torchrun_args(p.argv, script) == ["--standalone", "--nnodes", "1", "--nproc-per-node", "2",
                                             "--max-restarts", "2"]


@pytest.mark.parametrize(("nodes", "message"), [
    (Nodes(nnodes=2), "need a rendezvous: pass --rdzv-endpoint"),
    (Nodes(nnodes=0), "--nnodes 0 is not a positive number"),
    (Nodes(nnodes=2, node_rank=2, endpoint="h:1"), "--node-rank 2 is not between 0 and 1"),
    (Nodes(nnodes=2, endpoint="h:99999"), "is not HOST:PORT"),
    (Nodes(nnodes=2, endpoint="h:1:2"), "is not HOST:PORT"),
    (Nodes(max_restarts=-1), "--max-restarts -1 is negative"),
])
def test_bad_node_options_are_clear_errors(script: str, nodes: Nodes, message: str) -> None:
    with simulate() as rt, pytest.raises(DistributedError, match=message):
        plan(rt, "1", script, [], nodes)


def test_tpu_launch_is_one_host_only(script: str) -> None:
    with simulate(tpu="v5e-8") as rt, pytest.raises(DistributedError, match="--worker=all"):
        plan(rt, "auto", script, [], Nodes(nnodes=2, endpoint="h:1"))


def test_slurm_step_with_one_task_per_node() -> None:
    # TensorFlow's SlurmClusterResolver test: three nodes, one task each, this is task 0.
    # A real srun step always has SLURM_JOB_ID, which gives the port (15000 + its last 4 digits).
    env = case("tensorflow", "simple-retrieval")["env"]
    with simulate(env=env) as rt, pytest.raises(DistributedError, match="--rdzv-endpoint"):
        plan(rt, "1", __file__, [])  # no job id, so no port: the rendezvous must be given
    with simulate(env={**env, "SLURM_JOB_ID": "4242"}) as rt:
        p = plan(rt, "1", __file__, [])
    assert torchrun_args(p.argv, __file__) == [
        "--nnodes", "3", "--nproc-per-node", "1", "--rdzv-backend", "c10d", "--rdzv-endpoint", "t02n13:19242",
        "--rdzv-id", "slurm-4242"]  # the node's rank is shown, not passed: c10d ignores it
    assert p.nodes == "3 node(s) (slurm), this is node 0"


def test_slurm_options_override_the_step() -> None:
    env = {**case("tensorflow", "simple-retrieval")["env"], "SLURM_JOB_ID": "4242"}
    with simulate(env=env) as rt:
        p = plan(rt, "1", __file__, [], Nodes(endpoint="login1:5000", rdzv_id="mine"))
    assert "login1:5000" in p.argv and "mine" in p.argv and "slurm-4242" not in p.argv


@pytest.mark.parametrize(("peer", "case_id"), [("tensorflow", "multi-task-per-node"),
                                               ("ignite", "slurm-usual-multinode-with-step")])
def test_slurm_step_with_several_tasks_per_node_is_refused(peer: str, case_id: str) -> None:
    with simulate(env=case(peer, case_id)["env"]) as rt, pytest.raises(DistributedError,
                                                                       match="--ntasks-per-node=1"):
        plan(rt, "1", __file__, [])


def test_slurm_look_alike_shell_is_one_node() -> None:
    # SLURM_* without a step (an salloc/sbatch shell): rt.dist does not believe it, nor does launch.
    env = {k: v for k, v in case("tensorflow", "simple-retrieval")["env"].items() if "STEP" not in k}
    with simulate(env={**env, "SLURM_NTASKS": "3", "SLURM_JOB_ID": "1"}) as rt:
        p = plan(rt, "1", __file__, [])
    assert "--standalone" in p.argv and p.nodes == "one node"


def test_skypilot_node() -> None:
    env = {**case("skypilot", "node-one-of-two")["env"], "SKYPILOT_TASK_ID": "sky-managed-2024-01-01-1_my-job_1"}
    with simulate(env=env) as rt:
        p = plan(rt, "auto", __file__, [])
    assert torchrun_args(p.argv, __file__)[2:] == [
        "--nproc-per-node", str(p.nproc), "--rdzv-backend", "c10d", "--rdzv-endpoint", f"172.31.5.10:{RDZV_PORT}",
        "--rdzv-id", "sky-managed-2024-01-01-1_my-job_1"]
    assert p.nodes == "2 node(s) (skypilot), this is node 1"
    assert torchrun_args(p.argv, __file__)[:2] == ["--nnodes", "2"]


def test_dry_run_prints_the_multi_node_command(tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "SKYPILOT_"))}
    env.update(case("skypilot", "node-one-of-two")["env"])
    done = subprocess.run([sys.executable, "-m", "portarun", "launch", "--nproc", "1", "--dry-run", __file__],
                          capture_output=True, text=True, timeout=60, cwd=REPO, env=env)
    assert done.returncode == 0, done.stderr
    assert "2 node(s) (skypilot), this is node 1" in done.stdout
    assert f"--rdzv-backend c10d --rdzv-endpoint 172.31.5.10:{RDZV_PORT}" in done.stdout


def clean_env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "OMP_NUM_THREADS", "SLURM_",
                                                                    "SKYPILOT_", "TORCHELASTIC_"))
           and k not in {"RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR", "MASTER_PORT"}}
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    env["PORTARUN_DEVICE"] = "cpu"
    return env


def agents(tmp_path: Path, script: Path, extra: list[str], args: list[str], nodes: int = 2,
           timeout: float = 240) -> list[str]:
    """Start ``nodes`` real `portarun launch --nnodes N --nproc 1` agents on one c10d rendezvous
    on loopback, wait for them (``timeout`` seconds in all), and return their logs (each must
    exit 0; the logs are shown otherwise, also after a timeout)."""
    port = free_port()
    logs = [tmp_path / f"agent{i}.log" for i in range(nodes)]
    procs = []
    for log in logs:
        with log.open("w") as out:
            procs.append(subprocess.Popen(
                [sys.executable, "-m", "portarun", "launch", "--nnodes", str(nodes), "--nproc", "1", "--rdzv-endpoint",
                 f"127.0.0.1:{port}", "--rdzv-id", "two-nodes", *extra, str(script), *args],
                cwd=tmp_path, env=clean_env(), stdout=out, stderr=subprocess.STDOUT, start_new_session=True))
    deadline = time.monotonic() + timeout
    try:
        for p in procs:
            p.wait(timeout=max(1.0, deadline - time.monotonic()))
    except subprocess.TimeoutExpired:
        pass
    finally:
        for p in procs:
            if p.poll() is None:  # the agent and its workers: a hung run leaves nothing behind
                os.killpg(p.pid, signal.SIGKILL)
                p.wait()
    texts = [log.read_text() for log in logs]
    assert all(p.returncode == 0 for p in procs), "\n----\n".join(t[-3000:] for t in texts)
    return texts


@pytest.mark.slow
def test_two_nodes_over_c10d_rendezvous(tmp_path: Path) -> None:
    script = tmp_path / "worker.py"
    script.write_text(WORKER)
    out = tmp_path / "out"
    out.mkdir()
    agents(tmp_path, script, [], [str(out)])
    results = [json.loads((out / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert [(r["rank"], r["world_size"], r["local_rank"], r["launcher"]) for r in results] == [
        (0, 2, 0, "torchrun"), (1, 2, 0, "torchrun")]
    assert all(r["sum"] == 3.0 and r["backend"] == "gloo" for r in results)
