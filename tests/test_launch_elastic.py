"""Elastic restarts that resume: `portarun launch --nproc 2 --max-restarts 1`, one worker
SIGKILLed mid-run by the test; torchrun restarts the workers, every rank resumes from the newest
checkpoint, and the final weights equal those of an uninterrupted run.

The restarted workers find each other through the agent's store, which outlives the restart:
without the per-attempt prefix ``rt.init_distributed()`` adds (portarun/distributed.py,
``_torchrun_init``) a new worker could read its dead peer's address and fail with "Connection
refused" (seen here before that fix). One agent with two workers: with two agents, the one whose
worker did not fail restarts on the membership change without counting a restart, so the two
disagree on the attempt (torchrun's own behaviour), so the prefix is only added on one node."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from test_launch_nodes import clean_env

TRAIN = '''
import os, sys, time
import torch, torch.distributed as dist
import portarun
from portarun.checkpoint import Checkpointer, training_state

out, steps, kill_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
rt = portarun.detect()
rt.init_distributed()
rank, world = rt.dist.rank, rt.dist.world_size
torch.manual_seed(0)
model = torch.nn.Linear(4, 1)
opt = torch.optim.SGD(model.parameters(), lr=0.05, momentum=0.9)
ckpt = Checkpointer(os.path.join(out, "ckpt"), keep_last=2, handle_signals=False)
start = ckpt.resume(model, opt)
# One record per worker process: torchrun restarts every worker of the job, and an agent whose
# worker did not fail restarts its own without counting a restart (TORCHELASTIC_RESTART_COUNT).
with open(os.path.join(out, f"resumed-pid{os.getpid()}.txt"), "w") as f:
    f.write(f"{rank} {int(start)}")
for step in range(start, steps):
    g = torch.Generator().manual_seed(1000 * step + rank)  # each rank its own shard of the data
    x = torch.randn(8, 4, generator=g)
    opt.zero_grad()
    ((model(x) - x.sum(1, keepdim=True)) ** 2).mean().backward()
    for p in model.parameters():
        dist.all_reduce(p.grad)
        p.grad /= world
    opt.step()
    ckpt.save(training_state(model, opt), step + 1, blocking=True)
    dist.barrier()  # checkpoint step+1 is published before any rank goes on
    if step + 1 == kill_at and start == 0 and rank == 1:
        with open(os.path.join(out, "victim.pid"), "w") as f:
            f.write(str(os.getpid()))
        time.sleep(600)  # the test SIGKILLs this worker here, mid-run
if rank == 0:
    torch.save(model.state_dict(), os.path.join(out, "final.pt"))
ckpt.close()
dist.barrier()
dist.destroy_process_group()
# The work is written. Gloo's threads can abort interpreter finalization (SIGABRT, "terminate called
# without an active exception"): a torch teardown race (pytorch/pytorch#179291). Leave without it.
sys.stdout.flush()
os._exit(0)
'''


def train(tmp_path: Path, name: str, kill_at: int) -> Path:
    out = tmp_path / name
    out.mkdir()
    script = tmp_path / "train.py"
    script.write_text(TRAIN)
    stop = threading.Event()

    def killer() -> None:  # SIGKILL the worker that reached kill_at, from outside, as an OOM killer would
        pid_file = out / "victim.pid"
        while not stop.is_set():
            if pid_file.is_file() and pid_file.read_text():
                time.sleep(0.5)
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
                return
            time.sleep(0.1)

    thread = threading.Thread(target=killer, daemon=True)
    thread.start()
    try:
        # its own session, so that a hung run's workers are stopped with torchrun
        log = out / "launch.log"
        with log.open("w") as sink:
            proc = subprocess.Popen([sys.executable, "-m", "portarun", "launch", "--nproc", "2", "--max-restarts", "1",
                                     str(script), str(out), "6", str(kill_at)], cwd=tmp_path, env=clean_env(),
                                    stdout=sink, stderr=subprocess.STDOUT, start_new_session=True)
        try:
            proc.wait(timeout=300)  # a restart re-imports torch in every worker: slow on a busy machine
        finally:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()
        assert proc.returncode == 0, log.read_text()[-6000:]
    finally:
        stop.set()
        thread.join()
    return out


@pytest.mark.slow
def test_killed_worker_restarts_and_resumes_to_the_same_weights(tmp_path: Path) -> None:
    import torch

    plain = train(tmp_path, "plain", kill_at=-1)
    killed = train(tmp_path, "killed", kill_at=3)
    assert (killed / "victim.pid").is_file()  # the kill happened
    assert sorted(p.read_text() for p in plain.glob("resumed-*")) == ["0 0", "1 0"]
    # torchrun restarted both workers (new processes); each resumed from checkpoint 3, not from scratch
    assert sorted(p.read_text() for p in killed.glob("resumed-*")) == ["0 0", "0 3", "1 0", "1 3"]
    a, b = (torch.load(d / "final.pt", weights_only=True) for d in (plain, killed))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
