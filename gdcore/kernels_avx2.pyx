# cython: language_level=3
"""gdcore's compiled kernels, x86-64-v3 build (AVX2 + FMA).

The code is in kernels.pxi; setup.py compiles this module for one instruction
set and python/gdcore/_dispatch.py picks, at import, the best module that the
running CPU supports. Every build computes the same bits (no FMA contraction,
fixed summation order); only the speed differs.
"""

include "kernels.pxi"
