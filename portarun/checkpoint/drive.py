"""Colab's Google Drive mount: uploads are lazy until ``drive.flush_and_unmount()``.

Colab's FAQ and the ``google.colab.drive`` docstring: files written to the mount are synced in
the background, and ``flush_and_unmount()`` is the call that guarantees they reached Drive
before the VM goes away. So after the last save before the deadline and at exit, the
checkpointer flushes; a save after a flush mounts Drive again first. The Colab provider hands
one out for folders under its mount (``ColabProvider.storage_sync``).
"""
from __future__ import annotations

from ..errors import warn


class DriveSync:
    """Flushes (and re-mounts) Colab's Drive mount at ``mountpoint``: a
    :class:`~portarun.provider.StorageSync`."""

    def __init__(self, mountpoint: str) -> None:
        self.mountpoint = mountpoint
        self.unmounted = False
        self.dirty = False

    def ensure_mounted(self) -> None:
        """Mount Drive again if a flush unmounted it (before writing to it)."""
        if self.unmounted:
            from google.colab import drive

            drive.mount(self.mountpoint)
            self.unmounted = False

    def flush(self, what: str) -> bool:
        """Flush pending uploads with ``drive.flush_and_unmount()``; warn and return ``False``
        when that fails, since the checkpoint may then exist only in the local cache."""
        if not self.dirty:
            return True
        try:
            from google.colab import drive

            drive.flush_and_unmount()
        except Exception as exc:
            warn(
                f"could not flush Google Drive after saving {what}: {type(exc).__name__}: {exc}. The checkpoint "
                "may not have reached Drive yet; call google.colab.drive.flush_and_unmount() yourself before the "
                "session ends, or copy the checkpoint folder elsewhere.")
            return False
        self.unmounted = True
        self.dirty = False
        return True
