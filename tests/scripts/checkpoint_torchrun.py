"""Run under ``torchrun --nproc_per_node=2``: every rank calls save (only rank 0 writes),
then every rank resumes; sharded states go through torch.distributed.checkpoint. Prints one
JSON file per rank, ``ROOT.rank<N>.json`` (stdout lines of two ranks can interleave)."""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import torch
import torch.distributed as dist

import portarun
from portarun.checkpoint import Checkpointer, training_state


def main(root: str) -> None:
    dist.init_process_group("gloo")
    rank = dist.get_rank()
    rt = portarun.detect()
    ck = Checkpointer.from_runtime(rt, keep_last=2, handle_signals=False)
    torch.manual_seed(0)
    model = torch.nn.Linear(4, 4)
    opt = torch.optim.SGD(model.parameters(), lr=0.1)
    start = ck.resume(model, opt)
    names = []
    for step in range(start, start + 3):
        opt.zero_grad()
        model(torch.ones(2, 4)).sum().backward()
        opt.step()
        # every rank calls save; only rank 0 writes, nobody waits for anybody
        names.append(ck.save(training_state(model, opt), step=step + 1))
    ck.wait()
    dist.barrier()  # the test's own synchronisation: rank 0's saves are published now
    fresh = torch.nn.Linear(4, 4)
    resumed = ck.resume(fresh, torch.optim.SGD(fresh.parameters(), lr=0.1))
    same = torch.equal(fresh.weight, model.weight)
    # a really sharded tensor: each rank holds half of it
    from torch.distributed.tensor import Shard, distribute_tensor, init_device_mesh

    mesh = init_device_mesh("cpu", (2,))
    full = torch.arange(8, dtype=torch.float32) + 100 * resumed
    sharded_name = ck.save_sharded({"weight": distribute_tensor(full, mesh, [Shard(0)])}, step=100 + resumed)
    target = {"weight": distribute_tensor(torch.zeros(8), mesh, [Shard(0)])}
    sharded_step = ck.load_sharded(target)
    Path(f"{root}.rank{rank}.json").write_text(json.dumps({"rank": rank, "is_main": rt.dist.is_main, "start": start,
                      "names": names, "resumed": resumed, "same_weights": same, "sharded": sharded_name,
                      "sharded_step": sharded_step,
                      "sharded_value": target["weight"].to_local().tolist(), "listed": [i.step for i in ck.list()]}))
    ck.close()  # saves finished and the lease released: the exit below skips what atexit would do
    # Both ranks leave their last collective before either tears gloo down: without this, a rank
    # still finishing one can abort ("terminate called without an active exception", exit -6).
    dist.barrier()
    dist.destroy_process_group()
    # The work is written. Gloo's threads can abort interpreter finalization (SIGABRT, "terminate called
    # without an active exception"): a torch teardown race (pytorch/pytorch#179291). Leave without it.
    sys.stdout.flush()
    os._exit(0)


if __name__ == "__main__":
    main(sys.argv[1])
