"""The run monitor on a small training run whose loader is slow on purpose.

Each sample takes 2 ms to "decode" (a sleep standing in for JPEG decoding or tokenising). The
first epochs load in the training process (``num_workers=0``), so the loop waits for data; the
last ones use the workers ``rt.dataloader()`` sizes to this machine's usable CPUs. The monitor
writes its timeline under ``rt.paths.output/monitor`` and the report prints the measurements,
the advice, and where the plot went (docs/monitor.md shows one made by this script).

    python -m pip install ".[torch,monitor,plot]"
    python examples/monitor_plot.py                       # about half a minute on a laptop CPU
    python examples/monitor_plot.py --png docs/img/monitor-example.png
"""
from __future__ import annotations

import argparse
import time

import torch

import portarun


class SlowDataset(torch.utils.data.Dataset):  # type: ignore[type-arg]
    """Synthetic classification rows, each costing ``delay`` seconds to produce."""

    def __init__(self, rows: int, delay: float) -> None:
        generator = torch.Generator().manual_seed(0)
        self.x = torch.randn(rows, 64, generator=generator)
        self.y = (self.x[:, 0] > 0).long()
        self.delay = delay

    def __len__(self) -> int:
        return len(self.x)

    def __getitem__(self, i: int) -> tuple[torch.Tensor, torch.Tensor]:
        time.sleep(self.delay)
        return self.x[i], self.y[i]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--epochs", type=int, default=4, help="half without workers, half with")
    parser.add_argument("--png", help="where to write the plot (default: beside the timeline)")
    parser.add_argument("--interval", type=float, default=1.0, help="seconds between samples")
    args = parser.parse_args()

    rt = portarun.detect()
    data = SlowDataset(2048, delay=0.002)
    model = torch.nn.Sequential(torch.nn.Linear(64, 256), torch.nn.ReLU(), torch.nn.Linear(256, 2))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with rt.monitor(interval=args.interval) as mon:
        for epoch in range(args.epochs):
            workers = epoch >= args.epochs // 2
            loader = (rt.dataloader(data, batch_size=64, shuffle=True) if workers
                      else torch.utils.data.DataLoader(data, batch_size=64, shuffle=True, num_workers=0))
            for x, y in mon.wrap(loader):
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(model(x), y)
                loss.backward()
                optimizer.step()
            print(f"epoch {epoch + 1}/{args.epochs} with num_workers={loader.num_workers}: loss {loss.item():.3f}")
    print(mon.report(png=args.png))


if __name__ == "__main__":
    main()
