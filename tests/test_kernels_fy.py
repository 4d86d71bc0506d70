# SPDX-License-Identifier: Apache-2.0
"""Fenchel–Young kernels against CVXPY: the pair catalogue, the generic W-step, the FY state step
(Woodbury and CG branches), the FY coupling in the box state step and the simplex state step."""  # noqa: D205, D209

import warnings

import cvxpy as cp
import numpy as np
import pytest

import cvx_lifted.kernels.fenchel_young as fy_module
from cvx_lifted.kernels import (
    RELU_FY,
    SIGMOID_FY,
    TANH_FY,
    FYCoupling,
    L2Coupling,
    ReluFenchelCoupling,
    Ridge,
    ScalarFY,
    SoftmaxCoupling,
    fy_state_step,
    fy_wstep,
    leaky_relu_fy,
    project_simplex,
    relu_fenchel_wstep,
    simplex_state_step,
    state_step,
)

CLARABEL_EXP = {"tol_gap_abs": 1e-10, "tol_gap_rel": 1e-10, "tol_feas": 1e-10}
LEAKY = leaky_relu_fy(0.2)
OPEN_SPECS = [SIGMOID_FY, TANH_FY, LEAKY]


def _vi(result):
    """Return ``(value, info)`` of a kernel's StepResult."""
    return result.value, result.info


def _solve(prob: cp.Problem) -> None:
    with warnings.catch_warnings():  # accuracy is asserted by the callers
        warnings.simplefilter("ignore", UserWarning)
        prob.solve(solver="CLARABEL", **CLARABEL_EXP)
        if prob.status != cp.OPTIMAL:  # Clarabel sometimes stops short of 1e-10 on exp cones
            prob.solve(solver="ECOS", abstol=1e-10, reltol=1e-10, feastol=1e-10)
    assert prob.status == cp.OPTIMAL


def _cp_conj(spec: ScalarFY, U: cp.Expression) -> cp.Expression:
    """Sum of Phi*(U) as a CVXPY expression."""
    if spec is SIGMOID_FY:
        return cp.sum(cp.logistic(U))
    if spec is TANH_FY:  # log cosh u = log(1 + e^{2u}) - u - log 2
        return cp.sum(cp.logistic(2 * U) - U) - np.log(2.0) * U.size
    if spec is RELU_FY:
        return 0.5 * cp.sum_squares(cp.pos(U))
    a = spec.conj_hess(np.array([-1.0]))[0]
    return 0.5 * cp.sum_squares(cp.pos(U)) + 0.5 * a * cp.sum_squares(cp.neg(U))


def _cp_phi(spec: ScalarFY, Z: cp.Expression) -> cp.Expression:
    """Sum of Phi(Z) as a CVXPY expression."""
    if spec is SIGMOID_FY:
        return -cp.sum(cp.entr(Z)) - cp.sum(cp.entr(1 - Z))
    if spec is TANH_FY:
        return -0.5 * (cp.sum(cp.entr(1 - Z)) + cp.sum(cp.entr(1 + Z)))
    a = spec.conj_hess(np.array([-1.0]))[0]
    return 0.5 * cp.sum_squares(cp.pos(Z)) + 0.5 / a * cp.sum_squares(cp.neg(Z))


# --------------------------------------------------------------------------------------------------
# The catalogue
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spec", [SIGMOID_FY, TANH_FY, RELU_FY, LEAKY], ids=lambda s: s.name)
def test_pair_derivatives_and_fenchel_young_identity(spec):
    rng = np.random.default_rng(0)
    u = np.concatenate([rng.normal(size=40) * 3, [-0.7, 0.4, 1.3]])
    u = u[np.abs(u) > 1e-3]  # away from the kinks of the piecewise pairs
    h = 1e-6
    np.testing.assert_allclose(
        (spec.conj(u + h) - spec.conj(u - h)) / (2 * h), spec.conj_grad(u), atol=1e-8
    )
    np.testing.assert_allclose(
        (spec.conj_grad(u + h) - spec.conj_grad(u - h)) / (2 * h), spec.conj_hess(u), atol=1e-7
    )
    assert spec.conj_hess(u).max() <= spec.curvature * (1 + 1e-12)
    z = spec.conj_grad(u)
    if spec is RELU_FY:
        z = z[u > 0]
        u = u[u > 0]
    # Fenchel-Young equality at z = phi(u), and phi_grad inverts the activation
    np.testing.assert_allclose(spec.phi(z) + spec.conj(u) - u * z, 0.0, atol=1e-12)
    np.testing.assert_allclose(spec.phi_grad(z), u, rtol=1e-9, atol=1e-12)
    inner = z[(z - spec.lo > 1e-3) & (spec.hi - z > 1e-3)]
    np.testing.assert_allclose(
        (spec.phi(inner + h) - spec.phi(inner - h)) / (2 * h), spec.phi_grad(inner), atol=1e-7
    )
    np.testing.assert_allclose(
        (spec.phi_grad(inner + h) - spec.phi_grad(inner - h)) / (2 * h),
        spec.phi_hess(inner),
        rtol=1e-6,
    )


@pytest.mark.parametrize("spec", [SIGMOID_FY, TANH_FY], ids=lambda s: s.name)
def test_pairs_are_stable_at_extremes(spec):
    u = np.array([-800.0, -60.0, 0.0, 60.0, 800.0])
    lo, hi = spec.lo, spec.hi
    near = np.array([lo + 1e-300, lo + 1e-200, hi - 2e-16, 0.5 * (lo + hi)])
    near = near[(near > lo) & (near < hi)]
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no overflow or invalid-value warnings
        values = [f(u) for f in (spec.conj, spec.conj_grad, spec.conj_hess)]
        values += [f(near) for f in (spec.phi, spec.phi_grad, spec.phi_hess)]
        at_bounds = spec.phi(np.array([lo, hi]))
    assert all(np.isfinite(v).all() for v in values)
    # Phi at the bounds: 0 for the binary entropy, log 2 for the tanh pair
    np.testing.assert_allclose(at_bounds, 0.0 if spec is SIGMOID_FY else np.log(2.0), atol=1e-15)
    # Phi* is exact far out: log(1 + e^u) and log cosh u
    expected = [0.0, 800.0] if spec is SIGMOID_FY else [800.0 - np.log(2.0)] * 2
    np.testing.assert_allclose(spec.conj(u)[[0, -1]], expected, rtol=1e-15)
    assert not np.isnan(spec.phi_hess(np.array([lo, hi]))).any()  # +inf at the bounds, no NaN


def test_scalar_fy_validation_and_equality():
    assert leaky_relu_fy(0.3) == leaky_relu_fy(0.3)
    assert leaky_relu_fy(0.3) != leaky_relu_fy(0.4)
    assert leaky_relu_fy(2.0).curvature == 2.0
    with pytest.raises(ValueError, match="alpha"):
        leaky_relu_fy(0.0)
    with pytest.raises(ValueError, match="lo < hi"):
        ScalarFY("bad", *([np.exp] * 6), lo=1.0, hi=0.0)
    with pytest.raises(ValueError, match="curvature"):
        ScalarFY("bad", *([np.exp] * 6), curvature=0.0)
    with pytest.raises(ValueError, match="callable"):
        ScalarFY("bad", np.exp, np.exp, np.exp, np.exp, np.exp, 3.0)
    lo, hi = SIGMOID_FY.inner_bounds()
    assert 0.0 < lo < 1e-299 and 1.0 - 1e-15 < hi < 1.0
    assert RELU_FY.inner_bounds() == (0.0, np.inf)


# --------------------------------------------------------------------------------------------------
# Weight step
# --------------------------------------------------------------------------------------------------


def _wstep_data(spec, m=16, p=5, q=3, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.random((m, p)) * 2.0
    W_true = rng.normal(size=(q, p))
    T = spec.conj_grad(X @ W_true.T - 1.0 + 0.5 * rng.normal(size=(m, q)))
    if spec.lo == 0.0 and not spec.closed:  # keep the sigmoid targets off the bounds
        T = np.clip(T, 1e-3, 1 - 1e-3)
    return X, T


def _wstep_objective(spec, X, T, alpha, W, b):
    U = X @ W.T + b
    return float(np.sum(spec.conj(U) - U * T) + 0.5 * alpha * np.sum(W**2))


@pytest.mark.parametrize("spec", [SIGMOID_FY, TANH_FY, LEAKY, RELU_FY], ids=lambda s: s.name)
def test_fy_wstep_vs_cvxpy(spec):
    X, T = _wstep_data(spec)
    m, p = X.shape
    q = T.shape[1]
    alpha = 0.7
    (W, b), info = _vi(
        fy_wstep(X, T, alpha, np.zeros((q, p)), np.zeros(q), spec, tol=1e-10, max_iter=500)
    )
    assert info["converged"] and info["n_iter"] < 500
    assert info["column_grad_norm"].shape == (q,)
    Wv, bv = cp.Variable((q, p)), cp.Variable(q)
    U = X @ Wv.T + np.ones((m, 1)) @ cp.reshape(bv, (1, q), order="C")
    obj = _cp_conj(spec, U) - cp.sum(cp.multiply(U, T)) + alpha / 2 * cp.sum_squares(Wv)
    prob = cp.Problem(cp.Minimize(obj))
    _solve(prob)
    np.testing.assert_allclose(W, Wv.value, atol=1e-5)
    np.testing.assert_allclose(b, bv.value, atol=1e-5)
    f = _wstep_objective(spec, X, T, alpha, W, b)
    assert f <= prob.value + 1e-8 * (1 + abs(prob.value))
    assert info["objective"] == pytest.approx(f, rel=1e-10)


@pytest.mark.parametrize("spec", [SIGMOID_FY, TANH_FY, LEAKY, RELU_FY], ids=lambda s: s.name)
def test_fy_wstep_monotone_and_warm_start(spec):
    X, T = _wstep_data(spec, m=40, p=6, q=4, seed=1)
    alpha = 0.3
    ridge = Ridge(X, alpha)
    rng = np.random.default_rng(2)
    W0, b0 = rng.normal(size=(4, 6)), rng.normal(size=4)
    f0 = _wstep_objective(spec, X, T, alpha, W0, b0)
    previous = f0
    for max_iter in (1, 2, 3, 200):
        (W, b), info = _vi(
            fy_wstep(X, T, alpha, W0, b0, spec, ridge=ridge, max_iter=max_iter, tol=1e-12)
        )
        f = _wstep_objective(spec, X, T, alpha, W, b)
        assert f <= f0 + 1e-12 * abs(f0)
        assert f <= previous + 1e-9 * abs(previous)
        assert info["objective_start"] == pytest.approx(f0, rel=1e-12)
        assert info["n_iter"] <= max_iter
        previous = f
    assert not fy_wstep(X, T, alpha, W0, b0, spec, max_iter=1).info["converged"]
    # restarting from the solution keeps it
    (W2, b2), info = _vi(fy_wstep(X, T, alpha, W, b, spec, ridge=ridge, tol=1e-8))
    assert info["n_iter"] == 0
    np.testing.assert_array_equal(W2, W)


def test_fy_wstep_relu_is_relu_fenchel_wstep():
    X, T = _wstep_data(RELU_FY, m=50, p=7, q=4, seed=3)
    W0, b0 = np.zeros((4, 7)), np.zeros(4)
    for max_iter in (3, 100):
        W1, b1 = relu_fenchel_wstep(X, T, 0.4, W0, b0, tol=1e-6, max_iter=max_iter).value
        W2, b2 = fy_wstep(X, T, 0.4, W0, b0, RELU_FY, tol=1e-6, max_iter=max_iter).value
        np.testing.assert_array_equal(W1, W2)
        np.testing.assert_array_equal(b1, b2)


def test_fy_wstep_float32_and_bad_input():
    X, T = _wstep_data(SIGMOID_FY, m=30, p=4, q=3, seed=4)
    W0, b0 = np.zeros((3, 4)), np.zeros(3)
    W32, b32 = fy_wstep(
        X.astype(np.float32), T.astype(np.float32), 0.5, W0, b0, SIGMOID_FY, max_iter=200
    ).value
    assert W32.dtype == np.float32 and b32.dtype == np.float32
    W64, b64 = fy_wstep(X, T, 0.5, W0, b0, SIGMOID_FY, max_iter=200).value
    assert W64.dtype == np.float64
    np.testing.assert_allclose(W32, W64, atol=1e-4)
    with pytest.raises(ValueError, match="domain"):
        fy_wstep(X, T + 1.0, 0.5, W0, b0, SIGMOID_FY)
    with pytest.raises(ValueError, match="T must be finite"):
        fy_wstep(X, np.full_like(T, np.nan), 0.5, W0, b0, SIGMOID_FY)
    with pytest.raises(ValueError, match="W0"):
        fy_wstep(X, T, 0.5, np.zeros((3, 5)), b0, SIGMOID_FY)
    with pytest.raises(ValueError, match="rows"):
        fy_wstep(X[:-1], T, 0.5, W0, b0, SIGMOID_FY)
    with pytest.raises(ValueError, match="alpha"):
        fy_wstep(X, T, 0.0, W0, b0, SIGMOID_FY)
    with pytest.raises(ValueError, match="ridge"):
        fy_wstep(X, T, 0.5, W0, b0, SIGMOID_FY, ridge=Ridge(X, 0.6))
    with pytest.raises(ValueError, match="spec"):
        fy_wstep(X, T, 0.5, W0, b0, "sigmoid")


# --------------------------------------------------------------------------------------------------
# State step after an open-domain FY layer
# --------------------------------------------------------------------------------------------------

COUPLINGS = ["l2", "relu", "softmax", "sigmoid"]


def _state_data(m=8, p=5, q=3, seed=0):
    rng = np.random.default_rng(seed)
    U = 1.5 * rng.normal(size=(m, p))
    W = rng.normal(size=(q, p)) / np.sqrt(p) * 2.0
    b = 0.3 * rng.normal(size=q)
    T = np.abs(rng.normal(size=(m, q)))
    Y = np.eye(q)[rng.integers(0, q, m)]
    S = rng.uniform(0.05, 0.95, size=(m, q))
    return U, W, b, T, Y, S


def _coupling(kind, T, Y, S):
    if kind == "l2":
        return L2Coupling(T)
    if kind == "relu":
        return ReluFenchelCoupling(T)
    if kind == "softmax":
        return SoftmaxCoupling(Y)
    return FYCoupling(SIGMOID_FY, S)


def _cp_coupling(kind, V, T, Y, S):
    if kind == "l2":
        return 0.5 * cp.sum_squares(T - V)
    if kind == "relu":
        return cp.sum(0.5 * cp.square(cp.pos(V)) - cp.multiply(V, T))
    if kind == "softmax":
        return cp.sum(cp.log_sum_exp(V, axis=1)) - cp.sum(cp.multiply(Y, V))
    return cp.sum(cp.logistic(V)) - cp.sum(cp.multiply(V, S))


def _rows_objective(spec, Z, U, W, b, cpl, a, c):
    V = Z @ W.T + b
    rows, _ = cpl._eval(V, cpl.target.astype(np.float64))
    return a * np.sum(spec.phi(Z) - U * Z, axis=1) + c * rows


@pytest.mark.parametrize("kind", COUPLINGS)
@pytest.mark.parametrize("spec", OPEN_SPECS, ids=lambda s: s.name)
def test_fy_state_step_vs_cvxpy(spec, kind, monkeypatch):
    U, W, b, T, Y, S = _state_data(seed=COUPLINGS.index(kind))
    a, c = 0.8, 2.5
    cpl = _coupling(kind, T, Y, S)
    m, p = U.shape
    Zv = cp.Variable((m, p))
    V = Zv @ W.T + np.ones((m, 1)) @ b[None, :]
    obj = a * (_cp_phi(spec, Zv) - cp.sum(cp.multiply(U, Zv))) + c * _cp_coupling(kind, V, T, Y, S)
    prob = cp.Problem(cp.Minimize(obj))
    _solve(prob)
    Z_ref = Zv.value
    f_ref = _rows_objective(spec, np.clip(Z_ref, *spec.inner_bounds()), U, W, b, cpl, a, c)
    for branch in ("woodbury", "cg"):
        if branch == "cg":  # q = 3 > p / 2: the CG branch once the small-q rule is off
            monkeypatch.setattr(fy_module, "_WOODBURY_MAX_Q", 0)
        result = fy_state_step(U, W, b, cpl, a, c, spec, tol=1e-11)
        Z, info = result.value, result.info
        assert info["method"] == branch
        assert info["converged"].all()
        np.testing.assert_allclose(Z, Z_ref, atol=1e-5)
        assert ((Z > spec.lo) & (Z < spec.hi)).all()
        f = _rows_objective(spec, Z, U, W, b, cpl, a, c)
        assert (f <= f_ref + 1e-8 * (1 + np.abs(f_ref))).all()
        np.testing.assert_allclose(info["objective"], f, rtol=1e-10, atol=1e-10)


def test_fy_state_step_woodbury_and_cg_agree_on_a_larger_problem(monkeypatch):
    monkeypatch.setattr(fy_module, "_WOODBURY_MAX_Q", 4)
    U, W, b, _, Y, _ = _state_data(m=30, p=24, q=12, seed=5)
    info = fy_state_step(U, W, b, SoftmaxCoupling(Y), 0.5, 3.0, TANH_FY).info
    assert info["method"] == "woodbury"  # 2q <= p
    U, W, b, _, Y, _ = _state_data(m=30, p=20, q=12, seed=5)
    args = (U, W, b, SoftmaxCoupling(Y), 0.5, 3.0, TANH_FY)
    result = fy_state_step(*args, tol=1e-11)
    Z_cg, info_cg = result.value, result.info
    monkeypatch.setattr(fy_module, "_WOODBURY_MAX_Q", 64)
    result = fy_state_step(*args, tol=1e-11)
    Z_wb, info_wb = result.value, result.info
    assert (info_cg["method"], info_wb["method"]) == ("cg", "woodbury")
    assert info_cg["converged"].all() and info_wb["converged"].all()
    np.testing.assert_allclose(Z_cg, Z_wb, atol=1e-9)


@pytest.mark.parametrize("spec", OPEN_SPECS, ids=lambda s: s.name)
def test_fy_state_step_monotone_warm_start_and_c_zero(spec):
    U, W, b, _, Y, _ = _state_data(m=20, p=6, q=3, seed=6)
    cpl = SoftmaxCoupling(Y)
    a, c = 0.3, 6.0
    rng = np.random.default_rng(7)
    Z0 = spec.conj_grad(3.0 * rng.normal(size=U.shape))
    f0 = _rows_objective(spec, np.clip(Z0, *spec.inner_bounds()), U, W, b, cpl, a, c)
    for max_iter in (1, 2, 100):
        result = fy_state_step(U, W, b, cpl, a, c, spec, Z0=Z0, max_iter=max_iter)
        Z, info = result.value, result.info
        f = _rows_objective(spec, Z, U, W, b, cpl, a, c)
        assert (f <= f0 + 1e-12 * (1 + np.abs(f0))).all()
        np.testing.assert_allclose(info["objective_start"], f0, rtol=1e-10, atol=1e-10)
        assert (info["n_iter"] <= max_iter).all()
        if max_iter == 1:
            assert not info["converged"].all()
    assert info["converged"].all()
    result = fy_state_step(U, W, b, cpl, a, c, spec, Z0=Z, tol=1e-7)
    Z2, info2 = result.value, result.info
    assert info2["n_iter"].max() <= 1
    np.testing.assert_allclose(Z2, Z, atol=1e-7)
    result = fy_state_step(U, W, b, cpl, a, 0.0, spec)
    Zc, infoc = result.value, result.info
    assert infoc["method"] == "closed_form"
    np.testing.assert_allclose(Zc, np.clip(spec.conj_grad(U), *spec.inner_bounds()), rtol=1e-15)


@pytest.mark.parametrize("dtype", [np.float64, np.float32])
def test_fy_state_step_stays_strictly_inside(dtype):
    # saturated pre-activations: phi(U) rounds to the bounds
    U = np.array([[60.0, -60.0, 800.0, -800.0, 0.0]] * 3, dtype=dtype)
    W = np.ones((2, 5), dtype=dtype) * 0.1
    b = np.zeros(2, dtype=dtype)
    Y = np.eye(2, dtype=dtype)[[0, 1, 0]]
    for spec in (SIGMOID_FY, TANH_FY):
        result = fy_state_step(U, W, b, SoftmaxCoupling(Y), 1.0, 1.0, spec)
        Z, info = result.value, result.info
        assert Z.dtype == dtype
        assert np.isfinite(Z).all()
        assert ((Z > spec.lo) & (Z < spec.hi)).all()
        assert info["converged"].all()


def test_fy_state_step_float32_in_float32_out():
    U, W, b, T, _, _ = _state_data(m=6, p=5, q=3, seed=8)
    f32 = [x.astype(np.float32) for x in (U, W, b, T)]
    Z = fy_state_step(f32[0], f32[1], f32[2], L2Coupling(f32[3]), 1.0, 1.0, SIGMOID_FY).value
    assert Z.dtype == np.float32
    Z64 = fy_state_step(U, W, b, L2Coupling(T), 1.0, 1.0, SIGMOID_FY).value
    assert Z64.dtype == np.float64
    np.testing.assert_allclose(Z, Z64, atol=1e-5)


@pytest.mark.parametrize(
    ("kwargs", "match"),
    [
        ({"a": 0.0}, "a"),
        ({"c": -1.0}, "c"),
        ({"U": np.full((4, 5), np.inf)}, "U"),
        ({"W": np.ones((3, 6))}, "W"),
        ({"b": np.ones(2)}, "b"),
        ({"Z0": np.ones((4, 4))}, "Z0"),
        ({"Z0": np.full((4, 5), np.nan)}, "Z0"),
        ({"tol": 0.0}, "tol"),
        ({"max_iter": 0}, "max_iter"),
        ({"coupling": "l2"}, "coupling"),
        ({"coupling": L2Coupling(np.ones((3, 3)))}, "target"),
        ({"spec": RELU_FY}, "closed"),
        ({"spec": "sigmoid"}, "spec"),
    ],
)
def test_fy_state_step_bad_input(kwargs, match):
    U, W, b, T, _, _ = _state_data(m=4, p=5, q=3, seed=9)
    args = {
        "U": U,
        "W": W,
        "b": b,
        "coupling": L2Coupling(T),
        "a": 1.0,
        "c": 1.0,
        "spec": SIGMOID_FY,
    }
    args.update(kwargs)
    with pytest.raises(ValueError, match=match):
        fy_state_step(**args)


# --------------------------------------------------------------------------------------------------
# The FY coupling in the box state step, and the simplex state step
# --------------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", ["newton", "fista"])
def test_box_state_step_with_sigmoid_coupling_vs_cvxpy(method):
    U, W, b, _, _, S = _state_data(m=7, p=6, q=4, seed=10)
    a, c = 0.9, 2.0
    cpl = FYCoupling(SIGMOID_FY, S)
    assert cpl.lipschitz == 0.25
    result = state_step(U, W, b, cpl, a, c, 0.0, np.inf, method=method, tol=1e-11)
    Z, info = result.value, result.info
    assert info["converged"].all()
    m, p = U.shape
    Zv = cp.Variable((m, p))
    V = Zv @ W.T + np.ones((m, 1)) @ b[None, :]
    obj = a / 2 * cp.sum_squares(Zv - U) + c * _cp_coupling("sigmoid", V, None, None, S)
    prob = cp.Problem(cp.Minimize(obj), [Zv >= 0])
    _solve(prob)
    np.testing.assert_allclose(Z, Zv.value, atol=1e-5)
    # with the ReLU pair the FY coupling is the ReLU coupling
    T = np.abs(S)
    Z1 = state_step(U, W, b, FYCoupling(RELU_FY, T), a, c, 0.0, np.inf, tol=1e-12).value
    Z2 = state_step(U, W, b, ReluFenchelCoupling(T), a, c, 0.0, np.inf, tol=1e-12).value
    np.testing.assert_allclose(Z1, Z2, atol=1e-12)
    with pytest.raises(ValueError, match="spec"):
        FYCoupling("sigmoid", S)


@pytest.mark.parametrize("kind", ["l2", "softmax", "sigmoid"])
def test_simplex_state_step_vs_cvxpy(kind):
    U, W, b, T, Y, S = _state_data(m=6, p=5, q=3, seed=11)
    a, c = 1.2, 1.5
    cpl = _coupling(kind, T, Y, S)
    result = simplex_state_step(U, W, b, cpl, a, c, tol=1e-12)
    Z, info = result.value, result.info
    assert info["converged"].all() and info["method"] == "fista"
    m, p = U.shape
    Zv = cp.Variable((m, p))
    V = Zv @ W.T + np.ones((m, 1)) @ b[None, :]
    obj = a / 2 * cp.sum_squares(Zv - U) + c * _cp_coupling(kind, V, T, Y, S)
    prob = cp.Problem(cp.Minimize(obj), [Zv >= 0, cp.sum(Zv, axis=1) == 1])
    _solve(prob)
    np.testing.assert_allclose(Z, Zv.value, atol=1e-5)
    assert (Z >= 0).all()
    np.testing.assert_allclose(Z.sum(axis=1), 1.0, atol=1e-12)


def test_simplex_state_step_monotone_c_zero_float32_and_errors():
    U, W, b, T, Y, _ = _state_data(m=10, p=5, q=3, seed=12)
    cpl = SoftmaxCoupling(Y)
    rng = np.random.default_rng(13)
    Z0 = rng.normal(size=U.shape)
    Zs = project_simplex(Z0)

    def rows(Z):
        V = Z @ W.T + b
        return 0.5 * 0.4 * np.sum((Z - U) ** 2, axis=1) + 5.0 * cpl._eval(V, Y)[0]

    for max_iter in (1, 3, 1000):
        result = simplex_state_step(U, W, b, cpl, 0.4, 5.0, Z0=Z0, max_iter=max_iter)
        Z, info = result.value, result.info
        assert (rows(Z) <= rows(Zs) + 1e-12).all()
        np.testing.assert_allclose(info["objective_start"], rows(Zs), rtol=1e-12)
    Zc = simplex_state_step(U, W, b, cpl, 0.4, 0.0).value
    np.testing.assert_allclose(Zc, project_simplex(U), atol=1e-15)
    f32 = [x.astype(np.float32) for x in (U, W, b, Y)]
    Z32 = simplex_state_step(f32[0], f32[1], f32[2], SoftmaxCoupling(f32[3]), 0.4, 5.0).value
    assert Z32.dtype == np.float32
    np.testing.assert_allclose(Z32, simplex_state_step(U, W, b, cpl, 0.4, 5.0).value, atol=1e-5)
    with pytest.raises(ValueError, match="W"):
        simplex_state_step(U, W[:, :-1], b, cpl, 0.4, 5.0)
    with pytest.raises(ValueError, match="U"):
        simplex_state_step(np.full_like(U, np.nan), W, b, cpl, 0.4, 5.0)
