# SPDX-License-Identifier: Apache-2.0
r"""Jointly convex (JCR) activations: projections and other polyhedral argmins.

=================  ==========================================  ===============================
name               divergence :math:`D(u, z)`                   domain
=================  ==========================================  ===============================
``identity``       :math:`\tfrac12\|z-u\|^2`                   none
``relu``           :math:`\tfrac12\|z-u\|^2`                   :math:`z \ge 0`
``relu_l1``        :math:`\|z-u\|_1`                           :math:`z \ge 0`
``leaky_relu``     :math:`\tfrac12\|z-u\|^2`                   :math:`z \ge \alpha u`
``clip``           :math:`\tfrac12\|z-u\|^2`                   :math:`lo \le z \le hi`
``hard_sigmoid``   :math:`\tfrac12\|z-u\|^2`                   :math:`0 \le z \le 1`
``hard_tanh``      :math:`\tfrac12\|z-u\|^2`                   :math:`-1 \le z \le 1`
``sparsemax``      :math:`\tfrac12\|z-u\|^2`                   :math:`z \ge 0,\ 1^\top z = 1`
=================  ==========================================  ===============================
"""

from __future__ import annotations

from typing import Any, ClassVar

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted.activations.base import (
    Activation,
    BoxActivation,
    Convexity,
    FloatArray,
    ProjectionActivation,
    _operand,
)
from cvx_lifted.kernels import project_simplex

__all__ = [
    "Clip",
    "HardSigmoid",
    "HardTanh",
    "Identity",
    "LeakyReLU",
    "ReLU",
    "ReLUL1",
    "Sparsemax",
]


class Identity(BoxActivation):
    r"""Identity, the unconstrained argmin of the squared distance.

    .. math:: \phi(u) = u = \operatorname*{argmin}_z \tfrac12\|z-u\|^2.

    Examples
    --------
    >>> Identity().act([[-1.0, 2.0]])
    array([[-1.,  2.]])
    """

    name: ClassVar[str] = "identity"
    formula: ClassVar[str] = "u"
    domain_text: ClassVar[str] = "-"


class ReLU(BoxActivation):
    r"""Rectified linear unit, the projection onto the non-negative orthant (paper eq. 4).

    .. math:: \max(u, 0) = \operatorname*{argmin}_{z \ge 0} \tfrac12\|z-u\|^2.

    Jointly convex; the weight step is a ridge regression and the state step a non-negative
    least-squares problem.

    Examples
    --------
    >>> ReLU().act([[-1.0, 2.0]])
    array([[0., 2.]])
    """

    name: ClassVar[str] = "relu"
    lo: float = 0.0
    formula: ClassVar[str] = "max(u, 0)"
    domain_text: ClassVar[str] = "z >= 0"


class Clip(BoxActivation):
    r"""Clipping to an interval (piece-wise linear sigmoid), a box projection.

    .. math:: \min(hi, \max(lo, u)) = \operatorname*{argmin}_{lo \le z \le hi} \tfrac12\|z-u\|^2.

    Parameters
    ----------
    lo, hi : float, default=0.0, 1.0
        Interval bounds, ``lo < hi`` (either may be infinite).

    Examples
    --------
    >>> Clip(-1.0, 2.0).act([[-3.0, 0.5, 3.0]])
    array([[-1. ,  0.5,  2. ]])
    """

    name: ClassVar[str] = "clip"
    formula: ClassVar[str] = "min(hi, max(lo, u))"
    domain_text: ClassVar[str] = "lo <= z <= hi"

    def __init__(self, lo: float = 0.0, hi: float = 1.0) -> None:
        lo, hi = float(lo), float(hi)
        if np.isnan(lo) or np.isnan(hi) or not lo < hi:
            raise ValueError(f"clip needs lo < hi, got lo={lo}, hi={hi}.")
        self.lo, self.hi = lo, hi

    @property
    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"lo": self.lo, "hi": self.hi}


class HardSigmoid(Clip):
    r"""Hard sigmoid, clipping to :math:`[0, 1]`.

    .. math:: \min(1, \max(0, u)) = \operatorname*{argmin}_{0 \le z \le 1} \tfrac12\|z-u\|^2.
    """

    name: ClassVar[str] = "hard_sigmoid"
    formula: ClassVar[str] = "min(1, max(0, u))"
    domain_text: ClassVar[str] = "0 <= z <= 1"

    def __init__(self) -> None:
        super().__init__(0.0, 1.0)

    @property
    def params(self) -> dict[str, Any]:  # noqa: D102
        return {}


class HardTanh(Clip):
    r"""Hard tanh, clipping to :math:`[-1, 1]` (the paper's "piece-wise sigmoid").

    .. math:: \min(1, \max(-1, u)) = \operatorname*{argmin}_{|z| \le 1} \tfrac12\|z-u\|^2.
    """

    name: ClassVar[str] = "hard_tanh"
    formula: ClassVar[str] = "min(1, max(-1, u))"
    domain_text: ClassVar[str] = "-1 <= z <= 1"

    def __init__(self) -> None:
        super().__init__(-1.0, 1.0)

    @property
    def params(self) -> dict[str, Any]:  # noqa: D102
        return {}


class LeakyReLU(ProjectionActivation):
    r"""Leaky ReLU as a projection onto a set that depends on the input.

    .. math:: \max(u, \alpha u) = \operatorname*{argmin}_{z \ge \alpha u} \tfrac12\|z-u\|^2,
              \quad 0 < \alpha < 1.

    Jointly convex (the constraint is linear in :math:`(u, z)`), but the domain involves
    :math:`u`, so the weight step is a constrained least-squares problem: it is trained by the
    compiled CVXPY path. ``leaky_relu_fenchel`` is a smooth bi-convex alternative, and the one
    to train with: under BCD the domain ties the weights to the current states
    (:math:`\alpha(XW^\top + \mathbf 1 b^\top) \le Z`), so a weight step can move them only as far
    as the states allow, and training stalls (breast cancer standardised, a 75/25 split,
    30-6-5-2, ``simplex_xent``, eight sweeps: the first layer's weights moved by at most 4e-6
    and test accuracy was 0.79, against 0.95 with ``relu`` and 0.90 with
    ``leaky_relu_fenchel``).

    Parameters
    ----------
    alpha : float, default=0.01
        Slope for negative inputs, in (0, 1).

    Examples
    --------
    >>> LeakyReLU(0.1).act([[-1.0, 2.0]])
    array([[-0.1,  2. ]])
    """

    name: ClassVar[str] = "leaky_relu"
    weight_step: ClassVar[str | None] = None
    formula: ClassVar[str] = "max(u, alpha u)"
    domain_text: ClassVar[str] = "z >= alpha u"

    def __init__(self, alpha: float = 0.01) -> None:
        alpha = float(alpha)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"leaky_relu needs 0 < alpha < 1, got alpha={alpha}.")
        self.alpha = alpha

    @property
    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"alpha": self.alpha}

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:  # noqa: D102
        return [z >= self.alpha * _operand(u)]

    def _act(self, u: FloatArray) -> FloatArray:
        out: FloatArray = np.maximum(u, self.alpha * u)
        return out

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        out: FloatArray = np.maximum(z, self.alpha * u)
        return out

    def bias_shift(self, u: FloatArray, z: FloatArray) -> NDArray[np.float64]:  # noqa: D102
        # z >= alpha (u - s) for every row  <=>  s >= max_i (u_i - z_i / alpha); a margin of a
        # few ulps of the scale keeps the next state step strictly feasible
        gap = np.max(
            np.asarray(u, dtype=np.float64) - np.asarray(z, dtype=np.float64) / self.alpha, axis=0
        )
        scale = 1.0 + np.max(np.abs(u), axis=0)
        return np.where(gap > -1e-12 * scale, np.maximum(gap, 0.0) + 1e-12 * scale, 0.0)

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        gap = self.alpha * np.asarray(u, dtype=np.float64) - np.asarray(z, dtype=np.float64)
        return float(max(0.0, np.max(gap))) if gap.size else 0.0


class ReLUL1(Activation):
    r"""ReLU with an :math:`\ell_1` divergence, an LP (paper §4: the JC-divergence is not unique).

    .. math:: \max(u, 0) = \operatorname*{argmin}_{z \ge 0} \|z-u\|_1.

    Examples
    --------
    >>> ReLUL1().act([[-1.0, 2.0]])
    array([[0., 2.]])
    """

    name: ClassVar[str] = "relu_l1"
    convexity: ClassVar[Convexity] = "joint"
    cone: ClassVar[str] = "lp"
    formula: ClassVar[str] = "max(u, 0)"
    divergence_text: ClassVar[str] = "||z - u||_1"
    domain_text: ClassVar[str] = "z >= 0"

    def divergence(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = cp.sum(cp.abs(z - u))
        return expr

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:  # noqa: D102
        return [z >= 0]

    def _act(self, u: FloatArray) -> FloatArray:
        return np.maximum(u, 0.0)

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        return np.maximum(z, 0.0)

    def value(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        return float(np.sum(np.abs(np.asarray(z, np.float64) - np.asarray(u, np.float64))))

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        z = np.asarray(z, dtype=np.float64)
        return float(max(0.0, -np.min(z))) if z.size else 0.0


class Sparsemax(ProjectionActivation):
    r"""Sparsemax: the Euclidean projection of each row onto the probability simplex.

    .. math:: \operatorname{sparsemax}(u) = \operatorname*{argmin}_{z \ge 0,\ 1^\top z = 1}
              \tfrac12\|z-u\|^2 = \max(u - \tau(u), 0),

    with :math:`\tau(u)` the threshold that makes the row sum to one (sort-based, exact). Used as
    the output activation of ``simplex_xent`` networks (paper eq. 15).

    Examples
    --------
    >>> Sparsemax().act([[0.0, 1.0, 3.0]])
    array([[0., 0., 1.]])
    """

    name: ClassVar[str] = "sparsemax"
    kernel: ClassVar[str | None] = "simplex"
    elementwise: ClassVar[bool] = False
    formula: ClassVar[str] = "max(u - tau(u), 0)"
    domain_text: ClassVar[str] = "z >= 0, 1'z = 1"
    edge_values: ClassVar[tuple[float, ...]] = (0.0, 1e-8, -1e-8, 0.5, 1.0, -1.0, 50.0, -50.0)

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:  # noqa: D102
        return [z >= 0, cp.sum(z, axis=1) == 1]

    def _act(self, u: FloatArray) -> FloatArray:
        return project_simplex(u)

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        return project_simplex(z)

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        if z.size == 0:
            return 0.0
        return float(max(0.0, -np.min(z), np.max(np.abs(z.sum(axis=1) - 1.0))))

    def unique_mask(self, u: FloatArray) -> NDArray[np.bool_]:  # noqa: D102
        return np.ones(u.shape, dtype=bool)
