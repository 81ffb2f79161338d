"""gdcore._files.write_atomically: old-and-whole or new-and-whole, never less."""

from __future__ import annotations

import os
import stat

import pytest

from gdcore._files import write_atomically


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
