"""Which process am I in a distributed run, and who launched it.

:func:`read_dist` reads the launcher's variables from the probe. A launcher is believed when the
variables it always sets are present and their values are consistent ranks; look-alikes are
common (HOSTS.md): ``TORCHELASTIC_RUN_ID`` exported by hand, ``SLURM_*`` in an ``salloc`` shell
or a Kubernetes pod, ``RANK``/``WORLD_SIZE`` typed into a notebook. Checked in this order, the
first launcher whose set is complete wins (docs/devices.md has the table):

1. ``torchrun``: ``TORCHELASTIC_RUN_ID`` with ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE`` (and
   ``GROUP_RANK``/``LOCAL_WORLD_SIZE`` when present, consistent); ``MASTER_*`` when present.
   torch itself asks for no more (``torch.distributed.is_torchelastic_launched`` checks
   ``TORCHELASTIC_RUN_ID`` only, https://docs.pytorch.org/docs/stable/elastic/run.html
   "Environment Variables"); the rank variables guard against the variable exported by hand.
2. ``deepspeed``: what ``deepspeed/launcher/launch.py`` sets for every rank: ``RANK``,
   ``LOCAL_RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``, ``LOCAL_SIZE``,
   ``CROSS_RANK`` (the node) and ``CROSS_SIZE`` (microsoft/DeepSpeed@38327e07, lines 171-176, 225-226).
3. ``horovod``: ``horovodrun --gloo`` (and Horovod on Ray or Spark): ``HOROVOD_RANK``,
   ``HOROVOD_SIZE``, ``HOROVOD_LOCAL_RANK``, ``HOROVOD_LOCAL_SIZE``, ``HOROVOD_CROSS_RANK``,
   ``HOROVOD_CROSS_SIZE`` (horovod/horovod@2626dc87:horovod/runner/gloo_run.py,
   ``create_slot_env_vars``). ``horovodrun`` over ``mpirun`` sets none of them: MPI's reader decides.
4. ``lsf``: ``jsrun``: ``LSB_JOBID``, ``JSM_NAMESPACE_RANK``, ``JSM_NAMESPACE_LOCAL_RANK``,
   ``JSM_NAMESPACE_SIZE``; the address is the first compute host of ``LSB_DJOB_RANKFILE`` and the
   port ``10000 + LSB_JOBID % 1000``, Lightning's convention
   (Lightning-AI/pytorch-lightning@7f0c3436:src/lightning/fabric/plugins/environments/lsf.py).
5. ``mpi``: Open MPI's ``OMPI_COMM_WORLD_RANK``/``_SIZE``/``_LOCAL_RANK`` (mpirun(1)
   "Environment Variables"); MVAPICH2's ``MV2_COMM_WORLD_RANK``/``_SIZE``/``_LOCAL_RANK``/
   ``_LOCAL_SIZE``, which ``mpirun_rsh`` sets for every process (``setup_local_environment`` in
   kumattau/mvapich2@114588a416b3b401b3d5a7509e19e2025e0710df:src/pm/mpirun/mpispawn.c) and
   accelerate reads (huggingface/accelerate@16cb6eb80dd9aa8b4df1a63ef57863e455d53b83:
   src/accelerate/utils/environment.py, ``get_cpu_distributed_information``); or MPICH/Intel
   MPI's ``PMI_RANK``/``PMI_SIZE`` with
   ``MPI_LOCALRANKID``/``MPI_LOCALNRANKS`` (Hydra). ``mpirun`` inside a SLURM allocation
   passes the SLURM step of its own daemon on to every rank, so MPI wins over a SLURM step
   whose ranks differ; when they agree, ``srun`` started the tasks and SLURM decides.
6. ``flux``: a Flux job's task: ``FLUX_TASK_RANK``, ``FLUX_TASK_LOCAL_ID``, ``FLUX_JOB_SIZE``
   (flux-framework/flux-core@4a5e79f5:src/shell/task.c); the broker unsets them for the shell of
   an allocation. The node comes from Flux's default block layout when ``FLUX_JOB_NNODES``
   divides the job evenly and the local id fits it.
7. ``slurm``: an ``srun`` task: ``SLURM_PROCID``, a task count (``SLURM_STEP_NUM_TASKS`` or
   ``SLURM_NTASKS``) and at least one step variable (``SLURM_STEP_ID``, ``SLURM_STEP_NUM_TASKS``,
   ``SLURM_STEP_NODELIST``, ``SLURM_STEP_TASKS_PER_NODE``; srun(1) "OUTPUT ENVIRONMENT
   VARIABLES"). ``SLURM_*`` without a step (``salloc``/``sbatch`` shells, pods) do not count, nor a
   job named ``bash``/``interactive`` (Lightning's opt-out, ``slurm.py`` @7f0c3436). PyTorch
   variables that agree with the step (enroot's PyTorch hook) are accepted; ones that differ
   come from a launcher inside the step and are left to the readers below. Without
   ``SLURM_LOCALID``/``SLURM_NODEID`` the place is derived from the step's tasks per node,
   assuming srun's block distribution, as TensorFlow's ``SlurmClusterResolver`` does.
8. ``skypilot``: ``SKYPILOT_NODE_RANK``, ``SKYPILOT_NODE_IPS``, ``SKYPILOT_NUM_NODES``: SkyPilot
   runs the task's ``run`` command once per node
   (https://docs.skypilot.co/en/stable/running-jobs/distributed-jobs.html).
9. ``kubeflow``: only on the training operator's own evidence: ``PET_NODE_RANK``,
   ``PET_NNODES``, ``PET_MASTER_ADDR``, ``PET_MASTER_PORT`` matching ``RANK``/``MASTER_*``
   (kubeflow/training-operator@ee116291:pkg/controller.v1/pytorch/envvar.go and master.go).
   Lightning stopped guessing a PyTorchJob from ``KUBERNETES_PORT`` plus ``RANK``/``MASTER_*``
   after false positives in pods not started by a PyTorchJob (Lightning-AI/pytorch-lightning
   commit 41f0425a, "Disable auto-detection of Kubeflow environment (#18137)").
10. ``env``: torch's env:// contract, ``RANK``, ``WORLD_SIZE``, ``MASTER_ADDR``, ``MASTER_PORT``
   (https://docs.pytorch.org/docs/stable/distributed.html "Environment variable
   initialization"): what ``init_process_group(init_method="env://")`` consumes, so torch waits
   for the other ranks whoever set them (a PyTorchJob pod, submitit's export, composer's launcher,
   Ray Train, a manual launch). ``NODE_RANK``, which composer and Ray Train write, gives the node
   when ``GROUP_RANK`` is absent.
11. ``xla``: on a host with TPU chips where torch_xla is already imported (``torch_xla.launch``
   started this process), torch_xla's own world. portarun never imports torch_xla to find out.

Otherwise the process is alone: rank 0 of 1, ``launcher=None``. Values that are not counts
(negative, empty, not ASCII digits, absurdly large) are never trusted; the evidence names them.
"""
from __future__ import annotations

import re
import sys
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import DistributedError, warn

if TYPE_CHECKING:
    from .probe import Probe
    from .runtime import Runtime

ENV_CONTRACT = ("RANK", "WORLD_SIZE", "MASTER_ADDR", "MASTER_PORT")
# Counts are ASCII digits only (str.isdigit() also accepts "²", which int() rejects) and at most
# nine of them, so no value can reach int()'s digit limit or describe an impossible world.
_COUNT = re.compile(r"[0-9]{1,9}")
_SLURM_INTERACTIVE_NAMES = ("bash", "interactive")
_SLURM_STEP_VARS = ("SLURM_STEP_ID", "SLURM_STEPID", "SLURM_STEP_NUM_TASKS", "SLURM_STEP_NODELIST",
                    "SLURM_STEP_TASKS_PER_NODE")
# Launchers whose workers init with env://: torch reads the same variables itself.
_ENV_INIT = ("env", "deepspeed", "kubeflow")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a distributed run.

    ``rank`` is global, ``local_rank`` the index on this node (the accelerator it should use),
    ``node_rank`` the node's index; ``is_main`` is true on global rank 0 only. ``launcher``
    names what set the variables (``torchrun``, ``deepspeed``, ``horovod``, ``lsf``, ``mpi``,
    ``flux``, ``slurm``, ``skypilot``, ``kubeflow``, ``env``, ``xla``) or is ``None`` for a single
    process.
    ``master_addr``/``master_port`` are the rendezvous when known. ``evidence`` lists what was
    read and what was ignored, and why.
    """

    rank: int = 0
    local_rank: int = 0
    world_size: int = 1
    local_world_size: int = 1
    node_rank: int = 0
    is_main: bool = True
    launcher: str | None = None
    master_addr: str | None = None
    master_port: int | None = None
    evidence: tuple[str, ...] = ()

    @property
    def is_distributed(self) -> bool:
        """Whether more than one process takes part."""
        return self.world_size > 1


class _Ignored(Exception):
    """A launcher's variables are present but cannot be believed; the message says why."""


def _shown(probe: Probe, name: str) -> str:
    fact = probe.env_fact(name)
    return fact if len(fact) <= 60 else fact[:57] + "..."


def _count(probe: Probe, name: str) -> int | None:
    """The variable as a whole number ≥ 0, ``None`` when unset; :class:`_Ignored` when set to
    anything else."""
    value = probe.getenv(name)
    if value is None:
        return None
    if not _COUNT.fullmatch(value.strip()):
        raise _Ignored(f"{_shown(probe, name)} is not a whole number from 0 to 999999999")
    return int(value.strip())


def _counts(probe: Probe, names: tuple[str, ...]) -> list[int]:
    """All of ``names`` as counts; :class:`_Ignored` naming the missing ones."""
    missing = [n for n in names if probe.getenv(n) is None]
    if missing:
        raise _Ignored(f"missing {', '.join(missing)}")
    return [v for v in (_count(probe, n) for n in names) if v is not None]


def _below(low: str, value: int, high: str, limit: int) -> None:
    if value >= limit:
        raise _Ignored(f"{low}={value} is not below {high}={limit}")


def _port(probe: Probe, name: str, zero_ok: bool = False) -> int | None:
    """A TCP port from ``name`` (1-65535); ``None`` when unset, or when 0 and ``zero_ok``;
    :class:`_Ignored` otherwise."""
    port = _count(probe, name)
    if port == 0 and zero_ok:
        return None
    if port is not None and not 0 < port < 65536:
        raise _Ignored(f"{_shown(probe, name)} is not a TCP port (1-65535)")
    return port


def _addr(probe: Probe, name: str) -> str | None:
    value = probe.getenv(name)
    if value is not None and not value.strip():
        raise _Ignored(f"{name} is empty")
    return value.strip() if value is not None else None


def _local_world(probe: Probe, name: str, local_rank: int, world: int, evidence: list[str]) -> int:
    """``name`` when set, else the smallest size that fits ``local_rank`` (said in evidence)."""
    size = _count(probe, name)
    if size is None:
        evidence.append(f"{name} unset: processes on this node taken as at least {local_rank + 1}")
        return local_rank + 1
    _below("local rank", local_rank, name, size)
    if size > world:
        raise _Ignored(f"{name}={size} is larger than the world size {world}")
    return size


def _build(launcher: str, rank: int, local_rank: int, world: int, local_world: int, node: int,
           evidence: list[str], addr: str | None = None, port: int | None = None) -> DistInfo:
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, local_world_size=local_world,
                    node_rank=node, is_main=rank == 0, launcher=launcher, master_addr=addr, master_port=port,
                    evidence=tuple(evidence))


def _torch_ranks(probe: Probe, launcher: str, evidence: list[str]) -> DistInfo:
    """``RANK``/``WORLD_SIZE`` with ``LOCAL_RANK``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK`` when set."""
    rank, world = _counts(probe, ("RANK", "WORLD_SIZE"))
    _below("RANK", rank, "WORLD_SIZE", world)
    local_rank = _count(probe, "LOCAL_RANK")
    if local_rank is None:  # one process per node, as in a PyTorchJob pod
        local_rank, local_world = 0, 1
    else:
        local_world = _local_world(probe, "LOCAL_WORLD_SIZE", local_rank, world, evidence)
    group = _count(probe, "GROUP_RANK")
    if group is not None and group * local_world >= world:
        raise _Ignored(f"GROUP_RANK={group} with {local_world} processes per node does not fit WORLD_SIZE={world}")
    node = group if group is not None else _node_rank(probe, rank - local_rank, evidence)
    node = node if node is not None else rank // local_world
    evidence.insert(0, f"{launcher}: " + ", ".join(_shown(probe, v) for v in ("RANK", "LOCAL_RANK", "WORLD_SIZE")
                                                   if probe.getenv(v) is not None))
    # torchrun --master_port=0 hands its workers MASTER_PORT=0: they join the agent's store instead.
    return _build(launcher, rank, local_rank, world, local_world, node, evidence,
                  _addr(probe, "MASTER_ADDR"), _port(probe, "MASTER_PORT", zero_ok=launcher == "torchrun"))


def _node_rank(probe: Probe, ranks_before: int, evidence: list[str]) -> int | None:
    """``NODE_RANK`` when it fits the ranks on earlier nodes (``ranks_before``, the node's first
    rank), else ``None`` (said in evidence).

    Launchers that number the nodes themselves write it next to ``RANK``: composer's launcher
    (mosaicml/composer@6405188805a0054b4551ec49e4919c54c971d0e8:composer/cli/launcher.py,
    ``_launch_processes``, whose nodes may run different process counts with ``--base_rank``) and
    Ray Train (ray-project/ray@a16e7bbdb13f9047bd0a30b254e9eb98033b2683:python/ray/train/torch/config.py,
    ``_set_torch_distributed_env_vars``, which places workers unevenly), so
    ``RANK // LOCAL_WORLD_SIZE`` would name the wrong node there. Every earlier node holds at least
    one rank, so a larger ``NODE_RANK`` is a leftover."""
    try:
        node = _count(probe, "NODE_RANK")
    except _Ignored as why:
        evidence.append(f"ignored NODE_RANK: {why}")
        return None
    if node is not None and node > ranks_before:
        evidence.append(f"ignored NODE_RANK={node}: only {ranks_before} ranks run on the nodes before this one")
        return None
    return node


def _torchrun(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if probe.getenv("TORCHELASTIC_RUN_ID") is None:
        return None
    _counts(probe, ("RANK", "LOCAL_RANK", "WORLD_SIZE"))  # a lone TORCHELASTIC_RUN_ID is no launch
    return _torch_ranks(probe, "torchrun", evidence)


def _deepspeed(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if all(probe.getenv(v) is None for v in ("LOCAL_SIZE", "CROSS_RANK", "CROSS_SIZE")):
        return None
    rank, local_rank, world, local_size, node, nodes = _counts(
        probe, ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_SIZE", "CROSS_RANK", "CROSS_SIZE"))
    if probe.getenv("MASTER_ADDR") is None or probe.getenv("MASTER_PORT") is None:
        raise _Ignored("missing " + ", ".join(v for v in ("MASTER_ADDR", "MASTER_PORT") if probe.getenv(v) is None))
    _below("RANK", rank, "WORLD_SIZE", world)
    _below("LOCAL_RANK", local_rank, "LOCAL_SIZE", local_size)
    _below("CROSS_RANK", node, "CROSS_SIZE", nodes)
    if local_size > world:
        raise _Ignored(f"LOCAL_SIZE={local_size} is larger than WORLD_SIZE={world}")
    evidence.insert(0, "deepspeed: " + ", ".join(_shown(probe, v) for v in ("RANK", "LOCAL_SIZE", "CROSS_RANK")))
    return _build("deepspeed", rank, local_rank, world, local_size, node, evidence, _addr(probe, "MASTER_ADDR"),
                  _port(probe, "MASTER_PORT"))


def _horovod(probe: Probe, evidence: list[str]) -> DistInfo | None:
    """``horovodrun --gloo`` (and Horovod on Ray or Spark): the six counts that
    ``create_slot_env_vars`` writes for every process
    (horovod/horovod@2626dc87a3a8eb8fb7d2216198ce45bce0f9e65a:horovod/runner/gloo_run.py). Horovod's
    cross rank is the node's index among the nodes that run this local rank
    (test/single/test_run.py ``test_get_host_assignments_heterogeneous``): the node index for
    local rank 0, and for every rank when all nodes run the same number of processes."""
    if probe.getenv("HOROVOD_RANK") is None and probe.getenv("HOROVOD_SIZE") is None:
        return None
    rank, world, local_rank, local_size, cross_rank, cross_size = _counts(
        probe, ("HOROVOD_RANK", "HOROVOD_SIZE", "HOROVOD_LOCAL_RANK", "HOROVOD_LOCAL_SIZE", "HOROVOD_CROSS_RANK",
                "HOROVOD_CROSS_SIZE"))
    _below("HOROVOD_RANK", rank, "HOROVOD_SIZE", world)
    _below("HOROVOD_LOCAL_RANK", local_rank, "HOROVOD_LOCAL_SIZE", local_size)
    _below("HOROVOD_CROSS_RANK", cross_rank, "HOROVOD_CROSS_SIZE", cross_size)
    if local_size > world or cross_size > world:
        raise _Ignored(f"HOROVOD_LOCAL_SIZE={local_size} or HOROVOD_CROSS_SIZE={cross_size} is larger than "
                       f"HOROVOD_SIZE={world}")
    if local_rank > 0 and local_size * cross_size != world:
        evidence.append(f"horovod: node rank {cross_rank} is HOROVOD_CROSS_RANK, which counts only the nodes running "
                        f"local rank {local_rank}; nodes run different numbers of processes here")
    evidence.insert(0, "horovod: " + ", ".join(_shown(probe, v) for v in ("HOROVOD_RANK", "HOROVOD_SIZE",
                                                                          "HOROVOD_LOCAL_RANK")))
    return _build("horovod", rank, local_rank, world, local_size, cross_rank, evidence, _addr(probe, "MASTER_ADDR"),
                  _port(probe, "MASTER_PORT"))


def _lsf(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if all(probe.getenv(v) is None for v in ("JSM_NAMESPACE_RANK", "JSM_NAMESPACE_SIZE", "JSM_NAMESPACE_LOCAL_RANK")):
        return None
    rank, local_rank, world, job = _counts(
        probe, ("JSM_NAMESPACE_RANK", "JSM_NAMESPACE_LOCAL_RANK", "JSM_NAMESPACE_SIZE", "LSB_JOBID"))
    _below("JSM_NAMESPACE_RANK", rank, "JSM_NAMESPACE_SIZE", world)
    _below("JSM_NAMESPACE_LOCAL_RANK", local_rank, "JSM_NAMESPACE_SIZE", world)
    evidence.append(f"lsf: processes on this node taken as at least {local_rank + 1}, node rank unknown "
                    "(jsrun sets no per-node count)")
    evidence.insert(0, "lsf: " + ", ".join(_shown(probe, v) for v in ("JSM_NAMESPACE_RANK", "JSM_NAMESPACE_SIZE",
                                                                      "LSB_JOBID")))
    addr = _addr(probe, "MASTER_ADDR") or _rankfile_host(probe, evidence)
    port = _port(probe, "MASTER_PORT") or 10000 + job % 1000
    return _build("lsf", rank, local_rank, world, local_rank + 1, 0, evidence, addr, port)


def _rankfile_host(probe: Probe, evidence: list[str]) -> str | None:
    """The first compute host in ``LSB_DJOB_RANKFILE``; its first line is the launch node."""
    name = probe.getenv("LSB_DJOB_RANKFILE")
    if not name:
        return None
    try:
        with probe.path(name).open(encoding="utf-8", errors="replace") as f:
            lines = [line.strip() for line in f.read(1 << 20).splitlines()]
    except OSError as exc:
        evidence.append(f"lsf: cannot read LSB_DJOB_RANKFILE ({exc.strerror or exc})")
        return None
    hosts = [h for h in lines[1:] if h]
    return hosts[0] if hosts else None


def _slurm_step(probe: Probe) -> tuple[int, int] | None:
    """``(SLURM_PROCID, step task count)`` of an srun step, or ``None`` if there is none."""
    if not any(probe.getenv(v) is not None for v in _SLURM_STEP_VARS):
        return None
    try:
        rank = _count(probe, "SLURM_PROCID")
        world = _count(probe, "SLURM_STEP_NUM_TASKS")
        world = world if world is not None else _count(probe, "SLURM_NTASKS")
    except _Ignored:
        return None
    return (rank, world) if rank is not None and world is not None else None


def _mpi(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if probe.getenv("OMPI_COMM_WORLD_RANK") is not None or probe.getenv("OMPI_COMM_WORLD_SIZE") is not None:
        rank, world, local_rank = _counts(
            probe, ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE", "OMPI_COMM_WORLD_LOCAL_RANK"))
        size_var, node = "OMPI_COMM_WORLD_LOCAL_SIZE", _count(probe, "OMPI_COMM_WORLD_NODE_RANK")
        what = "Open MPI " + ", ".join(_shown(probe, v) for v in ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"))
    elif probe.getenv("MV2_COMM_WORLD_RANK") is not None or probe.getenv("MV2_COMM_WORLD_SIZE") is not None:
        # MVAPICH2's mpirun_rsh: no node index (kumattau/mvapich2@114588a4:src/pm/mpirun/mpispawn.c)
        rank, world, local_rank = _counts(
            probe, ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE", "MV2_COMM_WORLD_LOCAL_RANK"))
        size_var, node = "MV2_COMM_WORLD_LOCAL_SIZE", None
        what = "MVAPICH2 " + ", ".join(_shown(probe, v) for v in ("MV2_COMM_WORLD_RANK", "MV2_COMM_WORLD_SIZE"))
    elif probe.getenv("PMI_RANK") is not None and probe.getenv("MPI_LOCALRANKID") is not None:
        rank, world, local_rank = _counts(probe, ("PMI_RANK", "PMI_SIZE", "MPI_LOCALRANKID"))
        size_var, node = "MPI_LOCALNRANKS", None
        what = "MPICH/Intel MPI " + ", ".join(_shown(probe, v) for v in ("PMI_RANK", "PMI_SIZE"))
    else:
        return None
    _below("MPI rank", rank, "MPI size", world)
    step = _slurm_step(probe)
    if step == (rank, world):
        return None  # srun started these tasks (srun --mpi=...): SLURM's reader decides
    if step is not None:
        evidence.append(f"mpi wins over the inherited SLURM step (SLURM_PROCID={step[0]} of {step[1]} belongs to "
                        "mpirun's daemon, not to this rank)")
    local_world = _local_world(probe, size_var, local_rank, world, evidence)
    addr, port = _addr(probe, "MASTER_ADDR"), _port(probe, "MASTER_PORT")
    if addr is None:
        addr, aml_port = _azureml_master(probe, local_world == world)
        port = port or aml_port
    evidence.insert(0, "mpi: " + what)
    return _build("mpi", rank, local_rank, world, local_world, node if node is not None else rank // local_world,
                  evidence, addr, port)


def _flux(probe: Probe, evidence: list[str]) -> DistInfo | None:
    """A Flux job's task: ``FLUX_TASK_RANK``, ``FLUX_TASK_LOCAL_ID``, ``FLUX_JOB_SIZE``, set by the
    job shell for every task (flux-framework/flux-core@4a5e79f56b850a58cbbfc4b5af5a5b1fcd04c049:
    src/shell/task.c and src/shell/shell.c; doc/man7/flux-environment.rst). The broker unsets them
    for the shell of ``flux alloc``/``flux batch``, so they mark a task, not an allocation. Tasks
    are mapped in blocks unless ``--taskmap`` says otherwise; the node is derived from the block
    layout only when ``FLUX_JOB_NNODES`` divides the job and the local id fits it."""
    if probe.getenv("FLUX_TASK_RANK") is None:
        return None
    rank, local_rank, world = _counts(probe, ("FLUX_TASK_RANK", "FLUX_TASK_LOCAL_ID", "FLUX_JOB_SIZE"))
    _below("FLUX_TASK_RANK", rank, "FLUX_JOB_SIZE", world)
    _below("FLUX_TASK_LOCAL_ID", local_rank, "FLUX_JOB_SIZE", world)
    nodes = _count(probe, "FLUX_JOB_NNODES")
    per_node = world // nodes if nodes and world % nodes == 0 else None
    if per_node and rank % per_node == local_rank:
        local_world, node = per_node, rank // per_node
    else:
        local_world, node = local_rank + 1, 0
        evidence.append(f"flux: processes on this node taken as at least {local_rank + 1}, node rank unknown (the "
                        "tasks are not in equal blocks per node)")
    evidence.insert(0, "flux: " + ", ".join(_shown(probe, v) for v in ("FLUX_TASK_RANK", "FLUX_JOB_SIZE",
                                                                       "FLUX_TASK_LOCAL_ID")))
    return _build("flux", rank, local_rank, world, local_world, node, evidence, _addr(probe, "MASTER_ADDR"),
                  _port(probe, "MASTER_PORT"))


def _azureml_master(probe: Probe, single_node: bool) -> tuple[str | None, int | None]:
    """Azure ML's MPI rendezvous, as DeepSpeed derives it (``patch_aml_env_for_torch_nccl_backend``,
    microsoft/DeepSpeed@38327e07:deepspeed/comm/comm.py; ports 6105 and 54965 from
    deepspeed/comm/constants.py ``DEFAULT_AML_MASTER_PORT``)."""
    if single_node and probe.getenv("AZ_BATCHAI_MPI_MASTER_NODE"):
        return probe.getenv("AZ_BATCHAI_MPI_MASTER_NODE"), 54965
    node = probe.getenv("AZ_BATCH_MASTER_NODE")
    if node and node.split(":")[0].strip():
        return node.split(":")[0].strip(), 6105
    return None, None


def _expand_tasks(value: str | None) -> list[int] | None:
    """A SLURM tasks-per-node list such as ``2(x3),1`` → ``[2, 2, 2, 1]`` (srun(1)); ``None`` if
    it is not one, or would describe more than 100000 nodes."""
    out: list[int] = []
    for part in (value or "").split(","):
        match = re.fullmatch(r"\s*([0-9]{1,6})(?:\(x([0-9]{1,6})\))?\s*", part)
        if not match:
            return None
        repeat = int(match.group(2) or 1)
        if len(out) + repeat > 100_000:
            return None
        out += [int(match.group(1))] * repeat
    return out


def _slurm(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if all(probe.getenv(v) is None for v in ("SLURM_PROCID", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS")):
        return None
    if not any(probe.getenv(v) is not None for v in _SLURM_STEP_VARS):
        raise _Ignored(f"no srun step (none of {', '.join(_SLURM_STEP_VARS)}): an salloc or sbatch shell, or a "
                       "pod, carries SLURM_* variables while running a single process")
    job_name = probe.getenv("SLURM_JOB_NAME", "")
    if job_name in _SLURM_INTERACTIVE_NAMES:
        raise _Ignored(f"SLURM_JOB_NAME={job_name} marks an interactive job")
    world_var = "SLURM_STEP_NUM_TASKS" if probe.getenv("SLURM_STEP_NUM_TASKS") is not None else "SLURM_NTASKS"
    rank, world = _counts(probe, ("SLURM_PROCID", world_var))
    _below("SLURM_PROCID", rank, world_var, world)
    local_rank, node = _count(probe, "SLURM_LOCALID"), _count(probe, "SLURM_NODEID")
    tasks = _expand_tasks(probe.getenv("SLURM_STEP_TASKS_PER_NODE"))
    if tasks is None or sum(tasks) != world:
        per_node = _count(probe, "SLURM_NTASKS_PER_NODE")
        nodes = next((n for n in (_count(probe, v) for v in ("SLURM_STEP_NUM_NODES", "SLURM_NNODES",
                                                               "SLURM_JOB_NUM_NODES")) if n), None)
        nodes = nodes or _host_count(probe.getenv("SLURM_STEP_NODELIST"))
        if per_node and world % per_node == 0:
            nodes = world // per_node
        tasks = [world // nodes] * nodes if nodes and world % nodes == 0 and nodes <= 100_000 else None
    if tasks is not None and (node is None or local_rank is None):
        # srun's default block distribution: consecutive ranks fill a node (TensorFlow's
        # SlurmClusterResolver derives it the same way).
        first = 0
        for index, count in enumerate(tasks):
            if rank < first + count:
                node = index if node is None else node
                local_rank = rank - first if local_rank is None else local_rank
                break
            first += count
    if local_rank is None or node is None:
        raise _Ignored("SLURM_LOCALID/SLURM_NODEID unset and no tasks-per-node layout to derive them from")
    if tasks is not None and len(set(tasks)) > 1 and node >= len(tasks):
        raise _Ignored(f"node {node} is outside SLURM_STEP_TASKS_PER_NODE's {len(tasks)} nodes")
    local_world = (tasks[min(node, len(tasks) - 1)] if tasks else local_rank + 1)
    _below("SLURM_LOCALID", local_rank, "tasks on this node", local_world)
    _agrees_with_torch(probe, rank, local_rank, world)
    evidence.insert(0, "slurm: " + ", ".join(_shown(probe, v) for v in ("SLURM_PROCID", world_var)
                                             + tuple(v for v in ("SLURM_LOCALID", "SLURM_STEP_ID")
                                                     if probe.getenv(v) is not None)))
    addr = _addr(probe, "MASTER_ADDR") or next(
        (h for h in (_first_node(probe.getenv(v)) for v in ("SLURM_STEP_NODELIST", "SLURM_JOB_NODELIST",
                                                            "SLURM_NODELIST")) if h), None)
    return _build("slurm", rank, local_rank, world, local_world, node, evidence, addr,
                  _port(probe, "MASTER_PORT") or _slurm_port(probe.getenv("SLURM_JOB_ID")))


def _agrees_with_torch(probe: Probe, rank: int, local_rank: int, world: int) -> None:
    """PyTorch's variables inside an srun step must match it (enroot's PyTorch hook writes them
    from the SLURM ones); different values come from a launcher started inside the step."""
    for name, ours in (("RANK", rank), ("WORLD_SIZE", world), ("LOCAL_RANK", local_rank)):
        value = probe.getenv(name)
        if value is not None and value.strip() != str(ours):
            raise _Ignored(f"{_shown(probe, name)} differs from the step's {ours}: a launcher inside the step set it")


def _first_node(nodelist: str | None) -> str | None:
    """The first host of a SLURM node list: ``gpu[03-05,09],cpu1`` → ``gpu03``; lists may be
    separated by commas or spaces (Lightning's ``resolve_root_node_address`` cases)."""
    match = re.match(r"\s*([^,\s\[]+)(?:\[\s*([0-9]+))?", nodelist or "")
    if not match:
        return None
    return match.group(1) + (match.group(2) or "")


def _host_items(nodelist: str) -> list[str]:
    """Top-level items of a node list, split at commas and spaces outside brackets."""
    items: list[str] = []
    depth, current = 0, ""
    for char in nodelist:
        depth += {"[": 1, "]": -1}.get(char, 0)
        if depth == 0 and (char == "," or char.isspace()):
            items, current = items + [current] if current else items, ""
        else:
            current += char
    return items + [current] if current else items


def _host_count(nodelist: str | None) -> int | None:
    """How many hosts a SLURM node list names (``n[1-3],m5`` → 4); ``None`` if unreadable."""
    total = 0
    for item in _host_items(nodelist or ""):
        match = re.fullmatch(r"[^\[\]]+(?:\[([0-9,\-\s]+)\])?[^\[\]]*", item)
        if not match:
            return None
        for part in (match.group(1) or "0").split(","):
            low, _, high = part.strip().partition("-")
            if not low.isdigit() or (high and not (high.isdigit() and int(high) >= int(low))) or len(low + high) > 12:
                return None
            total += int(high) - int(low) + 1 if high else 1
    return total if 0 < total <= 100_000 else None


def _slurm_port(job_id: str | None) -> int | None:
    # Lightning's and ignite's convention: 15000 + the last four digits of the job id, so every
    # task of the job derives the same port without talking
    # (Lightning-AI/pytorch-lightning@7f0c3436:src/lightning/fabric/plugins/environments/slurm.py
    # line 85; pytorch/ignite@de08e799:ignite/distributed/comp_models/native.py line 656).
    job = (job_id or "").strip()
    return 15000 + int(job[-4:]) if re.fullmatch(r"[0-9]{1,20}", job) else None


def _skypilot(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if probe.getenv("SKYPILOT_NODE_RANK") is None:
        return None
    rank, nodes = _counts(probe, ("SKYPILOT_NODE_RANK", "SKYPILOT_NUM_NODES"))
    ips = [ip.strip() for ip in (probe.getenv("SKYPILOT_NODE_IPS") or "").splitlines() if ip.strip()]
    if len(ips) != nodes:
        raise _Ignored(f"SKYPILOT_NODE_IPS lists {len(ips)} hosts for SKYPILOT_NUM_NODES={nodes}")
    _below("SKYPILOT_NODE_RANK", rank, "SKYPILOT_NUM_NODES", nodes)
    evidence.insert(0, "skypilot: " + ", ".join(_shown(probe, v) for v in ("SKYPILOT_NODE_RANK", "SKYPILOT_NUM_NODES"))
                    + " (one process per node; start torchrun with --nproc_per_node=$SKYPILOT_NUM_GPUS_PER_NODE "
                    "for one per GPU)")
    return _build("skypilot", rank, 0, nodes, 1, rank, evidence, _addr(probe, "MASTER_ADDR") or ips[0],
                  _port(probe, "MASTER_PORT"))


def _kubeflow(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if probe.getenv("PET_NODE_RANK") is None or probe.getenv("PET_MASTER_ADDR") is None:
        return None
    pairs = (("PET_NODE_RANK", "RANK"), ("PET_MASTER_ADDR", "MASTER_ADDR"), ("PET_MASTER_PORT", "MASTER_PORT"))
    for pet, plain in pairs:
        if probe.getenv(pet) != probe.getenv(plain):
            raise _Ignored(f"{_shown(probe, pet)} does not match {_shown(probe, plain)}")
    # The operator counts a non-numeric value ("auto", "gpu") as one process per pod (getNprocPerNodeInt).
    value = (probe.getenv("PET_NPROC_PER_NODE") or "").strip()
    nproc = int(value) if _COUNT.fullmatch(value) else 1
    if nproc > 1:
        return DistInfo(evidence=(
            f"ignored PyTorchJob variables: PET_NPROC_PER_NODE={nproc} asks for torchrun inside the pod (it reads the "
            "PET_* variables); RANK is the pod's index there, not a process rank", *evidence))
    info = _torch_ranks(probe, "kubeflow", evidence)
    nodes = probe.getenv("PET_NNODES") or ""
    if _COUNT.fullmatch(nodes) and int(nodes) != info.world_size:
        raise _Ignored(f"PET_NNODES={nodes} differs from WORLD_SIZE={info.world_size}")
    return info


def _env(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if all(probe.getenv(v) is None for v in ENV_CONTRACT):
        return None
    _counts(probe, ("RANK", "WORLD_SIZE"))
    if _addr(probe, "MASTER_ADDR") is None or _port(probe, "MASTER_PORT") is None:
        raise _Ignored("missing " + ", ".join(v for v in ("MASTER_ADDR", "MASTER_PORT") if probe.getenv(v) is None)
                       + " (torch's env:// needs RANK, WORLD_SIZE, MASTER_ADDR and MASTER_PORT)")
    return _torch_ranks(probe, "env", evidence)


def _xla(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if probe.tpu is None or "torch_xla" not in sys.modules:
        return None
    try:
        import torch_xla.runtime as xr

        world, rank, local_rank = int(xr.world_size()), int(xr.global_ordinal()), int(xr.local_ordinal())
        local_world = int(xr.local_process_count()) * int(xr.addressable_device_count())
    except (ImportError, AttributeError, RuntimeError):
        return None
    local_world = max(local_world, local_rank + 1)
    evidence.append("xla: torch_xla.runtime world_size/global_ordinal/local_ordinal")
    return _build("xla", rank, local_rank, world, local_world, rank // local_world, evidence)


_READERS: tuple[tuple[str, Callable[[Probe, list[str]], DistInfo | None]], ...] = (
    ("torchrun", _torchrun), ("deepspeed", _deepspeed), ("horovod", _horovod), ("lsf", _lsf), ("mpi", _mpi),
    ("flux", _flux), ("slurm", _slurm), ("skypilot", _skypilot), ("kubeflow", _kubeflow), ("env", _env),
    ("xla", _xla))


def _user_ranks(probe: Probe, evidence: list[str]) -> None:
    """Warn about ``RANK``/``WORLD_SIZE`` that claim another process but that no launcher set
    (typed in by a user, or left over), naming what a launch would have set too."""
    claims = []
    for name, alone in (("RANK", 0), ("WORLD_SIZE", 1)):
        value = probe.getenv(name)
        if value is not None and value.strip() != str(alone):
            claims.append(_shown(probe, name))
    if not claims:
        return
    missing = [v for v in ENV_CONTRACT if probe.getenv(v) is None]
    why = (f"missing {', '.join(missing)}; torch's env:// needs all of {', '.join(ENV_CONTRACT)}" if missing
           else "the rank variables contradict each other")
    verb = "are" if len(claims) > 1 else "is"
    message = (f"{' and '.join(claims)} {verb} set, but not by a launcher portarun recognises ({why}); this process is "
               "treated as a single process. Start the script with `portarun launch --nproc N script.py` or "
               "torchrun, or unset RANK and WORLD_SIZE.")
    evidence.append("ignored RANK/WORLD_SIZE: " + message.split(";")[0])
    warn(message)


def read_dist(probe: Probe) -> DistInfo:
    """This process's distributed context from ``probe`` (see the module docstring). Never
    raises for odd values: they are ignored and named in ``evidence``."""
    evidence: list[str] = []
    for name, reader in _READERS:
        found: list[str] = []
        try:
            info = reader(probe, found)
        except _Ignored as why:
            evidence.append(f"ignored {name} variables: {why}")
            continue
        if info is not None:
            return replace(info, evidence=info.evidence + tuple(evidence))
    _user_ranks(probe, evidence)
    return DistInfo(evidence=tuple(evidence) or ("no launcher variables: a single process",))


def backend_for(kind: str) -> str:
    """The ``torch.distributed`` backend for a device kind: ``nccl`` on CUDA, ``xla`` on TPU,
    ``gloo`` on CPU and MPS (MPS has no collective backend of its own)."""
    return {"cuda": "nccl", "xla": "xla"}.get(kind, "gloo")


def init_distributed(rt: Runtime, backend: str | None = None, timeout: timedelta | None = None) -> DistInfo:
    """Initialise ``torch.distributed`` for ``rt`` from the launcher's variables; idempotent.

    Does nothing for a process no launcher started, or when a process group already exists. A
    launch of one process (``portarun launch --nproc 1``, ``torchrun --nproc-per-node 1``) gets
    its one-process group, so the script's collectives run as they will with more. ``backend``
    defaults to :func:`backend_for` ``(rt.device.kind)``. On CUDA the process's GPU is selected
    first (``torch.cuda.set_device(local_rank)``); on TPU torch_xla's ``xla://`` init method is
    used. torchrun, DeepSpeed, Kubeflow and plain env:// launches use ``env://`` (torch reads
    the same variables); SLURM, MPI, Flux, Horovod, LSF and SkyPilot use
    ``tcp://master_addr:master_port`` with the rank and world size read here. Raises
    :class:`~portarun.errors.DistributedError` when the rendezvous address is unknown (MPI, Flux,
    Horovod or SkyPilot without ``MASTER_ADDR``/``MASTER_PORT``).
    """
    info = rt.dist
    if info.launcher is None:
        return info
    import torch.distributed as dist

    if dist.is_initialized():
        return info
    chosen = backend or backend_for(rt.device.kind)
    kwargs: dict[str, object] = {"backend": chosen}
    if timeout is not None:
        kwargs["timeout"] = timeout
    if rt.device.kind == "cuda":
        rt.device.torch()  # selects this rank's GPU
    if chosen == "xla":
        rt.device.torch()  # imports torch_xla with PJRT_DEVICE set
        import torch_xla.distributed.xla_backend  # noqa: F401  registers the xla backend and xla://

        kwargs["init_method"] = "xla://"
    elif info.launcher == "torchrun":  # torch's own contract, including the agent's store
        kwargs.update(_torchrun_init(rt, info, timeout))
    elif not info.master_addr or info.master_port is None:
        raise DistributedError(
            f"cannot start the process group for this {info.launcher} launch: the rendezvous address is unknown. "
            "Set MASTER_ADDR (the host of rank 0) and MASTER_PORT (a free port) for every process, or start the "
            "processes with torchrun (`srun torchrun ...`, `portarun launch`).")
    elif info.launcher in _ENV_INIT:
        kwargs["init_method"] = "env://"
    else:
        kwargs.update(init_method=f"tcp://{info.master_addr}:{info.master_port}", rank=info.rank,
                      world_size=info.world_size)
    dist.init_process_group(**kwargs)  # type: ignore[arg-type]
    return info


def _torchrun_init(rt: Runtime, info: DistInfo, timeout: timedelta | None) -> dict[str, object]:
    """env:// for a torchrun worker, except after an elastic restart on the agent's store: the
    agent keeps one store server across restarts (the same ``MASTER_PORT``) while torch 2.13's
    workers no longer prefix their keys per attempt (torch/distributed/rendezvous.py,
    ``_create_c10d_store``: "We create a new TCPStore for every retry so no need to add prefix"),
    so a restarted worker can read a dead peer's gloo address and fail with "Connection
    refused". Restarted workers of a one-node launch use torch's former
    ``/worker/attempt_<restart count>`` prefix. Not across nodes: an agent whose own workers did
    not fail restarts them on the membership change without counting a restart, so agents may
    disagree on the count."""
    attempt = (rt.probe.getenv("TORCHELASTIC_RESTART_COUNT") or "0").strip()
    if (rt.probe.getenv("TORCHELASTIC_USE_AGENT_STORE") != "True" or rt.probe.getenv("GROUP_WORLD_SIZE") != "1"
            or not _COUNT.fullmatch(attempt) or int(attempt) == 0 or not info.master_addr
            or info.master_port is None):
        return {"init_method": "env://"}
    from torch._C._distributed_c10d import PrefixStore, TCPStore

    store = (TCPStore(info.master_addr, info.master_port, is_master=False) if timeout is None
             else TCPStore(info.master_addr, info.master_port, is_master=False, timeout=timeout))
    return {"store": PrefixStore(f"/worker/attempt_{attempt}", store), "rank": info.rank,
            "world_size": info.world_size}


def distributed_section(rt: Runtime) -> dict[str, Any]:
    """``rt.dist`` for ``portarun info``: launcher, ranks, sizes and the evidence."""
    info = rt.dist
    return {"launcher": info.launcher, "rank": info.rank, "local_rank": info.local_rank,
            "world_size": info.world_size, "local_world_size": info.local_world_size, "node_rank": info.node_rank,
            "is_main": info.is_main, "is_distributed": info.is_distributed, "evidence": list(info.evidence)}


def auto_nproc(rt: Runtime) -> tuple[int, str]:
    """The process count for ``--nproc auto`` and why."""
    device = rt.device
    if device.kind in ("cuda", "xla"):
        return device.count, f"{device.count} {device.kind} device(s)"
    if device.kind == "mps":
        return 1, "one MPS device"
    usable = rt.probe.cpu.usable
    if usable < 2:
        return 1, f"{usable} usable CPU: one process (pass --nproc N to run more ranks anyway)"
    # Two ranks at least: a one-process launch runs no collective, so a DDP script that works
    # under `portarun launch` here could still fail on a real multi-device machine.
    return max(2, usable // 2), f"half of {usable} usable CPUs, at least 2 ranks so collectives really run"
