# Compiled kernels of gdcore: fused least-squares sums and the epoch loops.
#
# Design
# ------
# The model has k outputs, ``Y_hat = X @ W + b`` (k = 1: ``y_hat = X @ w + b``).
# The loss of a batch of m rows is ``a * sum_c sum_i s_i * r[i, c]**2 / m`` with
# ``r = X @ W + b - Y``, ``s`` the sample weights (1 without) and ``a`` the loss
# factor (1 for ``mse``, 0.5 for ``half_mse``), so ``dL/dW[:, c] = (2a/m) *
# X.T @ (s * r[:, c])`` and ``dL/db[c] = (2a/m) * sum(s * r[:, c])``: each
# output learns what it would learn alone.
#
# Layouts. X (n, d) is C-contiguous float64 or float32 (each float made a
# double, exactly, as the arithmetic loads it: Element, in the full-data sums
# and the mini-batch loop; into a scratch row as the row is read elsewhere:
# _training_row); Y (n, k) is C-contiguous float64; a 1-D y arrives as
# (n, 1). The parameters are one flat vector laid out *by output*: output
# c's d weights contiguous at c * d, then the k intercepts at k * d (for
# k = 1, simply w then b). The training state is one (N_STATE_ROWS, (d + 1) * k)
# array whose rows are laid out like the parameters: the parameters, the sum
# of the epoch's step gradients (for the gradient norm), the optimizer's
# buffers (momentum or first moment, squares, amsgrad's maximum or centred
# RMSprop's mean), the cumulative L1 penalty applied, and the running mean of
# the iterates (STATE_ROWS names them; a row the rule does not use is left
# alone). One number travels beside it: l1_total, the cumulative L1 total.
#
# Loops. Every loop walks rows of X once: for each row it forms the k
# residuals (one _dot per output) and, while the row is still in L1 cache,
# adds ``s * r * x`` to the gradient. Rows are visited in the order of an
# index array (possibly a subset of the rows, the rest held out), or
# 0..n-1, so shuffling never copies X; the row 4 KiB ahead in the visiting
# order is prefetched (16 KiB ahead, into L2, with its targets and weight,
# when shuffled: GD_PREFETCH_SAMPLE). Three epoch loops, chosen by the batch
# size B:
#
# * ``B == 1``  per-sample SGD: one update after every row (_sgd_rows);
# * ``B >= n``  full batch: one update per epoch from the sums over all rows,
#   cut into fixed row blocks that depend on n only, summed in parallel
#   (OpenMP, when built with it) and added up in block order, so the result
#   is bit-for-bit the same for any thread count (_full_sums);
# * otherwise   mini-batches of B rows; the last one may be smaller and uses
#   its own size in the average (_minibatch_epoch).
#
# Every step ends in the same update rule (_rule_steps): the penalty (L2, L1)
# added to the gradient, the epoch's gradient sum, the optimizer's step
# (SGD with PyTorch-style momentum or Nesterov, Adam, AdamW, Adagrad,
# RMSprop), the proximal or cumulative L1 after it, then the running average
# of the iterates.
#
# Specialisation. One mechanism: fused types over empty tag structs (the
# update rule, the penalty, one or many outputs, rows of doubles or of floats
# used as they are or made as read; Element, the type a row's values have
# where the arithmetic reads them, follows from the rows). A run-time switch picks
# the specialisation once per call (the per-sample loop) or once per step
# (the update of a batch step); inside a specialisation the choice is a
# compile-time constant, so it holds only its own arithmetic. The per-sample
# loop is specialised whole, because its time is the chain from one row's
# update to the next row's residual: each copy keeps the rule in locals and
# has no branch on an option. In the one-output copies k is the literal 1,
# so the residual never leaves a register.
#
# Standardizing. With ``standardize`` (fit's standardize=True) the loops
# train on the rows (x - center) * inv_scale, each formed in a scratch row of
# d doubles by the row's first dot product (_dot_read; _first_dot per
# sample), which the rest of the row's work reads: the parameters, the update rule
# and the penalties are those of the standardized problem, and the Python
# layer maps them back to the units of X. Without it, the full-data sums and
# the mini-batch loop run their copies for rows as they are (RowsTag: doubles,
# or floats converted in the arithmetic); the per-sample loop tests one
# predictable branch per row.
#
# Memory. No array of size n is allocated. Scratch: k + d doubles (per-sample
# loop), 2k + k*d + d (mini-batch), and one partial-sum row of 1 + 2k + k*d
# doubles and a standardized row, padded to cache lines, per row block (full
# batch; at most MAX_BLOCKS blocks).
#
# Whole epochs. run_epochs runs a block of epochs of one rate in one call:
# each epoch's zeroed gradient sum, loop, loss, gradient norm (_norm, the
# fixed order the training loop's norm uses too) and early stopping (the
# training loop's comparisons, _converged); an epoch whose loss or
# parameters stop being finite is undone from a copy of the state taken at
# its start, and the call returns for the Python layer to run it.
#
# The GIL is released for the whole of each call (an epoch, or a pass over
# X). A call from the main thread looks at signals every few MB of X read
# (common.pxi): when a handler raises (Ctrl-C), the call stops and re-raises,
# leaving its outputs and the training state as they were when it started.
#
# Where inputs are checked: nowhere here. The Python layer
# (``python/gdcore/_validation.py``) checks shapes, dtypes, contiguity and
# hyper-parameters once, before any kernel runs. Non-finite input values are
# not searched for up front: they make a batch loss non-finite, the loop stops
# at that batch without applying its update and reports it, and only then
# does the Python layer look for the culprit (bad input -> ValueError,
# otherwise divergence -> DivergenceError).

include "common.pxi"

from libc.float cimport DBL_MAX
from libc.math cimport floor, log, pow, sqrt
from libc.string cimport memcpy

cdef extern from *:
    """
    #if defined(__GNUC__) || defined(__clang__)
    #define GD_PREFETCH(p) __builtin_prefetch((const void *)(p), 0, 3)
    #define GD_PREFETCH_L2(p) __builtin_prefetch((const void *)(p), 0, 2)
    #else
    #define GD_PREFETCH(p) ((void)(p))
    #define GD_PREFETCH_L2(p) ((void)(p))
    #endif
    /* Prefetch the cache lines of a row of d doubles (it need not start on a
       line: its lines, then its last one), into L1 or, with to_l2, into L2
       only. A macro, not a function: GCC takes a function that only
       prefetches for one without effects and drops calls to it unless it
       happened to inline it first. */
    #define GD_PREFETCH_ROW(row, d, to_l2) do {                               \
        const double *gd_row_ = (row);                                         \
        Py_ssize_t gd_d_ = (d), gd_j_;                                         \
        if (to_l2) {                                                           \
            for (gd_j_ = 0; gd_j_ < gd_d_; gd_j_ += 8)  /* 8 doubles a line */ \
                GD_PREFETCH_L2(gd_row_ + gd_j_);                               \
            GD_PREFETCH_L2(gd_row_ + gd_d_ - 1);                               \
        } else {                                                               \
            for (gd_j_ = 0; gd_j_ < gd_d_; gd_j_ += 8)  /* 8 doubles a line */ \
                GD_PREFETCH(gd_row_ + gd_j_);                                  \
            GD_PREFETCH(gd_row_ + gd_d_ - 1);                                  \
        }                                                                      \
    } while (0)
    /* Prefetch what sample i needs: its row of X (row_doubles doubles from
       X + i * row_bytes) as GD_PREFETCH_ROW does, and, when the samples are
       visited out of order (shuffled), its k targets in Y and its weight in
       w (either NULL for none) into L2 too: the hardware prefetcher finds no
       pattern in them either, and Y[i] starts the chain of the row's
       residual (without it the shuffled per-sample epoch at d = 10 waited
       on Y more than on X). */
    #define GD_PREFETCH_SAMPLE(X, row_bytes, row_doubles, Y, k, w, i, shuffled) do { \
        Py_ssize_t gd_i_ = (i);                                                \
        const double *gd_y_ = (Y), *gd_w_ = (w);                               \
        GD_PREFETCH_ROW((const double *) ((X) + gd_i_ * (row_bytes)),         \
                        (row_doubles), (shuffled));                            \
        if (shuffled) {                                                        \
            if (gd_y_ != NULL) {                                               \
                GD_PREFETCH_L2(gd_y_ + gd_i_ * (k));                           \
                GD_PREFETCH_L2(gd_y_ + gd_i_ * (k) + (k) - 1);                 \
            }                                                                  \
            if (gd_w_ != NULL)                                                 \
                GD_PREFETCH_L2(gd_w_ + gd_i_);                                 \
        }                                                                      \
    } while (0)
    /* A pointer to function f that the C compiler cannot see through (an
       empty asm that "changes" it), so a call through it stays a call: f is
       compiled as a function of its own, not inlined where it is called. */
    #if defined(__GNUC__) || defined(__clang__)
    #define GD_OPAQUE_LOOP(f) \
        ({ __typeof__(&(f)) gd_f_ = &(f); __asm__("" : "+r"(gd_f_)); gd_f_; })
    #else
    #define GD_OPAQUE_LOOP(f) (&(f))
    #endif
    /* Which instruction sets the running CPU (and OS) supports: 0 baseline,
       1 x86-64-v3 (AVX2, FMA), 2 x86-64-v4 (AVX-512 F/VL/BW/DQ/CD). */
    static int gd_cpu_level(void) {
    #if (defined(__GNUC__) || defined(__clang__)) && (defined(__x86_64__) || defined(__i386__))
        __builtin_cpu_init();
        if (!(__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")))
            return 0;
        if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl")
                && __builtin_cpu_supports("avx512bw") && __builtin_cpu_supports("avx512dq")
                && __builtin_cpu_supports("avx512cd"))
            return 2;
        return 1;
    #else
        return 0;
    #endif
    }
    """
    void GD_PREFETCH_SAMPLE(const char *X, Py_ssize_t row_bytes, Py_ssize_t row_doubles,
                            const double *Y, Py_ssize_t k, const double *w, Py_ssize_t i,
                            bint shuffled) noexcept nogil
    int gd_cpu_level() noexcept nogil

cdef enum:
    # Fixed row blocking of the full-data pass: at most MAX_BLOCKS partial
    # sums, each over at least MIN_BLOCK_ROWS rows. Depends on n only, never on
    # the number of threads.
    MAX_BLOCKS = 64
    MIN_BLOCK_ROWS = 1024
    # Doubles in a 64-byte cache line: partial-sum rows are padded to whole
    # lines plus one line of gap, so two threads never write to the same line.
    LINE_DOUBLES = 8
    # The row loops prefetch the row this many bytes of X ahead in the
    # visiting order (at least one row): short rows need more rows in flight.
    # In order, into L1: the hardware prefetcher alone left the per-sample
    # epoch at d = 100 1.6 x slower (measured; 2 KiB and 16 KiB were slower
    # too). Shuffled, further ahead and into L2 only: rows from random places
    # take longer to arrive, and L1 has few slots for lines in flight
    # (measured at d = 100: 10 % faster than 4 KiB into L1).
    PREFETCH_BYTES = 4096
    SHUFFLED_PREFETCH_BYTES = 16384

cdef enum:
    # Rows of the training state (see the design comment)
    PARAMS = 0
    GRAD_SUM = 1
    VELOCITY = 2        # momentum buffer; Adam's first moment
    SQUARE_AVG = 3      # Adam's second moment, Adagrad's sum of squares, RMSprop's mean square
    AUX = 4             # Adam with amsgrad: the largest second moment; centred RMSprop:
                        # the mean gradient
    L1_APPLIED = 5      # cumulative L1: the penalty applied to each parameter so far
    AVERAGE = 6
    N_STATE_ROWS = 7

#: Names of the training state's rows, in order.
STATE_ROWS = ("params", "grad_sum", "velocity", "square_avg", "aux", "l1_applied",
              "average")

cdef enum:
    # How a step moves the parameters (g: the gradient, penalty included)
    PLAIN_RULE = 0        # p -= lr * g
    MOMENTUM_RULE = 1     # v = cv * v + g;       p = (p - a * v_old) - b * g
    DAMPENED_RULE = 2     # v = cv * v + cg * g;  p = (p - a * v_old) - b * g
    ADAM_RULE = 3         # Adam, AdamW (decoupled decay), amsgrad (PyTorch's)
    ADAGRAD_RULE = 4      # Adagrad (PyTorch's)
    RMSPROP_RULE = 5      # RMSprop, centred or not, with or without momentum (PyTorch's)

    # What the penalty does: nothing; l2 * p added to the gradient; and
    # l1 * sign(p) too (the subgradient); or l2 * p added, then after the step
    # soft-thresholding by lr * l1 (proximal) or Tsuruoka et al.'s cumulative
    # L1 (as scikit-learn's SGDRegressor).
    NO_PENALTY = 0
    L2_PENALTY = 1
    ELASTIC_PENALTY = 2
    PROXIMAL_PENALTY = 3
    CUMULATIVE_PENALTY = 4


def cpu_level():
    """Best instruction-set level of the running CPU: 0 baseline, 1 AVX2+FMA, 2 AVX-512."""
    return gd_cpu_level()


# ---------------------------------------------------------------------------
# The rule of a run, and what a loop reads and writes
# ---------------------------------------------------------------------------

cdef struct RuleC:
    double loss_factor        # a in L = a * mean(r**2)
    double two_a              # 2 * a
    double power              # per-step decay lr / (t + 1)**power (0: none)
    double l2, l1             # penalty l2/2 * |w|^2 + l1 * |w|_1
    double momentum, dampening
    bint nesterov, decay_bias, fit_intercept
    double beta1, beta2, eps  # Adam (beta1, beta2, eps), Adagrad (eps), RMSprop (eps)
    double beta1_gone, beta2_gone  # Adam: from these steps s, 1 - beta**s is exactly 1
    double lr_decay           # Adagrad: lr / (1 + t * lr_decay)
    double alpha              # RMSprop: the mean square's decay
    bint amsgrad, decoupled   # Adam: amsgrad; AdamW: weight decay decoupled
    bint centered             # RMSprop: centred
    Py_ssize_t average_from   # first averaged global step, or -1: no averaging
    Py_ssize_t batch_size     # 1: per sample; >= n: full batch
    int n_threads             # of the full-data pass
    int kind                  # PLAIN_RULE, ..., RMSPROP_RULE
    int penalty               # NO_PENALTY, ..., CUMULATIVE_PENALTY


cdef double _power_gone(double beta):
    # The least step s (a whole number, as a double) from which
    # 1.0 - pow(beta, s) is exactly 1.0 for every later s, for 0 <= beta < 1
    # (DBL_MAX otherwise): where pow(beta, s) <= 2**-56. Then the exact
    # difference lies above the midpoint 1 - 2**-54 between 1 and the double
    # below it, with room for pow's error (under 1 ulp), so it rounds to 1;
    # the true power falls with s, so it stays so. Found by checking pow
    # itself, from the estimate log(2**-56) / log(beta).
    cdef double tiny = 2.0 ** -56, s
    if not 0.0 <= beta < 1.0:
        return DBL_MAX
    if beta == 0.0:
        return 1.0
    s = max(1.0, floor(log(tiny) / log(beta)) - 2.0)
    while pow(beta, s) > tiny:
        s += 1.0
    return s


cdef class Rule:
    """The update rule of one training run, built once per run (read-only).

    ``Rule(config, batch_size, n_threads)`` reads the validated options of
    ``config`` (``gdcore._options.Config``): ``loss_factor``, ``power`` (of
    the schedule's per-step decay), ``weight_decay``, ``l1``, ``l1_method``,
    ``decay_bias``, ``momentum``, ``dampening``, ``nesterov``,
    ``fit_intercept``, ``average_from`` and the optimizer's numbers
    (``config.optimizer.rule_numbers()``); ``batch_size`` is the resolved
    batch size and ``n_threads`` the threads of the full-data pass.
    """
    cdef RuleC c

    def __init__(self, config, Py_ssize_t batch_size, int n_threads):
        numbers = config.optimizer.rule_numbers()
        self.c.loss_factor = config.loss_factor
        self.c.two_a = 2.0 * self.c.loss_factor
        self.c.power = config.power
        self.c.l2 = config.weight_decay
        self.c.l1 = config.l1
        self.c.decay_bias = config.decay_bias
        self.c.momentum = config.momentum
        self.c.dampening = config.dampening
        self.c.nesterov = config.nesterov
        self.c.fit_intercept = config.fit_intercept
        self.c.average_from = config.average_from
        self.c.batch_size = batch_size
        self.c.n_threads = n_threads if n_threads > 0 else 1
        self.c.beta1 = numbers.get("beta1", 0.0)
        self.c.beta2 = numbers.get("beta2", 0.0)
        self.c.eps = numbers.get("eps", 0.0)
        self.c.lr_decay = numbers.get("lr_decay", 0.0)
        self.c.alpha = numbers.get("alpha", 0.0)
        self.c.amsgrad = numbers.get("amsgrad", False)
        self.c.decoupled = numbers.get("decoupled", False)
        self.c.centered = numbers.get("centered", False)
        self.c.beta1_gone = _power_gone(self.c.beta1)
        self.c.beta2_gone = _power_gone(self.c.beta2)
        kind = numbers["kind"]
        if kind == "adam":
            self.c.kind = ADAM_RULE
        elif kind == "adagrad":
            self.c.kind = ADAGRAD_RULE
        elif kind == "rmsprop":
            self.c.kind = RMSPROP_RULE
        elif self.c.momentum == 0.0:
            self.c.kind = PLAIN_RULE
        else:
            self.c.kind = DAMPENED_RULE if self.c.dampening != 0.0 else MOMENTUM_RULE
        if self.c.l1 != 0.0:
            self.c.penalty = {"subgradient": ELASTIC_PENALTY, "proximal": PROXIMAL_PENALTY,
                              "cumulative": CUMULATIVE_PENALTY}[config.l1_method]
        else:
            self.c.penalty = L2_PENALTY if self.c.l2 != 0.0 else NO_PENALTY

    @property
    def batch_size(self):
        """The resolved batch size."""
        return self.c.batch_size


cdef struct Problem:
    # The data an epoch reads
    const char *X             # rows of d features: doubles, or floats (single)
    Py_ssize_t row_bytes      # bytes of a row of X
    bint single               # X holds float32 values, each made a double as read
    const double *Y           # rows of k targets, or NULL (sums only: targets 0)
    const double *weight      # sample weights (mean 1), or NULL
    const Py_ssize_t *order   # rows to visit, or NULL: 0 .. n-1
    const double *center      # standardize: the features' centres (d), or NULL
    const double *inv_scale   # standardize: 1 / the features' scales (d; 0 if constant)
    Py_ssize_t n, d, k        # rows visited, features, outputs
    gd_watch *watch           # Ctrl-C (see common.pxi)


cdef struct State:
    # The rows of the training state (see the design comment)
    double *params
    double *grad_sum
    double *velocity
    double *square_avg
    double *aux
    double *l1_applied
    double *average
    double *l1_total          # cumulative L1: the total penalty u so far (one double)


cdef struct EpochOutcome:
    Py_ssize_t steps      # updates applied
    double loss_sum       # the epoch's running sum of batch losses, each over
                          # the loss factor (continued from call to call)
    double part           # the sum over this call's steps only (per sample: see
                          # _sgd_steps)
    bint nonfinite        # a batch loss was not finite; that batch was not applied
    bint interrupted      # a signal's handler raised; the state is not to be kept


# Tags: the fused types below have one member per choice, and a function
# that takes (NULL) pointers to them is compiled once per combination.
cdef struct PlainTag:
    char unused
cdef struct MomentumTag:
    char unused
cdef struct DampenedTag:
    char unused
cdef struct AdamTag:
    char unused
cdef struct AdagradTag:
    char unused
cdef struct RMSpropTag:
    char unused
cdef struct NoPenaltyTag:
    char unused
cdef struct L2Tag:
    char unused
cdef struct ElasticTag:
    char unused
cdef struct ProximalTag:
    char unused
cdef struct CumulativeTag:
    char unused
cdef struct AnyPenaltyTag:      # the penalty read at run time (AdaptiveStep.penalty)
    char unused
cdef struct OneOutput:
    char unused
cdef struct ManyOutputs:
    char unused
cdef struct AsIsRows:           # X's rows are doubles used as they are
    char unused
cdef struct SingleRows:         # X's rows are floats, made doubles in the arithmetic
    char unused
cdef struct MadeRows:           # rows standardized as read (and kept in a scratch row)
    char unused

ctypedef fused RuleTag:
    PlainTag
    MomentumTag
    DampenedTag
    AdamTag
    AdagradTag
    RMSpropTag

# The SGD rules (plain, momentum, dampened) are compiled once per penalty;
# the adaptive ones (Adam, Adagrad, RMSprop), whose time per parameter is a
# square root and a division, read the penalty at run time (AnyPenaltyTag):
# the per-sample loop then has 5 x 3 + 3 copies per number of outputs, not 6 x 5.
ctypedef fused PenaltyTag:
    NoPenaltyTag
    L2Tag
    ElasticTag
    ProximalTag
    CumulativeTag
    AnyPenaltyTag

ctypedef fused OutputsTag:
    OneOutput
    ManyOutputs

# The full-data sums and the mini-batch loop are compiled once for rows of
# doubles used as they are, once for rows of floats (each made a double as
# the arithmetic loads it: Element) and once for rows made as they are read
# (standardized: _read), which the first dot product of the row keeps in a
# scratch row for the row's later passes (_dot_read): a branch per row there
# cost the mini-batch epoch at d = 10 10 %; the scratch row made in a pass
# of its own put a standardized mini-batch epoch (B = 32, d = 100) at
# 31.1-36.1 ms, made by the dot product at 27.6-30.0 ms (plain 25-26 ms).
ctypedef fused RowsTag:
    AsIsRows
    SingleRows
    MadeRows

# What a row of X holds where the arithmetic reads it directly: doubles, or
# floats that each load makes a double (exactly: the same bits as a float64
# copy of X, without writing one, even of a row).
ctypedef fused Element:
    float
    double


# ---------------------------------------------------------------------------
# Per-row helpers
# ---------------------------------------------------------------------------

cdef inline double _read(const RowsTag *rows_tag, const Element *x, const double *center,
                         const double *inv_scale, Py_ssize_t j) noexcept nogil:
    # x[j] as training reads it: made a double (exactly), and for MadeRows
    # standardized, (x[j] - center[j]) * inv_scale[j]; other tags read
    # neither center nor inv_scale.
    cdef double v = x[j]
    if RowsTag is MadeRows:
        v = (v - center[j]) * inv_scale[j]
    return v


cdef inline double _dot_read(const RowsTag *rows_tag, const Element *x,
                             const double *center, const double *inv_scale, double *z,
                             const double *w, Py_ssize_t d) noexcept nogil:
    # The dot product of the row x as read (_read) with w; MadeRows: OUT
    # z[0:d], the row as read, kept by the same pass for the row's later ones
    # (all eight values of a step are read before they are stored, which
    # keeps the step one vector of loads, one of stores, one of products).
    # Eight independent partial sums let the compiler keep several additions in
    # flight (and vectorise them) without -ffast-math, which would break NaN
    # detection; the sum order is fixed, so results are reproducible.
    cdef double s0 = 0.0, s1 = 0.0, s2 = 0.0, s3 = 0.0
    cdef double s4 = 0.0, s5 = 0.0, s6 = 0.0, s7 = 0.0
    cdef double v0, v1, v2, v3, v4, v5, v6, v7
    cdef Py_ssize_t j = 0
    cdef Py_ssize_t d8 = d - d % 8
    while j < d8:
        v0 = _read(rows_tag, x, center, inv_scale, j)
        v1 = _read(rows_tag, x, center, inv_scale, j + 1)
        v2 = _read(rows_tag, x, center, inv_scale, j + 2)
        v3 = _read(rows_tag, x, center, inv_scale, j + 3)
        v4 = _read(rows_tag, x, center, inv_scale, j + 4)
        v5 = _read(rows_tag, x, center, inv_scale, j + 5)
        v6 = _read(rows_tag, x, center, inv_scale, j + 6)
        v7 = _read(rows_tag, x, center, inv_scale, j + 7)
        if RowsTag is MadeRows:
            z[j] = v0
            z[j + 1] = v1
            z[j + 2] = v2
            z[j + 3] = v3
            z[j + 4] = v4
            z[j + 5] = v5
            z[j + 6] = v6
            z[j + 7] = v7
        s0 += v0 * w[j]
        s1 += v1 * w[j + 1]
        s2 += v2 * w[j + 2]
        s3 += v3 * w[j + 3]
        s4 += v4 * w[j + 4]
        s5 += v5 * w[j + 5]
        s6 += v6 * w[j + 6]
        s7 += v7 * w[j + 7]
        j += 8
    while j < d:
        v0 = _read(rows_tag, x, center, inv_scale, j)
        if RowsTag is MadeRows:
            z[j] = v0
        s0 += v0 * w[j]
        j += 1
    if d8 == 0:
        # Fewer than 8 terms: s1..s7 are +0.0, and the sum below is then
        # exactly s0 + 0.0, which is s0: s0 began as +0.0, so it is never
        # -0.0. Three additions fewer on the chain of a short row's
        # per-sample step.
        return s0
    return ((s0 + s1) + (s2 + s3)) + ((s4 + s5) + (s6 + s7))


cdef inline double _dot(const Element *x, const double *w, Py_ssize_t d) noexcept nogil:
    # x . w (_dot_read of a row read as it is)
    return _dot_read(<AsIsRows *> NULL, x, NULL, NULL, NULL, w, d)


cdef inline void _axpy(double alpha, const Element *x, double *out,
                       Py_ssize_t d) noexcept nogil:
    # OUT out += alpha * x
    cdef Py_ssize_t j
    for j in range(d):
        out[j] += alpha * x[j]


cdef inline Py_ssize_t _prefetch_distance(Py_ssize_t d, const Py_ssize_t *order) noexcept nogil:
    # rows ahead to prefetch: see PREFETCH_BYTES
    cdef Py_ssize_t ahead = PREFETCH_BYTES if order == NULL else SHUFFLED_PREFETCH_BYTES
    ahead = ahead // (d * <Py_ssize_t> sizeof(double))
    return ahead if ahead > 0 else 1


cdef inline Py_ssize_t _row(const Py_ssize_t *order, Py_ssize_t q) noexcept nogil:
    return order[q] if order != NULL else q


cdef inline const double *_training_row(const char *row, bint single, Py_ssize_t d,
                                        double *z) noexcept nogil:
    # A row of X as doubles: the row itself, or z (OUT, d doubles) holding its
    # floats made doubles (single; exact) as the row is read. X itself is
    # never copied or changed. (A standardized row is made by its first dot
    # product: _dot_read, _first_dot.)
    cdef Py_ssize_t j
    cdef const float *f
    if single:
        f = <const float *> row
        for j in range(d):
            z[j] = f[j]
        return z
    return <const double *> row


cdef inline double _first_dot(const char *row, bint single, const double *center,
                              const double *inv_scale, Py_ssize_t d, double *z,
                              const double *w, const double **x) noexcept nogil:
    # The dot product of a row as training reads it with w, and (OUT *x) that
    # row (_training_row; z: OUT, d doubles, its scratch row): a standardized
    # row is made into z by this dot product (_dot_read), not by a pass of
    # its own (a standardized epoch per sample at d = 100: 33.7-34.9 ->
    # 32.3-33.5 ms).
    if center == NULL:
        x[0] = _training_row(row, single, d, z)
        return _dot(x[0], w, d)
    x[0] = z
    if single:
        return _dot_read(<MadeRows *> NULL, <const float *> row, center, inv_scale, z, w, d)
    return _dot_read(<MadeRows *> NULL, <const double *> row, center, inv_scale, z, w, d)


cdef inline double _row_sums(const RowsTag *rows_tag, const Element *x,
                             const double *center, const double *inv_scale, double *z,
                             const double *params, const double *y, double s, Py_ssize_t d,
                             Py_ssize_t k, double *R, double *G) noexcept nogil:
    # One row's part of the batch sums: for each output c, r = x . W_c + b_c
    # - y[c] (y NULL: no target), R[c] += s * r and G[c*d : (c+1)*d] += s * r
    # * x (IN/OUT). Returns sum_c s * r**2. x is the row as stored, read as
    # rows_tag says (_read); MadeRows: the first dot product makes the
    # standardized row into z (OUT, d doubles), and the rest read it there.
    cdef Py_ssize_t c
    cdef double r, sr, sq = 0.0
    for c in range(k):
        if RowsTag is MadeRows and c > 0:
            r = _dot(z, params + c * d, d)
        else:
            r = _dot_read(rows_tag, x, center, inv_scale, z, params + c * d, d)
        r = r + params[k * d + c]
        if y != NULL:
            r = r - y[c]
        sr = r * s
        sq += sr * r
        R[c] += sr
        if RowsTag is MadeRows:
            _axpy(sr, z, G + c * d, d)
        else:
            _axpy(sr, x, G + c * d, d)
    return sq


cdef inline double _sample_sums(const RowsTag *rows_tag, const Problem *p, Py_ssize_t i,
                                const double *params, Py_ssize_t k, double *z, double *R,
                                double *G) noexcept nogil:
    # _row_sums of sample i (its row of X, targets and weight) as RowsTag
    # reads rows; z (OUT, d doubles) is the scratch row of MadeRows.
    cdef const char *row = p.X + i * p.row_bytes
    cdef const double *y = p.Y + i * k if p.Y != NULL else NULL
    cdef double s = p.weight[i] if p.weight != NULL else 1.0
    if RowsTag is SingleRows or (RowsTag is MadeRows and p.single):
        return _row_sums(rows_tag, <const float *> row, p.center, p.inv_scale, z, params,
                         y, s, p.d, k, R, G)
    return _row_sums(rows_tag, <const double *> row, p.center, p.inv_scale, z, params, y,
                     s, p.d, k, R, G)


cdef inline double _sign(double v) noexcept nogil:
    return (v > 0.0) - (v < 0.0)


cdef inline double _rate(double lr, double power, Py_ssize_t t) noexcept nogil:
    # learning rate of global step t: lr / (t + 1)**power. pow() costs as much
    # as a short row, so the common powers take correctly rounded shortcuts.
    cdef double steps = <double> (t + 1)
    if power == 0.0:
        return lr
    if power == 0.5:
        return lr / sqrt(steps)
    if power == 0.25:
        return lr / sqrt(sqrt(steps))
    if power == 1.0:
        return lr / steps
    return lr / pow(steps, power)


# ---------------------------------------------------------------------------
# The update rule: one step on parameters p[0:count]
# ---------------------------------------------------------------------------
# Momentum (PyTorch's convention): the buffer is v = g at global step 0, then
# v = momentum * v + (1 - dampening) * g, and the step is lr * v, or with
# Nesterov lr * (g + momentum * v). Written with the old buffer, both are
#     p  <-  (p - a * v_old) - b * g
# with two numbers per step (see _momentum_step). That is the same step as the
# textbook order (the reference backend's) up to rounding, but the chain from
# g to the new p, which the next sample waits for, is as short as plain SGD's.
#
# The adaptive rules are PyTorch's (torch.optim.Adam, AdamW, Adagrad,
# RMSprop) in float64, with s = t + 1 their step counter:
#   Adam     m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
#            (amsgrad: vmax = max(vmax, v), used for v)
#            p -= lr / (1 - beta1^s) * m / (sqrt(v) / sqrt(1 - beta2^s) + eps)
#            AdamW first decays p *= 1 - lr * weight_decay (and adds no l2 * p)
#   Adagrad  S += g^2;  p -= lr / (1 + t * lr_decay) * g / (sqrt(S) + eps)
#   RMSprop  S = alpha S + (1 - alpha) g^2;  centred: a = alpha a + (1 - alpha) g,
#            D = sqrt(S - a^2) + eps, else D = sqrt(S) + eps;
#            momentum: v = momentum v + g / D, p -= lr v; else p -= lr g / D

cdef struct MomentumStep:
    # The numbers of one momentum step (see the rule kinds)
    double cv, cg, a, b


cdef struct AdaptiveStep:
    # The numbers of one step of an adaptive rule, the same for every parameter
    double beta1, one_minus_beta1, beta2, one_minus_beta2, eps
    double step_size          # Adam: lr / (1 - beta1^s); Adagrad: lr / (1 + t * lr_decay)
    double bc2_sqrt           # Adam: sqrt(1 - beta2^s)
    double alpha, one_minus_alpha, momentum     # RMSprop
    bint amsgrad, decoupled, centered, with_momentum
    int penalty               # the penalty kind (AnyPenaltyTag)


cdef inline MomentumStep _momentum_step(double lr, double momentum, double dampening,
                                        bint nesterov, Py_ssize_t t) noexcept nogil:
    # v_new = cv * v_old + cg * g; the step is lr * v_new, or with Nesterov
    # lr * (g + momentum * v_new) = lr * momentum * cv * v_old
    #                               + lr * (1 + momentum * cg) * g.
    cdef MomentumStep m
    m.cv = 0.0 if t == 0 else momentum
    m.cg = 1.0 if t == 0 else 1.0 - dampening
    if nesterov:
        m.a = lr * momentum * m.cv
        m.b = lr * (1.0 + momentum * m.cg)
    else:
        m.a = lr * m.cv
        m.b = lr * m.cg
    return m


cdef inline AdaptiveStep _adaptive_step(const RuleC *rule, double lr, Py_ssize_t t,
                                        int penalty) noexcept nogil:
    # the numbers of step t (rate lr) of the run's adaptive rule, with the
    # given penalty kind
    cdef AdaptiveStep a
    cdef double s = <double> (t + 1)
    a.beta1 = rule.beta1
    a.one_minus_beta1 = 1.0 - rule.beta1
    a.beta2 = rule.beta2
    a.one_minus_beta2 = 1.0 - rule.beta2
    a.eps = rule.eps
    a.alpha = rule.alpha
    a.one_minus_alpha = 1.0 - rule.alpha
    a.momentum = rule.momentum
    a.with_momentum = rule.momentum > 0.0
    a.amsgrad = rule.amsgrad
    a.decoupled = rule.decoupled
    a.centered = rule.centered
    a.penalty = penalty
    a.bc2_sqrt = 1.0
    if rule.kind == ADAM_RULE:
        # PyTorch's bias corrections 1 - beta**s, computed with pow as it
        # computes them; past beta*_gone they are exactly 1 (no pow, whose
        # underflowing calls cost most of a short row's step)
        a.step_size = lr if s >= rule.beta1_gone else lr / (1.0 - pow(rule.beta1, s))
        a.bc2_sqrt = 1.0 if s >= rule.beta2_gone else sqrt(1.0 - pow(rule.beta2, s))
    elif rule.kind == ADAGRAD_RULE:
        a.step_size = lr / (1.0 + (s - 1.0) * rule.lr_decay)
    else:
        a.step_size = lr
    return a


cdef inline double _soft_threshold(double v, double threshold) noexcept nogil:
    # sign(v) * max(|v| - threshold, 0), exactly 0 when |v| <= threshold (NaN
    # stays NaN)
    cdef double shrunk = (v if v >= 0.0 else -v) - threshold
    if shrunk <= 0.0:
        return 0.0
    return shrunk if v > 0.0 else -shrunk


cdef inline void _adam_plain(double *p, double scale, const double *src,
                             Py_ssize_t count, double l2, double *grad_sum, double *v,
                             double *s2, AdaptiveStep a) noexcept nogil:
    # Adam's step (as in _rule_steps) with the L2 term l2 * p in the gradient
    # (l2 = 0: none), no amsgrad, no L1. IN/OUT p, grad_sum, v, s2 [0:count].
    # A bias correction of exactly 1 (past rule.beta2_gone) divides nothing:
    # x / 1 is x, so the loop skips that division (a loop-invariant test,
    # which the C compiler takes out of the loop).
    cdef Py_ssize_t j
    cdef double gj, vj, sj, root
    cdef bint corrected = a.bc2_sqrt != 1.0
    for j in range(count):
        gj = scale * src[j] + l2 * p[j]
        grad_sum[j] += gj
        vj = a.beta1 * v[j] + a.one_minus_beta1 * gj
        v[j] = vj
        sj = a.beta2 * s2[j] + a.one_minus_beta2 * gj * gj
        s2[j] = sj
        root = sqrt(sj) / a.bc2_sqrt if corrected else sqrt(sj)
        p[j] = p[j] - a.step_size * (vj / (root + a.eps))


cdef inline void _rule_steps(const RuleTag *rule_tag, const PenaltyTag *penalty_tag,
                             double *p, double scale, const double *src, Py_ssize_t count,
                             double lr, double l2, double l1, double u, double *grad_sum,
                             double *v, double *s2, double *aux, double *q,
                             MomentumStep m, AdaptiveStep a) noexcept nogil:
    # One step of the rule of rule_tag with the penalty of penalty_tag.
    # IN/OUT p[0:count] and the buffers beside it: grad_sum, v (momentum, Adam's
    # first moment), s2 (the adaptive rules' squares), aux (amsgrad's maximum,
    # centred RMSprop's mean), q (cumulative L1); a buffer the rule does not use
    # is not touched. The loss gradient is scale * src[j]; u is the cumulative
    # L1 total including this step's. The momentum rule skips the
    # multiplication by m.cg = 1 (the same bits).
    cdef Py_ssize_t j
    cdef double gj, vj, sj, den, z
    cdef bint decay_in_gradient = True
    cdef int penalty = NO_PENALTY
    if PenaltyTag is AnyPenaltyTag:
        penalty = a.penalty
        decay_in_gradient = penalty != NO_PENALTY and not a.decoupled
        if RuleTag is AdamTag:
            # Adam without amsgrad, decoupled decay or L1 (the common case):
            # a loop without branches, which the C compiler vectorises
            if not a.amsgrad and (penalty == NO_PENALTY
                                  or (penalty == L2_PENALTY and not a.decoupled)):
                if penalty == NO_PENALTY:
                    l2 = 0.0
                _adam_plain(p, scale, src, count, l2, grad_sum, v, s2, a)
                return
    for j in range(count):
        gj = scale * src[j]
        if PenaltyTag is L2Tag or PenaltyTag is ProximalTag or PenaltyTag is CumulativeTag:
            gj = gj + l2 * p[j]
        elif PenaltyTag is ElasticTag:
            gj = gj + l2 * p[j] + l1 * _sign(p[j])
        elif PenaltyTag is AnyPenaltyTag:
            if decay_in_gradient:
                gj = gj + l2 * p[j]
            if penalty == ELASTIC_PENALTY:
                gj = gj + l1 * _sign(p[j])
        grad_sum[j] += gj
        if RuleTag is PlainTag:
            p[j] -= lr * gj
        elif RuleTag is MomentumTag or RuleTag is DampenedTag:
            vj = v[j]
            if RuleTag is DampenedTag:
                v[j] = m.cv * vj + m.cg * gj
            else:
                v[j] = m.cv * vj + gj
            p[j] = (p[j] - m.a * vj) - m.b * gj
        elif RuleTag is AdamTag:
            if PenaltyTag is AnyPenaltyTag:
                if a.decoupled and penalty != NO_PENALTY:
                    p[j] = p[j] * (1.0 - lr * l2)
            vj = a.beta1 * v[j] + a.one_minus_beta1 * gj
            v[j] = vj
            sj = a.beta2 * s2[j] + a.one_minus_beta2 * gj * gj
            s2[j] = sj
            if a.amsgrad:
                if sj > aux[j]:
                    aux[j] = sj
                sj = aux[j]
            den = sqrt(sj) / a.bc2_sqrt + a.eps
            p[j] = p[j] - a.step_size * (vj / den)
        elif RuleTag is AdagradTag:
            sj = s2[j] + gj * gj
            s2[j] = sj
            p[j] = p[j] - a.step_size * (gj / (sqrt(sj) + a.eps))
        else:                                       # RMSprop
            sj = a.alpha * s2[j] + a.one_minus_alpha * gj * gj
            s2[j] = sj
            if a.centered:
                z = a.alpha * aux[j] + a.one_minus_alpha * gj
                aux[j] = z
                den = sqrt(sj - z * z) + a.eps
            else:
                den = sqrt(sj) + a.eps
            if a.with_momentum:
                vj = a.momentum * v[j] + gj / den
                v[j] = vj
                p[j] = p[j] - lr * vj
            else:
                p[j] = p[j] - lr * (gj / den)
        # L1 after the step
        if PenaltyTag is ProximalTag or (PenaltyTag is AnyPenaltyTag
                                         and penalty == PROXIMAL_PENALTY):
            p[j] = _soft_threshold(p[j], lr * l1)
        elif PenaltyTag is CumulativeTag or (PenaltyTag is AnyPenaltyTag
                                             and penalty == CUMULATIVE_PENALTY):
            z = p[j]
            if z > 0.0:
                vj = z - (u + q[j])
                p[j] = vj if vj > 0.0 else 0.0
            elif z < 0.0:
                vj = z + (u - q[j])
                p[j] = vj if vj < 0.0 else 0.0
            q[j] += p[j] - z


cdef inline void _step_with(const RuleTag *rule_tag, const RuleC *rule, int penalty,
                            const State *st, Py_ssize_t start, double scale,
                            const double *src, Py_ssize_t count, double lr,
                            Py_ssize_t t) noexcept nogil:
    # _rule_steps for the rule of rule_tag and the given penalty kind, on
    # entries start .. start + count - 1 of the state's rows
    cdef MomentumStep m = _momentum_step(lr, rule.momentum, rule.dampening, rule.nesterov, t)
    cdef AdaptiveStep a = _adaptive_step(rule, lr, t, penalty)
    cdef double *p = st.params + start
    cdef double *g = st.grad_sum + start
    cdef double *v = st.velocity + start
    cdef double *s2 = st.square_avg + start
    cdef double *aux = st.aux + start
    cdef double *q = st.l1_applied + start
    cdef double u = st.l1_total[0]
    if RuleTag is AdamTag or RuleTag is AdagradTag or RuleTag is RMSpropTag:
        _rule_steps(rule_tag, <AnyPenaltyTag *> NULL, p, scale, src, count, lr, rule.l2,
                    rule.l1, u, g, v, s2, aux, q, m, a)
    elif penalty == NO_PENALTY:
        _rule_steps(rule_tag, <NoPenaltyTag *> NULL, p, scale, src, count, lr, 0.0, 0.0,
                    u, g, v, s2, aux, q, m, a)
    elif penalty == L2_PENALTY:
        _rule_steps(rule_tag, <L2Tag *> NULL, p, scale, src, count, lr, rule.l2, rule.l1,
                    u, g, v, s2, aux, q, m, a)
    elif penalty == ELASTIC_PENALTY:
        _rule_steps(rule_tag, <ElasticTag *> NULL, p, scale, src, count, lr, rule.l2,
                    rule.l1, u, g, v, s2, aux, q, m, a)
    elif penalty == PROXIMAL_PENALTY:
        _rule_steps(rule_tag, <ProximalTag *> NULL, p, scale, src, count, lr, rule.l2,
                    rule.l1, u, g, v, s2, aux, q, m, a)
    else:
        _rule_steps(rule_tag, <CumulativeTag *> NULL, p, scale, src, count, lr, rule.l2,
                    rule.l1, u, g, v, s2, aux, q, m, a)


cdef inline void _step(const RuleC *rule, const State *st, Py_ssize_t start, double scale,
                       const double *src, Py_ssize_t count, bint penalize, double lr,
                       Py_ssize_t t) noexcept nogil:
    # One step of the run's rule at global step t on entries start .. start +
    # count - 1 of the state's rows (IN/OUT), penalised only if `penalize`.
    # The loss gradient is scale * src[j].
    cdef int penalty = rule.penalty if penalize else NO_PENALTY
    if rule.kind == PLAIN_RULE:
        _step_with(<PlainTag *> NULL, rule, penalty, st, start, scale, src, count, lr, t)
    elif rule.kind == MOMENTUM_RULE:
        _step_with(<MomentumTag *> NULL, rule, penalty, st, start, scale, src, count, lr, t)
    elif rule.kind == DAMPENED_RULE:
        _step_with(<DampenedTag *> NULL, rule, penalty, st, start, scale, src, count, lr, t)
    elif rule.kind == ADAM_RULE:
        _step_with(<AdamTag *> NULL, rule, penalty, st, start, scale, src, count, lr, t)
    elif rule.kind == ADAGRAD_RULE:
        _step_with(<AdagradTag *> NULL, rule, penalty, st, start, scale, src, count, lr, t)
    else:
        _step_with(<RMSpropTag *> NULL, rule, penalty, st, start, scale, src, count, lr, t)


cdef inline Py_ssize_t _moving(const RuleC *rule, Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # parameters a step moves: the weights, and the intercepts with fit_intercept
    return (d + 1) * k if rule.fit_intercept else d * k


cdef inline void _average_step(const RuleC *rule, const State *st, Py_ssize_t d,
                               Py_ssize_t k, Py_ssize_t t) noexcept nogil:
    # From global step average_from on: average = running mean of the iterates
    # (the weights, and the intercepts with fit_intercept). IN/OUT st.average.
    # A pass of its own, also per sample: in _rule_steps's loop it saved 7 %
    # of an averaged epoch at d = 100, but the per-sample loop's second copy
    # of the update kept GCC from inlining it, which cost 3 x 1 data 10 ns an
    # epoch (docs/design.md, the kernels).
    cdef Py_ssize_t j
    cdef double share
    if rule.average_from >= 0 and t >= rule.average_from:
        share = 1.0 / (t - rule.average_from + 1)      # one division, not one per entry
        for j in range(_moving(rule, d, k)):
            st.average[j] += (st.params[j] - st.average[j]) * share


cdef void _apply_step(const RuleC *rule, State st, Py_ssize_t d, Py_ssize_t k,
                      double scale, const double *G, const double *R, Py_ssize_t t,
                      double lr) noexcept nogil:
    # One batch step at global step t with rate lr. The loss gradient is
    # scale * G[0:k*d] for the weights and scale * R[0:k] for the intercepts
    # (moved only with fit_intercept, penalised only with decay_bias).
    # IN/OUT the state's rows (and st.l1_total).
    if rule.penalty == CUMULATIVE_PENALTY:
        st.l1_total[0] = st.l1_total[0] + lr * rule.l1
    _step(rule, &st, 0, scale, G, d * k, True, lr, t)
    if rule.fit_intercept:
        _step(rule, &st, d * k, scale, R, k, rule.decay_bias, lr, t)
    _average_step(rule, &st, d, k, t)


# ---------------------------------------------------------------------------
# Full-data sums (parallel over fixed row blocks)
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _n_blocks(Py_ssize_t n) noexcept nogil:
    cdef Py_ssize_t blocks = (n + MIN_BLOCK_ROWS - 1) // MIN_BLOCK_ROWS
    if blocks > MAX_BLOCKS:
        blocks = MAX_BLOCKS
    return blocks if blocks > 0 else 1


cdef inline Py_ssize_t _lines(Py_ssize_t count) noexcept nogil:
    # count doubles rounded up to whole cache lines
    return (count + LINE_DOUBLES - 1) // LINE_DOUBLES * LINE_DOUBLES


# The sums of a pass over rows are G = X.T @ (s*r) by output (k*d), S =
# sum s*|r|^2 and R = sum s*r (k). Inside this module they are laid out G
# first, on whole cache lines (G is the one added to row by row), then S
# and R: see _at_S. The def functions take and give [S, R, G].

cdef inline Py_ssize_t _at_S(Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # where S is in the sums' layout (R follows it)
    return _lines(k * d)


cdef inline Py_ssize_t _sums_size(Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # doubles of the sums' layout
    return _at_S(d, k) + 1 + k


cdef inline Py_ssize_t _block_stride(Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # a block's partial sums, padded to whole cache lines, then its
    # standardized row (_row_at), plus one line of gap, so two threads never
    # write to the same line
    return _row_at(d, k) + _lines(d) + LINE_DOUBLES


cdef inline Py_ssize_t _row_at(Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # where a block's standardized row is in its part of the scratch
    return _lines(_sums_size(d, k))


cdef void _block_sums(const OutputsTag *outputs, const RowsTag *rows_tag, const Problem *p,
                      const double *params, Py_ssize_t start, Py_ssize_t stop, int thread,
                      double *out) noexcept nogil:
    # OUT out: the sums (in the layout of _at_S) over places start..stop-1 of
    # the visiting order, computed by thread `thread` (garbage when the call
    # is interrupted: p.watch.stop).
    cdef Py_ssize_t c, q, i, first, last
    cdef Py_ssize_t d = p.d
    cdef Py_ssize_t k = 1 if OutputsTag is OneOutput else p.k
    cdef Py_ssize_t row_doubles = (p.row_bytes + 7) // 8     # of X's row, for prefetching
    cdef Py_ssize_t ahead = _prefetch_distance(row_doubles, p.order)
    cdef Py_ssize_t check = _check_every(d)
    cdef double sum_sq = 0.0
    cdef double *R = out + _at_S(d, k) + 1
    cdef double *z = out + _row_at(d, k)
    for c in range(k * d):
        out[c] = 0.0
    for c in range(k):
        R[c] = 0.0
    first = start
    while first < stop:             # in slices, looking at signals before each
        if _interrupted(p.watch, thread):
            return
        last = first + check if first + check < stop else stop
        for q in range(first, last):
            i = _row(p.order, q)
            if q + ahead < stop:
                GD_PREFETCH_SAMPLE(p.X, p.row_bytes, row_doubles, p.Y, k, p.weight,
                                   _row(p.order, q + ahead), p.order != NULL)
            sum_sq += _sample_sums(rows_tag, p, i, params, k, z, R, out)
        first = last
    out[_at_S(d, k)] = sum_sq


cdef struct SumsTask:
    # A full-data pass cut into blocks (see _full_sums)
    const Problem *p
    const double *params
    double *partials
    Py_ssize_t per_block, stride


cdef void _sums_block(void *context, Py_ssize_t c, int thread) noexcept nogil:
    # BlockTask: the partial sums of row block c
    cdef SumsTask *task = <SumsTask *> context
    cdef Py_ssize_t n = task.p.n
    cdef Py_ssize_t start = c * task.per_block
    cdef Py_ssize_t stop = start + task.per_block
    if start > n:
        start = n
    if stop > n:
        stop = n
    cdef double *out = task.partials + c * task.stride
    if task.p.k == 1:
        _block_sums_of(<OneOutput *> NULL, task.p, task.params, start, stop, thread, out)
    else:
        _block_sums_of(<ManyOutputs *> NULL, task.p, task.params, start, stop, thread, out)


cdef inline void _block_sums_of(const OutputsTag *outputs, const Problem *p,
                                const double *params, Py_ssize_t start, Py_ssize_t stop,
                                int thread, double *out) noexcept nogil:
    # _block_sums for the rows of p (see RowsTag)
    if p.center != NULL:
        _block_sums(outputs, <MadeRows *> NULL, p, params, start, stop, thread, out)
    elif p.single:
        _block_sums(outputs, <SingleRows *> NULL, p, params, start, stop, thread, out)
    else:
        _block_sums(outputs, <AsIsRows *> NULL, p, params, start, stop, thread, out)


cdef void _full_sums(const Problem *p, const double *params, double *partials,
                     int n_threads, double *out) noexcept nogil:
    # Sums of _block_sums over all p.n rows: fixed blocks, summed in parallel,
    # added up in block order. IN: partials, scratch of _n_blocks(n) *
    # _block_stride(d, k) doubles. OUT: out[0:_sums_size(d, k)], the sums.
    cdef SumsTask task
    cdef Py_ssize_t blocks = _n_blocks(p.n)
    cdef Py_ssize_t c, q, size = _sums_size(p.d, p.k)
    cdef Py_ssize_t gap_start = p.k * p.d, gap_stop = _at_S(p.d, p.k)
    task.p = p
    task.params = params
    task.partials = partials
    task.per_block = (p.n + blocks - 1) // blocks
    task.stride = _block_stride(p.d, p.k)
    _run_blocks(_sums_block, &task, blocks, n_threads)
    for q in range(size):
        out[q] = 0.0
    for c in range(blocks):
        for q in range(size):
            if q < gap_start or q >= gap_stop:      # (the padding holds nothing)
                out[q] += partials[c * task.stride + q]


# ---------------------------------------------------------------------------
# Epoch loops. Each runs places first_step .. stop_step - 1 of the epoch's
# steps (clipped to the epoch), from global step t, and updates the state in
# place.
# ---------------------------------------------------------------------------

cdef EpochOutcome _sums_step(const RuleC *rule, State st, Py_ssize_t d, Py_ssize_t k,
                             Py_ssize_t n, double S, const double *G, const double *R,
                             Py_ssize_t t, double lr, double running) noexcept nogil:
    # One full-batch step from the raw sums S, G, R of n rows: nothing when
    # their loss is not finite (reported), else the step. `running`: the
    # epoch's loss sum so far (see EpochOutcome).
    cdef EpochOutcome out
    cdef double scale
    out.steps = 0
    out.loss_sum = running
    out.part = 0.0
    out.interrupted = False
    out.nonfinite = not (S <= DBL_MAX)
    if out.nonfinite:
        return out
    scale = rule.two_a / n
    _apply_step(rule, st, d, k, scale, G, R, t, _rate(lr, rule.power, t))
    out.steps = 1
    out.part = S / n
    out.loss_sum = running + out.part
    return out


cdef EpochOutcome _full_batch_epoch(const RuleC *rule, const Problem *p, State st,
                                    double lr, Py_ssize_t t, Py_ssize_t first_step,
                                    Py_ssize_t stop_step, double running, double *partials,
                                    double *sums) noexcept nogil:
    # One gradient step on all rows (the epoch's only step). Scratch:
    # partials, sums (see _full_sums).
    cdef EpochOutcome out
    out.steps = 0
    out.loss_sum = running
    out.part = 0.0
    out.nonfinite = False
    out.interrupted = False
    if first_step > 0 or stop_step < 1:
        return out
    _full_sums(p, st.params, partials, rule.n_threads, sums)
    if p.watch.stop:
        out.interrupted = True
        return out
    return _sums_step(rule, st, p.d, p.k, p.n, sums[_at_S(p.d, p.k)], sums,
                      sums + _at_S(p.d, p.k) + 1, t, lr, running)


cdef EpochOutcome _minibatch_epoch(const OutputsTag *outputs, const RowsTag *rows_tag,
                                   const RuleC *rule, const Problem *p, State st,
                                   double lr, Py_ssize_t t,
                                   Py_ssize_t first_step, Py_ssize_t stop_step,
                                   double running, double *scratch) noexcept nogil:
    # One update per batch of rule.batch_size rows (the last one may be
    # smaller). Scratch: _minibatch_scratch(d, k) doubles: the batch's G,
    # then R, then a standardized row. No look at signals here (see
    # _in_slices).
    cdef EpochOutcome out
    cdef Py_ssize_t v, c, q, i, start, stop, m, u
    cdef Py_ssize_t d = p.d, n = p.n, batch_size = rule.batch_size
    cdef Py_ssize_t row_doubles = (p.row_bytes + 7) // 8     # of X's row, for prefetching
    cdef Py_ssize_t ahead = _prefetch_distance(row_doubles, p.order)
    cdef Py_ssize_t k = 1 if OutputsTag is OneOutput else p.k
    cdef Py_ssize_t n_batches = (n + batch_size - 1) // batch_size
    cdef Py_ssize_t last = n_batches if stop_step > n_batches else stop_step
    cdef double sum_sq, scale, total = running, part = 0.0
    cdef double *G = scratch
    cdef double *R = scratch + _at_S(d, k)
    cdef double *z = scratch + _lines(_at_S(d, k) + k)
    out.nonfinite = False
    out.interrupted = False
    out.steps = 0
    for v in range(first_step, last):
        start = v * batch_size
        stop = start + batch_size
        if stop > n:
            stop = n
        m = stop - start
        for c in range(k * d):
            G[c] = 0.0
        for c in range(k):
            R[c] = 0.0
        sum_sq = 0.0
        for q in range(start, stop):
            i = _row(p.order, q)
            if q + ahead < n:
                GD_PREFETCH_SAMPLE(p.X, p.row_bytes, row_doubles, p.Y, k, p.weight,
                                   _row(p.order, q + ahead), p.order != NULL)
            sum_sq += _sample_sums(rows_tag, p, i, st.params, k, z, R, G)
        if not (sum_sq <= DBL_MAX):
            out.nonfinite = True
            break
        total += sum_sq / m
        part += sum_sq / m
        scale = rule.two_a / m
        u = t + v - first_step
        _apply_step(rule, st, d, k, scale, G, R, u, _rate(lr, rule.power, u))
        out.steps += 1
    out.loss_sum = total
    out.part = part
    return out


cdef inline Py_ssize_t _minibatch_scratch(Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # doubles of _minibatch_epoch's scratch
    return _lines(_at_S(d, k) + k) + d


cdef EpochOutcome _minibatch_any(const RuleC *rule, const Problem *p, State st, double lr,
                                 Py_ssize_t t, Py_ssize_t first_step, Py_ssize_t stop_step,
                                 double running, double *scratch) noexcept nogil:
    # _minibatch_epoch for the outputs and rows of p (a StepsLoop)
    if p.k == 1:
        return _minibatch_rows(<OneOutput *> NULL, rule, p, st, lr, t, first_step,
                               stop_step, running, scratch)
    return _minibatch_rows(<ManyOutputs *> NULL, rule, p, st, lr, t, first_step, stop_step,
                           running, scratch)


cdef inline EpochOutcome _minibatch_rows(const OutputsTag *outputs, const RuleC *rule,
                                         const Problem *p, State st, double lr,
                                         Py_ssize_t t, Py_ssize_t first_step,
                                         Py_ssize_t stop_step, double running,
                                         double *scratch) noexcept nogil:
    # _minibatch_epoch for the rows of p (see RowsTag)
    if p.center != NULL:
        return _minibatch_epoch(outputs, <MadeRows *> NULL, rule, p, st, lr, t, first_step,
                                stop_step, running, scratch)
    if p.single:
        return _minibatch_epoch(outputs, <SingleRows *> NULL, rule, p, st, lr, t,
                                first_step, stop_step, running, scratch)
    return _minibatch_epoch(outputs, <AsIsRows *> NULL, rule, p, st, lr, t, first_step,
                            stop_step, running, scratch)


cdef EpochOutcome _sgd_rows(
        const RuleTag *rule_tag, const PenaltyTag *penalty_tag, const OutputsTag *outputs,
        const RuleC *rule, const Problem *p, State st, double base_lr, Py_ssize_t t,
        Py_ssize_t first_step, Py_ssize_t stop_step, double running,
        double *scratch) noexcept nogil:
    # One update per row, for one (rule, penalty, outputs) combination.
    # Scratch: _sgd_scratch(d, k) doubles: the row's dL/db (k, unused for one
    # output), then a standardized row. Returns
    # the running loss sum continued, and no `part`: a second sum in this loop
    # cost 8 % at d = 100, and keeping the last row's loss 4.6 % (see
    # _sgd_steps). No look at signals here either (see _in_slices).
    #
    # Each row's residual needs the weights the previous row just wrote, so
    # for short rows the time per row is the length of that dependency chain:
    # b - y is formed beside the dot product rather than after it.
    cdef EpochOutcome out
    cdef Py_ssize_t q, i, c, step, d = p.d, n = p.n
    cdef Py_ssize_t k = 1 if OutputsTag is OneOutput else p.k
    cdef Py_ssize_t stop = n if stop_step > n else stop_step
    cdef Py_ssize_t row_doubles = (p.row_bytes + 7) // 8     # of X's row, for prefetching
    cdef Py_ssize_t ahead = _prefetch_distance(row_doubles, p.order)
    cdef double r, r0, sq, lr, total = running
    cdef double g_one[1]
    cdef double *g
    cdef MomentumStep m
    cdef AdaptiveStep a
    cdef const double *x
    cdef const double *y_row
    cdef double *z = scratch + _lines(p.k)
    # Locals, not the structs' fields: the loop's stores to double arrays
    # could alias those (as far as the C compiler knows) and force a reload
    # every row.
    cdef double *w = st.params
    cdef double *grad_sum = st.grad_sum
    cdef double *v = st.velocity
    cdef double *s2 = st.square_avg
    cdef double *aux = st.aux
    cdef double *l1_applied = st.l1_applied
    cdef double u = st.l1_total[0]
    cdef const char *X = p.X
    cdef Py_ssize_t row_bytes = p.row_bytes
    cdef bint single = p.single
    cdef const double *center = p.center
    cdef const double *inv_scale = p.inv_scale
    cdef const double *Y = p.Y
    cdef const double *weight = p.weight
    cdef const Py_ssize_t *order = p.order
    cdef double two_a = rule.two_a, power = rule.power
    cdef double l2 = rule.l2, l1 = rule.l1
    cdef double momentum = rule.momentum, dampening = rule.dampening
    cdef bint nesterov = rule.nesterov, fit_intercept = rule.fit_intercept
    cdef bint decay_bias = rule.decay_bias, averaging = rule.average_from >= 0
    if OutputsTag is OneOutput:
        g = g_one
    else:
        g = scratch
    m = _momentum_step(base_lr, momentum, dampening, nesterov, t)   # (unused if plain)
    a = _adaptive_step(rule, base_lr, t, rule.penalty)     # (used by the adaptive rules)
    out.nonfinite = False
    out.interrupted = False
    out.steps = 0
    for q in range(first_step, stop):
        i = _row(order, q)
        if q + ahead < n:
            GD_PREFETCH_SAMPLE(X, row_bytes, row_doubles, Y, k, weight,
                               _row(order, q + ahead), order != NULL)
        r0 = _first_dot(X + i * row_bytes, single, center, inv_scale, d, z, w, &x)
        y_row = Y + i * k
        sq = 0.0
        for c in range(k):
            r = (r0 if c == 0 else _dot(x, w + c * d, d)) + (w[k * d + c] - y_row[c])
            g[c] = two_a * r          # dL/db[c] of this sample; dL/dW[:, c] = g[c] * x
            if weight != NULL:
                sq += weight[i] * (r * r)
                g[c] = g[c] * weight[i]
            else:
                sq += r * r
        if not (sq <= DBL_MAX):
            out.nonfinite = True
            break
        total += sq
        step = t + q - first_step
        lr = _rate(base_lr, power, step)
        if RuleTag is MomentumTag or RuleTag is DampenedTag:
            m = _momentum_step(lr, momentum, dampening, nesterov, step)
        elif RuleTag is AdamTag or RuleTag is AdagradTag or RuleTag is RMSpropTag:
            a = _adaptive_step(rule, lr, step, rule.penalty)
        if PenaltyTag is CumulativeTag or PenaltyTag is AnyPenaltyTag:
            if rule.penalty == CUMULATIVE_PENALTY:
                u = u + lr * l1
        for c in range(k):
            _rule_steps(rule_tag, penalty_tag, w + c * d, g[c], x, d, lr, l2, l1, u,
                        grad_sum + c * d, v + c * d, s2 + c * d, aux + c * d,
                        l1_applied + c * d, m, a)
        if fit_intercept:
            if decay_bias:
                _rule_steps(rule_tag, penalty_tag, w + k * d, 1.0, g, k, lr, l2, l1, u,
                            grad_sum + k * d, v + k * d, s2 + k * d, aux + k * d,
                            l1_applied + k * d, m, a)
            else:
                _rule_steps(rule_tag, <NoPenaltyTag *> NULL, w + k * d, 1.0, g, k, lr,
                            0.0, 0.0, u, grad_sum + k * d, v + k * d, s2 + k * d,
                            aux + k * d, l1_applied + k * d, m, a)
        if averaging:
            _average_step(rule, &st, d, k, step)
        out.steps += 1
    st.l1_total[0] = u
    out.loss_sum = total
    out.part = 0.0                  # (see _sgd_steps)
    return out


cdef inline Py_ssize_t _sgd_scratch(Py_ssize_t d, Py_ssize_t k) noexcept nogil:
    # doubles of _sgd_rows's scratch
    return _lines(k) + d


cdef EpochOutcome _sgd_with(const RuleTag *rule_tag, const PenaltyTag *penalty_tag,
                            const RuleC *rule, const Problem *p, State st, double lr,
                            Py_ssize_t t, Py_ssize_t first_step, Py_ssize_t stop_step,
                            double running, double *scratch) noexcept nogil:
    # _sgd_rows for the rule and penalty of the tags and the outputs of p
    if p.k == 1:
        return _sgd_rows(rule_tag, penalty_tag, <OneOutput *> NULL, rule, p, st, lr, t,
                         first_step, stop_step, running, scratch)
    return _sgd_rows(rule_tag, penalty_tag, <ManyOutputs *> NULL, rule, p, st, lr, t,
                     first_step, stop_step, running, scratch)


cdef EpochOutcome _sgd_with_rule(const RuleTag *rule_tag, const RuleC *rule,
                                 const Problem *p, State st, double lr, Py_ssize_t t,
                                 Py_ssize_t first_step, Py_ssize_t stop_step,
                                 double running, double *scratch) noexcept nogil:
    # _sgd_with for the rule of rule_tag and the run's penalty (read at run
    # time by the adaptive rules: see PenaltyTag)
    if RuleTag is AdamTag or RuleTag is AdagradTag or RuleTag is RMSpropTag:
        return _sgd_with(rule_tag, <AnyPenaltyTag *> NULL, rule, p, st, lr, t, first_step,
                         stop_step, running, scratch)
    if rule.penalty == NO_PENALTY:
        return _sgd_with(rule_tag, <NoPenaltyTag *> NULL, rule, p, st, lr, t, first_step,
                         stop_step, running, scratch)
    if rule.penalty == L2_PENALTY:
        return _sgd_with(rule_tag, <L2Tag *> NULL, rule, p, st, lr, t, first_step,
                         stop_step, running, scratch)
    if rule.penalty == ELASTIC_PENALTY:
        return _sgd_with(rule_tag, <ElasticTag *> NULL, rule, p, st, lr, t, first_step,
                         stop_step, running, scratch)
    if rule.penalty == PROXIMAL_PENALTY:
        return _sgd_with(rule_tag, <ProximalTag *> NULL, rule, p, st, lr, t, first_step,
                         stop_step, running, scratch)
    return _sgd_with(rule_tag, <CumulativeTag *> NULL, rule, p, st, lr, t, first_step,
                     stop_step, running, scratch)


cdef EpochOutcome _sgd_epoch(const RuleC *rule, const Problem *p, State st, double lr,
                             Py_ssize_t t, Py_ssize_t first_step, Py_ssize_t stop_step,
                             double running, double *scratch) noexcept nogil:
    # One update per row: _sgd_rows for the run's rule, penalty and outputs.
    if rule.kind == PLAIN_RULE:
        return _sgd_with_rule(<PlainTag *> NULL, rule, p, st, lr, t, first_step,
                              stop_step, running, scratch)
    if rule.kind == MOMENTUM_RULE:
        return _sgd_with_rule(<MomentumTag *> NULL, rule, p, st, lr, t, first_step,
                              stop_step, running, scratch)
    if rule.kind == DAMPENED_RULE:
        return _sgd_with_rule(<DampenedTag *> NULL, rule, p, st, lr, t, first_step,
                              stop_step, running, scratch)
    if rule.kind == ADAM_RULE:
        return _sgd_with_rule(<AdamTag *> NULL, rule, p, st, lr, t, first_step,
                              stop_step, running, scratch)
    if rule.kind == ADAGRAD_RULE:
        return _sgd_with_rule(<AdagradTag *> NULL, rule, p, st, lr, t, first_step,
                              stop_step, running, scratch)
    return _sgd_with_rule(<RMSpropTag *> NULL, rule, p, st, lr, t, first_step, stop_step,
                          running, scratch)


cdef EpochOutcome _sgd_steps(const RuleC *rule, const Problem *p, State st, double lr,
                             Py_ssize_t t, Py_ssize_t first_step, Py_ssize_t stop_step,
                             double running, double *scratch) noexcept nogil:
    # _sgd_epoch, and its `part` (a StepsLoop): for one step the row's loss,
    # computed as the row loop computes it (exact: what descent_path
    # records), else the running sum's growth (within rounding of the sum of
    # the steps' losses).
    cdef EpochOutcome out
    cdef Py_ssize_t c, i, d = p.d, k = p.k
    cdef Py_ssize_t stop = p.n if stop_step > p.n else stop_step
    cdef double r, r0, one_row = 0.0
    cdef const double *x
    if first_step + 1 == stop:
        i = _row(p.order, first_step)
        r0 = _first_dot(p.X + i * p.row_bytes, p.single, p.center, p.inv_scale, d,
                        scratch + _lines(k), st.params, &x)
        for c in range(k):
            r = (r0 if c == 0 else _dot(x, st.params + c * d, d)) + (st.params[k * d + c]
                                                                     - p.Y[i * k + c])
            one_row += p.weight[i] * (r * r) if p.weight != NULL else r * r
    out = _sgd_epoch(rule, p, st, lr, t, first_step, stop_step, running, scratch)
    out.part = one_row if out.steps == 1 else out.loss_sum - running
    return out


# An epoch's loop over steps first_step .. stop_step - 1, as _sgd_steps and
# _minibatch_any: what _in_slices runs.
ctypedef EpochOutcome (*StepsLoop)(const RuleC *rule, const Problem *p, State st,
                                   double lr, Py_ssize_t t, Py_ssize_t first_step,
                                   Py_ssize_t stop_step, double running,
                                   double *scratch) noexcept nogil

cdef extern from *:
    StepsLoop GD_OPAQUE_LOOP(StepsLoop f) noexcept nogil


cdef EpochOutcome _in_slices(StepsLoop loop, Py_ssize_t per_slice, const RuleC *rule,
                             const Problem *p, State st, double lr, Py_ssize_t t,
                             Py_ssize_t first_step, Py_ssize_t stop_step, double running,
                             double *scratch) noexcept nogil:
    # loop over steps first_step .. stop_step - 1 in slices of per_slice
    # steps, looking at signals between slices. Up here, not in the row
    # loops: a look there, even out of line, cost per-sample SGD at d = 100
    # 4-6 % and the mini-batch epoch 8 % (the loops lost registers). The
    # loop is called through a pointer, which also keeps the C compiler from
    # merging its 18 per-sample instances into this function: it then ran
    # out of inlining budget and called _dot out of line (per-sample SGD with
    # momentum at d = 10: 1.17 x slower).
    cdef EpochOutcome out, piece
    cdef Py_ssize_t v = first_step, last
    out.steps = 0
    out.loss_sum = running
    out.part = 0.0
    out.nonfinite = False
    out.interrupted = False
    while v < stop_step:
        last = v + per_slice if v + per_slice < stop_step else stop_step
        piece = loop(rule, p, st, lr, t + out.steps, v, last, out.loss_sum, scratch)
        out.steps += piece.steps
        out.loss_sum = piece.loss_sum
        out.part += piece.part
        if piece.nonfinite:
            out.nonfinite = True
            break
        if piece.steps < last - v:          # the epoch ended within the slice
            break
        v = last
        if v < stop_step and _interrupted(p.watch, 0):
            out.interrupted = True
            break
    return out


# ---------------------------------------------------------------------------
# Entry points (the GIL is released inside each)
# ---------------------------------------------------------------------------

cdef inline Py_ssize_t _work_size(Py_ssize_t size) noexcept nogil:
    # doubles of a working copy of a state of `size` columns: its rows on
    # whole cache lines, then one line for l1_total
    return N_STATE_ROWS * _lines(size) + LINE_DOUBLES


cdef State _working_copy(double[:, ::1] state, double l1_total, double *work) noexcept nogil:
    # Copy the rows of a (N_STATE_ROWS, size) state array into work, one row
    # per whole number of cache lines (_work_size(size) doubles from _alloc),
    # and l1_total after them, and return them: the loops then never split a
    # vector across two cache lines, wherever the caller's array starts.
    cdef State st
    cdef Py_ssize_t row, size = state.shape[1], stride = _lines(size)
    for row in range(N_STATE_ROWS):
        memcpy(work + row * stride, &state[row, 0], size * sizeof(double))
    st.params = work + PARAMS * stride
    st.grad_sum = work + GRAD_SUM * stride
    st.velocity = work + VELOCITY * stride
    st.square_avg = work + SQUARE_AVG * stride
    st.aux = work + AUX * stride
    st.l1_applied = work + L1_APPLIED * stride
    st.average = work + AVERAGE * stride
    st.l1_total = work + N_STATE_ROWS * stride
    st.l1_total[0] = l1_total
    return st


cdef void _copy_back(const double *work, double[:, ::1] state) noexcept nogil:
    # OUT state: the rows of a working copy (see _working_copy)
    cdef Py_ssize_t row, size = state.shape[1], stride = _lines(size)
    for row in range(N_STATE_ROWS):
        memcpy(&state[row, 0], work + row * stride, size * sizeof(double))


cdef inline Py_ssize_t _epoch_scratch(const RuleC *rule, const Problem *p) noexcept nogil:
    # doubles of _epoch_steps's scratch
    if rule.batch_size == 1:
        return _sgd_scratch(p.d, p.k)
    if rule.batch_size >= p.n:
        return _n_blocks(p.n) * _block_stride(p.d, p.k)
    return _minibatch_scratch(p.d, p.k)


cdef EpochOutcome _epoch_steps(const RuleC *rule, const Problem *p, State st, double lr,
                               Py_ssize_t t, Py_ssize_t first_step, Py_ssize_t stop_step,
                               double running, double *scratch,
                               double *sums) noexcept nogil:
    # Steps first_step .. stop_step - 1 of an epoch of the run's batch size,
    # from global step t: the epoch loop that batch size runs. Scratch:
    # _epoch_scratch doubles, and sums (_sums_size, full batch only).
    # Batch size 1 first: a single sample is always a per-sample step.
    if rule.batch_size == 1:
        return _in_slices(_sgd_steps, _check_every(p.d), rule, p, st, lr, t, first_step,
                          stop_step, running, scratch)
    if rule.batch_size >= p.n:
        return _full_batch_epoch(rule, p, st, lr, t, first_step, stop_step, running,
                                 scratch, sums)
    # The mini-batch loops through an opaque pointer: inlined here (GCC sees
    # through a constant pointer), the standardized copy lost registers to
    # the rest of this function and its epoch cost 1.37 x plain instead of
    # 1.2 x (bench/test_options_cost.py, A/B).
    return _in_slices(GD_OPAQUE_LOOP(_minibatch_any), _check_every(p.d) // rule.batch_size + 1,
                      rule, p, st, lr, t, first_step, stop_step, running, scratch)


cdef inline double _norm(const double *x, Py_ssize_t size) noexcept nogil:
    # sqrt(sum x[j]**2), summed as _dot sums (a fixed order)
    return sqrt(_dot(x, x, size))


cdef void _set_rows(Problem *p, X) except *:
    # OUT p.X, p.row_bytes, p.single, p.d: the rows of X, a C-contiguous
    # (n, d) array of float64 or float32 (the caller keeps X alive)
    cdef const double[:, ::1] doubles
    cdef const float[:, ::1] floats
    if X.dtype.itemsize == 4:
        floats = X
        p.X = <const char *> &floats[0, 0]
        p.single = True
    else:
        doubles = X
        p.X = <const char *> &doubles[0, 0]
        p.single = False
    p.d = X.shape[1]
    p.row_bytes = p.d * X.dtype.itemsize


cdef void _set_standardize(Problem *p, const double[:, ::1] standardize):
    # OUT p.center, p.inv_scale: the rows of a (2, d) array, or NULL (None)
    p.center = &standardize[0, 0] if standardize is not None else NULL
    p.inv_scale = &standardize[1, 0] if standardize is not None else NULL


def run_epoch(X,                               # IN (n, d) float64 or float32
              const double[:, ::1] Y,         # IN (n, k); a 1-D y as (n, 1)
              const Py_ssize_t[::1] order,    # IN rows to visit in order, or None: 0..n-1
              const double[::1] weight,       # IN (n,) sample weights (mean 1), or None
              double[:, ::1] state,           # IN/OUT (N_STATE_ROWS, (d + 1) * k)
              Rule rule,                      # IN the run's update rule
              double lr,                      # the epoch's learning rate
              Py_ssize_t global_step,         # global index t of step `first_step`
              Py_ssize_t first_step,          # run the epoch's steps first_step ..
              Py_ssize_t stop_step,           # .. stop_step - 1 (clipped to the epoch)
              double running,                 # the epoch's running loss sum so far
              double l1_total,                # cumulative L1: the total penalty so far
              const double[:, ::1] standardize=None):  # IN (2, d): centres, 1/scales
    """Run steps ``first_step .. stop_step - 1`` of one epoch, in place.

    A step is one row (``batch_size == 1``), one batch of ``batch_size``
    rows, or all rows (``batch_size >= n``). Returns ``(steps, running, part,
    nonfinite, l1_total)``: the number of updates applied; the epoch's
    running sum of batch losses over the loss factor, ``running`` continued
    (so an epoch run in several calls adds its losses exactly as one call
    does; the epoch's loss sum is the loss factor times the final one); the
    sum of this call's batch losses (each taken before its update); whether
    the loop stopped at a batch whose loss was not finite (that update is
    then not applied); and ``l1_total`` continued (``l1_method="cumulative"``
    adds ``lr * l1`` per step). With ``standardize``, every row is
    trained on as ``(x - centres) * (1 / scales)``, formed as it is read.
    """
    cdef Problem p
    cdef State st
    cdef gd_watch watch = _watch()
    cdef double *work = _alloc(_work_size(state.shape[1]))
    cdef double *scratch = NULL
    cdef double *sums = NULL
    cdef Py_ssize_t batch_size = rule.c.batch_size
    cdef EpochOutcome out
    _set_rows(&p, X)
    p.Y = &Y[0, 0]
    p.weight = &weight[0] if weight is not None else NULL
    p.order = &order[0] if order is not None else NULL
    _set_standardize(&p, standardize)
    p.n = order.shape[0] if order is not None else X.shape[0]
    p.k = Y.shape[1]
    p.watch = &watch
    try:
        st = _working_copy(state, l1_total, work)
        scratch = _alloc(_epoch_scratch(&rule.c, &p))
        sums = _alloc(_sums_size(p.d, p.k))
        with nogil:
            out = _epoch_steps(&rule.c, &p, st, lr, global_step, first_step, stop_step,
                               running, scratch, sums)
        if out.interrupted:
            _raise_pending()        # the state stays as the call found it
        _copy_back(work, state)
        l1_total = st.l1_total[0]
    finally:
        _free(work)
        _free(scratch)
        _free(sums)
    return (out.steps, out.loss_sum, rule.c.loss_factor * out.part,
            bool(out.nonfinite), l1_total)


cdef struct Stopping:
    # Early stopping between epochs (gdcore._training._converged)
    int on                    # 0: none, 1: on the loss, 2: on the gradient norm
    double tol
    Py_ssize_t patience       # n_iter_no_change
    double best               # the best loss so far (IN/OUT)
    Py_ssize_t no_improvement # epochs in a row without improvement (IN/OUT)


cdef inline bint _converged(Stopping *stop, double loss, double grad_norm) noexcept nogil:
    # Has the run met its tol after an epoch of this loss and gradient norm?
    # (The same comparisons, in the same order, as _training._converged.)
    if stop.on == 0:
        return False
    if stop.on == 2:
        return grad_norm <= stop.tol
    if loss > stop.best - stop.tol:
        stop.no_improvement += 1
    else:
        stop.no_improvement = 0
    if loss < stop.best:
        stop.best = loss
    return stop.no_improvement >= stop.patience


cdef inline bint _all_finite(const double *x, Py_ssize_t size) noexcept nogil:
    cdef Py_ssize_t j
    for j in range(size):
        if not (x[j] - x[j] == 0.0):        # NaN and infinities give NaN
            return False
    return True


cdef inline void _epoch_start(double *work, double *start, Py_ssize_t size) noexcept nogil:
    # A run_epochs epoch begins: start (OUT) = the working copy's rows and
    # its l1_total, then the gradient sum zeroed (IN/OUT work). Loops of
    # doubles, not memcpy/memset: on short rows their wide moves of values
    # just written by the last row's update cost about 6 ns an epoch at 3 x 1.
    cdef Py_ssize_t row, j, stride = _lines(size)
    for row in range(N_STATE_ROWS):
        for j in range(size):
            start[row * stride + j] = work[row * stride + j]
    start[N_STATE_ROWS * stride] = work[N_STATE_ROWS * stride]
    for j in range(size):
        work[GRAD_SUM * stride + j] = 0.0


def run_epochs(X,                              # IN (n, d) float64 or float32
               const double[:, ::1] Y,        # IN (n, k)
               const Py_ssize_t[:, ::1] orders,  # IN (epochs, n): each epoch's rows, or None
               const double[::1] weight,      # IN (n,) sample weights (mean 1), or None
               double[:, ::1] state,          # IN/OUT (N_STATE_ROWS, (d + 1) * k)
               Rule rule,                     # IN the run's update rule
               double lr,                     # the rate of every epoch
               Py_ssize_t global_step,        # global index t of the first step
               Py_ssize_t epochs,             # epochs to run
               double l1_total,               # cumulative L1: the total penalty so far
               double[::1] losses,            # OUT (epochs,) each epoch's loss
               double[::1] grad_norms,        # OUT (epochs,) each epoch's gradient norm
               int stop_on,                   # early stopping: 0 none, 1 loss, 2 grad norm
               double tol,
               Py_ssize_t n_iter_no_change,
               double best,                   # the best loss so far (stop_on 1)
               Py_ssize_t no_improvement,     # epochs without improvement so far
               const double[:, ::1] standardize=None):  # IN (2, d): centres, 1/scales
    """Run up to ``epochs`` whole epochs of one rate in one call: what the
    training loop does between epochs when nothing in Python needs to run
    (no callback, feedback, validation, checkpoint or epoch-dependent
    rate), with the same bits as ``run_epoch`` once per epoch.

    Each epoch starts with a zero gradient sum, visits ``orders[e]`` (or
    0..n-1), and records its loss (``loss_factor * running / steps``) and
    gradient norm (:func:`norm` of the gradient sum, over the steps); then
    early stopping is checked as the training loop checks it. An epoch whose
    loss or parameters stop being finite is undone (the state is left as it
    was at its start) and the call returns: the training loop then runs that
    epoch itself, with its divergence handling.

    Returns ``(epochs_done, steps, l1_total, best, no_improvement,
    converged)``: the epochs completed and recorded, the steps they took,
    the state's numbers after them, and whether early stopping fired after
    the last of them.
    """
    cdef Problem p
    cdef State st
    cdef Stopping stopping
    cdef gd_watch watch = _watch()
    cdef Py_ssize_t size = state.shape[1], stride = _lines(state.shape[1])
    cdef double *work = _alloc(_work_size(size))
    cdef double *start = _alloc(_work_size(size))
    cdef double *scratch = NULL
    cdef double *sums = NULL
    cdef Py_ssize_t e, done = 0, steps = 0, per_epoch, countdown, check
    cdef bint converged = False, direct
    cdef EpochOutcome out
    _set_rows(&p, X)
    p.Y = &Y[0, 0]
    p.weight = &weight[0] if weight is not None else NULL
    p.order = NULL
    _set_standardize(&p, standardize)
    p.n = orders.shape[1] if orders is not None else X.shape[0]
    p.k = Y.shape[1]
    p.watch = &watch
    per_epoch = (1 if rule.c.batch_size >= p.n
                 else (p.n + rule.c.batch_size - 1) // rule.c.batch_size)
    stopping.on = stop_on
    stopping.tol = tol
    stopping.patience = n_iter_no_change
    stopping.best = best
    stopping.no_improvement = no_improvement
    check = _check_every(p.d)
    countdown = check
    # per-sample epochs short enough to need no look at signals within them
    # (_in_slices would make one slice) run their row loop directly
    direct = rule.c.batch_size == 1 and p.n <= check
    out.interrupted = False
    try:
        st = _working_copy(state, l1_total, work)
        scratch = _alloc(_epoch_scratch(&rule.c, &p))
        sums = _alloc(_sums_size(p.d, p.k))
        with nogil:
            for e in range(epochs):
                _epoch_start(work, start, size)
                if orders is not None:
                    p.order = &orders[e, 0]
                if direct:      # an epoch of one slice: no slicer, no layers
                    out = _sgd_epoch(&rule.c, &p, st, lr, global_step + steps, 0, per_epoch,
                                     0.0, scratch)
                else:
                    out = _epoch_steps(&rule.c, &p, st, lr, global_step + steps, 0,
                                       per_epoch, 0.0, scratch, sums)
                if out.interrupted:
                    break
                if out.nonfinite or out.steps < per_epoch or not _all_finite(st.params,
                                                                            size):
                    memcpy(work, start, _work_size(size) * sizeof(double))
                    break
                losses[e] = rule.c.loss_factor * out.loss_sum / per_epoch
                grad_norms[e] = _norm(st.grad_sum, size) / per_epoch
                steps += out.steps
                done += 1
                if _converged(&stopping, losses[e], grad_norms[e]):
                    converged = True
                    break
                countdown -= p.n        # look at signals between epochs too
                if countdown <= 0:
                    countdown = check
                    if _interrupted(&watch, 0):
                        out.interrupted = True
                        break
        if out.interrupted:
            _raise_pending()        # the state stays as the call found it
        _copy_back(work, state)
        l1_total = st.l1_total[0]
    finally:
        _free(work)
        _free(start)
        _free(scratch)
        _free(sums)
    return (done, steps, l1_total, stopping.best, stopping.no_improvement, converged)


def norm(const double[::1] x):               # IN
    """``sqrt(sum x**2)`` in the fixed order the epoch loops use."""
    cdef double value
    with nogil:
        value = _norm(&x[0], x.shape[0]) if x.shape[0] > 0 else 0.0
    return value


def sums_step(double[:, ::1] state,           # IN/OUT (N_STATE_ROWS, (d + 1) * k)
              Rule rule,                      # IN the run's update rule
              const double[::1] sums,         # IN (1 + k + k*d,) raw sums, as full_sums's
              Py_ssize_t n,                   # rows the sums are over
              Py_ssize_t n_outputs,           # k
              double lr,                      # the epoch's learning rate
              Py_ssize_t global_step,         # global index t of the step
              double running,                 # the epoch's running loss sum so far
              double l1_total):               # cumulative L1: the total penalty so far
    """One full-batch step from raw sums computed elsewhere (``gdcore.dask``
    adds the sums of its chunks), with the arithmetic of a full-batch epoch.

    Returns ``(steps, running, part, nonfinite, l1_total)`` as :func:`run_epoch`.
    """
    cdef Py_ssize_t k = n_outputs
    cdef Py_ssize_t d = state.shape[1] // k - 1
    cdef double *work = _alloc(_work_size(state.shape[1]))
    cdef State st
    cdef EpochOutcome out
    try:
        with nogil:
            st = _working_copy(state, l1_total, work)
            out = _sums_step(&rule.c, st, d, k, n, sums[0], &sums[1 + k], &sums[1],
                             global_step, lr, running)
            _copy_back(work, state)
            l1_total = st.l1_total[0]
    finally:
        _free(work)
    return (out.steps, out.loss_sum, rule.c.loss_factor * out.part,
            bool(out.nonfinite), l1_total)


def full_sums(X,                                # IN (n, d) float64 or float32
              const double[:, ::1] Y,          # IN (n, k), or None: targets 0
              const double[::1] weight,        # IN (n,) sample weights, or None
              const double[::1] params,        # IN ((d + 1) * k,) by output
              double[::1] out,                 # OUT (1 + k + k*d,): S, R, G
              int n_threads,
              const double[:, ::1] standardize=None):  # IN (2, d): centres, 1/scales
    """Raw sums over all rows in one pass (parallel, fixed block order):
    ``S = sum s*|r|^2``, ``R = sum s*r`` (k,) and ``G = X.T @ (s*r)`` by
    output (k*d,), with ``r = X @ W + b - Y``.

    With ``Y`` None (one output, targets 0) this is ``A.T @ (A @ [w, b])``
    for ``A = [X, 1]`` (power iteration). The raw sums of several chunks add
    up exactly in any fixed order. With ``standardize``, X's rows are taken
    as ``(x - centres) * (1 / scales)``.
    """
    cdef Problem p
    cdef gd_watch watch = _watch()
    cdef double *partials = NULL
    cdef double *work = NULL
    cdef double *sums = NULL
    _set_rows(&p, X)
    p.Y = &Y[0, 0] if Y is not None else NULL
    p.weight = &weight[0] if weight is not None else NULL
    p.order = NULL
    _set_standardize(&p, standardize)
    p.n = X.shape[0]
    p.k = Y.shape[1] if Y is not None else 1
    p.watch = &watch
    try:
        partials = _alloc(_n_blocks(p.n) * _block_stride(p.d, p.k))
        work = _alloc(params.shape[0])      # params on whole cache lines
        sums = _alloc(_sums_size(p.d, p.k))
        with nogil:
            memcpy(work, &params[0], params.shape[0] * sizeof(double))
            _full_sums(&p, work, partials, n_threads, sums)
        if watch.stop:
            _raise_pending()        # out stays as the call found it
        with nogil:
            out[0] = sums[_at_S(p.d, p.k)]
            memcpy(&out[1], sums + _at_S(p.d, p.k) + 1, p.k * sizeof(double))
            memcpy(&out[1 + p.k], sums, p.k * p.d * sizeof(double))
    finally:
        _free(partials)
        _free(work)
        _free(sums)


def subset_loss(X,                               # IN (n, d) float64 or float32
                const double[:, ::1] Y,          # IN (n, k)
                const Py_ssize_t[::1] rows,      # IN (m,) row indices
                const double[::1] params,        # IN ((d + 1) * k,) by output
                double loss_factor):
    """Loss (summed over outputs) over the rows ``rows`` (a held-out set)."""
    cdef Problem p
    cdef Py_ssize_t d, k = Y.shape[1], m = rows.shape[0], q, i, c
    cdef Py_ssize_t check, countdown
    cdef gd_watch watch = _watch()
    cdef double r, total = 0.0
    cdef double *z = NULL
    cdef const double *x
    _set_rows(&p, X)
    d = p.d
    check = _check_every(d)
    countdown = check
    try:
        z = _alloc(d)
        with nogil:
            for q in range(m):
                countdown -= 1
                if GD_UNLIKELY(countdown == 0):
                    countdown = check
                    if _interrupted(&watch, 0):
                        break
                i = rows[q]
                x = _training_row(p.X + i * p.row_bytes, p.single, d, z)
                for c in range(k):
                    r = _dot(x, &params[c * d], d) + params[k * d + c] - Y[i, c]
                    total += r * r
    finally:
        _free(z)
    if watch.stop:
        _raise_pending()
    return loss_factor * total / m


def fill_range(Py_ssize_t[::1] out):   # OUT (n,): 0, 1, ..., n-1
    """Write 0..n-1 into ``out`` (a reusable index buffer; no temporary)."""
    cdef Py_ssize_t i
    with nogil:
        for i in range(out.shape[0]):
            out[i] = i
