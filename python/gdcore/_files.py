"""Writing files so that nothing is ever lost.

Every file gdcore writes goes through :func:`write_atomically` (or, for files
that belong together, :func:`write_all_atomically`): the new content is
written to a temporary file in the destination's directory, flushed to disk,
and moved onto the destination with ``os.replace`` (atomic on POSIX and
Windows). At every instant the destination holds either its old complete
content or the new complete content; a call that fails (an error, a full
disk, Ctrl-C) removes its temporary file and leaves the destination as it
was. A process killed outright (SIGKILL, power loss) can leave a temporary
file behind (a hidden ``.NAME.*`` file beside the destination), never a
half-written destination.

A destination that is a symbolic link is written through the link: the file
it points to is replaced, the link stays. A destination with other hard
links is replaced by a new file under its name; the other names keep the
old content.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from collections.abc import Callable, Sequence
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
    write_all_atomically([path], lambda temporaries: write(temporaries[0]))


def write_all_atomically(paths: Sequence[str | os.PathLike],
                         write: Callable[[list[str]], None]) -> None:
    """:func:`write_atomically` for several files written together.

    ``write`` gets one temporary path per destination, in order. The
    destinations are replaced only once every new file is complete and on
    disk, one right after the other: each destination is at every instant
    its old or its new complete file, and a failure before the replacements
    (in ``write``, or flushing to disk) leaves all of them as they were.
    """
    targets = [Path(os.path.realpath(path)) for path in paths]
    temporaries: list[str] = []
    replaced = 0
    try:
        for target in targets:
            temporaries.append(_new_temporary(target))
        write(list(temporaries))
        for temporary, target in zip(temporaries, targets, strict=True):
            _flush_to_disk(temporary)
            _copy_mode(target, temporary)
        for temporary, target in zip(temporaries, targets, strict=True):
            os.replace(temporary, target)
            replaced += 1
    except BaseException:
        for temporary in temporaries[replaced:]:
            with contextlib.suppress(OSError):
                os.remove(temporary)
        raise
    for directory in dict.fromkeys(target.parent for target in targets):
        _sync_directory(directory)


def _new_temporary(target: Path) -> str:
    """Create an empty file beside ``target`` (``.NAME.random.SUFFIX``), with
    the permissions a new file gets (the umask's), and return its path."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    for _ in range(100):
        candidate = target.parent / f".{target.name}.{secrets.token_hex(4)}{target.suffix}"
        try:
            handle = os.open(candidate, flags, 0o666)
        except FileExistsError:
            continue
        os.close(handle)
        return str(candidate)
    raise FileExistsError(f"cannot create a temporary file beside {str(target)!r}")


def _flush_to_disk(path: str) -> None:
    handle = os.open(path, os.O_RDONLY)
    try:
        os.fsync(handle)
    finally:
        os.close(handle)


def _copy_mode(target: Path, temporary: str) -> None:
    """Give the new file the permissions of the file it replaces (a new file
    keeps the umask's). Done after writing: a read-only mode must not stop
    the writer."""
    try:
        mode = os.stat(target).st_mode & 0o7777
    except OSError:
        return
    os.chmod(temporary, mode)


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
