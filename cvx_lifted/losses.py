# SPDX-License-Identifier: Apache-2.0
r"""Output heads: the loss of a lifted network and how its last layer is represented.

=================  ==================================  ======================================
name               output state and divergence         loss
=================  ==================================  ======================================
``squared``        :math:`X_{L+1}`, any activation      :math:`\tfrac12\|X_{L+1} - Y\|_F^2`
                   (identity by default, or ReLU)
``simplex_xent``   :math:`X_{L+1}` on the simplex,      :math:`-\operatorname{tr} Y^\top\log
                   sparsemax divergence (eq. 15)        X_{L+1}`
``softmax_xent``   none: the loss acts on               cross-entropy of
                   :math:`U_L = X_L W_L^\top + b_L`      :math:`\operatorname{softmax}(U_L)`
                   (eq. 11)
=================  ==================================  ======================================

A head states *what* its loss is (NumPy value, CVXPY expression, feed-forward prediction); the
output step itself lives in :mod:`cvx_lifted.bcd` (fast kernels) and :mod:`cvx_lifted.compile`.
"""

from __future__ import annotations

import abc
import warnings
from typing import Any, ClassVar

import cvxpy as cp
import numpy as np
from numpy.typing import NDArray
from scipy.special import log_softmax, softmax, xlogy

from cvx_lifted._validation import caller_stacklevel
from cvx_lifted.activations import Activation, get_activation
from cvx_lifted.activations.base import ParamsMixin, require_program

__all__ = [
    "OUTPUTS",
    "OutputHead",
    "SimplexCrossEntropy",
    "SoftmaxCrossEntropy",
    "SquaredLoss",
    "get_output",
]

FloatArray = NDArray[np.floating[Any]]


class OutputHead(ParamsMixin, abc.ABC):
    """The last layer of a lifted network: its loss and, if any, its output state.

    Its constructor parameters (:attr:`params`, stored in model files) give its ``repr``,
    ``==`` and ``hash`` (:class:`~cvx_lifted.activations.base.ParamsMixin`).

    Attributes
    ----------
    name : str
        Registry name.
    has_state : bool
        Whether the output :math:`X_{L+1}` is a variable of the lifted problem.
    activation : Activation or None
        The divergence that ties the output state to :math:`U_L` (``None`` without a state).
    classification : bool
        Whether the head models class probabilities.
    """

    name: ClassVar[str] = ""
    has_state: ClassVar[bool] = True
    classification: ClassVar[bool] = False
    activation: Activation | None = None

    @abc.abstractmethod
    def loss(self, Y: FloatArray, Z: FloatArray) -> float:
        """Return the loss (summed over rows) of output ``Z`` against targets ``Y`` in NumPy."""

    @abc.abstractmethod
    def loss_expr(self, Y: Any, Z: Any, *, onehot: bool = False) -> cp.Expression:
        """Return the loss as a CVXPY expression (``Y`` a parameter, ``Z`` a variable).

        ``onehot`` allows a cheaper form that is exact when every row of ``Y`` is one-hot.
        """

    @abc.abstractmethod
    def predict(self, U: FloatArray) -> FloatArray:
        """Map the last pre-activation :math:`U_L` to the feed-forward output."""

    #: How far from 1 a probability row may sum (float32 softmax rows are off by ~1e-7).
    ROW_SUM_TOL: ClassVar[float] = 1e-4

    def check_targets(self, Y: FloatArray, name: str = "Y", *, warn: bool = True) -> None:
        """Raise ``ValueError`` naming the first row of ``Y`` the loss is not defined for.

        A classification head needs one-hot or probability rows: non-negative and summing to
        1 (to :data:`ROW_SUM_TOL`). A row summing to 2 would weigh its sample twice under
        ``simplex_xent`` and leaves ``softmax_xent`` unbounded below; multi-label indicator rows
        are the usual cause. Other heads accept any finite targets, and warn (``warn``) when
        they leave the range of the output activation (:meth:`warn_outside_range`).

        Parameters
        ----------
        Y : ndarray, shape (m, k)
            Targets, one row per sample.
        name : str, default="Y"
            The argument's name in the message.
        warn : bool, default=True
            Warn about the range (off where the warning could not reach the user).
        """
        Y = np.asarray(Y)
        if not self.classification:
            if warn and Y.size and self.output_range() is not None:
                self.warn_outside_range(float(Y.min()), float(Y.max()), name)
            return
        sums = Y.sum(axis=1, dtype=np.float64)
        bad = np.flatnonzero((Y < 0).any(axis=1) | (np.abs(sums - 1.0) > self.ROW_SUM_TOL))
        if bad.size:
            i = int(bad[0])
            why = "has a negative entry" if (Y[i] < 0).any() else f"sums to {sums[i]:.10g}"
            raise ValueError(
                f"{name} must hold one-hot or probability rows (non-negative, summing to 1) for "
                f"output {self.name!r}; row {i} {why} ({bad.size} such row(s)). Multi-label "
                f"targets need output='squared'."
            )

    def output_range(self) -> tuple[float, float] | None:
        """Return the interval the output activation's values lie in, or None (unbounded)."""
        act = self.activation
        fy = None if act is None else act.fy
        bounds = act.box if act is not None and act.box is not None else fy and (fy.lo, fy.hi)
        return bounds if bounds and np.isfinite(bounds).any() else None

    def warn_outside_range(self, low: float, high: float, name: str = "Y") -> None:
        """Warn when targets in ``[low, high]`` leave the range of the output activation.

        Parameters
        ----------
        low, high : float
            The smallest and largest target.
        name : str, default="Y"
            The argument's name in the message.
        """
        bounds = self.output_range()
        if bounds is None:
            return
        lo, hi = bounds
        low, high = low + 0.0, high + 0.0  # no "-0" in the message
        if low < lo or high > hi:
            assert self.activation is not None
            warnings.warn(
                f"{name} ranges over [{low:.4g}, {high:.4g}], outside [{lo:g}, {hi:g}], the "
                f"range of output_activation={self.activation.name!r}: the fit cannot reach "
                "those targets. Scale them into that range, or use output_activation='identity'.",
                UserWarning,
                stacklevel=caller_stacklevel(),
            )


class SquaredLoss(OutputHead):
    r"""Squared loss on an output state tied to :math:`U_L` by an activation's divergence.

    .. math:: \mathcal L(Y, X_{L+1}) = \tfrac12\|X_{L+1} - Y\|_F^2, \qquad
              \lambda_{L+1} D(U_L, X_{L+1}).

    With a box activation (identity, ReLU, clip) the output step is analytic (paper §6.2):
    :math:`X_{L+1} = \operatorname{clip}((Y + \lambda U_L)/(1 + \lambda))`.

    Parameters
    ----------
    activation : str or Activation, default="identity"
        Output activation (``"identity"`` for regression, ``"relu"`` for non-negative targets).
    **activation_params
        Parameters of the activation, e.g. ``lo`` and ``hi`` for ``"clip"``.
    """

    name: ClassVar[str] = "squared"

    def __init__(self, activation: str | Activation = "identity", **activation_params: Any) -> None:
        self.activation = get_activation(activation, **activation_params)
        require_program(self.activation)  # NotRepresentableError with the reason

    @property
    def params(self) -> dict[str, Any]:  # noqa: D102
        assert self.activation is not None
        return {"activation": self.activation.name, **self.activation.params}

    def loss(self, Y: FloatArray, Z: FloatArray) -> float:  # noqa: D102
        d = np.asarray(Z, dtype=np.float64) - np.asarray(Y, dtype=np.float64)
        return 0.5 * float(np.vdot(d, d))

    def loss_expr(self, Y: Any, Z: Any, *, onehot: bool = False) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = 0.5 * cp.sum_squares(Z - Y)
        return expr

    def predict(self, U: FloatArray) -> FloatArray:  # noqa: D102
        assert self.activation is not None
        return self.activation.act(U)


class SimplexCrossEntropy(OutputHead):
    r"""Cross-entropy on an output state constrained to the probability simplex (paper eq. 15).

    .. math:: \mathcal L(Y, X_{L+1}) = -\operatorname{tr} Y^\top \log X_{L+1}, \qquad
              \lambda_{L+1}\tfrac12\|X_{L+1} - U_L\|_F^2,\ X_{L+1} \ge 0,\ X_{L+1}1 = 1.

    The output step is solved row by row by the bisection/Newton scheme of Appendix A; the
    feed-forward output is :math:`\operatorname{sparsemax}(U_L)`.
    """

    name: ClassVar[str] = "simplex_xent"
    classification: ClassVar[bool] = True

    def __init__(self) -> None:
        self.activation = get_activation("sparsemax")

    def loss(self, Y: FloatArray, Z: FloatArray) -> float:  # noqa: D102
        Y = np.asarray(Y, dtype=np.float64)
        with np.errstate(divide="ignore"):
            return -float(np.sum(xlogy(Y, np.asarray(Z, dtype=np.float64))))

    def loss_expr(self, Y: Any, Z: Any, *, onehot: bool = False) -> cp.Expression:
        r"""Return the cross-entropy as a CVXPY expression.

        With ``onehot=True`` it is written :math:`-\sum_i \log(y_i^\top z_i)`, equal to
        :math:`-\operatorname{tr} Y^\top \log Z` for one-hot rows and needing one exponential
        cone per row instead of one per entry; the solvers then certify optimality where the
        entry-wise form stalls at ``optimal_inaccurate`` (labels put :math:`z_i = 0` on the
        boundary of the cone).
        """
        expr: cp.Expression
        if onehot:
            expr = -cp.sum(cp.log(cp.sum(cp.multiply(Y, Z), axis=1)))
        else:
            expr = -cp.sum(cp.multiply(Y, cp.log(Z)))
        return expr

    def predict(self, U: FloatArray) -> FloatArray:  # noqa: D102
        assert self.activation is not None
        return self.activation.act(U)


class SoftmaxCrossEntropy(OutputHead):
    r"""Softmax cross-entropy on the last pre-activation, with no output state (paper eq. 11).

    .. math:: \mathcal L(Y, U_L) = \sum_i \log\sum_k e^{u_{ik}} - y_i^\top u_i .

    The last weight step is a multinomial logistic regression.
    """

    name: ClassVar[str] = "softmax_xent"
    has_state: ClassVar[bool] = False
    classification: ClassVar[bool] = True

    def loss(self, Y: FloatArray, Z: FloatArray) -> float:  # noqa: D102
        return -float(np.sum(np.asarray(Y, np.float64) * log_softmax(np.asarray(Z, np.float64), 1)))

    def loss_expr(self, Y: Any, Z: Any, *, onehot: bool = False) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = cp.sum(cp.log_sum_exp(Z, axis=1)) - cp.sum(cp.multiply(Y, Z))
        return expr

    def predict(self, U: FloatArray) -> FloatArray:  # noqa: D102
        out: FloatArray = softmax(np.asarray(U), axis=1).astype(np.asarray(U).dtype, copy=False)
        return out


OUTPUTS: dict[str, type[OutputHead]] = {
    "squared": SquaredLoss,
    "simplex_xent": SimplexCrossEntropy,
    "softmax_xent": SoftmaxCrossEntropy,
}
"""Registry of output heads by name."""


def get_output(output: str | OutputHead, **params: Any) -> OutputHead:
    """Return an output head from its name (or pass an instance through).

    Parameters
    ----------
    output : str or OutputHead
        ``"squared"``, ``"simplex_xent"`` or ``"softmax_xent"``.
    **params
        Head parameters, e.g. ``activation="relu"`` for ``"squared"``.

    Returns
    -------
    OutputHead

    Raises
    ------
    ValueError
        For an unknown name or parameters the head does not take.
    """
    if isinstance(output, OutputHead):
        return output
    if not isinstance(output, str) or output not in OUTPUTS:
        raise ValueError(f"unknown output {output!r}; choose one of {', '.join(OUTPUTS)}.")
    try:
        return OUTPUTS[output](**params)
    except TypeError as exc:
        raise ValueError(f"bad parameters for output {output!r}: {exc}") from None
