"""Writing files so that nothing is ever lost.

Every file gdcore writes goes through :func:`write_atomically`: the new
content is written to a temporary file in the destination's directory,
flushed to disk, and moved onto the destination with ``os.replace`` (atomic
on POSIX and Windows). At every instant the destination holds either its old
complete content or the new complete content; a call that fails (an error, a
full disk, Ctrl-C) removes its temporary file and leaves the destination as
it was. A process killed outright (SIGKILL, power loss) can leave a temporary
file behind, never a half-written destination.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def write_atomically(path: str | os.PathLike, write: Callable[[str], None]) -> None:
    """Have ``write(temporary_path)`` write the new content, then put it at ``path``.

    The temporary file is in ``path``'s directory, named after it (a dot, the
    name, random letters, the same suffix, so writers that choose a format
    from the suffix choose the right one), and is flushed to disk before it
    replaces ``path``; the directory is flushed after, where the platform
    allows it.

    Raises
    ------
    OSError
        The directory cannot be written, or the disk is full; ``path`` is
        unchanged and no temporary file is left.
    """
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    handle, temporary = tempfile.mkstemp(prefix=f".{target.name}.", suffix=target.suffix,
                                         dir=directory)
    os.close(handle)
    try:
        # the permissions the file would have had (mkstemp makes it private)
        os.chmod(temporary, _mode_for(target))
        write(temporary)
        with open(temporary, "rb+") as written:
            os.fsync(written.fileno())
        os.replace(temporary, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.remove(temporary)
        raise
    _sync_directory(directory)


def _mode_for(target: Path) -> int:
    """The mode of the file ``target`` replaces, or the one a new file gets."""
    try:
        return os.stat(target).st_mode & 0o7777
    except OSError:
        umask = os.umask(0)
        os.umask(umask)
        return 0o666 & ~umask


def _sync_directory(directory: Path) -> None:
    """Flush a directory's entries to disk (POSIX; elsewhere nothing to do)."""
    if not hasattr(os, "O_DIRECTORY"):
        return
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    except OSError:
        return
    try:
        with contextlib.suppress(OSError):
            os.fsync(fd)
    finally:
        os.close(fd)
