"""What the training options cost: plain SGD against momentum, Nesterov, weight
decay, a per-step schedule, averaging and standardizing, on W2 (per-sample, d = 10 and 100)
and W3 (mini-batch 32, d = 100), one epoch each, shuffle off.

Each option is an entry of a group whose "gdcore" entry is plain SGD, so an
entry's ratio in the table is its time over plain SGD's (> 1: the option costs
that factor). Each entry also has a paired ratio (the table's "paired" column):
the median, over as many rounds again, of the option's time over plain SGD's
timed right before or after it, which the machine's drift between entries
does not move. The target: at most 1.15 for every option.

``standardize`` times an epoch with the features' statistics already taken
(a warm start from a run of 0 epochs): the pass that takes them is made once
per run, not per epoch.

Correctness outside the timed calls: each option's result agrees with the
plain-Python reference backend on the first samples (rtol 1e-9).
"""

import numpy as np
import pytest

import gdcore

LR = 1e-3
CHECK = 500

OPTIONS = {
    "momentum 0.9": dict(momentum=0.9),
    "nesterov 0.9": dict(momentum=0.9, nesterov=True),
    "weight decay": dict(weight_decay=1e-4),
    "inverse scaling": dict(schedule="invscaling"),
    "exponential (per epoch)": dict(schedule="exponential"),
    "averaging": dict(average=True),
    "standardize": dict(standardize=True),
}
WORKLOADS = [("sgd", 1, 10), ("sgd", 1, 100), ("minibatch", 32, 100)]


def _cases(with_option):
    for method, batch_size, d in WORKLOADS:
        group = f"options {method} B={batch_size} d={d}"
        names = OPTIONS if with_option else [None]
        for name in names:
            yield pytest.param(method, batch_size, d, name,
                               id=f"{method}-d{d}" + (f"-{name}" if name else ""),
                               marks=pytest.mark.benchmark(group=group))


def _fit(X, y, method, batch_size, epochs=1, **options):
    return gdcore.fit(X, y, method=method, batch_size=batch_size, lr=LR, epochs=epochs,
                      shuffle=False, **options)


@pytest.mark.parametrize("method,batch_size,d,name", list(_cases(False)))
def test_options_plain(bench, regression_data, method, batch_size, d, name):
    data = regression_data(d)
    result = bench(lambda: _fit(data.X, data.y, method, batch_size), impl="gdcore plain",
                   role="gdcore")
    assert np.isfinite(result.w).all()


@pytest.mark.parametrize("method,batch_size,d,name", list(_cases(True)))
def test_options_cost(bench, regression_data, method, batch_size, d, name):
    data = regression_data(d)
    options = dict(OPTIONS[name])
    X, y = data.X[:CHECK], data.y[:CHECK]
    fast = _fit(X, y, method, batch_size, **options)
    slow = _fit(X, y, method, batch_size, backend="reference", **options)
    np.testing.assert_allclose(fast.w, slow.w, rtol=1e-9, atol=1e-12)
    if options.get("standardize"):
        options["warm_start"] = _fit(data.X, data.y, method, batch_size, epochs=0, **options)
    result = bench(lambda: _fit(data.X, data.y, method, batch_size, **options),
                   impl=f"gdcore {name}",
                   paired_with=lambda: _fit(data.X, data.y, method, batch_size))
    assert np.isfinite(result.w).all()
