"""Fill a small filesystem with checkpoints until it is full; print what happened as JSON.

Usage: checkpoint_enospc.py MOUNT MODE[,MODE...]: for each writer mode, fill MOUNT/MODE, report
one JSON line, then empty it. Run on a tiny tmpfs (tests/test_checkpoint_enospc.py mounts one in
a private mount namespace).
"""
from __future__ import annotations

import json
import os
import shutil
import sys

import torch

from portarun.checkpoint import Checkpointer
from portarun.errors import StorageFullError


def main(root: str, mode: str) -> None:
    ck = Checkpointer(root, keep_last=100, mode=mode, handle_signals=False)  # type: ignore[arg-type]
    saved, error = [], None
    for step in range(1, 100):
        try:
            ck.save({"w": torch.full((100_000,), float(step)), "step": step}, step=step)  # 400 KB
            ck.wait()
            saved.append(step)
        except StorageFullError as exc:
            error = str(exc)
            break
    intact = [ck.load(step=i.step)["step"] == i.step for i in ck.list()]
    ck.close()  # releases the writer lease, so the folder holds checkpoints only
    print(json.dumps({"saved": saved, "error": error, "listed": [i.step for i in ck.list()],
                      "intact": intact, "entries": sorted(os.listdir(root))}))


if __name__ == "__main__":
    for writer_mode in sys.argv[2].split(","):
        folder = os.path.join(sys.argv[1], writer_mode)
        main(folder, writer_mode)
        shutil.rmtree(folder)
