"""Find the compiled modules and pick the ones for the running CPU.

setup.py builds each compiled module (``gdcore/kernels.pxi``,
``gdcore/landscape.pxi``) once per instruction set: ``_kernels`` (any CPU),
``_kernels_avx2`` and ``_kernels_avx512`` (and ``_landscape*`` likewise). All
of them compute the same bits; the newer instruction sets are only faster. At
import, the best variant that was built and that the CPU supports is chosen.
The environment variable ``GDCORE_KERNELS`` (one of ``baseline``, ``avx2``,
``avx512``) forces a choice, for testing and benchmarking; forcing one the CPU
cannot run raises ``ImportError``. Unforced, per-sample epochs on short rows
use the AVX2 variant on AVX-512 CPUs (see ``SHORT_ROW_FEATURES``).

Without a build (a source checkout, a platform without a C compiler) gdcore
still imports: :data:`kernels` is None, ``backend="reference"`` works, and
:func:`require` raises an ``ImportError`` that says how to build.
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

#: variant name -> (module suffix, CPU level the variant needs)
VARIANTS = {"baseline": ("", 0), "avx2": ("_avx2", 1), "avx512": ("_avx512", 2)}

#: Per-sample epochs (one update per row) on rows of at most this many
#: features run the AVX2 build even where AVX-512 is chosen. Their time is the
#: dependency chain from one row's update to the next row's residual, and the
#: 512-bit reductions lengthen it: measured on an AVX-512 Xeon, ns per row for
#: AVX2 / AVX-512 were 16.6 / 20.4 at d = 8, 17.4 / 21.1 at d = 10, 23.3 / 25.3
#: at d = 32, 33.1 / 32.2 at d = 48. Both builds compute the same bits.
SHORT_ROW_FEATURES = 32

_baseline: ModuleType | None
_NOT_BUILT: ImportError | None
try:
    _baseline, _NOT_BUILT = importlib.import_module("gdcore._kernels"), None
except ImportError as exc:           # not built
    _baseline, _NOT_BUILT = None, exc


def _forced() -> str:
    return os.environ.get("GDCORE_KERNELS", "").strip()


def load(name: str, module: str = "kernels") -> ModuleType:
    """Import variant ``name`` of the compiled module ``module`` (``kernels`` or
    ``landscape``); ``ImportError`` if it was not built or the CPU cannot run it."""
    if name not in VARIANTS:
        raise ImportError(f"GDCORE_KERNELS must be one of {', '.join(VARIANTS)}; "
                          f"got {name!r}")
    suffix, level = VARIANTS[name]
    if _baseline is None or level > _baseline.cpu_level():
        raise ImportError(f"gdcore kernels {name!r} need an instruction set this CPU "
                          f"does not have, or were not built")
    return importlib.import_module(f"gdcore._{module}{suffix}")


def available() -> list[str]:
    """Variants that were built and that this CPU can run, slowest first."""
    names = []
    for name in VARIANTS:
        try:
            load(name)
        except ImportError:
            continue
        names.append(name)
    return names


def _choose() -> tuple[str | None, ModuleType | None]:
    if _baseline is None:
        return None, None
    forced = _forced()
    if forced:
        return forced, load(forced)
    name = available()[-1]
    return name, load(name)


#: The chosen variant (None without a build) and its kernels module.
KERNELS_NAME, kernels = _choose()


def _first_built(module: str, *names: str) -> ModuleType | None:
    """The first of the variants ``names`` of ``module`` that loads."""
    for name in names:
        try:
            return load(name, module)
        except ImportError:
            continue
    return None


#: the kernels module for per-sample epochs on rows of at most SHORT_ROW_FEATURES
short_row_kernels = (_first_built("kernels", "avx2", "avx512")
                     if KERNELS_NAME == "avx512" and not _forced() else kernels)

#: the loss-landscape module of the chosen variant (the portable one if that
#: variant was not built)
landscape = (_first_built("landscape", KERNELS_NAME, "baseline")
             if KERNELS_NAME is not None else None)

#: whether the compiled modules were built with OpenMP
OPENMP = bool(kernels is not None and kernels.OPENMP)


def require() -> ModuleType:
    """The chosen kernels module, or ``ImportError`` saying how to build it."""
    if kernels is None:
        raise ImportError(
            "backend='cython' needs gdcore's compiled kernels, which are not built "
            f"here ({_NOT_BUILT}): install gdcore with `pip install .` from its "
            "source (a C compiler is needed), or pass backend='reference' for the "
            "plain-Python path (slow: small data only)")
    return kernels


def max_threads() -> int:
    """Threads a parallel pass uses by default (1 without a build)."""
    return kernels.max_threads() if kernels is not None else 1


# A process forked from one whose kernels had started threads (an OpenMP
# team) cannot start threads of its own: GNU OpenMP's thread pool does not
# survive fork(), and the child waits for it for ever (multiprocessing's
# default "fork" start method on Linux). So every thread count resolves
# through threads(), which remembers whether a team may have started and,
# in such a child, says 1 (tests/test_fork.py).
_teams_started = False
_forked_after_teams = False


def threads(requested: int | None) -> int:
    """Threads a call runs on: ``requested`` (None: :func:`max_threads`), or
    1 in a process forked after this one's kernels started threads."""
    global _teams_started
    count = max_threads() if requested is None else requested
    if _forked_after_teams:
        return 1
    if count >= 2 and OPENMP:
        _teams_started = True
    return count


def _after_fork_in_child() -> None:
    global _forked_after_teams
    _forked_after_teams = _forked_after_teams or _teams_started


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)
