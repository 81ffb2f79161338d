"""gdcore._files.write_atomically: old-and-whole or new-and-whole, never less."""

from __future__ import annotations

import os
import stat

import pytest

from gdcore import _files
from gdcore._files import write_all_atomically, write_atomically
from gdcore._validation import check_destinations


def _write_text(text):
    def write(path):
        with open(path, "w") as handle:
            handle.write(text)
    return write


def test_new_file_then_replaced(tmp_path):
    target = tmp_path / "model.json"
    write_atomically(target, _write_text("one"))
    assert target.read_text() == "one"
    write_atomically(target, _write_text("two"))
    assert target.read_text() == "two"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


@pytest.mark.parametrize("error", [OSError(28, "No space left on device"), ValueError("bad"),
                                   KeyboardInterrupt()])
def test_failure_keeps_the_old_file_and_leaves_no_temporary(tmp_path, error):
    target = tmp_path / "model.json"
    target.write_text("old")

    def write(path):
        with open(path, "w") as handle:
            handle.write("half of the new")
        raise error

    with pytest.raises(type(error)):
        write_atomically(target, write)
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


def test_temporary_file_has_the_suffix_and_lives_beside_the_target(tmp_path):
    seen = []
    write_atomically(tmp_path / "curve.png", lambda path: (seen.append(path),
                                                            open(path, "wb").close()))
    assert os.path.dirname(seen[0]) == str(tmp_path)
    assert seen[0].endswith(".png") and os.path.basename(seen[0]).startswith(".curve.png.")


def test_permissions_are_those_of_the_replaced_file_or_the_umask(tmp_path):
    target = tmp_path / "a.txt"
    write_atomically(target, _write_text("x"))
    umask = os.umask(0)
    os.umask(umask)
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o666 & ~umask
    os.chmod(target, 0o640)
    write_atomically(target, _write_text("y"))
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o640


def test_missing_directory_is_an_oserror_and_creates_nothing(tmp_path):
    with pytest.raises(OSError):
        write_atomically(tmp_path / "nowhere" / "a.txt", _write_text("x"))
    assert list(tmp_path.iterdir()) == []


def test_read_only_file_is_replaced_and_stays_read_only(tmp_path):
    target = tmp_path / "a.txt"
    target.write_text("old")
    os.chmod(target, 0o444)
    write_atomically(target, _write_text("new"))
    assert target.read_text() == "new"
    assert stat.S_IMODE(os.stat(target).st_mode) == 0o444


def test_a_symbolic_link_is_written_through(tmp_path):
    """The file a link points to gets the new content; the link stays a link."""
    (tmp_path / "real").mkdir()
    real = tmp_path / "real" / "model.json"
    real.write_text("old")
    link = tmp_path / "model.json"
    link.symlink_to(real)
    write_atomically(link, _write_text("new"))
    assert link.is_symlink() and real.read_text() == "new"
    assert sorted(p.name for p in (tmp_path / "real").iterdir()) == ["model.json"]


def test_several_files_are_replaced_only_when_all_are_written(tmp_path):
    one, two = tmp_path / "X.npy", tmp_path / "y.npy"
    one.write_text("old X")
    two.write_text("old y")

    def write_both(paths):
        assert len(paths) == 2 and paths[0].endswith(".npy")
        for path, text in zip(paths, ("new X", "new y"), strict=True):
            with open(path, "w") as handle:
                handle.write(text)

    write_all_atomically([one, two], write_both)
    assert (one.read_text(), two.read_text()) == ("new X", "new y")

    def fail_after_the_first(paths):
        with open(paths[0], "w") as handle:
            handle.write("newer X")
        raise OSError(28, "No space left on device")

    with pytest.raises(OSError):
        write_all_atomically([one, two], fail_after_the_first)
    assert (one.read_text(), two.read_text()) == ("new X", "new y")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "y.npy"]


def test_failing_flush_keeps_the_old_file(tmp_path, monkeypatch):
    """A full disk can surface only when the data are flushed (fsync): still
    the old file, and no temporary left."""
    target = tmp_path / "model.json"
    target.write_text("old")

    def no_room(fd):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "fsync", no_room)
    with pytest.raises(OSError):
        write_atomically(target, _write_text("new"))
    assert target.read_text() == "old"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.json"]


# ---------------------------------------------------------------------------
# check_destinations: every problem with an output, before any work
# ---------------------------------------------------------------------------

def test_destinations_that_can_be_written_pass(tmp_path):
    (tmp_path / "old.json").write_text("{}")
    check_destinations([("a", str(tmp_path / "new.json")), ("b", str(tmp_path / "old.json"))],
                       [("c", str(tmp_path / "input.npy"))])


@pytest.mark.parametrize("make,error,message", [
    (lambda d: (d / "out.json").mkdir() or d / "out.json", IsADirectoryError,
     "it is a directory"),
    (lambda d: d / "missing" / "out.json", FileNotFoundError,
     "directory '{d}/missing' does not exist"),
    (lambda d: (d / "file").write_text("x") and d / "file" / "out.json", NotADirectoryError,
     "'{d}/file' is not a directory"),
    (lambda d: os.mkfifo(d / "out.json") or d / "out.json", ValueError,
     "it exists and is not a regular file"),
])
def test_unwritable_destinations_are_named(tmp_path, make, error, message):
    path = str(make(tmp_path))
    with pytest.raises(error) as info:
        check_destinations([("--output", path)])
    text = info.value.strerror if isinstance(info.value, OSError) and \
        info.value.strerror else str(info.value)
    assert text.startswith(f"--output: cannot write {path!r}: ")
    assert message.format(d=tmp_path) in text


def test_a_link_into_a_missing_folder_names_that_folder(tmp_path):
    (tmp_path / "model.json").symlink_to(tmp_path / "gone" / "model.json")
    with pytest.raises(FileNotFoundError) as info:
        check_destinations([("--output", str(tmp_path / "model.json"))])
    assert info.value.strerror.endswith(f"directory '{tmp_path}/gone' does not exist")


def test_a_directory_gdcore_may_not_write_is_refused(tmp_path, monkeypatch):
    monkeypatch.setattr(os, "access", lambda path, mode: False)
    with pytest.raises(PermissionError, match="is not writable"):
        check_destinations([("save", str(tmp_path / "a.png"))])


def test_the_same_file_twice_is_refused_however_it_is_spelled(tmp_path):
    (tmp_path / "sub").mkdir()
    real = tmp_path / "X.npy"
    real.write_text("x")
    (tmp_path / "soft.npy").symlink_to(real)
    os.link(real, tmp_path / "hard.npy")
    (tmp_path / "dangling.npy").symlink_to(tmp_path / "new.npy")
    same = [
        (str(real), str(real)),
        (str(real), str(tmp_path / "soft.npy")),
        (str(real), str(tmp_path / "hard.npy")),
        (str(real), str(tmp_path / "sub" / ".." / "X.npy")),
        (str(tmp_path / "new.npy"), str(tmp_path / "dangling.npy")),   # neither exists
    ]
    for a, b in same:
        with pytest.raises(ValueError, match="path_X and path_y must be two different"):
            check_destinations([("path_X", a), ("path_y", b)])
    with pytest.raises(ValueError, match="--output and --X must be two different"):
        check_destinations([("--output", str(tmp_path / "soft.npy"))],
                           [("--X", str(real))])
    check_destinations([("path_X", str(real)), ("path_y", str(tmp_path / "y.npy"))])
