# SPDX-License-Identifier: Apache-2.0
"""One set of defaults: LiftedNetwork, the estimators, the solver and the command line agree."""

import inspect

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.preprocessing import StandardScaler

from cvx_lifted import LiftedMLPClassifier, LiftedMLPRegressor, LiftedNetwork, cli, defaults
from cvx_lifted import estimator as est
from cvx_lifted.bcd import BCDSolver


def _default(callable_, name):
    return inspect.signature(callable_).parameters[name].default


def test_the_default_hidden_activation_is_the_same_everywhere():
    assert defaults.ACTIVATION == "relu_fenchel"
    assert _default(LiftedNetwork.__init__, "activation") == defaults.ACTIVATION
    assert [a.name for a in LiftedNetwork([3, 4, 4, 2]).activations] == ["relu_fenchel"] * 2
    for cls in (LiftedMLPClassifier, LiftedMLPRegressor):
        assert cls().activation == defaults.ACTIVATION
    parser = cli.build_parser()
    train = parser.parse_args(["train", "d.csv", "-o", "m"])
    demo = parser.parse_args(["demo"])
    for args in (train, demo):
        assert args.activation == defaults.ACTIVATION
        assert args.sweeps == defaults.SWEEPS
        assert tuple(args.hidden) == defaults.HIDDEN and args.backend == defaults.BACKEND
    assert train.tol == defaults.TOL and train.seed == demo.seed == defaults.SEED
    assert train.lam == "auto" and demo.lam == defaults.LAM  # as the estimators / LiftedNetwork
    assert train.rho == "auto" and demo.rho == defaults.RHO
    assert demo.output == defaults.CLASSIFIER_HEAD


def test_numbers_and_heads_come_from_the_defaults_module():
    assert _default(LiftedNetwork.__init__, "lam") == defaults.LAM
    assert _default(LiftedNetwork.__init__, "rho") == defaults.RHO
    assert _default(LiftedNetwork.__init__, "output") == defaults.REGRESSOR_HEAD
    assert _default(LiftedNetwork.__init__, "penalty") == defaults.PENALTY
    clf, reg = LiftedMLPClassifier(), LiftedMLPRegressor()
    for model in (clf, reg):
        assert (model.lam, model.rho, model.max_iter, model.tol) == (
            "auto", "auto", defaults.SWEEPS, defaults.TOL,
        )  # fmt: skip
        assert tuple(model.hidden_layer_sizes) == defaults.HIDDEN
        assert model.backend == defaults.BACKEND and model.prediction == defaults.PREDICTION
    assert clf.output == defaults.CLASSIFIER_HEAD and reg.output == defaults.REGRESSOR_HEAD
    assert reg.output_activation == defaults.OUTPUT_ACTIVATION
    assert est.DEFAULT_ACTIVATION == defaults.ACTIVATION  # the old names still work
    # BCDSolver has literal defaults of its own; LiftedNetwork.fit passes the shared ones, and
    # they must agree so that a BCDSolver used directly trains the same way
    assert _default(BCDSolver.__init__, "max_iter") == defaults.SWEEPS
    assert _default(BCDSolver.__init__, "tol") == defaults.TOL
    assert _default(BCDSolver.__init__, "backend") == defaults.BACKEND


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_estimator_and_network_train_the_same_network():
    """Same visible settings and an int seed: the same weights (README's digits: 0.978)."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    clf = LiftedMLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=3).fit(X, y)
    net = LiftedNetwork([4, 8, 3], output=defaults.CLASSIFIER_HEAD)
    net.fit(X, np.eye(3)[y], max_iter=5, random_state=3)
    for W_est, W_net in zip(clf.network_.weights, net.weights, strict=True):
        np.testing.assert_array_equal(W_est, W_net)
    np.testing.assert_array_equal(clf.network_.predict(X), net.predict(X))
    np.testing.assert_array_equal(clf.predict(X), net.predict(X).argmax(axis=1))
    # a RandomState instance is consumed instead (documented): a different start
    other = LiftedMLPClassifier(
        hidden_layer_sizes=(8,), max_iter=5, random_state=np.random.RandomState(3)
    ).fit(X, y)
    assert not np.array_equal(other.network_.weights[0], net.weights[0])


def test_relu_fenchel_beats_relu_at_the_same_settings():
    """Why it is the default: on iris, the same widths, lam, rho and sweeps."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    scores = {}
    for act in ("relu", "relu_fenchel"):
        clf = LiftedMLPClassifier(hidden_layer_sizes=(16,), activation=act, random_state=0)
        with pytest.warns(Warning):  # ConvergenceWarning: 20 sweeps
            scores[act] = clf.fit(X, y).score(X, y)
    assert scores["relu_fenchel"] > scores["relu"]


def test_negative_seeds_are_refused_by_the_estimator():
    # scikit-learn's parameter validation: seeds are ints in [0, 2**32 - 1]
    with pytest.raises(
        ValueError, match=r"'random_state' parameter .* in the range \[0, 4294967295\]"
    ):
        LiftedMLPClassifier(random_state=-1).fit([[0.0], [1.0]], [0, 1])


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_lam_auto_follows_the_solver_that_trains():
    """``lam="auto"``: 1 everywhere for BCD; 3 on the hidden layers for mini-batch BCD."""
    X, y = load_iris(return_X_y=True)
    X = StandardScaler().fit_transform(X)
    kw = {"hidden_layer_sizes": (6, 5), "max_iter": 2, "random_state": 0}
    assert defaults.auto_lam("bcd", 2) == (defaults.LAM,) * 3
    assert defaults.auto_lam("minibatch", 2) == (defaults.MINIBATCH_LAM,) * 2 + (defaults.LAM,)
    bcd = LiftedMLPClassifier(**kw).fit(X, y)
    assert bcd.network_.lam.tolist() == [1.0, 1.0, 1.0]
    mb = LiftedMLPClassifier(**kw, solver="minibatch", batch_size=50).fit(X, y)
    assert mb.network_.lam.tolist() == [3.0, 3.0, 1.0]
    pf = LiftedMLPClassifier(**kw, solver="minibatch", batch_size=50)
    pf.partial_fit(X, y, classes=np.unique(y))
    assert pf.network_.lam.tolist() == [3.0, 3.0, 1.0]
    given = LiftedMLPClassifier(**kw, solver="minibatch", batch_size=50, lam=0.5).fit(X, y)
    assert given.network_.lam.tolist() == [0.5, 0.5, 0.5]
    with pytest.raises(ValueError, match="lam"):
        LiftedMLPClassifier(lam="fast").fit(X, y)
