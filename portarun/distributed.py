"""Which process am I in a distributed run, and who launched it.

:func:`read_dist` reads the launcher's variables from the probe, trusting a launcher only when
its whole set of variables is present and consistent, because look-alikes are common
(HOSTS.md): ``TORCHELASTIC_RUN_ID`` exported by hand, ``SLURM_*`` inside Kubernetes tools,
``RANK``/``WORLD_SIZE`` typed in by a user. Checked in this order, the first complete set wins:

1. ``torchrun``: ``RANK``, ``LOCAL_RANK``, ``WORLD_SIZE``, ``LOCAL_WORLD_SIZE``, ``GROUP_RANK``,
   ``MASTER_ADDR``, ``MASTER_PORT`` and ``TORCHELASTIC_RUN_ID`` (the variables torchrun sets
   for every worker: https://docs.pytorch.org/docs/stable/elastic/run.html "Environment
   Variables"). Lightning trusts ``TORCHELASTIC_RUN_ID`` alone (``torchelastic.py``
   @2acfd527); that variable can be set by hand.
2. ``slurm``: an ``srun`` step: ``SLURM_PROCID``, ``SLURM_LOCALID``, ``SLURM_NTASKS`` and
   ``SLURM_STEP_ID`` (srun(1) "OUTPUT ENVIRONMENT VARIABLES"), and ``SLURM_JOB_NAME`` not
   ``bash``/``interactive`` (Lightning's opt-out for interactive allocations, ``slurm.py``
   @ffd8176e). ``SLURM_*`` variables without a step (an ``salloc`` shell, a Kubernetes pod
   carrying them) do not count.
3. ``mpi``: Open MPI's ``OMPI_COMM_WORLD_RANK``/``_SIZE``/``_LOCAL_RANK``/``_LOCAL_SIZE``
   (mpirun(1) "Environment Variables"), or MPICH/Intel MPI's ``PMI_RANK``/``PMI_SIZE`` with
   ``MPI_LOCALRANKID``/``MPI_LOCALNRANKS`` (Hydra).
4. ``kubeflow``: a PyTorchJob pod: ``KUBERNETES_PORT``, ``MASTER_ADDR``, ``MASTER_PORT``,
   ``WORLD_SIZE`` and ``RANK`` with none of torchrun's ``GROUP_RANK``/``LOCAL_RANK``/
   ``LOCAL_WORLD_SIZE`` (Lightning ``kubeflow.py`` @2acfd527), one process per pod.
5. ``xla``: on a host with TPU chips where torch_xla is already imported (``torch_xla.launch``
   started this process), torch_xla's own world: ``torch_xla.runtime.world_size()``,
   ``global_ordinal()``, ``local_ordinal()``. portarun never imports torch_xla to find out.

Otherwise the process is alone: rank 0 of 1, ``launcher=None``.
"""
from __future__ import annotations

import re
import sys
import warnings
from dataclasses import dataclass
from datetime import timedelta
from typing import TYPE_CHECKING, Any

from .errors import DistributedError, PortarunWarning

if TYPE_CHECKING:
    from .probe import Probe
    from .runtime import Runtime

TORCHRUN_VARS = ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK", "MASTER_ADDR",
                 "MASTER_PORT", "TORCHELASTIC_RUN_ID")
_SLURM_INTERACTIVE_NAMES = ("bash", "interactive")


@dataclass(frozen=True)
class DistInfo:
    """This process's place in a distributed run.

    ``rank`` is global, ``local_rank`` the index on this node (the accelerator it should use),
    ``node_rank`` the node's index; ``is_main`` is true on global rank 0 only. ``launcher``
    names what set the variables (``torchrun``, ``slurm``, ``mpi``, ``kubeflow``, ``xla``) or is
    ``None`` for a single process. ``evidence`` lists what was read and what was ignored.
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


def _ints(probe: Probe, names: tuple[str, ...]) -> list[int] | None:
    values = [probe.getenv(n) for n in names]
    if any(v is None or not v.strip().lstrip("-").isdigit() for v in values):
        return None
    return [int(v) for v in values if v is not None]


def _consistent(rank: int, local_rank: int, world: int, local_world: int) -> bool:
    return 0 <= rank < world and 0 <= local_rank < local_world <= world


def _port(value: str | None) -> int | None:
    return int(value) if value and value.isdigit() else None


def _build(launcher: str, rank: int, local_rank: int, world: int, local_world: int, node: int,
           evidence: list[str], addr: str | None = None, port: int | None = None) -> DistInfo:
    return DistInfo(rank=rank, local_rank=local_rank, world_size=world, local_world_size=local_world,
                    node_rank=node, is_main=rank == 0, launcher=launcher, master_addr=addr, master_port=port,
                    evidence=tuple(evidence))


def _torchrun(probe: Probe, evidence: list[str]) -> DistInfo | None:
    present = [v for v in TORCHRUN_VARS if probe.getenv(v) is not None]
    if not present:
        return None
    nums = _ints(probe, ("RANK", "LOCAL_RANK", "WORLD_SIZE", "LOCAL_WORLD_SIZE", "GROUP_RANK"))
    if len(present) < len(TORCHRUN_VARS) or nums is None or not _consistent(*nums[:4]):
        missing = [v for v in TORCHRUN_VARS if probe.getenv(v) is None]
        if probe.getenv("TORCHELASTIC_RUN_ID") is not None or probe.getenv("LOCAL_RANK") is not None:
            evidence.append(f"ignored torchrun-like variables {', '.join(present)}: "
                            + (f"missing {', '.join(missing)}" if missing else "values are not consistent ranks"))
        return None
    rank, local_rank, world, local_world, group = nums
    evidence.append("torchrun: " + ", ".join(probe.env_fact(v) for v in TORCHRUN_VARS[:5]))
    return _build("torchrun", rank, local_rank, world, local_world, group, evidence,
                  probe.getenv("MASTER_ADDR"), _port(probe.getenv("MASTER_PORT")))


def _tasks_per_node(value: str | None) -> int | None:
    """First count of a SLURM tasks-per-node list such as ``2(x3),1`` (srun(1))."""
    match = re.match(r"\s*(\d+)", value or "")
    return int(match.group(1)) if match else None


def _slurm(probe: Probe, evidence: list[str]) -> DistInfo | None:
    if probe.getenv("SLURM_NTASKS") is None and probe.getenv("SLURM_PROCID") is None:
        return None
    step = probe.getenv("SLURM_STEP_ID") or probe.getenv("SLURM_STEPID")
    nums = _ints(probe, ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS"))
    job_name = probe.getenv("SLURM_JOB_NAME", "")
    if nums is None or step is None:
        evidence.append("ignored SLURM_* variables: no srun step (SLURM_PROCID, SLURM_LOCALID, SLURM_NTASKS and "
                        "SLURM_STEP_ID are all needed; an salloc shell or a Kubernetes pod can carry the rest)")
        return None
    if job_name in _SLURM_INTERACTIVE_NAMES:
        evidence.append(f"ignored SLURM step: SLURM_JOB_NAME={job_name} marks an interactive job")
        return None
    rank, local_rank, world = nums
    nodes = _ints(probe, ("SLURM_NNODES",))
    local_world = (_tasks_per_node(probe.getenv("SLURM_STEP_TASKS_PER_NODE"))
                   or _tasks_per_node(probe.getenv("SLURM_NTASKS_PER_NODE"))
                   or (world // nodes[0] if nodes and nodes[0] > 0 else world))
    if not _consistent(rank, local_rank, world, max(local_world, local_rank + 1)):
        evidence.append("ignored SLURM step: SLURM_PROCID/SLURM_LOCALID/SLURM_NTASKS are not consistent")
        return None
    node = _ints(probe, ("SLURM_NODEID",))
    evidence.append("slurm: " + ", ".join(probe.env_fact(v) for v in ("SLURM_PROCID", "SLURM_LOCALID", "SLURM_NTASKS")))
    return _build("slurm", rank, local_rank, world, max(local_world, local_rank + 1), node[0] if node else 0,
                  evidence, probe.getenv("MASTER_ADDR") or _first_node(probe.getenv("SLURM_JOB_NODELIST")),
                  _port(probe.getenv("MASTER_PORT")) or _slurm_port(probe.getenv("SLURM_JOB_ID")))


def _first_node(nodelist: str | None) -> str | None:
    """The first host of a SLURM node list: ``gpu[03-05,09],cpu1`` → ``gpu03``."""
    if not nodelist:
        return None
    match = re.match(r"([^,\[]+)(?:\[([^\]]+)\])?", nodelist.strip())
    if not match:
        return None
    prefix, ranges = match.group(1), match.group(2)
    return prefix + re.split(r"[-,]", ranges)[0] if ranges else prefix


def _slurm_port(job_id: str | None) -> int | None:
    # Same convention as Lightning's SLURMEnvironment: 10000 + last four digits of the job id,
    # so every task of the job derives the same port without talking (slurm.py @ffd8176e).
    return 10000 + int(job_id[-4:]) if job_id and job_id.isdigit() else None


def _mpi(probe: Probe, evidence: list[str]) -> DistInfo | None:
    ompi = _ints(probe, ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_LOCAL_RANK", "OMPI_COMM_WORLD_SIZE",
                         "OMPI_COMM_WORLD_LOCAL_SIZE"))
    pmi = _ints(probe, ("PMI_RANK", "MPI_LOCALRANKID", "PMI_SIZE", "MPI_LOCALNRANKS"))
    nums = ompi or pmi
    if nums is None or not _consistent(*nums):
        return None
    rank, local_rank, world, local_world = nums
    node = _ints(probe, ("OMPI_COMM_WORLD_NODE_RANK",)) if ompi else None
    evidence.append("mpi: " + ("Open MPI OMPI_COMM_WORLD_*" if ompi else "PMI_RANK/PMI_SIZE (MPICH, Intel MPI)"))
    return _build("mpi", rank, local_rank, world, local_world, node[0] if node else rank // local_world, evidence,
                  probe.getenv("MASTER_ADDR"), _port(probe.getenv("MASTER_PORT")))


def _kubeflow(probe: Probe, evidence: list[str]) -> DistInfo | None:
    needed = ("KUBERNETES_PORT", "MASTER_ADDR", "MASTER_PORT", "WORLD_SIZE", "RANK")
    if any(probe.getenv(v) is None for v in needed):
        return None
    if any(probe.getenv(v) is not None for v in ("GROUP_RANK", "LOCAL_RANK", "LOCAL_WORLD_SIZE")):
        return None
    nums = _ints(probe, ("RANK", "WORLD_SIZE"))
    if nums is None or not 0 <= nums[0] < nums[1]:
        return None
    rank, world = nums
    evidence.append("kubeflow: " + ", ".join(probe.env_fact(v) for v in needed))
    return _build("kubeflow", rank, 0, world, 1, rank, evidence, probe.getenv("MASTER_ADDR"),
                  _port(probe.getenv("MASTER_PORT")))


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


def _user_ranks(probe: Probe, evidence: list[str]) -> None:
    """Warn about ``RANK``/``WORLD_SIZE`` that no launcher set (typed in by a user)."""
    nums = _ints(probe, ("RANK", "WORLD_SIZE"))
    if nums is None or nums[1] <= 1:
        return
    missing = [v for v in TORCHRUN_VARS if probe.getenv(v) is None]
    why = f"torchrun also sets {', '.join(missing)}" if missing else "the rank variables contradict each other"
    message = (f"RANK={nums[0]} and WORLD_SIZE={nums[1]} are set, but not by a launcher portarun recognises "
               f"({why}); this process is treated as a single process. Start the script with "
               "`portarun launch --nproc N script.py` or torchrun, or unset RANK and WORLD_SIZE.")
    evidence.append("ignored RANK/WORLD_SIZE: " + message.split(";")[0])
    warnings.warn(message, PortarunWarning, stacklevel=4)


def read_dist(probe: Probe) -> DistInfo:
    """This process's distributed context from ``probe`` (see the module docstring)."""
    evidence: list[str] = []
    for reader in (_torchrun, _slurm, _mpi, _kubeflow, _xla):
        found = reader(probe, evidence)
        if found is not None:
            return found
    _user_ranks(probe, evidence)
    return DistInfo(evidence=tuple(evidence) or ("no launcher variables: a single process",))


def backend_for(kind: str) -> str:
    """The ``torch.distributed`` backend for a device kind: ``nccl`` on CUDA, ``xla`` on TPU,
    ``gloo`` on CPU and MPS (MPS has no collective backend of its own)."""
    return {"cuda": "nccl", "xla": "xla"}.get(kind, "gloo")


def init_distributed(rt: Runtime, backend: str | None = None, timeout: timedelta | None = None) -> DistInfo:
    """Initialise ``torch.distributed`` for ``rt`` from the launcher's variables; idempotent.

    Does nothing for a single process or when a process group already exists. ``backend``
    defaults to :func:`backend_for` ``(rt.device.kind)``. On CUDA the process's GPU is selected
    first (``torch.cuda.set_device(local_rank)``); on TPU torch_xla's ``xla://`` init method is
    used. Raises :class:`~portarun.errors.DistributedError` when the rendezvous address is
    unknown (MPI without ``MASTER_ADDR``/``MASTER_PORT``).
    """
    info = rt.dist
    if not info.is_distributed:
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
    elif info.launcher != "torchrun":
        if not info.master_addr or info.master_port is None:
            raise DistributedError(
                f"cannot start the process group for this {info.launcher} launch: the rendezvous address is unknown. "
                "Set MASTER_ADDR (the host of rank 0) and MASTER_PORT (a free port) for every process, or start the "
                "processes with torchrun (`srun torchrun ...`, `portarun launch`).")
        kwargs.update(init_method=f"tcp://{info.master_addr}:{info.master_port}", rank=info.rank,
                      world_size=info.world_size)
    dist.init_process_group(**kwargs)  # type: ignore[arg-type]
    return info


def distributed_section(rt: Runtime) -> dict[str, Any]:
    """``rt.dist`` for ``portarun info``: launcher, ranks, sizes and the evidence."""
    info = rt.dist
    return {"launcher": info.launcher, "rank": info.rank, "local_rank": info.local_rank,
            "world_size": info.world_size, "local_world_size": info.local_world_size, "node_rank": info.node_rank,
            "is_main": info.is_main, "is_distributed": info.is_distributed, "evidence": list(info.evidence)}
