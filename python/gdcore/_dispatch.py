"""Pick the compiled kernel module for the running CPU.

setup.py may build the same kernels (gdcore/kernels.pxi) several times for
different instruction sets: ``_kernels`` (any CPU), ``_kernels_avx2`` and
``_kernels_avx512``. All of them compute the same bits; the newer instruction
sets are only faster. At import, the best module that was built and that the
CPU supports is chosen. The environment variable ``GDCORE_KERNELS`` (one of
``baseline``, ``avx2``, ``avx512``) forces a choice, for testing and
benchmarking; forcing one the CPU cannot run raises ``ImportError``.
Unforced, per-sample epochs on short rows use the AVX2 module on AVX-512
CPUs (see ``SHORT_ROW_FEATURES``).
"""

from __future__ import annotations

import importlib
import os
from types import ModuleType

from . import _kernels as baseline

#: variant name -> (module suffix, CPU level the variant needs)
VARIANTS = {"baseline": ("", 0), "avx2": ("_avx2", 1), "avx512": ("_avx512", 2)}


def load(name: str) -> ModuleType:
    """Import the kernel module of variant ``name`` (``ImportError`` if unusable)."""
    if name not in VARIANTS:
        raise ImportError(f"GDCORE_KERNELS must be one of {', '.join(VARIANTS)}; "
                          f"got {name!r}")
    suffix, level = VARIANTS[name]
    if level > baseline.cpu_level():
        raise ImportError(f"gdcore kernels {name!r} need an instruction set this CPU "
                          f"does not have")
    return importlib.import_module(f"gdcore._kernels{suffix}")


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


def _choose() -> tuple[str, ModuleType]:
    forced = os.environ.get("GDCORE_KERNELS", "").strip()
    if forced:
        return forced, load(forced)
    name = available()[-1]
    return name, load(name)


KERNELS_NAME, kernels = _choose()

#: Per-sample epochs (one update per row) on rows of at most this many
#: features run the AVX2 build even where AVX-512 is chosen. Their time is the
#: dependency chain from one row's update to the next row's residual, and the
#: 512-bit reductions lengthen it: measured on an AVX-512 Xeon, ns per row for
#: AVX2 / AVX-512 were 16.6 / 20.4 at d = 8, 17.4 / 21.1 at d = 10, 23.3 / 25.3
#: at d = 32, 33.1 / 32.2 at d = 48. Both builds compute the same bits.
SHORT_ROW_FEATURES = 32


def _short_row_choice() -> ModuleType:
    if KERNELS_NAME != "avx512" or os.environ.get("GDCORE_KERNELS", "").strip():
        return kernels
    try:
        return load("avx2")
    except ImportError:     # a build without the AVX2 variant
        return kernels


#: the module for per-sample epochs on rows of at most SHORT_ROW_FEATURES
short_row_kernels = _short_row_choice()
