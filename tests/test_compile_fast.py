# SPDX-License-Identifier: Apache-2.0
"""Compiled problems solved by direct solver calls: agreement with CVXPY, fallbacks, batches."""

import cvxpy as cp
import numpy as np
import pytest

from cvx_lifted import CompiledArgmin, CompiledProblem, SolverFailedError, get_activation
from cvx_lifted import _solver_backends as backends
from cvx_lifted.blocks import state_step_problem

TOL = 1e-6


def _reference(prob: CompiledProblem) -> CompiledProblem:
    """The same compiled problem forced onto ``cvxpy.Problem.solve`` for every solve."""
    prob.fast_path = False
    return prob


def _state_values(rng, batch, width, next_width, following):
    T = rng.standard_normal((batch, next_width))
    return {
        "U": 1.5 * rng.standard_normal((batch, width)),
        "W": rng.uniform(-1.0, 1.0, (next_width, width)),
        "b": 0.1 * rng.standard_normal(next_width),
        "T": following(T),  # a point of the next activation's range
    }


@pytest.mark.parametrize(
    ("previous", "following", "solvers", "accuracy", "expected"),
    [
        ("relu", "relu", None, "default", "OSQP"),  # QP
        ("relu", "hard_tanh", ["CLARABEL"], "default", "CLARABEL"),  # QP, interior point
        ("relu_l1", "relu_l1", None, "default", "CLARABEL"),  # LP
        ("relu_l1", "sign", ["ECOS"], "default", "ECOS"),  # LP
        ("sigmoid", "sigmoid", None, "default", "ECOS"),  # exponential cone
        ("sigmoid", "tanh", ["CLARABEL"], "tight", "CLARABEL"),  # exponential cone
    ],
)
def test_state_step_fast_path_agrees_with_cvxpy(previous, following, solvers, accuracy, expected):
    prev, nxt = get_activation(previous), get_activation(following)

    def build():
        return state_step_problem(prev, nxt, 2, 6, 3, 1.0, 0.7, solvers=solvers, accuracy=accuracy)

    fast, slow = build(), _reference(build())
    rng = np.random.default_rng(3)
    values = _state_values(rng, 2, 6, 3, nxt)
    for step in range(6):
        # new rows every time; new weights (a matrix update) every other time
        values["U"] = 1.5 * rng.standard_normal((2, 6))
        values["T"] = nxt(rng.standard_normal((2, 3)))
        if step % 2:
            values["W"] = rng.uniform(-1.0, 1.0, (3, 6))
            values["b"] = 0.1 * rng.standard_normal(3)
        z_fast = fast.solve(**values)["Z"]
        z_slow = slow.solve(**values)["Z"]
        np.testing.assert_allclose(z_fast, z_slow, atol=TOL, rtol=0)
        assert fast.value == pytest.approx(slow.value, abs=TOL * (1 + abs(slow.value)))
    assert fast.stats.solver == slow.stats.solver == expected
    assert fast.stats.n_direct == 5, "every solve after the first is a direct call"
    assert fast.stats.cvxpy_path == {}
    assert slow.stats.n_direct == 0
    assert slow.stats.cvxpy_path == {expected: "fast_path=False"}


@pytest.mark.parametrize(
    "name",
    [
        "identity",
        "relu",
        "relu_l1",
        "leaky_relu",
        "hard_tanh",
        "sigmoid",
        "tanh",
        "sign",
        "sparsemax",
        "max_pool",
    ],
)
def test_argmin_fast_path_agrees_with_cvxpy(name):
    fast = CompiledArgmin(name, 6, 3)
    slow = CompiledArgmin(name, 6, 3, fast_path=False)
    rng = np.random.default_rng(4)
    for _ in range(3):
        U = 2.0 * rng.standard_normal((7, 6))  # three blocks, the last one padded
        np.testing.assert_allclose(fast(U), slow(U), atol=TOL, rtol=0)
    assert fast.stats.n_direct == fast.stats.n_solves - 1
    assert slow.stats.n_direct == 0
    assert fast.stats.solver == slow.stats.solver


def _soc_problem(solvers):
    u = cp.Parameter(5, name="u")
    r = cp.Parameter(nonneg=True, name="r")
    z = cp.Variable(5, name="z")
    objective = cp.norm(z - u, 2) + 0.5 * cp.sum_squares(z)
    constraints = [cp.norm(z, 2) <= r]
    return CompiledProblem(objective, constraints, {"u": u, "r": r}, {"z": z}, solvers=solvers)


@pytest.mark.parametrize("solver", ["CLARABEL", "ECOS"])
def test_second_order_cone_fast_path_agrees_with_cvxpy(solver):
    fast, slow = _soc_problem([solver]), _reference(_soc_problem([solver]))
    rng = np.random.default_rng(5)
    active = 0
    for _ in range(6):
        values = {"u": 3.0 * rng.standard_normal(5), "r": 0.2 + abs(rng.standard_normal())}
        z_fast = fast.solve(**values)["z"]
        np.testing.assert_allclose(z_fast, slow.solve(**values)["z"], atol=TOL, rtol=0)
        assert np.linalg.norm(z_fast) <= values["r"] + 1e-7
        active += np.linalg.norm(z_fast) > values["r"] - 1e-6
    assert active, "the cone constraint binds in some solves"
    assert fast.stats.n_direct == 5 and fast.stats.solver == solver


def _box_problem(**kw):
    u = cp.Parameter(3, name="u")
    lo = cp.Parameter(3, name="lo")
    hi = cp.Parameter(3, name="hi")
    z = cp.Variable(3, name="z")
    constraints = [z >= lo, z <= hi]
    params = {"u": u, "lo": lo, "hi": hi}
    return CompiledProblem(0.5 * cp.sum_squares(z - u), constraints, params, {"z": z}, **kw)


def test_osqp_updates_only_what_changed(monkeypatch):
    import osqp

    relu = get_activation("relu")
    prob = state_step_problem(relu, relu, 1, 5, 2, 1.0, 1.0)
    rng = np.random.default_rng(11)
    values = _state_values(rng, 1, 5, 2, relu)
    prob.solve(**values)
    prob.solve(**values)  # the first direct solve sets OSQP up
    updates = []
    original = osqp.OSQP.update

    def spy(self, **kwargs):
        updates.append(sorted(kwargs))
        return original(self, **kwargs)

    monkeypatch.setattr(osqp.OSQP, "update", spy)
    values["U"] = rng.standard_normal((1, 5))
    prob.solve(**values)  # new rows: vectors only, the factorisation is kept
    values["b"] = values["b"] + 0.1
    prob.solve(**values)  # new bias: bounds only
    values["W"] = 2.0 * values["W"]
    prob.solve(**values)  # new weights: the matrix changes
    prob.solve(**values)  # same data again: nothing to update
    assert updates == [["q"], ["l", "u"], ["Ax"]]
    assert prob.stats.n_direct == 5


def test_large_maps_take_scipy_products(monkeypatch):
    # maps above _GATHER_MAX_NNZ entries are applied with scipy instead of numpy's bincount
    monkeypatch.setattr(backends, "_GATHER_MAX_NNZ", 0)
    relu = get_activation("relu")
    fast = state_step_problem(relu, relu, 2, 6, 3, 1.0, 0.7)
    slow = _reference(state_step_problem(relu, relu, 2, 6, 3, 1.0, 0.7))
    rng = np.random.default_rng(10)
    for _ in range(3):
        values = _state_values(rng, 2, 6, 3, relu)
        np.testing.assert_allclose(fast.solve(**values)["Z"], slow.solve(**values)["Z"], atol=TOL)
    pmap, _ = fast._direct["OSQP"]
    assert pmap._A._row_of is None and pmap._A.M is not None
    assert fast.stats.n_direct == 2


def test_direct_solves_skip_cvxpy_and_track_the_solution(monkeypatch):
    prob = _box_problem()
    rng = np.random.default_rng(6)
    calls = []
    original = cp.Problem.solve

    def counting(self, *args, **kwargs):
        calls.append(kwargs.get("solver"))
        return original(self, *args, **kwargs)

    monkeypatch.setattr(cp.Problem, "solve", counting)
    for _ in range(5):
        u = 2.0 * rng.standard_normal(3)
        lo, hi = -np.abs(rng.standard_normal(3)), np.abs(rng.standard_normal(3))
        z = prob.solve(u=u, lo=lo, hi=hi)["z"]
        np.testing.assert_allclose(z, np.clip(u, lo, hi), atol=1e-6)
        assert prob.value == pytest.approx(0.5 * np.sum((z - u) ** 2), abs=1e-8)
    assert calls == ["OSQP"], "only the first solve goes through CVXPY"
    assert prob.stats.n_direct == 4 and prob.stats.n_solves == 5


def test_infeasible_data_on_the_direct_path_raises_naming_the_solvers():
    prob = _box_problem(solvers=["OSQP", "CLARABEL"])
    ones = np.ones(3)
    prob.solve(u=ones, lo=-ones, hi=ones)
    prob.solve(u=ones, lo=-ones, hi=ones, solvers=["CLARABEL"])
    assert set(prob._direct) == {"OSQP", "CLARABEL"}
    with pytest.raises(SolverFailedError, match="every solver failed") as info:
        prob.solve(u=ones, lo=ones, hi=-ones)  # lo > hi
    assert [s for s, _ in info.value.attempts] == ["OSQP", "CLARABEL"]
    assert all("infeasible" in status for _, status in info.value.attempts)
    assert "OSQP" in str(info.value) and "CLARABEL" in str(info.value)
    # the failed solve leaves nothing behind: the next feasible one is exact again
    z = prob.solve(u=3 * ones, lo=-ones, hi=2 * ones)["z"]
    np.testing.assert_allclose(z, 2 * ones, atol=1e-6)
    assert prob.stats.cvxpy_path == {}


def test_fast_path_off_and_solvers_without_adapter_use_cvxpy():
    prob = _box_problem(fast_path=False)
    ones = np.ones(3)
    for _ in range(2):
        prob.solve(u=ones, lo=-ones, hi=ones)
    assert prob.stats.n_direct == 0
    assert prob.stats.cvxpy_path == {"OSQP": "fast_path=False"}
    scs = _box_problem(solvers=["SCS"])
    for _ in range(2):
        z = scs.solve(u=2 * ones, lo=-ones, hi=ones)["z"]
        np.testing.assert_allclose(z, ones, atol=1e-4)
    assert scs.stats.n_direct == 0
    assert "no direct adapter" in scs.stats.cvxpy_path["SCS"]


def test_adapter_that_cannot_be_built_falls_back_once(monkeypatch):
    def refuse(*args, **kwargs):
        raise backends.FastPathUnavailable("simulated: program not supported")

    monkeypatch.setattr("cvx_lifted.compile.ProgramMap", refuse)
    prob = _box_problem()
    rng = np.random.default_rng(7)
    for _ in range(3):
        u = 2.0 * rng.standard_normal(3)
        z = prob.solve(u=u, lo=-np.ones(3), hi=np.ones(3))["z"]
        np.testing.assert_allclose(z, np.clip(u, -1, 1), atol=1e-6)
    assert prob.stats.n_direct == 0
    assert prob.stats.cvxpy_path == {"OSQP": "simulated: program not supported"}


def test_adapter_that_disagrees_with_cvxpy_is_not_adopted(monkeypatch):
    original = backends.ProgramMap.unpack

    def shifted(self, x):
        return {name: value + 0.5 for name, value in original(self, x).items()}

    monkeypatch.setattr(backends.ProgramMap, "unpack", shifted)
    prob = _box_problem()
    ones = np.ones(3)
    for _ in range(2):
        np.testing.assert_allclose(prob.solve(u=ones, lo=-ones, hi=ones)["z"], ones, atol=1e-6)
    assert prob.stats.n_direct == 0
    assert "differs from CVXPY's" in prob.stats.cvxpy_path["OSQP"]


def test_direct_call_that_raises_hands_over_to_cvxpy(monkeypatch):
    prob = _box_problem()
    ones = np.ones(3)
    prob.solve(u=ones, lo=-ones, hi=ones)

    def broken(self, data, settings):
        raise RuntimeError("simulated crash")

    monkeypatch.setattr(backends.OsqpBackend, "solve", broken)
    for _ in range(2):
        z = prob.solve(u=3 * ones, lo=-ones, hi=2 * ones)["z"]
        np.testing.assert_allclose(z, 2 * ones, atol=1e-6)
    assert prob.stats.solver == "OSQP" and prob.stats.n_direct == 0
    assert "simulated crash" in prob.stats.cvxpy_path["OSQP"]
    assert "OSQP" not in prob._direct


def test_nan_from_a_direct_call_is_never_returned(monkeypatch):
    prob = _box_problem()
    ones = np.ones(3)
    prob.solve(u=ones, lo=-ones, hi=ones)

    def nan_answer(self, data, settings):
        return backends.Outcome(cp.OPTIMAL, np.full(self.pmap.n, np.nan))

    monkeypatch.setattr(backends.OsqpBackend, "solve", nan_answer)
    z = prob.solve(u=3 * ones, lo=-ones, hi=2 * ones)["z"]
    np.testing.assert_allclose(z, 2 * ones, atol=1e-6)
    assert prob.stats.solver == "CLARABEL"
    assert prob.stats.fallbacks[-1][0] == "OSQP"
    assert "infeasible or NaN" in prob.stats.fallbacks[-1][1]


@pytest.mark.parametrize(("residual", "accepted"), [(1e-9, True), (1e-3, False)])
def test_osqp_inaccurate_rule_on_the_direct_path(monkeypatch, residual, accepted):
    prob = _box_problem()
    ones = np.ones(3)
    prob.solve(u=ones, lo=-ones, hi=ones)
    original = backends.OsqpBackend.solve

    def inaccurate(self, data, settings):
        out = original(self, data, settings)
        return backends.Outcome(cp.OPTIMAL_INACCURATE, out.x, residual, residual)

    monkeypatch.setattr(backends.OsqpBackend, "solve", inaccurate)
    z = prob.solve(u=3 * ones, lo=-ones, hi=2 * ones)["z"]
    np.testing.assert_allclose(z, 2 * ones, atol=1e-6)
    if accepted:
        assert (prob.stats.solver, prob.stats.status) == ("OSQP", cp.OPTIMAL_INACCURATE)
        assert prob.stats.n_inaccurate == 0
    else:
        assert prob.stats.solver == "CLARABEL"
        assert prob.stats.fallbacks[-1] == ("OSQP", cp.OPTIMAL_INACCURATE)


def test_per_call_solvers_and_accuracy():
    argmin = CompiledArgmin("relu", 5)
    prob = argmin.problem
    rng = np.random.default_rng(8)
    U = rng.standard_normal((1, 5))
    U[0, 0] = 1e-3  # close to the kink
    prob.solve(u=U)
    assert prob.stats.solver == "OSQP"
    z = prob.solve(u=U, solvers=["CLARABEL"])["z"]
    assert prob.stats.solver == "CLARABEL"
    np.testing.assert_allclose(z, np.maximum(U, 0), atol=1e-5)
    assert prob.solvers[0] == "OSQP", "a per-call order does not change the problem's order"
    for _ in range(3):
        U = rng.standard_normal((1, 5))
        z = prob.solve(u=U, accuracy="tight")["z"]
        np.testing.assert_allclose(z, np.maximum(U, 0), atol=1e-9, rtol=0)
    assert prob.stats.solver == "OSQP" and prob.accuracy == "default"
    assert prob.stats.n_direct >= 3
    with pytest.raises(ValueError, match="accuracy must be"):
        prob.solve(u=U, accuracy="loose")
    with pytest.raises(ValueError, match="solvers must name installed solvers"):
        prob.solve(u=U, solvers=["NOT_A_SOLVER"])


def test_reserved_parameter_names():
    z = cp.Variable(2)
    solvers = cp.Parameter(2)
    with pytest.raises(ValueError, match="reserved"):
        CompiledProblem(cp.sum_squares(z - solvers), [], {"solvers": solvers}, {"z": z})


def test_negative_value_of_a_nonneg_parameter_is_rejected():
    prob = _soc_problem(None)
    with pytest.raises(ValueError, match="non-negative"):
        prob.solve(u=np.zeros(5), r=-1.0)


def test_other_parameter_attributes_are_validated_by_cvxpy():
    u = cp.Parameter(2, nonpos=True, name="u")
    z = cp.Variable(2)
    prob = CompiledProblem(cp.sum_squares(z - u), [z >= -1], {"u": u}, {"z": z})
    for _ in range(2):
        np.testing.assert_allclose(prob.solve(u=-3 * np.ones(2))["z"], -np.ones(2), atol=1e-6)
    assert prob.stats.n_direct == 1
    with pytest.raises(ValueError, match="nonpositive"):
        prob.solve(u=np.ones(2))


@pytest.mark.parametrize("fast_path", [True, False])
def test_solve_many_equals_a_loop_of_solve(fast_path):
    relu = get_activation("relu")

    def build():
        prob = state_step_problem(relu, relu, 1, 8, 3, 1.0, 1.0)
        prob.fast_path = fast_path
        return prob

    looped, batched = build(), build()
    rng = np.random.default_rng(9)
    W = rng.uniform(-1, 1, (3, 8))
    b = 0.1 * rng.standard_normal(3)
    first = {"U": rng.standard_normal((1, 8)), "W": W, "b": b, "T": np.ones((1, 3))}
    looped.solve(**first)
    batched.solve(**first)
    rows = [
        {"U": 2 * rng.standard_normal((1, 8)), "T": np.abs(rng.standard_normal((1, 3)))}
        for _ in range(6)
    ]
    expected = [looped.solve(W=W, b=b, **row)["Z"] for row in rows]
    got = batched.solve_many(rows, W=W, b=b)
    assert len(got) == len(rows)
    for z_loop, z_many in zip(expected, got, strict=True):
        np.testing.assert_allclose(z_many["Z"], z_loop, atol=1e-9, rtol=0)
    assert batched.value == pytest.approx(looped.value, abs=1e-9)
    assert batched.stats.n_solves == looped.stats.n_solves == 7
    assert batched.stats.n_direct == looped.stats.n_direct == (6 if fast_path else 0)
    # the last row's values stay current, as after a loop of solve()
    np.testing.assert_allclose(
        batched.solve(W=W, b=b)["Z"], looped.solve(W=W, b=b)["Z"], atol=1e-9, rtol=0
    )


def test_solve_many_input_errors():
    prob = _box_problem()
    ones = np.ones(3)
    assert prob.solve_many([]) == []
    with pytest.raises(ValueError, match="same parameters"):
        prob.solve_many([{"u": ones}, {"u": ones, "lo": -ones}], lo=-ones, hi=ones)
    with pytest.raises(ValueError, match="both per row and in shared"):
        prob.solve_many([{"u": ones}], u=ones, lo=-ones, hi=ones)
    with pytest.raises(ValueError, match=r"row 1: parameter 'u'.*NaN"):
        prob.solve_many([{"u": ones}, {"u": np.full(3, np.nan)}], lo=-ones, hi=ones)
