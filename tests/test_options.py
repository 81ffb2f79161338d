"""The option table (``gdcore._options``) and everything derived from it agree.

Every training option is declared once, as a field of ``_options.Config``;
``gdcore.fit`` and ``LinearRegressor.__init__`` keep explicit signatures, the
command line builds its flags from the table and ``docs/options.md`` is
generated from it. These tests hold them together: an option renamed, added
or given another default in one place and not the others fails here.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gdcore
from gdcore import _cli, _dispatch, _options, _state, schedules

RECORDS = _options.OPTIONS + _options.DATA_ARGUMENTS
FLAGGED = [record for record in RECORDS if record.flag is not None]
DOCS = Path(__file__).resolve().parents[1] / "docs" / "options.md"


def _keyword_parameters(function):
    return [p for p in inspect.signature(function).parameters.values()
            if p.kind is inspect.Parameter.KEYWORD_ONLY]


def _same_default(a, b):
    return type(a) is type(b) and (a is b or a == b)


# ---------------------------------------------------------------------------
# The signatures
# ---------------------------------------------------------------------------

def test_fit_keywords_are_the_table():
    """gdcore.fit(X, y, *, ...): its keywords are the table's options and the
    data arguments, with the table's defaults; the options in the table's
    order (OPTIONS is "in the order of fit's signature"), the data arguments
    in theirs, each placed beside the options it goes with."""
    parameters = inspect.signature(gdcore.fit).parameters
    assert [p.name for p in parameters.values()
            if p.kind is not inspect.Parameter.KEYWORD_ONLY] == ["X", "y"]
    keywords = _keyword_parameters(gdcore.fit)
    names = [p.name for p in keywords]
    assert sorted(names) == sorted(record.name for record in RECORDS)
    assert len(set(names)) == len(names)
    options = {record.name for record in _options.OPTIONS}
    assert [n for n in names if n in options] == [r.name for r in _options.OPTIONS]
    assert [n for n in names if n not in options] == \
        [r.name for r in _options.DATA_ARGUMENTS]
    for parameter in keywords:
        record = _options.ALL[parameter.name]
        assert _same_default(parameter.default, record.default), parameter.name


def test_estimator_parameters_are_the_estimator_options_and_random_state():
    parameters = list(inspect.signature(gdcore.LinearRegressor.__init__).parameters.values())
    assert parameters[0].name == "self"
    expected = [record for record in _options.OPTIONS if record.estimator]
    assert [p.name for p in parameters[1:]] == [r.name for r in expected] + ["random_state"]
    for parameter, record in zip(parameters[1:-1], expected, strict=True):
        assert _same_default(parameter.default, record.default), record.name
    assert parameters[-1].default is None
    # and the data arguments are fit's, never the estimator's
    assert not any(record.estimator for record in _options.DATA_ARGUMENTS)


def test_table_defaults_are_the_config_field_defaults():
    defaults = {f.name: f.default for f in dataclasses.fields(_options.Config)}
    assert list(defaults) == [record.name for record in _options.OPTIONS]
    for record in _options.OPTIONS:
        assert _same_default(defaults[record.name], record.default), record.name
        assert record.check is not None, record.name
    assert all(record.check is None for record in _options.DATA_ARGUMENTS)
    assert set(_options.ALL) == {record.name for record in RECORDS}


# ---------------------------------------------------------------------------
# The docstrings
# ---------------------------------------------------------------------------

def documented_parameters(docstring):
    """The names the numpydoc "Parameters" section of ``docstring`` documents:
    the unindented lines before `` : `` (``"method, batch_size : ..."``
    documents both names)."""
    lines = inspect.cleandoc(docstring).splitlines()
    start = lines.index("Parameters")
    assert set(lines[start + 1]) == {"-"}, "a Parameters heading without its underline"
    names = []
    for i in range(start + 2, len(lines)):
        line = lines[i]
        if i + 1 < len(lines) and lines[i + 1] and set(lines[i + 1]) == {"-"}:
            break                                   # the next section's heading
        if line and not line[0].isspace():
            names += [name.strip() for name in line.split(" : ")[0].split(",")]
    return names


def test_documented_parameters_parser():
    doc = """Summary.

    Parameters
    ----------
    a, b : int
        Two.
    c
        Three, on a line of its own: ``d : e`` here is no parameter.

    Returns
    -------
    f : int
    """
    assert documented_parameters(doc) == ["a", "b", "c"]


@pytest.mark.parametrize("owner, function", [
    (gdcore.fit, gdcore.fit),
    (gdcore.LinearRegressor, gdcore.LinearRegressor.__init__),
], ids=["fit", "LinearRegressor"])
def test_docstring_documents_every_parameter(owner, function):
    """Every parameter is documented once, and nothing else is."""
    parameters = [name for name in inspect.signature(function).parameters if name != "self"]
    documented = documented_parameters(owner.__doc__)
    assert len(documented) == len(set(documented)), documented
    assert sorted(documented) == sorted(parameters)


# ---------------------------------------------------------------------------
# The command line
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def train_help():
    done = subprocess.run([sys.executable, "-m", "gdcore", "train", "--help"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    return done.stdout


def test_train_help_shows_every_flag(train_help):
    shown = set(re.findall(r"(?<![\w-])--[a-z0-9][a-z0-9-]*", train_help))
    for record in FLAGGED:
        assert record.flag in shown, record.name
        assert not record.why_not_on_cli, record.name


def test_every_option_without_a_flag_says_why():
    missing = [record for record in RECORDS if record.flag is None]
    assert missing, "callback (a Python function) cannot be on the command line"
    for record in missing:
        assert record.why_not_on_cli.strip(), record.name


def test_each_flag_is_built_from_its_record():
    """One flag per option, its destination, help and choices from the record,
    and no default of its own (fit's applies when the flag is not given)."""
    flags = [record.flag for record in FLAGGED]
    assert len(set(flags)) == len(flags)
    parser = _cli.build_train_parser("gdcore")
    for record in FLAGGED:
        (action,) = [a for a in parser._actions if record.flag in a.option_strings]
        assert action.dest == f"fit_{record.name}"
        assert action.default is argparse.SUPPRESS     # fit's own default applies
        assert action.help == record.help
        if record.choices is not None:
            assert tuple(action.choices) == record.choices


#: a command line for each flag (after the flag) -> the value fit must receive
FLAG_EXAMPLES = {
    "method": [(["sgd"], "sgd")],
    "batch_size": [(["7"], 7), (["1_000"], 1000)],
    "lr": [(["0.5"], 0.5), (["1e-3"], 1e-3), (["auto"], "auto")],
    "epochs": [(["3"], 3)],
    "fit_intercept": [([], False)],
    "loss": [(["half_mse"], "half_mse")],
    "shuffle": [([], False)],
    "seed": [(["5"], 5)],
    "backend": [(["reference"], "reference")],
    "n_threads": [(["2"], 2)],
    "momentum": [(["0.5"], 0.5)],
    "nesterov": [([], True)],
    "dampening": [(["0.25"], 0.25)],
    "weight_decay": [(["0.1"], 0.1)],
    "l1": [(["0.01"], 0.01)],
    "decay_bias": [([], True)],
    "schedule": [(["step:step_size=2,gamma=0.5"], schedules.StepDecay(step_size=2, gamma=0.5)),
                 (["plateau"], gdcore.schedules.Plateau())],
    "average": [([], True), (["3"], 3)],
    "tol": [(["1e-3"], 1e-3)],
    "stop_on": [(["grad_norm"], "grad_norm")],
    "n_iter_no_change": [(["3"], 3)],
    "validation_fraction": [(["0.2"], 0.2)],
    "on_divergence": [(["stop"], "stop")],
    "check_lr": [([], True)],
    "verbose": [([], 1), (["2"], 2)],
    "progress": [([], True)],
    "copy": [([], False)],
    "shuffle_block": [(["7"], 7), (["none"], None), (["auto"], "auto")],
    "checkpoint": [(["run.ckpt"], "run.ckpt")],
    "checkpoint_seconds": [(["2.5"], 2.5)],
    "optimizer": [(["adam:betas=0.8/0.99,amsgrad=true"],
                   gdcore.optimizers.Adam(betas=(0.8, 0.99), amsgrad=True)),
                  (["rmsprop:centered=true,eps=1e-6"],
                   gdcore.optimizers.RMSprop(centered=True, eps=1e-6)),
                  (["adagrad"], gdcore.optimizers.Adagrad())],
    "l1_method": [(["cumulative"], "cumulative")],
    "standardize": [([], True)],
    "restore_best": [([], True)],
    "w0": [(["1,-2"], np.array([1.0, -2.0]))],
    "b0": [(["0.5"], 0.5)],
    "sample_weight": [(["{weights}"], np.linspace(0.5, 1.5, 20))],
}


def test_every_flag_has_an_example():
    assert set(FLAG_EXAMPLES) == {record.name for record in FLAGGED}


class Reached(Exception):
    """Raised by the stand-in for fit: the options got there."""


@pytest.mark.parametrize("name, args, expected",
                         [(name, args, expected) for name, cases in FLAG_EXAMPLES.items()
                          for args, expected in cases],
                         ids=[f"{name}-{'-'.join(args) or 'alone'}"
                              for name, cases in FLAG_EXAMPLES.items() for args, _ in cases])
def test_each_flag_reaches_fit(tmp_path, monkeypatch, name, args, expected):
    """``train FLAG VALUE`` calls fit with exactly ``name=value`` (fit's own
    defaults for everything not given), a value fit's check accepts."""
    weights = tmp_path / "weights.npy"
    np.save(weights, np.linspace(0.5, 1.5, 20))
    seen = {}

    def fake_fit(X, y, **options):
        seen.update(options)
        raise Reached

    monkeypatch.setattr(_cli, "fit", fake_fit)
    flag = _options.ALL[name].flag
    argv = ["-n", "20", "-d", "2", "-q", flag, *(a.format(weights=weights) for a in args)]
    with pytest.raises(Reached):
        _cli.train(argv, "gdcore")
    assert list(seen) == [name]
    got = seen[name]
    if isinstance(expected, np.ndarray):                 # w0, sample_weight: array-likes
        assert np.asarray(got).dtype == np.float64
        np.testing.assert_array_equal(got, expected)
        return
    assert type(got) is type(expected) and got == expected
    record = _options.ALL[name]
    if record.check is not None:
        checked = record.check(got, name)
        assert checked == got or isinstance(checked, schedules.Schedule)


def test_flags_reach_fit_end_to_end(tmp_path):
    """A real run with many flags saves what gdcore.fit returns for them."""
    out = tmp_path / "m.json"
    argv = ["train", "-n", "60", "-d", "3", "-q", "--method", "minibatch", "--batch-size",
            "8", "--lr", "0.05", "--epochs", "3", "--loss", "half_mse", "--seed", "4",
            "--momentum", "0.5", "--nesterov", "--weight-decay", "0.01", "--l1", "0.001",
            "--decay-bias", "--schedule", "exponential", "--average", "5",
            "--validation-fraction", "0.25", "--shuffle-block", "7", "--b0", "0.5",
            "--w0", "0.1,0.2,0.3", "--threads", "1", "-o", out]
    assert _cli.main([str(a) for a in argv]) == 0
    X, y, _ = gdcore.make_regression(60, 3, noise=0.1, bias=0.5, seed=0)
    expected = gdcore.fit(X, y, method="minibatch", batch_size=8, lr=0.05, epochs=3,
                          loss="half_mse", seed=4, momentum=0.5, nesterov=True,
                          weight_decay=0.01, l1=0.001, decay_bias=True, schedule="exponential",
                          average=5, validation_fraction=0.25, shuffle_block=7, b0=0.5,
                          w0=[0.1, 0.2, 0.3], n_threads=1)
    record = json.loads(out.read_text())
    assert record["w"] == expected.w.tolist() and record["b"] == expected.b
    assert record["val_loss"] == expected.val_loss.tolist()


# ---------------------------------------------------------------------------
# docs/options.md
# ---------------------------------------------------------------------------

def test_docs_options_md_is_the_generated_table():
    """docs/options.md is markdown_table()'s output, byte for byte (regenerate
    it from the table; it must exist)."""
    assert DOCS.is_file(), f"{DOCS} is missing: generate it from _options.markdown_table()"
    assert DOCS.read_text(encoding="utf-8") == _options.markdown_table()


def test_markdown_table_has_a_row_per_keyword_of_fit():
    rows = [line for line in _options.markdown_table().splitlines()
            if line.startswith("| `")]
    assert [row.split("`")[1] for row in rows] == [record.name for record in RECORDS]


# ---------------------------------------------------------------------------
# Choices and checks
# ---------------------------------------------------------------------------

CHOICE_TUPLES = {"method": _options.METHODS, "loss": tuple(_options.LOSS_FACTORS),
                 "backend": _options.BACKENDS, "stop_on": _options.STOP_ON,
                 "on_divergence": _options.ON_DIVERGENCE, "l1_method": _options.L1_METHODS}


def test_the_choice_options_are_these():
    assert {r.name for r in _options.OPTIONS if r.choices is not None} == set(CHOICE_TUPLES)


@pytest.mark.parametrize("name", sorted(CHOICE_TUPLES))
def test_choices_are_what_the_check_accepts(name):
    """The declared choices are exactly the values the option's check (and so
    fit, and the flag) accepts: each choice passes unchanged; any other
    string is a ValueError and a non-string a TypeError, naming the option."""
    record = _options.ALL[name]
    assert record.choices == CHOICE_TUPLES[name]
    assert record.default in record.choices
    for choice in record.choices:
        assert record.check(choice, name) == choice
        config = _options.Config(**{name: choice})
        assert getattr(config, name) == choice
    others = [choice.upper() for choice in record.choices] + \
        [choice + " " for choice in record.choices] + ["", "none", "auto"]
    for other in others:
        if other in record.choices:
            continue
        with pytest.raises(ValueError, match=rf"^{name} must be one of"):
            record.check(other, name)
    for other in (None, 1, True, [record.choices[0]], record.choices[0].encode()):
        with pytest.raises(TypeError, match=rf"\b{name}\b"):
            record.check(other, name)


def test_loss_factor():
    assert _options.loss_factor("mse") == 1.0 and _options.loss_factor("half_mse") == 0.5
    with pytest.raises(ValueError, match="loss"):
        _options.loss_factor("mae")


# ---------------------------------------------------------------------------
# Config
# ---------------------------------------------------------------------------

VALID_CONFIGS = [
    {},
    dict(method="sgd", lr=0.5, epochs=0, fit_intercept=False, loss="half_mse", seed=3),
    dict(momentum=0.9, nesterov=True, weight_decay=0.1, l1=0.01, decay_bias=True),
    dict(momentum=0.5, dampening=1.0, schedule=schedules.StepDecay(step_size=2, gamma=0.5),
         average=7),
    dict(schedule="invscaling", average=True, tol=1e-3, stop_on="validation"),
    dict(seed=np.random.SeedSequence(4), n_threads=3, shuffle_block=None, copy=False,
         callback=print, callback_every=2, verbose=2, progress=True, check_lr=True),
    dict(seed=np.random.default_rng(0), shuffle_block=128, validation_fraction=0.3,
         on_divergence="halve", backend="reference", n_iter_no_change=1),
]


def test_every_default_passes_its_check():
    config = _options.Config()
    for record in _options.OPTIONS:
        value = getattr(config, record.name)
        checked = record.check(record.default, record.name)
        assert _same_default(value, checked) or isinstance(value, schedules.Schedule), record.name
    assert config.schedule == gdcore.schedules.check_schedule("constant")


@pytest.mark.parametrize("options", VALID_CONFIGS, ids=lambda o: ",".join(o) or "defaults")
def test_revalidating_a_config_is_idempotent(options):
    """A Config holds checked (normalised) values: checking them again changes
    nothing."""
    config = _options.Config(**options)
    again = dataclasses.replace(config)
    assert again == config
    assert dataclasses.replace(again) == again
    for record in _options.OPTIONS:
        assert getattr(again, record.name) is getattr(config, record.name) or \
            getattr(again, record.name) == getattr(config, record.name), record.name


def test_config_rules_between_options():
    assert _options.Config(stop_on="validation").validation_fraction == \
        _options.DEFAULT_VALIDATION_FRACTION
    assert _options.Config(stop_on="validation", validation_fraction=0.3) \
        .validation_fraction == 0.3
    for options in (dict(nesterov=True), dict(nesterov=True, momentum=0.5, dampening=0.1)):
        with pytest.raises(ValueError, match="nesterov"):
            _options.Config(**options)
    with pytest.raises(ValueError, match=r"^lr\b"):
        _options.Config(lr=-1.0)
    with pytest.raises(TypeError):
        _options.Config(learning_rate=0.1)


def test_derived_properties():
    assert _options.Config().loss_factor == 1.0
    assert _options.Config(loss="half_mse").loss_factor == 0.5
    assert _options.Config().power == 0.0
    assert _options.Config(schedule=gdcore.schedules.InverseScaling(power=0.75)).power == 0.75
    assert _options.Config().average_from == -1
    assert _options.Config(average=True).average_from == 0
    assert _options.Config(average=12).average_from == 12


# ---------------------------------------------------------------------------
# The kernels' state layout
# ---------------------------------------------------------------------------

def test_every_kernel_build_numbers_the_state_rows_as_the_python_layer():
    assert _state.STATE_ROWS == ("params", "grad_sum", "velocity", "square_avg", "aux",
                                 "l1_applied", "average")
    rows = [_state.PARAMS, _state.GRAD_SUM, _state.VELOCITY, _state.SQUARE_AVG, _state.AUX,
            _state.L1_APPLIED, _state.AVERAGE]
    assert rows == list(range(7))
    for name in _dispatch.available():
        assert _dispatch.load(name).STATE_ROWS == _state.STATE_ROWS, name
