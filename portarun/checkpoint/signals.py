"""Preemption signals: save once at the next step boundary, then let the signal do its job.

Kaggle stops a session and SLURM preempts a job with SIGTERM (``scancel``/preemption send
SIGTERM, then SIGKILL after ``KillWait``, default 30 s: slurm.conf(5)); ``sbatch
--signal=USR1@<seconds>`` sends SIGUSR1 ahead of the time limit (sbatch(1)). A handler runs
between two bytecodes of the main thread, possibly in the middle of an optimizer step, so it
only records the signal; the next ``maybe_save`` (a step boundary) saves and then calls
:meth:`PreemptionGuard.finish`, which restores the previous handlers and raises the signal
again, so what would have happened without portarun (the default: the process ends) happens.
If no step boundary comes within the grace period, the watchdog waits for the pending write
and re-raises the signal anyway.
"""
from __future__ import annotations

import signal
import threading
from collections.abc import Callable
from types import FrameType
from typing import Any

#: Default grace period (seconds): under SLURM's default KillWait and Kubernetes' default
#: terminationGracePeriodSeconds (30 s each) between SIGTERM and SIGKILL.
DEFAULT_GRACE = 25.0


def default_signals() -> tuple[signal.Signals, ...]:
    """SIGTERM, and SIGUSR1 where the platform has it."""
    return tuple(s for s in (getattr(signal, "SIGTERM", None), getattr(signal, "SIGUSR1", None)) if s is not None)


class PreemptionGuard:
    """Records the first preemption signal; ``finish()`` hands it on after the final save."""

    def __init__(self, on_timeout: Callable[[], None], grace: float = DEFAULT_GRACE,
                 signals: tuple[signal.Signals, ...] | None = None) -> None:
        self.on_timeout = on_timeout
        self.grace = grace
        self.signals = default_signals() if signals is None else signals
        self.received: int | None = None
        self._previous: dict[int, Any] = {}
        self._timer: threading.Timer | None = None
        self._expired = False

    @property
    def installed(self) -> bool:
        """Whether the handlers are in place."""
        return bool(self._previous)

    def install(self) -> bool:
        """Install the handlers (only possible in the main thread; returns whether it was)."""
        if self.installed:
            return True
        if threading.current_thread() is not threading.main_thread():
            return False
        for sig in self.signals:
            self._previous[sig] = signal.signal(sig, self._handle)
        return True

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if self._expired:
            self.finish()
            return
        if self.received is None:
            self.received = signum
            self._timer = threading.Timer(self.grace, self._expire)
            self._timer.daemon = True
            self._timer.start()

    def _expire(self) -> None:
        try:
            self.on_timeout()
        finally:
            self._expired = True
            # A real signal to the main thread, unlike _thread.interrupt_main, also interrupts
            # a blocking call there (sleep, a socket read); the handler then hands it on.
            main = threading.main_thread().ident
            if main is not None:
                signal.pthread_kill(main, self.received or signal.SIGTERM)

    def uninstall(self) -> None:
        """Put the previous handlers back (main thread only)."""
        if self._timer is not None:
            self._timer.cancel()
        for sig, previous in self._previous.items():
            signal.signal(sig, previous if previous is not None else signal.SIG_DFL)
        self._previous.clear()

    def finish(self) -> None:
        """Restore the previous handlers and raise the recorded signal again."""
        received = self.received
        self.uninstall()
        if received is not None:
            signal.raise_signal(received)
