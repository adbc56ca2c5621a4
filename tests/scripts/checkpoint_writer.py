"""Save checkpoints into a root from a real, separate process; print what happened as JSON.

Usage: checkpoint_writer.py ROOT FIRST LAST [--staging DIR] [--floats N] [--wait FILE] [--hold]
[--options JSON]: save steps FIRST..LAST (blocking, ``N`` float32 values each) into ROOT, after
FILE exists when ``--wait`` is given. Prints one JSON line: the steps saved, and the error's
type and message if a save raised a PortarunError. With ``--hold`` the process then sleeps
(still holding its writer lease) until it is killed.
"""
from __future__ import annotations

import argparse
import json
import os
import time
from pathlib import Path

import torch

from portarun.checkpoint import Checkpointer
from portarun.errors import PortarunError


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("root")
    parser.add_argument("first", type=int)
    parser.add_argument("last", type=int)
    parser.add_argument("--staging")
    parser.add_argument("--floats", type=int, default=1000)
    parser.add_argument("--wait")
    parser.add_argument("--hold", action="store_true")
    parser.add_argument("--options")
    args = parser.parse_args()
    if args.wait:  # say "ready" (torch is imported), then start with the other writers
        Path(f"{args.wait}.ready.{os.getpid()}").touch()
    while args.wait and not os.path.exists(args.wait):
        time.sleep(0.001)
    ck = Checkpointer(args.root, mode="blocking", keep_last=1000, staging=args.staging, handle_signals=False,
                      storage_options=json.loads(args.options) if args.options else None)
    saved: list[int] = []
    error = None
    for step in range(args.first, args.last + 1):
        try:
            ck.save({"w": torch.full((args.floats,), float(step)), "step": step, "pid": os.getpid()}, step=step)
        except PortarunError as exc:
            error = {"type": type(exc).__name__, "message": str(exc)}
            break
        saved.append(step)
    print(json.dumps({"pid": os.getpid(), "saved": saved, "error": error}), flush=True)
    while args.hold:
        time.sleep(60)


if __name__ == "__main__":
    main()
