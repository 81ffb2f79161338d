# cython: language_level=3
"""NumPy's ``Generator.shuffle`` of index arrays, the same numbers faster.

One job: ``shuffle_rows(bit_generator, orders)`` shuffles each row of an
(epochs, n) array of indices in place, row after row, leaving exactly the
orders and the generator state that ``Generator.permuted(orders, axis=1,
out=orders)`` (equivalently, ``Generator.shuffle`` of each row in turn) leaves.
tests/test_shuffle.py checks that equality for many n, seeds and every NumPy
bit generator.

NumPy's shuffle (``_shuffle_raw`` in numpy/random/_generator.pyx) is
Fisher-Yates from the top: for i = n-1 down to 1 it swaps element i with
element j = ``random_interval(bitgen, i)``, which masks draws to the
smallest all-ones mask covering i and rejects those above i. For i < 2**32
every draw is one ``next_uint32``; beyond, one ``next_uint64``.

The draws depend only on the generator, never on the array, so this module
takes them in batches of BATCH: first BATCH raw 32-bit draws (never more than
the positions left, each of which takes at least one: so it never draws one
NumPy would not), then, without a branch, the accepted ones among them (a
rejected draw's slot is overwritten by the next), then the swaps, the
elements to swap prefetched first. NumPy's loop pays a mispredicted branch
at most rejections and a cache miss at every swap of a long array: measured
on n = 1,000,000, 8.3 ms for NumPy, 4.2 to 4.9 ms here. Asked for two
threads, a row of at least PAIR_ROWS values is shuffled by two: one draws
(the partners of all positions, 4 bytes each, published as they come), the
other swaps right behind it; the same swaps in the same order, 3.25 ms.

Side effects: the rows of ``orders`` and the state of ``bit_generator``
(advanced under its lock). No signal is looked at, as NumPy looks at none.
Memory: 4 bytes per value of a row shuffled by two threads, for that row.
"""

from cpython.pycapsule cimport PyCapsule_GetPointer
from cython.parallel cimport parallel, threadid
from libc.stdint cimport uint32_t, uint64_t
from libc.stdlib cimport free, malloc


cdef extern from "numpy/random/bitgen.h":
    ctypedef struct bitgen_t:
        void *state
        uint64_t (*next_uint64)(void *st) noexcept nogil
        uint32_t (*next_uint32)(void *st) noexcept nogil


cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define GD_PREFETCH_WRITE(p) __builtin_prefetch((const void *)(p), 1, 3)
    #define GD_CLZ64(x) __builtin_clzll(x)
    #else
    #define GD_PREFETCH_WRITE(p) ((void)(p))
    static int GD_CLZ64(unsigned long long x) {
        int k = 0;
        while (!(x & 0x8000000000000000ULL)) { x <<= 1; k++; }
        return k;
    }
    #endif
    """
    void GD_PREFETCH_WRITE(const void *p) noexcept nogil
    int GD_CLZ64(unsigned long long x) noexcept nogil


cdef extern from *:
    """
    /* The hand-over between the two threads of a shuffle in two: a release
       store, an acquire load, a pause in a spin, the OpenMP team's size. */
    #if defined(__GNUC__) || defined(__clang__)
    #define GD_HAVE_ATOMICS 1
    #define GD_PUBLISH(at, value) __atomic_store_n((at), (value), __ATOMIC_RELEASE)
    #define GD_READ(at) __atomic_load_n((at), __ATOMIC_ACQUIRE)
    #else
    #define GD_HAVE_ATOMICS 0
    #define GD_PUBLISH(at, value) (*(volatile Py_ssize_t *)(at) = (value))
    #define GD_READ(at) (*(volatile const Py_ssize_t *)(at))
    #endif
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
    #define GD_PAUSE() __builtin_ia32_pause()
    #else
    #define GD_PAUSE() ((void)0)
    #endif
    #ifdef _OPENMP
    #include <omp.h>
    #define GD_HAVE_OPENMP 1
    #define GD_TEAM_SIZE() omp_get_num_threads()
    #else
    #define GD_HAVE_OPENMP 0
    #define GD_TEAM_SIZE() 1
    #endif
    """
    const int GD_HAVE_ATOMICS
    const int GD_HAVE_OPENMP
    void GD_PUBLISH(Py_ssize_t *at, Py_ssize_t value) noexcept nogil
    Py_ssize_t GD_READ(const Py_ssize_t *at) noexcept nogil
    void GD_PAUSE() noexcept nogil
    int GD_TEAM_SIZE() noexcept nogil


cdef enum:
    BATCH = 256      # raw draws taken at a time
    # rows of at least this many values are shuffled by two threads when
    # asked (shuffle_rows's n_threads): the team costs microseconds
    PAIR_ROWS = 1 << 16

cdef Py_ssize_t LARGEST_32 = 4294967295     # 2**32 - 1: beyond, 64-bit draws


cdef inline uint64_t _mask(uint64_t top) noexcept nogil:
    # the smallest 2**k - 1 >= top (top >= 1), as random_interval forms it
    return (<uint64_t> -1) >> GD_CLZ64(top)


cdef inline uint64_t _interval64(bitgen_t *bitgen, uint64_t top) noexcept nogil:
    # random_interval(bitgen, top) for top > 2**32 - 1: 64-bit draws
    cdef uint64_t mask = _mask(top)
    cdef uint64_t value = bitgen.next_uint64(bitgen.state) & mask
    while value > top:
        value = bitgen.next_uint64(bitgen.state) & mask
    return value


cdef Py_ssize_t _draw_batch(bitgen_t *bitgen, Py_ssize_t i, uint32_t *J) noexcept nogil:
    # The next draws of the shuffle at position i (1 <= i < 2**32): OUT J,
    # the partners of positions i, i - 1, ..., as many as one batch of raw
    # draws gives (returned; none when every draw of the batch was rejected,
    # which the caller's loop then simply repeats).
    cdef Py_ssize_t e, q, m = BATCH if i >= BATCH else i, found = 0
    cdef uint64_t raw[BATCH]
    cdef uint64_t mask, value
    for e in range(m):
        raw[e] = bitgen.next_uint32(bitgen.state)
    mask = _mask(<uint64_t> i)
    if mask == _mask(<uint64_t> (i - m + 1)):     # one mask for the batch
        for e in range(m):
            value = raw[e] & mask
            J[found] = <uint32_t> value
            q = value <= <uint64_t> i
            found += q
            i -= q
    else:
        for e in range(m):
            value = raw[e] & _mask(<uint64_t> i)
            J[found] = <uint32_t> value
            q = value <= <uint64_t> i
            found += q
            i -= q
    return found


cdef inline void _swap_down(Py_ssize_t *a, Py_ssize_t top, const uint32_t *J,
                            Py_ssize_t count) noexcept nogil:
    # IN/OUT a: swap positions top, top - 1, ..., top - count + 1 with their
    # partners J[0:count], the elements to swap prefetched first
    cdef Py_ssize_t q, j, t
    for q in range(count):
        GD_PREFETCH_WRITE(a + J[q])
    for q in range(count):
        j = J[q]
        t = a[j]
        a[j] = a[top - q]
        a[top - q] = t


cdef Py_ssize_t _shuffle_top(bitgen_t *bitgen, Py_ssize_t *a, Py_ssize_t n) noexcept nogil:
    # The positions of a (IN/OUT) above 2**32 - 1, one 64-bit draw at a time;
    # returns the position to go on from.
    cdef Py_ssize_t i = n - 1, j, t
    while i > LARGEST_32:
        j = <Py_ssize_t> _interval64(bitgen, <uint64_t> i)
        t = a[j]
        a[j] = a[i]
        a[i] = t
        i -= 1
    return i


cdef void _shuffle(bitgen_t *bitgen, Py_ssize_t *a, Py_ssize_t n) noexcept nogil:
    # a (IN/OUT, n values): Fisher-Yates from the top, NumPy's draws, a batch
    # of draws then its swaps
    cdef Py_ssize_t i = _shuffle_top(bitgen, a, n), found
    cdef uint32_t J[BATCH]
    while i >= 1:
        found = _draw_batch(bitgen, i, J)
        _swap_down(a, i, J, found)
        i -= found


cdef void _draw_all(bitgen_t *bitgen, Py_ssize_t n, uint32_t *J,
                    Py_ssize_t *drawn) noexcept nogil:
    # The first thread of a shuffle in two (n - 1 <= 2**32 - 1): OUT J[0 : n -
    # 1], the partners of positions n - 1 down to 1, publishing after each
    # batch how many are there (*drawn).
    cdef Py_ssize_t i = n - 1, done = 0, found
    while i >= 1:
        found = _draw_batch(bitgen, i, J + done)
        done += found
        i -= found
        GD_PUBLISH(drawn, done)


cdef void _swap_all(Py_ssize_t *a, Py_ssize_t n, const uint32_t *J,
                    const Py_ssize_t *drawn) noexcept nogil:
    # The second thread: the swaps of a (IN/OUT), in order, as their
    # partners are drawn
    cdef Py_ssize_t done = 0, ready
    while done < n - 1:
        ready = GD_READ(drawn)
        if ready == done:
            GD_PAUSE()
            continue
        _swap_down(a, n - 1 - done, J + done, ready - done)
        done = ready


cdef bint _shuffle_in_two(bitgen_t *bitgen, Py_ssize_t *a, Py_ssize_t n,
                          uint32_t *J) noexcept nogil:
    # _shuffle with the draws on one thread and the swaps on another, which
    # follows: the same draws and swaps in the same order, so the same
    # result. The partners are kept for the whole row (J: n - 1 entries of
    # scratch), not in a ring: rewriting a ring's lines, which the other core
    # has just read, made the drawing thread wait on that core (measured:
    # 3.8 ms against 3.25 ms for n = 1,000,000). False (nothing done) when
    # no second thread could be had.
    cdef Py_ssize_t drawn = 0
    cdef Py_ssize_t *shared = &drawn
    cdef bint paired = False
    cdef bint *pairing = &paired
    with parallel(num_threads=2):
        if threadid() == 0:
            if GD_TEAM_SIZE() == 2:
                pairing[0] = True
                _draw_all(bitgen, n, J, shared)
        elif threadid() == 1:
            if GD_TEAM_SIZE() == 2:
                _swap_all(a, n, J, shared)
    return paired


def shuffle_rows(bit_generator, Py_ssize_t[:, ::1] orders not None,  # IN/OUT (epochs, n)
                 int n_threads=1):
    """Shuffle each row of ``orders`` in place, row after row, exactly as
    ``numpy.random.Generator(bit_generator).shuffle`` would each in turn.

    Parameters
    ----------
    bit_generator : numpy.random.BitGenerator
        Advanced under its lock, as NumPy advances it.
    orders : numpy.ndarray
        C-contiguous ``intp`` array of shape (epochs, n), shuffled in place.
    n_threads : int
        With 2 or more and rows of at least PAIR_ROWS, each row is shuffled
        by two threads (the draws on one, the swaps on the other, following
        it): the same result, sooner.
    """
    cdef bitgen_t *bitgen = <bitgen_t *> PyCapsule_GetPointer(
        bit_generator.capsule, "BitGenerator")
    cdef Py_ssize_t row, n = orders.shape[1]
    cdef uint32_t *J = NULL             # the partners of a row shuffled in two
    if n < 2:
        return
    if (n_threads >= 2 and n >= PAIR_ROWS and n - 1 <= LARGEST_32 and GD_HAVE_ATOMICS
            and GD_HAVE_OPENMP):
        J = <uint32_t *> malloc((n - 1) * sizeof(uint32_t))    # NULL: one thread
    try:
        with bit_generator.lock, nogil:
            for row in range(orders.shape[0]):
                if not (J != NULL and _shuffle_in_two(bitgen, &orders[row, 0], n, J)):
                    _shuffle(bitgen, &orders[row, 0], n)
    finally:
        free(J)
