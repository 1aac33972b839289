"""The state directory's files: written whole or not at all, and held by one server."""

from __future__ import annotations

import contextlib
import fcntl
import os
from collections.abc import Collection, Iterable, Sequence
from pathlib import Path

from feedsvc.errors import FeedsvcError


class StateError(FeedsvcError):
    """The state directory cannot be used (unwritable, or held by another server)."""


def write_atomically(path: Path, chunks: Iterable[bytes | memoryview]) -> None:
    """Write `path` so that it is either whole or absent: a temporary file, fsync, rename,
    fsync of the folder."""
    write_together([(path, chunks)])


def write_together(files: Sequence[tuple[Path, Iterable[bytes | memoryview]]]) -> None:
    """Write files that are read together (of one folder), each as `write_atomically`
    does, renamed one right after the other once every one is written: a writer that
    fails or is killed midway leaves all of them as they were, but for the microseconds
    between the renames."""
    temporaries = [path.with_name(f".{path.name}.{os.getpid()}.tmp") for path, _ in files]
    try:
        for temporary, (_, chunks) in zip(temporaries, files, strict=True):
            with open(temporary, "wb") as handle:
                for chunk in chunks:
                    handle.write(chunk)
                handle.flush()
                os.fsync(handle.fileno())
        for temporary, (path, _) in zip(temporaries, files, strict=True):
            os.replace(temporary, path)
    except BaseException:
        for temporary in temporaries:
            with contextlib.suppress(OSError):
                temporary.unlink()
        raise
    for folder in dict.fromkeys(path.parent for path, _ in files):
        sync_folder(folder)


def sync_folder(folder: Path) -> None:
    """Make renames and unlinks in `folder` durable."""
    descriptor = os.open(folder, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def remove_leftovers(folder: Path) -> None:
    """Remove temporary files a killed writer left behind (`.*.tmp`)."""
    for leftover in folder.glob(".*.tmp"):
        with contextlib.suppress(OSError):
            leftover.unlink()


class StateLock:
    """An exclusive lock on the state directory for as long as a server runs.

    flock(2) is released by the kernel when the holder dies however it dies, so a
    killed server leaves no stale lock; the pid in the file is only for the message.
    """

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self._descriptor: int | None = None

    def acquire(self) -> None:
        """Take the lock; StateError names the holder when another server has it."""
        if not self.try_acquire():
            raise StateError(
                f"state directory {self.folder} is in use by another feedsvc process (pid "
                f"{self.holder() or '?'}); give each server its own state.path"
            )

    def try_acquire(self) -> bool:
        """Take the lock unless another process holds it; whether it was taken."""
        descriptor = os.open(self.folder / "lock", os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(descriptor)
            return False
        os.ftruncate(descriptor, 0)
        os.pwrite(descriptor, f"{os.getpid()}\n".encode(), 0)
        # Forked processes (the builder, the workers) share it; close-on-exec keeps it out
        # of the processes a cold start spawns.
        self._descriptor = descriptor
        return True

    def holder(self) -> int | None:
        """The pid of the process holding the lock, or None when no one does."""
        try:
            if self.try_acquire():
                self.release()
                return None
            text = (self.folder / "lock").read_text("ascii", "replace").strip()
        except OSError:
            return None
        return int(text) if text.isdigit() else None

    def release(self) -> None:
        """Let the lock go (the kernel does it too when the process ends)."""
        if self._descriptor is not None:
            os.close(self._descriptor)
            self._descriptor = None


def hold(folder: Path, owners: Collection[int]) -> StateLock | None:
    """Make sure this server holds the lock of state directory `folder`: one of `owners`
    (the main process, this one) holding it is enough; when no one does (the folder was
    made again while the server ran), this process takes it and is given it to keep.
    StateError when another process holds it."""
    lock = StateLock(folder)
    if lock.try_acquire():
        return lock
    holder = lock.holder()
    if holder not in owners:
        raise StateError(
            f"state directory {folder} is in use by another feedsvc process (pid "
            f"{holder or '?'}); this server no longer writes there"
        )
    return None


def prepare_folder(folder: Path) -> None:
    """Create the state directory (private to this user) and check it is writable."""
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        probe = folder / f".probe.{os.getpid()}.tmp"
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as exc:
        reason = exc.strerror or exc
        raise StateError(f"state directory {folder} is not writable: {reason}") from exc
