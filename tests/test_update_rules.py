"""The update rule beyond plain SGD: momentum (PyTorch's convention), Nesterov,
dampening, L2 weight decay (the intercept spared unless ``decay_bias``), L1
(subgradient, ``sign(0) = 0``), elastic net and averaged SGD.

Three independent checks for every option:

* the compiled kernels and the plain-Python reference agree to ``rtol=1e-9``
  over every method (a partial last mini-batch included), shuffling on and off;
* both match ``rule_fit`` (tests/conftest.py), the documented rule restated
  with NumPy vectors (it shares no code with gdcore; averaging is checked as the plain
  mean of the recorded iterates, not as a running mean);
* closed forms: hand-computed first steps, the ridge and elastic-net fixed
  points of full-batch descent, and (when PyTorch is installed)
  ``torch.optim.SGD`` itself.
"""

from __future__ import annotations

import numpy as np
import pytest

import gdcore

#: name -> fit options of the update rule under test
RULES = {
    "momentum": dict(momentum=0.9),
    "momentum-dampening": dict(momentum=0.8, dampening=0.3),
    "dampening-one": dict(momentum=0.5, dampening=1.0),
    "nesterov": dict(momentum=0.7, nesterov=True),
    "weight-decay": dict(weight_decay=0.3),
    "weight-decay-bias": dict(weight_decay=0.3, decay_bias=True),
    "l1": dict(l1=0.05),
    "l1-bias": dict(l1=0.05, decay_bias=True),
    "elastic-net": dict(weight_decay=0.2, l1=0.03),
    "everything": dict(momentum=0.6, nesterov=True, weight_decay=0.1, l1=0.02,
                       decay_bias=True),
    "momentum-penalties-dampening": dict(momentum=0.6, dampening=0.2, weight_decay=0.1,
                                         l1=0.02),
}
METHODS = [("batch", 23), ("sgd", 1), ("minibatch", 7)]   # n = 23: batches 7+7+7+2


@pytest.fixture(scope="module")
def data():
    X, y, _ = gdcore.make_regression(23, 3, noise=0.5, bias=0.7, seed=5)
    return X, y


W0 = [0.3, -0.2, 0.1]     # non-zero start: sign(w) is defined from the first step


# ---------------------------------------------------------------------------
# Backends agree, and both match the NumPy oracle
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("rule", list(RULES))
def test_backends_agree(assert_agree, data, rule, method, batch_size, shuffle):
    """cython and reference agree to rtol 1e-9 on w, b, history and grad_norm."""
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.02, epochs=3, w0=W0, b0=0.2,
                   shuffle=shuffle, seed=11, **RULES[rule])
    compiled = gdcore.fit(X, y, backend="cython", **options)
    reference = gdcore.fit(X, y, backend="reference", **options)
    assert_agree(compiled, reference)


@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("rule", list(RULES))
def test_matches_numpy_oracle(data, rule_fit, shuffle_orders, backend, rule, method,
                              batch_size, shuffle):
    """w, b and history match the documented rule written out in NumPy."""
    X, y = data
    options = RULES[rule]
    result = gdcore.fit(X, y, method=method, batch_size=batch_size, lr=0.02, epochs=3,
                        w0=W0, b0=0.2, shuffle=shuffle, seed=11, backend=backend, **options)
    size = {"batch": 23, "sgd": 1}.get(method, batch_size)
    orders = shuffle_orders(23, 3, 11) if shuffle and method != "batch" else None
    w, b, history, _ = rule_fit(X, y, lr=0.02, epochs=3, batch_size=size, w0=W0, b0=0.2,
                                   orders=orders, **options)
    np.testing.assert_allclose(result.w, w, rtol=1e-10, atol=1e-13)
    assert result.b == pytest.approx(b, rel=1e-10, abs=1e-13)
    np.testing.assert_allclose(result.history, history, rtol=1e-10, atol=1e-13)
    # the option matters: plain SGD lands elsewhere
    w_plain, b_plain, _, _ = rule_fit(X, y, lr=0.02, epochs=3, batch_size=size, w0=W0,
                                         b0=0.2, orders=orders)
    assert not np.allclose(np.r_[w, b], np.r_[w_plain, b_plain], rtol=1e-6, atol=0)


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("rule", ["momentum-dampening", "nesterov", "elastic-net",
                                  "everything"])
def test_no_intercept_keeps_b0_and_matches_oracle(data, rule_fit, backend, loss, rule):
    """fit_intercept=False: b stays at b0 exactly (even with decay_bias and
    momentum), and w follows the oracle."""
    X, y = data
    options = RULES[rule]
    result = gdcore.fit(X, y, method="minibatch", batch_size=5, lr=0.03, epochs=3, w0=W0,
                        b0=-0.4, fit_intercept=False, loss=loss, shuffle=False,
                        backend=backend, **options)
    assert result.b == -0.4
    w, _, history, _ = rule_fit(X, y, lr=0.03, epochs=3, batch_size=5, w0=W0, b0=-0.4,
                                   fit_intercept=False, loss=loss, **options)
    np.testing.assert_allclose(result.w, w, rtol=1e-10, atol=1e-13)
    np.testing.assert_allclose(result.history, history, rtol=1e-10, atol=1e-13)


# ---------------------------------------------------------------------------
# Hand-computed first steps: the first-step rule of the momentum buffer
# ---------------------------------------------------------------------------

def _one_sample_gradients(w, b, x=1.5, target=0.8):
    """mse on one sample: r = w x + b - y, dL/dw = 2 r x, dL/db = 2 r."""
    r = w * x + b - target
    return 2 * r * x, 2 * r


@pytest.mark.parametrize("dampening", [0.0, 0.5, 1.0])
def test_momentum_first_step_is_the_full_gradient(backend, dampening):
    """PyTorch's convention: the buffer starts as the first gradient, undamped,
    so step 1 is plain SGD whatever the dampening; step 2 uses
    v = mu v + (1 - dampening) g."""
    X, y, lr, mu = [[1.5]], [0.8], 0.1, 0.9
    w, b = 0.8, 0.2
    gw0, gb0 = _one_sample_gradients(w, b)
    w1, b1 = w - lr * gw0, b - lr * gb0
    one = gdcore.fit(X, y, method="batch", lr=lr, epochs=1, w0=[w], b0=b, momentum=mu,
                     dampening=dampening, backend=backend)
    assert one.w[0] == pytest.approx(w1, rel=1e-14)
    assert one.b == pytest.approx(b1, rel=1e-14)
    gw1, gb1 = _one_sample_gradients(w1, b1)
    vw, vb = mu * gw0 + (1 - dampening) * gw1, mu * gb0 + (1 - dampening) * gb1
    two = gdcore.fit(X, y, method="batch", lr=lr, epochs=2, w0=[w], b0=b, momentum=mu,
                     dampening=dampening, backend=backend)
    assert two.w[0] == pytest.approx(w1 - lr * vw, rel=1e-13)
    assert two.b == pytest.approx(b1 - lr * vb, rel=1e-13)


def test_nesterov_first_two_steps(backend):
    """Nesterov: direction g + mu v, with v = g at the first step, so step 1
    moves by lr (1 + mu) g."""
    X, y, lr, mu = [[1.5]], [0.8], 0.1, 0.5
    w, b = 0.8, 0.2
    gw0, gb0 = _one_sample_gradients(w, b)
    w1, b1 = w - lr * (1 + mu) * gw0, b - lr * (1 + mu) * gb0
    one = gdcore.fit(X, y, method="sgd", lr=lr, epochs=1, w0=[w], b0=b, momentum=mu,
                     nesterov=True, backend=backend)
    assert one.w[0] == pytest.approx(w1, rel=1e-14)
    assert one.b == pytest.approx(b1, rel=1e-14)
    gw1, gb1 = _one_sample_gradients(w1, b1)
    vw, vb = mu * gw0 + gw1, mu * gb0 + gb1
    two = gdcore.fit(X, y, method="sgd", lr=lr, epochs=2, w0=[w], b0=b, momentum=mu,
                     nesterov=True, backend=backend)
    assert two.w[0] == pytest.approx(w1 - lr * (gw1 + mu * vw), rel=1e-13)
    assert two.b == pytest.approx(b1 - lr * (gb1 + mu * vb), rel=1e-13)


@pytest.mark.parametrize("decay_bias", [False, True])
def test_penalised_first_step(backend, decay_bias):
    """One full-batch step with l2 and l1: g_w += l2 w + l1 sign(w); the
    intercept gets the penalty only with decay_bias."""
    X, y, lr, l2, l1 = [[1.5]], [0.8], 0.1, 0.4, 0.25
    w, b = 0.8, -0.2
    gw, gb = _one_sample_gradients(w, b)
    expected_w = w - lr * (gw + l2 * w + l1 * 1.0)
    expected_b = b - lr * (gb + ((l2 * b + l1 * -1.0) if decay_bias else 0.0))
    result = gdcore.fit(X, y, method="batch", lr=lr, epochs=1, w0=[w], b0=b,
                        weight_decay=l2, l1=l1, decay_bias=decay_bias, backend=backend)
    assert result.w[0] == pytest.approx(expected_w, rel=1e-14)
    assert result.b == pytest.approx(expected_b, rel=1e-14)


@pytest.mark.parametrize("method", ["batch", "sgd", "minibatch"])
def test_l1_subgradient_of_zero_is_zero(backend, method):
    """sign(0) = 0: at w = 0, b = 0 with y = 0 every gradient is exactly 0, so
    the L1 subgradient adds nothing and nothing moves (with sign(0) = 1 the
    weights would step to -lr * l1)."""
    rng = np.random.default_rng(1)
    X = rng.standard_normal((12, 3))
    result = gdcore.fit(X, np.zeros(12), method=method, batch_size=5, lr=0.1, epochs=3,
                        l1=0.5, decay_bias=True, momentum=0.9, backend=backend)
    np.testing.assert_array_equal(result.w, np.zeros(3))
    assert result.b == 0.0
    np.testing.assert_array_equal(result.history, np.zeros(3))


# ---------------------------------------------------------------------------
# Closed forms: fixed points of full-batch descent
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def standardised():
    """A well-conditioned problem, so that full-batch descent converges in a
    few hundred epochs."""
    rng = np.random.default_rng(3)
    X = rng.standard_normal((60, 3))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = X @ np.array([1.5, -2.0, 0.75]) + 0.6 + 0.3 * rng.standard_normal(60)
    return X, y


def _penalised_solution(X, y, *, a, l2, l1=0.0, signs=None, decay_bias):
    """Stationary point of a mean(r^2) + l2/2 |theta_p|^2 + l1 |theta_p|_1
    (theta_p: w, plus b with decay_bias), for known signs of theta_p:
    ((2a/n) A^T A + l2 P) theta = (2a/n) A^T y - l1 P sign(theta)."""
    n, d = X.shape
    A = np.c_[X, np.ones(n)]
    P = np.diag([1.0] * d + [1.0 if decay_bias else 0.0])
    signs = np.zeros(d + 1) if signs is None else signs
    return np.linalg.solve(2 * a / n * A.T @ A + l2 * P, 2 * a / n * A.T @ y - l1 * P @ signs)


@pytest.mark.parametrize("loss", ["mse", "half_mse"])
@pytest.mark.parametrize("decay_bias", [False, True])
@pytest.mark.parametrize("momentum", [0.0, 0.5])
def test_full_batch_weight_decay_converges_to_ridge(standardised, loss_factor, backend, loss,
                                                    decay_bias, momentum):
    """Full-batch descent with weight_decay (and heavy-ball momentum) converges
    to the ridge solution ((2a/n) A^T A + l2 P)^-1 (2a/n) A^T y, A = [X, 1],
    P = I with decay_bias, diag(1, ..., 1, 0) without (intercept unpenalised)."""
    X, y = standardised
    a, l2 = loss_factor[loss], 0.8
    expected = _penalised_solution(X, y, a=a, l2=l2, decay_bias=decay_bias)
    epochs = 400 if backend == "cython" else 150
    result = gdcore.fit(X, y, method="batch", lr=0.5 / a / 2.0, epochs=epochs, loss=loss,
                        weight_decay=l2, decay_bias=decay_bias, momentum=momentum,
                        backend=backend)
    np.testing.assert_allclose(np.r_[result.w, result.b], expected, rtol=1e-9, atol=1e-10)
    other = _penalised_solution(X, y, a=a, l2=l2, decay_bias=not decay_bias)
    assert abs(result.b - other[3]) > 1e-3   # decay_bias matters


@pytest.mark.parametrize("decay_bias", [False, True])
def test_full_batch_elastic_net_converges_to_its_stationary_point(standardised, backend,
                                                                  decay_bias):
    """With every coefficient well away from 0, the elastic-net objective is
    smooth near its minimum, and full-batch subgradient descent converges to
    the solution of the linear stationarity condition with the known signs."""
    X, y = standardised
    l2, l1 = 0.3, 0.2
    signs = np.array([1.0, -1.0, 1.0, 1.0 if decay_bias else 0.0])
    expected = _penalised_solution(X, y, a=1.0, l2=l2, l1=l1, signs=signs,
                                   decay_bias=decay_bias)
    assert np.all(np.sign(expected[:3]) == signs[:3]) and expected[3] > 0.1
    result = gdcore.fit(X, y, method="batch", lr=0.25, epochs=300 if backend == "cython"
                        else 120, weight_decay=l2, l1=l1, decay_bias=decay_bias,
                        backend=backend)
    np.testing.assert_allclose(np.r_[result.w, result.b], expected, rtol=1e-9, atol=1e-10)


def test_l1_shrinks_a_useless_feature_to_within_one_step_of_zero(backend):
    """A feature that does not help (its optimum is w = 0 under L1) ends within
    lr * (l1 + gradient) of 0, oscillating around it: the subgradient step."""
    rng = np.random.default_rng(8)
    X = rng.standard_normal((80, 2))
    X = (X - X.mean(axis=0)) / X.std(axis=0)
    y = 2.0 * X[:, 0]
    result = gdcore.fit(X, y, method="batch", lr=0.05, epochs=300, l1=0.5, backend=backend)
    assert abs(result.w[1]) <= 0.05 * 0.6
    # w0 shrunk by l1 / (2 * var(x0)) = 0.25 (soft thresholding on a standardised column)
    assert result.w[0] == pytest.approx(2.0 - 0.25, abs=0.05 * 0.6 + 0.02)


# ---------------------------------------------------------------------------
# PyTorch itself (optional)
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("options", [dict(momentum=0.9), dict(momentum=0.8, dampening=0.25),
                                     dict(momentum=0.7, nesterov=True),
                                     dict(momentum=0.9, weight_decay=0.1),
                                     dict(weight_decay=0.2)],
                         ids=["momentum", "dampening", "nesterov", "momentum-wd", "wd"])
def test_matches_torch_optim_sgd(data, options):
    """Full-batch gdcore equals torch.optim.SGD on nn-free linear least squares
    (torch decays every parameter, hence decay_bias=True)."""
    torch = pytest.importorskip("torch")
    X, y = data
    lr, epochs = 0.02, 6
    Xt = torch.tensor(X, dtype=torch.float64)
    yt = torch.tensor(y, dtype=torch.float64)
    w = torch.tensor(W0, dtype=torch.float64, requires_grad=True)
    b = torch.tensor(0.2, dtype=torch.float64, requires_grad=True)
    optimiser = torch.optim.SGD([w, b], lr=lr, **options)
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = torch.mean((Xt @ w + b - yt) ** 2)
        loss.backward()
        optimiser.step()
    result = gdcore.fit(X, y, method="batch", lr=lr, epochs=epochs, w0=W0, b0=0.2,
                        decay_bias=True, **options)
    np.testing.assert_allclose(result.w, w.detach().numpy(), rtol=1e-10, atol=1e-13)
    assert result.b == pytest.approx(float(b.detach()), rel=1e-10, abs=1e-13)


# ---------------------------------------------------------------------------
# Averaged SGD
# ---------------------------------------------------------------------------

@pytest.mark.parametrize("shuffle", [False, True], ids=["ordered", "shuffled"])
@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("average", [True, 1, 17, 50])
def test_average_is_the_mean_of_the_iterates(data, rule_fit, shuffle_orders, backend, method,
                                             batch_size, shuffle, average):
    """result.w, result.b are the mean of the parameters after each step from
    global step `average` on (True: 0); the history is that of the plain
    iterates (averaging does not change the trajectory)."""
    X, y = data
    epochs = {"batch": 60, "sgd": 3, "minibatch": 16}[method]      # 60+ steps
    options = dict(method=method, batch_size=batch_size, lr=0.02, epochs=epochs, w0=W0,
                   b0=0.2, shuffle=shuffle, seed=4, backend=backend, momentum=0.5)
    result = gdcore.fit(X, y, average=average, **options)
    size = {"batch": 23, "sgd": 1}.get(method, batch_size)
    orders = shuffle_orders(23, epochs, 4) if shuffle and method != "batch" else None
    start = 0 if average is True else average
    _, _, history, iterates = rule_fit(X, y, lr=0.02, epochs=epochs, batch_size=size,
                                          w0=W0, b0=0.2, orders=orders, momentum=0.5)
    assert start < len(iterates)
    expected = iterates[start:].mean(axis=0)
    np.testing.assert_allclose(result.w, expected[:3], rtol=1e-10, atol=1e-13)
    assert result.b == pytest.approx(expected[3], rel=1e-10, abs=1e-13)
    np.testing.assert_allclose(result.history, history, rtol=1e-10, atol=1e-13)
    plain = gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(result.history, plain.history)
    assert not np.allclose(result.w, plain.w, rtol=1e-6, atol=0)


@pytest.mark.parametrize("method,batch_size", METHODS)
@pytest.mark.parametrize("average", [True, 9])
def test_average_backends_agree(assert_agree, data, method, batch_size, average):
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.02, epochs=4, average=average,
                   shuffle=True, seed=2, momentum=0.3, weight_decay=0.1, l1=0.01)
    assert_agree(gdcore.fit(X, y, backend="cython", **options),
                 gdcore.fit(X, y, backend="reference", **options))


def test_average_without_intercept_keeps_b0(data, rule_fit, backend):
    X, y = data
    result = gdcore.fit(X, y, method="sgd", lr=0.02, epochs=2, b0=1.25, fit_intercept=False,
                        average=True, shuffle=False, backend=backend)
    assert result.b == 1.25
    _, _, _, iterates = rule_fit(X, y, lr=0.02, epochs=2, batch_size=1, b0=1.25,
                                    fit_intercept=False)
    np.testing.assert_allclose(result.w, iterates.mean(axis=0)[:3], rtol=1e-10, atol=1e-13)


def test_average_false_is_plain_training(data, backend):
    """average=False is plain training, bit for bit."""
    X, y = data
    options = dict(method="sgd", lr=0.02, epochs=2, shuffle=False, backend=backend)
    a = gdcore.fit(X, y, average=False, **options)
    b = gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(a.w, b.w)
    assert a.b == b.b


@pytest.mark.parametrize("method,batch_size", METHODS)
def test_average_not_yet_started_returns_the_plain_iterate(data, backend, method,
                                                           batch_size):
    """When training ends before global step `average`, no iterate has been
    averaged yet; the result must be the plain last iterate (as in
    scikit-learn's SGDRegressor), not the start w0 / b0 that no step produced."""
    X, y = data
    options = dict(method=method, batch_size=batch_size, lr=0.02, epochs=2, w0=W0, b0=0.2,
                   shuffle=False, backend=backend)
    late = gdcore.fit(X, y, average=1000, **options)
    plain = gdcore.fit(X, y, **options)
    np.testing.assert_array_equal(late.w, plain.w)
    assert late.b == plain.b


# ---------------------------------------------------------------------------
# Errors
# ---------------------------------------------------------------------------

BAD_OPTIONS = [
    (dict(momentum=-0.1), ValueError, "momentum"),
    (dict(momentum=float("nan")), ValueError, "momentum"),
    (dict(momentum=float("inf")), ValueError, "momentum"),
    (dict(momentum="0.9"), TypeError, "momentum"),
    (dict(momentum=0.9, dampening=-0.1), ValueError, "dampening"),
    (dict(momentum=0.9, dampening=1.5), ValueError, "dampening"),
    (dict(dampening=None), TypeError, "dampening"),
    (dict(nesterov=True), ValueError, "nesterov"),
    (dict(nesterov=True, momentum=0.0), ValueError, "nesterov"),
    (dict(nesterov=True, momentum=0.9, dampening=0.1), ValueError, "nesterov"),
    (dict(nesterov=1, momentum=0.9), TypeError, "nesterov"),
    (dict(nesterov="yes", momentum=0.9), TypeError, "nesterov"),
    (dict(weight_decay=-1e-3), ValueError, "weight_decay"),
    (dict(weight_decay=float("inf")), ValueError, "weight_decay"),
    (dict(weight_decay=[0.1]), TypeError, "weight_decay"),
    (dict(l1=-0.5), ValueError, "l1"),
    (dict(l1=float("nan")), ValueError, "l1"),
    (dict(l1="big"), TypeError, "l1"),
    (dict(decay_bias=1), TypeError, "decay_bias"),
    (dict(decay_bias="True"), TypeError, "decay_bias"),
    (dict(decay_bias=None), TypeError, "decay_bias"),
    (dict(average=-1), ValueError, "average"),
    (dict(average=1.5), TypeError, "average"),
    (dict(average="yes"), TypeError, "average"),
]


@pytest.mark.parametrize("options,error,name", BAD_OPTIONS,
                         ids=[str(case[0]) for case in BAD_OPTIONS])
def test_bad_options_raise_naming_them(data, backend, options, error, name):
    X, y = data
    w0 = np.array(W0)
    with pytest.raises(error, match=name):
        gdcore.fit(X, y, method="sgd", epochs=1, w0=w0, backend=backend, **options)
    np.testing.assert_array_equal(w0, W0)


@pytest.mark.parametrize("options", [dict(momentum=0.0, dampening=1.0),
                                     dict(momentum=0.5, dampening=0.0, nesterov=True),
                                     dict(momentum=np.float64(0.5), nesterov=np.bool_(True)),
                                     dict(weight_decay=0, l1=0, decay_bias=True),
                                     dict(average=0), dict(average=np.int64(3))])
def test_boundary_options_are_accepted(data, options):
    X, y = data
    result = gdcore.fit(X, y, method="sgd", epochs=1, **options)
    assert np.isfinite(result.w).all()
