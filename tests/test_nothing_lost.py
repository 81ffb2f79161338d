"""Nothing lost, ever: every file gdcore writes is its old or its new complete
content, whatever happens while it is written (an error, a full disk, a
process killed with SIGKILL), and every destination is checked before any
work.

The writers: ``python -m gdcore train -o`` (.json / .npz) and ``--plot``,
``gdcore.plotting``'s ``save=``, and ``gdcore.make_regression_npy``.
Killing a process is done in a subprocess; a full disk is simulated (an
``ENOSPC`` from the file system calls) and, where this process may mount
one, real (a small tmpfs).
"""

from __future__ import annotations

import errno
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

import gdcore
from gdcore import __main__ as command_line
from gdcore import _data, _files


def _train(capsys, *args):
    try:
        status = command_line.main(["train", *map(str, args)])
    except SystemExit as exc:
        status = exc.code
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def _hidden(folder):
    """Temporary files left in ``folder`` (hidden names)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


def _wait_for(condition, timeout=60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(0.005)
    return False


@pytest.fixture
def small_fs(tmp_path):
    """A real 256 KiB file system (tmpfs), when this process may mount one."""
    where = tmp_path / "small"
    where.mkdir()
    if not sys.platform.startswith("linux") or os.geteuid() != 0 or not shutil.which("mount"):
        pytest.skip("mounting a tmpfs needs Linux and root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(where)],
                          capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield where
    finally:
        subprocess.run(["umount", "-l", str(where)], capture_output=True)


def _fill(folder, leave):
    """Fill ``folder``'s file system up to ``leave`` bytes of free space."""
    stat = os.statvfs(folder)
    free = stat.f_bavail * stat.f_frsize
    with open(folder / "filler", "wb") as handle:
        handle.write(b"\0" * max(0, free - leave))


# ---------------------------------------------------------------------------
# The command line: -o and --plot
# ---------------------------------------------------------------------------

@pytest.fixture
def old_model(tmp_path, capsys):
    """An existing model.json from an earlier run, and its bytes."""
    out = tmp_path / "model.json"
    status, _, stderr = _train(capsys, "-n", "50", "-d", "2", "--epochs", "1", "-o", out)
    assert status == 0, stderr
    return out, out.read_bytes()


@pytest.mark.parametrize("flag,name", [("-o", "out.json"), ("--plot", "loss.png")])
def test_an_output_naming_a_directory_is_refused_before_training(tmp_path, capsys,
                                                                 monkeypatch, flag, name):
    pytest.importorskip("matplotlib")
    (tmp_path / name).mkdir()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("gdcore._cli.fit", lambda *a, **k: pytest.fail("training ran"))
    status, stdout, stderr = _train(capsys, flag, name)
    assert status == 2 and stdout == ""
    assert stderr.strip().endswith(f"cannot write {name!r}: it is a directory")
    assert len(stderr.strip().splitlines()) == 1


@pytest.mark.parametrize("args,message", [
    (["-o", "model.json", "--plot", "link.png"], "--output and --plot must be two different"),
    (["--X", "X.npy", "--y", "y.npy", "-o", "x_link.npz"], "--output and --X must be two "
                                                           "different files"),
    (["--X", "X.npy", "--y", "y.npy", "-o", "hard.npz"], "--output and --y must be two "
                                                         "different files"),
    (["-o", "sub/../model.json", "--plot", "link.png"], "--output and --plot"),
])
def test_the_same_file_twice_is_refused_before_training(tmp_path, capsys, monkeypatch, args,
                                                        message):
    pytest.importorskip("matplotlib")
    monkeypatch.chdir(tmp_path)
    (tmp_path / "sub").mkdir()
    (tmp_path / "model.json").write_text("{}")
    (tmp_path / "link.png").symlink_to(tmp_path / "model.json")
    np.save(tmp_path / "X.npy", np.ones((5, 2)))
    np.save(tmp_path / "y.npy", np.ones(5))
    (tmp_path / "x_link.npz").symlink_to(tmp_path / "X.npy")
    os.link(tmp_path / "y.npy", tmp_path / "hard.npz")
    monkeypatch.setattr("gdcore._cli.fit", lambda *a, **k: pytest.fail("training ran"))
    status, stdout, stderr = _train(capsys, *args)
    assert status == 2 and stdout == "" and message in stderr
    assert len(stderr.strip().splitlines()) == 1
    assert (tmp_path / "model.json").read_text() == "{}"
    np.testing.assert_array_equal(np.load(tmp_path / "X.npy"), np.ones((5, 2)))


def test_output_through_a_symbolic_link_updates_the_linked_file(tmp_path, capsys):
    (tmp_path / "runs").mkdir()
    real = tmp_path / "runs" / "model.json"
    real.write_text("{}")
    (tmp_path / "latest.json").symlink_to(real)
    status, _, stderr = _train(capsys, "-n", "50", "-d", "2", "--epochs", "1", "-o",
                               tmp_path / "latest.json")
    assert status == 0, stderr
    assert (tmp_path / "latest.json").is_symlink()
    assert len(json.loads(real.read_text())["w"]) == 2


@pytest.mark.parametrize("suffix", [".json", ".npz"])
def test_a_full_disk_while_writing_keeps_the_old_model(tmp_path, capsys, monkeypatch,
                                                       old_model, suffix):
    """ENOSPC from a write (simulated): exit 2 in one line, the old file whole,
    no temporary file left."""
    out = tmp_path / f"model{suffix}"
    out.write_bytes(old_model[1])
    real_open = open

    class FullDisk:
        def __init__(self, handle):
            self.handle = handle

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.handle.close()

        def write(self, data):
            self.handle.write(data[:10])
            raise OSError(errno.ENOSPC, "No space left on device")

        def __getattr__(self, name):
            return getattr(self.handle, name)

    def opener(path, mode="r", *args, **kwargs):
        handle = real_open(path, mode, *args, **kwargs)
        return FullDisk(handle) if "w" in mode and os.path.basename(path).startswith(
            ".model") else handle

    monkeypatch.setattr("builtins.open", opener)
    status, stdout, stderr = _train(capsys, "-n", "50", "-d", "2", "--epochs", "1", "-o", out)
    monkeypatch.undo()
    assert status == 2, stderr
    assert "No space left on device" in stderr and len(stderr.strip().splitlines()) == 1
    assert out.read_bytes() == old_model[1]
    assert _hidden(tmp_path) == []


def test_a_full_file_system_keeps_the_old_model(small_fs, capsys, old_model):
    """A real full disk (a 256 KiB tmpfs): the new model (~90 KB of JSON) does
    not fit; the old one is kept whole."""
    out = small_fs / "model.json"
    out.write_bytes(old_model[1])
    _fill(small_fs, leave=16 * 1024)
    status, _, stderr = _train(capsys, "-n", "50", "-d", "2000", "--epochs", "1", "-o", out)
    assert status == 2
    assert "No space left on device" in stderr and len(stderr.strip().splitlines()) == 1
    assert out.read_bytes() == old_model[1]
    assert _hidden(small_fs) == []
    os.remove(small_fs / "filler")
    status, _, stderr = _train(capsys, "-n", "50", "-d", "2000", "--epochs", "1", "-o", out)
    assert status == 0, stderr
    assert len(json.loads(out.read_text())["w"]) == 2000


SLOW_WRITER = """
import sys, time
import numpy as np

def slow_savez(handle, **arrays):
    handle.write(b"PK half of a zip archive")
    handle.flush()
    with open("writing", "w"):
        pass
    time.sleep(120)

np.savez = slow_savez
from gdcore.__main__ import main
sys.exit(main(["train", "-n", "50", "-d", "2", "--epochs", "1", "-q", "-o", "model.npz"]))
"""


def test_killed_while_writing_the_model_keeps_the_old_one(tmp_path):
    """SIGKILL while -o model.npz is being written (a slowed-down writer in a
    subprocess): model.npz is the old complete file; a run to the end then
    replaces it with the new complete one."""
    np.savez(tmp_path / "model.npz", w=np.arange(3.0), b=np.asarray(7.0))
    old = (tmp_path / "model.npz").read_bytes()
    process = subprocess.Popen([sys.executable, "-c", SLOW_WRITER], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        assert _wait_for(lambda: (tmp_path / "writing").exists()
                         or process.poll() is not None), "the writer never started"
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    assert (tmp_path / "model.npz").read_bytes() == old
    done = subprocess.run([sys.executable, "-m", "gdcore", "train", "-n", "50", "-d", "2",
                           "--epochs", "1", "-q", "-o", "model.npz"], cwd=tmp_path,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    with np.load(tmp_path / "model.npz") as saved:
        assert saved["w"].shape == (2,)


# ---------------------------------------------------------------------------
# gdcore.plotting: save=
# ---------------------------------------------------------------------------

def test_plot_save_checks_the_destination_before_drawing(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from gdcore import plotting

    (tmp_path / "loss.png").mkdir()
    monkeypatch.setattr(plotting, "_new_axes", lambda *a: pytest.fail("drew a figure"))
    with pytest.raises(IsADirectoryError, match="save: cannot write .*it is a directory"):
        plotting.plot_loss_curve([1.0, 0.5], save=tmp_path / "loss.png")
    with pytest.raises(FileNotFoundError, match="save: cannot write .*does not exist"):
        plotting.plot_loss_curve([1.0, 0.5], save=tmp_path / "nowhere" / "loss.png")


def test_plot_save_failing_half_way_keeps_the_old_picture(tmp_path, monkeypatch):
    pytest.importorskip("matplotlib")
    from matplotlib.figure import Figure

    from gdcore import plotting

    target = tmp_path / "loss.png"
    plotting.plot_loss_curve([1.0, 0.5], save=target)
    old = target.read_bytes()
    real = Figure.savefig

    def half_then_full_disk(self, fname, **kwargs):
        real(self, fname, **kwargs)
        with open(fname, "r+b") as handle:
            handle.truncate(100)
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(Figure, "savefig", half_then_full_disk)
    with pytest.raises(OSError, match="No space left"):
        plotting.plot_loss_curve([3.0, 2.0, 1.0], save=target)
    assert target.read_bytes() == old
    assert _hidden(tmp_path) == []


# ---------------------------------------------------------------------------
# make_regression_npy
# ---------------------------------------------------------------------------

@pytest.fixture
def old_files(tmp_path):
    """X.npy and y.npy from an earlier call, and their bytes."""
    path_X, path_y = tmp_path / "X.npy", tmp_path / "y.npy"
    gdcore.make_regression_npy(path_X, path_y, 20, 3, seed=1)
    return path_X, path_y, path_X.read_bytes(), path_y.read_bytes()


def _unchanged(old_files):
    path_X, path_y, X_bytes, y_bytes = old_files
    return path_X.read_bytes() == X_bytes and path_y.read_bytes() == y_bytes


@pytest.mark.parametrize("kwargs,error", [
    (dict(noise=1e308), ValueError),                 # y overflows: found while writing
    (dict(bias=1.79e308, noise=1e306), ValueError),
])
def test_a_failing_call_keeps_the_files_that_were_there(old_files, kwargs, error):
    with pytest.raises(error):
        gdcore.make_regression_npy(old_files[0], old_files[1], 1000, 3, seed=0, **kwargs)
    assert _unchanged(old_files)
    assert _hidden(old_files[0].parent) == []


def test_a_missing_directory_keeps_the_other_file(old_files, tmp_path):
    with pytest.raises(FileNotFoundError, match="path_y: cannot write .* does not exist"):
        gdcore.make_regression_npy(old_files[0], tmp_path / "missing" / "y.npy", 10, 3)
    assert _unchanged(old_files) and _hidden(tmp_path) == []


@pytest.mark.parametrize("spelling", ["symlink", "hardlink", "dotdot"])
def test_the_same_file_twice_is_refused(old_files, tmp_path, spelling):
    path_X = old_files[0]
    other = tmp_path / "other.npy"
    if spelling == "symlink":
        other.symlink_to(path_X)
    elif spelling == "hardlink":
        os.link(path_X, other)
    else:
        (tmp_path / "sub").mkdir()
        other = tmp_path / "sub" / ".." / "X.npy"
    with pytest.raises(ValueError, match="path_X and path_y must be two different files"):
        gdcore.make_regression_npy(path_X, other, 10, 3)
    assert _unchanged(old_files)


def test_a_directory_as_destination_is_refused(old_files, tmp_path):
    (tmp_path / "folder.npy").mkdir()
    with pytest.raises(IsADirectoryError, match="path_y: cannot write .*it is a directory"):
        gdcore.make_regression_npy(old_files[0], tmp_path / "folder.npy", 10, 3)
    assert _unchanged(old_files)


def test_simulated_full_disk_half_way_keeps_the_old_files(old_files, monkeypatch):
    """A file system that cannot reserve the space (no fallocate) and fills
    up during the writing: ENOSPC, the old files whole, no temporary left."""
    monkeypatch.setattr(_data.os, "posix_fallocate", lambda *a: (_ for _ in ()).throw(
        OSError(errno.EOPNOTSUPP, "Operation not supported")), raising=False)
    real = _data._write_block_rows
    calls = []

    def fills_up(*args):
        calls.append(1)
        if len(calls) == 2:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(*args)

    monkeypatch.setattr(_data, "_write_block_rows", fills_up)
    with pytest.raises(OSError) as info:
        gdcore.make_regression_npy(old_files[0], old_files[1], 3 * _data.BLOCK_ROWS, 2,
                                   seed=0)
    assert info.value.errno == errno.ENOSPC
    assert _unchanged(old_files) and _hidden(old_files[0].parent) == []


def test_a_full_file_system_keeps_the_old_files(small_fs, monkeypatch):
    """On a real 256 KiB tmpfs: data that cannot fit are refused at once
    (their size against the free space), and when the file system itself
    runs out of room the old files are whole."""
    path_X, path_y = small_fs / "X.npy", small_fs / "y.npy"
    gdcore.make_regression_npy(path_X, path_y, 100, 2, seed=1)
    old = path_X.read_bytes(), path_y.read_bytes()
    with pytest.raises(OSError) as info:                # 1.6 MB: more than the disk
        gdcore.make_regression_npy(path_X, path_y, 100_000, 1, seed=0)
    assert info.value.errno == errno.ENOSPC
    assert "n_samples=100000, n_features=1: 1.6 MB of .npy files" in str(info.value)
    assert (path_X.read_bytes(), path_y.read_bytes()) == old
    # the file system's own ENOSPC (the free-space check skipped)
    monkeypatch.setattr(_data, "_check_room", lambda *args: None)
    _fill(small_fs, leave=64 * 1024)
    with pytest.raises(OSError) as info:
        gdcore.make_regression_npy(path_X, path_y, 6000, 1, seed=0)    # 96 KB
    assert info.value.errno == errno.ENOSPC
    assert (path_X.read_bytes(), path_y.read_bytes()) == old
    assert _hidden(small_fs) == []


KILLED_WRITER = """
import sys
import gdcore
gdcore.make_regression_npy("X.npy", "y.npy", 400_000, 100, noise=0.5, seed=3)
"""


def test_killed_half_way_leaves_old_or_new_complete_files(tmp_path):
    """SIGKILL while 320 MB of X are being written: X.npy and y.npy are each
    the old complete file or the new complete file, never a mixture, and
    never a file whose tail is zeros."""
    gdcore.make_regression_npy(tmp_path / "X.npy", tmp_path / "y.npy", 20, 3, seed=1)
    old_X, old_y = np.load(tmp_path / "X.npy"), np.load(tmp_path / "y.npy")
    size = (tmp_path / "X.npy").stat().st_size
    process = subprocess.Popen([sys.executable, "-c", KILLED_WRITER], cwd=tmp_path,
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        started = _wait_for(lambda: bool(_hidden(tmp_path))
                            or (tmp_path / "X.npy").stat().st_size != size
                            or process.poll() is not None)
        time.sleep(0.2)                                 # well into the 320 MB
        process.send_signal(signal.SIGKILL)
    finally:
        process.kill()
        process.communicate()
    assert started
    w_true = gdcore.make_regression(1, 100, seed=3)[2]    # w_true depends on d and seed
    for name, old in (("X.npy", old_X), ("y.npy", old_y)):
        array = np.load(tmp_path / name, mmap_mode="r")
        if array.shape == old.shape:
            np.testing.assert_array_equal(array, old)
        else:                                           # new: complete to the last row
            assert array.shape[0] == 400_000
    X, y = np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "y.npy",
                                                               mmap_mode="r")
    if X.shape[0] == y.shape[0] == 400_000:
        np.testing.assert_allclose(y[-1000:], X[-1000:] @ w_true, atol=5)
        assert np.all(X[-1] != 0)
    for leftover in _hidden(tmp_path):               # what SIGKILL may leave behind
        assert leftover.startswith((".X.npy.", ".y.npy."))
        os.remove(tmp_path / leftover)                # (up to 320 MB: not kept)


def test_files_module_is_the_writer(tmp_path, monkeypatch):
    """make_regression_npy writes through gdcore._files (temporaries beside
    the destinations, renamed at the end)."""
    seen = []
    real = _files.write_all_atomically

    def spy(paths, write):
        seen.append([os.path.basename(p) for p in paths])
        return real(paths, write)

    monkeypatch.setattr(_data, "write_all_atomically", spy)
    gdcore.make_regression_npy(tmp_path / "X.npy", tmp_path / "y.npy", 10, 2, seed=0)
    assert seen == [["X.npy", "y.npy"]]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["X.npy", "y.npy"]
