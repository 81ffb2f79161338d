# cython: language_level=3
"""gdcore's loss-landscape kernel (``gdcore.loss_grid``):
x86-64-v3 build (AVX2, FMA).

The code is in landscape.pxi; setup.py compiles it once per instruction set,
as it does kernels.pxi, and python/gdcore/landscape.py loads the build that
matches the kernels ``gdcore.KERNELS`` chose. Every build computes the same
bits (no FMA contraction, fixed summation order); only the speed differs.
"""

include "landscape.pxi"
