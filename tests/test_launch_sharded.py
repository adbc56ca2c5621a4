"""Sharded checkpoints across nodes: a DTensor sharded over two "nodes" (two `portarun launch
--nnodes 2` agents on one c10d rendezvous) is saved with ``save_sharded``
(torch.distributed.checkpoint) and resumed on one node by 3 ranks and by 1, each reading its own,
differently cut, shard (DCP resharding). Real processes, gloo."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from test_distributed import REPO
from test_launch_nodes import agents

SCRIPT = '''
import json, os, sys
import torch, torch.distributed as dist
import portarun
from portarun.checkpoint import Checkpointer
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.tensor import Shard, distribute_tensor

mode, root, out = sys.argv[1:4]
rt = portarun.detect()
rt.init_distributed()
rank, world = dist.get_rank(), dist.get_world_size()
mesh = init_device_mesh("cpu", (world,))
full = torch.arange(70, dtype=torch.float32).reshape(14, 5)
ckpt = Checkpointer(root)
if mode == "save":
    ckpt.save_sharded({"w": distribute_tensor(full, mesh, [Shard(0)]), "bias": torch.full((3,), 7.0)}, step=5)
else:
    state = {"w": distribute_tensor(torch.zeros(14, 5), mesh, [Shard(0)]), "bias": torch.zeros(3)}
    step = ckpt.load_sharded(state)
    shard = state["w"].to_local()
    whole = state["w"].full_tensor()
    with open(os.path.join(out, f"rank{rank}.json"), "w") as f:
        json.dump({"step": step, "world": world, "rows": shard.shape[0], "whole": torch.equal(whole, full),
                   "bias": state["bias"].tolist()}, f)
ckpt.close()  # every write finished before the group goes: a rank exiting mid-write aborts the others
dist.barrier()
dist.destroy_process_group()
# The work is done and written above. Gloo's worker threads can abort interpreter finalization
# (SIGABRT, "terminate called without an active exception"; seen here with 3 ranks on 2 CPUs):
# a known torch teardown race (pytorch/pytorch#179291). Leaving without finalization keeps it out.
sys.stdout.flush()
os._exit(0)
'''


def launch(tmp_path: Path, nproc: int, mode: str, root: Path, out: Path) -> None:
    script = tmp_path / "sharded.py"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("PORTARUN_", "OMP_NUM_THREADS", "PJRT_"))}
    env.update(PYTHONPATH=str(REPO) + os.pathsep + env.get("PYTHONPATH", ""), PORTARUN_DEVICE="cpu")
    done = subprocess.run([sys.executable, "-m", "portarun", "launch", "--nproc", str(nproc), str(script), mode,
                           str(root), str(out)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-4000:]


@pytest.mark.slow
def test_sharded_checkpoint_resumes_with_another_world_size(tmp_path: Path) -> None:
    root = tmp_path / "checkpoints"
    (tmp_path / "sharded.py").write_text(SCRIPT)
    agents(tmp_path, tmp_path / "sharded.py", [], ["save", str(root), str(tmp_path)])
    for nproc in (3, 1):
        out = tmp_path / f"load{nproc}"
        out.mkdir()
        launch(tmp_path, nproc, "load", root, out)
        results = [json.loads((out / f"rank{r}.json").read_text()) for r in range(nproc)]
        assert all(r["step"] == 5 and r["world"] == nproc and r["whole"] and r["bias"] == [7.0] * 3 for r in results)
        # 14 rows cut 2 ways when saved, read back cut 3 ways (5, 5, 4) or whole
        assert [r["rows"] for r in results] == ([5, 5, 4] if nproc == 3 else [14])
