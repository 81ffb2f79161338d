# What gdcore's compiled modules share (included by kernels.pxi and
# landscape.pxi): OpenMP, scratch memory, running a task over fixed blocks of
# work on a team of threads, and watching for Ctrl-C.
#
# Blocks are the unit of parallel work everywhere: a kernel cuts its work into
# a fixed number of blocks that depends on the problem only, never on the
# number of threads, gives each block its own output, and combines the outputs
# in block order afterwards. So every result is bit-for-bit the same for any
# thread count, and a thread the OS preempts does not hold the others up
# (blocks are handed out dynamically).

from cython.parallel cimport prange, threadid

from threading import main_thread

cdef extern from "Python.h":
    unsigned long PyThread_get_thread_ident() nogil

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

cdef extern from *:
    """
    /* What a long call watches for Ctrl-C (see _interrupted): stop is written
       by the calling thread and read by the others of its team. */
    typedef struct { int watch; volatile int stop; } gd_watch;
    #if defined(__GNUC__) || defined(__clang__)
    #define GD_UNLIKELY(x) __builtin_expect(!!(x), 0)
    #define GD_COLD __attribute__((cold, noinline))
    #else
    #define GD_UNLIKELY(x) (x)
    #define GD_COLD
    #endif
    /* Take the GIL, run the pending signal handlers, set stop if one raised
       (its exception stays pending). Out of line and marked cold: the loops
       that call it rarely keep their registers for their own work. */
    static GD_COLD int gd_run_signal_handlers(gd_watch *watch) {
        PyGILState_STATE gil = PyGILState_Ensure();
        if (PyErr_CheckSignals() != 0)
            watch->stop = 1;
        PyGILState_Release(gil);
        return watch->stop;
    }
    """
    ctypedef struct gd_watch:
        int watch           # the call runs on the main thread: look at signals
        int stop            # a signal's handler raised: every loop stops
    bint GD_UNLIKELY(bint condition) noexcept nogil
    int gd_run_signal_handlers(gd_watch *watch) noexcept nogil

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


# ---------------------------------------------------------------------------
# Ctrl-C
# ---------------------------------------------------------------------------
# The GIL is released for a whole call, and Python runs its signal handlers
# only between bytecodes. So the loops of a call made from the main thread
# stop every CHECK_BYTES of X read (about a millisecond) and, on the calling
# thread only, take the GIL for a moment to run the pending handlers
# (PyErr_CheckSignals). When one raises (KeyboardInterrupt for Ctrl-C), the
# loops stop, leave their outputs unchanged, and the entry point re-raises
# that exception (_raise_pending). A call from another thread does not look:
# Python delivers signals to the main thread only.

cdef enum:
    CHECK_BYTES = 1 << 22

cdef unsigned long _MAIN_THREAD = main_thread().ident


cdef gd_watch _watch() noexcept:
    # (with the GIL) what a call about to release it watches
    cdef gd_watch watch
    watch.watch = PyThread_get_thread_ident() == _MAIN_THREAD
    watch.stop = 0
    return watch


cdef inline Py_ssize_t _check_every(Py_ssize_t row_doubles) noexcept nogil:
    # rows between two looks at signals for rows of row_doubles doubles of work
    cdef Py_ssize_t rows = CHECK_BYTES // (8 * (row_doubles if row_doubles > 0 else 1))
    return rows if rows > 0 else 1


cdef inline int _interrupted(gd_watch *watch, int thread) noexcept nogil:
    # True when the call must stop: a signal's handler raised, its exception
    # pending. Only thread 0 (the calling thread) runs the handlers.
    if watch.stop:
        return 1
    if watch.watch and thread == 0:
        return gd_run_signal_handlers(watch)
    return 0


cdef int _raise_pending() except -1:
    # Raise the exception a signal's handler left pending (Cython propagates
    # an error when an `except -1` function returns -1 with one set).
    return -1
