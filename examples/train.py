"""The portable example: one training script for Colab, Kaggle, Paperspace, a laptop or a GPU box.

It trains a small classifier on synthetic data and uses every part of portarun on the way:

* ``portarun.detect()``: where it runs, the device, the DataLoader settings, the paths;
* ``rt.seed`` and ``rt.device.torch()`` (mixed precision where the device supports it);
* ``rt.dataloader``: workers, pinning and prefetching fitted to this machine;
* checkpoints on storage that outlives the session, ``resume`` and ``maybe_save`` (every epoch
  and once before the session's deadline, after which it stops);
* exact resume: each checkpoint holds the DataLoader's place in its epoch and the random states,
  so an interrupted run goes on with the same batches and ends with the same weights as one that
  never stopped (with torchdata installed: ``pip install 'portarun[torch,resume]'``);
* ``rt.submit``: a validated submission, written where this host expects it.

Run it again and it resumes from the newest checkpoint instead of starting over, in the middle
of an epoch if it was stopped there; once all epochs are done, a second run only predicts and
rewrites the submission. ``--epochs 6`` on a later run trains the extra epochs only. ``--fresh``
deletes this project's checkpoints first.

    python examples/train.py [--epochs N] [--batch-size N] [--fresh]
"""
from __future__ import annotations

import argparse
import contextlib
import csv
import os
import time
from datetime import timedelta
from pathlib import Path

import torch
from torch import nn

import portarun
from portarun.checkpoint import Checkpointer, training_state

SEED = 1234
FEATURES, CLASSES = 32, 4
TRAIN_ROWS, VALID_ROWS, TEST_ROWS = 8192, 1024, 1000
#: Save and stop this long before the host ends the session (a Colab or Kaggle session's limit).
DEADLINE_MARGIN = timedelta(minutes=5)
# Exact resume needs deterministic kernels; cuBLAS is deterministic only with this workspace
# setting, read when CUDA first uses it (https://docs.pytorch.org/docs/stable/notes/randomness.html).
os.environ.setdefault("CUBLAS_WORKSPACE_CONFIG", ":4096:8")


def make_data(folder: Path) -> dict[str, torch.utils.data.TensorDataset]:
    """A synthetic competition: labels from a fixed random two-layer network, plus a
    ``sample_submission.csv`` for the test rows, as a competition would ship it."""
    g = torch.Generator().manual_seed(SEED)
    teacher = [torch.randn(FEATURES, 64, generator=g), torch.randn(64, CLASSES, generator=g)]
    rows = TRAIN_ROWS + VALID_ROWS + TEST_ROWS
    x = torch.randn(rows, FEATURES, generator=g)
    y = (torch.tanh(x @ teacher[0]) @ teacher[1]).argmax(dim=1)
    ids = torch.arange(rows)
    a, b = TRAIN_ROWS, TRAIN_ROWS + VALID_ROWS
    folder.mkdir(parents=True, exist_ok=True)
    with open(folder / "sample_submission.csv", "w", newline="") as f:
        csv.writer(f).writerows([("id", "label"), *((int(i), 0) for i in ids[b:])])
    return {"train": torch.utils.data.TensorDataset(x[:a], y[:a]),
            "valid": torch.utils.data.TensorDataset(x[a:b], y[a:b]),
            "test": torch.utils.data.TensorDataset(x[b:], ids[b:])}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--epochs", type=int, default=3)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--fresh", action="store_true", help="delete this project's checkpoints first")
    args = parser.parse_args()

    rt = portarun.detect()
    device = rt.device.torch()
    rt.seed(SEED)
    torch.use_deterministic_algorithms(True)  # the same kernels, so a resumed run rounds the same way
    print(f"portarun {portarun.__version__} on {rt.host.display_name} (confidence {rt.host.confidence:.2f}); "
          f"device {device}; project {rt.project!r}")
    left = rt.session.time_left()
    print(f"session: {'no time limit' if left is None else f'{left} left ({rt.session.source})'}")

    data = make_data(Path(rt.paths.scratch) / rt.project / "data")
    # With torchdata installed this is a StatefulDataLoader with a shuffling generator of its own
    # (seeded from rt.seed): its place in the epoch goes into every checkpoint.
    train_loader = rt.dataloader(data["train"], batch_size=args.batch_size, shuffle=True, drop_last=True)
    o = train_loader.portarun
    print(f"loader: num_workers={o.num_workers}, prefetch_factor={o.prefetch_factor}, pin_memory={o.pin_memory} "
          f"for {o.facts.cpus} usable CPUs (rt.loader.explain() says why)")
    if callable(getattr(train_loader, "state_dict", None)):
        print("resume: exact, mid-epoch included (torchdata's StatefulDataLoader)")
    else:
        print("resume: a resumed epoch starts its batches over; pip install 'portarun[resume]' to continue it exactly")
    if device.type == "cpu" and o.num_workers:
        # The workers have the CPUs; intra-op threads in the training process would fight them
        # (torch starts one per core) and a model this small gains nothing from them.
        torch.set_num_threads(max(1, o.facts.cpus - o.num_workers))
    steps_per_epoch = len(train_loader)
    total_steps = args.epochs * steps_per_epoch

    model = nn.Sequential(nn.Linear(FEATURES, 128), nn.ReLU(), nn.Dropout(0.1), nn.Linear(128, 128), nn.ReLU(),
                          nn.Linear(128, CLASSES)).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=3e-3)
    amp = getattr(torch, rt.device.amp_dtype) if rt.device.amp_dtype else None
    scaler = torch.amp.GradScaler(device.type, enabled=amp == torch.float16)

    ckpt = Checkpointer.from_runtime(rt, every_steps=steps_per_epoch, before_deadline=DEADLINE_MARGIN,
                                     keep_last=2)
    if args.fresh:
        for info in ckpt.list():
            ckpt.storage.delete(info.name)
    print(f"checkpoints: {ckpt.root}")
    # Puts back the model, optimizer, scaler, random states and the loader's place in its epoch.
    start = ckpt.resume(model, optimizer, scaler=scaler, loader=train_loader)
    if start:
        epoch, done = divmod(start, steps_per_epoch)
        where = f"end of epoch {epoch}" if not done else f"epoch {epoch + 1}, {done}/{steps_per_epoch} steps done"
        print(f"resumed from step {start} ({where}): {start.checkpoint}")
    else:
        print("starting fresh: no checkpoint yet")
    if start >= total_steps:
        print(f"training already finished ({total_steps} steps); predicting with the saved model")

    step = int(start)
    out_of_time = False
    while step < total_steps and not out_of_time:
        epoch = step // steps_per_epoch
        model.train()
        began, losses = time.perf_counter(), []
        # After a resume, the restored loader yields the rest of the interrupted epoch (nothing
        # when the checkpoint was taken at its end; the next pass starts the next epoch).
        for x, y in rt.wrap_loader(train_loader):
            x, y = rt.to_device((x, y))
            with torch.autocast(device.type, dtype=amp) if amp else contextlib.nullcontext():
                loss = nn.functional.cross_entropy(model(x), y)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            scaler.step(optimizer)
            scaler.update()
            losses.append(loss.item())
            step += 1
            ckpt.maybe_save(lambda: training_state(model, optimizer, scaler=scaler, loader=train_loader), step,
                            metrics={"loss": losses[-1]})
            left = rt.session.time_left()
            if left is not None and left <= DEADLINE_MARGIN:
                out_of_time = True
                print(f"session ends in {left}: saved step {step}; run again to continue from there")
                break
            if step % steps_per_epoch == 0:
                break  # the epoch is done (a plain DataLoader, without torchdata, restarts a resumed one)
        if losses:
            print(f"epoch {epoch + 1}/{args.epochs}: loss {sum(losses) / len(losses):.3f}, "
                  f"valid accuracy {accuracy(rt, model, data['valid']):.3f} "
                  f"({len(losses)} steps, {time.perf_counter() - began:.1f} s)")
    ckpt.wait()
    if step > start:
        latest = ckpt.latest()
        print(f"saved: {latest if latest else 'nothing'}")

    model.eval()
    ids, labels = [], []
    with torch.no_grad():
        for x, row_ids in torch.utils.data.DataLoader(data["test"], batch_size=256):
            labels += model(rt.to_device(x)).argmax(dim=1).tolist()
            ids += row_ids.tolist()
    sample = Path(rt.paths.scratch) / rt.project / "data" / "sample_submission.csv"
    result = rt.submit({"id": ids, "label": labels}, sample=sample)
    print(f"submission: {result.path} ({result.rows} rows, checked against {result.sample.name})")
    for note in result.notes:
        print(f"  {note}")


def accuracy(rt: portarun.Runtime, model: nn.Module, dataset: torch.utils.data.Dataset) -> float:
    """Share of correct predictions on ``dataset``, leaving torch's global RNG untouched."""
    model.eval()
    correct = total = 0
    # Every iter() of a DataLoader draws a seed from its generator, or from torch's global RNG,
    # which dropout uses too: a run resumed from an epoch's end did not evaluate that epoch, so
    # evaluating with the global RNG would give the uninterrupted run other dropout masks.
    with torch.no_grad():
        for x, y in torch.utils.data.DataLoader(dataset, batch_size=512, generator=torch.Generator()):
            x, y = rt.to_device((x, y))
            correct += int((model(x).argmax(dim=1) == y).sum())
            total += len(y)
    model.train()
    return correct / total


if __name__ == "__main__":
    main()
