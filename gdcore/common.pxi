# What gdcore's compiled modules share (included by kernels.pxi and
# landscape.pxi): OpenMP, scratch memory, and running a task over fixed blocks
# of work on a team of threads.
#
# Blocks are the unit of parallel work everywhere: a kernel cuts its work into
# a fixed number of blocks that depends on the problem only, never on the
# number of threads, gives each block its own output, and combines the outputs
# in block order afterwards. So every result is bit-for-bit the same for any
# thread count, and a thread the OS preempts does not hold the others up
# (blocks are handed out dynamically).

from cython.parallel cimport prange, threadid

cdef extern from *:
    """
    #include <stdlib.h>
    #ifdef _WIN32
    #include <malloc.h>
    #endif
    /* count doubles (at least one) starting on a 64-byte cache line, or NULL */
    static double *gd_malloc_lines(Py_ssize_t count) {
        size_t bytes = (size_t)(count > 0 ? count : 1) * sizeof(double);
    #ifdef _WIN32
        return (double *)_aligned_malloc(bytes, 64);
    #else
        void *p = NULL;
        return posix_memalign(&p, 64, bytes) == 0 ? (double *)p : NULL;
    #endif
    }
    static void gd_free_lines(void *p) {
    #ifdef _WIN32
        _aligned_free(p);
    #else
        free(p);
    #endif
    }
    #ifdef _OPENMP
    #include <omp.h>
    static int gd_max_threads(void) { return omp_get_max_threads(); }
    static const int gd_have_openmp = 1;
    #else
    static int gd_max_threads(void) { return 1; }
    static const int gd_have_openmp = 0;
    #endif
    """
    int gd_max_threads() noexcept nogil
    const int gd_have_openmp
    double *gd_malloc_lines(Py_ssize_t count) noexcept nogil
    void gd_free_lines(void *p) noexcept nogil

OPENMP = bool(gd_have_openmp)


def max_threads():
    """Number of threads a parallel pass uses by default (OpenMP's)."""
    return gd_max_threads()


cdef double *_alloc(Py_ssize_t count) except NULL:
    # count doubles of scratch (at least one) starting on a cache line, or
    # MemoryError; release with _free. Loops over vectors that straddle cache
    # lines run up to 1.25 x slower (measured: per-sample SGD at d = 100).
    cdef double *buf = gd_malloc_lines(count)
    if buf == NULL:
        raise MemoryError()
    return buf


cdef inline void _free(double *buf) noexcept nogil:
    # release what _alloc gave (NULL: nothing)
    if buf != NULL:
        gd_free_lines(buf)


# A block of parallel work: task(context, block, thread) does block `block`
# (0 <= block < n_blocks) as thread `thread` (0 <= thread < the team size);
# it may write only what belongs to that block, or to that thread's scratch.
ctypedef void (*BlockTask)(void *context, Py_ssize_t block, int thread) noexcept nogil


cdef void _run_blocks(BlockTask task, void *context, Py_ssize_t n_blocks,
                      int n_threads) noexcept nogil:
    # Run task on every block, over min(n_threads, n_blocks) threads. One
    # thread runs the blocks in order without starting a thread team (a team
    # costs more than a small problem's whole pass).
    cdef Py_ssize_t c
    if n_threads > n_blocks:
        n_threads = <int> n_blocks
    if n_threads <= 1:
        for c in range(n_blocks):
            task(context, c, 0)
    else:
        for c in prange(n_blocks, schedule="dynamic", num_threads=n_threads):
            task(context, c, threadid())
