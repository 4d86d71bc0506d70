# SPDX-License-Identifier: Apache-2.0
"""Compiled (DPP) problems: compile once, re-solve, fall back, fail loudly."""

import cvxpy as cp
import numpy as np
import pytest

from cvx_lifted import (
    CompiledArgmin,
    CompiledProblem,
    NonConvexError,
    NotDPPError,
    SolverFailedError,
    get_activation,
)
from cvx_lifted.compile import drop_constant_terms, problem_class, row_batches
from cvx_lifted.testing import assert_allclose_rel


def _relu_problem(n=4, **kw):
    u = cp.Parameter((1, n))
    z = cp.Variable((1, n))
    return CompiledProblem(0.5 * cp.sum_squares(z - u), [z >= 0], {"u": u}, {"z": z}, **kw)


def test_compiled_once_then_resolved_with_new_values():
    prob = _relu_problem()
    cache = prob.problem._cache
    param_prog = cache.param_prog
    assert param_prog is not None, "the constructor compiles"
    compile_seconds = prob.stats.compile_seconds
    rng = np.random.default_rng(0)
    for _ in range(5):
        u = rng.standard_normal((1, 4))
        z = prob.solve(u=u)["z"]
        assert_allclose_rel(z, np.maximum(u, 0), 1e-5, "relu")
    assert prob.problem._cache.param_prog is param_prog, "no recompilation on re-solve"
    assert prob.stats.compile_seconds == compile_seconds
    assert prob.stats.n_solves == 5
    assert prob.stats.solver == "OSQP"
    assert prob.stats.seconds_per_solve > 0


def test_solve_accepts_mapping_and_reports_value():
    prob = _relu_problem(2)
    out = prob.solve({"u": np.array([[-1.0, 3.0]])})
    assert_allclose_rel(out["z"], [[0.0, 3.0]], 1e-5, "z")
    assert prob.value == pytest.approx(0.5, abs=1e-5)


def test_not_dpp_error_names_the_rule():
    lam = cp.Parameter(nonneg=True)
    u = cp.Parameter(3)
    z = cp.Variable(3)
    with pytest.raises(NotDPPError, match="not DPP") as info:
        CompiledProblem(lam * cp.sum_squares(z - u), [], {"lam": lam, "u": u}, {"z": z})
    assert "parameters" in str(info.value)


def test_non_convex_error_names_the_subexpression():
    u = cp.Parameter(3)
    z = cp.Variable(3)
    with pytest.raises(NonConvexError, match="multiplies two non-constant") as info:
        CompiledProblem(cp.sum(cp.multiply(z, z)) - u @ z, [], {"u": u}, {"z": z})
    assert "cp.square" in str(info.value)
    with pytest.raises(NonConvexError, match="concave"):
        CompiledProblem(-cp.sum_squares(z - u), [], {"u": u}, {"z": z})
    with pytest.raises(NonConvexError, match="constraint"):
        CompiledProblem(cp.sum_squares(z - u), [cp.square(z) == 1], {"u": u}, {"z": z})


def test_parameter_validation():
    prob = _relu_problem(3)
    with pytest.raises(ValueError, match=r"shape \(1, 3\)"):
        prob.solve(u=np.zeros((2, 3)))
    with pytest.raises(ValueError, match="NaN or infinity"):
        prob.solve(u=np.array([[0.0, np.nan, 1.0]]))
    with pytest.raises(ValueError, match="unknown parameter 'v'"):
        prob.solve(v=np.zeros((1, 3)))
    # a flat vector of the right size is accepted
    assert prob.solve(u=np.array([1.0, -1.0, 2.0]))["z"].shape == (1, 3)


def test_infeasible_problem_raises_with_every_solver_status():
    u = cp.Parameter(2)
    z = cp.Variable(2)
    prob = CompiledProblem(cp.sum_squares(z - u), [z >= u + 1, z <= u], {"u": u}, {"z": z})
    with pytest.raises(SolverFailedError, match="every solver failed") as info:
        prob.solve(u=np.zeros(2))
    tried = [s for s, _ in info.value.attempts]
    assert tried == prob.solvers
    assert all("infeasible" in status for _, status in info.value.attempts)


def test_fallback_order_and_sticky_fallback(monkeypatch):
    prob = _relu_problem(3)
    assert prob.solvers[0] == "OSQP"
    original = cp.Problem.solve

    def broken_osqp(self, *args, **kwargs):
        if kwargs.get("solver") == "OSQP":
            raise cp.SolverError("simulated OSQP crash")
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", broken_osqp)
    z = prob.solve(u=np.array([[-1.0, 0.5, 2.0]]))["z"]
    assert_allclose_rel(z, [[0.0, 0.5, 2.0]], 1e-5, "fallback")
    assert prob.stats.solver == "CLARABEL"
    assert prob.stats.fallbacks[0][0] == "OSQP"
    assert "simulated OSQP crash" in prob.stats.fallbacks[0][1]
    assert prob.solvers[0] == "CLARABEL"


def test_unknown_solver_is_a_clear_error():
    with pytest.raises(ValueError, match="not installed"):
        _relu_problem(solvers=["NOT_A_SOLVER"])


@pytest.mark.parametrize(
    ("name", "expected"),
    [("relu", "qp"), ("relu_l1", "lp"), ("sign", "lp"), ("sigmoid", "exp"), ("tanh", "exp")],
)
def test_problem_class_picks_the_solver_family(name, expected):
    argmin = CompiledArgmin(name, 3)
    assert argmin.problem.problem_class == expected
    first = {"qp": "OSQP", "lp": "CLARABEL", "exp": "ECOS"}[expected]
    assert argmin.problem.solvers[0] == first
    assert problem_class(argmin.problem.problem) == expected


def test_drop_constant_terms_keeps_the_argmin():
    act = get_activation("sigmoid")
    u = cp.Parameter((1, 2))
    z = cp.Variable((1, 2))
    full = act.divergence(u, z)
    reduced = drop_constant_terms(full)
    assert len(reduced.args) < len(full.args)
    assert all(a.variables() for a in reduced.args)


@pytest.mark.parametrize("batch_size", [1, 3, 7])
def test_compiled_argmin_batches_rows_with_padding(batch_size):
    rng = np.random.default_rng(1)
    U = 3 * rng.standard_normal((7, 4))
    argmin = CompiledArgmin("hard_tanh", 4, batch_size, accuracy="tight")
    Z = argmin(U)
    assert_allclose_rel(Z, np.clip(U, -1, 1), 1e-6, "hard_tanh")
    assert argmin.stats.n_solves == -(-7 // batch_size)


def test_row_batches_pad_the_last_batch_with_copies_of_its_last_row():
    U = np.arange(14.0).reshape(7, 2)
    batches = list(row_batches(7, 3))
    assert [(r.start, r.stop) for r, _ in batches] == [(0, 3), (3, 6), (6, 7)]
    rows, pad = batches[0]
    block = U[rows]
    assert pad(block) is block  # a full batch passes through
    rows, pad = batches[-1]
    np.testing.assert_array_equal(pad(U[rows]), np.repeat(U[6:], 3, axis=0))
    assert list(row_batches(0, 3)) == []


def test_compiled_argmin_pads_with_a_feasible_row():
    # sparsemax: a padded row is a copy of a real one, so every batch is a valid problem
    U = np.random.default_rng(2).standard_normal((5, 3))
    argmin = CompiledArgmin("sparsemax", 3, batch_size=2, accuracy="tight")
    Z = argmin(U)
    assert Z.shape == (5, 3)
    assert_allclose_rel(Z, get_activation("sparsemax").act(U), 1e-6, "sparsemax")


def test_compiled_argmin_input_errors():
    argmin = CompiledArgmin("relu", 3)
    with pytest.raises(ValueError, match=r"shape \(m, 3\)"):
        argmin(np.zeros((2, 4)))
    with pytest.raises(ValueError, match="NaN"):
        argmin(np.full((1, 3), np.inf))
    with pytest.raises(ValueError, match="n_features"):
        CompiledArgmin("relu", 0)
    with pytest.raises(ValueError, match="batch_size"):
        CompiledArgmin("relu", 3, batch_size=0)


def test_pooling_argmin_has_fewer_outputs():
    argmin = CompiledArgmin("max_pool", 6, accuracy="tight")
    U = np.array([[1.0, 2.0, -1.0, -3.0, 5.0, 5.0]])
    assert_allclose_rel(argmin(U), [[2.0, -1.0, 5.0]], 1e-6, "max_pool")


def test_osqp_solves_print_nothing(capsys):
    # OSQP 1.x prints "Polishing not needed ..." when it polishes (CVXPY's default) and finds no
    # active set (osqp/osqp#785): the identity's argmin never has one.
    inst = CompiledArgmin(get_activation("identity"), 10, 4)
    rng = np.random.default_rng(0)
    for _ in range(3):
        U = rng.normal(size=(4, 10))
        np.testing.assert_allclose(inst(U), U, atol=1e-5)
    assert inst.stats.solver == "OSQP"
    assert capsys.readouterr().out == ""
