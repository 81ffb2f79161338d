"""The compiled backend and the plain-Python reference compute the same numbers.

docs/design.md ("Guarantees"): "The two backends agree to rtol=1e-9 on every result; the tests
prove it." Each case is small (a few epochs on make_regression data) so the
whole grid stays fast.
"""

from __future__ import annotations

import ast
import inspect
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gdcore
from gdcore import _dispatch, _options

SHAPES = [(13, 1), (50, 3), (101, 5)]
#: d = 11 takes the 8-way unrolled dot product of the kernels plus a remainder
WIDE = (40, 11)
BATCH_SIZES = ["1", "7", "n-1", "n", "n+5"]
SHUFFLES = [None, 3]          # None: shuffle=False; an int: shuffle=True with that seed


def _batch_size(kind: str, n: int) -> int:
    return {"1": 1, "7": 7, "n-1": n - 1, "n": n, "n+5": n + 5}[kind]


def test_the_agreement_checks_can_fail(regression, assert_agree, max_relative_difference):
    """The shared checks (tests/conftest.py) tell rtol 1e-9 from a bigger gap,
    on arrays, tuples and whole results (every array and count of them)."""
    assert max_relative_difference([1.0, 0.0, -2.0], [1.0, 0.0, -2.0]) == 0.0
    assert max_relative_difference([1.0, 4.0], [1.0, 5.0]) == pytest.approx(0.2)
    assert max_relative_difference([np.inf], [1.0]) == np.inf
    assert max_relative_difference([np.nan], [1.0]) == np.inf
    assert_agree(np.array([1.0, 2.0]), np.array([1.0, 2.0 * (1 + 1e-10)]))
    with pytest.raises(AssertionError, match="max relative difference 1e-08"):
        assert_agree(np.array([1.0, 2.0]), np.array([1.0, 2.0 * (1 + 1e-8)]))
    with pytest.raises(AssertionError):
        assert_agree((1.0, np.ones(2)), (1.0, np.ones(3)))
    X, y = regression(20, 2)
    result = gdcore.fit(X, y, epochs=2, seed=0)
    assert_agree(result, result)
    for other in (gdcore.fit(X, y, epochs=2, seed=0, lr=0.01 * (1 + 1e-7)),
                  gdcore.fit(X, y, epochs=3, seed=0),
                  gdcore.fit(X, y, epochs=2, seed=0, validation_fraction=0.2),
                  gdcore.fit(X, y, epochs=2, seed=0, batch_size=5)):
        with pytest.raises(AssertionError):
            assert_agree(result, other)


@pytest.mark.parametrize("shuffle_seed", SHUFFLES, ids=["ordered", "shuffled"])
@pytest.mark.parametrize("fit_intercept", [True, False], ids=["intercept", "no-intercept"])
@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("batch_kind", BATCH_SIZES)
@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
@pytest.mark.parametrize("shape", SHAPES + [WIDE], ids=lambda s: f"{s[0]}x{s[1]}")
def test_fit_backends_agree(regression, assert_agree, shape, method, batch_kind, loss,
                            fit_intercept, shuffle_seed):
    """fit's w, b and history agree between backends over the whole option grid,
    including d=1 and n not divisible by the batch size."""
    n, d = shape
    X, y = regression(n, d, seed=n + d)
    options = dict(method=method, batch_size=_batch_size(batch_kind, n), lr=0.02, epochs=3,
                   loss=loss, fit_intercept=fit_intercept, shuffle=shuffle_seed is not None,
                   seed=shuffle_seed, b0=0.1)
    compiled = gdcore.fit(X, y, backend="cython", **options)
    reference = gdcore.fit(X, y, backend="reference", **options)
    assert_agree(compiled, reference)
    # Training moved the parameters: the comparison is not between two copies of w0.
    assert np.abs(compiled.w).max() > 1e-3


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_fit_backends_agree_from_given_start(regression, assert_agree, method):
    """Agreement also holds from non-zero w0 and b0 over more epochs."""
    X, y = regression(37, 4, seed=11)
    options = dict(method=method, batch_size=5, lr=0.03, epochs=8, w0=[0.5, -1.0, 2.0, 0.25],
                   b0=-0.75, shuffle=True, seed=123)
    assert_agree(gdcore.fit(X, y, **options), gdcore.fit(X, y, backend="reference", **options))


def test_the_reference_backend_is_the_specification(regression):
    """fit(backend="reference") is gdcore.reference.train_epoch (the plain-Python
    specification) run epoch after epoch, bit for bit: the backend adds the
    loop around it and nothing to its arithmetic."""
    X, y = regression(20, 2)
    options = dict(method="minibatch", batch_size=6, lr=0.05, epochs=2, shuffle=False,
                   momentum=0.5, weight_decay=0.1, schedule="invscaling", average=3)
    result = gdcore.fit(X, y, backend="reference", **options)
    config = _options.Config(**options)
    state = [[0.0] * 3 for _ in range(7)]         # params, grad_sum, ..., average
    rows, targets, t = X.tolist(), y[:, None].tolist(), 0
    history = []
    for _ in range(2):
        state[1] = [0.0] * 3
        steps, loss_sum, part, nonfinite = gdcore.reference.train_epoch(
            rows, targets, list(range(20)), None, state, [0.0], config, 6, 0.05, t, 0, 4)
        assert (steps, nonfinite, part) == (4, False, loss_sum)
        t += steps
        history.append(loss_sum / steps)
    np.testing.assert_array_equal(result.w, state[6][:2])         # averaged from step 3
    assert result.b == state[6][2]
    np.testing.assert_array_equal(result.history, history)


def test_the_specification_is_plain_python():
    """gdcore.reference is the independent statement of the arithmetic: it
    imports neither NumPy nor anything of gdcore (its docstring says so)."""
    tree = ast.parse(inspect.getsource(gdcore.reference))
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            assert node.level == 0, "a relative import: gdcore.reference uses gdcore"
            imported.add(node.module.split(".")[0])
    assert imported <= {"__future__", "math", "collections", "typing"}, imported


_WITHOUT_KERNELS = r"""
import json, sys
import numpy as np
import gdcore
from gdcore import _dispatch

options = json.loads(sys.argv[1])
X, y, _ = gdcore.make_regression(40, 3, noise=0.2, bias=0.5, seed=1)
result = gdcore.fit(X, y, backend="reference", **options)
value = gdcore.value_and_grad(X, y, result.w, result.b, backend="reference")
try:
    gdcore.fit(X, y, epochs=1)
except ImportError as exc:
    error = str(exc)
else:
    error = None
print(json.dumps({"file": gdcore.__file__, "KERNELS": gdcore.KERNELS,
                  "kernels": _dispatch.kernels is None, "OPENMP": gdcore.OPENMP,
                  "w": result.w.tolist(), "b": result.b, "history": result.history.tolist(),
                  "value": [value[0], value[1].tolist(), value[2]], "error": error}))
"""


def test_gdcore_works_without_its_compiled_kernels(tmp_path, assert_agree):
    """The Python files of the package alone (python/gdcore of a checkout, no
    compiled module): import gdcore works, the reference backend gives this
    process's numbers, and the default (cython) backend raises an ImportError
    that says how to build it or what to use instead."""
    package = tmp_path / "gdcore"
    package.mkdir()
    for source in Path(gdcore.__file__).parent.glob("*.py"):
        shutil.copy(source, package)
    assert not list(package.glob("*.so")) and not list(package.glob("*.pyd"))
    options = dict(method="minibatch", batch_size=7, lr=0.05, epochs=3, seed=2,
                   momentum=0.5, schedule="invscaling")
    environment = {key: value for key, value in os.environ.items()
                   if key not in ("PYTHONPATH", "GDCORE_KERNELS")}
    environment["PYTHONPATH"] = str(tmp_path)
    done = subprocess.run([sys.executable, "-c", _WITHOUT_KERNELS, json.dumps(options)],
                          cwd=tmp_path, env=environment, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr
    got = json.loads(done.stdout)
    assert Path(got["file"]).parent == package           # the copy, not this gdcore
    assert got["KERNELS"] is None and got["kernels"] and got["OPENMP"] is False
    X, y, _ = gdcore.make_regression(40, 3, noise=0.2, bias=0.5, seed=1)
    here = gdcore.fit(X, y, backend="reference", **options)
    assert_agree(np.array(got["w"]), here.w, rtol=1e-12, atol=0)
    assert_agree(got["b"], here.b, rtol=1e-12, atol=0)
    assert_agree(np.array(got["history"]), here.history, rtol=1e-12, atol=0)
    value = gdcore.value_and_grad(X, y, here.w, here.b, backend="reference")
    assert_agree(tuple(got["value"]), value, rtol=1e-12, atol=1e-15)
    error = got["error"]
    assert error is not None, "backend='cython' worked without the compiled kernels"
    assert "not built" in error and "pip install" in error and "backend='reference'" in error


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("shape", SHAPES + [(1, 1), (3000, 12)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_value_and_grad_backends_agree(assert_agree, loss_factor, shape, loss):
    """value_and_grad's loss and both gradients agree between backends (the
    3000 x 12 case spans several row blocks of the parallel pass and a d that
    is not a multiple of the 8-way unrolled dot product)."""
    n, d = shape
    rng = np.random.default_rng(n * d)
    X = rng.standard_normal((n, d))
    y = rng.standard_normal(n)
    w = rng.standard_normal(d)
    compiled = gdcore.value_and_grad(X, y, w, 0.4, loss=loss, backend="cython")
    reference = gdcore.value_and_grad(X, y, w, 0.4, loss=loss, backend="reference")
    assert_agree(compiled, reference)
    # and the reference backend is gdcore.reference.loss_and_gradient, the
    # specification (which scales the sums as 2a * s / n, value_and_grad as
    # (2a / n) * s: the last bit may differ)
    spec = gdcore.reference.loss_and_gradient(X.tolist(), y[:, None].tolist(), [w.tolist()],
                                              [0.4], loss_factor[loss])
    assert reference[0] == spec[0]
    assert_agree(reference, (spec[0], spec[1][0], spec[2][0]), rtol=1e-15, atol=0)


@pytest.mark.parametrize("outputs", [None, 2], ids=["one-output", "two-outputs"])
@pytest.mark.parametrize("shape", SHAPES + [(1, 1), (500, 9)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_predict_backends_agree(assert_agree, shape, outputs):
    """predict's two backends agree with each other and with X @ w + b; the
    reference backend is the specification's gdcore.reference.predict."""
    n, d = shape
    rng = np.random.default_rng(d)
    X = rng.standard_normal((n, d))
    w = rng.standard_normal(d if outputs is None else (d, outputs))
    b = -1.5 if outputs is None else np.array([-1.5, 0.25])
    compiled = gdcore.predict(X, w, b)
    reference = gdcore.predict(X, w, b, backend="reference")
    expected_shape = (n,) if outputs is None else (n, outputs)
    assert compiled.shape == reference.shape == expected_shape
    assert compiled.dtype == reference.dtype == np.float64
    assert_agree(compiled, reference)
    assert_agree(compiled, X @ w + b, rtol=1e-12)
    W = w.reshape(d, -1).T.tolist()
    spec = gdcore.reference.predict(X.tolist(), W, np.ravel(b).tolist())
    np.testing.assert_array_equal(reference.reshape(n, -1), spec)


def test_one_dimensional_X_is_one_feature(regression, backend):
    """A 1-D X of shape (n,) trains, evaluates and predicts like its (n, 1) column."""
    X, y = regression(25, 1)
    options = dict(method="minibatch", batch_size=4, lr=0.05, epochs=3, seed=5,
                   backend=backend)
    flat, column = gdcore.fit(X[:, 0], y, **options), gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(flat.w, column.w)
    assert flat.b == column.b
    np.testing.assert_array_equal(flat.history, column.history)
    a = gdcore.value_and_grad(X[:, 0], y, [0.3], 0.1, backend=backend)
    b = gdcore.value_and_grad(X, y, [0.3], 0.1, backend=backend)
    assert a[0] == b[0] and a[2] == b[2]
    np.testing.assert_array_equal(a[1], b[1])
    np.testing.assert_array_equal(gdcore.predict(X[:, 0], [2.0], 1.0, backend=backend),
                                  X[:, 0] * 2.0 + 1.0)


@pytest.mark.parametrize("lr", [0.01, 1e300, 1e308])
@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_exact_solution_is_a_fixed_point_for_any_finite_lr(backend, method, lr):
    """Starting at an exact solution (every residual exactly 0, so every gradient
    is exactly 0) a step changes nothing, whatever the (finite, valid) learning
    rate: w - lr * 0 == w. Both backends must return w0 and b0 unchanged."""
    X = np.array([[1.0, 0.5], [2.0, -1.0], [3.0, 2.0], [-1.0, 0.25]])
    w0, b0 = np.array([2.0, -1.0]), 0.5
    y = X @ w0 + b0                       # exact in binary floating point
    assert np.all(X @ w0 + b0 - y == 0.0)
    result = gdcore.fit(X, y, method=method, batch_size=3, lr=lr, epochs=2, w0=w0, b0=b0,
                        shuffle=False, backend=backend)
    np.testing.assert_array_equal(result.w, w0)
    assert result.b == b0
    np.testing.assert_array_equal(result.history, [0.0, 0.0])


@pytest.mark.parametrize("n_features", [10, 37])
def test_every_kernel_build_computes_the_same_bits(monkeypatch, regression, n_features):
    """Every instruction-set build of the kernels gives bit-identical
    value_and_grad and fit results (they differ in speed only), on shapes that
    use the vector paths (d = 10: short rows, d = 37) and several row blocks
    (n = 3000), with and without momentum and weight decay, for one output
    and for three."""
    variants = {name: _dispatch.load(name) for name in _dispatch.available()}
    if len(variants) < 2:
        pytest.skip("only one kernel build on this machine")
    X, y = regression(3000, n_features, seed=1)
    Y = np.column_stack([y, 2 * y, -y])
    w = np.linspace(-0.5, 0.5, n_features)
    outputs = {}
    for name, module in variants.items():
        # the trainers read the kernels from _dispatch at the start of each run
        monkeypatch.setattr(_dispatch, "kernels", module)
        monkeypatch.setattr(_dispatch, "short_row_kernels", module)
        results = [gdcore.value_and_grad(X, y, w, 0.1, loss="half_mse"),
                   gdcore.value_and_grad(X, Y, np.column_stack([w, w, w]), [0.1, 0.2, 0.3])]
        for method in ("batch", "sgd", "minibatch"):
            for options in ({}, dict(momentum=0.8, nesterov=True, weight_decay=0.01)):
                for target in (y, Y):
                    fitted = gdcore.fit(X, target, method=method, batch_size=32, lr=0.005,
                                        epochs=2, seed=3, **options)
                    results.append((fitted.w, fitted.b, fitted.history, fitted.grad_norm))
        outputs[name] = results
    first_name, first = next(iter(outputs.items()))
    for name, results in outputs.items():
        for got, want in zip(results, first, strict=True):
            for a, b in zip(got, want, strict=True):
                assert np.array_equal(a, b), (name, first_name)


def test_short_rows_take_the_avx2_build_where_avx512_is_chosen(regression):
    """Per-sample epochs on rows of at most SHORT_ROW_FEATURES use the AVX2
    build when the AVX-512 one was chosen unforced (it is faster there), and
    the chosen build otherwise; either way the fit is the same bits as the
    chosen build's own epochs."""
    chosen = _dispatch.require()
    short = _dispatch.short_row_kernels
    forced = bool(os.environ.get("GDCORE_KERNELS", "").strip())
    if _dispatch.KERNELS_NAME == "avx512" and not forced:
        assert short is _dispatch.load("avx2")
    else:
        assert short is chosen
    d = _dispatch.SHORT_ROW_FEATURES
    X, y = regression(500, d, seed=2)
    options = dict(method="sgd", lr=0.01, epochs=2, shuffle=False, momentum=0.5)
    fitted = gdcore.fit(X, y, **options)
    rule = chosen.Rule(_options.Config(**options), 1, 1)
    state = np.zeros((len(chosen.STATE_ROWS), d + 1))
    for epoch in range(2):
        state[1] = 0.0                                  # the epoch's gradient sum
        steps, _, _, nonfinite, _ = chosen.run_epoch(X, y.reshape(-1, 1), None, None,
                                                     state, rule, 0.01, epoch * 500, 0, 500,
                                                     0.0, 0.0)
        assert (steps, nonfinite) == (500, False)
    np.testing.assert_array_equal(fitted.w, state[0, :-1])
    assert fitted.b == state[0, -1]
