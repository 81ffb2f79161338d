"""gdcore.loss_grid / loss_surface (the compiled landscape kernel), ewma and
descent_path: hand-derived values, agreement with the reference path and with
gdcore.fit, thread and instruction-set independence, and every error path."""

from __future__ import annotations

import importlib

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import gdcore
from gdcore import _dispatch

X3 = np.arange(-1.0, 5.0)          # tutorial 3: xs = -1..4, ys = 2x - 1
Y3 = 2 * X3 - 1


def _numpy_losses(X, y, W, B, a=1.0):
    """The loss at each candidate, written with NumPy (independent of gdcore)."""
    X = np.asarray(X, dtype=np.float64).reshape(len(y), -1)
    W = np.asarray(W, dtype=np.float64).reshape(len(B), -1)
    residuals = X @ W.T + np.asarray(B)[None, :] - np.asarray(y)[:, None]
    return a * np.mean(residuals ** 2, axis=0)


# ---------------------------------------------------------------------------
# loss_grid: values
# ---------------------------------------------------------------------------

def test_tutorial3_by_hand(backend):
    """With b = -1 the residual is (w - 2) x and sum(x**2) = 31, so the mse is
    31/6 (w - 2)**2: 186 at w = 8, 0 at w = 2."""
    assert gdcore.loss_grid(X3, Y3, [8.0, 2.0], -1.0, backend=backend).tolist() == [186.0, 0.0]
    ws = np.arange(-40, 121) / 10.0
    np.testing.assert_allclose(gdcore.loss_grid(X3, Y3, ws, -1.0, backend=backend),
                               31 / 6 * (ws - 2) ** 2, rtol=1e-13, atol=1e-13)


def test_tutorial2_one_sample_by_hand(backend):
    """(x, y) = (1.5, 0.8): half_mse 0.18 at (0.8, 0.2) and 0.0820125 at (0.71, 0.14)."""
    values = gdcore.loss_grid([[1.5]], [0.8], [[0.8], [0.71]], [0.2, 0.14], loss="half_mse",
                              backend=backend)
    np.testing.assert_allclose(values, [0.18, 0.0820125], rtol=1e-12)


@pytest.mark.parametrize("d", [1, 2, 3, 8, 9, 20])
@pytest.mark.parametrize("n_candidates", [1, 7, 8, 9, 100, 1203])
def test_matches_numpy_and_value_and_grad(d, n_candidates):
    """Every candidate's loss is the NumPy loss and value_and_grad's loss, for
    candidate counts around and across the kernel's block sizes."""
    rng = np.random.default_rng(d * 1000 + n_candidates)
    X = rng.standard_normal((257, d))
    y = rng.standard_normal(257)
    W = rng.standard_normal((n_candidates, d))
    B = rng.standard_normal(n_candidates)
    values = gdcore.loss_grid(X, y, W, B)
    assert values.shape == (n_candidates,) and values.dtype == np.float64
    np.testing.assert_allclose(values, _numpy_losses(X, y, W, B), rtol=1e-12)
    for k in range(0, n_candidates, max(1, n_candidates // 5)):
        expected = gdcore.value_and_grad(X, y, W[k], B[k])[0]
        assert values[k] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("d", [1, 3, 9])
def test_backends_give_the_same_bits(d):
    """The kernel does the reference path's arithmetic in its order: the
    specification's gdcore.reference.loss_values, which is what
    backend="reference" runs."""
    rng = np.random.default_rng(d)
    X = rng.standard_normal((60, d))
    y = rng.standard_normal(60)
    W = rng.standard_normal((37, d)) * 3
    B = rng.standard_normal(37)
    for loss, a in (("mse", 1.0), ("half_mse", 0.5)):
        compiled = gdcore.loss_grid(X, y, W, B, loss=loss)
        reference = gdcore.loss_grid(X, y, W, B, loss=loss, backend="reference")
        np.testing.assert_array_equal(compiled, reference)
        spec = gdcore.reference.loss_values(X.tolist(), y.tolist(), W.tolist(), B.tolist(), a)
        np.testing.assert_array_equal(reference, spec)


def test_half_mse_is_half_of_mse():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((50, 2)), rng.standard_normal(50)
    W = rng.standard_normal((30, 2))
    np.testing.assert_array_equal(gdcore.loss_grid(X, y, W, 0.3, loss="half_mse"),
                                  0.5 * gdcore.loss_grid(X, y, W, 0.3))


@pytest.mark.parametrize("d", [1, 4])
def test_same_bits_for_any_thread_count(d):
    rng = np.random.default_rng(5)
    X = rng.standard_normal((3000, d))
    y = rng.standard_normal(3000)
    W = rng.standard_normal((2000, d))
    B = rng.standard_normal(2000)
    one = gdcore.loss_grid(X, y, W, B, n_threads=1)
    for threads in (2, 3, 7):
        np.testing.assert_array_equal(gdcore.loss_grid(X, y, W, B, n_threads=threads), one)
    np.testing.assert_array_equal(gdcore.loss_grid(X, y, W, B), one)


@pytest.mark.parametrize("d", [1, 5])
def test_every_instruction_set_build_gives_the_same_bits(d):
    """The landscape kernel is built per instruction set like the main kernels;
    every build this CPU can run computes the same bits."""
    rng = np.random.default_rng(11)
    X = rng.standard_normal((500, d))
    y = rng.standard_normal(500)
    W = rng.standard_normal((700, d))
    B = rng.standard_normal(700)
    results = {}
    for name in _dispatch.available():
        suffix = _dispatch.VARIANTS[name][0]
        try:
            module = importlib.import_module(f"gdcore._landscape{suffix}")
        except ImportError:
            continue
        out = np.empty(700)
        module.loss_grid(X, y, W, B, 1.0, out, 2)
        results[name] = out
    assert "baseline" in results
    for name, out in results.items():
        np.testing.assert_array_equal(out, results["baseline"], err_msg=name)


def test_scalar_and_vector_intercepts_and_one_feature_shapes():
    x = np.linspace(0, 1, 20)
    y = 3 * x - 1
    ws = np.linspace(-1, 4, 11)
    as_1d = gdcore.loss_grid(x, y, ws, 0.5)
    np.testing.assert_array_equal(gdcore.loss_grid(x, y, ws[:, None], 0.5), as_1d)
    np.testing.assert_array_equal(gdcore.loss_grid(x[:, None], y, ws, np.full(11, 0.5)), as_1d)
    np.testing.assert_array_equal(gdcore.loss_grid(x, y, ws, np.float32(0.5)), as_1d)


def test_empty_candidate_list():
    out = gdcore.loss_grid(X3, Y3, np.empty((0, 1)), [])
    assert out.shape == (0,)


def test_array_likes_are_converted_and_inputs_not_modified():
    rng = np.random.default_rng(2)
    X = np.asfortranarray(rng.standard_normal((40, 3)))
    y = rng.integers(-3, 3, 40)
    W = rng.standard_normal((9, 3)).astype(np.float32)
    B = list(range(9))
    copies = X.copy(), y.copy(), W.copy()
    values = gdcore.loss_grid(X, y.tolist(), W, B)
    np.testing.assert_allclose(values, _numpy_losses(X, y, W.astype(np.float64), B),
                               rtol=1e-12)
    np.testing.assert_array_equal(X, copies[0])
    np.testing.assert_array_equal(y, copies[1])
    np.testing.assert_array_equal(W, copies[2])


def test_overflow_gives_inf_not_an_error():
    values = gdcore.loss_grid(X3, Y3, [1e200, 2.0], -1.0)
    assert values[0] == np.inf and values[1] == 0.0


@settings(max_examples=40, deadline=None)
@given(n=st.integers(1, 30), d=st.integers(1, 6), k=st.integers(1, 40),
       seed=st.integers(0, 2 ** 32 - 1))
def test_property_agrees_with_numpy_and_reference(n, d, k, seed):
    rng = np.random.default_rng(seed)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    W = rng.standard_normal((k, d))
    B = rng.standard_normal(k)
    compiled = gdcore.loss_grid(X, y, W, B)
    np.testing.assert_allclose(compiled, _numpy_losses(X, y, W, B), rtol=1e-11, atol=1e-14)
    np.testing.assert_array_equal(compiled, gdcore.loss_grid(X, y, W, B, backend="reference"))


# ---------------------------------------------------------------------------
# loss_grid: bad input
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("where", ["X", "y"])
def test_non_finite_data_is_named(backend, where):
    X, y = X3.copy(), Y3.copy()
    (X if where == "X" else y)[2] = np.nan
    with pytest.raises(ValueError, match=rf"^{where} must contain only finite values"):
        gdcore.loss_grid(X, y, [1.0, 2.0], 0.0, backend=backend)


@pytest.mark.parametrize("W, b, error, message", [
    ([[1.0, 2.0]], 0.0, ValueError, r"W must have shape \(n_candidates, 1\)"),
    (np.ones((2, 1, 1)), 0.0, ValueError, r"W must have shape"),
    ([1.0, np.nan], 0.0, ValueError, r"W must be finite; got nan at candidate 1"),
    ([1.0, np.inf], 0.0, ValueError, r"W must be finite"),
    ("abc", 0.0, TypeError, r"W must be a real numeric array-like"),
    ([1j, 2j], 0.0, TypeError, r"W must hold real numbers"),
    ([[1.0], [2, 3]], 0.0, TypeError, r"W must be a real numeric array-like"),
    ([1.0, 2.0], [0.0, 1.0, 2.0], ValueError, r"b must be a number or have shape \(2,\)"),
    ([1.0, 2.0], [[0.0, 1.0]], ValueError, r"b must be a number or have shape \(2,\)"),
    ([1.0, 2.0], [0.0, np.nan], ValueError, r"b must be finite; got nan at candidate 1"),
    ([1.0, 2.0], np.nan, ValueError, r"b must be finite"),
    ([1.0, 2.0], "0", TypeError, r"b must be a real number"),
    ([1.0, 2.0], None, TypeError, r"b must be a real number"),
    ([1.0, 2.0], True, TypeError, r"b must be a real number"),
])
def test_bad_candidates(W, b, error, message):
    with pytest.raises(error, match=message):
        gdcore.loss_grid(X3, Y3, W, b)


def test_one_dimensional_W_needs_one_feature():
    X = np.ones((5, 2))
    with pytest.raises(ValueError, match=r"W must have shape \(n_candidates, 2\) to match "
                                         r"X's 2 feature\(s\); got shape \(3,\)"):
        gdcore.loss_grid(X, np.ones(5), [1.0, 2.0, 3.0])


@pytest.mark.parametrize("options, error, message", [
    (dict(loss="mae"), ValueError, "loss must be one of"),
    (dict(backend="gpu"), ValueError, "backend must be one of"),
    (dict(n_threads=0), ValueError, "n_threads must be an integer in"),
    (dict(n_threads=True), TypeError, "n_threads must be an integer"),
    (dict(n_threads=1.5), TypeError, "n_threads must be an integer"),
])
def test_bad_options(options, error, message):
    with pytest.raises(error, match=message):
        gdcore.loss_grid(X3, Y3, [1.0], 0.0, **options)


def test_bad_data():
    with pytest.raises(ValueError, match="X and y must have the same number of samples"):
        gdcore.loss_grid(X3, Y3[:-1], [1.0])
    # (descent_path takes several outputs, as fit does: test_path_of_several_outputs)
    for call in (lambda: gdcore.loss_grid(X3, Y3[:, None], [1.0]),
                 lambda: gdcore.loss_surface(X3, np.ones((6, 2)), [1.0], [1.0])):
        with pytest.raises(ValueError, match=r"y must be 1-D \(n_samples,\): \w+ handles one "
                                             r"output; got shape \(6, [12]\)"):
            call()


# ---------------------------------------------------------------------------
# loss_surface
# ---------------------------------------------------------------------------

def test_surface_layout_and_values(backend):
    """surface[i, j] is the loss at (w_values[i], b_values[j]); on tutorial 2's
    noiseless points the grid's minimum is exactly 0 at (2, 3)."""
    x = np.random.default_rng(0).random(100)
    y = 2 * x + 3
    ws = np.arange(0, 41) / 10.0
    bs = np.arange(0, 61) / 10.0
    surface = gdcore.loss_surface(x, y, ws, bs, loss="half_mse", backend=backend)
    assert surface.shape == (41, 61)
    i, j = np.unravel_index(np.argmin(surface), surface.shape)
    assert (ws[i], bs[j]) == (2.0, 3.0)
    assert surface[i, j] == 0.0
    for i, j in [(0, 0), (5, 40), (40, 60), (13, 7)]:
        expected = gdcore.value_and_grad(x, y, [ws[i]], bs[j], loss="half_mse")[0]
        assert surface[i, j] == pytest.approx(expected, rel=1e-12)


@pytest.mark.parametrize("X, w_values, b_values, error, message", [
    (np.ones((6, 2)), [1.0], [1.0], ValueError, "X must have one feature; got 2"),
    (X3, [], [1.0], ValueError, "w_values must be a non-empty 1-D array"),
    (X3, [1.0], [[1.0, 2.0]], ValueError, "b_values must be a non-empty 1-D array"),
    (X3, [1.0, np.nan], [1.0], ValueError, "w_values must be finite; got nan at index 1"),
    (X3, [1.0], ["a"], TypeError, "b_values must hold real numbers"),
])
def test_surface_bad_input(X, w_values, b_values, error, message):
    with pytest.raises(error, match=message):
        gdcore.loss_surface(X, Y3, w_values, b_values)


# ---------------------------------------------------------------------------
# ewma
# ---------------------------------------------------------------------------

def test_ewma_recurrence():
    values = np.array([4.0, 2.0, 8.0, 0.0])
    # s0 = 4, s1 = 0.5*4 + 0.5*2 = 3, s2 = 0.5*3 + 0.5*8 = 5.5, s3 = 2.75
    np.testing.assert_allclose(gdcore.ewma(values, 0.5), [4.0, 3.0, 5.5, 2.75], rtol=1e-15)
    np.testing.assert_array_equal(gdcore.ewma(values, 0.0), values)
    np.testing.assert_array_equal(gdcore.ewma([7.0], 0.9), [7.0])


def test_ewma_as_tutorial4_smooths_a_loss_curve():
    """Tutorial 4 smooths with level = 0.7 * level + 0.3 * value from the first value."""
    rng = np.random.default_rng(3)
    curve = np.exp(-np.arange(30) / 5) + 0.05 * rng.random(30)
    level, expected = curve[0], []
    for value in curve:
        level = 0.7 * level + 0.3 * value
        expected.append(level)
    np.testing.assert_allclose(gdcore.ewma(curve, 0.7), expected, rtol=1e-15)


@pytest.mark.parametrize("values, smoothing, error, message", [
    ([1.0, 2.0], 1.0, ValueError, r"smoothing must be in \[0, 1\)"),
    ([1.0, 2.0], -0.1, ValueError, r"smoothing must be in \[0, 1\)"),
    ([1.0, 2.0], np.nan, ValueError, "smoothing must be finite"),
    ([1.0, 2.0], True, TypeError, "smoothing must be a real number"),
    ([], 0.5, ValueError, "values must be a non-empty 1-D array"),
    ([[1.0, 2.0]], 0.5, ValueError, "values must be a non-empty 1-D array"),
    ("abc", 0.5, TypeError, "values must be a real numeric array-like"),
])
def test_ewma_bad_input(values, smoothing, error, message):
    with pytest.raises(error, match=message):
        gdcore.ewma(values, smoothing)


# ---------------------------------------------------------------------------
# descent_path
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
@pytest.mark.parametrize("shuffle", [False, True])
def test_path_ends_where_fit_ends(backend, method, shuffle):
    """Same order, same batches, same arithmetic: the path's end and history
    are fit's, bit for bit."""
    X, y, _ = gdcore.make_regression(203, 3, noise=0.3, bias=0.5, seed=4)
    options = dict(method=method, batch_size=16, lr=0.02, epochs=3, shuffle=shuffle, seed=7,
                   loss="half_mse", backend=backend)
    path = gdcore.descent_path(X, y, **options)
    result = gdcore.fit(X, y, **options)
    per_epoch = {"batch": 1, "sgd": 203, "minibatch": 13}[method]
    assert path.steps_per_epoch == per_epoch
    assert path.n_steps == 3 * per_epoch == result.n_steps
    assert path.w.shape == (3 * per_epoch + 1, 3) and path.b.shape == (3 * per_epoch + 1,)
    assert path.batch_size == result.batch_size
    np.testing.assert_array_equal(path.w[-1], result.w)
    assert path.b[-1] == result.b
    np.testing.assert_array_equal(path.history, result.history)
    np.testing.assert_allclose(path.history, path.step_loss.reshape(3, -1).mean(axis=1),
                               rtol=1e-13)
    assert (path.method, path.loss, path.backend) == (method, "half_mse", backend)


@pytest.mark.parametrize("options", [
    dict(method="minibatch", batch_size=7, momentum=0.7, nesterov=True, weight_decay=0.1),
    dict(method="sgd", schedule="invscaling", l1=0.01, sample_weight=np.arange(1.0, 41.0)),
    dict(method="minibatch", batch_size=9, average=5, validation_fraction=0.25,
         fit_intercept=False, b0=0.5),
    dict(method="batch", schedule="step", tol=1e-3, n_iter_no_change=1),
], ids=["nesterov", "weights-invscaling", "average-split", "batch-early-stop"])
def test_path_takes_every_option_of_fit(backend, options):
    """Any keyword of fit: the path's end is fit's last iterate (averaging
    only changes what fit returns), its history fit's."""
    X, y, _ = gdcore.make_regression(40, 2, noise=0.3, seed=6)
    common = dict(lr=0.05, epochs=4, seed=2, backend=backend, **options)
    path = gdcore.descent_path(X, y, **common)
    result = gdcore.fit(X, y, **common)
    np.testing.assert_array_equal(path.history, result.history)
    assert path.n_steps == result.n_steps and path.steps_per_epoch == result.steps_per_epoch
    plain = dict(common, average=False)
    last = gdcore.fit(X, y, **plain) if options.get("average") else result
    np.testing.assert_array_equal(path.w[-1], last.w)
    assert path.b[-1] == last.b


def test_path_of_several_outputs(backend):
    """A 2-D y: w of shape (n_steps + 1, d, k), b of shape (n_steps + 1, k)."""
    Y = np.column_stack([Y3, 3 - Y3])
    options = dict(method="minibatch", batch_size=4, lr=0.01, epochs=3, seed=1,
                   b0=[1.0, -1.0], backend=backend)
    path = gdcore.descent_path(X3, Y, **options)
    result = gdcore.fit(X3, Y, **options)
    assert path.n_steps == 6
    assert path.w.shape == (7, 1, 2) and path.b.shape == (7, 2)
    np.testing.assert_array_equal(path.w[0], np.zeros((1, 2)))
    np.testing.assert_array_equal(path.b[0], [1.0, -1.0])
    np.testing.assert_array_equal(path.w[-1], result.w)
    np.testing.assert_array_equal(path.b[-1], result.b)


def test_path_starts_where_a_warm_start_left_off():
    X, y, _ = gdcore.make_regression(30, 2, seed=4)
    options = dict(method="sgd", lr=0.02, seed=3, momentum=0.5)
    first = gdcore.fit(X, y, epochs=2, **options)
    path = gdcore.descent_path(X, y, epochs=1, warm_start=first, **options)
    np.testing.assert_array_equal(path.w[0], first.w)
    assert path.b[0] == first.b
    np.testing.assert_array_equal(path.w[-1], gdcore.fit(X, y, epochs=3, **options).w)


@pytest.mark.parametrize("options, message", [
    (dict(callback=print), "descent_path records every step through fit's callback"),
    (dict(callback_every=2), "it does not take callback_every"),
    (dict(learning_rate=0.1), "unexpected keyword argument 'learning_rate'"),
])
def test_path_refuses_the_callback_and_unknown_keywords(options, message):
    with pytest.raises(TypeError, match=message):
        gdcore.descent_path(X3, Y3, epochs=1, **options)


def test_path_steps_are_fit_steps_one_at_a_time():
    """Every step of a mini-batch path is the batch step that fit takes from
    the previous point: checked for the first steps against a NumPy replay."""
    X, y, _ = gdcore.make_regression(40, 2, noise=0.1, seed=1)
    path = gdcore.descent_path(X, y, method="minibatch", batch_size=16, lr=0.1, epochs=1,
                               shuffle=False)
    w, b = np.zeros(2), 0.0
    for t, rows in enumerate([slice(0, 16), slice(16, 32), slice(32, 40)]):
        r = X[rows] @ w + b - y[rows]
        assert path.step_loss[t] == pytest.approx(np.mean(r ** 2), rel=1e-13)
        w = w - 0.1 * (2 / len(r)) * (X[rows].T @ r)
        b = b - 0.1 * (2 / len(r)) * r.sum()
        np.testing.assert_allclose(path.w[t + 1], w, rtol=1e-13)
        assert path.b[t + 1] == pytest.approx(b, rel=1e-13)


def test_path_tutorial3_closed_form(backend):
    """w_k = 2 + 6 q**k with q = 1 - 0.01 * 31/3, b held at -1."""
    q = 1 - 0.31 / 3
    path = gdcore.descent_path(X3, Y3, method="batch", lr=0.01, epochs=50, w0=[8.0],
                               b0=-1.0, fit_intercept=False, backend=backend)
    np.testing.assert_allclose(path.w[:, 0], 2 + 6 * q ** np.arange(51), rtol=1e-13)
    assert np.all(path.b == -1.0)
    np.testing.assert_allclose(path.step_loss, 186 * q ** (2 * np.arange(50)), rtol=1e-11)


def test_path_with_no_epochs_is_the_start():
    path = gdcore.descent_path(X3, Y3, epochs=0, w0=[3.0], b0=1.0)
    assert path.w.tolist() == [[3.0]] and path.b.tolist() == [1.0]
    assert path.n_steps == 0 and path.history.shape == (0,)


def test_path_does_not_modify_inputs():
    X, y, _ = gdcore.make_regression(30, 2, seed=2)
    w0 = np.array([0.5, -0.5])
    copies = X.copy(), y.copy(), w0.copy()
    gdcore.descent_path(X, y, w0=w0, epochs=2, seed=0)
    for before, after in zip(copies, (X, y, w0), strict=True):
        np.testing.assert_array_equal(before, after)


def test_path_divergence_reports_epoch_and_step():
    X, y, _ = gdcore.make_regression(50, 2, seed=3)
    with pytest.raises(gdcore.DivergenceError) as info:
        gdcore.descent_path(X, y, method="sgd", lr=1e150, epochs=3, shuffle=False)
    err = info.value
    assert err.epoch == 0 and 0 <= err.step < 50
    assert np.isfinite(err.w).all() and np.isfinite(err.b)
    assert "epoch 0" in str(err)


def test_path_non_finite_data_is_named():
    X = X3.copy()
    X[3] = np.inf
    with pytest.raises(ValueError, match="X must contain only finite values.*got inf"):
        gdcore.descent_path(X, Y3, epochs=1)


@pytest.mark.parametrize("options, error, message", [
    (dict(lr=-1.0), ValueError, "lr must be a positive number"),
    (dict(method="newton"), ValueError, "method must be one of"),
    (dict(batch_size=0), ValueError, "batch_size must be an integer >= 1"),
    (dict(w0=[1.0, 2.0]), ValueError, r"w0 must have shape \(1,\)"),
    (dict(epochs=-1), ValueError, "epochs must be an integer"),
    (dict(loss="mae"), ValueError, "loss must be one of"),
    (dict(seed=-3), ValueError, "seed must be an integer >= 0"),
])
def test_path_bad_options_as_fit(options, error, message):
    with pytest.raises(error, match=message):
        gdcore.descent_path(X3, Y3, **options)
