"""Adam: one epoch per sample (W2, d = 10 and 100) and one mini-batch epoch
(W3, B = 32, d = 100), shuffle off, against plain SGD and the peers' Adam.

Entries per group: gdcore ``fit(optimizer="adam")`` (the group's "gdcore"
entry), gdcore's plain SGD on the same work (its ratio is SGD's time over
Adam's: the target is Adam <= 1.5x SGD, i.e. ratio >= 0.67), PyTorch's
``optim.Adam`` in a per-step loop (on a subset, scaled to n) and optax's
``adam`` under ``jit`` + ``lax.scan`` (float64).

Correctness, outside the timed calls: every peer's parameters agree with
gdcore's Adam on the same samples (rtol 1e-8).
"""

import numpy as np
import pytest

import gdcore

LR = 1e-3
WORKLOADS = [(1, 10), (1, 100), (32, 100)]


def _cases():
    for batch_size, d in WORKLOADS:
        yield pytest.param(batch_size, d, id=f"B{batch_size}-d{d}",
                           marks=pytest.mark.benchmark(group=f"Adam B={batch_size} d={d}"))


CASES = list(_cases())


def _fit(X, y, batch_size, **options):
    return gdcore.fit(X, y, method="sgd" if batch_size == 1 else "minibatch",
                      batch_size=batch_size, lr=LR, epochs=1, shuffle=False, **options)


@pytest.mark.parametrize("batch_size,d", CASES)
def test_adam_gdcore(bench, regression_data, batch_size, d):
    data = regression_data(d)
    result = bench(lambda: _fit(data.X, data.y, batch_size, optimizer="adam"),
                   impl="gdcore adam", role="gdcore")
    assert np.isfinite(result.w).all()


@pytest.mark.parametrize("batch_size,d", CASES)
def test_adam_against_plain_sgd(bench, regression_data, batch_size, d):
    data = regression_data(d)
    result = bench(lambda: _fit(data.X, data.y, batch_size), impl="gdcore plain sgd")
    assert np.isfinite(result.w).all()


@pytest.mark.parametrize("batch_size,d", CASES)
def test_adam_torch_loop(bench, bench_size, regression_data, torch_data, torch_mod,
                         batch_size, d):
    torch = torch_mod
    data = regression_data(d)
    Xt, yt = torch_data(d)
    m = min(data.n, bench_size.torch_sgd_subset * batch_size)

    def run():
        model = torch.nn.Linear(d, 1, dtype=torch.float64)
        with torch.no_grad():
            model.weight.zero_()
            model.bias.zero_()
        opt = torch.optim.Adam(model.parameters(), lr=LR)
        loss_fn = torch.nn.MSELoss()
        for start in range(0, m, batch_size):
            opt.zero_grad(set_to_none=True)
            batch = slice(start, start + batch_size)
            loss = loss_fn(model(Xt[batch]).squeeze(1), yt[batch])
            loss.backward()
            opt.step()
        return model

    model = bench(run, impl="torch optim.Adam loop", subset_n=m if m < data.n else None,
                  slow=True)
    ref = _fit(data.X[:m], data.y[:m], batch_size, optimizer="adam")
    np.testing.assert_allclose(model.weight.detach().numpy().ravel(), ref.w, rtol=1e-8,
                               atol=1e-10)


@pytest.mark.parametrize("batch_size,d", CASES)
def test_adam_optax_scan(bench, regression_data, jax_data, jax_mod, batch_size, d):
    jax = jax_mod
    optax = pytest.importorskip("optax")
    import jax.numpy as jnp
    from jax import lax

    data = regression_data(d)
    Xj, yj = jax_data(d)
    n_full = data.n // batch_size
    opt = optax.adam(LR)

    def loss(params, Xb, yb):
        w, b = params
        r = Xb @ w + b - yb
        return jnp.mean(r * r)

    def step(carry, k):
        params, state = carry
        Xb = lax.dynamic_slice(Xj, (k * batch_size, 0), (batch_size, d))
        yb = lax.dynamic_slice(yj, (k * batch_size,), (batch_size,))
        grads = jax.grad(loss)(params, Xb, yb)
        updates, state = opt.update(grads, state, params)
        return (optax.apply_updates(params, updates), state), None

    @jax.jit
    def epoch():
        params = (jnp.zeros(d), jnp.asarray(0.0))
        (params, _), _ = lax.scan(step, (params, opt.init(params)), jnp.arange(n_full))
        return params

    jax.block_until_ready(epoch())     # compile, untimed
    w, b = bench(lambda: jax.block_until_ready(epoch()), impl="optax adam jit+lax.scan")
    m = n_full * batch_size
    ref = _fit(data.X[:m], data.y[:m], batch_size, optimizer="adam")
    np.testing.assert_allclose(np.asarray(w), ref.w, rtol=1e-8, atol=1e-10)
