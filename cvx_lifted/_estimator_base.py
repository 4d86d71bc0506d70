# SPDX-License-Identifier: Apache-2.0
"""The machinery the scikit-learn estimators share (:mod:`cvx_lifted.estimator`, their public home).

Parameter checks that depend on other parameters, the fit of the network by full-batch or
mini-batch BCD, ``partial_fit``'s epoch, the fitted attributes and the rollback of a fit that
does not finish.
"""

from __future__ import annotations

import contextlib
import copy
import os
import warnings
from collections.abc import Callable, Iterator
from numbers import Integral, Real
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from sklearn.base import BaseEstimator, ClassifierMixin
from sklearn.exceptions import ConvergenceWarning
from sklearn.utils import Tags, check_random_state
from sklearn.utils._param_validation import validate_parameter_constraints
from sklearn.utils.validation import check_is_fitted, validate_data

from cvx_lifted import defaults, distributed
from cvx_lifted._validation import (
    caller_stacklevel,
    check_non_negative_float,
    check_positive_float,
    check_positive_int,
)
from cvx_lifted.activations import Activation
from cvx_lifted.bcd import blas_limits
from cvx_lifted.distributed import is_dask_array
from cvx_lifted.exceptions import NotRepresentableError
from cvx_lifted.history import BCDResult
from cvx_lifted.minibatch import MinibatchBCDSolver, MinibatchState, unsupported_blocks
from cvx_lifted.modelfile import save_network
from cvx_lifted.network import LiftedNetwork
from cvx_lifted.plugins import resolve_activation

__all__: list[str] = []

FloatArray = NDArray[np.floating[Any]]


def _per_layer(value: Any, name: str, what: str) -> NDArray[Any]:
    """Return the entries of a one-dimensional array-like, or raise naming ``name``."""
    arr = np.asarray(value, dtype=object)
    if arr.ndim != 1:
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    return arr


def _check_penalty(value: Any, name: str, n: int, check: Callable[[Any, str], Any]) -> None:
    """Check one penalty weight per weight layer with ``check`` (a number is validated already)."""
    if isinstance(value, Real):
        return
    what = f"a number or a sequence of {n} numbers (one per weight layer)"
    values = _per_layer(value, name, what)
    if len(values) != n:
        raise ValueError(f"{name} must be {what}, got {value!r}.")
    for i, item in enumerate(values):
        check(item, f"{name}[{i}]")


def _check_activation(value: Any, name: str) -> None:
    """Resolve ``value`` (a name, an instance, or one per layer) or raise naming ``name``."""
    for item in [value] if isinstance(value, (str, Activation)) else value:
        try:
            resolve_activation(item)
        except (ValueError, NotRepresentableError) as exc:
            raise ValueError(f"{name}={value!r} is not usable: {exc}") from exc


def _minibatch_only(estimator: Any) -> bool:
    """``partial_fit`` exists unless ``solver="bcd"`` (scikit-learn's ``available_if``)."""
    if estimator.solver == "bcd":
        raise AttributeError(
            "partial_fit trains mini-batch BCD, so it is not available with solver='bcd'; use "
            "solver='minibatch' or 'auto'."
        )
    return True


def _is_auto(value: Any) -> bool:
    """Whether a parameter is the string ``"auto"``."""
    return isinstance(value, str) and value == "auto"


# ---------------------------------------------------------------------------------- base class


def _json_value(value: Any) -> Any:
    """Return ``value`` if JSON holds it as it is (numbers, text, lists of them), else its repr."""
    if value is None or isinstance(value, (bool, int, float, str)):
        return value
    if isinstance(value, (list, tuple)) and all(
        v is None or isinstance(v, (bool, int, float, str)) for v in value
    ):
        return list(value)
    return repr(value)


class _BaseLiftedMLP(BaseEstimator):
    """Shared machinery; subclasses define ``__init__`` (the public parameters) and targets."""

    # parameters every subclass has (declared for type checkers; set in __init__)
    hidden_layer_sizes: Any
    activation: Any
    lam: Any
    rho: Any
    max_iter: Any
    tol: Any
    backend: Any
    output: Any
    random_state: Any
    verbose: Any
    dtype: Any
    time_limit: Any
    warm_start: Any
    prediction: Any
    solver: Any
    batch_size: Any
    prox: Any

    # fitted attributes (declared for type checkers; set by fit)
    network_: LiftedNetwork
    n_features_in_: int

    def _output_activation(self) -> str | Activation | None:
        return None

    def _check_params(self) -> dict[str, Any]:
        """Check what the constraints cannot (called by ``fit``); return the normalised values.

        ``fit`` first validates every parameter against ``_parameter_constraints``; then the
        hidden widths, the per-layer penalties and the activations are checked here.
        """
        widths = self.hidden_layer_sizes  # an int means one hidden layer
        if isinstance(widths, Integral):
            hidden: tuple[int, ...] = (check_positive_int(widths, "hidden_layer_sizes"),)
        else:
            what = "a positive int or a sequence of them (one width per hidden layer)"
            hidden = tuple(
                check_positive_int(w, f"hidden_layer_sizes[{i}]")
                for i, w in enumerate(_per_layer(widths, "hidden_layer_sizes", what))
            )
        if not _is_auto(self.lam):
            _check_penalty(self.lam, "lam", len(hidden) + 1, check_positive_float)
        if not _is_auto(self.rho):
            _check_penalty(self.rho, "rho", len(hidden) + 1, check_non_negative_float)
        _check_activation(self.activation, "activation")
        # warm: continue from the previous fit (n_features_in_ and feature names are kept)
        warm = bool(self.warm_start) and hasattr(self, "network_")
        return {"hidden": hidden, "dtype": np.dtype(self.dtype), "warm": warm}

    def _dask_data(self, X: Any, y: Any, params: dict[str, Any]) -> tuple[Any, Any, Any]:
        """Return ``X``, the targets ``Y`` chunked like it, and the classes (or ``None``)."""
        n_features = self.n_features_in_ if params["warm"] else None
        classify = isinstance(self, ClassifierMixin)
        X, Y, classes = distributed.fit_rows(X, y, n_features, params["dtype"], classify)
        if not params["warm"]:  # as validate_data(reset=True) does
            self.n_features_in_ = int(X.shape[1])
            self.__dict__.pop("feature_names_in_", None)
        return X, Y, classes

    @contextlib.contextmanager
    def _keep_state_on_failure(self) -> Iterator[None]:
        """Put every attribute back as it was if ``fit`` fails or is interrupted.

        A refit that does not finish keeps the previous fit whole (or leaves the estimator
        unfitted), never a mix of old and new attributes; an interruption says so in a note.
        """
        saved = dict(self.__dict__)
        try:
            yield
        except BaseException as exc:
            self.__dict__.clear()
            self.__dict__.update(saved)
            if isinstance(exc, KeyboardInterrupt):
                state = (
                    "keeps its previous fit (n_iter_, coefs_, network_, ... are unchanged)"
                    if "network_" in saved
                    else "is not fitted"
                )
                exc.add_note(
                    f"{type(self).__name__}.fit was interrupted, so this refit did not happen: "
                    f"the estimator {state}."
                )
            raise

    def _build_network(
        self,
        n_features: int,
        n_outputs: int,
        hidden: tuple[int, ...],
        solver: str,
        n_rows: int,
        rho: Any = None,
    ) -> LiftedNetwork:
        """Return the network to train with ``solver`` on ``n_rows`` rows.

        ``lam="auto"`` follows the solver, ``rho="auto"`` the solver and ``n_rows``; an explicit
        ``rho`` overrides the estimator's (``partial_fit`` keeps its first call's).
        """
        sizes = (n_features, *hidden, n_outputs)
        output_activation = self._output_activation()
        lam = defaults.auto_lam(solver, len(hidden)) if _is_auto(self.lam) else self.lam
        if rho is None:
            rho = defaults.auto_rho(solver, n_rows) if _is_auto(self.rho) else self.rho
        try:
            return LiftedNetwork(
                sizes,
                activation=self.activation,
                output=self.output,
                output_activation=output_activation,
                lam=lam,
                rho=rho,
                dtype=np.dtype(self.dtype),
            )
        except NotRepresentableError as exc:
            raise ValueError(
                f"activation={self.activation!r} / output_activation={output_activation!r} has "
                f"no convex-program form, so it cannot be trained: {exc}"
            ) from exc

    def _training_solver(
        self, shape: tuple[int, ...], n_outputs: int, hidden: tuple[int, ...], lazy: bool
    ) -> str:
        """Return the algorithm that trains on data of ``shape`` (``solver="auto"`` resolved).

        ``lazy``: the data are a Dask array, which only full-batch BCD trains.
        """
        return self._training_plan(shape, n_outputs, hidden, lazy)[0]

    def _training_plan(
        self, shape: tuple[int, ...], n_outputs: int, hidden: tuple[int, ...], lazy: bool
    ) -> tuple[str, LiftedNetwork | None]:
        """Return :meth:`_training_solver`'s answer and the mini-batch network built to reach it.

        The network (``None`` when none was needed) is the one to train if mini-batch BCD won.
        """
        if self.solver != "auto":
            return str(self.solver), None
        possible = not lazy and self.backend != "cvxpy"  # backend="cvxpy": compiled blocks only
        solver = defaults.auto_solver(shape[0], minibatch_possible=possible)
        if solver != "minibatch":
            return solver, None
        # the rule allows mini-batch BCD: build the network to ask whether it can train it
        network = self._build_network(shape[1], n_outputs, hidden, "minibatch", shape[0])
        return ("bcd", None) if unsupported_blocks(network) else ("minibatch", network)

    def _fit_network(
        self, X: FloatArray, Y: FloatArray, hidden: tuple[int, ...], warm: bool
    ) -> None:
        """Build (or warm start) the network, train it on ``(X, Y)`` and set fitted attributes."""
        solver, network = self._training_plan(X.shape, Y.shape[1], hidden, is_dask_array(X))
        if network is None:
            network = self._build_network(X.shape[1], Y.shape[1], hidden, solver, X.shape[0])
        if warm:
            previous = self.network_
            if previous.layer_sizes != network.layer_sizes:
                raise ValueError(
                    f"warm_start=True needs the same architecture as the previous fit: layer "
                    f"sizes {list(previous.layer_sizes)} before, {list(network.layer_sizes)} "
                    f"now (hidden_layer_sizes and the number of outputs must not change). Set "
                    f"warm_start=False to train from scratch."
                )
            network.set_weights(previous.weights, previous.biases)
        self.__dict__.pop("_minibatch_state", None)
        if solver == "minibatch":  # network.fit refuses a Dask array with advice
            order = self._seed()  # the initialisation's seed also orders the rows
            result = network.fit(
                X, Y, solver="minibatch", max_iter=self.max_iter, tol=self.tol,
                time_limit=self.time_limit, verbose=bool(self.verbose), random_state=order,
                warm_start=warm, batch_size=self.batch_size, prox=self.prox,
            )  # fmt: skip
            # partial_fit goes on from here: the schedule's epoch, a shuffling stream of its own
            rng = np.random.default_rng([order, 2])
            self._minibatch_state = MinibatchState(result.history, rng, result.n_iter)
        else:
            seed = None if warm else self._seed()
            result = network.fit(
                X,
                Y,
                max_iter=self.max_iter,
                tol=self.tol,
                time_limit=self.time_limit,
                backend=self.backend,
                verbose=bool(self.verbose),
                random_state=seed,
                warm_start=warm,
            )
        self._set_fitted(network, result, int(Y.shape[1]), solver)
        rising = solver == "minibatch" and result.history.rising()  # warned about already
        if not (result.converged or rising) and result.stop_reason in ("max_iter", "time_limit"):
            limit = (
                f"max_iter={self.max_iter} {'epochs' if solver == 'minibatch' else 'sweeps'}"
                if result.stop_reason == "max_iter"
                else f"time_limit={self.time_limit} s"
            )
            warnings.warn(
                f"{type(self).__name__}: block-coordinate descent stopped at {limit} before the "
                f"relative objective decrease fell below tol={self.tol}; increase max_iter or "
                f"time_limit for a tighter fit.",
                ConvergenceWarning,
                stacklevel=caller_stacklevel(),
            )

    def _seed(self) -> int:
        """Return the seed of a new fit: an int ``random_state`` itself, else one drawn from it.

        An int seeds the initialisation directly (as ``LiftedNetwork.fit``); ``None`` or a
        ``RandomState`` provides a seed drawn from it (consumed).
        """
        if isinstance(self.random_state, Integral):
            return int(self.random_state)
        return int(check_random_state(self.random_state).randint(np.iinfo(np.int32).max))

    def _minibatch_solver(self, network: LiftedNetwork) -> MinibatchBCDSolver:
        return MinibatchBCDSolver(
            network, batch_size=self.batch_size, max_iter=self.max_iter, tol=self.tol,
            prox=self.prox, time_limit=self.time_limit, verbose=bool(self.verbose),
        )  # fmt: skip

    @staticmethod
    def _check_in_memory(X: Any) -> None:
        """Refuse a Dask array in ``partial_fit`` (it would be computed whole on the client)."""
        if is_dask_array(X):
            raise TypeError(
                "partial_fit learns from rows in memory; X is a Dask array, which it would "
                "compute whole. Pass its blocks one at a time (X.blocks[i].compute()), or use "
                "fit(X, y), which trains full-batch BCD on the cluster."
            )

    def _partial_fit_rows(self, X: FloatArray, Y: FloatArray, hidden: tuple[int, ...]) -> None:
        """One mini-batch epoch over ``(X, Y)``, from the current fit or a new network."""
        first = not hasattr(self, "network_")
        # rho="auto" follows the first call's rows; later calls keep the network's rho
        rho = None if first else self.network_.rho
        network = self._build_network(X.shape[1], Y.shape[1], hidden, "minibatch", X.shape[0], rho)
        if not first:
            if self.network_.layer_sizes != network.layer_sizes:
                raise ValueError(
                    f"partial_fit needs the architecture of the previous fit: layer sizes "
                    f"{list(self.network_.layer_sizes)} before, {list(network.layer_sizes)} now."
                )
            network.set_weights(self.network_.weights, self.network_.biases)
        solver = self._minibatch_solver(network)
        state = copy.deepcopy(getattr(self, "_minibatch_state", None))
        with blas_limits(solver.blas_threads, X.shape[0], network.layer_sizes):
            if state is None:  # the first call, or the first after a fit with solver="bcd"
                state = solver.init(X, Y, random_state=self._seed(), warm_start=not first)
            solver.update(state, X, Y)
        network.history = state.history
        self._minibatch_state = state
        result = BCDResult(
            network, state.states[1:], state.history, state.epoch, False, "partial_fit"
        )
        self._set_fitted(network, result, int(Y.shape[1]), "minibatch")

    def _set_fitted(
        self, network: LiftedNetwork, result: BCDResult, n_outputs: int, solver: str
    ) -> None:
        self.network_ = network
        self.solver_ = solver
        self.coefs_ = [W.T for W in network.weights]
        self.intercepts_ = list(network.biases)
        self.n_iter_ = int(result.n_iter)
        self.objective_curve_ = np.asarray(result.history.objective[1:], dtype=np.float64)
        self.history_ = result.history
        self.converged_ = bool(result.converged)
        self.stop_reason_ = result.stop_reason
        self.n_layers_ = len(network.layer_sizes)
        self.n_outputs_ = n_outputs

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save the fitted model to a model file, with what the estimator adds to its network.

        The file holds :attr:`network_` (as :meth:`LiftedNetwork.save
        <cvx_lifted.network.LiftedNetwork.save>` writes it) and, as metadata, the task, the class
        labels of a classifier (``classes_``), the feature names when the estimator was fitted
        on a table with column names, and the estimator's parameters (those JSON can hold; the
        others as their ``repr``). ``cvx-lifted predict`` then prints the original labels;
        :func:`cvx_lifted.io.load_model` gives the network and this metadata back (``.network``,
        ``.extra``), :func:`cvx_lifted.load` the network alone.

        Parameters
        ----------
        path : str or os.PathLike
            Destination; ``.cvxl`` is appended when the name has no extension.

        Returns
        -------
        pathlib.Path
            The file written.

        Raises
        ------
        sklearn.exceptions.NotFittedError
            If the estimator has not been fitted.
        """
        check_is_fitted(self, "network_")
        classes = getattr(self, "classes_", None)
        extra: dict[str, Any] = {
            "task": "regress" if classes is None else "classify",
            "estimator": {
                "class": type(self).__name__,
                "params": {k: _json_value(v) for k, v in self.get_params().items()},
            },
            "n_features": int(self.n_features_in_),
        }
        if classes is not None:
            extra["classes"] = np.asarray(classes).tolist()
        names = getattr(self, "feature_names_in_", None)
        if names is not None:
            extra["feature_names"] = [str(n) for n in names]
        return save_network(self.network_, path, extra=extra)

    def _forward(self, X: ArrayLike) -> Any:
        """Validate ``X`` against the fit and return the network's output (2-D)."""
        check_is_fitted(self, "network_")
        validate_parameter_constraints(
            {"prediction": self._parameter_constraints["prediction"]},
            {"prediction": self.prediction},
            caller_name=type(self).__name__,
        )
        if is_dask_array(X):  # a lazy Dask array chunked like X (feed-forward only)
            return distributed.predict_rows(self.network_, X, prediction=self.prediction)
        Xc = validate_data(self, X, reset=False, dtype=self.network_.dtype)
        if self.prediction == "lifted":
            return np.asarray(self.network_.predict_lifted(Xc, backend=self.backend))
        return self.network_.predict(Xc)

    def __sklearn_tags__(self) -> Tags:
        tags = super().__sklearn_tags__()
        tags.input_tags.sparse = False
        tags.input_tags.allow_nan = False
        tags.non_deterministic = False
        return tags
