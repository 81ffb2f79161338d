"""Speed runs for gdcore (pytest-benchmark): the workloads of bench/README.md.

Run from the repository root, with gdcore installed (``pip install .``)::

    pytest bench                                  # small smoke run (n = 20,000)
    pytest bench --bench-size=full                # the real thing (n = 1,000,000)
    pytest bench --bench-size=full --bench-json=ratios.json

Peers that are not installed (scikit-learn, PyTorch, JAX) are skipped.

What lives here:

* ``--bench-size`` / ``--bench-json`` options and the per-size settings;
* session fixtures that make each (n, d) data set once and hand out PyTorch /
  JAX views of it;
* the ``bench`` fixture, a thin wrapper around ``benchmark.pedantic`` that
  records what each entry is (gdcore, the memory floor, or a peer) and whether
  it was timed on a subset and scaled up;
* a ``pytest_terminal_summary`` hook that prints, per workload group, every
  entry's median and its ratio to gdcore's (peer / gdcore, so > 1 means gdcore
  is faster), and gdcore's ratio to the memory floor ``X.sum()``.

The bench directory is only collected when it is named on the command line
(``pytest bench`` or a path inside it), so ``pytest`` / ``pytest tests`` never
run it.
"""

from __future__ import annotations

import json
import os
import platform
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

BENCH_DIR = Path(__file__).resolve().parent
SUITE = "gdcore-bench"

# Per-size settings.  ``rounds`` timed rounds after ``warmup`` untimed ones
# (``slow_rounds`` / ``slow_warmup`` for the Python-loop peers that take
# seconds); the per-sample PyTorch loop runs on the first ``torch_sgd_subset``
# samples and its time is scaled to n (likewise ``torch_mb_subset`` for the
# minibatch loop; None = all samples). Nine full-size rounds: with five, two
# rounds slowed by a hiccup of the machine once moved a median by 30 %.
SIZES = {
    "small": dict(n=20_000, rounds=15, warmup=3, slow_rounds=3, slow_warmup=1,
                  torch_sgd_subset=2_000, torch_mb_subset=None),
    "full": dict(n=1_000_000, rounds=9, warmup=1, slow_rounds=3, slow_warmup=1,
                 torch_sgd_subset=20_000, torch_mb_subset=None),
}

# make_regression arguments shared by every workload.
DATA_NOISE = 0.1
DATA_SEED = 0


# --------------------------------------------------------------------------- options


def pytest_addoption(parser):
    group = parser.getgroup("gdcore-bench", "gdcore benchmark suite (bench/)")
    group.addoption(
        "--bench-size",
        action="store",
        default="small",
        choices=tuple(SIZES),
        help="problem size: small (n=20,000, a quick smoke run) or full (n=1,000,000). "
        "Default: small.",
    )
    group.addoption(
        "--bench-json",
        action="store",
        default=None,
        metavar="FILE",
        help="also write the gdcore ratio table to FILE as JSON.",
    )


def _bench_requested(config) -> bool:
    """True when a command-line argument names bench/ or something inside it."""
    base = Path(config.invocation_params.dir)
    for arg in config.args:
        path = Path(str(arg).split("::", 1)[0])
        if not path.is_absolute():
            path = base / path
        try:
            path = path.resolve()
        except OSError:
            continue
        if path == BENCH_DIR or BENCH_DIR in path.parents:
            return True
    return False


def pytest_ignore_collect(collection_path, config):
    # Keep the speed runs out of any run that did not ask for them
    # (e.g. a bare ``pytest .``).  None = let pytest decide as usual.
    path = Path(collection_path).resolve()
    if (path.parent == BENCH_DIR or BENCH_DIR in path.parents) and not _bench_requested(config):
        return True
    return None


# --------------------------------------------------------------------------- fixtures


@pytest.fixture(scope="session")
def bench_size(pytestconfig):
    name = pytestconfig.getoption("bench_size")
    return SimpleNamespace(name=name, **SIZES[name])


@pytest.fixture(scope="session")
def regression_data(bench_size):
    """``regression_data(d)`` -> namespace(X, y, w_true, n, d), made once per (n, d)."""
    import gdcore

    cache = {}

    def get(d: int):
        key = (bench_size.n, d)
        if key not in cache:
            X, y, w_true = gdcore.make_regression(bench_size.n, d, noise=DATA_NOISE, seed=DATA_SEED)
            assert X.dtype == np.float64 and X.flags.c_contiguous and X.shape == key
            assert y.dtype == np.float64 and y.shape == (bench_size.n,)
            cache[key] = SimpleNamespace(X=X, y=y, w_true=w_true, n=bench_size.n, d=d)
        return cache[key]

    yield get
    cache.clear()


@pytest.fixture(scope="session")
def torch_mod():
    return pytest.importorskip("torch")


@pytest.fixture(scope="session")
def torch_data(regression_data, torch_mod):
    """``torch_data(d)`` -> (X, y) as float64 tensors sharing memory with the NumPy data."""

    def get(d: int):
        data = regression_data(d)
        return torch_mod.from_numpy(data.X), torch_mod.from_numpy(data.y)

    return get


@pytest.fixture(scope="session")
def jax_mod():
    jax = pytest.importorskip("jax")
    jax.config.update("jax_enable_x64", True)
    return jax


@pytest.fixture(scope="session")
def jax_data(regression_data, jax_mod):
    """``jax_data(d)`` -> (X, y) as float64 device arrays, put on the device once per (n, d)."""
    cache = {}

    def get(d: int):
        data = regression_data(d)
        key = (data.n, d)
        if key not in cache:
            X = jax_mod.device_put(data.X)
            y = jax_mod.device_put(data.y)
            assert X.dtype == np.float64, "jax_enable_x64 did not take effect"
            jax_mod.block_until_ready((X, y))
            cache[key] = (X, y)
        return cache[key]

    yield get
    cache.clear()


@pytest.fixture
def bench(benchmark, bench_size):
    """``bench(fn, impl=..., role="peer", subset_n=None, slow=False)``: time ``fn()``.

    Returns ``fn()``'s result.

    ``role`` is "gdcore", "floor" (the memory floor X.sum()) or "peer".  With
    ``subset_n`` the function works on the first ``subset_n`` of the n samples,
    and the ratio table scales its time by n / subset_n.  ``slow`` entries get
    fewer rounds.  With ``paired_with`` (the group's gdcore call), the entry
    also gets a paired ratio: after its own rounds, as many rounds again that
    each time both calls back to back (in turns, which goes first), the
    median of ``fn`` time / ``paired_with`` time. Memory-bound timings here
    drift by 5 to 25 % over seconds, as much as an option costs; a pair sees
    the same drift twice.
    """

    def run(fn, *, impl, role="peer", subset_n=None, note=None, slow=False,
            paired_with=None):
        n = bench_size.n
        scale = 1.0 if subset_n is None else n / subset_n
        benchmark.extra_info.update(
            suite=SUITE,
            impl=impl,
            role=role,
            n=n,
            bench_size=bench_size.name,
            subset_n=subset_n,
            scale=scale,
            note=note,
        )
        rounds = bench_size.slow_rounds if slow else bench_size.rounds
        result = benchmark.pedantic(
            fn,
            rounds=rounds,
            warmup_rounds=bench_size.slow_warmup if slow else bench_size.warmup,
            iterations=1,
        )
        if paired_with is not None:
            benchmark.extra_info["paired_ratio"] = _paired_ratio(fn, paired_with, rounds)
        return result

    return run


def _paired_ratio(fn, base, rounds: int) -> float:
    """Median over ``rounds`` back-to-back pairs of fn's time / base's time."""
    ratios = []
    for r in range(rounds):
        calls = (base, fn) if r % 2 == 0 else (fn, base)
        times = {}
        for call in calls:
            start = time.perf_counter()
            call()
            times[call] = time.perf_counter() - start
        ratios.append(times[fn] / times[base])
    return float(np.median(ratios))


# --------------------------------------------------------------------------- machine load
# Timings on a 2-core machine are only worth something when nothing else runs:
# the summary says how much CPU other processes (and the hypervisor, as steal
# time) took during the session, read from /proc/stat where there is one.


def _cpu_snapshot():
    snap = {"wall": time.monotonic()}
    t = os.times()
    snap["own"] = t.user + t.system + t.children_user + t.children_system
    try:
        with open("/proc/stat") as fh:
            vals = [int(v) for v in fh.readline().split()[1:]]
        hz = os.sysconf("SC_CLK_TCK")
        user, nice, system, _idle, _iowait, irq, softirq = vals[:7]
        snap["busy"] = (user + nice + system + irq + softirq) / hz
        snap["steal"] = (vals[7] if len(vals) > 7 else 0) / hz
    except (OSError, ValueError, IndexError):
        pass
    return snap


def pytest_sessionstart(session):
    session.config._gdcore_bench_cpu0 = _cpu_snapshot()
    try:
        session.config._gdcore_bench_loadavg0 = os.getloadavg()
    except OSError:
        session.config._gdcore_bench_loadavg0 = None


def _machine_load(config) -> dict:
    start = getattr(config, "_gdcore_bench_cpu0", None)
    if start is None:
        return {}
    end = _cpu_snapshot()
    wall = end["wall"] - start["wall"]
    out = {"session_wall_s": wall,
           "loadavg_at_start": getattr(config, "_gdcore_bench_loadavg0", None)}
    if "busy" in start and "busy" in end and wall > 0:
        own = end["own"] - start["own"]
        out["other_processes_cores"] = max(0.0, (end["busy"] - start["busy"]) - own) / wall
        out["steal_cores"] = (end["steal"] - start["steal"]) / wall
    return out


# --------------------------------------------------------------------------- ratio table


def _environment() -> dict:
    env = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "cpu_count": os.cpu_count(),
        "numpy": np.__version__,
        "OPENBLAS_CORETYPE": os.environ.get("OPENBLAS_CORETYPE"),
        "OPENBLAS_L2_SIZE": os.environ.get("OPENBLAS_L2_SIZE"),
        "OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS"),
    }
    try:
        import gdcore

        env["gdcore"] = getattr(gdcore, "__version__", "?")
    except ImportError:
        pass
    try:
        from threadpoolctl import threadpool_info

        env["threadpools"] = [
            {k: p.get(k)
             for k in ("internal_api", "version", "architecture", "num_threads", "filepath")}
            for p in threadpool_info()
        ]
        for p in env["threadpools"]:
            if p.get("filepath"):
                p["filepath"] = os.path.basename(p["filepath"])
    except Exception:  # threadpoolctl missing or failing: not worth failing the run
        pass
    import sys

    for mod in ("torch", "jax", "sklearn"):
        m = sys.modules.get(mod)
        if m is not None:
            env[mod] = getattr(m, "__version__", "?")
    if "torch" in sys.modules:
        env["torch_num_threads"] = sys.modules["torch"].get_num_threads()
    return env


def _two_core_sum(X: np.ndarray) -> float:
    """The 2-core memory floor: two threads each sum half of X's rows
    (NumPy releases the GIL while it sums); on a machine whose one core
    cannot saturate memory this is about half of ``X.sum()``."""
    import threading

    half = X.shape[0] // 2
    parts = [0.0, 0.0]

    def add(i: int, rows: np.ndarray) -> None:
        parts[i] = float(rows.sum())

    other = threading.Thread(target=add, args=(1, X[half:]))
    other.start()
    add(0, X[:half])
    other.join()
    return parts[0] + parts[1]


@pytest.fixture(scope="session")
def two_core_sum():
    """The 2-core memory floor of X as a function (see ``_two_core_sum``)."""
    return _two_core_sum


def _collect(config) -> dict | None:
    bs = getattr(config, "_benchmarksession", None)
    if bs is None:
        return None
    groups: dict[str, list] = {}
    for bench in bs.benchmarks:
        info = bench.extra_info or {}
        if info.get("suite") != SUITE or bench.has_error or not bench.stats:
            continue
        groups.setdefault(bench.group or "(no group)", []).append(bench)
    if not groups:
        return None

    size = config.getoption("bench_size")
    table = {
        "bench_size": size,
        "n": SIZES[size]["n"],
        "environment": _environment(),
        "machine_load": _machine_load(config),
        "groups": {},
    }
    for group in sorted(groups):
        entries = []
        for bench in groups[group]:
            info = bench.extra_info
            measured = bench.stats.median
            scale = float(info.get("scale") or 1.0)
            entries.append(
                {
                    "name": bench.name,
                    "impl": info.get("impl", bench.name),
                    "role": info.get("role", "peer"),
                    "median_s": measured * scale,
                    "measured_median_s": measured,
                    "min_s": bench.stats.min * scale,
                    "rounds": bench.stats.rounds,
                    "subset_n": info.get("subset_n"),
                    "scale": scale,
                    "note": info.get("note"),
                    "paired_ratio": info.get("paired_ratio"),
                }
            )
        role_order = {"gdcore": 0, "floor": 1, "floor2": 2}
        entries.sort(key=lambda e: (role_order.get(e["role"], 3), e["median_s"]))
        gd = next((e for e in entries if e["role"] == "gdcore"), None)
        floor = next((e for e in entries if e["role"] == "floor"), None)
        floor2 = next((e for e in entries if e["role"] == "floor2"), None)
        for e in entries:
            e["ratio_to_gdcore"] = e["median_s"] / gd["median_s"] if gd else None
        table["groups"][group] = {
            "gdcore_median_s": gd["median_s"] if gd else None,
            "floor_median_s": floor["median_s"] if floor else None,
            "gdcore_over_floor": (gd["median_s"] / floor["median_s"]) if (gd and floor) else None,
            "floor2_median_s": floor2["median_s"] if floor2 else None,
            "gdcore_over_floor2": (gd["median_s"] / floor2["median_s"]) if (gd and floor2)
            else None,
            "entries": entries,
        }
    return table


def _fmt_time(t: float) -> str:
    if t >= 1.0:
        return f"{t:9.3f} s "
    if t >= 1e-3:
        return f"{t * 1e3:9.2f} ms"
    return f"{t * 1e6:9.1f} us"


def _write_table(tr, table: dict) -> None:
    env = table["environment"]
    tr.write_sep("=", f"gdcore ratio table ({table['bench_size']}: n = {table['n']:,})")
    tr.write_line("ratio = entry median / gdcore median  (> 1: gdcore is faster); "
                  "min = fastest round; paired = median of entry / gdcore timed back to back")
    tr.write_line(
        f"OPENBLAS_CORETYPE={env.get('OPENBLAS_CORETYPE')}  "
        f"OPENBLAS_L2_SIZE={env.get('OPENBLAS_L2_SIZE')}  "
        f"OMP_NUM_THREADS={env.get('OMP_NUM_THREADS')}  cpus={env.get('cpu_count')}"
    )
    for p in env.get("threadpools", []):
        tr.write_line(
            f"threadpool: {p.get('internal_api')} {p.get('version')} {p.get('architecture')} "
            f"threads={p.get('num_threads')} ({p.get('filepath')})"
        )
    load = table.get("machine_load") or {}
    if "other_processes_cores" in load:
        la = load.get("loadavg_at_start")
        tr.write_line(
            f"during the session ({load['session_wall_s']:.0f} s) other processes used "
            f"{load['other_processes_cores']:.2f} cores on average, steal {load['steal_cores']:.2f}"
            + (f"; load average at start {la[0]:.2f}" if la else "")
        )
        if load["other_processes_cores"] > 0.1 or load["steal_cores"] > 0.1:
            tr.write_line("WARNING: the machine was not idle; these timings are not "
                          "trustworthy", red=True)
    versions = "  ".join(f"{k} {env[k]}" for k in ("gdcore", "numpy", "sklearn", "torch", "jax")
                         if k in env)
    tr.write_line(versions)
    notes = []
    for group, g in table["groups"].items():
        tr.write_line("")
        tr.write_line(group)
        paired = any(e.get("paired_ratio") is not None for e in g["entries"])
        tr.write_line(f"  {'entry':<44} {'median':>12}  {'ratio':>8}  {'min':>12}  {'rounds':>6}"
                      + (f"  {'paired':>8}" if paired else ""))
        for e in g["entries"]:
            mark = ""
            if e["note"] or e["subset_n"]:
                text = e["note"] or ""
                if e["subset_n"]:
                    text = (
                        f"{e['impl']}: timed on the first {e['subset_n']:,} samples, "
                        f"time scaled x{e['scale']:g} to n = {table['n']:,}"
                        + (f"; {text}" if text else "")
                    )
                if text not in notes:
                    notes.append(text)
                mark = f" [{notes.index(text) + 1}]"
            ratio = e["ratio_to_gdcore"]
            ratio_s = f"{ratio:8.2f}" if ratio is not None else "     n/a"
            pair = e.get("paired_ratio")
            tr.write_line(
                f"  {e['impl'] + mark:<44} {_fmt_time(e['median_s']):>12}  {ratio_s}  "
                f"{_fmt_time(e['min_s']):>12}  {e['rounds']:>6}"
                + (f"  {pair:8.2f}" if pair is not None else "")
            )
        if g["gdcore_over_floor"] is not None:
            tr.write_line(f"  gdcore / floor X.sum() = {g['gdcore_over_floor']:.2f}")
        if g.get("gdcore_over_floor2") is not None:
            tr.write_line(f"  gdcore / 2-core floor = {g['gdcore_over_floor2']:.2f}")
    if notes:
        tr.write_line("")
        for i, text in enumerate(notes, 1):
            tr.write_line(f"[{i}] {text}")


@pytest.hookimpl(trylast=True)
def pytest_terminal_summary(terminalreporter, exitstatus, config):
    table = _collect(config)
    if table is None:
        return
    _write_table(terminalreporter, table)
    out = config.getoption("bench_json")
    if out:
        path = Path(out)
        if not path.is_absolute():
            path = Path(config.invocation_params.dir) / path
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(table, indent=2, sort_keys=False) + "\n")
        terminalreporter.write_line(f"ratio table written to {out}")
