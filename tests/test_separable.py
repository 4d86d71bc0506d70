# SPDX-License-Identifier: Apache-2.0
"""Blocks assembled from one-element templates (cvx_lifted.separable, separable_blocks).

They must solve the same problems as the blocks CVXPY canonicalises whole, keep
CompiledProblem's guarantees (solver order and fallbacks, status and feasibility checks,
accuracy modes, per-call solvers, errors that name every solver), and hold memory linear in
their data."""

import multiprocessing
import subprocess
import sys
import textwrap
import traceback
import tracemalloc
import warnings

import cvxpy as cp
import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted import _solver_backends as sb
from cvx_lifted._solver_backends_extra import make_any_backend
from cvx_lifted.blocks import column_weight_problem, state_problem
from cvx_lifted.compile import SOLVER_SETTINGS, CompiledProblem
from cvx_lifted.exceptions import SolverFailedError
from cvx_lifted.separable import row_separable, separable
from cvx_lifted.separable_blocks import TemplateStateStep, TemplateWeightStep

CATALOGUE = [
    "relu",
    "relu_l1",
    "leaky_relu",
    "sign",
    "sigmoid",
    "tanh",
    "relu_fenchel",
    "leaky_relu_fenchel",
    "clip",
    "hard_tanh",
    "identity",
]


def _soft_threshold():
    return cl.custom_activation(
        name="test_sep_soft",
        register=False,
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
        closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
    )


def _entropy():
    # Phi(z) = z log z - z, Phi*(u) = exp(u): an exponential-cone divergence, phi = exp
    return cl.custom_activation(
        name="test_sep_entropy",
        register=False,
        divergence=lambda u, z: (
            -cp.sum(cp.entr(z)) - cp.sum(z) + cp.sum(cp.exp(u)) - cp.sum(cp.multiply(u, z))
        ),
        closed_form=np.exp,
    )


def _activation(name):
    if name == "soft_threshold":
        return _soft_threshold()
    if name == "entropy":
        return _entropy()
    return cl.get_activation(name)


ALL = [*CATALOGUE, "soft_threshold", "entropy"]


# ------------------------------------------------------------------ the same problems
@pytest.mark.parametrize("penalty", ["l2", "l1"])
@pytest.mark.parametrize("name", ALL)
def test_weight_step_matches_the_block_cvxpy_canonicalises(name, penalty):
    act = _activation(name)
    rng = np.random.default_rng(1)
    X = rng.normal(size=(40, 5))
    T = act.act(rng.normal(size=(40, 3)) + X[:, :3])
    new = column_weight_problem(act, X, 1.0, 0.1, penalty=penalty, accuracy="tight")
    ref = column_weight_problem(act, X, 1.0, 0.1, penalty=penalty, accuracy="tight", template=False)
    assert isinstance(new, TemplateWeightStep) and not isinstance(ref, TemplateWeightStep)
    for j in range(3):
        got = new.solve(t=T[:, j : j + 1])
        want = ref.solve(t=T[:, j : j + 1])
        assert new.value == pytest.approx(ref.value, rel=1e-6, abs=1e-8)
        if name not in ("sign", "relu_l1"):  # piecewise-linear in b: minimisers need not be unique
            np.testing.assert_allclose(got["w"], want["w"], atol=1e-6)
            np.testing.assert_allclose(got["b"], want["b"], atol=1e-6)


def _state_data(prev, following, p=4, q=6, B=5, seed=0):
    rng = np.random.default_rng(seed)
    W, b = rng.normal(size=(q, p)), 0.3 * rng.normal(size=q)
    U = rng.normal(size=(B, p))
    if following is None:
        T = np.eye(q)[rng.integers(0, q, B)]
    else:  # next states the next layer can reach (leaky_relu's domain depends on them)
        T = following.act(prev.act(U) @ W.T + b + 0.2 * rng.normal(size=(B, q)))
        if following.name == "leaky_relu":
            T = following.act(prev.act(U) @ W.T + b)
    return W, b, U, T


def _compare_state(prev, following, tol):
    W, b, U, T = _state_data(prev, following)
    new = state_problem(prev, following, W, b, len(U), 1.0, 2.0, accuracy="tight")
    ref = state_problem(prev, following, W, b, len(U), 1.0, 2.0, accuracy="tight", template=False)
    assert isinstance(new, TemplateStateStep) and not isinstance(ref, TemplateStateStep)
    Z = new.solve(U=U, T=T)["Z"]
    np.testing.assert_allclose(Z, ref.solve(U=U, T=T)["Z"], atol=tol)
    assert new.value == pytest.approx(ref.value, rel=tol, abs=tol)


@pytest.mark.parametrize("name", ALL)
def test_state_step_matches_the_block_cvxpy_canonicalises_as_previous_divergence(name):
    _compare_state(_activation(name), cl.get_activation("relu"), 1e-6)


@pytest.mark.parametrize(
    "name",
    ["relu_l1", "sign", "leaky_relu", "clip", "hard_tanh", "relu_fenchel", "leaky_relu_fenchel"]
    + ["identity", "soft_threshold", "sparsemax"],
)
def test_state_step_matches_the_block_cvxpy_canonicalises_as_next_divergence(name):
    _compare_state(cl.get_activation("identity"), _activation(name), 1e-6)


@pytest.mark.parametrize("name", ["sigmoid", "tanh", "entropy", "softmax"])
def test_exponential_cone_state_steps_match_a_high_accuracy_solve(name):
    # interior-point solvers stop 1e-8..1e-6 from the optimum on exponential cones, one row or
    # a batch: both blocks are compared with a Clarabel solve at 1e-12 to 1e-10
    prev = cl.get_activation("clip")
    following = None if name == "softmax" else _activation(name)
    W, b, U, T = _state_data(prev, following)
    Z = cp.Variable(U.shape)
    V = Z @ W.T + np.ones((len(U), 1)) @ b[None]
    if following is None:
        nxt = cp.sum(cp.log_sum_exp(V, axis=1)) - cp.sum(cp.multiply(T, V))
    else:
        nxt = 2.0 * following.divergence(V, T)
    ref = cp.Problem(cp.Minimize(prev.divergence(U, Z) + nxt), prev.domain(U, Z))
    for tol, ratio in ((1e-12, 1e-10), (1e-11, 1e-10), (1e-11, 1e-9), (1e-10, 1e-8)):
        opts = {"tol_gap_abs": tol, "tol_gap_rel": tol, "tol_feas": tol, "tol_ktratio": ratio}
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", UserWarning)  # "may be inaccurate": the next one
            ref.solve(solver="CLARABEL", max_iter=500, **opts)
        if ref.status == cp.OPTIMAL:  # the tightest tolerances Clarabel certifies here
            break
    assert ref.status == cp.OPTIMAL
    new = state_problem(prev, following, W, b, len(U), 1.0, 2.0, accuracy="tight")
    old = state_problem(prev, following, W, b, len(U), 1.0, 2.0, accuracy="tight", template=False)
    np.testing.assert_allclose(new.solve(U=U, T=T)["Z"], Z.value, atol=1e-6)
    np.testing.assert_allclose(old.solve(U=U, T=T)["Z"], Z.value, atol=1e-5)


@pytest.mark.parametrize("solver", ["OSQP", "CLARABEL", "ECOS", "SCS"])
def test_every_solver_adapter_gives_the_same_weight_step(solver):
    act = cl.get_activation("leaky_relu")
    rng = np.random.default_rng(2)
    X = rng.normal(size=(30, 4))
    t = act.act(X @ rng.normal(size=(4, 1)) + 0.1 * rng.normal(size=(30, 1)))
    ref = column_weight_problem(act, X, 1.0, 0.1, accuracy="tight", template=False)
    want = ref.solve(t=t)
    new = TemplateWeightStep(act, X, 1.0, 0.1, accuracy="tight", solvers=[solver])
    got = new.solve(t=t)
    assert new.stats.solver == solver and new.stats.n_direct == 1
    np.testing.assert_allclose(got["w"], want["w"], atol=1e-6)
    assert new.value == pytest.approx(ref.value, rel=1e-7)


def test_solve_columns_and_solve_rows_equal_one_solve_at_a_time():
    act = cl.get_activation("leaky_relu")
    rng = np.random.default_rng(3)
    X = rng.normal(size=(50, 6))
    T = act.act(X @ rng.normal(size=(6, 7)) + 0.1 * rng.normal(size=(50, 7)))
    block = TemplateWeightStep(act, X, 1.0, 0.05, accuracy="tight")
    W, b = block.solve_columns(T)
    for j in range(7):
        sol = block.solve(t=T[:, j : j + 1])
        np.testing.assert_allclose(W[j], sol["w"][:, 0], atol=1e-7)
        assert b[j] == pytest.approx(float(sol["b"]), abs=1e-7)
    prev, following = cl.get_activation("relu_l1"), cl.get_activation("sparsemax")
    Wn, bn = rng.normal(size=(5, 6)), rng.normal(size=5)
    U = rng.normal(size=(23, 6))
    Tn = following.act(rng.normal(size=(23, 5)))
    state = state_problem(prev, following, Wn, bn, 8, 1.0, 1.0, accuracy="tight")
    np.testing.assert_allclose(state.solve_rows(U, Tn), state.solve(U=U, T=Tn)["Z"], atol=1e-7)
    with pytest.raises(ValueError, match=r"T of state step must have shape \(23, 5\)"):
        state.solve_rows(U, Tn[:, :4])


# ------------------------------------------------------------------ which blocks use templates
def test_only_divergences_that_split_are_assembled_from_templates():
    rng = np.random.default_rng(0)
    coupled = cl.custom_activation(
        name="test_sep_coupled",
        register=False,
        elementwise=True,  # declared so, but the divergence couples every entry
        divergence=lambda u, z: cp.norm(z - u, "fro"),
        closed_form=lambda u: u,
    )
    assert separable(cl.get_activation("leaky_relu")) and separable(_entropy())
    assert not separable(cl.get_activation("sparsemax")) and not separable(coupled)
    assert row_separable(cl.get_activation("sparsemax"), 5) and not row_separable(coupled, 5)
    X = rng.normal(size=(20, 3))
    assert not isinstance(column_weight_problem(coupled, X, 1.0, 0.1), TemplateWeightStep)
    W, b = rng.normal(size=(4, 3)), np.zeros(4)
    relu, pool = cl.get_activation("relu"), cl.get_activation("max_pool", pool_size=2)
    assert isinstance(state_problem(relu, None, W, b, 2, 1.0, 1.0), TemplateStateStep)
    assert not isinstance(state_problem(relu, coupled, W, b, 2, 1.0, 1.0), TemplateStateStep)
    assert not isinstance(
        state_problem(relu, relu, W, b, 2, 1.0, 1.0, template=False), TemplateStateStep
    )
    assert not separable(pool)


# ------------------------------------------------------------------ CompiledProblem's guarantees
def _leaky_block(**kwargs):
    act = cl.get_activation("leaky_relu")
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 4))
    t = act.act(X @ rng.normal(size=(4, 1)))
    return TemplateWeightStep(act, X, 1.0, 0.1, **kwargs), t


def test_a_solver_override_applies_to_one_call_only():
    block, t = _leaky_block()
    assert block.solvers[0] == "OSQP"
    block.solve(t=t, solvers=["CLARABEL"])
    assert block.stats.solver == "CLARABEL" and block.solvers[0] == "OSQP"
    block.solve(t=t)
    assert block.stats.solver == "OSQP"


def test_a_failing_solver_hands_over_to_the_next_one_which_then_comes_first(monkeypatch):
    block, t = _leaky_block()
    monkeypatch.setattr(
        sb.OsqpBackend, "solve", lambda self, data, s: sb.Outcome("user_limit", None)
    )
    block.solve(t=t)
    assert block.stats.solver == "CLARABEL"
    assert ("OSQP", "user_limit") in block.stats.fallbacks
    assert block.solvers[0] == "CLARABEL"


def test_after_a_fallback_only_the_answering_solvers_program_is_kept(monkeypatch):
    block, t = _leaky_block()
    monkeypatch.setattr(
        sb.OsqpBackend, "solve", lambda self, data, s: sb.Outcome("user_limit", None)
    )
    block.solve_columns(np.hstack([t, 0.5 * t, 2 * t]))
    kept = [s for s, h in block._programs.items() if not isinstance(h, str)]
    assert kept == ["CLARABEL"]


@pytest.mark.parametrize("bad", ["infeasible", "nan"])
def test_an_optimal_status_with_a_bad_point_is_not_accepted(monkeypatch, bad):
    block, t = _leaky_block()
    real = sb.OsqpBackend.solve

    def solve(self, data, settings):
        out = real(self, data, settings)
        x = out.x + 1.0 if bad == "infeasible" else np.full_like(out.x, np.nan)
        return sb.Outcome(cp.OPTIMAL, x)

    monkeypatch.setattr(sb.OsqpBackend, "solve", solve)
    sol = block.solve(t=t)
    assert block.stats.solver == "CLARABEL"
    assert (
        block.stats.fallbacks[0][0] == "OSQP" and "infeasible or NaN" in block.stats.fallbacks[0][1]
    )
    assert np.all(np.isfinite(sol["w"]))


def test_when_every_solver_fails_the_error_names_each_one_and_its_status():
    # the next layer's leaky_relu domain t >= 0.01 v with v = W z + b, z >= 0, W, b > 0 and t < 0:
    # no point satisfies it
    prev, following = cl.get_activation("relu"), cl.get_activation("leaky_relu")
    W, b = np.ones((2, 3)), np.ones(2)
    block = state_problem(prev, following, W, b, 1, 1.0, 1.0)
    assert isinstance(block, TemplateStateStep)
    with pytest.raises(SolverFailedError) as info:
        block.solve(U=np.zeros((1, 3)), T=-np.ones((1, 2)))
    solvers = [s for s, _ in info.value.attempts]
    assert solvers == ["OSQP", "CLARABEL", "SCS"]
    assert all("infeasible" in status for _, status in info.value.attempts)
    assert "every solver failed on state step" in str(info.value)


def test_a_solver_that_cannot_take_the_template_is_skipped_with_the_reason():
    act = cl.get_activation("sigmoid")
    rng = np.random.default_rng(5)
    X = rng.normal(size=(20, 3))
    block = TemplateWeightStep(act, X, 1.0, 0.1, solvers=["OSQP", "ECOS"])
    block.solve(t=act.act(rng.normal(size=(20, 1))))
    assert block.stats.solver == "ECOS"
    assert block.stats.fallbacks[0][0] == "OSQP"
    assert "OSQP cannot take the one-element problem" in block.stats.fallbacks[0][1]


@pytest.mark.parametrize("accuracy", ["default", "tight"])
def test_the_accuracy_mode_sets_the_solver_options(monkeypatch, accuracy):
    block, t = _leaky_block(accuracy=accuracy, solvers=["CLARABEL"])
    seen = []
    real = sb.ClarabelBackend.solve

    def solve(self, data, settings):
        seen.append(dict(settings))
        return real(self, data, settings)

    monkeypatch.setattr(sb.ClarabelBackend, "solve", solve)
    block.solve(t=t)
    assert seen == [SOLVER_SETTINGS[accuracy]["CLARABEL"]]


def test_bad_parameter_values_are_refused_with_the_name():
    block, t = _leaky_block()
    with pytest.raises(ValueError, match="parameter 't' of weight step contains NaN"):
        block.solve(t=np.full_like(t, np.nan))
    with pytest.raises(ValueError, match=r"parameter 't' of weight step has shape \(30, 1\)"):
        block.solve(t=t[:20])
    softmax = state_problem(cl.get_activation("relu"), None, np.ones((2, 3)), np.zeros(2), 1, 1, 1)
    with pytest.raises(ValueError, match="'T' of state step must be non-negative"):
        softmax.solve(U=np.zeros((1, 3)), T=-np.ones((1, 2)))


def test_the_template_blocks_are_compiled_problems_for_training():
    # bcd's monotone guard and its tests treat every compiled block alike
    block, _ = _leaky_block()
    assert isinstance(block, CompiledProblem)
    with pytest.raises(RuntimeError, match="has not been solved yet"):
        block.value  # noqa: B018


# ------------------------------------------------------------------ adapters added for templates
def _cvxpy_program(solver):
    u = cp.Parameter(4)
    z = cp.Variable(4)
    prob = cp.Problem(cp.Minimize(cp.sum(cp.exp(z)) - u @ z), [z <= 1.0, cp.sum(z) == 0.5])
    u.value = np.array([0.3, -1.0, 2.0, 0.1])
    prob.solve(solver=solver, **SOLVER_SETTINGS["tight"][solver])
    pmap = sb.ProgramMap(prob._cache.param_prog, {"u": u}, {"z": z})
    return pmap, pmap.data_one({"u": u.value}), z.value


@pytest.mark.parametrize("solver", ["ECOS", "SCS"])
def test_the_lean_ecos_and_the_scs_adapters_reproduce_cvxpy(solver):
    pmap, data, want = _cvxpy_program(solver)
    backend = make_any_backend(solver, pmap)
    settings = SOLVER_SETTINGS["tight"][solver]
    out = backend.solve(data, settings)
    assert out.status == cp.OPTIMAL
    np.testing.assert_allclose(pmap.unpack(out.x)["z"], want, atol=1e-5)
    # a re-solve reuses the solver (SCS: updated in place, warm-started)
    again = backend.solve(data, settings)
    np.testing.assert_allclose(again.x, out.x, atol=1e-7)
    if solver == "ECOS":
        old = sb.EcosBackend(pmap).solve(data, settings)
        np.testing.assert_allclose(out.x, old.x, atol=1e-12)


# ------------------------------------------------------------------ memory
def _peak(fn):
    """Peak bytes ``fn()`` allocates through Python's allocators, measured in a forked child.

    tracemalloc counts the allocations of every thread of a process, and a test process may run
    threads that earlier tests left (a Dask client's event loop, thread pools): the child forked
    for the measurement runs ``fn`` alone.
    """
    ctx = multiprocessing.get_context("fork")
    recv, send = ctx.Pipe(duplex=False)

    def child():
        try:
            tracemalloc.start()
            fn()
            send.send(("peak", tracemalloc.get_traced_memory()[1]))
        except BaseException:  # noqa: BLE001 - reported to the test process
            send.send(("error", traceback.format_exc()))

    proc = ctx.Process(target=child)
    proc.start()
    try:
        assert recv.poll(300), "the measured call did not finish in 300 s"
        kind, value = recv.recv()
        assert kind == "peak", value
        return value
    finally:
        proc.join(10)
        if proc.is_alive():
            proc.kill()


@pytest.mark.slow
@pytest.mark.parametrize("name", ["leaky_relu", "relu_l1", "sign", "entropy"])
def test_a_weight_step_holds_at_most_10x_its_input(name):
    # Python-side memory: CVXPY's one-element canonicalisation, the assembled program, the data
    # of each solve, and the Clarabel/ECOS set-up; their factorisations are native memory,
    # measured with the whole process below. bcd solves relu_l1 and sign with Clarabel first
    act = _activation(name)
    solvers = None if name == "entropy" else ["CLARABEL"]
    rng = np.random.default_rng(0)
    TemplateWeightStep(act, rng.normal(size=(30, 20)), 1.0, 1e-2, solvers=solvers)
    ratios = {}
    for m in (3000, 12000):
        X = rng.normal(size=(m, 20))
        T = act.act(X @ rng.normal(scale=0.1, size=(20, 2)) + 0.1 * rng.normal(size=(m, 2)))

        def build_and_solve(X=X, T=T):
            TemplateWeightStep(act, X, 1.0, 1e-2, solvers=solvers).solve_columns(T)

        ratios[m] = _peak(build_and_solve) / X.nbytes
    assert max(ratios.values()) <= 10, ratios


@pytest.mark.slow
def test_with_osqp_the_weight_step_stays_linear_in_its_input():
    # OSQP allocates its workspace through Python's allocator, so tracemalloc counts it: about
    # 13x the bytes of X for these 20-column inputs (its KKT matrix and factor hold X's
    # entries several times), on top of the block's own 3-4x
    act = cl.get_activation("leaky_relu")
    rng = np.random.default_rng(0)
    ratios = {}
    for m in (3000, 12000):
        X = rng.normal(size=(m, 20))
        t = act.act(X @ rng.normal(scale=0.3, size=(20, 1)) + 0.1 * rng.normal(size=(m, 1)))

        def build_and_solve(X=X, t=t):
            TemplateWeightStep(act, X, 1.0, 1e-2).solve(t=t)

        ratios[m] = _peak(build_and_solve) / X.nbytes
    assert max(ratios.values()) <= 20, ratios
    assert ratios[12000] <= 1.1 * ratios[3000], ratios


@pytest.mark.slow
@pytest.mark.parametrize(
    "prev, following, solvers",
    [("leaky_relu", "leaky_relu", None), ("sign", "sign", ["CLARABEL"])],
)
def test_a_state_step_holds_at_most_10x_its_data(prev, following, solvers):
    prev, following = cl.get_activation(prev), cl.get_activation(following)
    rng = np.random.default_rng(0)
    p = q = 300
    W, b = rng.normal(scale=0.1, size=(q, p)), 0.1 * rng.normal(size=q)
    U = rng.normal(size=(16, p))
    T = following.act(prev.act(U) @ W.T + b)
    TemplateStateStep(prev, following, W[:3, :4], b[:3], 1.0, 1.0, solvers=solvers)

    def build_and_solve():
        state_problem(prev, following, W, b, 16, 1.0, 1.0, solvers=solvers).solve(U=U, T=T)

    ratio = _peak(build_and_solve) / (U.nbytes + T.nbytes + W.nbytes)
    assert ratio <= 10, ratio


_RSS_CODE = textwrap.dedent(
    """
    import gc, re, sys, numpy as np, cvxpy as cp, cvx_lifted as cl
    from cvx_lifted.blocks import column_weight_problem

    def status(key):
        text = open("/proc/self/status").read()
        return int(re.search(key + r":\\s+(\\d+)", text).group(1)) * 1024

    m, template = int(sys.argv[1]), sys.argv[2] == "1"
    act = cl.custom_activation(
        name="entropy", register=False, closed_form=np.exp,
        divergence=lambda u, z: (-cp.sum(cp.entr(z)) - cp.sum(z) + cp.sum(cp.exp(u))
                                 - cp.sum(cp.multiply(u, z))),
    )
    rng = np.random.default_rng(0)
    column_weight_problem(act, rng.normal(size=(30, 20)), 1.0, 1e-2, template=template)
    X = rng.normal(size=(m, 20))
    t = act.act(X @ rng.normal(scale=0.1, size=(20, 1)))
    gc.collect()
    open("/proc/self/clear_refs", "w").write("5")  # peak resident memory counted from here
    base = status("VmRSS")
    column_weight_problem(act, X, 1.0, 1e-2, template=template).solve(t=t)
    print((status("VmHWM") - base) / X.nbytes)
    """
)


def _resident_ratio(m, template):
    """Peak resident memory of building and solving a block, in bytes of X (fresh process)."""
    out = subprocess.run(
        [sys.executable, "-c", _RSS_CODE, str(m), "1" if template else "0"],
        capture_output=True,
        text=True,
        timeout=900,
        check=True,
    )
    return float(out.stdout.split()[-1])


@pytest.mark.slow
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/self/status")
def test_whole_process_memory_of_a_weight_step_is_linear_and_far_below_cvxpy_canonicalisation():
    # peak resident memory, solver workspaces included, of the exponential-cone weight step
    # (ECOS); CVXPY's canonicalisation of the whole block grows with the square of the rows
    # the peak above the resident memory at the start reads low when the solve reuses memory
    # freed just before (once 27.9x instead of 36.2-36.4x at 3,000 rows): the smaller size,
    # which the growth is measured against, takes the larger of two fresh processes
    ratios = {3000: max(_resident_ratio(3000, True) for _ in range(2))}
    ratios[12000] = _resident_ratio(12000, True)
    whole = _resident_ratio(3000, False)
    # ECOS's workspace for exponential cones: 36.4x at 3,000 rows and 41.0x at 12,000 with
    # cvxpy 1.9.3, ECOS 2.0.14, numpy 2.4.6 (the README's "40-60x the data"); the bound is that
    # of a linear workspace, the next two lines what the template path is for
    assert max(ratios.values()) <= 48, ratios
    assert ratios[12000] <= 1.3 * ratios[3000], ratios
    assert whole >= 10 * ratios[3000], (whole, ratios)
