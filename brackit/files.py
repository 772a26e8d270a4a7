"""Atomic file writes: data goes to a hidden temporary sibling, is flushed, then renamed into place, so a
killed write never leaves a partial file (or directory) under the target name (its temporary may remain:
``AtomicDebris`` removes it later). ``DirectoryLock``: one writing process per directory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import re
import shutil
import tempfile
from collections.abc import Iterable, Iterator
from pathlib import Path

from brackit.errors import BrackitError


@contextlib.contextmanager
def atomic_path(target: str | os.PathLike, directory: bool = False) -> Iterator[Path]:
    """Yields a temporary sibling path; on success it replaces ``target`` by a rename.

    On any error (or a kill) the target is untouched and the temporary is removed when possible.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        if directory:
            if target.exists():
                trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
                os.replace(target, trash / "old")
                os.replace(tmp, target)
                shutil.rmtree(trash, ignore_errors=True)
            else:
                os.replace(tmp, target)
        else:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()


def _umask() -> int:
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_text(target: str | os.PathLike, text: str) -> None:
    with atomic_path(target) as tmp:
        tmp.write_text(text)


class AtomicDebris:
    """The temporaries ``atomic_path`` leaves when its process is killed inside it (a kill skips the
    cleanup): ``.NAME.XXXXXXXX.tmp`` (a file or a directory) and ``.NAME.XXXXXXXX.old`` (a directory), named
    by ``tempfile.mkstemp``/``mkdtemp`` after the target NAME. ``sweep`` removes those of the given targets
    and nothing else (an ``.old`` one only while NAME exists: a kill between its two renames leaves the only
    copy there); call it only while no other process may be writing them (e.g. under a
    ``DirectoryLock``)."""

    PATTERN = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.(?P<kind>tmp|old)$")

    @classmethod
    def matches(cls, path: Path, targets: Iterable[str]) -> bool:
        match = cls.PATTERN.match(path.name)
        if match is None or match["target"] not in set(targets) or path.is_symlink():
            return False
        if match["kind"] == "old":  # the replaced directory: stale once the new one is in place
            return path.is_dir() and (path.parent / match["target"]).exists()
        return path.is_file() or path.is_dir()

    @classmethod
    def sweep(cls, directory: str | os.PathLike, targets: Iterable[str]) -> list[Path]:
        """Removes the leftover temporaries of ``targets`` (names in ``directory``); returns them."""
        directory, targets = Path(directory), set(targets)
        if not directory.is_dir():
            return []
        removed = []
        for path in sorted(directory.iterdir()):
            if cls.matches(path, targets):
                shutil.rmtree(path, ignore_errors=True) if path.is_dir() else path.unlink(missing_ok=True)
                removed.append(path)
        return removed


class DirectoryInUseError(BrackitError):
    """Another process holds the directory's lock."""


class DirectoryLock:
    """An exclusive ``fcntl.flock`` on ``DIRECTORY/.lock`` (created empty, with the directory, if missing),
    held from ``acquire`` (or ``with``) until ``release``: one brackit process writes a run directory (or a
    study's output directory) at a time. The kernel drops the lock when its holder dies, so a killed run
    never leaves a stale lock, and taking it never rewrites the file. A second process is refused at once
    with a ``DirectoryInUseError`` naming the holder's pid (read from ``/proc/locks``)."""

    NAME = ".lock"

    def __init__(self, directory: str | os.PathLike) -> None:
        self.directory = Path(directory)
        self.path = self.directory / self.NAME
        self._fd: int | None = None

    def acquire(self) -> DirectoryLock:
        if self._fd is not None:
            return self
        self.directory.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDONLY | os.O_CREAT, 0o666)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as error:
            holder = _flock_holder(fd)
            os.close(fd)
            if error.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            raise DirectoryInUseError(
                f"{self.directory} is in use by another brackit process (pid {holder or 'unknown'}); wait "
                "for it to finish or stop it, or choose another directory"
            ) from None
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            os.close(fd)  # closing the only descriptor drops the lock

    def __enter__(self) -> DirectoryLock:
        return self.acquire()

    def __exit__(self, *exc: object) -> None:
        self.release()


def _flock_holder(fd: int) -> int | None:
    """The pid holding a flock on ``fd``'s file, from Linux's ``/proc/locks`` (lines such as
    ``1: FLOCK  ADVISORY  WRITE 4242 fe:00:2222050 0 EOF``: pid, then major:minor (hex):inode); None
    where that is unavailable."""
    stat = os.fstat(fd)
    try:
        lines = Path("/proc/locks").read_text().splitlines()
    except OSError:
        return None
    for line in lines:
        parts = line.split()
        if len(parts) < 6 or parts[1] != "FLOCK":  # "->" marks a waiter
            continue
        try:
            major, minor, inode = parts[5].split(":")
            if (int(major, 16), int(minor, 16), int(inode)) == (
                os.major(stat.st_dev),
                os.minor(stat.st_dev),
                stat.st_ino,
            ):
                return int(parts[4])
        except ValueError:
            continue
    return None
