# SPDX-License-Identifier: Apache-2.0
r"""scikit-learn estimators for lifted neural networks.

:class:`LiftedMLPClassifier` and :class:`LiftedMLPRegressor` follow scikit-learn's estimator
rules (``get_params``/``set_params``, validation in :meth:`fit`, fitted attributes ending in
``_``) and take the parameter names of :class:`sklearn.neural_network.MLPClassifier` and
:class:`~sklearn.neural_network.MLPRegressor` where those exist. They are a thin veneer: validate
the data, encode the targets as a matrix :math:`Y` (one-hot rows for classification), build a
:class:`~cvx_lifted.network.LiftedNetwork` and train it by block-coordinate descent, full-batch
(:class:`~cvx_lifted.bcd.BCDSolver`) or, by default from 5,000 training rows, mini-batch
(:class:`~cvx_lifted.minibatch.MinibatchBCDSolver`), then keep the results. Row-chunked Dask
arrays train on a cluster instead (:mod:`cvx_lifted.distributed`); predictions of them are
lazy Dask arrays.

Every default comes from :mod:`cvx_lifted.defaults`, shared with
:class:`~cvx_lifted.network.LiftedNetwork` and the command line (re-exported here as
``DEFAULT_*``).

How an estimator relates to a direct :class:`~cvx_lifted.network.LiftedNetwork` fit
------------------------------------------------------------------------------------
On fewer than :data:`~cvx_lifted.defaults.MINIBATCH_ROWS` rows (or with ``solver="bcd"``),
``LiftedMLPClassifier(hidden_layer_sizes=(h,), random_state=k).fit(X, y)`` trains exactly the
network ``LiftedNetwork([n, h, n_classes], output="simplex_xent").fit(X, Y, random_state=k)``
with ``Y`` the one-hot encoding of ``y`` (classes in sorted order), with the same defaults
(activation, :math:`\lambda`, :math:`\rho`, sweeps, ``tol``): an integer ``random_state`` seeds
the initialisation directly, so both give the same weights and the same predictions (0.978 test
accuracy on the README's digits split). What the estimator adds by design: label encoding,
scikit-learn's input validation, a :class:`~sklearn.exceptions.ConvergenceWarning`, and the
``"simplex_xent"`` head by default (``LiftedNetwork`` defaults to ``"squared"``, since it does
not know that ``Y`` holds classes), and the choice of mini-batch BCD on more rows
(``LiftedNetwork.fit`` trains full-batch unless given ``solver="minibatch"``). Neither
rescales inputs; ``cvx-lifted train`` does (it standardises file features for training), so it
gives different numbers on the same file.
A ``RandomState`` instance as ``random_state`` is consumed: a seed is drawn from it.

Conventions
-----------
``coefs_[i]`` has shape ``(n_in, n_out)`` as in scikit-learn's MLP, so that the pre-activation of
layer ``i`` is ``X_i @ coefs_[i] + intercepts_[i]``; it is the transpose (a view) of
``network_.weights[i]``, which has the paper's shape ``(n_out, n_in)``.
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral, Real
from typing import Any, ClassVar

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import ClassifierMixin, RegressorMixin, _fit_context
from sklearn.preprocessing import LabelEncoder
from sklearn.utils import Tags
from sklearn.utils._param_validation import (
    Hidden,
    Interval,
    Options,
    StrOptions,
)
from sklearn.utils.metaestimators import available_if
from sklearn.utils.multiclass import check_classification_targets, type_of_target
from sklearn.utils.validation import column_or_1d, validate_data

from cvx_lifted import defaults, distributed
from cvx_lifted._estimator_base import _BaseLiftedMLP, _minibatch_only
from cvx_lifted.activations import Activation, get_activation
from cvx_lifted.distributed import ScoreOnRowsMixin, is_dask_array
from cvx_lifted.exceptions import NotRepresentableError
from cvx_lifted.losses import get_output

__all__ = [
    "BACKENDS",
    "CLASSIFIER_OUTPUTS",
    "DEFAULT_ACTIVATION",
    "DEFAULT_BACKEND",
    "DEFAULT_CLASSIFIER_OUTPUT",
    "DEFAULT_DTYPE",
    "DEFAULT_HIDDEN_LAYER_SIZES",
    "DEFAULT_LAM",
    "DEFAULT_MAX_ITER",
    "DEFAULT_OUTPUT_ACTIVATION",
    "DEFAULT_PREDICTION",
    "DEFAULT_REGRESSOR_OUTPUT",
    "DEFAULT_RHO",
    "DEFAULT_TOL",
    "LiftedMLPClassifier",
    "LiftedMLPRegressor",
    "PREDICTIONS",
    "REGRESSOR_OUTPUTS",
    "SOLVERS",
]

FloatArray = NDArray[np.floating[Any]]
ActivationSpec = str | Activation | Sequence[str | Activation]

# ---------------------------------------------------------------------------------- defaults
_SIMPLEX = get_activation("sparsemax")  # the Euclidean projection onto the simplex

# all from cvx_lifted.defaults, the one place shared with LiftedNetwork and the command line
DEFAULT_HIDDEN_LAYER_SIZES: tuple[int, ...] = defaults.HIDDEN
"""Width of each hidden layer (:data:`cvx_lifted.defaults.HIDDEN`)."""
DEFAULT_ACTIVATION: str = defaults.ACTIVATION
"""Hidden activation (:data:`cvx_lifted.defaults.ACTIVATION`)."""
DEFAULT_LAM: str = "auto"
r"""Weight :math:`\lambda` of the layers' divergences: ``"auto"`` follows the solver
(:func:`cvx_lifted.defaults.auto_lam`)."""
DEFAULT_RHO: str = "auto"
r"""Squared-Frobenius penalty :math:`\rho` on every weight matrix: ``"auto"`` follows the solver
and the number of training rows (:func:`cvx_lifted.defaults.auto_rho`)."""
DEFAULT_MAX_ITER: int = defaults.SWEEPS
"""Maximum number of BCD sweeps (:data:`cvx_lifted.defaults.SWEEPS`)."""
DEFAULT_TOL: float = defaults.TOL
"""Relative objective decrease of a sweep below which training stops."""
DEFAULT_BACKEND: str = defaults.BACKEND
"""Block solvers: NumPy fast path where one exists, compiled CVXPY problems otherwise."""
DEFAULT_CLASSIFIER_OUTPUT: str = defaults.CLASSIFIER_HEAD
"""Output head of the classifier (cross-entropy on the simplex, paper eq. 15)."""
DEFAULT_REGRESSOR_OUTPUT: str = defaults.REGRESSOR_HEAD
"""Output head of the regressor."""
DEFAULT_OUTPUT_ACTIVATION: str = defaults.OUTPUT_ACTIVATION
"""Output activation of the regressor's squared head."""
DEFAULT_DTYPE: str = defaults.DTYPE
"""Floating type of weights and states."""
DEFAULT_PREDICTION: str = defaults.PREDICTION
"""Prediction rule: ``"feedforward"`` (paper eq. 2) or ``"lifted"`` (paper eq. 12)."""

CLASSIFIER_OUTPUTS: tuple[str, ...] = ("simplex_xent", "squared", "softmax_xent")
"""Output heads the classifier accepts."""
REGRESSOR_OUTPUTS: tuple[str, ...] = ("squared",)
"""Output heads the regressor accepts."""
BACKENDS: tuple[str, ...] = ("auto", "numpy", "cvxpy")
"""Values of ``backend``."""
PREDICTIONS: tuple[str, ...] = ("feedforward", "lifted")
"""Values of ``prediction``."""
SOLVERS: tuple[str, ...] = ("auto", "bcd", "minibatch")
"""Values of ``solver``."""


# ---------------------------------------------------------------------------------- checks
_FLOAT_DTYPES = {np.dtype(np.float32), np.dtype(np.float64)}

#: What every estimator parameter may be (scikit-learn's parameter validation, checked by ``fit``):
#: types and ranges here; what depends on other parameters or on the registries (a width per
#: hidden layer, a penalty per weight layer, an activation that resolves) in ``_check_params``.
_PARAMETER_CONSTRAINTS: dict[str, list[Any]] = {
    "hidden_layer_sizes": ["array-like", Interval(Integral, 1, None, closed="left")],
    "activation": [str, Activation, "array-like"],
    "lam": [StrOptions({"auto"}), Interval(Real, 0, None, closed="neither"), "array-like"],
    "rho": [StrOptions({"auto"}), Interval(Real, 0, None, closed="left"), "array-like"],
    "max_iter": [Interval(Integral, 1, None, closed="left")],
    "tol": [Interval(Real, 0, None, closed="left")],
    "backend": [StrOptions(set(BACKENDS))],
    "random_state": ["random_state"],
    "verbose": ["verbose"],
    "dtype": [
        StrOptions({"float64", "float32"}),
        Hidden(Options(type, {np.float64, np.float32, float})),
        Hidden(Options(np.dtype, _FLOAT_DTYPES)),
    ],
    "time_limit": [Interval(Real, 0, None, closed="neither"), None],
    "warm_start": ["boolean"],
    "prediction": [StrOptions(set(PREDICTIONS))],
    "solver": [StrOptions(set(SOLVERS))],
    "batch_size": [Interval(Integral, 1, None, closed="left")],
    "prox": [Interval(Real, 0, None, closed="neither")],
}


def _probabilities(out: ArrayLike, *, softmax: bool) -> NDArray[np.float64]:
    """Rows of the network's output on the simplex (also run per chunk of a Dask array)."""
    P = np.asarray(out, dtype=np.float64)
    if softmax:
        P = np.clip(P, 0.0, None)
        return P / P.sum(axis=1, keepdims=True)
    # idempotent on the simplex: fixes the round-off of the lifted rule, projects "squared"
    return np.asarray(_SIMPLEX.act(P), dtype=np.float64)


# ---------------------------------------------------------------------------------- classifier
class LiftedMLPClassifier(ScoreOnRowsMixin, ClassifierMixin, _BaseLiftedMLP):
    r"""Lifted neural-network classifier trained by block-coordinate descent.

    The network's activations are argmins of convex divergences, its hidden states are variables
    of the training problem, and every block of the block-coordinate descent (weights, hidden
    states, output) is a convex problem solved exactly (Askari et al., 2018). Labels are
    encoded as one-hot rows with one column per class -- two columns for a binary problem, so
    that the simplex heads apply.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Width of each hidden layer; ``()`` means no hidden layer.
    activation : str, Activation or sequence of them, default="relu_fenchel"
        Hidden activation: a name in :data:`cvx_lifted.ACTIVATIONS`, an activation instance, or
        one per hidden layer.
    lam : float, sequence of float or "auto", default="auto"
        :math:`\lambda > 0`, weight of each layer's divergence (a scalar, or one value per weight
        layer, ``len(hidden_layer_sizes) + 1``). ``"auto"``: 1 for every layer when full-batch
        BCD trains; 3 for the hidden layers and 1 for the output layer with mini-batch BCD
        (:func:`cvx_lifted.defaults.auto_lam`, measured on six data sets).
    rho : float, sequence of float or "auto", default="auto"
        :math:`\rho \ge 0`, squared-Frobenius penalty on each weight matrix. ``"auto"``: 1e-3,
        except with mini-batch BCD on more than 15,000 training rows, where it shrinks like
        1/rows (2.5e-4 on 60,000; :func:`cvx_lifted.defaults.auto_rho`).
    max_iter : int, default=20
        Maximum number of BCD sweeps (epochs when mini-batch BCD trains).
    tol : float, default=1e-4
        Stop when the relative objective decrease of a sweep is below ``tol``.
    backend : {"auto", "numpy", "cvxpy"}, default="auto"
        Fast NumPy kernels where they exist (``"auto"``), only those (``"numpy"``), or compiled
        CVXPY problems for every block (``"cvxpy"``; slow, for small problems).
    output : {"simplex_xent", "squared", "softmax_xent"}, default="simplex_xent"
        Output head: cross-entropy with the output state on the probability simplex (paper
        eq. 15, sparsemax output), squared loss on one-hot targets, or softmax cross-entropy on
        the last pre-activation (paper eq. 11).
    random_state : int, RandomState instance or None, default=None
        Seed of the weight initialisation; an int gives reproducible fits and the same
        initial weights as ``LiftedNetwork.fit(..., random_state=int)``; a ``RandomState``
        instance (or ``None``) provides a seed drawn from it.
    verbose : bool, default=False
        Show a progress bar with the objective.
    dtype : {"float64", "float32"}, default="float64"
        Floating type of weights and states.
    time_limit : float, optional
        Wall-time budget of a fit in seconds (checked after each sweep).
    warm_start : bool, default=False
        Start from the weights of the previous fit (same architecture and classes) instead of a
        fresh initialisation.
    prediction : {"feedforward", "lifted"}, default="feedforward"
        Prediction rule: the feed-forward pass (paper eq. 2), or the lifted rule (paper eq. 12,
        :meth:`~cvx_lifted.network.LiftedNetwork.predict_lifted`), an iterative solve in which
        each row stops on its own test, so that a row's prediction does not depend on the rows
        predicted alongside it.
    solver : {"auto", "bcd", "minibatch"}, default="auto"
        Training algorithm: full-batch block-coordinate descent, every block an exact step and
        the objective monotone (:class:`~cvx_lifted.bcd.BCDSolver`), or mini-batch BCD
        (:class:`~cvx_lifted.minibatch.MinibatchBCDSolver`: states per batch, proximal weight
        steps; ``max_iter`` counts epochs; per batch every block decreases the batch's proximal
        objective, the full objective is not monotone), which also provides :meth:`partial_fit`.
        ``"auto"``: mini-batch BCD from 5,000 training rows in memory for a network whose
        blocks all have fast paths, full-batch BCD otherwise
        (:func:`cvx_lifted.defaults.auto_solver`; ``solver_`` says which one trained);
        :meth:`partial_fit` always trains mini-batch.
    batch_size : int, default=500
        Rows per batch of ``solver="minibatch"``.
    prox : float, default=0.006
        Weight of the proximal term :math:`\tfrac\mu2\|W - W^-\|^2` of the weight steps of
        ``solver="minibatch"`` in the first epoch, per batch: :math:`\mu` is ``prox`` times the
        number of batches of the epoch (it grows 1.3x per epoch; see
        :class:`~cvx_lifted.minibatch.MinibatchBCDSolver`, which also uses momentum 0.9).

    Attributes
    ----------
    classes_ : ndarray of shape (n_classes,)
        Class labels, sorted.
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape ``(n_in, n_out)``: weights of layer ``i`` in scikit-learn's MLP
        convention (a transposed view of ``network_.weights[i]``).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape ``(n_out,)``.
    n_iter_ : int
        Number of BCD sweeps run by the last fit (epochs when mini-batch BCD trained, counting
        every :meth:`partial_fit` call as one).
    solver_ : {"bcd", "minibatch"}
        The training algorithm of the last fit (what ``solver="auto"`` chose).
    objective_curve_ : ndarray of shape (``n_iter_``,)
        Lifted objective after each sweep of the last fit (the objective at the initial point is
        ``history_.objective[0]``); it never increases under full-batch BCD. After mini-batch
        BCD: after each epoch, at the states of a forward pass and an exact output step on at
        most 8,192 of the rows (not comparable with full-batch values), and it may rise (a
        stochastic method).
    history_ : BCDHistory
        Objective terms, timings and residuals of every sweep of the last fit.
    converged_ : bool
        Whether the last fit stopped on ``tol``.
    stop_reason_ : str
        ``"tol"``, ``"max_iter"`` or ``"time_limit"`` (``"partial_fit"`` after
        :meth:`partial_fit`).
    network_ : LiftedNetwork
        The trained network (the source of truth for predictions).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Feature names, when ``X`` has string column names (e.g. a DataFrame).
    n_outputs_ : int
        Number of output units (the number of classes).
    n_layers_ : int
        Number of layers, input and output included.

    See Also
    --------
    LiftedMLPRegressor : The regression counterpart.
    cvx_lifted.network.LiftedNetwork : The underlying model.
    sklearn.neural_network.MLPClassifier : The gradient-trained analogue.

    Notes
    -----
    Defaults come from :mod:`cvx_lifted.defaults`; with the same settings and an integer
    ``random_state`` the estimator trains the same network as a direct
    :class:`~cvx_lifted.network.LiftedNetwork` fit (see the module documentation for what
    differs by design). Inputs are not rescaled: standardise them (e.g. in a
    :class:`~sklearn.pipeline.Pipeline` with :class:`~sklearn.preprocessing.StandardScaler`),
    as for any MLP. A
    :class:`~sklearn.exceptions.ConvergenceWarning` is emitted when a fit stops on ``max_iter``
    or ``time_limit``. Multilabel and multi-output targets are not supported.

    Examples
    --------
    >>> from sklearn.datasets import load_iris
    >>> from sklearn.pipeline import make_pipeline
    >>> from sklearn.preprocessing import StandardScaler
    >>> from cvx_lifted import LiftedMLPClassifier
    >>> X, y = load_iris(return_X_y=True)
    >>> clf = make_pipeline(
    ...     StandardScaler(),
    ...     LiftedMLPClassifier(hidden_layer_sizes=(16,), max_iter=10, random_state=0),
    ... )
    >>> clf.fit(X, y).score(X, y) > 0.9
    True
    >>> clf.predict_proba(X[:2]).sum(axis=1)
    array([1., 1.])
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_PARAMETER_CONSTRAINTS,
        "output": [StrOptions(set(CLASSIFIER_OUTPUTS))],
    }
    classes_: NDArray[Any]  # set by fit

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = DEFAULT_HIDDEN_LAYER_SIZES,
        activation: ActivationSpec = DEFAULT_ACTIVATION,
        lam: float | Sequence[float] | str = DEFAULT_LAM,
        rho: float | Sequence[float] | str = DEFAULT_RHO,
        max_iter: int = DEFAULT_MAX_ITER,
        tol: float = DEFAULT_TOL,
        backend: str = DEFAULT_BACKEND,
        output: str = DEFAULT_CLASSIFIER_OUTPUT,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        dtype: str = DEFAULT_DTYPE,
        time_limit: float | None = None,
        warm_start: bool = False,
        prediction: str = DEFAULT_PREDICTION,
        solver: str = defaults.SOLVER,
        batch_size: int = defaults.BATCH_SIZE,
        prox: float = defaults.PROX,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.lam = lam
        self.rho = rho
        self.max_iter = max_iter
        self.tol = tol
        self.backend = backend
        self.output = output
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.time_limit = time_limit
        self.warm_start = warm_start
        self.prediction = prediction
        self.solver = solver
        self.batch_size = batch_size
        self.prox = prox

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike) -> LiftedMLPClassifier:
        """Train the network on ``(X, y)`` by block-coordinate descent.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,)
            Class labels (any hashable values: ints, strings, ...); at least two classes.

        Returns
        -------
        LiftedMLPClassifier
            The fitted estimator.

        Raises
        ------
        ValueError
            For invalid hyper-parameters, NaN/infinite or empty inputs, a single class, or
            multilabel / multi-output targets.
        KeyboardInterrupt
            When interrupted: the estimator is put back as it was before ``fit`` (its previous
            fit, or unfitted), and a note on the exception says so.
        """
        with self._keep_state_on_failure():
            self._fit(X, y)
        return self

    def _fit(self, X_in: ArrayLike, y_in: ArrayLike) -> None:
        params = self._check_params()
        if is_dask_array(X_in):  # the rows stay on the cluster: one reduction finds the classes
            self._fit_classes(*self._dask_data(X_in, y_in, params), params)
            return
        X, y = validate_data(
            self, X_in, y_in, reset=not params["warm"], dtype=params["dtype"], multi_output=True
        )
        check_classification_targets(y)
        target = type_of_target(y, input_name="y")
        if target not in ("binary", "multiclass"):
            raise ValueError(
                f"{type(self).__name__} supports binary and multiclass targets only, got a "
                f"{target!r} y of shape {np.shape(y)}; multilabel and multi-output "
                f"classification are not supported (fit one classifier per output, e.g. with "
                f"sklearn.multioutput.MultiOutputClassifier)."
            )
        y = column_or_1d(y, warn=True)
        encoder = LabelEncoder()
        codes = encoder.fit_transform(y)
        Y = np.eye(len(encoder.classes_), dtype=params["dtype"])[codes]
        self._fit_classes(X, Y, encoder.classes_, params)

    def _fit_classes(self, X: Any, Y: Any, classes: NDArray[Any], params: dict[str, Any]) -> None:
        """Train on one-hot rows ``Y`` of ``classes`` (NumPy or Dask arrays)."""
        if len(classes) < 2:
            raise ValueError(
                f"{type(self).__name__} needs samples of at least 2 classes, but y holds only "
                f"one class ({classes[0]!r})."
            )
        if params["warm"] and not np.array_equal(self.classes_, classes):
            raise ValueError(
                f"warm_start=True needs the same classes as the previous fit: "
                f"{self.classes_.tolist()} before, {classes.tolist()} now."
            )
        self._fit_network(X, Y, params["hidden"], params["warm"])
        self.classes_ = classes

    @available_if(_minibatch_only)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(
        self, X: ArrayLike, y: ArrayLike, classes: ArrayLike | None = None
    ) -> LiftedMLPClassifier:
        """Train for one mini-batch epoch over ``(X, y)``, continuing from the current fit.

        Available with ``solver="minibatch"`` and ``"auto"`` (it always trains mini-batch
        BCD). The first call (on an unfitted estimator) starts
        from a fresh initialisation and needs ``classes``, every label that any call will see;
        each later call continues from the weights and the prox schedule where the previous
        ``fit`` or ``partial_fit`` left them (``warm_start`` plays no part), and with their
        ``rho`` (``"auto"`` is resolved on the rows of the first call).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs (this piece of the data).
        y : array-like of shape (n_samples,)
            Labels, all of them in ``classes`` (or ``classes_``).
        classes : array-like of shape (n_classes,), optional
            Every class; required on the first call, optional and checked afterwards.

        Returns
        -------
        LiftedMLPClassifier
            The estimator.
        """
        with self._keep_state_on_failure():
            params = self._check_params()
            self._check_in_memory(X)
            first = not hasattr(self, "network_")
            Xc: FloatArray
            Xc, y = validate_data(self, X, y, reset=first, dtype=params["dtype"])
            check_classification_targets(y)
            if classes is not None:
                classes = np.unique(np.asarray(classes))
            if first and classes is None:
                raise ValueError("classes must be passed on the first call to partial_fit.")
            if not first and classes is not None and not np.array_equal(classes, self.classes_):
                raise ValueError(
                    f"classes={classes.tolist()} differs from classes_={self.classes_.tolist()} "
                    f"of the earlier fit."
                )
            known = self.classes_ if classes is None else classes
            if len(known) < 2:
                raise ValueError(f"classes must hold at least 2 classes, got {known.tolist()}.")
            unseen = np.setdiff1d(np.unique(y), known)
            if unseen.size:
                raise ValueError(f"y holds labels {unseen.tolist()} not in classes.")
            Y = np.eye(len(known), dtype=params["dtype"])[np.searchsorted(known, y)]
            self.classes_ = known
            self._partial_fit_rows(Xc, Y, params["hidden"])
        return self

    def predict_proba(self, X: ArrayLike) -> NDArray[np.float64]:
        """Return class probabilities: rows on the probability simplex.

        The output of the ``"simplex_xent"`` head (sparsemax of the last pre-activation, or the
        lifted output state), the softmax for ``"softmax_xent"``, and the Euclidean projection
        of the output onto the simplex for ``"squared"``.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples, n_classes)
            Non-negative rows summing to one, columns ordered as ``classes_`` (a lazy Dask
            array chunked like ``X`` when ``X`` is one).
        """
        out = self._forward(X)
        softmax = self.network_.head.name == "softmax_xent"
        if is_dask_array(out):
            return out.map_blocks(_probabilities, softmax=softmax, dtype=np.float64)
        return _probabilities(out, softmax=softmax)

    def predict(self, X: ArrayLike) -> NDArray[Any]:
        """Return the most probable class of each sample.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,)
            Labels from ``classes_`` (the arg-max of :meth:`predict_proba`); a lazy Dask array
            chunked like ``X`` when ``X`` is one.
        """
        proba = self.predict_proba(X)  # checks fitted-ness first
        if is_dask_array(proba):
            return distributed.labels_of(proba, self.classes_)
        return self.classes_[np.argmax(proba, axis=1)]

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.classifier_tags.multi_label = False
        return tags


# ---------------------------------------------------------------------------------- regressor
class LiftedMLPRegressor(ScoreOnRowsMixin, RegressorMixin, _BaseLiftedMLP):
    r"""Lifted neural-network regressor trained by block-coordinate descent.

    The network's activations are argmins of convex divergences, its hidden states are variables
    of the training problem, and every block of the block-coordinate descent (weights, hidden
    states, output) is a convex problem solved exactly (Askari et al., 2018). The loss is the
    squared error; several outputs are fitted jointly.

    Parameters
    ----------
    hidden_layer_sizes : int or sequence of int, default=(100,)
        Width of each hidden layer; ``()`` means no hidden layer.
    activation : str, Activation or sequence of them, default="relu_fenchel"
        Hidden activation: a name in :data:`cvx_lifted.ACTIVATIONS`, an activation instance, or
        one per hidden layer.
    lam : float, sequence of float or "auto", default="auto"
        :math:`\lambda > 0`, weight of each layer's divergence (a scalar, or one value per weight
        layer, ``len(hidden_layer_sizes) + 1``). ``"auto"``: 1 for every layer when full-batch
        BCD trains; 3 for the hidden layers and 1 for the output layer with mini-batch BCD
        (:func:`cvx_lifted.defaults.auto_lam`, measured on six data sets).
    rho : float, sequence of float or "auto", default="auto"
        :math:`\rho \ge 0`, squared-Frobenius penalty on each weight matrix. ``"auto"``: 1e-3,
        except with mini-batch BCD on more than 15,000 training rows, where it shrinks like
        1/rows (2.5e-4 on 60,000; :func:`cvx_lifted.defaults.auto_rho`).
    max_iter : int, default=20
        Maximum number of BCD sweeps (epochs when mini-batch BCD trains).
    tol : float, default=1e-4
        Stop when the relative objective decrease of a sweep is below ``tol``.
    backend : {"auto", "numpy", "cvxpy"}, default="auto"
        Fast NumPy kernels where they exist (``"auto"``), only those (``"numpy"``), or compiled
        CVXPY problems for every block (``"cvxpy"``; slow, for small problems).
    output : {"squared"}, default="squared"
        Output head (squared loss).
    output_activation : str or Activation, default="identity"
        Activation of the output state: ``"identity"``, or e.g. ``"relu"`` for non-negative
        targets.
    random_state : int, RandomState instance or None, default=None
        Seed of the weight initialisation; an int gives reproducible fits and the same
        initial weights as ``LiftedNetwork.fit(..., random_state=int)``; a ``RandomState``
        instance (or ``None``) provides a seed drawn from it.
    verbose : bool, default=False
        Show a progress bar with the objective.
    dtype : {"float64", "float32"}, default="float64"
        Floating type of weights and states.
    time_limit : float, optional
        Wall-time budget of a fit in seconds (checked after each sweep).
    warm_start : bool, default=False
        Start from the weights of the previous fit (same architecture) instead of a fresh
        initialisation.
    prediction : {"feedforward", "lifted"}, default="feedforward"
        Prediction rule: the feed-forward pass (paper eq. 2), or the lifted rule (paper eq. 12,
        :meth:`~cvx_lifted.network.LiftedNetwork.predict_lifted`), an iterative solve in which
        each row stops on its own test, so that a row's prediction does not depend on the rows
        predicted alongside it.
    solver : {"auto", "bcd", "minibatch"}, default="auto"
        Training algorithm: full-batch block-coordinate descent, every block an exact step and
        the objective monotone (:class:`~cvx_lifted.bcd.BCDSolver`), or mini-batch BCD
        (:class:`~cvx_lifted.minibatch.MinibatchBCDSolver`: states per batch, proximal weight
        steps; ``max_iter`` counts epochs; per batch every block decreases the batch's proximal
        objective, the full objective is not monotone), which also provides :meth:`partial_fit`.
        ``"auto"``: mini-batch BCD from 5,000 training rows in memory for a network whose
        blocks all have fast paths, full-batch BCD otherwise
        (:func:`cvx_lifted.defaults.auto_solver`; ``solver_`` says which one trained);
        :meth:`partial_fit` always trains mini-batch.
    batch_size : int, default=500
        Rows per batch of ``solver="minibatch"``.
    prox : float, default=0.006
        Weight of the proximal term :math:`\tfrac\mu2\|W - W^-\|^2` of the weight steps of
        ``solver="minibatch"`` in the first epoch, per batch: :math:`\mu` is ``prox`` times the
        number of batches of the epoch (it grows 1.3x per epoch; see
        :class:`~cvx_lifted.minibatch.MinibatchBCDSolver`, which also uses momentum 0.9).

    Attributes
    ----------
    coefs_ : list of ndarray
        ``coefs_[i]`` of shape ``(n_in, n_out)``: weights of layer ``i`` in scikit-learn's MLP
        convention (a transposed view of ``network_.weights[i]``).
    intercepts_ : list of ndarray
        ``intercepts_[i]`` of shape ``(n_out,)``.
    n_iter_ : int
        Number of BCD sweeps run by the last fit (epochs when mini-batch BCD trained, counting
        every :meth:`partial_fit` call as one).
    solver_ : {"bcd", "minibatch"}
        The training algorithm of the last fit (what ``solver="auto"`` chose).
    objective_curve_ : ndarray of shape (``n_iter_``,)
        Lifted objective after each sweep of the last fit (the objective at the initial point is
        ``history_.objective[0]``); it never increases under full-batch BCD. After mini-batch
        BCD: after each epoch, at the states of a forward pass and an exact output step on at
        most 8,192 of the rows (not comparable with full-batch values), and it may rise (a
        stochastic method).
    history_ : BCDHistory
        Objective terms, timings and residuals of every sweep of the last fit.
    converged_ : bool
        Whether the last fit stopped on ``tol``.
    stop_reason_ : str
        ``"tol"``, ``"max_iter"`` or ``"time_limit"`` (``"partial_fit"`` after
        :meth:`partial_fit`).
    network_ : LiftedNetwork
        The trained network (the source of truth for predictions).
    n_features_in_ : int
        Number of features seen during fit.
    feature_names_in_ : ndarray of shape (``n_features_in_``,)
        Feature names, when ``X`` has string column names (e.g. a DataFrame).
    n_outputs_ : int
        Number of targets.
    n_layers_ : int
        Number of layers, input and output included.

    See Also
    --------
    LiftedMLPClassifier : The classification counterpart.
    cvx_lifted.network.LiftedNetwork : The underlying model.
    sklearn.neural_network.MLPRegressor : The gradient-trained analogue.

    Notes
    -----
    Defaults come from :mod:`cvx_lifted.defaults`; with the same settings and an integer
    ``random_state`` the estimator trains the same network as a direct
    :class:`~cvx_lifted.network.LiftedNetwork` fit (see the module documentation for what
    differs by design). Neither inputs nor targets are rescaled: standardise them (e.g. with
    :class:`~sklearn.preprocessing.StandardScaler` and
    :class:`~sklearn.compose.TransformedTargetRegressor`), as for any MLP. A 1-D ``y`` gives
    1-D predictions; a column vector ``y`` is raveled with a
    :class:`~sklearn.exceptions.DataConversionWarning`, as in
    :class:`~sklearn.neural_network.MLPRegressor`. A
    :class:`~sklearn.exceptions.ConvergenceWarning` is emitted when a fit stops on ``max_iter``
    or ``time_limit``.

    Examples
    --------
    >>> import numpy as np
    >>> from cvx_lifted import LiftedMLPRegressor
    >>> rng = np.random.default_rng(0)
    >>> X = rng.uniform(-2, 2, (200, 1))
    >>> y = np.abs(X[:, 0])
    >>> reg = LiftedMLPRegressor(hidden_layer_sizes=(16,), max_iter=30, random_state=0)
    >>> reg.fit(X, y).score(X, y) > 0.9
    True
    >>> reg.predict(X[:3]).shape
    (3,)
    """

    _parameter_constraints: ClassVar[dict[str, list[Any]]] = {
        **_PARAMETER_CONSTRAINTS,
        "output": [StrOptions(set(REGRESSOR_OUTPUTS))],
        "output_activation": [str, Activation],
    }

    def __init__(
        self,
        hidden_layer_sizes: int | Sequence[int] = DEFAULT_HIDDEN_LAYER_SIZES,
        activation: ActivationSpec = DEFAULT_ACTIVATION,
        lam: float | Sequence[float] | str = DEFAULT_LAM,
        rho: float | Sequence[float] | str = DEFAULT_RHO,
        max_iter: int = DEFAULT_MAX_ITER,
        tol: float = DEFAULT_TOL,
        backend: str = DEFAULT_BACKEND,
        output: str = DEFAULT_REGRESSOR_OUTPUT,
        output_activation: str | Activation = DEFAULT_OUTPUT_ACTIVATION,
        random_state: int | np.random.RandomState | None = None,
        verbose: bool = False,
        dtype: str = DEFAULT_DTYPE,
        time_limit: float | None = None,
        warm_start: bool = False,
        prediction: str = DEFAULT_PREDICTION,
        solver: str = defaults.SOLVER,
        batch_size: int = defaults.BATCH_SIZE,
        prox: float = defaults.PROX,
    ) -> None:
        self.hidden_layer_sizes = hidden_layer_sizes
        self.activation = activation
        self.lam = lam
        self.rho = rho
        self.max_iter = max_iter
        self.tol = tol
        self.backend = backend
        self.output = output
        self.output_activation = output_activation
        self.random_state = random_state
        self.verbose = verbose
        self.dtype = dtype
        self.time_limit = time_limit
        self.warm_start = warm_start
        self.prediction = prediction
        self.solver = solver
        self.batch_size = batch_size
        self.prox = prox

    def _output_activation(self) -> str | Activation | None:
        return self.output_activation

    def _check_params(self) -> dict[str, Any]:
        params = super()._check_params()
        try:
            get_output("squared", activation=self.output_activation)
        except (ValueError, NotRepresentableError) as exc:
            raise ValueError(
                f"output_activation={self.output_activation!r} is not usable: {exc}"
            ) from exc
        return params

    @_fit_context(prefer_skip_nested_validation=True)
    def fit(self, X: ArrayLike, y: ArrayLike) -> LiftedMLPRegressor:
        """Train the network on ``(X, y)`` by block-coordinate descent.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs.
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets.

        Returns
        -------
        LiftedMLPRegressor
            The fitted estimator.

        Raises
        ------
        ValueError
            For invalid hyper-parameters or NaN/infinite, empty or mis-shaped inputs.
        KeyboardInterrupt
            When interrupted: the estimator is put back as it was before ``fit`` (its previous
            fit, or unfitted), and a note on the exception says so.
        """
        with self._keep_state_on_failure():
            self._fit(X, y)
        return self

    def _fit(self, X_in: ArrayLike, y_in: ArrayLike) -> None:
        params = self._check_params()
        if is_dask_array(X_in):  # targets chunked like X, 2-D; the rows stay on the cluster
            X, Y, _ = self._dask_data(X_in, y_in, params)
            self._fit_network(X, Y, params["hidden"], params["warm"])
            return
        y: NDArray[Any]
        X, y = validate_data(
            self,
            X_in,
            y_in,
            reset=not params["warm"],
            dtype=params["dtype"],
            multi_output=True,
            y_numeric=True,
        )
        if y.ndim == 2 and y.shape[1] == 1:
            y = column_or_1d(y, warn=True)
        Y = np.asarray(y, dtype=params["dtype"]).reshape(X.shape[0], -1)
        self._fit_network(X, Y, params["hidden"], params["warm"])

    @available_if(_minibatch_only)
    @_fit_context(prefer_skip_nested_validation=True)
    def partial_fit(self, X: ArrayLike, y: ArrayLike) -> LiftedMLPRegressor:
        """Train for one mini-batch epoch over ``(X, y)``, continuing from the current fit.

        Available with ``solver="minibatch"`` and ``"auto"`` (it always trains mini-batch
        BCD). The first call (on an unfitted estimator) starts
        from a fresh initialisation; each later call continues from the weights and the prox
        schedule where the previous ``fit`` or ``partial_fit`` left them, and with their
        ``rho`` (``"auto"`` is resolved on the rows of the first call).

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Training inputs (this piece of the data).
        y : array-like of shape (n_samples,) or (n_samples, n_outputs)
            Targets, with the number of outputs of the earlier calls.

        Returns
        -------
        LiftedMLPRegressor
            The estimator.
        """
        with self._keep_state_on_failure():
            params = self._check_params()
            self._check_in_memory(X)
            first = not hasattr(self, "network_")
            Xc: FloatArray
            Xc, y = validate_data(
                self, X, y, reset=first, dtype=params["dtype"], multi_output=True, y_numeric=True
            )
            Y = np.asarray(y, dtype=params["dtype"]).reshape(Xc.shape[0], -1)
            if not first and Y.shape[1] != self.n_outputs_:
                raise ValueError(f"y has {Y.shape[1]} outputs, the earlier fit {self.n_outputs_}.")
            self._partial_fit_rows(Xc, Y, params["hidden"])
        return self

    def predict(self, X: ArrayLike) -> FloatArray:
        """Return the network's predictions.

        Parameters
        ----------
        X : array-like of shape (n_samples, n_features)
            Inputs.

        Returns
        -------
        ndarray of shape (n_samples,) or (n_samples, n_outputs)
            1-D when the model was fitted on a single target; a lazy Dask array chunked like
            ``X`` when ``X`` is one.
        """
        out = self._forward(X)
        return out.ravel() if self.n_outputs_ == 1 else out

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.target_tags.multi_output = True
        tags.target_tags.single_output = True
        return tags
