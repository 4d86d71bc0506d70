# SPDX-License-Identifier: Apache-2.0
"""Verification: every catalogue entry's program agrees with its closed form."""

import json

import cvxpy as cp
import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted.activations import ACTIVATIONS, BUILTIN_ACTIVATIONS
from cvx_lifted.testing import TOLERANCES, rel_error, solver_tolerance
from cvx_lifted.verify import default_inputs, format_reports, verify_all

PROGRAM_NAMES = sorted(n for n in BUILTIN_ACTIVATIONS if ACTIVATIONS[n].has_program)


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_every_activation_verifies_tight(name):
    report = cl.verify(name)
    assert report.passed, str(report)
    assert report.max_rel_error <= solver_tolerance(report.solver, "tight")
    assert report.closed_form_violation <= 1e-12
    assert report.solver_violation <= 1e-6
    assert report.n_solves == report.n_rows  # batch_size=1: one compile, one solve per row
    assert report.compile_seconds > 0 and report.solve_seconds > 0


@pytest.mark.parametrize("name", ["relu", "hard_tanh"])
def test_verify_with_a_batch_larger_than_the_inputs(name):
    """A 1,000-row batch for 43 default inputs: compiled for the rows there are, and it passes."""
    report = cl.verify(name, batch_size=1000)
    assert report.passed, str(report)
    assert report.n_solves == 2  # one per group of inputs (28 and 15 rows)


@pytest.mark.parametrize("name", ["relu", "sigmoid", "sparsemax", "sign"])
def test_verify_default_accuracy_uses_looser_tolerances(name):
    report = cl.verify(name, accuracy="default", batch_size=4)
    assert report.passed, str(report)
    assert report.tolerance == TOLERANCES["default"][report.solver]


@pytest.mark.parametrize(
    ("name", "params"),
    [
        ("leaky_relu", {"alpha": 0.3}),
        ("clip", {"lo": -2.0, "hi": 0.5}),
        ("max_pool", {"pool_size": 3}),
    ],
)
def test_verify_parametrised_activations(name, params):
    assert cl.verify(cl.get_activation(name, **params)).passed


def test_default_inputs_cover_edges_and_boundaries():
    act = cl.get_activation("clip", lo=-2.0, hi=0.5)
    U = default_inputs(act)
    for v in (0.0, 1e-8, -1e-8, 50.0, -50.0, -2.0, 0.5, 0.5 + 1e-8, -2.0 - 1e-8):
        assert np.any(U == v), v
    assert U.shape[1] == 4
    assert default_inputs("max_pool").shape[1] % 2 == 0


def test_verify_user_inputs_and_errors():
    U = np.array([[-1.0, 0.0, 2.0]])
    report = cl.verify("relu", U)
    assert report.n_rows == 1 and report.n_features == 3 and report.passed
    with pytest.raises(ValueError, match="NaN or infinite"):
        cl.verify("relu", np.array([[np.nan, 1.0]]))
    with pytest.raises(ValueError, match="non-empty 2-D"):
        cl.verify("relu", np.zeros((0, 3)))
    with pytest.raises(ValueError, match="unknown activation"):
        cl.verify("nope")


def test_wrong_closed_form_is_caught_by_the_optimality_gap():
    """A custom activation whose closed form is not the argmin fails verification."""
    act = cl.custom_activation(
        name="test_wrong_closed_form",
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
        domain=lambda u, z: [z >= 0],
        closed_form=lambda u: np.abs(u),  # wrong: should be max(u, 0)
        register=False,
        check_closed_form=False,  # refused when declared otherwise
    )
    report = cl.verify(act)
    assert not report.passed
    assert "closed form not optimal" in report.reason
    assert report.optimality_gap > 1e-3


def test_closed_form_outside_domain_is_reported():
    act = cl.custom_activation(
        name="test_outside_domain",
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
        domain=lambda u, z: [z >= 0],
        closed_form=lambda u: u,  # leaves z >= 0 for negative u
        register=False,
        check_closed_form=False,  # refused when declared otherwise
    )
    report = cl.verify(act)
    assert not report.passed
    assert "leaves the domain" in report.reason


def test_verify_all_and_table():
    reports = verify_all(["relu", "softplus"])
    assert isinstance(reports[0], cl.VerificationReport)
    assert reports[1][0] == "softplus"
    table = format_reports(reports)
    assert "relu " in table and "PASS" in table and "closed form only" in table
    json.dumps(reports[0].as_dict())
    assert "PASS" in str(reports[0])


def test_rel_error_is_relative_with_offset():
    assert rel_error(1e-9, 0.0) == pytest.approx(1e-9)
    assert rel_error(101.0, 100.0) == pytest.approx(1 / 101)


def test_verification_prints_nothing(capsys):
    # OSQP 1.x prints "Polishing not needed ..." on every polished solve with no active set
    # (osqp/osqp#785); verification polishes, so it must keep that line out of the user's output.
    report = cl.verify("identity")
    assert report.passed
    assert capsys.readouterr().out == ""


def test_a_closed_form_wrong_on_an_interval_is_caught_for_every_seed():
    """Wrong only for 8 < u < 45: the random and edge probes alone missed it in most seeds."""

    def almost_relu(u):
        return np.where((u > 8) & (u < 45), u + 0.5, np.maximum(u, 0.0))

    act = cl.custom_activation(
        name="test_wrong_on_an_interval",
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
        domain=lambda u, z: [z >= 0],
        closed_form=almost_relu,
        register=False,
    )
    for seed in range(20):
        report = cl.verify(act, seed=seed, batch_size=8)
        assert not report.passed, seed
        assert "closed form not optimal" in report.reason
    grid = default_inputs(act)
    assert np.any((grid > 8) & (grid < 45)) and np.any((grid < -8) & (grid > -45))


def test_the_probe_grid_spans_1e_minus_6_to_1e3_with_both_signs():
    from cvx_lifted.verify import PROBE_GRID

    magnitudes = np.abs(PROBE_GRID[PROBE_GRID != 0])
    assert magnitudes.min() == pytest.approx(1e-6) and magnitudes.max() == pytest.approx(1e3)
    assert np.sum(PROBE_GRID > 0) == np.sum(PROBE_GRID < 0) == 55
    U = default_inputs("relu")
    for value in PROBE_GRID:
        assert np.any(U == value)
    # sign declares no edge value below 1e-2 (its argmin is ill-conditioned there): its grid
    # starts at 1e-2
    rows = default_inputs("sign")[10:]  # the grid and edge rows, after the 10 random rows
    assert np.abs(rows[rows != 0]).min() == pytest.approx(1e-2)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"tol": float("nan")}, "tol must be a finite number >= 0"),
        ({"tol": -1.0}, "tol must be a finite number >= 0"),
        ({"batch_size": 2.5}, "batch_size must be a positive integer"),
        ({"seed": -1}, "seed must be an integer >= 0"),
        ({"solvers": "OSQP"}, r"a sequence of solver names such as \['OSQP'\]"),
    ],
)
def test_verify_checks_its_arguments(kwargs, match):
    with pytest.raises(ValueError, match=match):
        cl.verify("relu", **kwargs)


def test_relative_assertion_fails_on_unmatched_nan_and_infinity():
    from cvx_lifted.testing import assert_allclose_rel

    for actual, desired in [([1.0, np.nan], [1.0, 2.0]), ([1.0], [np.nan]), ([np.inf], [1.0])]:
        with pytest.raises(AssertionError, match="not finite"):
            assert_allclose_rel(actual, desired, 1e-6, "x")
    assert_allclose_rel([np.inf, np.nan, 1.0], [np.inf, np.nan, 1.0 + 1e-9], 1e-6, "x")
