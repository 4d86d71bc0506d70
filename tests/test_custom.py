# SPDX-License-Identifier: Apache-2.0
"""User-defined activations: declare, check, verify, register, reject what is not convex."""

import cvxpy as cp
import numpy as np
import pytest

import cvx_lifted as cl
from cvx_lifted.activations import ACTIVATIONS
from cvx_lifted.activations.custom import check_divergence


@pytest.fixture
def registered():
    names = []
    yield names
    for n in names:
        ACTIVATIONS.pop(n, None)


def _soft_threshold(name, **kw):
    return cl.custom_activation(
        name=name,
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u) + 0.1 * cp.norm1(z),
        closed_form=lambda u: np.sign(u) * np.maximum(np.abs(u) - 0.1, 0.0),
        formula="soft threshold",
        **kw,
    )


def test_custom_activation_verifies_and_registers(registered):
    registered.append("test_soft")
    act = _soft_threshold("test_soft")
    assert act.convexity == "joint"
    assert act.cone == "qp"
    assert cl.get_activation("test_soft") == act
    report = cl.verify("test_soft")
    assert report.passed, str(report)
    argmin = cl.CompiledArgmin("test_soft", 5)
    u = np.array([[-1.0, -0.05, 0.0, 0.05, 1.0]])
    np.testing.assert_allclose(argmin(u), [[-0.9, 0, 0, 0, 0.9]], atol=1e-5)


def test_custom_with_domain_and_exp_cone(registered):
    registered.append("test_softmax")
    act = cl.custom_activation(
        name="test_softmax",
        divergence=lambda u, z: -cp.sum(cp.entr(z)) - cp.sum(cp.multiply(u, z)),
        domain=lambda u, z: [cp.sum(z, axis=1) == 1],
        closed_form=lambda u: (
            np.exp(u - u.max(1, keepdims=True))
            / np.exp(u - u.max(1, keepdims=True)).sum(1, keepdims=True)
        ),
    )
    assert act.cone == "exp"
    assert act.convexity == "biconvex"
    assert cl.verify(act).passed


def test_non_convex_divergence_is_rejected_with_a_helpful_message():
    with pytest.raises(cl.NonConvexError) as info:
        cl.custom_activation(
            name="test_nonconvex",
            divergence=lambda u, z: cp.sum(cp.multiply(z, z)) - cp.sum(cp.multiply(u, z)),
            closed_form=lambda u: u / 2,
        )
    msg = str(info.value)
    assert "test_nonconvex" in msg and "multiplies two non-constant" in msg
    assert "test_nonconvex" not in ACTIVATIONS


def test_a_product_with_u_of_unknown_sign_is_blamed_on_the_sign():
    with pytest.raises(cl.NonConvexError, match=r"by `param\d+`, whose sign is unknown") as info:
        cl.custom_activation(
            name="test_signed",
            divergence=lambda u, z: cp.sum(cp.multiply(u, cp.square(z))),
            closed_form=lambda u: u,
            register=False,
        )
    assert "multiplied by itself" not in str(info.value)


def test_concave_divergence_is_rejected():
    with pytest.raises(cl.NonConvexError, match="concave"):
        cl.custom_activation(
            name="test_concave",
            divergence=lambda u, z: -cp.sum_squares(z - u),
            closed_form=lambda u: u,
        )


def test_non_dpp_divergence_is_rejected():
    with pytest.raises(cl.NotDPPError, match="not DPP"):
        cl.custom_activation(
            name="test_not_dpp",
            divergence=lambda u, z: cp.sum_squares(z) - cp.sum(cp.multiply(cp.square(u), z)),
            closed_form=lambda u: u**2 / 2,
        )


def test_biconvex_custom_is_classified():
    act = cl.custom_activation(
        name="test_fy_sigmoid",
        divergence=lambda u, z: (
            -cp.sum(cp.entr(z))
            - cp.sum(cp.entr(1 - z))
            + cp.sum(cp.logistic(u))
            - cp.sum(cp.multiply(u, z))
        ),
        closed_form=lambda u: 1 / (1 + np.exp(-u)),
        register=False,
    )
    assert act.convexity == "biconvex"
    assert act.cone == "exp"


def test_bad_definitions_are_clear_errors(registered):
    with pytest.raises(ValueError, match="non-empty name"):
        cl.custom_activation(name="", divergence=lambda u, z: 0, closed_form=lambda u: u)
    with pytest.raises(ValueError, match="divergence must be callable"):
        cl.custom_activation(name="x_bad", divergence=3, closed_form=lambda u: u)
    with pytest.raises(TypeError, match="CVXPY expression"):
        cl.custom_activation(name="x_bad2", divergence=lambda u, z: 1.0, closed_form=lambda u: u)
    with pytest.raises(ValueError, match="scalar"):
        cl.custom_activation(
            name="x_bad3", divergence=lambda u, z: cp.square(z - u), closed_form=lambda u: u
        )
    registered.append("test_dup")
    first = _soft_threshold("test_dup")
    # the same code run again (a notebook cell): the new definition replaces the old one
    again = _soft_threshold("test_dup")
    assert type(cl.get_activation("test_dup")) is type(again) is not type(first)

    # the same name declared by another module's code: a clash, not a redefinition
    other = {"__name__": "another_package.activations", "cl": cl, "cp": cp, "np": np}
    code = (
        "cl.custom_activation(name='test_dup', closed_form=np.positive, "
        "divergence=lambda u, z: 0.5 * cp.sum_squares(z - u))"
    )
    with pytest.raises(ValueError, match="already registered"):
        exec(code, other)
    _soft_threshold("test_dup", overwrite=True)
    with pytest.raises(ValueError, match="built-in"):
        _soft_threshold("relu", register=True, overwrite=True)
    with pytest.raises(ValueError, match="is a built-in activation; choose another name"):
        _soft_threshold("relu")  # said at once, not "pass overwrite=True" first


def test_a_domain_of_one_constraint_is_a_list_of_one():
    act = cl.custom_activation(
        name="test_one_constraint",
        closed_form=lambda u: np.maximum(u, 0.0),
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
        domain=lambda u, z: z >= 0,  # not [z >= 0]
        register=False,
    )
    assert cl.verify(act).passed


def test_closed_form_with_wrong_shape_is_reported():
    kw = {"divergence": lambda u, z: 0.5 * cp.sum_squares(z - u), "register": False}
    with pytest.raises(ValueError, match=r"an \(m, 3\) array"):  # when declared
        cl.custom_activation(name="test_bad_shape", closed_form=lambda u: u.ravel(), **kw)
    act = cl.custom_activation(
        name="test_bad_shape", closed_form=lambda u: u.ravel(), check_closed_form=False, **kw
    )
    with pytest.raises(ValueError, match=r"an \(m, 3\) array"):  # and when used
        act.act(np.zeros((2, 3)))


def test_subclass_route_is_checked_on_compile():
    class Bad(cl.Activation):
        name = "test_bad_subclass"

        def divergence(self, u, z):
            return -cp.sum_squares(z - u)

        def _act(self, u):
            return u

    with pytest.raises(cl.NonConvexError, match="concave"):
        cl.CompiledArgmin(Bad(), 3)
    with pytest.raises(cl.NonConvexError):
        check_divergence(Bad())


# ------------------------------------------------------------------ Fenchel-Young form
def _sigmoid_form(**overrides):
    from scipy.special import expit, logit, xlogy

    pieces = {
        "phi": lambda z: -cp.sum(cp.entr(z)) - cp.sum(cp.entr(1 - z)),
        "phi_conj": lambda u: cp.sum(cp.logistic(u)),
        "phi_value": lambda z: xlogy(z, z) + xlogy(1 - z, 1 - z),
        "phi_grad": logit,
        "phi_hess": lambda z: 1.0 / (z * (1.0 - z)),
        "conj_value": lambda u: np.logaddexp(0.0, u),
        "conj_hess": lambda u: expit(u) * (1.0 - expit(u)),
        "lo": 0.0,
        "hi": 1.0,
        "curvature": 0.25,
    }
    pieces.update(overrides)
    return cl.FenchelYoungForm(**pieces)


def _my_sigmoid(name, **overrides):
    from scipy.special import expit

    return cl.custom_activation(
        name=name, fenchel_young=_sigmoid_form(**overrides), closed_form=expit, register=False
    )


def test_a_fenchel_young_custom_activation_follows_the_catalogue_sigmoid():
    mine = _my_sigmoid("my_sigmoid")
    assert mine.convexity == "biconvex" and mine.cone == "exp" and mine.fy is not None
    assert cl.verify(mine).passed
    rng = np.random.default_rng(0)
    X = rng.normal(size=(40, 4))
    Y = np.eye(3)[rng.integers(0, 3, 40)]
    runs = []
    for act in (mine, "sigmoid"):
        net = cl.LiftedNetwork([4, 6, 5, 3], activation=act, output="simplex_xent")
        result = net.fit(X, Y, max_iter=3, tol=0, random_state=0, backend="numpy")
        runs.append((net, result))
    (a, ra), (b, rb) = runs
    for x, y in zip(
        a.weights + a.biases + ra.states, b.weights + b.biases + rb.states, strict=True
    ):
        np.testing.assert_allclose(x, y, rtol=1e-6, atol=1e-9)
    np.testing.assert_allclose(ra.history.objective, rb.history.objective, rtol=1e-9)


@pytest.mark.parametrize(
    ("piece", "wrong"),
    [
        ("conj_hess", lambda u: np.ones_like(u)),
        ("phi_grad", lambda z: z),
        ("conj_value", lambda u: np.maximum(u, 0.0)),
        ("phi_hess", lambda z: np.ones_like(z)),
    ],
)
def test_a_wrong_numpy_piece_of_a_fenchel_young_form_is_named(piece, wrong):
    with pytest.raises(ValueError, match=piece):
        _my_sigmoid("bad_fy", **{piece: wrong})


def test_a_closed_fenchel_young_form_with_a_kink_is_accepted_and_trains():
    # relu_fenchel's pair: conj_hess is 0 or 1 at the kink u = 0, both correct
    form = cl.FenchelYoungForm(
        phi=lambda z: 0.5 * cp.sum_squares(z),
        phi_conj=lambda u: 0.5 * cp.sum_squares(cp.pos(u)),
        phi_value=lambda z: 0.5 * z**2,
        phi_grad=lambda z: z,
        phi_hess=np.ones_like,
        conj_value=lambda u: 0.5 * np.maximum(u, 0.0) ** 2,
        conj_hess=lambda u: (u > 0).astype(float),
        lo=0.0,
        closed=True,
    )
    mine = cl.custom_activation(
        name="my_relu_fy", fenchel_young=form, closed_form=lambda u: np.maximum(u, 0.0),
        register=False,
    )  # fmt: skip
    rng = np.random.default_rng(0)
    X, Y = rng.normal(size=(30, 4)), np.eye(3)[rng.integers(0, 3, 30)]
    runs = []
    for act in (mine, "relu_fenchel"):
        net = cl.LiftedNetwork([4, 5, 3], activation=act, output="simplex_xent")
        runs.append(net.fit(X, Y, max_iter=3, tol=0, random_state=0))
    # the weight steps are the fast ones; the closed domain's own state step is CVXPY's
    assert runs[0].history.paths == {**runs[1].history.paths, "X1": "cvxpy"}
    np.testing.assert_allclose(runs[0].history.objective, runs[1].history.objective, rtol=1e-5)


def test_fenchel_young_form_and_divergence_are_exclusive():
    with pytest.raises(ValueError, match="either divergence or fenchel_young"):
        cl.custom_activation(
            name="both",
            divergence=lambda u, z: cp.sum_squares(z - u),
            fenchel_young=_sigmoid_form(),
            closed_form=lambda u: u,
            register=False,
        )
    with pytest.raises(ValueError, match="needs divergence="):
        cl.custom_activation(name="neither", closed_form=lambda u: u, register=False)


def test_elementwise_is_detected_from_the_closed_form():
    soft = _soft_threshold("elem_soft", register=False)
    assert soft.elementwise
    softmax = cl.custom_activation(
        name="rowwise",
        divergence=lambda u, z: -cp.sum(cp.entr(z)) - cp.sum(cp.multiply(u, z)),
        domain=lambda u, z: [cp.sum(z, axis=1) == 1],
        closed_form=lambda u: np.exp(u) / np.exp(u).sum(1, keepdims=True),
        register=False,
    )
    assert not softmax.elementwise


# ------------------------------------------------------------------ errors that name the culprit
def test_a_scalar_closed_form_is_reported_with_the_fix():
    with pytest.raises(ValueError, match=r"closed form of 'scalar_cf'.*returned shape \(\)"):
        cl.custom_activation(
            name="scalar_cf",
            divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
            closed_form=lambda u: float(np.max(u)),
            register=False,
        )


def test_a_closed_form_that_returns_nan_blames_the_closed_form_not_the_data():
    act = cl.custom_activation(
        name="nan_cf",
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
        closed_form=lambda u: np.where(u > 1, np.nan, u),
        register=False,
        check_closed_form=False,  # which would refuse it at u = 1.25 already
    )
    with pytest.raises(ValueError, match=r"closed form of 'nan_cf' returned nan at u = 2\.0"):
        act.act(np.array([[0.0, 2.0]]))


def test_a_domain_that_returns_python_booleans_is_rejected_when_declared():
    with pytest.raises(TypeError, match="list of CVXPY constraints.*bool"):
        cl.custom_activation(
            name="bool_domain",
            divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
            domain=lambda u, z: [True],
            closed_form=lambda u: u,
            register=False,
        )


def test_module_of_an_activation_is_where_it_was_declared(registered):
    """A closed form without a module of its own (a NumPy ufunc) does not hide the caller."""
    from cvx_lifted.plugins import activation_module

    registered.append("test_ufunc_closed_form")
    act = cl.custom_activation(
        name="test_ufunc_closed_form",
        closed_form=np.positive,
        divergence=lambda u, z: 0.5 * cp.sum_squares(z - u),
    )
    assert activation_module(act) == __name__


@pytest.mark.parametrize(
    ("closed_form", "domain", "message"),
    [
        (lambda u: u, lambda u, z: [z >= 0], r"not the argmin of its divergence: at u = \["),
        (lambda u: __import__("math").tanh(u), None, r"rather than math.tanh\(u\)"),
        (lambda u: 0.0, None, r"must map an \(m, n\) array to an \(m, 3\) array"),
    ],
)
def test_a_wrong_closed_form_is_refused_when_declared(closed_form, domain, message):
    kw = {"divergence": lambda u, z: 0.5 * cp.sum_squares(z - u), "register": False}
    with pytest.raises(ValueError, match=message):
        cl.custom_activation(name="wrong", closed_form=closed_form, domain=domain, **kw)
    if "argmin" in message:  # declared anyway when asked
        act = cl.custom_activation(
            name="wrong", closed_form=closed_form, domain=domain, check_closed_form=False, **kw
        )
        assert not cl.verify(act).passed


def test_a_divergence_without_a_minimiser_is_refused():
    with pytest.raises(ValueError, match=r"no minimiser in z .*'unbounded'"):
        cl.custom_activation(
            name="linear", divergence=lambda u, z: cp.sum(cp.multiply(u, z)),
            closed_form=lambda u: u, register=False,
        )  # fmt: skip


def test_networks_and_estimators_with_a_registered_custom_activation_pickle(registered):
    import pickle

    registered.append("pickled_threshold")
    act = _soft_threshold("pickled_threshold")
    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)), rng.integers(0, 2, 40)
    clf = cl.LiftedMLPClassifier((4,), activation=act, max_iter=2, random_state=0).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    assert type(again.network_.activations[0]) is type(act)  # the registered class, by name
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))
    dumped = pickle.dumps(clf)
    ACTIVATIONS.pop("pickled_threshold")  # as in a process that has not declared it
    with pytest.raises(ValueError, match="'pickled_threshold': it is not registered in this"):
        pickle.loads(dumped)


def test_an_activation_declared_in_a_script_pickles_by_value_with_cloudpickle():
    cloudpickle = pytest.importorskip("cloudpickle")
    import pickle

    namespace = {"__name__": "__main__", "cl": cl, "cp": cp, "np": np}
    exec(  # as a script or notebook declares it
        "act = cl.custom_activation(name='script_relu', divergence=lambda u, z: "
        "0.5 * cp.sum_squares(z - u), domain=lambda u, z: [z >= 0], "
        "closed_form=lambda u: np.maximum(u, 0.0))",
        namespace,
    )
    act = namespace["act"]
    try:
        assert type(act)._defined_in == "__main__"
        # by value (as Dask and joblib send it): a worker process need not have declared it
        again = cloudpickle.loads(cloudpickle.dumps(act))
        np.testing.assert_array_equal(again.act([[-1.0, 2.0]]), [[0.0, 2.0]])
        with pytest.raises(pickle.PicklingError):  # plain pickle cannot send lambdas
            pickle.dumps(act)
    finally:
        ACTIVATIONS.pop("script_relu", None)
