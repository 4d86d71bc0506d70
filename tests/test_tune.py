# SPDX-License-Identifier: Apache-2.0
"""λ selection by Bayesian optimisation (Optuna)."""

import numpy as np
import pytest

pytest.importorskip("optuna")

from cvx_lifted.datasets import load_digits  # noqa: E402
from cvx_lifted.tune import TuneResult, split_validation, tune_lambda  # noqa: E402


@pytest.fixture(scope="module")
def tiny():
    X, y, _, _ = load_digits(dtype=np.float32)
    return X[:300], y[:300]


def _table(result: TuneResult):
    return [(t["lam"], t["rho"], t["value"]) for t in result.trials]


@pytest.mark.parametrize("sampler", ["tpe", "gp"])
def test_tune_respects_the_trial_budget_and_is_reproducible(tiny, sampler):
    if sampler == "gp":
        pytest.importorskip("torch")
    X, y = tiny
    kw = {"hidden": (8,), "n_trials": 4, "max_iter": 1, "sampler": sampler, "seed": 1}
    kw["n_startup_trials"] = 2  # the last two trials come from the model
    a = tune_lambda(X, y, **kw)
    b = tune_lambda(X, y, **kw)
    assert len(a.trials) == 4 and a.stopped_by == "n_trials"
    assert _table(a) == _table(b)
    assert a.sampler == sampler
    assert 1e-2 <= a.best_params["lam"] <= 1e2 and a.best_params["rho"] == 1e-3
    assert a.best_value == max(t["value"] for t in a.trials)
    assert a.config["fit_rows"] + a.config["validation_rows"] == 300
    table = a.table()
    assert table.count("\n") == 5 and "**" in table
    assert a.as_dict()["best_params"] == a.best_params


def test_tune_respects_the_time_budget(tiny):
    X, y = tiny
    res = tune_lambda(X, y, hidden=(8,), n_trials=10_000, timeout=0.5, max_iter=1, sampler="tpe")
    assert res.stopped_by == "timeout"
    assert 1 <= len(res.trials) < 10_000
    assert res.seconds < 5.0  # the budget plus at most one short trial


def test_tune_rho_and_explicit_validation(tiny):
    X, y = tiny
    X_fit, y_fit, X_val, y_val = split_validation(X, y, val_fraction=0.25, seed=0)
    res = tune_lambda(
        X_fit,
        y_fit,
        validation=(X_val, y_val),
        hidden=(8,),
        tune_rho=True,
        rho_range=(1e-4, 1e-2),
        lam_range=(0.1, 10.0),
        n_trials=3,
        max_iter=1,
        sampler="tpe",
        max_rows=100,
    )
    assert res.config["fit_rows"] == 100 and res.config["validation_rows"] == len(y_val)
    for t in res.trials:
        assert 1e-4 <= t["rho"] <= 1e-2 and 0.1 <= t["lam"] <= 10.0


def test_split_validation_is_stratified_and_seeded(tiny):
    X, y = tiny
    a = split_validation(X, y, val_fraction=0.2, seed=0)
    b = split_validation(X, y, val_fraction=0.2, seed=0)
    assert len(a[3]) == 60 and len(a[1]) == 240
    np.testing.assert_array_equal(a[3], b[3])
    assert set(np.unique(a[3])) == set(np.unique(y))
    with pytest.raises(ValueError, match="val_fraction"):
        split_validation(X, y, val_fraction=1.5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"lam_range": (0.0, 1.0)}, "lam_range"),
        ({"lam_range": (2.0, 1.0)}, "lam_range"),
        ({"sampler": "cmaes"}, "unknown sampler"),
        ({"n_trials": 0}, "n_trials"),
        ({"timeout": -1.0}, "timeout"),
        ({"max_iter": 0}, "max_iter"),
        ({"rho": -1.0}, "rho"),
    ],
)
def test_tune_rejects_bad_input(tiny, kwargs, match):
    X, y = tiny
    with pytest.raises(ValueError, match=match):
        tune_lambda(X, y, **kwargs)


def test_tune_rejects_non_integer_labels(tiny):
    X, y = tiny
    with pytest.raises(ValueError, match="integer labels"):
        tune_lambda(X, y.astype(float), n_trials=1)
