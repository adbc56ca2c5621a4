"""Soak test: SIGKILL a saving process at random moments, many times; count any loss.

    .venv/bin/python benchmarks/soak_checkpoint.py [--rounds 500] [--seed 1] [--dir PATH]

Each round forks a child that saves 1.2 MB states in a loop (alternating ``fork`` and
``thread`` writer modes, keep_last=2) and records every step known to be published; the whole
process group is killed with SIGKILL after a random 0.02-0.5 s. Then every listed checkpoint
is loaded and checked, and the newest must be at least the last acknowledged step. Prints a
summary; exits non-zero on any violation. (tests/test_checkpoint_crash.py runs 50 rounds.)
"""
from __future__ import annotations

import argparse
import os
import random
import signal
import sys
import tempfile
import time
import warnings
from pathlib import Path

import torch

from portarun.checkpoint import Checkpointer
from portarun.errors import PortarunWarning


def child(root: Path, acked: Path, mode: str) -> None:
    os.setsid()
    torch.set_num_threads(1)  # OpenMP's pool does not survive fork
    ck = Checkpointer(root, keep_last=2, mode=mode, handle_signals=False)  # type: ignore[arg-type]
    fd = os.open(acked, os.O_WRONLY | os.O_CREAT | os.O_APPEND)
    latest = ck.latest()
    step = latest.step if latest else 0
    previous = None
    while True:
        step += 1
        ck.save({"w": torch.full((300_000,), float(step)), "step": step}, step=step)
        if previous is not None:
            os.write(fd, f"{previous}\n".encode())
        previous = step


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--rounds", type=int, default=500)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--dir", default=None)
    args = parser.parse_args()
    warnings.simplefilter("error", PortarunWarning)  # a fallback to an older checkpoint is a failure
    rng = random.Random(args.seed)
    base = Path(tempfile.mkdtemp(prefix="soak-ckpt-", dir=args.dir))
    root, acked = base / "ck", base / "acked"
    best, violations, empty, loads = -1, [], 0, 0
    started = time.monotonic()
    for round_no in range(args.rounds):
        acked.write_text("")
        mode = ("fork", "thread")[round_no % 2]
        pid = os.fork()
        if pid == 0:
            try:
                child(root, acked, mode)
            finally:
                os._exit(0)
        time.sleep(rng.uniform(0.02, 0.5))
        os.killpg(pid, signal.SIGKILL)
        os.waitpid(pid, 0)
        steps = [int(s) for s in acked.read_text().split()]
        ck = Checkpointer(root, mode="blocking", handle_signals=False)
        try:
            latest = ck.latest()
            if latest is None:
                empty += 1
                if steps or best >= 0:
                    violations.append(f"round {round_no}: nothing loadable, acknowledged {steps}")
                continue
            for info in ck.list():
                state = ck.load(step=info.step, map_location="cpu")
                loads += 1
                if state["step"] != info.step or not torch.equal(state["w"], torch.full((300_000,), float(info.step))):
                    violations.append(f"round {round_no}: step {info.step} has wrong content")
            if latest.step < max(steps, default=-1):
                violations.append(f"round {round_no}: acknowledged {max(steps)} but latest is {latest.step}")
            best = max(best, latest.step)
        except Exception as exc:  # corrupt checkpoint, fallback warning turned error, ...
            violations.append(f"round {round_no}: {type(exc).__name__}: {exc}")
    print(f"{args.rounds} SIGKILL rounds in {time.monotonic() - started:.0f} s: newest step {best}, "
          f"{loads} checkpoint loads verified, {empty} rounds killed before the first save, "
          f"{len(violations)} violations")
    for line in violations[:20]:
        print("  " + line)
    return 1 if violations else 0


if __name__ == "__main__":
    sys.exit(main())
