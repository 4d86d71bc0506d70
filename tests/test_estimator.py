# SPDX-License-Identifier: Apache-2.0
"""scikit-learn estimators: the library's own checks, fitted attributes, learning, bad input."""

import pickle
import warnings

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.base import clone
from sklearn.datasets import load_digits, load_iris, make_blobs
from sklearn.exceptions import ConvergenceWarning, DataConversionWarning, NotFittedError
from sklearn.linear_model import LinearRegression
from sklearn.model_selection import GridSearchCV, cross_val_score, train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.utils.estimator_checks import check_param_validation, parametrize_with_checks

from cvx_lifted import estimator as est_mod
from cvx_lifted.bcd import BCDHistory
from cvx_lifted.estimator import LiftedMLPClassifier, LiftedMLPRegressor
from cvx_lifted.network import LiftedNetwork

pytestmark = pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")

SMALL = {"hidden_layer_sizes": (8,), "max_iter": 5, "random_state": 0}


# ------------------------------------------------------------------ scikit-learn's own checks
CHECKED = [LiftedMLPClassifier(**SMALL), LiftedMLPRegressor(**SMALL)]

# check name -> reason, per estimator class; every other check must pass.
EXPECTED_FAILED_CHECKS: dict[str, dict[str, str]] = {
    "LiftedMLPClassifier": {},
    "LiftedMLPRegressor": {},
}


def _expected_failed_checks(estimator):
    return EXPECTED_FAILED_CHECKS[type(estimator).__name__]


@parametrize_with_checks(CHECKED, expected_failed_checks=_expected_failed_checks)
def test_sklearn_estimator_checks(estimator, check):
    check(estimator)


# ------------------------------------------------------------------ helpers
def _iris(seed=0):
    X, y = load_iris(return_X_y=True)
    return StandardScaler().fit_transform(X), y


def _blobs(n_classes=3, m=120, seed=1):
    # seed 1: separable clusters (logistic regression scores 1.0 on the 3-class set)
    X, y = make_blobs(n_samples=m, centers=n_classes, cluster_std=1.0, random_state=seed)
    return StandardScaler().fit_transform(X), y


# ------------------------------------------------------------------ parameters and defaults
def test_init_stores_parameters_verbatim_and_defaults_come_from_module_constants():
    clf = LiftedMLPClassifier()
    params = clf.get_params()
    assert params["hidden_layer_sizes"] == est_mod.DEFAULT_HIDDEN_LAYER_SIZES
    assert params["activation"] == est_mod.DEFAULT_ACTIVATION
    assert params["lam"] == est_mod.DEFAULT_LAM
    assert params["rho"] == est_mod.DEFAULT_RHO
    assert params["max_iter"] == est_mod.DEFAULT_MAX_ITER
    assert params["tol"] == est_mod.DEFAULT_TOL
    assert params["backend"] == est_mod.DEFAULT_BACKEND
    assert params["output"] == est_mod.DEFAULT_CLASSIFIER_OUTPUT
    assert params["dtype"] == est_mod.DEFAULT_DTYPE
    assert params["prediction"] == est_mod.DEFAULT_PREDICTION
    reg = LiftedMLPRegressor()
    assert reg.get_params()["output"] == est_mod.DEFAULT_REGRESSOR_OUTPUT
    assert reg.get_params()["output_activation"] == est_mod.DEFAULT_OUTPUT_ACTIVATION
    # nothing is validated or converted in __init__
    odd = LiftedMLPClassifier(hidden_layer_sizes=[3, "x"], lam=-1, activation=object)
    assert odd.hidden_layer_sizes == [3, "x"] and odd.lam == -1 and odd.activation is object


def test_top_level_lazy_import():
    import cvx_lifted

    assert cvx_lifted.LiftedMLPClassifier is LiftedMLPClassifier
    assert cvx_lifted.LiftedMLPRegressor is LiftedMLPRegressor


# ------------------------------------------------------------------ fitted attributes
def test_fitted_attributes_and_shapes():
    X, y = _iris()
    clf = LiftedMLPClassifier(hidden_layer_sizes=(6, 5), max_iter=4, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 6), (6, 5), (5, 3)]
    assert [b.shape for b in clf.intercepts_] == [(6,), (5,), (3,)]
    assert clf.n_features_in_ == 4
    assert clf.n_outputs_ == 3
    assert clf.n_layers_ == 4
    np.testing.assert_array_equal(clf.classes_, [0, 1, 2])
    assert isinstance(clf.network_, LiftedNetwork)
    assert isinstance(clf.history_, BCDHistory)
    assert 1 <= clf.n_iter_ <= 4
    assert isinstance(clf.converged_, bool)
    assert clf.stop_reason_ in ("tol", "max_iter")
    assert isinstance(clf.objective_curve_, np.ndarray)
    assert clf.objective_curve_.shape == (clf.n_iter_,)
    np.testing.assert_array_equal(clf.objective_curve_, clf.history_.objective[1:])
    # every BCD block is an exact minimisation: the objective never increases
    curve = np.asarray(clf.history_.objective)
    assert np.all(np.diff(curve) <= 1e-9 * np.abs(curve[:-1]))
    assert not hasattr(clf, "feature_names_in_")


def test_coefs_follow_sklearn_mlp_convention():
    X, y = _iris()
    clf = LiftedMLPClassifier(hidden_layer_sizes=(7,), max_iter=3, random_state=0).fit(X, y)
    net = clf.network_
    for W, coef in zip(net.weights, clf.coefs_, strict=True):
        np.testing.assert_array_equal(coef, W.T)
    np.testing.assert_allclose(X @ clf.coefs_[0] + clf.intercepts_[0], net.preactivation(0, X))
    # a hand-written forward pass with coefs_/intercepts_ reproduces predict_proba
    hidden = np.maximum(X @ clf.coefs_[0] + clf.intercepts_[0], 0.0)
    out = hidden @ clf.coefs_[1] + clf.intercepts_[1]
    np.testing.assert_allclose(clf.predict_proba(X), net.head.predict(out), atol=1e-12)


def test_regressor_attributes_one_and_several_outputs():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = X[:, 0] - 2 * X[:, 1]
    reg = LiftedMLPRegressor(**SMALL).fit(X, y)
    assert reg.n_outputs_ == 1
    assert reg.predict(X).shape == (60,)
    assert [c.shape for c in reg.coefs_] == [(3, 8), (8, 1)]
    Y = np.column_stack([y, np.abs(X[:, 2]), X[:, 0]])
    reg = LiftedMLPRegressor(**SMALL).fit(X, Y)
    assert reg.n_outputs_ == 3
    assert reg.predict(X).shape == (60, 3)
    assert reg.coefs_[-1].shape == (8, 3)
    with pytest.warns(DataConversionWarning, match="column-vector y"):
        reg = LiftedMLPRegressor(**SMALL).fit(X, y[:, None])
    assert reg.predict(X).shape == (60,)


def test_no_hidden_layer_and_an_int_width():
    X, y = _iris()
    clf = LiftedMLPClassifier(hidden_layer_sizes=(), max_iter=5, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 3)]
    assert clf.n_layers_ == 2
    assert clf.score(X, y) > 0.8
    clf = LiftedMLPClassifier(hidden_layer_sizes=6, max_iter=2, random_state=0).fit(X, y)
    assert [c.shape for c in clf.coefs_] == [(4, 6), (6, 3)]


def test_regressor_relu_output_activation_gives_non_negative_predictions():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((80, 2))
    y = np.maximum(X[:, 0] + X[:, 1], 0.0)
    reg = LiftedMLPRegressor(output_activation="relu", **SMALL).fit(X, y)
    assert reg.network_.head.activation.name == "relu"
    assert np.all(reg.predict(rng.standard_normal((50, 2)) * 3) >= 0)
    assert reg.score(X, y) > 0.8


def test_verbose_shows_a_progress_bar(capsys):
    X, y = _iris()
    LiftedMLPClassifier(hidden_layer_sizes=(4,), max_iter=2, verbose=True).fit(X, y)
    assert "BCD sweeps" in capsys.readouterr().err


# ------------------------------------------------------------------ classification
@pytest.mark.parametrize("output", ["simplex_xent", "squared", "softmax_xent"])
def test_string_labels_and_probabilities_on_the_simplex(output):
    X, y = _blobs(3)
    labels = np.array(["setosa", "versicolor", "virginica"], dtype=object)[y]
    clf = LiftedMLPClassifier(output=output, **SMALL).fit(X, labels)
    assert clf.classes_.tolist() == ["setosa", "versicolor", "virginica"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 3) and proba.dtype == np.float64
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    pred = clf.predict(X)
    np.testing.assert_array_equal(pred, clf.classes_[proba.argmax(axis=1)])
    assert set(pred) <= set(clf.classes_)
    assert clf.score(X, labels) > 0.95


@pytest.mark.parametrize("output", ["simplex_xent", "squared", "softmax_xent"])
def test_binary_problems_use_two_output_units(output):
    X, y = _blobs(2)
    labels = np.where(y == 1, "spam", "ham")
    clf = LiftedMLPClassifier(output=output, **SMALL).fit(X, labels)
    assert clf.n_outputs_ == 2
    assert clf.coefs_[-1].shape == (8, 2)
    assert clf.classes_.tolist() == ["ham", "spam"]
    proba = clf.predict_proba(X)
    assert proba.shape == (len(X), 2)
    assert np.all(proba >= 0)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-12)
    assert clf.score(X, labels) > 0.95


def test_any_hashable_labels():
    X, y = _blobs(3)
    for classes in ([-7, 3, 11], [1.0, 2.0, 5.0], ["b", "a", "c"]):
        labels = np.asarray(classes)[y]
        clf = LiftedMLPClassifier(**SMALL).fit(X, labels)
        assert clf.classes_.tolist() == sorted(classes)
        assert set(clf.predict(X)) <= set(classes)
        assert clf.score(X, labels) > 0.95
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        LiftedMLPClassifier(**SMALL).fit(X, y + 0.5)


@pytest.mark.parametrize(
    ("activation", "output"),
    [("relu_fenchel", "softmax_xent"), ("relu_fenchel", "simplex_xent"), ("relu", "simplex_xent")],
)
def test_lifted_prediction_rule(activation, output):
    X, y = _iris()
    clf = LiftedMLPClassifier(activation=activation, output=output, **SMALL).fit(X, y)
    ff = clf.predict_proba(X)
    lifted = clf.set_params(prediction="lifted").predict_proba(X)
    assert np.all(lifted >= 0)
    np.testing.assert_allclose(lifted.sum(axis=1), 1.0, atol=1e-12)
    np.testing.assert_allclose(
        lifted, clf.network_.predict_lifted(X, backend=clf.backend), atol=1e-9
    )
    if (activation, output) == ("relu_fenchel", "softmax_xent"):
        # every divergence vanishes at its activation: the lifted rule is the feed-forward one
        np.testing.assert_allclose(lifted, ff, atol=1e-8)
    else:
        # the l2 divergence of the sparsemax output is the squared distance of U_L to the
        # simplex, which the lifted rule also minimises over the hidden states
        assert not np.allclose(lifted, ff, atol=1e-3)
    assert clf.score(X, y) > 0.8


# ------------------------------------------------------------------ learning
@pytest.mark.slow
def test_digits_test_accuracy():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=0.25, stratify=y, random_state=0
    )
    clf = make_pipeline(StandardScaler(), LiftedMLPClassifier(random_state=0))
    clf.fit(X_train, y_train)
    accuracy = clf.score(X_test, y_test)
    # measured 0.967 (450 test digits; default parameters, random_state=0, ~17 s)
    assert accuracy > 0.94


def test_regressor_learns_a_nonlinear_function_better_than_a_linear_model():
    rng = np.random.default_rng(0)
    X = rng.uniform(-2.0, 2.0, (300, 2))
    y = np.abs(X[:, 0]) + np.maximum(X[:, 1], 0.0) + 0.05 * rng.standard_normal(300)
    X_train, X_test, y_train, y_test = train_test_split(X, y, random_state=0)
    linear = LinearRegression().fit(X_train, y_train).score(X_test, y_test)
    reg = LiftedMLPRegressor(hidden_layer_sizes=(16,), max_iter=20, random_state=0)
    lifted = reg.fit(X_train, y_train).score(X_test, y_test)
    # measured: linear 0.353, lifted 0.989
    assert linear < 0.45
    assert lifted > 0.95


def test_same_random_state_gives_identical_predictions():
    X, y = _iris()
    a = LiftedMLPClassifier(**SMALL).fit(X, y)
    b = LiftedMLPClassifier(**SMALL).fit(X, y)
    np.testing.assert_array_equal(a.predict_proba(X), b.predict_proba(X))
    c = LiftedMLPClassifier(**{**SMALL, "random_state": 1}).fit(X, y)
    assert not np.array_equal(a.coefs_[0], c.coefs_[0])
    # a RandomState instance is consumed, as in scikit-learn
    rs = np.random.RandomState(0)
    d = LiftedMLPClassifier(**{**SMALL, "random_state": rs}).fit(X, y)
    e = LiftedMLPClassifier(**{**SMALL, "random_state": rs}).fit(X, y)
    assert not np.array_equal(d.coefs_[0], e.coefs_[0])


def test_float32():
    X, y = _iris()
    clf = LiftedMLPClassifier(dtype="float32", **SMALL).fit(X, y)
    assert clf.coefs_[0].dtype == np.float32
    assert clf.predict_proba(X).dtype == np.float64
    assert clf.score(X, y) > 0.8


# ------------------------------------------------------------------ composition
def test_pipeline_grid_search_and_clone():
    X, y = load_iris(return_X_y=True)
    pipe = make_pipeline(StandardScaler(), LiftedMLPClassifier(**SMALL))
    grid = GridSearchCV(
        pipe,
        {"liftedmlpclassifier__lam": [0.5, 2.0], "liftedmlpclassifier__hidden_layer_sizes": [4]},
        cv=3,
    )
    grid.fit(X, y)
    assert grid.best_params_["liftedmlpclassifier__lam"] in (0.5, 2.0)
    assert grid.best_score_ > 0.8
    assert grid.best_estimator_[-1].coefs_[0].shape == (4, 4)
    scores = cross_val_score(make_pipeline(StandardScaler(), LiftedMLPRegressor(**SMALL)), X, y)
    assert scores.shape == (5,)

    fitted = LiftedMLPClassifier(**SMALL).fit(StandardScaler().fit_transform(X), y)
    twin = clone(fitted)
    assert twin.get_params() == fitted.get_params()
    assert not hasattr(twin, "coefs_")


def test_pickle_round_trip():
    X, y = _iris()
    clf = LiftedMLPClassifier(**SMALL).fit(X, y)
    again = pickle.loads(pickle.dumps(clf))
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_dataframe_feature_names():
    pd = pytest.importorskip("pandas")
    X, y = _iris()
    df = pd.DataFrame(X, columns=["a", "b", "c", "d"])
    clf = LiftedMLPClassifier(**SMALL).fit(df, y)
    assert clf.feature_names_in_.tolist() == ["a", "b", "c", "d"]


# ------------------------------------------------------------------ warm start and stopping
def test_warm_start_continues_training():
    X, y = _iris()
    cold = LiftedMLPClassifier(hidden_layer_sizes=(8,), max_iter=3, tol=0, random_state=0)
    cold.fit(X, y)
    first_curve = cold.objective_curve_.copy()

    warm = clone(cold).set_params(warm_start=True)
    warm.fit(X, y)  # no previous fit: a fresh start, identical to the cold fit
    np.testing.assert_array_equal(warm.objective_curve_, first_curve)
    weights = [W.copy() for W in warm.network_.weights]
    biases = [b.copy() for b in warm.network_.biases]
    warm.fit(X, y)  # continues from the weights of the first fit

    reference = LiftedNetwork([4, 8, 3], activation="relu_fenchel", output="simplex_xent")
    reference.set_weights(weights, biases)
    result = reference.fit(X, np.eye(3)[y], max_iter=3, tol=0, warm_start=True)
    np.testing.assert_allclose(warm.history_.objective, result.history.objective, rtol=1e-12)
    assert warm.history_.objective[0] < cold.history_.objective[0] / 5
    assert warm.objective_curve_[-1] < first_curve[-1]

    # without warm_start a refit starts again from the same initialisation
    cold.fit(X, y)
    np.testing.assert_array_equal(cold.objective_curve_, first_curve)

    # hyper-parameters may change between warm fits, the architecture and classes may not
    warm.set_params(lam=2.0).fit(X, y)
    assert warm.network_.lam.tolist() == [2.0, 2.0]
    with pytest.raises(ValueError, match="warm_start=True needs the same architecture"):
        warm.set_params(hidden_layer_sizes=(9,)).fit(X, y)
    with pytest.raises(ValueError, match="X has 3 features"):
        warm.fit(X[:, :3], y)
    assert warm.n_features_in_ == 4
    warm.set_params(hidden_layer_sizes=(8,))
    with pytest.raises(ValueError, match="warm_start=True needs the same classes"):
        warm.fit(X[y < 2], y[y < 2])


def test_regressor_warm_start():
    rng = np.random.default_rng(1)
    X = rng.standard_normal((80, 2))
    y = np.abs(X[:, 0]) - X[:, 1]
    reg = LiftedMLPRegressor(warm_start=True, tol=0, **{**SMALL, "max_iter": 3}).fit(X, y)
    first = reg.objective_curve_[-1]
    reg.fit(X, y)
    assert reg.objective_curve_[-1] < first


def test_convergence_warning_and_time_limit():
    X, y = _iris()
    with pytest.warns(ConvergenceWarning, match="max_iter=2"):
        LiftedMLPClassifier(hidden_layer_sizes=(4,), max_iter=2, tol=0, random_state=0).fit(X, y)
    with warnings.catch_warnings():
        warnings.simplefilter("error", ConvergenceWarning)
        clf = LiftedMLPClassifier(hidden_layer_sizes=(4,), max_iter=50, tol=0.5, random_state=0)
        clf.fit(X, y)
    assert clf.converged_ and clf.stop_reason_ == "tol"
    with pytest.warns(ConvergenceWarning, match="time_limit"):
        clf = LiftedMLPClassifier(
            hidden_layer_sizes=(4,), max_iter=50, tol=0, time_limit=1e-9, random_state=0
        ).fit(X, y)
    assert clf.n_iter_ == 1 and clf.stop_reason_ == "time_limit"


@pytest.mark.parametrize("estimator", [LiftedMLPClassifier, LiftedMLPRegressor])
@pytest.mark.parametrize("solver", ["bcd", "minibatch"])
def test_convergence_warning_points_at_the_callers_line(estimator, solver):
    X, y = _iris()
    with pytest.warns(ConvergenceWarning) as caught:
        estimator(hidden_layer_sizes=(4,), max_iter=1, tol=0, solver=solver).fit(X, y)
    assert [w.filename for w in caught] == [__file__]  # not a frame of cvx_lifted or sklearn


def test_save_keeps_the_labels_and_the_command_line_predicts_them(tmp_path, capsys):
    from cvx_lifted import cli
    from cvx_lifted.io import load_model as load

    X, y = _iris()
    labels = np.array(["setosa", "versicolor", "virginica"])[y]
    clf = LiftedMLPClassifier(hidden_layer_sizes=(4,), max_iter=3, random_state=0).fit(X, labels)
    with pytest.raises(NotFittedError):
        LiftedMLPClassifier().save(tmp_path / "unfitted")
    path = clf.save(tmp_path / "iris")
    assert path == tmp_path / "iris.cvxl"
    saved = load(path)
    assert saved.extra["task"] == "classify"
    assert saved.extra["classes"] == ["setosa", "versicolor", "virginica"]
    assert saved.extra["estimator"]["class"] == "LiftedMLPClassifier"
    assert saved.extra["estimator"]["params"]["hidden_layer_sizes"] == [4]
    np.testing.assert_array_equal(saved.network.predict(X), clf.network_.predict(X))
    np.save(tmp_path / "X.npy", X[:5])
    np.savez(tmp_path / "X.npz", X=X[:5])
    assert cli.main(["predict", str(path), str(tmp_path / "X.npz")]) == 0
    out = capsys.readouterr().out.split()
    assert out == ["label", *clf.predict(X[:5]).tolist()]
    reg = LiftedMLPRegressor(hidden_layer_sizes=(4,), max_iter=2).fit(X, X[:, 0])
    assert load(reg.save(tmp_path / "reg.cvxl")).extra["task"] == "regress"


# ------------------------------------------------------------------ bad input
BAD_PARAMS = [
    ({"lam": 0.0}, "lam"),
    ({"lam": -1.0}, "lam"),
    ({"lam": np.inf}, "lam"),
    ({"lam": "big"}, "lam"),
    ({"lam": [1.0, 1.0, 1.0]}, "lam"),
    ({"rho": -1e-3}, "rho"),
    ({"rho": [1e-3]}, "rho"),
    ({"hidden_layer_sizes": (0,)}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": (8, -1)}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": (8.5,)}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": "8"}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": [[8]]}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": None}, "hidden_layer_sizes"),
    ({"hidden_layer_sizes": True}, "hidden_layer_sizes"),
    ({"activation": "relux"}, "activation"),
    ({"activation": "softplus"}, "activation"),
    ({"activation": 3}, "activation"),
    ({"output": "hinge"}, "output"),
    ({"backend": "torch"}, "backend"),
    ({"max_iter": 0}, "max_iter"),
    ({"max_iter": 2.5}, "max_iter"),
    ({"tol": -1.0}, "tol"),
    ({"tol": np.nan}, "tol"),
    ({"dtype": "int32"}, "dtype"),
    ({"dtype": "nonsense"}, "dtype"),
    ({"time_limit": 0.0}, "time_limit"),
    ({"time_limit": "1s"}, "time_limit"),
    ({"warm_start": "yes"}, "warm_start"),
    ({"prediction": "magic"}, "prediction"),
]


@pytest.mark.parametrize("Estimator", [LiftedMLPClassifier, LiftedMLPRegressor])
@pytest.mark.parametrize(("params", "name"), BAD_PARAMS, ids=[f"{p}" for p, _ in BAD_PARAMS])
def test_bad_parameters_raise_in_fit_naming_the_argument(Estimator, params, name):
    X, y = _blobs(2, m=20)
    est = Estimator(**{**SMALL, **params})  # accepted verbatim by __init__
    with pytest.raises(ValueError, match=name):
        est.fit(X, y)


@pytest.mark.parametrize("Estimator", [LiftedMLPClassifier, LiftedMLPRegressor])
def test_parameter_constraints_cover_every_parameter(Estimator):
    # scikit-learn's own check: a constraint per parameter, each refusing a wrong type or value
    # with an InvalidParameterError that names the parameter
    check_param_validation(Estimator.__name__, Estimator(**SMALL))


@pytest.mark.parametrize(
    ("params", "name"),
    [
        ({"output": "simplex_xent"}, "output"),
        ({"output_activation": "relux"}, "output_activation"),
        ({"output_activation": "softplus"}, "output_activation"),
    ],
)
def test_bad_regressor_parameters(params, name):
    X, y = _blobs(2, m=20)
    with pytest.raises(ValueError, match=name):
        LiftedMLPRegressor(**{**SMALL, **params}).fit(X, y)


def test_prediction_is_checked_again_at_predict_time():
    X, y = _iris()
    clf = LiftedMLPClassifier(**SMALL).fit(X, y)
    with pytest.raises(ValueError, match="prediction"):
        clf.set_params(prediction="magic").predict(X)


@pytest.mark.parametrize("Estimator", [LiftedMLPClassifier, LiftedMLPRegressor])
def test_bad_data(Estimator):
    X, y = _blobs(3, m=30)
    est = Estimator(**SMALL)
    bad = X.copy()
    bad[0, 0] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        est.fit(bad, y)
    bad[0, 0] = np.inf
    with pytest.raises(ValueError, match="infinity"):
        est.fit(bad, y)
    with pytest.raises(ValueError, match="2D array"):
        est.fit(X[:, 0], y)
    with pytest.raises(ValueError, match="inconsistent numbers of samples"):
        est.fit(X, y[:-1])
    with pytest.raises(ValueError, match="0 sample"):
        est.fit(X[:0], y[:0])
    with pytest.raises(ValueError, match="0 feature"):
        est.fit(X[:, :0], y)
    with pytest.raises(ValueError, match="[Cc]omplex"):
        est.fit(X + 1j, y)
    with pytest.raises(TypeError, match="[Ss]parse"):
        est.fit(sp.csr_matrix(X), y)
    with pytest.raises(NotFittedError):
        est.predict(X)
    est.fit(X, y)
    with pytest.raises(ValueError, match="features"):
        est.predict(X[:, :1])
    with pytest.raises(ValueError, match="NaN"):
        est.predict(np.full_like(X, np.nan))


def test_bad_regression_targets():
    X, y = _blobs(3, m=30)
    with pytest.raises(ValueError, match="NaN"):
        LiftedMLPRegressor(**SMALL).fit(X, np.where(y == 0, np.nan, y))
    with pytest.raises(ValueError, match="could not convert|numeric"):
        LiftedMLPRegressor(**SMALL).fit(X, np.array(["a", "b", "c"], dtype=object)[y])


def test_bad_classification_targets():
    X, y = _blobs(3, m=30)
    clf = LiftedMLPClassifier(**SMALL)
    with pytest.raises(ValueError, match="2 classes.*only one class"):
        clf.fit(X, np.zeros(len(X)))
    with pytest.raises(ValueError, match="Unknown label type"):
        clf.fit(X, np.linspace(0, 1, len(X)))
    with pytest.raises(ValueError, match="multilabel"):
        clf.fit(X, np.eye(3, dtype=int)[y] | (X[:, :1] > 0))
    with pytest.raises(ValueError, match="multiclass-multioutput"):
        clf.fit(X, np.column_stack([y, y]))
    with pytest.raises(ValueError, match="NaN"):
        clf.fit(X, np.where(y == 0, np.nan, y))
    with pytest.warns(DataConversionWarning):
        clf.fit(X, y[:, None])
    assert clf.predict(X).shape == (len(X),)
