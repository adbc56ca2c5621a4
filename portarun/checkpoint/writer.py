"""Writing a state to disk, in the foreground or in the background.

:func:`write_state` writes ``state.pt`` with ``torch.save`` (torch's zip format, loadable with
``weights_only=True``), computing its CRC-32 as it writes, then fsyncs it. torch's own
per-record CRC-32 is turned off for the write: the manifest's whole-file CRC-32 replaces it,
and it is what kept ``torch.save`` at about half of the raw write speed.

:class:`Writer` runs at most one save at a time in one of three ways:

* ``blocking``: in the caller's thread.
* ``thread``: the caller copies every tensor to host memory (reusing the previous snapshot's
  buffers when shapes match), a background thread writes; training stalls for the copy.
* ``fork`` (Linux, CPU tensors): the caller forks; the child process writes the copy-on-write
  image of the state, exactly as it was at ``save()``, while the parent trains on. Redis saves
  its RDB snapshots the same way (``BGSAVE``). The stall is the fork itself; pages the parent
  then modifies are copied by the kernel while the child runs. Tensors on an accelerator are
  first copied to host memory (a CUDA context must not be used across fork).

A failed background save is re-raised by the next ``submit`` or ``wait``.
"""
from __future__ import annotations

import copy
import errno
import json
import os
import signal
import sys
import threading
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal

from ..errors import CheckpointError, StorageFullError
from ..progress import Bar, bar, enabled
from .manifest import FileEntry, Manifest
from .storage import is_full

Mode = Literal["blocking", "thread", "fork"]
_crc_lock = threading.Lock()


class _ChecksummingFile:
    """The binary file ``torch.save`` writes to: each write also feeds the file's CRC-32 and
    advances the progress bar, if any.

    A large buffer's CRC-32 is computed in a helper thread while the write system call copies
    the same buffer to the page cache (both release the GIL), so the checksum costs no time on
    top of the write; ``write`` returns only when both are done, as the caller may free the
    buffer then. No read-back: this is the CRC-32 of exactly the bytes handed to the kernel.
    """

    _OVERLAP_FROM = 1 << 20  # smaller writes (zip headers, the pickle) are checksummed inline

    def __init__(self, raw: Any, crc_pool: ThreadPoolExecutor, progress: Bar | None) -> None:
        self.raw = raw
        self.pool = crc_pool
        self.progress = progress
        self.crc = 0
        self.size = 0

    def write(self, data: Any) -> int:
        view = memoryview(data).cast("B")
        if view.nbytes >= self._OVERLAP_FROM:
            pending = self.pool.submit(zlib.crc32, view, self.crc)
            self._write_all(view)
            self.crc = pending.result()
        else:
            self._write_all(view)
            self.crc = zlib.crc32(view, self.crc)
        self.size += view.nbytes
        if self.progress is not None:
            self.progress.update(view.nbytes)
        return view.nbytes

    def _write_all(self, view: memoryview) -> None:
        done = 0
        while done < view.nbytes:  # an unbuffered file may write less than asked
            done += self.raw.write(view[done:])

    def flush(self) -> None:
        self.raw.flush()


def write_state(state: Any, path: Path, *, show_progress: bool = True) -> FileEntry:
    """``torch.save`` a state to ``path``, fsync it, and return its size and CRC-32."""
    import torch

    with _crc_lock:
        previous = torch.serialization.get_crc32_options()
        torch.serialization.set_crc32_options(False)
        try:
            # An unbuffered Python file, not a path: torch's C++ writer turns ENOSPC into a
            # RuntimeError without errno, while FileIO raises OSError(ENOSPC) as it happens.
            with open(path, "wb", buffering=0) as raw, \
                    ThreadPoolExecutor(1, thread_name_prefix="portarun-crc") as crc_pool, \
                    (bar(None, f"saving {path.parent.name}") if show_progress and enabled() else nullcontext()) as progress:
                out = _ChecksummingFile(raw, crc_pool, progress)
                torch.save(state, out)  # type: ignore[arg-type]
                os.fsync(raw.fileno())
                return FileEntry(out.size, f"{out.crc:08x}")
        finally:
            torch.serialization.set_crc32_options(previous)


def host_copy(state: Any, reuse: Any = None) -> Any:
    """A copy of a nested state with every tensor copied to host memory (into the matching
    tensor of ``reuse``, the previous snapshot, where shape, dtype and layout agree), other
    values deep-copied. Containers are dicts, lists and tuples."""
    import torch

    if isinstance(state, torch.Tensor):
        if (isinstance(reuse, torch.Tensor) and reuse.shape == state.shape and reuse.dtype == state.dtype
                and reuse.layout == state.layout == torch.strided and reuse.device.type == "cpu"):
            return reuse.copy_(state.detach())
        return state.detach().to("cpu", copy=True)
    if isinstance(state, dict):
        old = reuse if isinstance(reuse, dict) else {}
        return type(state)((k, host_copy(v, old.get(k))) for k, v in state.items())
    if isinstance(state, (list, tuple)):
        old_seq = reuse if isinstance(reuse, (list, tuple)) and len(reuse) == len(state) else [None] * len(state)
        items = [host_copy(v, r) for v, r in zip(state, old_seq)]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    return copy.deepcopy(state)


def device_tensors_to_host(state: Any) -> Any:
    """The state with tensors that are not on the CPU copied there (CPU tensors untouched)."""
    import torch

    if isinstance(state, torch.Tensor):
        return state if state.device.type == "cpu" else state.detach().to("cpu")
    if isinstance(state, dict):
        return type(state)((k, device_tensors_to_host(v)) for k, v in state.items())
    if isinstance(state, (list, tuple)):
        items = [device_tensors_to_host(v) for v in state]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    return state


def _error_from(info: dict[str, Any]) -> BaseException:
    if info.get("full"):
        return StorageFullError(errno.ENOSPC, str(info["message"]))
    if info.get("errno") is not None:
        return OSError(int(info["errno"]), str(info["message"]))
    return CheckpointError(str(info["message"]))


class Writer:
    """Runs ``write(state) -> Manifest`` then ``finish(manifest)``, one save at a time.

    ``write`` must only touch local files (in ``fork`` mode it runs in the child process);
    ``finish`` (promotion, rotation) always runs in this process.
    """

    def __init__(self, mode: Mode) -> None:
        self.mode = mode
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._pool: Any = None
        self._lock = threading.Lock()

    @property
    def busy(self) -> bool:
        """Whether a background save is still running."""
        return self._thread is not None and self._thread.is_alive()

    def wait(self, timeout: float | None = None) -> bool:
        """Wait for the background save; re-raise its error. Returns ``False`` on timeout."""
        thread = self._thread
        if thread is not None:
            thread.join(timeout)
            if thread.is_alive():
                return False
            self._thread = None
        error, self._error = self._error, None
        if error is not None:
            raise error
        return True

    def submit(self, state: Any, write: Callable[[Any], Manifest], finish: Callable[[Manifest], None],
               blocking: bool) -> None:
        """Save ``state``: wait for the previous save first, then write it in this thread
        (``blocking`` or mode ``blocking``) or in the background."""
        self.wait()
        if blocking or self.mode == "blocking":
            finish(write(state))
            return
        if self.mode == "fork":
            self._fork(device_tensors_to_host(state), write, finish)
            return
        snapshot = host_copy(state, self._pool)
        self._pool = None

        def run() -> None:
            try:
                finish(write(snapshot))
                self._pool = snapshot
            except BaseException as exc:
                self._error = exc

        self._start(run)

    def _start(self, target: Callable[[], None]) -> None:
        self._thread = threading.Thread(target=target, name="portarun-checkpoint-writer", daemon=True)
        self._thread.start()

    def _fork(self, state: Any, write: Callable[[Any], Manifest], finish: Callable[[Manifest], None]) -> None:
        read_end, write_end = os.pipe()
        with warnings.catch_warnings():
            # Python 3.12+ warns about fork() in a threaded process; the child below only runs
            # torch.save and file I/O on its own copy of memory, then os._exit()s.
            warnings.simplefilter("ignore", DeprecationWarning)
            pid = os.fork()
        if pid == 0:  # child: write, report through the pipe, never return
            status = 0
            try:
                os.close(read_end)
                for sig in (signal.SIGTERM, signal.SIGINT, getattr(signal, "SIGUSR1", signal.SIGTERM)):
                    signal.signal(sig, signal.SIG_IGN)  # the parent decides when to stop
                try:
                    message: dict[str, Any] = {"manifest": json.loads(write(state).to_json())}
                except BaseException as exc:
                    text = exc.strerror if isinstance(exc, OSError) and exc.strerror else f"{type(exc).__name__}: {exc}"
                    message = {"message": text, "full": is_full(exc),
                               "errno": getattr(exc, "errno", None) if isinstance(exc, OSError) else None}
                data = json.dumps(message).encode()
                while data:
                    data = data[os.write(write_end, data):]
            except BaseException:
                status = 1
            finally:
                os._exit(status)
        os.close(write_end)

        def reap() -> None:
            try:
                chunks = []
                while chunk := os.read(read_end, 65536):
                    chunks.append(chunk)
                os.close(read_end)
                _, status = os.waitpid(pid, 0)
                if not chunks:
                    raise CheckpointError(
                        f"the checkpoint writer process {pid} died before finishing "
                        f"({_describe_status(status)}); the previous checkpoints are intact.")
                info = json.loads(b"".join(chunks))
                if "manifest" not in info:
                    raise _error_from(info)
                finish(Manifest.from_json(json.dumps(info["manifest"]).encode(), "writer"))
            except BaseException as exc:
                self._error = exc

        self._start(reap)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def default_mode() -> Mode:
    """``fork`` where the OS forks cheaply and safely enough for a writer (Linux), else ``thread``."""
    return "fork" if sys.platform.startswith("linux") and hasattr(os, "fork") else "thread"
