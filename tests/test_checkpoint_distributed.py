"""A real two-process gloo run under torchrun: rank 0 writes, both ranks resume the same step,
nothing deadlocks when only rank 0 saves; sharded states via torch.distributed.checkpoint."""
from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest

pytest.importorskip("torch.distributed")

SCRIPT = Path(__file__).parent / "scripts" / "checkpoint_torchrun.py"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _torchrun(root: Path) -> list[dict[str, object]]:
    env = {**os.environ, "PORTARUN_CHECKPOINTS_DIR": str(root), "PORTARUN_HOST": "local", "PORTARUN_PROGRESS": "0",
           "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", "torch.distributed.run", "--nproc_per_node=2", "--master_addr=127.0.0.1",
               f"--master_port={_free_port()}", str(SCRIPT), str(root)]
    out = subprocess.run(command, env=env, capture_output=True, text=True, timeout=180)
    assert out.returncode == 0, out.stderr[-3000:]
    return [json.loads(Path(f"{root}.rank{rank}.json").read_text()) for rank in (0, 1)]


@pytest.mark.slow
def test_two_process_gloo_rank0_writes_both_resume(tmp_path: Path) -> None:
    root = tmp_path / "ck"
    root.mkdir()
    first = _torchrun(root)
    assert [r["is_main"] for r in first] == [True, False]
    assert first[0]["names"] == ["step-000000001", "step-000000002", "step-000000003"]
    assert first[1]["names"] == [None, None, None]  # rank 1 wrote nothing and did not block
    assert [r["resumed"] for r in first] == [3, 3] and all(r["same_weights"] for r in first)
    for r in first:  # sharded: each rank's shard came back; one published checkpoint
        assert r["sharded_step"] == 103 and r["sharded"] == "step-000000103"
    assert first[0]["sharded_value"] == [300.0, 301.0, 302.0, 303.0]  # rank 0's half of arange(8) + 300
    assert first[1]["sharded_value"] == [304.0, 305.0, 306.0, 307.0]
    # a second launch (a new session) resumes both ranks from the newest replicated checkpoint
    second = _torchrun(root)
    assert [r["start"] for r in second] == [3, 3]
    assert [r["resumed"] for r in second] == [6, 6]
    assert sorted(p for p in os.listdir(root) if not p.startswith("step-")) == []
