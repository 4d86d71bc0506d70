# SPDX-License-Identifier: Apache-2.0
"""The catalogue: closed forms, divergences, domains, flags and the registry."""

import cvxpy as cp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import cvx_lifted as cl
from cvx_lifted.activations import ACTIVATIONS, BUILTIN_ACTIVATIONS, get_activation
from cvx_lifted.exceptions import NotRepresentableError
from cvx_lifted.testing import assert_allclose_rel
from cvx_lifted.verify import default_inputs

PROGRAM_NAMES = sorted(n for n in BUILTIN_ACTIVATIONS if ACTIVATIONS[n].has_program)
ALL_NAMES = sorted(BUILTIN_ACTIVATIONS)

# (name, params, input row, expected closed form) -- worked by hand
CLOSED_FORMS = [
    ("identity", {}, [-2.0, 0.0, 3.5], [-2.0, 0.0, 3.5]),
    ("relu", {}, [-2.0, 0.0, 3.5], [0.0, 0.0, 3.5]),
    ("relu_l1", {}, [-2.0, 0.0, 3.5], [0.0, 0.0, 3.5]),
    ("relu_fenchel", {}, [-2.0, 0.0, 3.5], [0.0, 0.0, 3.5]),
    ("leaky_relu", {"alpha": 0.1}, [-2.0, 0.0, 3.5], [-0.2, 0.0, 3.5]),
    ("leaky_relu_fenchel", {"alpha": 0.1}, [-2.0, 0.0, 3.5], [-0.2, 0.0, 3.5]),
    ("clip", {"lo": -1.0, "hi": 2.0}, [-2.0, 0.5, 3.5], [-1.0, 0.5, 2.0]),
    ("hard_sigmoid", {}, [-2.0, 0.5, 3.5], [0.0, 0.5, 1.0]),
    ("hard_tanh", {}, [-2.0, 0.5, 3.5], [-1.0, 0.5, 1.0]),
    ("sigmoid", {}, [0.0, np.log(3.0), -np.log(3.0)], [0.5, 0.75, 0.25]),
    ("tanh", {}, [0.0, np.log(2.0), -800.0], [0.0, 0.6, -1.0]),
    ("sign", {}, [-2.0, 0.0, 3.5], [-1.0, 0.0, 1.0]),
    ("sparsemax", {}, [0.0, 1.0, 3.0], [0.0, 0.0, 1.0]),
    ("sparsemax", {}, [0.5, 0.5, -4.0], [0.5, 0.5, 0.0]),
    ("sparsemax", {}, [1.0, 1.2, -4.0], [0.4, 0.6, 0.0]),
    ("max_pool", {"pool_size": 2}, [1.0, 3.0, -2.0, -1.0], [3.0, -1.0]),
    ("softplus", {}, [0.0, 800.0, -800.0], [np.log(2.0), 800.0, 0.0]),
    ("sin", {}, [0.0, np.pi / 2, -np.pi / 6], [0.0, 1.0, -0.5]),
]


@pytest.mark.parametrize(("name", "params", "u", "expected"), CLOSED_FORMS)
def test_closed_form_table(name, params, u, expected):
    act = get_activation(name, **params)
    out = act.act(np.array([u]))
    assert_allclose_rel(out, np.array([expected]), 1e-12, name)
    assert np.all(np.isfinite(out))


def test_every_builtin_has_a_closed_form_row():
    assert {row[0] for row in CLOSED_FORMS} == set(BUILTIN_ACTIVATIONS)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_act_keeps_float32_and_accepts_1d(name):
    act = get_activation(name)
    u = np.linspace(-3, 3, 8, dtype=np.float32).reshape(2, 4)
    assert act.act(u).dtype == np.float32
    one = act.act(u[0])
    assert one.ndim == 1
    assert_allclose_rel(one, act.act(u)[0], 1e-7, name)


@pytest.mark.parametrize("name", ALL_NAMES)
@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_act_rejects_nonfinite(name, bad):
    u = np.zeros((2, 4))
    u[1, 2] = bad
    with pytest.raises(ValueError, match="NaN or infinite"):
        get_activation(name).act(u)


@pytest.mark.parametrize("name", ALL_NAMES)
def test_act_rejects_3d_and_strings(name):
    act = get_activation(name)
    with pytest.raises(ValueError, match="1-D or 2-D"):
        act.act(np.zeros((2, 2, 2)))
    with pytest.raises(ValueError, match="numeric"):
        act.act(np.array([["a", "b"]]))


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_numpy_value_matches_cvxpy_expression(name):
    """``value`` (NumPy) and ``divergence`` (CVXPY) are the same function on the domain."""
    act = get_activation(name)
    U = default_inputs(act, seed=1)
    rng = np.random.default_rng(3)
    # a point inside the domain that is not the argmin: mix the argmin with a feasible shift
    Z = act.act(U)
    if name in ("identity", "leaky_relu_fenchel", "max_pool"):
        Z = Z + 0.3 * rng.standard_normal(Z.shape)
    elif name in ("sigmoid", "hard_sigmoid", "clip"):
        Z = 0.7 * Z + 0.3 * rng.uniform(0.01, 0.99, Z.shape)
    elif name in ("tanh", "hard_tanh", "sign"):
        Z = 0.7 * Z + 0.3 * rng.uniform(-0.99, 0.99, Z.shape)
    elif name in ("relu", "relu_fenchel", "relu_l1", "leaky_relu"):
        Z = Z + rng.uniform(0.0, 1.0, Z.shape)
    elif name == "sparsemax":
        Z = 0.5 * Z + 0.5 * rng.dirichlet(np.ones(Z.shape[1]), Z.shape[0])
    assert act.domain_violation(U, Z) <= 1e-12
    expected = act.divergence(cp.Constant(U), cp.Constant(Z)).value
    assert_allclose_rel(act.value(U, Z), expected, 1e-10, name)


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_closed_form_inside_domain(name):
    act = get_activation(name)
    U = default_inputs(act)
    assert act.domain_violation(U, act.act(U)) <= 1e-12


@pytest.mark.parametrize(
    "name", [n for n in PROGRAM_NAMES if issubclass(ACTIVATIONS[n], cl.FenchelYoungActivation)]
)
def test_fenchel_young_divergence_is_zero_at_argmin_and_positive_elsewhere(name):
    act = get_activation(name)
    U = default_inputs(act)
    mask = act.unique_mask(U).all(axis=1)
    for u in U[mask]:
        u = u[None, :]
        z = act.act(u)
        assert abs(act.value(u, z)) <= 1e-9 * (1 + np.abs(u).sum())
        # move inside the domain: the divergence grows
        lo, hi = {"sigmoid": (0, 1), "tanh": (-1, 1), "sign": (-1, 1)}.get(name, (-np.inf, np.inf))
        if name == "relu_fenchel":
            lo = 0.0
        other = np.clip(z + 0.25 * np.sign(0.5 - z), lo, hi)
        if not np.allclose(other, z):
            assert act.value(u, other) > act.value(u, z) - 1e-12


@pytest.mark.parametrize("name", ["relu", "hard_sigmoid", "hard_tanh", "relu_fenchel", "identity"])
def test_box_flag_matches_domain(name):
    act = get_activation(name)
    lo, hi = act.box
    u = np.array([[-5.0, -0.5, 0.5, 5.0]])
    assert_allclose_rel(act.act(u), np.clip(u, lo, hi), 0.0, name)


def test_flags_are_consistent():
    for name in PROGRAM_NAMES:
        act = get_activation(name)
        assert act.convexity in ("joint", "biconvex")
        assert act.cone in ("qp", "lp", "exp")
        if act.kernel == "box":
            assert act.box is not None
        if act.weight_step == "ridge":
            assert isinstance(act, cl.ProjectionActivation)
    assert get_activation("relu").convexity == "joint"
    assert get_activation("sigmoid").convexity == "biconvex"
    assert get_activation("relu_fenchel").weight_step == "relu_fenchel"
    assert get_activation("leaky_relu").kernel is None  # domain depends on u: CVXPY path


def test_leaky_relu_fenchel_is_biconvex_not_joint():
    """Eq. (8) gives a bi-convex divergence: CVXPY can certify it in z and in u, not jointly."""
    act = get_activation("leaky_relu_fenchel", alpha=0.5)
    u, z = cp.Variable((1, 2)), cp.Variable((1, 2))
    assert not cp.Problem(cp.Minimize(act.divergence(u, z))).is_dcp()
    assert cp.Problem(cp.Minimize(act.divergence(cp.Parameter((1, 2)), z))).is_dcp()
    assert cp.Problem(cp.Minimize(act.divergence(u, cp.Parameter((1, 2))))).is_dcp()


@pytest.mark.parametrize("name", ["softplus", "sin"])
def test_closed_form_only_activations_explain_why(name):
    act = get_activation(name)
    assert not act.has_program
    with pytest.raises(NotRepresentableError, match="no convex-program"):
        act.divergence(cp.Parameter((1, 2)), cp.Variable((1, 2)))
    with pytest.raises(NotRepresentableError, match="DCP"):
        cl.verify(name)


def test_max_pool_weight_one_is_rejected_and_pool_size_checked():
    with pytest.raises(ValueError, match="weight > 1"):
        get_activation("max_pool", weight=1.0)
    with pytest.raises(ValueError, match="multiple of 3"):
        get_activation("max_pool", pool_size=3).act(np.zeros((1, 4)))


@pytest.mark.parametrize(
    ("name", "params", "match"),
    [
        ("leaky_relu", {"alpha": 1.5}, "0 < alpha < 1"),
        ("leaky_relu_fenchel", {"alpha": 0.0}, "0 < alpha < 1"),
        ("clip", {"lo": 1.0, "hi": 0.0}, "lo < hi"),
        ("relu", {"alpha": 0.1}, "bad parameters"),
    ],
)
def test_bad_parameters(name, params, match):
    with pytest.raises(ValueError, match=match):
        get_activation(name, **params)


def test_unknown_name_suggests_close_matches():
    with pytest.raises(ValueError, match="Did you mean 'relu'") as info:
        get_activation("reluu")
    assert "Known activations" in str(info.value)
    assert get_activation("Hard-Tanh").name == "hard_tanh"


def test_registry_is_explicit_and_public():
    assert cl.ACTIVATIONS is ACTIVATIONS
    assert ACTIVATIONS["relu"] is cl.activations.ReLU
    for name, cls in ACTIVATIONS.items():
        assert cls.name == name


def test_register_refuses_builtins_and_clashes():
    class Mine(cl.activations.ReLU):
        name = "test_registry_mine"

    try:
        cl.register_activation(Mine)
        assert get_activation("test_registry_mine").act([[-1.0]])[0, 0] == 0.0
        with pytest.raises(ValueError, match="already registered"):
            cl.register_activation(type("Other", (cl.activations.ReLU,), {}), "test_registry_mine")
        with pytest.raises(ValueError, match="built-in"):
            cl.register_activation(Mine, "relu")
        with pytest.raises(ValueError, match="Activation subclass"):
            cl.register_activation(int)  # type: ignore[arg-type]
    finally:
        ACTIVATIONS.pop("test_registry_mine", None)


def test_params_round_trip_and_equality():
    for name in ALL_NAMES:
        act = get_activation(name)
        again = type(act)(**act.params)
        assert again == act
        assert hash(again) == hash(act)
        assert name in repr(act) or type(act).__name__ in repr(act)
    assert get_activation("leaky_relu", alpha=0.1) != get_activation("leaky_relu", alpha=0.2)


# ----------------------------------------------------------------------------- properties
finite = st.floats(-60, 60, allow_nan=False, allow_infinity=False)
matrices = arrays(np.float64, st.tuples(st.integers(1, 4), st.integers(1, 6)), elements=finite)

PROJECTIONS = ["identity", "relu", "clip", "hard_sigmoid", "hard_tanh", "sparsemax", "relu_fenchel"]
MONOTONE = [
    "identity",
    "relu",
    "relu_l1",
    "relu_fenchel",
    "leaky_relu",
    "leaky_relu_fenchel",
    "clip",
    "hard_sigmoid",
    "hard_tanh",
    "sigmoid",
    "tanh",
    "sign",
    "softplus",
]


@pytest.mark.parametrize("name", PROJECTIONS)
@settings(max_examples=60, deadline=None)
@given(u=matrices)
def test_projections_are_idempotent(name, u):
    act = get_activation(name)
    z = act.act(u)
    assert_allclose_rel(act.act(z), z, 1e-12, name)


@pytest.mark.parametrize("name", PROGRAM_NAMES)
@settings(max_examples=40, deadline=None)
@given(u=matrices)
def test_outputs_in_domain(name, u):
    act = get_activation(name)
    if name == "max_pool":
        u = np.repeat(u, 2, axis=1)
    assert act.domain_violation(u, act.act(u)) <= 1e-12


@pytest.mark.parametrize("name", MONOTONE)
@settings(max_examples=60, deadline=None)
@given(u=matrices, step=arrays(np.float64, 6, elements=st.floats(0, 10)))
def test_elementwise_activations_are_monotone(name, u, step):
    act = get_activation(name)
    v = u + step[: u.shape[1]]
    assert np.all(act.act(v) >= act.act(u) - 1e-15)


@pytest.mark.parametrize("name", PROGRAM_NAMES)
def test_row_values_sum_to_value(name):
    act = get_activation(name)
    U = default_inputs(act, seed=2)
    Z = act.act(U)
    rows = act.row_values(U, Z)
    assert rows.shape == (U.shape[0],)
    assert_allclose_rel(rows.sum(), act.value(U, Z), 1e-12, name)
    for i in (0, U.shape[0] - 1):
        assert_allclose_rel(rows[i], act.value(U[i : i + 1], Z[i : i + 1]), 1e-12, name)
