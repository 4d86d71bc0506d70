# SPDX-License-Identifier: Apache-2.0
r"""The lifted network: architecture, weights, feed-forward rule, objective, lifted rule.

Rows are samples. With input :math:`X_0 = X \in \mathbb R^{m\times n}`, layer :math:`l` computes
the pre-activation :math:`U_l = X_l W_l^\top + 1 b_l^\top` and the network's states are the
variables :math:`X_1, \dots, X_L` (hidden) and, for heads with an output state,
:math:`X_{L+1}`. The lifted training problem (paper eq. 10, in this package's scaling) is

.. math::

    \min_{W, b, X}\ \frac1m\Big[\mathcal L(Y, X_{L+1})
        + \sum_{l=0}^{L} \lambda_{l+1} D_l(U_l, X_{l+1})\Big]
        + \sum_{l=0}^{L} \rho_l\,\pi(W_l), \qquad \pi(W) = \tfrac12\|W\|_F^2 \text{ by default}.

The data terms are averaged over samples, so :math:`\lambda` and :math:`\rho` do not depend on
:math:`m`; biases are not penalised. By the rescaling argument of §3
(:math:`X_l \to \sqrt{\lambda_l} X_l`, :math:`W_l \to \sqrt{\lambda_{l+1}/\lambda_l} W_l`, with the
:math:`\rho_l` adjusted), equal :math:`\lambda` for all layers loses no generality for
positively homogeneous activations such as ReLU; a scalar ``lam`` broadcasts.

``lam[l]`` (0-based) multiplies :math:`D_l`, the divergence of layer :math:`l`; it is the paper's
:math:`\lambda_{l+1}`.
"""

from __future__ import annotations

import copy
import numbers
import os
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal, overload

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted import defaults, distributed, modelfile
from cvx_lifted._modelschema import bad_file
from cvx_lifted._validation import caller_stacklevel, check_array, check_seed, max_magnitude
from cvx_lifted.activations import Activation, get_activation
from cvx_lifted.activations.base import require_program
from cvx_lifted.bcd import BCDSolver
from cvx_lifted.distributed import DaskBCDSolver, is_dask_array
from cvx_lifted.history import BCDHistory, BCDResult
from cvx_lifted.losses import OutputHead, get_output
from cvx_lifted.minibatch import MinibatchBCDSolver
from cvx_lifted.plugins import activation_module, resolve_activation, resolve_activations
from cvx_lifted.predict import lifted_predict

__all__ = [
    "LiftedNetwork",
    "SavedModel",
    "check_array",
    "load_model",
    "load_network",
    "max_magnitude",
    "resolve_activation",
]

FloatArray = NDArray[np.floating[Any]]


def _per_layer(value: float | Sequence[float], n: int, name: str, *, positive: bool) -> np.ndarray:
    try:
        arr = np.atleast_1d(np.asarray(value, dtype=np.float64))
    except (TypeError, ValueError):
        raise ValueError(
            f"{name} must be a number or a sequence of {n} numbers (one per weight layer), "
            f"got {value!r}."
        ) from None
    if arr.ndim != 1 or arr.size not in (1, n):
        raise ValueError(f"{name} must be a scalar or a sequence of {n} values, got {value!r}.")
    arr = np.broadcast_to(arr, (n,)).copy()
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {value!r}.")
    if positive and np.any(arr <= 0):
        raise ValueError(f"{name} must be > 0 (a penalty weight), got {value!r}.")
    if not positive and np.any(arr < 0):
        raise ValueError(f"{name} must be >= 0, got {value!r}.")
    return arr


def _same_arrays(a: Sequence[np.ndarray], b: Sequence[np.ndarray]) -> bool:
    return len(a) == len(b) and all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))


def _check_layer_sizes(layer_sizes: Any) -> tuple[int, ...]:
    """Return ``layer_sizes`` as a tuple of positive ints; a ValueError names a bad entry."""
    example = "e.g. (64, 100, 10) for 64 inputs, one hidden layer of 100 and 10 outputs"
    if isinstance(layer_sizes, (str, bytes)) or not isinstance(layer_sizes, (Sequence, np.ndarray)):
        raise ValueError(
            f"layer_sizes must be a sequence of positive integers (inputs, hidden..., outputs), "
            f"{example}; got {layer_sizes!r}."
        )
    sizes = list(layer_sizes)
    if len(sizes) < 2:
        raise ValueError(
            f"layer_sizes must list at least two positive integers (inputs, ..., outputs), "
            f"{example}; got {layer_sizes!r}."
        )
    out = []
    for i, s in enumerate(sizes):
        integral = isinstance(s, numbers.Integral) and not isinstance(s, (bool, np.bool_))
        if not integral and isinstance(s, numbers.Real) and not isinstance(s, (bool, np.bool_)):
            integral = float(s).is_integer()
        if not integral or s < 1:
            raise ValueError(
                f"layer_sizes[{i}] is {s!r} ({type(s).__name__}); every entry of layer_sizes "
                f"must be a positive integer, {example}."
            )
        out.append(int(s))
    return tuple(out)


class LiftedNetwork:
    r"""A feed-forward network whose activations are argmins of convex divergences.

    Parameters
    ----------
    layer_sizes : sequence of int
        ``(n_inputs, h_1, ..., h_L, n_outputs)``; ``L = 0`` hidden layers is allowed.
    activation : str, Activation or sequence, default="relu_fenchel"
        Hidden activation(s): one for every hidden layer, or one per hidden layer. Catalogue
        names, instances, registered custom activations and activations of installed packages
        (entry-point group ``cvx_lifted.activations``, see :mod:`cvx_lifted.plugins`) are
        accepted. The default, like every default here, comes from :mod:`cvx_lifted.defaults`.
    output : str or OutputHead, default="squared"
        ``"squared"`` (regression, identity output), ``"simplex_xent"`` (cross-entropy with the
        output state on the simplex, eq. 15) or ``"softmax_xent"`` (eq. 11, no output state).
    output_activation : str or Activation, optional
        Output activation of the ``"squared"`` head (default identity; ``"relu"`` for
        non-negative targets).
    lam : float or sequence, default=1.0
        :math:`\lambda_{l+1} > 0` weighting the divergence of each layer ``l = 0..L``.
    rho : float or sequence, default=1e-3
        :math:`\rho_l \ge 0`, weight of the penalty on each weight matrix.
    dtype : {numpy.float64, numpy.float32}, default=numpy.float64
        Floating type of weights and states.
    penalty : {"l2", "l1"} or callable, default="l2"
        :math:`\pi(W)`: ``"l2"`` is :math:`\tfrac12\|W\|_F^2` (ridge weight steps, fast path);
        ``"l1"`` is :math:`\sum|W_{ij}|`; a callable ``W -> cvxpy.Expression`` (convex in the
        variable ``W``) gives any other convex penalty. Penalties other than ``"l2"`` make every
        weight step a compiled CVXPY problem (paper eq. 3: "penalty functions which can be used
        to encode convex constraints, network structure, etc.").

    Attributes
    ----------
    weights : list of numpy.ndarray
        ``W_l`` of shape ``(layer_sizes[l+1], layer_sizes[l])``.
    biases : list of numpy.ndarray
        ``b_l`` of shape ``(layer_sizes[l+1],)``.
    history : BCDHistory or None
        Training history of the last :meth:`fit`.

    Notes
    -----
    Defaults (activation, ``lam``, ``rho``, penalty, and in :meth:`fit` the sweeps, ``tol`` and
    backend) come from :mod:`cvx_lifted.defaults`, shared with the estimators and the command
    line. Differences by design:

    * The default head is ``"squared"`` (this class takes a target matrix ``Y`` and does not
      know whether it holds classes); :class:`~cvx_lifted.estimator.LiftedMLPClassifier` encodes
      labels as one-hot rows and uses ``"simplex_xent"``.
    * Neither this class nor the estimators rescale inputs; ``cvx-lifted train`` standardises
      the features of CSV/NPZ files (and regression targets) for training and folds the scaling
      back into the saved weights, so it trains on differently scaled data than a direct call.
    * With an integer ``random_state``, ``fit(X, Y, random_state=k)`` and an estimator with
      ``random_state=k`` start from the same weights and give the same network (the digits
      split of the README: 0.978 test accuracy for both).

    Examples
    --------
    >>> import numpy as np
    >>> from cvx_lifted import LiftedNetwork
    >>> rng = np.random.default_rng(0)
    >>> X = rng.standard_normal((50, 3)); Y = np.maximum(X @ [[1.0], [-1.0], [0.5]], 0)
    >>> net = LiftedNetwork([3, 8, 1], activation="relu", lam=1.0, rho=1e-3)
    >>> result = net.fit(X, Y, max_iter=5, random_state=0)
    >>> net.predict(X).shape
    (50, 1)
    """

    def __init__(
        self,
        layer_sizes: Sequence[int],
        activation: str | Activation | Sequence[str | Activation] = defaults.ACTIVATION,
        output: str | OutputHead = defaults.REGRESSOR_HEAD,
        output_activation: str | Activation | None = None,
        lam: float | Sequence[float] = defaults.LAM,
        rho: float | Sequence[float] = defaults.RHO,
        dtype: Any = np.float64,
        penalty: str | Callable[[Any], Any] = defaults.PENALTY,
    ) -> None:
        self.layer_sizes = _check_layer_sizes(layer_sizes)
        n_hidden = len(self.layer_sizes) - 2
        acts = resolve_activations(activation, n_hidden)
        if isinstance(output_activation, str):
            output_activation = resolve_activation(output_activation)
        if output_activation is not None:
            if output != "squared":
                raise ValueError("output_activation applies to output='squared' only.")
            head = get_output("squared", activation=output_activation)
        else:
            head = get_output(output)
        for i, act in enumerate([*acts, head.activation]):
            if act is None:
                continue
            require_program(act)  # NotRepresentableError with the reason
            width = self.layer_sizes[i + 1]
            if act.output_size(width) != width:
                raise ValueError(
                    f"activation {act!r} changes the width ({width} -> {act.output_size(width)}); "
                    f"pooling layers are not supported in LiftedNetwork."
                )
            if act.convexity == "z-only":
                raise ValueError(
                    f"activation {act!r} is convex in z but not (certifiably) in u, so its weight "
                    f"step is not a convex problem; it cannot be trained by BCD."
                )
        if head.classification and self.layer_sizes[-1] < 2:
            raise ValueError(
                f"output={head.name!r} needs one output per class, at least 2; with "
                f"layer_sizes[-1] = 1 its probabilities are always 1 and the loss 0. Use 2 "
                f"outputs for two classes, or output='squared' for one target."
            )
        self.activations: list[Activation] = acts
        self.head: OutputHead = head
        n_layers = n_hidden + 1
        self.lam = _per_layer(lam, n_layers, "lam", positive=True)
        self.rho = _per_layer(rho, n_layers, "rho", positive=False)
        if not (penalty in ("l2", "l1") or callable(penalty)):
            raise ValueError(
                f"penalty must be 'l2', 'l1' or a callable W -> cvxpy expression, got {penalty!r}."
            )
        self.penalty = penalty
        self.dtype = np.dtype(dtype)
        if self.dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {self.dtype}.")
        self.weights: list[FloatArray] = []
        self.biases: list[FloatArray] = []
        self.history: Any = None

    # ------------------------------------------------------------------ structure
    @property
    def n_hidden(self) -> int:
        """Number of hidden layers :math:`L`."""
        return len(self.layer_sizes) - 2

    @property
    def n_layers(self) -> int:
        """Number of weight layers :math:`L + 1`."""
        return len(self.layer_sizes) - 1

    def divergence_of(self, layer: int) -> Activation | None:
        """Return the activation whose divergence ties layer ``layer`` to the next state.

        ``None`` for the last layer of a ``softmax_xent`` network (the loss acts directly).
        """
        if not 0 <= layer < self.n_layers:
            raise IndexError(f"layer must be in 0..{self.n_layers - 1}, got {layer}.")
        return self.activations[layer] if layer < self.n_hidden else self.head.activation

    @property
    def is_fitted(self) -> bool:
        """Whether weights are set."""
        return len(self.weights) == self.n_layers

    def _check_fitted(self) -> None:
        if not self.is_fitted:
            raise RuntimeError(
                "this LiftedNetwork has no weights yet: call fit(X, Y) or initialize() first."
            )

    def initialize(self, random_state: int | np.random.Generator | None = None) -> LiftedNetwork:
        """Set Xavier (Glorot) uniform weights and zero biases.

        Parameters
        ----------
        random_state : int or numpy.random.Generator, optional
            Seed for reproducible weights.

        Returns
        -------
        LiftedNetwork
            ``self``.
        """
        rng = np.random.default_rng(check_seed(random_state))
        self.weights, self.biases = [], []
        for fan_in, fan_out in zip(self.layer_sizes[:-1], self.layer_sizes[1:], strict=True):
            limit = np.sqrt(6.0 / (fan_in + fan_out))
            self.weights.append(rng.uniform(-limit, limit, (fan_out, fan_in)).astype(self.dtype))
            self.biases.append(np.zeros(fan_out, dtype=self.dtype))
        return self

    def set_weights(self, weights: Sequence[ArrayLike], biases: Sequence[ArrayLike]) -> None:
        """Set all weights and biases, checking shapes and finiteness.

        Parameters
        ----------
        weights : sequence of array_like
            ``W_l`` of shape ``(layer_sizes[l+1], layer_sizes[l])`` (PyTorch tensors too; see
            also :func:`cvx_lifted.interop.torch.from_torch`).
        biases : sequence of array_like
            ``b_l`` of shape ``(layer_sizes[l+1],)``.
        """
        if len(weights) != self.n_layers or len(biases) != self.n_layers:
            raise ValueError(f"expected {self.n_layers} weight matrices and bias vectors.")
        Ws, bs = [], []
        for i, (W, b) in enumerate(zip(weights, biases, strict=True)):
            W, b = (x.detach().cpu().numpy() if hasattr(x, "detach") else x for x in (W, b))
            W = np.asarray(W, dtype=self.dtype)
            b = np.asarray(b, dtype=self.dtype)
            shape = (self.layer_sizes[i + 1], self.layer_sizes[i])
            if W.shape != shape or b.shape != (shape[0],):
                raise ValueError(
                    f"layer {i}: expected W of shape {shape} and b of shape ({shape[0]},), "
                    f"got {W.shape} and {b.shape}."
                )
            if not (np.all(np.isfinite(W)) and np.all(np.isfinite(b))):
                raise ValueError(f"layer {i}: weights contain NaN or infinity.")
            Ws.append(W.copy())
            bs.append(b.copy())
        self.weights, self.biases = Ws, bs

    # ------------------------------------------------------------------ feed-forward
    def preactivation(self, layer: int, X_layer: FloatArray) -> FloatArray:
        r"""Return :math:`U_l = X_l W_l^\top + 1 b_l^\top` for layer ``layer``."""
        return X_layer @ self.weights[layer].T + self.biases[layer]

    def forward(self, X: ArrayLike) -> list[FloatArray]:
        r"""Run the feed-forward rule (paper eq. 2) and return every state.

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)

        Returns
        -------
        list of numpy.ndarray
            ``[X_1, ..., X_L, output]``: hidden states :math:`\phi_l(U_l)` and the head's
            output (its activation of :math:`U_L`, or the softmax for ``softmax_xent``).
        """
        self._check_fitted()
        if is_dask_array(X):
            raise TypeError(
                "forward() returns every state in memory; for a Dask array use predict(X), "
                "which returns a Dask array."
            )
        Xl = check_array(X, n_features=self.layer_sizes[0], dtype=self.dtype)
        states = []
        for layer, act in enumerate(self.activations):
            Xl = act.act(self.preactivation(layer, Xl)).astype(self.dtype, copy=False)
            states.append(Xl)
        states.append(self.head.predict(self.preactivation(self.n_hidden, Xl)))
        return states

    def predict(self, X: ArrayLike) -> FloatArray:
        """Return the feed-forward output (regression values or class probabilities).

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)

        Returns
        -------
        numpy.ndarray, shape (m, n_outputs)
            A (lazy) :class:`dask.array.Array` chunked like ``X`` when ``X`` is one.
        """
        if is_dask_array(X):
            self._check_fitted()
            return distributed.predict(self, X)  # type: ignore[no-any-return]
        return self.forward(X)[-1]

    def predict_lifted(
        self,
        X: ArrayLike,
        *,
        backend: str = "auto",
        tol: float = 1e-8,
        max_iter: int = 200,
        return_states: bool = False,
    ) -> FloatArray | tuple[FloatArray, list[FloatArray]]:
        r"""Return the lifted prediction (paper eq. 12): minimise the penalties over the states.

        With the weights fixed and the output free (so the loss vanishes), the states of the
        test points minimise :math:`\sum_l \lambda_{l+1} D_l(U_l, X_{l+1})`. For jointly convex
        networks this is a convex problem; it is solved by cycling exact state steps (the same
        blocks as training), started from the feed-forward states. When every divergence vanishes
        at its activation (Fenchel--Young hidden layers with an identity ``squared`` head or the
        ``softmax_xent`` head) it reproduces the feed-forward rule; the ``simplex_xent`` head's
        sparsemax divergence :math:`\tfrac12\|z-u\|^2` does not vanish off the simplex, so the
        last hidden state moves. For the ``softmax_xent`` head the output is the softmax of the
        last pre-activation.

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)
        backend : {"auto", "numpy", "cvxpy"}, default="auto"
            Which path solves the state steps.
        tol : float, default=1e-8
            Stop when the relative decrease of the penalty is below ``tol``.
        max_iter : int, default=200
            Maximum number of cycles over the layers.
        return_states : bool, default=False
            Also return the optimal states.

        Returns
        -------
        numpy.ndarray or (numpy.ndarray, list of numpy.ndarray)
        """
        if backend not in ("auto", "numpy", "cvxpy"):
            raise ValueError(f"backend must be 'auto', 'numpy' or 'cvxpy', got {backend!r}.")
        if not isinstance(max_iter, numbers.Integral) or isinstance(max_iter, bool) or max_iter < 1:
            raise ValueError(
                f"max_iter must be a positive integer (cycles over the layers), got {max_iter!r}."
            )
        if not isinstance(tol, numbers.Real) or not (np.isfinite(tol) and tol >= 0):
            raise ValueError(f"tol must be a finite number >= 0, got {tol!r}.")
        self._check_fitted()
        Xc = check_array(X, n_features=self.layer_sizes[0], dtype=self.dtype)
        out, states = lifted_predict(self, Xc, backend=backend, tol=tol, max_iter=max_iter)
        return (out, states) if return_states else out

    # ------------------------------------------------------------------ objective
    @overload
    def objective(
        self,
        X: ArrayLike,
        Y: ArrayLike,
        states: Sequence[ArrayLike],
        *,
        terms: Literal[False] = False,
    ) -> float: ...

    @overload
    def objective(
        self, X: ArrayLike, Y: ArrayLike, states: Sequence[ArrayLike], *, terms: Literal[True]
    ) -> dict[str, float]: ...

    @overload
    def objective(
        self, X: ArrayLike, Y: ArrayLike, states: Sequence[ArrayLike], *, terms: bool
    ) -> float | dict[str, float]: ...

    def objective(
        self, X: ArrayLike, Y: ArrayLike, states: Sequence[ArrayLike], *, terms: bool = False
    ) -> float | dict[str, float]:
        r"""Evaluate the lifted training objective at the current weights and given states.

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)
            Inputs :math:`X_0`.
        Y : array_like, shape (m, n_outputs)
            Targets (one-hot rows for classification heads).
        states : sequence of array_like
            ``[X_1, ..., X_L]`` plus :math:`X_{L+1}` for heads with an output state.
        terms : bool, default=False
            Return every term: ``"loss"``, ``"divergence_<l>"`` (already multiplied by
            :math:`\lambda` and divided by :math:`m`), ``"penalty"`` and ``"total"``.

        Returns
        -------
        float or dict of str to float
            ``inf`` for a divergence whose states leave its domain (and for the total): the
            divergence is :math:`+\infty` there.

        Raises
        ------
        ValueError
            Naming the argument, for shapes that do not fit the network or non-finite values.
        """
        self._check_fitted()
        X0 = check_array(X, n_features=self.layer_sizes[0], dtype=self.dtype)
        m, sizes = X0.shape[0], self.layer_sizes
        n_states = self.n_hidden + int(self.head.has_state)
        if len(states) != n_states:
            raise ValueError(
                f"states must hold {n_states} arrays (X_1, ..., X_{n_states}), got {len(states)}."
            )
        Xs: list[FloatArray] = [X0]
        for i, (state, width) in enumerate(zip(states, sizes[1:], strict=False)):
            Xs.append(check_array(state, f"states[{i}]", n_features=width, dtype=np.float64))
        Ymat = check_array(Y, "Y", n_features=sizes[-1], dtype=np.float64)
        self.head.check_targets(Ymat, warn=False)
        for name, arr in [*((f"states[{i}]", A) for i, A in enumerate(Xs[1:])), ("Y", Ymat)]:
            if arr.shape[0] != m:
                raise ValueError(f"{name} has {arr.shape[0]} rows, X has {m}; one row per sample.")
        images = {layer: self.preactivation(layer, Xs[layer]) for layer in range(self.n_layers)}
        out = self.objective_terms(Xs, Ymat, images)
        tol = float(np.sqrt(np.finfo(self.dtype).eps))
        for layer, U in images.items():
            act = self.divergence_of(layer)
            if act is not None and act.domain_violation(U, Xs[layer + 1]) > tol:
                out[f"divergence_{layer}"] = out["total"] = np.inf
        if not np.isfinite(out["loss"]) and np.isinf(out["total"]):  # log of a negative entry
            out["loss"] = np.inf
        return out if terms else out["total"]

    def objective_terms(
        self,
        Xs: Sequence[Any],
        Y: Any,
        images: dict[int, Any] | None = None,
    ) -> dict[str, float]:
        r"""Return the terms of :meth:`objective` at checked arrays, in passes over row chunks.

        Every term is a sum over rows, so it is accumulated over chunks of about 2 MB: no
        temporary of the size of a layer (whose allocation alone, page faults included, costs
        more than the arithmetic on 60,000 rows).

        Parameters
        ----------
        Xs : sequence of ndarray
            ``[X_0, X_1, ..., X_L]`` plus :math:`X_{L+1}` for heads with an output state.
        Y : ndarray, shape (m, n_outputs)
            Targets.
        images : dict of int to ndarray, optional
            Pre-activations :math:`U_l` already at hand (layer index to array), used instead of
            recomputing :math:`X_l W_l^\top + \mathbf 1 b_l^\top`.

        Returns
        -------
        dict of str to float
            As :meth:`objective` with ``terms=True``.
        """
        images = images or {}
        m = Xs[0].shape[0]
        out: dict[str, float] = {}
        for layer in range(self.n_layers):
            act = self.divergence_of(layer)
            if act is None:
                continue

            def divergence(rows: slice, layer: int = layer, act: Activation = act) -> float:
                U = self._image_rows(layer, Xs[layer], images, rows)
                return act.value(U, Xs[layer + 1][rows])

            total = _row_chunk_sum(divergence, m, Xs[layer + 1].shape[1])
            out[f"divergence_{layer}"] = self.lam[layer] * total / m
        L = self.n_hidden
        if self.head.has_state:
            loss = _row_chunk_sum(lambda rows: self.head.loss(Y[rows], Xs[-1][rows]), m, Y.shape[1])
        else:
            loss = _row_chunk_sum(
                lambda rows: self.head.loss(Y[rows], self._image_rows(L, Xs[L], images, rows)),
                m,
                Y.shape[1],
            )
        out["loss"] = loss / m
        out["penalty"] = self.penalty_total()
        out["total"] = float(sum(out.values()))
        return out

    def _image_rows(self, layer: int, X_layer: Any, images: dict[int, Any], rows: slice) -> Any:
        U = images.get(layer)
        return U[rows] if U is not None else self.preactivation(layer, X_layer[rows])

    def penalty_total(self) -> float:
        r"""Return the objective's penalty term :math:`\sum_l \rho_l \pi(W_l)` at the weights."""
        return float(
            sum(r * self.penalty_value(W) for r, W in zip(self.rho, self.weights, strict=True))
        )

    def penalty_value(self, W: ArrayLike) -> float:
        r"""Evaluate the weight penalty :math:`\pi(W)` (without the factor :math:`\rho`)."""
        W = np.asarray(W, dtype=np.float64)
        if self.penalty == "l2":
            return 0.5 * float(np.vdot(W, W))
        if self.penalty == "l1":
            return float(np.abs(W).sum())
        import cvxpy as cp

        value = self.penalty_expr(cp.Constant(W)).value
        return float("inf") if value is None else float(value)

    def penalty_expr(self, W: Any) -> Any:
        r"""Return :math:`\pi(W)` as a CVXPY expression of ``W``."""
        import cvxpy as cp

        if self.penalty == "l2":
            return 0.5 * cp.sum_squares(W)
        if self.penalty == "l1":
            return cp.sum(cp.abs(W))
        expr = self.penalty(W)  # type: ignore[operator]
        if not isinstance(expr, cp.Expression) or expr.size != 1:
            raise ValueError("a penalty callable must return a scalar CVXPY expression of W.")
        return expr

    # ------------------------------------------------------------------ training
    def fit(self, X: ArrayLike, Y: ArrayLike, **options: Any) -> BCDResult:
        """Train by block-coordinate descent (see :class:`cvx_lifted.bcd.BCDSolver`).

        Parameters
        ----------
        X : array_like, shape (m, n_inputs)
            Inputs.
        Y : array_like, shape (m, n_outputs)
            Targets (one-hot rows for classification heads).
        **options
            ``solver``: ``"bcd"`` (default; the estimators' ``solver="auto"`` may choose
            either), full-batch
            block-coordinate descent (:class:`~cvx_lifted.bcd.BCDSolver`; on Dask arrays
            :class:`~cvx_lifted.distributed.DaskBCDSolver`), whose every block decreases the
            objective; or ``"minibatch"``, mini-batch BCD
            (:class:`~cvx_lifted.minibatch.MinibatchBCDSolver`, ``max_iter`` counts epochs, a
            stochastic method: see its guarantees). The other options are passed to the solver
            (``max_iter``, ``tol``, ``backend``, ``random_state``, ``verbose``, ``callback``,
            ...); ``max_iter`` and ``tol`` default to :data:`cvx_lifted.defaults.SWEEPS` and
            ``TOL``, and ``backend`` (``"bcd"`` only) to ``BACKEND``.

        Returns
        -------
        BCDResult

        Raises
        ------
        KeyboardInterrupt
            When training is interrupted (Ctrl-C), and likewise for any error raised during a
            sweep: the network is first put back to the weights, biases and history of the last
            complete sweep, or -- when no sweep completed -- to the weights it had before
            ``fit()``, or to no weights at all when it had none (``is_fitted`` is then
            ``False``), so that a half-updated network is never left behind to be saved. A note
            on the exception says which.
        """
        random_state = options.pop("random_state", None)
        warm_start = options.pop("warm_start", False)
        user_callback = options.pop("callback", None)
        solver_name = options.pop("solver", "bcd")
        if solver_name not in ("bcd", "minibatch"):
            raise ValueError(f"solver must be 'bcd' or 'minibatch', got {solver_name!r}.")
        options.setdefault("max_iter", defaults.SWEEPS)
        options.setdefault("tol", defaults.TOL)
        if solver_name == "bcd":
            options.setdefault("backend", defaults.BACKEND)
        # the states to go back to if a sweep does not complete: the network before fit(), and
        # the last complete sweep of this fit: (sweep, weights, biases, history)
        before: tuple[int, list[FloatArray], list[FloatArray], Any] | None = None
        if self.is_fitted:
            weights = [W.copy() for W in self.weights]
            before = (0, weights, [b.copy() for b in self.biases], self.history)
        last: tuple[int, list[FloatArray], list[FloatArray], Any] | None = None

        def snapshot(sweep: int, partial: BCDResult) -> bool | None:
            nonlocal last
            weights = [W.copy() for W in self.weights]
            biases = [b.copy() for b in self.biases]
            last = (sweep, weights, biases, copy.deepcopy(partial.history))
            return user_callback(sweep, partial) if user_callback is not None else None

        solver_type: type[BCDSolver] | type[MinibatchBCDSolver] = BCDSolver
        if solver_name == "minibatch":
            if is_dask_array(X):
                raise ValueError(
                    "solver='minibatch' trains in memory; X is a Dask array. Use solver='bcd' "
                    "(data-parallel on the cluster), or pass NumPy arrays."
                )
            solver_type = MinibatchBCDSolver
        elif is_dask_array(X):  # rows on a cluster: the same sweep, data-parallel
            solver_type = DaskBCDSolver
        elif "scheduler" in options or "persist" in options:
            raise TypeError(
                "scheduler and persist apply to Dask inputs only; X is "
                f"{type(X).__name__}. Pass X as a row-chunked dask.array.Array to train on a "
                "cluster."
            )
        solver = solver_type(self, callback=snapshot, **options)
        try:
            return solver.run(X, Y, random_state=random_state, warm_start=warm_start)
        except BaseException as exc:
            if last is not None:
                sweep, self.weights, self.biases, self.history = last
                exc.add_note(
                    f"LiftedNetwork.fit stopped during sweep {sweep + 1}; the network holds "
                    f"the weights of sweep {sweep}, the last complete one."
                )
            elif before is not None:
                touched = not _same_arrays(before[1] + before[2], self.weights + self.biases)
                _, self.weights, self.biases, self.history = before
                if touched:
                    exc.add_note(
                        "LiftedNetwork.fit stopped before its first sweep completed; the network "
                        "keeps the weights it had before fit()."
                    )
            elif self.weights or self.biases:
                self.weights, self.biases, self.history = [], [], None
                exc.add_note(
                    "LiftedNetwork.fit stopped before its first sweep completed; the network "
                    "has no weights (is_fitted is False)."
                )
            raise

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Save architecture, weights and history to a model file (no pickle; atomic write).

        Parameters
        ----------
        path : str or os.PathLike
            Destination file.

        Returns
        -------
        pathlib.Path
            The path written.
        """
        return modelfile.save_network(self, path)

    def describe(self) -> dict[str, Any]:
        """Return the architecture as plain data (used by model files and ``repr``).

        Returns
        -------
        dict
            ``layer_sizes``, ``activations`` and ``output`` (registry names and parameters),
            ``lam``, ``rho``, ``penalty``, ``dtype``, and -- when the network uses activations
            that are not built in -- ``modules``: the module that defines each of them, so that
            a model file can say what to import before loading it.
        """
        out: dict[str, Any] = {
            "layer_sizes": list(self.layer_sizes),
            "activations": [{"name": a.name, "params": a.params} for a in self.activations],
            "output": {"name": self.head.name, "params": self.head.params},
            "lam": self.lam.tolist(),
            "rho": self.rho.tolist(),
            "penalty": self.penalty if isinstance(self.penalty, str) else "custom",
            "dtype": self.dtype.name,
        }
        modules = {}
        for act in [*self.activations, self.head.activation]:
            module = activation_module(act) if act is not None else None
            if module is not None:
                modules[act.name] = module  # type: ignore[union-attr]
        if modules:
            out["modules"] = modules
        return out

    def __repr__(self) -> str:
        acts = ", ".join(repr(a) for a in self.activations) or "-"
        penalty = self.penalty if isinstance(self.penalty, str) else "custom"
        return (
            f"LiftedNetwork({list(self.layer_sizes)}, activations=[{acts}], "
            f"output={self.head!r}, lam={self.lam.tolist()}, rho={self.rho.tolist()}, "
            f"penalty={penalty!r}, dtype={self.dtype.name!r})"
        )


# ------------------------------------------------------------------------------------------
# Loading model files (the file format, its checks and saving live in cvx_lifted.modelfile)
# ------------------------------------------------------------------------------------------
@dataclass
class SavedModel:
    """A model file as loaded by :func:`load_model`.

    Attributes
    ----------
    network : LiftedNetwork
        The network, with weights, biases and (when saved) training history.
    extra : dict
        The user metadata given to :func:`~cvx_lifted.modelfile.save_network` (``{}`` when
        none), e.g. the command line's ``{"task": "classify", "classes": [...]}``.
    metadata : dict
        The whole ``metadata.json`` (format, versions, architecture, array checksums, ...).
    path : pathlib.Path
        The file read.
    """

    network: LiftedNetwork
    extra: dict[str, Any]
    metadata: dict[str, Any]
    path: Path


def _network_from(contents: modelfile.ModelContents) -> LiftedNetwork:
    arch, path = contents.metadata["architecture"], contents.path
    try:
        acts = [get_activation(a["name"], **a["params"]) for a in arch["activations"]]
        head = get_output(arch["output"]["name"], **arch["output"]["params"])
        # a custom penalty callable is not stored (nothing executable is); it only matters for
        # further training, so the loaded network falls back to the l2 penalty, and says so
        penalty = arch.get("penalty", "l2")
        if penalty not in ("l2", "l1"):
            warnings.warn(
                f"{path}: the network was trained with a custom weight penalty, which model files "
                "do not store (nothing executable is); the loaded network predicts as saved but "
                "has the 'l2' penalty: set its penalty attribute to your callable before "
                "training it further.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )
        net = LiftedNetwork(
            arch["layer_sizes"],
            activation=acts,
            output=head,
            lam=arch["lam"],
            rho=arch["rho"],
            dtype=np.dtype(arch["dtype"]),
            penalty=penalty if penalty in ("l2", "l1") else "l2",
        )
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise bad_file(path, f"the stored architecture is invalid ({exc})") from None
    if contents.weights:
        try:
            net.set_weights(contents.weights, contents.biases)
        except ValueError as exc:
            raise bad_file(path, f"the stored weights are unusable ({exc})") from None
    raw = contents.metadata.get("history")
    net.history = BCDHistory.from_dict(raw) if raw is not None else None
    return net


def load_model(path: str | os.PathLike[str]) -> SavedModel:
    """Load a model file: the network plus the metadata stored next to it.

    Parameters
    ----------
    path : str or os.PathLike
        Model file written by :meth:`LiftedNetwork.save` or
        :func:`~cvx_lifted.modelfile.save_network` (``.cvxl`` is tried when the name has no
        extension and does not exist).

    Returns
    -------
    SavedModel
        ``network``, ``extra`` (user metadata), ``metadata`` (all of ``metadata.json``), ``path``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        For anything else that is wrong (see :func:`cvx_lifted.modelfile.read_model`). Never
        another exception.
    """
    contents = modelfile.read_model(path)
    with modelfile.guarded(contents.path, "loaded"):
        net = _network_from(contents)
    meta = contents.metadata
    return SavedModel(
        network=net, extra=dict(meta.get("extra") or {}), metadata=meta, path=contents.path
    )


def load_network(path: str | os.PathLike[str]) -> LiftedNetwork:
    """Load a network saved by :meth:`LiftedNetwork.save` (also :func:`cvx_lifted.load`).

    Parameters
    ----------
    path : str or os.PathLike
        Model file.

    Returns
    -------
    LiftedNetwork
        Predicts bit-for-bit like the saved network.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is damaged, edited, of an unknown or newer format, or needs a custom
        activation that is not registered (see :func:`load_model`).
    """
    return load_model(path).network


def _row_chunk_sum(term: Callable[[slice], float], m: int, width: int) -> float:
    """Return ``sum(term(rows))`` over chunks of rows of about 2 MB of float64 at ``width``."""
    step = max(256, 2**18 // max(width, 1))
    return float(sum(term(slice(s, s + step)) for s in range(0, m, step)))
