"""Files of the command line: reading data (.npy, .csv), writing results (.json, .npz).

Every problem with a file is a :class:`CommandError` with a one-line message
naming the file and the option it came from; the command reports it and
exits with status 2.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import warnings
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from . import _options, _validation
from ._data import make_regression
from ._files import write_atomically
from ._version import __version__

DATA_SUFFIXES = (".npy", ".csv")
OUTPUT_SUFFIXES = (".json", ".npz")
PREDICTION_SUFFIXES = (".csv", ".npy")
#: What a model file (train's -o) says it is; predict reads these.
MODEL_FORMAT = "gdcore-model-1"


class CommandError(Exception):
    """A problem with the command line or its files: reported in one line, exit 2."""


# ---------------------------------------------------------------------------
# Reading data
# ---------------------------------------------------------------------------

def _check_suffix(path: str, allowed: tuple[str, ...], what: str) -> Path:
    suffix = Path(path).suffix.lower()
    if suffix not in allowed:
        kinds = ", ".join(allowed[:-1]) + " or " + allowed[-1]
        raise CommandError(f"{what} must be a {kinds} file; got {path!r}")
    return Path(path)


#: Cells that mean "no value" (pandas' default missing-value markers): read
#: as NaN, which gdcore.fit then refuses naming X or y.
MISSING = frozenset({"", "na", "n/a", "#n/a", "nan", "-nan", "null", "none", "<na>"})


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _is_word(cell: str) -> bool:
    """A cell that is neither a number nor a missing-value marker: a name."""
    cell = cell.strip()
    return cell.lower() not in MISSING and not _is_number(cell)


def _cell(text: str) -> float:
    """A number, or NaN for a missing-value marker (np.loadtxt converter)."""
    text = text.strip()
    return math.nan if text.lower() in MISSING else float(text)


def _rows(path: Path, delimiter: str) -> Any:
    """``(line number, cells)`` of every non-blank row (``csv`` module; a
    UTF-8 byte order mark is dropped)."""
    with open(path, newline="", encoding="utf-8-sig") as handle:
        reader = csv.reader(handle, delimiter=delimiter, quotechar='"')
        for row in reader:
            if len(row) > 1 or (row and row[0].strip()):
                yield reader.line_num, row


def _first_problem(path: Path, delimiter: str, skip: int) -> str | None:
    """Where the data of a .csv file stop being a table of numbers."""
    width = first_line = None
    for line, row in _rows(path, delimiter):
        if line <= skip or row[0].lstrip().startswith("#"):
            continue
        if width is None:
            width, first_line = len(row), line
        elif len(row) != width:
            return (f"line {line} has {len(row)} column(s), line {first_line} has "
                    f"{width}")
        for column, cell in enumerate(row, start=1):
            if _is_word(cell):
                return (f"could not convert string {cell.strip()!r} to float64 at line "
                        f"{line}, column {column}")
    return None


def _read_csv(path: Path, delimiter: str, what: str,
              header: bool | None = None) -> tuple[np.ndarray, list[str] | None]:
    """A 2-D float array and the header's column names (None without a header).

    ``header`` None: the first non-blank row is a header only when that is
    unambiguous -- none of its cells is a number, one at least is a name, and
    the next row holds no names. A row that looks numeric is never dropped;
    empty cells and missing-value markers (``NA``, ``nan``, ...) are NaN.
    """
    shown = f"{what} file {str(path)!r}"
    try:
        rows = _rows(path, delimiter)
        first = next(rows, None)
        second = next(rows, None)
    except UnicodeDecodeError:
        raise CommandError(f"cannot read {shown}: not a text file") from None
    except csv.Error as exc:
        raise CommandError(f"cannot read {shown}: {exc}") from None
    if first is None:
        raise CommandError(f"{shown} is empty")
    line, cells = first
    if header is None:
        header = (not any(_is_number(cell) for cell in cells)
                  and any(_is_word(cell) for cell in cells)
                  and (second is None or not any(_is_word(cell) for cell in second[1])))
    names = [cell.strip() for cell in cells] if header else None
    skip = line if header else 0

    def load(converters: Any = None) -> np.ndarray:
        return np.loadtxt(path, delimiter=delimiter, skiprows=skip, ndmin=2,
                          dtype=np.float64, encoding="utf-8-sig", quotechar='"',
                          converters=converters)

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")             # "input contained no data"
        try:
            table = load()
        except ValueError:
            # empty cells or NA: read them as NaN (slower: a Python call per cell)
            try:
                table = load(_cell)
            except ValueError as exc:
                problem = _first_problem(path, delimiter, skip) or str(exc)
                hint = ("; if the first row names the columns, pass --header"
                        if not header and f"at line {line}," in problem else "")
                raise CommandError(f"cannot read {shown}: {problem}{hint}") from None
    if table.size == 0:
        raise CommandError(f"{shown} holds no rows of numbers")
    return table, names


def _npy_layout(path: Path) -> tuple[tuple[int, ...], np.dtype, int] | None:
    """The shape, dtype and data offset its header promises (None: unreadable)."""
    try:
        with open(path, "rb") as handle:
            version = np.lib.format.read_magic(handle)
            if version == (1, 0):
                shape, _, dtype = np.lib.format.read_array_header_1_0(handle)
            elif version == (2, 0):
                shape, _, dtype = np.lib.format.read_array_header_2_0(handle)
            else:
                return None
            return shape, dtype, handle.tell()
    except Exception:           # a corrupted header: the caller says so
        return None


def _read_npy(path: Path, what: str) -> np.ndarray:
    """A .npy file, memory-mapped; every way it can be broken is one
    ``CommandError`` (a corrupted header makes NumPy raise anything from
    ``ValueError`` to ``tokenize.TokenError`` or ``SyntaxError``)."""
    shown = f"{what} file {str(path)!r}"
    try:
        with open(path, "rb") as handle:
            magic = handle.read(6)
    except OSError as exc:
        raise CommandError(f"cannot read {shown}: {exc.strerror or exc}") from None
    if magic != b"\x93NUMPY":
        raise CommandError(f"{shown} is not a .npy file (numpy.save writes them)")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, EOFError) as exc:
        raise CommandError(f"cannot read {shown}: "
                           f"{getattr(exc, 'strerror', None) or exc}") from None
    except MemoryError:
        raise
    except Exception as exc:
        text = str(exc)
        if "allow_pickle" in text or "Python objects" in text:
            raise CommandError(f"cannot read {shown}: it holds Python objects, not "
                               f"numbers") from None
        layout = _npy_layout(path)
        if layout is None:
            detail = " ".join(text.split())
            detail = detail if len(detail) <= 100 else detail[:97] + "..."
            raise CommandError(f"{shown} is damaged: its .npy header cannot be read "
                               f"({type(exc).__name__}: {detail})") from None
        shape, dtype, offset = layout
        promised = offset + int(np.prod(shape, dtype=object)) * dtype.itemsize
        size = path.stat().st_size
        if size < promised:
            raise CommandError(f"{shown} is truncated: its header promises "
                               f"{'x'.join(map(str, shape)) or 'one'} {dtype} values "
                               f"({promised:,} bytes), the file has {size:,} bytes") from None
        raise CommandError(f"cannot read {shown}: {text}") from None
    if array.dtype.kind not in "biuf":
        raise CommandError(f"{shown} must hold real numbers; got dtype {array.dtype}")
    return array


def read_array(path: str, what: str, delimiter: str = ",",
               header: bool | None = None) -> tuple[np.ndarray, list[str] | None]:
    """Load a .npy or .csv file: the array and a .csv header (or None).
    ``header``: whether a .csv file's first row names the columns (None:
    decide, see :func:`_read_csv`)."""
    file = _check_suffix(path, DATA_SUFFIXES, f"{what} file")
    if not file.exists():
        raise CommandError(f"{what} file {path!r} does not exist")
    if file.is_dir():
        raise CommandError(f"{what} file {path!r} is a directory")
    if file.suffix.lower() == ".npy":
        return _read_npy(file, what), None
    if len(delimiter) != 1:
        raise CommandError(f"--delimiter must be one character (or 'tab'); got "
                           f"{delimiter!r}")
    return _read_csv(file, delimiter, what, header)


def _as_vector(array: np.ndarray, path: str, what: str) -> np.ndarray:
    if array.ndim == 2 and array.shape[1] == 1:
        return array[:, 0]
    if array.ndim != 1:
        raise CommandError(f"{what} file {path!r} must hold one column of numbers; got "
                           f"shape {array.shape}")
    return array


def _target_column(target: str, header: list[str] | None, n_columns: int,
                   path: str) -> int:
    if header is not None and target in header:
        return header.index(target)
    try:
        index = int(target)
    except ValueError:
        names = f"; its columns are {', '.join(header)}" if header else " (it has no header)"
        raise CommandError(f"--target {target!r} is not a column of {path!r}{names}") from None
    if not -n_columns <= index < n_columns:
        raise CommandError(f"--target {index} is out of range for {path!r}, which has "
                           f"{n_columns} columns")
    return index % n_columns


def load_data(args: argparse.Namespace) -> tuple[np.ndarray, np.ndarray, dict,
                                                 np.ndarray | None]:
    """X, y, a description of the data, and w_true for a synthetic problem."""
    files = (args.X_file, args.y_file)
    if args.data_file is not None and any(files):
        raise CommandError("give either --data or --X and --y, not both")
    if args.data_file is not None:
        table, header = read_array(args.data_file, "--data", args.delimiter, args.header)
        if table.ndim != 2 or table.shape[1] < 2:
            raise CommandError(f"--data file {args.data_file!r} must be a table with at "
                               f"least two columns (features and target); got shape "
                               f"{table.shape}")
        column = _target_column(args.target, header, table.shape[1], args.data_file)
        X = np.delete(table, column, axis=1)
        y = np.array(table[:, column], dtype=np.float64)
        info = dict(source="file", data=args.data_file, target_column=column,
                    target_name=header[column] if header else None,
                    feature_names=([name for i, name in enumerate(header) if i != column]
                                   if header else None))
        return X, y, info, None
    if any(files):
        if not all(files):
            missing = "--y" if args.y_file is None else "--X"
            raise CommandError(f"{missing} is missing: give both --X and --y (or --data)")
        X, names = read_array(args.X_file, "--X", args.delimiter, args.header)
        y, targets = read_array(args.y_file, "--y", args.delimiter, args.header)
        if not (y.ndim == 2 and y.shape[1] > 1):        # k > 1 columns: k outputs
            y = _as_vector(y, args.y_file, "--y")
        if X.ndim == 0:
            raise CommandError(f"--X file {args.X_file!r} holds a single number, not a "
                               f"table")
        if X.shape[0] != y.shape[0]:
            raise CommandError(f"--X and --y must have the same number of samples; got "
                               f"{X.shape[0]} in {args.X_file!r} and {y.shape[0]} in "
                               f"{args.y_file!r}")
        info = dict(source="files", X=args.X_file, y=args.y_file, feature_names=names,
                    target_name=(targets[0] if targets and len(targets) == 1 else targets))
        return X, y, info, None
    X, y, w_true = synthetic(args.n_samples, args.n_features, args.noise, args.bias,
                             args.data_seed)
    info = dict(source="synthetic", noise=args.noise, bias=args.bias, seed=args.data_seed)
    return X, y, info, w_true


def synthetic(n_samples: int, n_features: int, noise: float, bias: float,
              seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``make_regression`` for ``-n``/``-d``: sizes the machine cannot hold are
    a one-line error naming the flags."""
    try:
        return make_regression(n_samples, n_features, noise=noise, bias=bias, seed=seed)
    except MemoryError as exc:          # "n_samples=..., n_features=...: what it needs"
        raise CommandError(f"-n/--n-samples {n_samples} and -d/--n-features {n_features}: "
                           f"{str(exc).split(': ', 1)[-1]}") from None


def read_vector(text: str, what: str, delimiter: str,
                header: bool | None = None) -> np.ndarray:
    """A vector from a .npy/.csv file named ``text``."""
    array, _ = read_array(text, what, delimiter, header)
    return _as_vector(array, text, what)


def file_argument(text: str | None) -> str | None:
    """``text`` when it names a data file (``--w0`` may also be numbers)."""
    return text if text and Path(text).suffix.lower() in DATA_SUFFIXES else None


def parse_w0(text: str, delimiter: str, header: bool | None = None) -> Any:
    """``--w0``: comma-separated numbers, or a .npy/.csv file."""
    if file_argument(text):
        return read_vector(text, "--w0", delimiter, header)
    try:
        return [float(v) for v in text.split(",")]
    except ValueError:
        raise CommandError(f"--w0 must be comma-separated numbers or a .npy/.csv "
                           f"file; got {text!r}") from None


# ---------------------------------------------------------------------------
# Writing results
# ---------------------------------------------------------------------------

def _plain(value: Any) -> Any:
    """JSON-friendly copy: arrays to lists, non-finite floats to None."""
    if isinstance(value, np.ndarray):
        return _plain(value.tolist())
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, (np.floating, float)):
        return float(value) if math.isfinite(value) else None
    if isinstance(value, (np.integer, np.bool_)):
        return value.item()
    if value is None or isinstance(value, (bool, int, str)):
        return value
    return repr(value)


def feature_names(data: dict, n_features: int) -> tuple[list[str], bool]:
    """The names of the features of a run: a .csv header's (True), or x0, x1, ...
    (False)."""
    names = data.get("feature_names")
    if names is not None and len(names) == n_features:
        return list(names), True
    return [f"x{i}" for i in range(n_features)], False


def all_options(given: dict) -> dict:
    """Every option of the table (``_options.OPTIONS``, so an option added
    there appears here) with the value the run used: as given on the
    command line, or its default; and the data arguments that were given."""
    options = {record.name: given.get(record.name, record.default)
               for record in _options.OPTIONS}
    options.update((record.name, given[record.name]) for record in _options.DATA_ARGUMENTS
                   if record.name in given)
    return options


def result_record(result: Any, options: dict, data: dict, final_loss: float,
                  seconds: float, w_true: np.ndarray | None) -> dict:
    """Everything the output file (the model file) holds: the result of fit,
    every option (:func:`all_options`), the data's description, the names of
    the features and the target, and the version of gdcore."""
    record: dict[str, Any] = {"format": MODEL_FORMAT, "gdcore_version": __version__}
    for field in dataclasses.fields(result):
        if field.name != "state":
            record[field.name] = getattr(result, field.name)
    names, from_header = feature_names(data, int(np.shape(result.w)[0]))
    record.update(final_loss=final_loss, seconds=seconds, options=all_options(options),
                  data=data, feature_names=names, feature_names_from_header=from_header,
                  target_name=data.get("target_name"))
    if w_true is not None:
        record["w_true"] = w_true
    return record


def write_output(path: Path, record: dict) -> None:
    """Write ``record`` to a .json or .npz file: a temporary file beside
    ``path``, renamed onto it once complete (``_files.write_atomically``), so
    ``path`` is always its old or its new complete content."""
    if path.suffix.lower() == ".json":
        text = json.dumps(_plain(record), indent=2, allow_nan=False) + "\n"

        def write(temporary: str) -> None:
            with open(temporary, "w") as handle:
                handle.write(text)
    else:
        arrays: dict[str, Any] = {}
        meta = {}
        for key, value in record.items():
            if isinstance(value, np.ndarray):
                arrays[key] = value
            elif isinstance(value, (float, int, np.floating, np.integer)) and \
                    not isinstance(value, bool):
                arrays[key] = np.asarray(value)
            else:
                meta[key] = value
        arrays["meta"] = np.asarray(json.dumps(_plain(meta)))

        def write(temporary: str) -> None:
            with open(temporary, "wb") as handle:
                np.savez(handle, **arrays)
    try:
        write_atomically(path, write)
    except OSError as exc:
        raise CommandError(f"--output: cannot write {str(path)!r}: "
                           f"{exc.strerror or exc}") from None


def check_writable(path: str, allowed: tuple[str, ...], what: str) -> Path:
    """The suffix of an output file (its place is checked by :func:`check_outputs`)."""
    return _check_suffix(path, allowed, what)


def check_outputs(outputs: list[tuple[str, str]], inputs: list[tuple[str, str]]) -> None:
    """Every output file can be written, and none is another output or an input:
    checked before any work (``_validation.check_destinations``)."""
    try:
        _validation.check_destinations(outputs, inputs)
    except OSError as exc:
        raise CommandError(exc.strerror or str(exc)) from None
    except ValueError as exc:
        raise CommandError(str(exc)) from None


# ---------------------------------------------------------------------------
# Models and predictions (the predict command)
# ---------------------------------------------------------------------------

@dataclasses.dataclass
class Model:
    """What ``predict`` needs of a model file written by ``train -o``."""

    w: np.ndarray                     # (d,) or (d, k)
    b: Any                            # float or (k,)
    feature_names: list[str]
    from_header: bool                 # the names came from a .csv header
    target_name: Any                  # str, list of str (k outputs) or None
    target_column: int | None         # trained on --data: the target's column


def read_model(path: str) -> Model:
    """A model file (.json or .npz, ``train -o``); every problem is a
    one-line :class:`CommandError` naming ``--model``."""
    file = _check_suffix(path, OUTPUT_SUFFIXES, "--model file")
    shown = f"--model file {path!r}"
    if not file.is_file():
        raise CommandError(f"{shown} does not exist" if not file.exists()
                           else f"{shown} is not a file")
    try:
        if file.suffix.lower() == ".json":
            record = json.loads(file.read_text(encoding="utf-8"))
        else:
            with np.load(file, allow_pickle=False) as archive:
                arrays = {name: archive[name] for name in archive.files}
            record = json.loads(str(arrays.pop("meta")))
            record.update(arrays)
    except (OSError, ValueError, KeyError, UnicodeDecodeError, EOFError,
            zipfile.BadZipFile) as exc:
        raise CommandError(f"cannot read {shown}: {' '.join(str(exc).split())}") from None
    if not isinstance(record, dict) or "w" not in record or "b" not in record:
        raise CommandError(f"{shown} is not a model file of gdcore train -o (it has no w "
                           f"and b)")
    try:
        w = np.asarray(record["w"], dtype=np.float64)
        b = np.asarray(record["b"], dtype=np.float64)
    except (TypeError, ValueError):
        raise CommandError(f"{shown}: its w and b are not numbers") from None
    if w.ndim not in (1, 2) or w.shape[0] == 0 or b.shape != w.shape[1:] \
            or not (np.isfinite(w).all() and np.isfinite(b).all()):
        raise CommandError(f"{shown}: its w (shape {w.shape}) and b (shape {b.shape}) are "
                           f"not the finite parameters of a linear model")
    d = w.shape[0]
    names = record.get("feature_names")
    from_header = bool(record.get("feature_names_from_header", False))
    if not (isinstance(names, list) and len(names) == d
            and all(isinstance(name, str) for name in names)):
        names, from_header = [f"x{i}" for i in range(d)], False
    data = record.get("data")
    if not isinstance(data, dict):
        data = {}
    column = data.get("target_column") if data.get("source") == "file" else None
    return Model(w=w, b=float(b) if b.ndim == 0 else b, feature_names=names,
                 from_header=from_header, target_name=record.get("target_name"),
                 target_column=column if isinstance(column, int) else None)


def model_features(model: Model, table: np.ndarray, header: list[str] | None,
                   path: str) -> np.ndarray:
    """The columns of ``table`` (read from ``path``) that are the model's
    features, in the model's order: by name when both the file and the model
    have names, else by position (a table with one column more than the
    model's features, trained on --data, loses the target's column)."""
    shown = f"--data file {path!r}"
    d = len(model.feature_names)
    if table.ndim == 1:
        table = table.reshape(-1, 1)
    if header is not None and model.from_header:
        if len(set(header)) != len(header):
            repeated = sorted({name for name in header if header.count(name) > 1})
            raise CommandError(f"{shown} names the column(s) {', '.join(repeated)} twice")
        missing = [name for name in model.feature_names if name not in header]
        target = model.target_name if isinstance(model.target_name, str) else None
        extra = [name for name in header if name not in model.feature_names
                 and name != target]
        if missing or extra:
            problems = []
            if missing:
                problems.append(f"lacks the model's feature column(s) {', '.join(missing)}")
            if extra:
                problems.append(f"has column(s) {', '.join(extra)} the model was not "
                                f"trained on")
            raise CommandError(f"{shown} {' and '.join(problems)} (the model's features: "
                               f"{', '.join(model.feature_names)})")
        return table[:, [header.index(name) for name in model.feature_names]]
    if table.shape[1] == d:
        return table
    if table.shape[1] == d + 1 and model.target_column is not None:
        return np.delete(table, model.target_column, axis=1)
    raise CommandError(f"{shown} has {table.shape[1]} column(s); the model has {d} "
                       f"feature(s) ({', '.join(model.feature_names)})"
                       + ("" if header is None else
                          "; its header names cannot be matched: the model was trained "
                          "without column names"))


def write_predictions(path: Path, predictions: np.ndarray, names: list[str]) -> None:
    """Predictions to a .csv (a header of ``names``, shortest round-trip
    numbers) or .npy file, atomically (``_files.write_atomically``)."""
    def write(temporary: str) -> None:
        if path.suffix.lower() == ".npy":
            with open(temporary, "wb") as handle:
                np.save(handle, predictions)
            return
        with open(temporary, "w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle, lineterminator="\n")
            writer.writerow(names)
            writer.writerows([repr(float(v)) for v in row]
                             for row in predictions.reshape(predictions.shape[0], -1))
    try:
        write_atomically(path, write)
    except OSError as exc:
        raise CommandError(f"--output: cannot write {str(path)!r}: "
                           f"{exc.strerror or exc}") from None
