"""Writing a state to disk, in the foreground or in the background.

:func:`write_state` writes ``state.pt`` with ``torch.save`` (torch's zip format, loadable with
``weights_only=True``), computing its CRC-32 as it writes, then fsyncs it. torch's own
per-record CRC-32 is turned off for the write: the manifest's whole-file CRC-32 replaces it,
and it is what kept ``torch.save`` at about half of the raw write speed.

:class:`Writer` runs at most one save at a time in one of these ways:

* ``blocking``: in the caller's thread.
* ``thread``: the caller copies every tensor to host memory (reusing the previous snapshot's
  buffers when shapes match), a background thread writes; training stalls for the copy.
* ``fork`` (Linux, CPU tensors): the caller forks; the child process writes the copy-on-write
  image of the state, exactly as it was at ``save()``, while the parent trains on. Redis saves
  its RDB snapshots the same way (``BGSAVE``). The stall is the fork itself; pages the parent
  then modifies are copied by the kernel while the child runs. Tensors on an accelerator are
  first copied to host memory (a CUDA context must not be used across fork).
* ``auto`` (the default): ``fork`` for a save where :func:`fork_safety` proves it safe, else
  ``thread``, decided again at every save (threads come and go: a DataLoader starts its
  pin-memory thread at the first batch).

Why ``fork`` needs proof: the child has only the forking thread. A lock that another thread
held at that moment (malloc's, a torch mutex, an OpenMP or BLAS pool's, a tokenizer's, this
module's own) stays locked forever in the child, and the child deadlocks on first use; CUDA's
state is not inherited at all. Redis can fork because it controls its threads; a training
process does not (DataLoader pin-memory and queue-feeder threads, OpenMP and OpenBLAS pools,
CUDA driver threads, tokenizers' pools). So ``auto`` forks only a process that has one thread.
A spawned writer fed through shared memory would be safe too, but filling the shared memory is
the same host copy ``thread`` mode makes, so it would stall as long.

A failed background save is re-raised by the next ``submit`` or ``wait``.
"""
from __future__ import annotations

import copy
import ctypes
import errno
import json
import os
import signal
import sys
import threading
import time
import warnings
import zlib
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from pathlib import Path
from typing import Any, Literal, NamedTuple

from .._util.progress import Bar, bar, enabled
from ..errors import CheckpointError, StorageFullError
from .manifest import FileEntry, Manifest
from .storage import is_full

Mode = Literal["auto", "blocking", "thread", "fork"]
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
                    (bar(None, f"saving {path.parent.name}") if show_progress and enabled()
                     else nullcontext()) as progress:
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
        source = state.detach()
        plain = _plain_host_bytes(source)
        if (isinstance(reuse, torch.Tensor) and reuse.shape == source.shape and reuse.dtype == source.dtype
                and reuse.layout == source.layout == torch.strided and reuse.device.type == "cpu"):
            if plain and reuse.is_contiguous():
                return _memcpy(reuse, source)
            return reuse.copy_(source)
        if plain:
            return _memcpy(torch.empty_like(source, memory_format=torch.contiguous_format), source)
        return source.to("cpu", copy=True)
    if isinstance(state, dict):
        old = reuse if isinstance(reuse, dict) else {}
        return type(state)((k, host_copy(v, old.get(k))) for k, v in state.items())
    if isinstance(state, (list, tuple)):
        old_seq = reuse if isinstance(reuse, (list, tuple)) and len(reuse) == len(state) else [None] * len(state)
        items = [host_copy(v, r) for v, r in zip(state, old_seq)]
        return type(state)(*items) if hasattr(state, "_fields") else type(state)(items)
    return copy.deepcopy(state)


def _plain_host_bytes(tensor: Any) -> bool:
    """Whether ``tensor`` is exactly its bytes in host memory: a dense, contiguous CPU tensor
    without a lazy conjugate or negative bit."""
    import torch

    return bool(tensor.device.type == "cpu" and tensor.layout == torch.strided and tensor.is_contiguous()
                and not tensor.is_conj() and not tensor.is_neg() and not tensor.is_quantized)


def _memcpy(target: Any, source: Any) -> Any:
    """Copy ``source``'s bytes into ``target`` (same size, both plain host bytes) with one
    ``memmove``, which ctypes runs without the GIL. torch's ``copy_`` splits a large copy over
    its intra-op threads, and when the CPUs are shared one descheduled thread holds up the
    rest: on the 2-CPU VM of benchmarks/README.md a 512 MiB snapshot took 0.3-0.6 s that way
    and 0.06-0.09 s with one memmove."""
    nbytes = source.numel() * source.element_size()
    if nbytes:
        ctypes.memmove(target.data_ptr(), source.data_ptr(), nbytes)
    return target


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
        if mode not in ("auto", "blocking", "thread", "fork"):
            raise CheckpointError(f"mode must be 'auto', 'fork', 'thread' or 'blocking', got {mode!r}.")
        self.mode = mode
        #: How the last save ran and why (``None`` before the first save).
        self.last: Choice | None = None
        self._thread: threading.Thread | None = None
        self._error: BaseException | None = None
        self._pool: Any = None
        self._lock = threading.Lock()

    def choose(self, blocking: bool = False) -> Choice:
        """How the next save runs: the configured mode, with ``auto`` resolved by
        :func:`fork_safety` now."""
        if blocking or self.mode == "blocking":
            return Choice("blocking", "save(blocking=True)" if blocking else "mode='blocking'")
        if self.mode == "thread":
            return Choice("thread", "mode='thread'")
        if self.mode == "fork":
            return Choice("fork", "mode='fork' (forced: forks even where another thread may hold a lock)")
        unsafe = fork_safety()
        if unsafe is None:
            return Choice("fork", "auto: this process has one thread and no accelerator context")
        return Choice("thread", f"auto: not forking, {unsafe}")

    def describe(self) -> str:
        """The configured mode and how the last save ran, e.g. ``'auto' (last save: thread,
        auto: not forking, 5 threads run in this process)``."""
        if self.last is None:
            return repr(self.mode)
        return f"{self.mode!r} (last save: {self.last.mode}, {self.last.reason})"

    @property
    def forking(self) -> bool:
        """Whether the save in progress (or the last one) runs in a forked child."""
        return self.last is not None and self.last.mode == "fork"

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
            _await_exit(thread)
        error, self._error = self._error, None
        if error is not None:
            raise error
        return True

    def submit(self, state: Any, write: Callable[[Any], Manifest], finish: Callable[[Manifest], None],
               blocking: bool) -> None:
        """Save ``state``: wait for the previous save first, then write it in this thread
        (``blocking`` or mode ``blocking``) or in the background."""
        self.wait()
        self.last = self.choose(blocking)
        if self.last.mode == "blocking":
            finish(write(state))
            return
        if self.last.mode == "fork":
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


def _await_exit(thread: threading.Thread, limit: float = 0.5) -> None:
    """Wait (at most ``limit`` seconds) until a joined thread has left ``/proc/self/task``.

    ``join`` returns once the thread's Python part is done, a moment before the kernel thread
    exits; without this wait the next save would count the writer's own finished thread and
    not fork."""
    task = f"/proc/self/task/{thread.native_id}"
    deadline = time.monotonic() + limit
    while thread.native_id is not None and os.path.exists(task) and time.monotonic() < deadline:
        time.sleep(0.0005)


def _describe_status(status: int) -> str:
    if os.WIFSIGNALED(status):
        return f"killed by signal {os.WTERMSIG(status)}"
    return f"exit status {os.WEXITSTATUS(status)}"


def default_mode() -> Mode:
    """``auto``: ``fork`` for each save where that is proven safe, else ``thread``."""
    return "auto"


def fork_safety() -> str | None:
    """``None`` where forking this process now is proven safe for a writer, else why not.

    Safe means: Linux with ``os.fork``; exactly one thread in the process, counted by the kernel
    in ``/proc/self/task`` (so native threads count too: OpenMP, OpenBLAS, CUDA's, a tokenizer's,
    not only Python's); no CUDA context (checked only when torch is already imported, so this
    never imports it) and no torch_xla. Unreadable facts are not proof: then ``thread``.
    """
    if not (sys.platform.startswith("linux") and hasattr(os, "fork")):
        return f"fork is not offered on {sys.platform}"
    torch = sys.modules.get("torch")
    cuda = getattr(torch, "cuda", None)
    if cuda is not None and cuda.is_initialized():
        return "CUDA is initialised in this process (its state is not inherited by a fork)"
    if "torch_xla" in sys.modules:
        return "torch_xla is imported (its runtime's threads and device state do not survive a fork)"
    try:
        threads = len(os.listdir("/proc/self/task"))
    except OSError as exc:
        return f"the thread count is unknown ({exc.strerror or exc})"
    if threads != 1:
        return (f"{threads} threads run in this process (a fork could copy a lock one of them holds; "
                "DataLoader, OpenMP, BLAS, CUDA and tokenizer threads all count)")
    return None


class Choice(NamedTuple):
    """How one save ran (``fork``, ``thread`` or ``blocking``) and why."""

    mode: str
    reason: str
