"""Atomic file writes: data goes to a hidden temporary sibling, is flushed, then renamed into place, so a
killed write never leaves a partial file (or directory) under the target name (its temporary may remain:
``AtomicDebris`` removes it later). Replacing a directory takes two renames (POSIX has no portable atomic
swap): the old one moves into a hidden ``.old`` sibling, then the new one into place; an error between them
moves the old one back, and after a kill there ``restore_replaced_directory`` (run by the next write, load
or sweep) does. ``DirectoryLock``: one writing process per directory."""

from __future__ import annotations

import contextlib
import errno
import fcntl
import glob
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

    On any error the target is untouched (a directory's old copy is moved back) and the temporary is
    removed when possible; after a kill the target is whole, or restorable by ``restore_replaced_directory``.
    An ``OSError`` without a file name (ENOSPC, EFBIG from a write) is raised again naming ``target``.
    """
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    if directory:
        restore_replaced_directory(target)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent))
    else:
        fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
        os.close(fd)
        tmp = Path(name)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp makes 0600 files; give the usual permissions
    try:
        yield tmp
        if directory:
            _replace_directory(tmp, target)
        else:
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.replace(tmp, target)
    except OSError as error:
        if error.filename is None and error.errno is not None:  # say which file could not be written
            raise OSError(error.errno, error.strerror or os.strerror(error.errno), str(target)) from error
        raise
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True) if tmp.is_dir() else tmp.unlink()


_KEPT = "old"  # the name of the replaced directory inside its ``.old`` sibling while it may be restored


def _replace_directory(new: Path, target: Path) -> None:
    """Puts the directory ``new`` at ``target``, moving an existing ``target`` aside first (see the module
    docstring): at every instant ``target`` or ``.TARGET.XXXXXXXX.old/old`` holds a whole directory."""
    if not (target.exists() or target.is_symlink()):
        os.replace(new, target)
        return
    trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.", suffix=".old", dir=target.parent))
    kept = trash / _KEPT
    os.replace(target, kept)
    try:
        os.replace(new, target)
    except BaseException:
        if not (target.exists() or target.is_symlink()):
            os.replace(kept, target)
        raise
    try:  # discarded under another name first, so that a half-removed copy is never restored
        os.replace(kept, trash / "discarded")
    except OSError:
        return  # the new directory is in place; the sweep of a later start removes the old one
    shutil.rmtree(trash, ignore_errors=True)


def restore_replaced_directory(target: str | os.PathLike) -> bool:
    """If ``target`` is missing because a kill stopped ``atomic_path`` between its two renames, moves the
    replaced directory (kept whole in ``.TARGET.XXXXXXXX.old/old``) back; True if it did."""
    target = Path(target)
    if target.exists() or target.is_symlink() or not target.parent.is_dir():
        return False
    kept = [
        path / _KEPT
        for path in target.parent.glob(f".{glob.escape(target.name)}.*.old")
        if AtomicDebris.target_of(path) == (target.name, "old")
        and not path.is_symlink()
        and (path / _KEPT).exists()
    ]
    if not kept:
        return False
    newest = max(kept, key=lambda path: path.stat().st_mtime)
    try:
        os.replace(newest, target)
    except FileNotFoundError:  # another process restored it first
        return target.exists()
    shutil.rmtree(newest.parent, ignore_errors=True)
    return True


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
    by ``tempfile.mkstemp``/``mkdtemp`` after the target NAME. ``sweep`` first restores a NAME that a kill
    between the two renames of a directory replacement left missing (``restore_replaced_directory``), then
    removes the temporaries of the given targets and nothing else (an ``.old`` one only while NAME exists,
    or when it holds no restorable copy); call it only while no other process may be writing them (e.g.
    under a ``DirectoryLock``)."""

    PATTERN = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}\.(?P<kind>tmp|old)$")

    @classmethod
    def target_of(cls, path: Path) -> tuple[str, str] | None:
        """(NAME, 'tmp' or 'old') of a temporary's path, or None."""
        match = cls.PATTERN.match(path.name)
        return None if match is None else (match["target"], match["kind"])

    @classmethod
    def matches(cls, path: Path, targets: Iterable[str]) -> bool:
        match = cls.PATTERN.match(path.name)
        if match is None or match["target"] not in set(targets) or path.is_symlink():
            return False
        if match["kind"] == "old":  # the replaced directory: stale once the new one is in place
            return path.is_dir() and ((path.parent / match["target"]).exists() or not (path / _KEPT).exists())
        return path.is_file() or path.is_dir()

    @classmethod
    def sweep(cls, directory: str | os.PathLike, targets: Iterable[str]) -> list[Path]:
        """Restores interrupted directory replacements of ``targets`` (names in ``directory``), then
        removes their leftover temporaries; returns the removed paths."""
        directory, targets = Path(directory), set(targets)
        if not directory.is_dir():
            return []
        for target in sorted(targets):
            restore_replaced_directory(directory / target)
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
