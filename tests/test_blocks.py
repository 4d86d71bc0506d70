# SPDX-License-Identifier: Apache-2.0
"""Compiled blocks that scale: memory linear in the rows, refusals before allocation, monotone
acceptance of every compiled answer, and stopping that never mistakes an increase for
convergence."""

import subprocess
import sys
import textwrap
import tracemalloc

import cvxpy as cp
import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted import LiftedNetwork
from cvx_lifted.bcd import BCDSolver
from cvx_lifted.blocks import (
    column_weight_problem,
    estimate_block_bytes,
    state_problem,
    whole_weight_problem,
)
from cvx_lifted.compile import CompiledProblem
from cvx_lifted.exceptions import BlockTooLargeError


def _data(m, n, q, seed):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(m, n))
    Y = np.eye(q)[rng.integers(0, q, m)]
    return X, Y


# ------------------------------------------------------------------ the decomposition is exact
@pytest.mark.parametrize("name", ["leaky_relu", "relu_l1", "sign", "relu"])
def test_column_weight_steps_equal_the_whole_problem(name):
    act = cl.get_activation(name)
    rng = np.random.default_rng(3)
    X = rng.normal(size=(30, 4))
    T = act.act(rng.normal(size=(30, 3)))
    col = column_weight_problem(act, X, 1.0, 0.1, accuracy="tight")
    W = np.empty((3, 4))
    b = np.empty(3)
    obj = 0.0
    for j in range(3):
        sol = col.solve(t=T[:, j : j + 1])
        W[j], b[j] = sol["w"][:, 0], sol["b"]
        obj += col.value
    whole = whole_weight_problem(act, X, 3, 1.0, 0.1, accuracy="tight")
    sol = whole.solve(T=T)
    assert obj == pytest.approx(whole.value, rel=1e-6, abs=1e-8)
    if name != "sign":  # sign's weight step (an LP) need not have a unique minimiser
        np.testing.assert_allclose(W, sol["W"], atol=1e-5)
        np.testing.assert_allclose(b, sol["b"], atol=1e-5)


def test_state_problem_with_constant_weights_solves_the_state_step():
    prev, nxt = cl.get_activation("clip"), cl.get_activation("relu")
    rng = np.random.default_rng(0)
    W, b = rng.normal(size=(3, 5)), rng.normal(size=3)
    U, T = rng.normal(size=(4, 5)), np.maximum(rng.normal(size=(4, 3)), 0)
    prob = state_problem(prev, nxt, W, b, 4, 1.0, 2.0, accuracy="tight")
    Z = prob.solve(U=U, T=T)["Z"]
    z = cp.Variable((4, 5))
    ref = cp.Problem(
        cp.Minimize(0.5 * cp.sum_squares(z - U) + cp.sum_squares(z @ W.T + b - T)),
        [z >= 0, z <= 1],
    )
    ref.solve(solver="CLARABEL")
    np.testing.assert_allclose(Z, z.value, atol=1e-6)


# ------------------------------------------------------------------ memory
def _peak(fn):
    tracemalloc.start()
    try:
        fn()
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


def test_compiled_weight_step_memory_is_linear_in_the_rows_and_within_the_estimate():
    act = cl.get_activation("leaky_relu")
    rng = np.random.default_rng(0)
    column_weight_problem(act, rng.normal(size=(50, 20)), 1.0, 1e-2)  # CVXPY's one-time tables
    peaks = {}
    for m in (3000, 12000):  # above HOIST_MIN_SIZE: parametrised products become constraints
        X = rng.normal(size=(m, 20))
        t = act.act(rng.normal(size=(m, 1)))

        def build_and_solve(X=X, t=t):
            column_weight_problem(act, X, 1.0, 1e-2).solve(t=t)

        peaks[m] = _peak(build_and_solve)
        assert peaks[m] <= estimate_block_bytes("column_weight", rows=m, n_in=20, n_out=1)
    # 4x the rows: at most ~4x the memory (quadratic growth would be 16x)
    assert peaks[12000] < 5 * peaks[3000]


def test_a_block_that_would_not_fit_is_refused_before_anything_is_allocated(monkeypatch):
    monkeypatch.setenv("CVX_LIFTED_BLOCK_MEMORY", str(10 * 2**20))
    act = cl.get_activation("leaky_relu")
    X = np.zeros((20_000, 64))
    with pytest.raises(BlockTooLargeError, match=r"GiB .*CVX_LIFTED_BLOCK_MEMORY") as info:
        column_weight_problem(act, X, 1.0, 1e-2, what="weight step of layer 0")
    assert "weight step of layer 0" in str(info.value)
    assert isinstance(info.value, MemoryError)


def test_a_digits_sized_sigmoid_like_network_no_longer_asks_for_gigabytes():
    # the compiled weight step of a 1,347 x 64 -> 100 layer once asked for 135 GiB; a user
    # activation without a fast path (a soft threshold) now trains in bounded memory
    code = textwrap.dedent(
        """
        import resource, numpy as np, cvxpy as cp, cvx_lifted as cl
        from sklearn.datasets import load_digits
        soft = cl.custom_activation(
            name="mem_soft", register=False,
            divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
            closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
        )
        X, y = load_digits(return_X_y=True)
        X, y = X[:400] / 16, y[:400]
        net = cl.LiftedNetwork([64, 32, 10], activation=soft, output="squared", lam=1, rho=1e-3)
        net.fit(X, np.eye(10)[y], max_iter=1, random_state=0)
        print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)
        """
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=600, check=True
    )
    peak_kib = int(out.stdout.split()[-1])
    assert peak_kib < 1_000_000, f"peak resident memory {peak_kib / 1024:.0f} MiB"


# ------------------------------------------------------------------ monotone acceptance
def _bad_first_answers(monkeypatch, n_bad):
    """Make the compiled solves of the first ``n_bad`` blocks return perturbed answers."""
    real_solve, real_many = CompiledProblem.solve, CompiledProblem.solve_many
    count = {"n": 0}

    def bad(out):
        return {k: v + 0.5 for k, v in out.items()}

    def solve(self, values=None, /, **kwargs):
        out = real_solve(self, values, **kwargs)
        count["n"] += 1
        return bad(out) if count["n"] <= n_bad else out

    def solve_many(self, rows, /, **kwargs):
        outs = real_many(self, rows, **kwargs)
        count["n"] += 1
        return [bad(o) for o in outs] if count["n"] <= n_bad else outs

    monkeypatch.setattr(CompiledProblem, "solve", solve)
    monkeypatch.setattr(CompiledProblem, "solve_many", solve_many)
    return count


def test_a_compiled_answer_that_raises_the_objective_is_solved_again(monkeypatch):
    X, Y = _data(12, 3, 2, 0)
    net = LiftedNetwork([3, 4, 2], activation="leaky_relu", output="squared", rho=1e-2)
    _bad_first_answers(monkeypatch, 1)  # a large rise: solved again
    result = net.fit(X, Y, max_iter=2, tol=0, random_state=0, track_blocks=True, batch_size=4)
    assert result.history.retried and result.history.retried[0][:2] == (1, "W0")
    assert not result.history.rejected
    values = [result.history.objective[0]] + [v for *_, v in result.history.blocks]
    assert np.all(np.diff(values) <= 1e-9 * (1 + abs(values[0])))


def test_a_block_that_keeps_raising_the_objective_is_rejected_and_recorded(monkeypatch):
    X, Y = _data(12, 3, 2, 0)
    net = LiftedNetwork([3, 4, 2], activation="leaky_relu", output="squared", rho=1e-2)
    _bad_first_answers(monkeypatch, 10**9)  # every compiled answer is bad
    result = net.fit(X, Y, max_iter=2, tol=0, random_state=0, track_blocks=True, batch_size=4)
    blocks = {b for _, b, *_ in result.history.rejected}
    assert {"W0", "X1"} <= blocks
    for _, _, before, after in result.history.rejected:
        assert after > before
    values = [result.history.objective[0]] + [v for *_, v in result.history.blocks]
    assert np.all(np.diff(values) <= 1e-9 * (1 + abs(values[0])))


def test_an_increase_is_never_called_convergence(monkeypatch):
    X, Y = _data(20, 3, 2, 0)
    net = LiftedNetwork([3, 4, 2], activation="relu", output="squared", rho=1e-2)
    real = BCDSolver._output_step

    def worse_output(self, Xs, Y):  # a broken block: the output state moves away from Y
        real(self, Xs, Y)
        if self._sweep >= 1:
            Xs[-1] = Xs[-1] + 1.0
        return {}

    monkeypatch.setattr(BCDSolver, "_output_step", worse_output)
    result = net.fit(X, Y, max_iter=3, tol=0.5, random_state=0)
    assert result.history.increases
    assert not result.converged
    assert result.stop_reason == "max_iter"


# ------------------------------------------------------------------ feasibility
@pytest.mark.parametrize("order", [["clip", "leaky_relu"], ["leaky_relu", "clip"]])
@pytest.mark.parametrize("output", ["squared", "simplex_xent"])
def test_clip_and_leaky_relu_networks_stay_feasible(order, output):
    for seed in range(4):
        X, Y = _data(20, 4, 3, seed)
        net = LiftedNetwork([4, 5, 5, 3], activation=order, output=output)
        result = net.fit(X, Y, max_iter=3, random_state=seed)
        assert np.isfinite(result.history.objective[-1])
        leaky = net.activations[order.index("leaky_relu")]
        layer = order.index("leaky_relu")
        U = net.preactivation(layer, result.states[layer - 1] if layer else X)
        assert leaky.domain_violation(U, result.states[layer]) <= 1e-7


# ------------------------------------------------------------------ randomized audit
@pytest.mark.parametrize("seed", range(16))
def test_no_block_of_a_random_fit_raises_the_objective(seed):
    from cvx_lifted.testing import random_fit_audit

    report = random_fit_audit(seed)
    assert report["error"] is None, report
    assert report["violations"] == [], report


# ------------------------------------------------------------------ blocks from templates
def test_elementwise_blocks_are_assembled_from_templates_and_train_the_same_network():
    from cvx_lifted.separable_blocks import TemplateStateStep, TemplateWeightStep

    act = cl.get_activation("leaky_relu")
    X = np.random.default_rng(0).normal(size=(12, 3))
    assert isinstance(column_weight_problem(act, X, 1.0, 0.1), TemplateWeightStep)
    W, b = np.ones((2, 3)), np.zeros(2)
    assert isinstance(state_problem(act, act, W, b, 4, 1.0, 1.0), TemplateStateStep)
    X, Y = _data(20, 3, 2, 0)
    fits = {}
    real_col, real_state = column_weight_problem, state_problem
    for template in (True, False):
        net = LiftedNetwork([3, 4, 2], activation="leaky_relu", output="squared", rho=1e-2)
        with pytest.MonkeyPatch.context() as mp:
            # the CVXPY-built blocks, as they were before templates
            if not template:
                mp.setattr(
                    "cvx_lifted.bcd.column_weight_problem",
                    lambda *a, **k: real_col(*a, **k, template=False),
                )
                mp.setattr(
                    "cvx_lifted.bcd.state_problem",
                    lambda *a, **k: real_state(*a, **k, template=False),
                )
            result = net.fit(X, Y, max_iter=3, tol=0, random_state=0, accuracy="tight")
        fits[template] = result.history.objective
    np.testing.assert_allclose(fits[True], fits[False], rtol=1e-5)


def test_a_template_block_over_the_budget_is_refused_before_anything_is_allocated(monkeypatch):
    monkeypatch.setenv("CVX_LIFTED_BLOCK_MEMORY", str(10 * 2**20))
    act = cl.get_activation("sign")
    W = np.zeros((2000, 2000))  # 32 MB of next-layer weights: a 2000-wide state step
    with pytest.raises(BlockTooLargeError, match="CVX_LIFTED_BLOCK_MEMORY") as info:
        state_problem(act, act, W, np.zeros(2000), 8, 1.0, 1.0, what="state step of layer 1")
    assert "state step of layer 1" in str(info.value)


@pytest.mark.parametrize("name", ["leaky_relu", "sign"])
def test_a_template_block_stays_within_its_estimate(name):
    act = cl.get_activation(name)
    rng = np.random.default_rng(0)
    column_weight_problem(act, rng.normal(size=(30, 20)), 1.0, 1e-2)
    X = rng.normal(size=(3000, 20))
    t = act.act(X @ rng.normal(scale=0.3, size=(20, 1)))

    def build_and_solve():
        column_weight_problem(act, X, 1.0, 1e-2).solve(t=t)

    assert _peak(build_and_solve) <= estimate_block_bytes(
        "template_weight", rows=3000, n_in=20, n_out=1
    )
