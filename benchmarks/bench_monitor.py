"""What the run monitor costs a training loop, and whether its data-wait figure is right.

1. Overhead: a CPU-bound training step (a small MLP, forward and backward, in torch on the
   CPU) run for a fixed number of steps without the monitor and with it (``rt.monitor()`` at the
   default interval, batches through ``mon.wrap``), in paired rounds whose order alternates, so
   that the machine's drift hits both sides alike. Each round's ratio is monitored / plain time;
   the median ratio and the spread are printed. The monitor is started before the timed loop
   and stopped after it: the figure is the steady cost per second of training (a start costs a
   few milliseconds once per run).
2. Data wait: a loader that sleeps a known time before each batch and a step that sleeps a
   known time; the monitor's wait fraction against the true ``delay / (delay + step)``.

    python benchmarks/bench_monitor.py                      # about a minute and a half on an idle machine
    python benchmarks/bench_monitor.py --rounds 4 --steps 100   # quicker, noisier
"""
from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import torch  # noqa: E402

from portarun.monitor import DEFAULT_INTERVAL, read_timeline  # noqa: E402
from portarun.monitor.advice import summarize  # noqa: E402
from portarun.testing import simulate  # noqa: E402


def _model() -> tuple[torch.nn.Module, torch.optim.Optimizer, list[torch.Tensor]]:
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(256, 256), torch.nn.ReLU(), torch.nn.Linear(256, 256),
                                torch.nn.ReLU(), torch.nn.Linear(256, 10))
    batches = [torch.randn(64, 256) for _ in range(16)]
    return model, torch.optim.SGD(model.parameters(), lr=0.01), batches


def _loop(batches: Iterator[torch.Tensor], model: torch.nn.Module, opt: torch.optim.Optimizer) -> None:
    for x in batches:
        opt.zero_grad()
        model(x).square().mean().backward()
        opt.step()


def _cycle(batches: list[torch.Tensor], steps: int) -> Iterator[torch.Tensor]:
    for i in range(steps):
        yield batches[i % len(batches)]


def _spread(name: str, ratios: list[float]) -> str:
    q = statistics.quantiles(ratios, n=4) if len(ratios) >= 2 else [ratios[0]] * 3
    return (f"{name}: median ratio {statistics.median(ratios):.4f}, quartiles {q[0]:.4f}..{q[2]:.4f}, "
            f"range {min(ratios):.4f}..{max(ratios):.4f}")


def overhead(rounds: int, steps: int, interval: float) -> None:
    """Wall time and this process's CPU time (all its threads: the sampler's included) of the
    same loop with and without the monitor. On a shared machine the wall ratio carries the
    other tenants' noise; the CPU-time ratio is what the monitor adds to the work itself."""
    model, opt, batches = _model()
    _loop(_cycle(batches, 20), model, opt)  # warm up
    wall, cpu, plain_times = [], [], []
    with tempfile.TemporaryDirectory() as tmp, simulate("local", root=tmp) as rt:
        for r in range(rounds):
            timings: dict[str, tuple[float, float]] = {}
            for side in (("plain", "monitored") if r % 2 == 0 else ("monitored", "plain")):
                if side == "plain":
                    t0, c0 = time.perf_counter(), time.process_time()
                    _loop(_cycle(batches, steps), model, opt)
                    timings[side] = (time.perf_counter() - t0, time.process_time() - c0)
                else:
                    with rt.monitor(interval=interval, path=Path(tmp) / f"round{r}.jsonl") as mon:
                        t0, c0 = time.perf_counter(), time.process_time()
                        _loop(mon.wrap(_cycle(batches, steps)), model, opt)
                        timings[side] = (time.perf_counter() - t0, time.process_time() - c0)
                    samples = len(read_timeline(mon.path).samples)
            wall.append(timings["monitored"][0] / timings["plain"][0])
            cpu.append(timings["monitored"][1] / timings["plain"][1])
            plain_times.append(timings["plain"][0])
            print(f"round {r + 1}: plain {timings['plain'][0]:.2f} s wall / {timings['plain'][1]:.2f} s CPU, "
                  f"monitored {timings['monitored'][0]:.2f} / {timings['monitored'][1]:.2f} s "
                  f"({samples} samples): wall ratio {wall[-1]:.4f}, CPU ratio {cpu[-1]:.4f}", flush=True)
        sampler_cost(rt, interval)
        per_step = step_cost(rt)
    step = statistics.median(plain_times) / steps
    print(f"\noverhead at interval {interval:g} s, {rounds} paired rounds of {steps} steps "
          f"(~{statistics.median(plain_times):.1f} s each, {step * 1000:.2f} ms per step; mon.wrap adds "
          f"{per_step / step:.2%} of a step)")
    print("  " + _spread("CPU time", cpu))
    print("  " + _spread("wall time", wall))


def step_cost(rt: object, steps: int = 200_000) -> float:
    """Seconds ``mon.wrap`` adds to each step: an empty loop through it against a bare one."""
    with tempfile.TemporaryDirectory() as tmp:
        with rt.monitor(interval=3600, path=Path(tmp) / "steps.jsonl") as mon:  # type: ignore[attr-defined]
            best_plain = best_wrapped = float("inf")
            for _ in range(3):
                t0 = time.perf_counter()
                for _ in range(steps):
                    pass
                best_plain = min(best_plain, time.perf_counter() - t0)
                t0 = time.perf_counter()
                for _ in mon.wrap(range(steps)):
                    pass
                best_wrapped = min(best_wrapped, time.perf_counter() - t0)
    each = (best_wrapped - best_plain) / steps
    print(f"one step through mon.wrap: {each * 1e6:.2f} µs more than a bare loop (best of 3)")
    return each


def sampler_cost(rt: object, interval: float, reads: int = 40) -> None:
    """The CPU time one sample costs, read in the calling thread, as a share of one CPU at ``interval``."""
    from portarun.monitor.sampler import Sampler

    sampler = Sampler(rt, quotas={})  # type: ignore[arg-type]
    sampler.read()
    c0 = time.thread_time()
    for _ in range(reads):
        sampler.read()
    each = (time.thread_time() - c0) / reads
    sampler.close()
    print(f"one sample: {each * 1000:.2f} ms of CPU = {each / interval:.3%} of one CPU at {interval:g} s")


class SleepyLoader:
    def __init__(self, batches: int, delay: float) -> None:
        self.batches, self.delay, self.num_workers, self.batch_size = batches, delay, 0, 1

    def __iter__(self) -> Iterator[int]:
        for i in range(self.batches):
            time.sleep(self.delay)
            yield i


def data_wait(batches: int) -> None:
    print("\ndata wait: loader delay, step time -> true fraction, measured")
    with tempfile.TemporaryDirectory() as tmp, simulate("local", root=tmp) as rt:
        for delay, step in ((0.010, 0.030), (0.020, 0.020), (0.030, 0.010), (0.0, 0.020)):
            with rt.monitor(interval=0.5, path=Path(tmp) / f"wait-{delay}-{step}.jsonl") as mon:
                for _ in mon.wrap(SleepyLoader(batches, delay)):
                    time.sleep(step)
            s = summarize(read_timeline(mon.path))
            true = delay / (delay + step)
            print(f"  {delay * 1000:4.0f} ms, {step * 1000:4.0f} ms -> {true:.3f}, {s.wait_fraction:.3f} "
                  f"({s.steps} steps)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--steps", type=int, default=6000, help="training steps per timed loop")
    parser.add_argument("--interval", type=float, default=DEFAULT_INTERVAL)
    parser.add_argument("--batches", type=int, default=50, help="batches per data-wait case")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (1: less contention on a shared machine)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    overhead(args.rounds, args.steps, args.interval)
    data_wait(args.batches)


if __name__ == "__main__":
    main()
