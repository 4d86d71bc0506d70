# SPDX-License-Identifier: Apache-2.0
r"""Fenchel--Young (bi-convex, BCR) activations: :math:`D(u,z) = \Phi(z) + \Phi^*(u) - u^\top z`.

For a strictly increasing :math:`\phi`, :math:`\Phi(z) = \int_0^z \phi^{-1}` (paper eq. 6) is convex
and :math:`\phi(u) = \operatorname{argmin}_z \Phi(z) - uz` (eq. 7). Adding :math:`\Phi^*(u)` keeps
the argmin and makes :math:`D \ge 0`, zero exactly at :math:`z = \phi(u)`, and convex in
:math:`u`.

.. list-table::
   :header-rows: 1

   * - name
     - :math:`\Phi(z)`
     - :math:`\Phi^*(u)`
   * - ``sigmoid``
     - :math:`z\log z + (1-z)\log(1-z)`
     - :math:`\log(1+e^u)`
   * - ``tanh``
     - :math:`\tfrac12[(1-z)\log(1-z)+(1+z)\log(1+z)]`
     - :math:`\log\cosh u`
   * - ``relu_fenchel``
     - :math:`\tfrac12 z^2,\ z \ge 0`
     - :math:`\tfrac12\max(u,0)^2`
   * - ``leaky_relu_fenchel``
     - :math:`\tfrac12\max(z,0)^2+\tfrac1{2\alpha}\min(z,0)^2`
     - :math:`\tfrac12\max(u,0)^2+\tfrac\alpha2\min(u,0)^2`
   * - ``sign``
     - :math:`0,\ |z| \le 1`
     - :math:`|u|`
"""

from __future__ import annotations

from typing import Any, ClassVar

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.special import expit, xlogy

from cvx_lifted.activations.base import FenchelYoungActivation, FloatArray, _operand
from cvx_lifted.kernels import fenchel_young as fyk
from cvx_lifted.kernels.fenchel_young import ScalarFY

__all__ = ["LeakyReLUFenchel", "ReLUFenchel", "Sigmoid", "Sign", "Tanh"]

_LOG2 = float(np.log(2.0))


class Sigmoid(FenchelYoungActivation):
    r"""Logistic sigmoid through the binary-entropy Fenchel--Young divergence (exponential cone).

    .. math::
        \sigma(u) = \operatorname*{argmin}_{0 \le z \le 1} z\log z + (1-z)\log(1-z) - uz,
        \qquad \Phi^*(u) = \log(1 + e^u).

    Examples
    --------
    >>> Sigmoid().act([[0.0]])
    array([[0.5]])
    """

    name: ClassVar[str] = "sigmoid"
    cone: ClassVar[str] = "exp"
    kernel: ClassVar[str | None] = "fenchel_young"
    formula: ClassVar[str] = "1 / (1 + exp(-u))"
    divergence_text: ClassVar[str] = "z log z + (1-z) log(1-z) + log(1+e^u) - u z"
    domain_text: ClassVar[str] = "0 <= z <= 1"

    @property
    def fy(self) -> ScalarFY:  # noqa: D102
        return fyk.SIGMOID_FY

    def phi(self, z: cp.Expression) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = -cp.sum(cp.entr(z)) - cp.sum(cp.entr(1 - z))
        return expr

    def phi_conj(self, u: cp.Expression | ArrayLike) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = cp.sum(cp.logistic(u))
        return expr

    def phi_value(self, z: FloatArray) -> float:  # noqa: D102
        return float(np.sum(xlogy(z, z) + xlogy(1.0 - z, 1.0 - z)))

    def phi_conj_value(self, u: FloatArray) -> float:  # noqa: D102
        return float(np.sum(np.logaddexp(0.0, u)))

    def _act(self, u: FloatArray) -> FloatArray:
        out: FloatArray = expit(u)
        return out

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        return np.clip(z, 0.0, 1.0)

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        z = np.asarray(z, dtype=np.float64)
        return float(max(0.0, -np.min(z), np.max(z - 1.0))) if z.size else 0.0


class Tanh(FenchelYoungActivation):
    r"""Hyperbolic tangent through its Fenchel--Young divergence (exponential cone).

    The paper's "arctanh" example: :math:`\phi^{-1} = \operatorname{arctanh}` gives

    .. math::
        \tanh(u) = \operatorname*{argmin}_{|z| \le 1}
        \tfrac12\big[(1-z)\log(1-z) + (1+z)\log(1+z)\big] - uz,
        \qquad \Phi^*(u) = \log\cosh u.

    Examples
    --------
    >>> Tanh().act([[0.0]])
    array([[0.]])
    """

    name: ClassVar[str] = "tanh"
    cone: ClassVar[str] = "exp"
    kernel: ClassVar[str | None] = "fenchel_young"
    formula: ClassVar[str] = "tanh(u)"
    divergence_text: ClassVar[str] = "((1-z)log(1-z) + (1+z)log(1+z))/2 + log cosh u - u z"
    domain_text: ClassVar[str] = "-1 <= z <= 1"

    @property
    def fy(self) -> ScalarFY:  # noqa: D102
        return fyk.TANH_FY

    def phi(self, z: cp.Expression) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = -0.5 * (cp.sum(cp.entr(1 - z)) + cp.sum(cp.entr(1 + z)))
        return expr

    def phi_conj(self, u: cp.Expression | ArrayLike) -> cp.Expression:  # noqa: D102
        # log cosh u = log(1 + e^{2u}) - u - log 2
        u = _operand(u)
        expr: cp.Expression = cp.sum(cp.logistic(2 * u) - u) - _LOG2 * int(np.prod(_shape(u)))
        return expr

    def phi_value(self, z: FloatArray) -> float:  # noqa: D102
        return 0.5 * float(np.sum(xlogy(1.0 - z, 1.0 - z) + xlogy(1.0 + z, 1.0 + z)))

    def phi_conj_value(self, u: FloatArray) -> float:  # noqa: D102
        a = np.abs(u)
        return float(np.sum(a + np.log1p(np.exp(-2.0 * a)) - _LOG2))

    def _act(self, u: FloatArray) -> FloatArray:
        return np.tanh(u)

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        return np.clip(z, -1.0, 1.0)

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        z = np.asarray(z, dtype=np.float64)
        return float(max(0.0, np.max(np.abs(z)) - 1.0)) if z.size else 0.0


class ReLUFenchel(FenchelYoungActivation):
    r"""ReLU through its Fenchel--Young divergence (paper §4, "non-strictly monotone examples").

    .. math::
        D(u, z) = \tfrac12 z^2 + \tfrac12\max(u, 0)^2 - uz
                = \tfrac12(z - u)^2 - \tfrac12\min(u, 0)^2, \qquad z \ge 0.

    In :math:`z` it is the ``relu`` divergence plus a term in :math:`u` only, so the argmin and the
    hidden-state step are unchanged; in :math:`u` it no longer pulls negative pre-activations
    towards zero, which lets the ReLU act during training. The weight step is a smooth,
    piecewise-quadratic convex problem (a "ReLU regression").

    Examples
    --------
    >>> ReLUFenchel().act([[-1.0, 2.0]])
    array([[0., 2.]])
    """

    name: ClassVar[str] = "relu_fenchel"
    cone: ClassVar[str] = "qp"
    kernel: ClassVar[str | None] = "box"
    weight_step: ClassVar[str | None] = "relu_fenchel"
    formula: ClassVar[str] = "max(u, 0)"
    divergence_text: ClassVar[str] = "z^2/2 + max(u,0)^2/2 - u z"
    domain_text: ClassVar[str] = "z >= 0"

    @property
    def box(self) -> tuple[float, float]:  # noqa: D102
        return (0.0, np.inf)

    @property
    def fy(self) -> ScalarFY:  # noqa: D102
        return fyk.RELU_FY

    def phi(self, z: cp.Expression) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = 0.5 * cp.sum_squares(z)
        return expr

    def phi_conj(self, u: cp.Expression | ArrayLike) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = 0.5 * cp.sum_squares(cp.pos(u))
        return expr

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:  # noqa: D102
        return [z >= 0]

    def phi_value(self, z: FloatArray) -> float:  # noqa: D102
        return 0.5 * float(np.vdot(z, z))

    def phi_conj_value(self, u: FloatArray) -> float:  # noqa: D102
        p = np.maximum(u, 0.0)
        return 0.5 * float(np.vdot(p, p))

    def value(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        # the form 1/2 (z-u)^2 - 1/2 min(u,0)^2 avoids cancellation between large terms
        u = np.asarray(u, dtype=np.float64)
        d = np.asarray(z, dtype=np.float64) - u
        n = np.minimum(u, 0.0)
        return 0.5 * float(np.vdot(d, d) - np.vdot(n, n))

    def row_values(self, u: ArrayLike, z: ArrayLike) -> NDArray[np.float64]:  # noqa: D102
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        d = np.atleast_2d(np.asarray(z, dtype=np.float64)) - u
        n = np.minimum(u, 0.0)
        out: NDArray[np.float64] = 0.5 * (np.einsum("ij,ij->i", d, d) - np.einsum("ij,ij->i", n, n))
        return out

    def _act(self, u: FloatArray) -> FloatArray:
        return np.maximum(u, 0.0)

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        return np.maximum(z, 0.0)

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        z = np.asarray(z, dtype=np.float64)
        return float(max(0.0, -np.min(z))) if z.size else 0.0


class LeakyReLUFenchel(FenchelYoungActivation):
    r"""Leaky ReLU through its Fenchel--Young divergence (paper eq. 8), a bi-convex QP.

    .. math::
        \Phi(z) = \tfrac12\max(z,0)^2 + \tfrac1{2\alpha}\min(z,0)^2, \qquad
        \Phi^*(u) = \tfrac12\max(u,0)^2 + \tfrac\alpha2\min(u,0)^2,

    so :math:`\max(u, \alpha u) = \operatorname{argmin}_z \Phi(z) - uz`, :math:`0<\alpha<1`.

    Parameters
    ----------
    alpha : float, default=0.01
        Slope for negative inputs, in (0, 1).

    Examples
    --------
    >>> LeakyReLUFenchel(0.5).act([[-1.0, 2.0]])
    array([[-0.5,  2. ]])
    """

    name: ClassVar[str] = "leaky_relu_fenchel"
    cone: ClassVar[str] = "qp"
    kernel: ClassVar[str | None] = "fenchel_young"
    formula: ClassVar[str] = "max(u, alpha u)"
    divergence_text: ClassVar[str] = "max(z,0)^2/2 + min(z,0)^2/(2a) + Phi*(u) - u z"
    domain_text: ClassVar[str] = "-"

    def __init__(self, alpha: float = 0.01) -> None:
        alpha = float(alpha)
        if not 0.0 < alpha < 1.0:
            raise ValueError(f"leaky_relu_fenchel needs 0 < alpha < 1, got alpha={alpha}.")
        self.alpha = alpha

    @property
    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"alpha": self.alpha}

    @property
    def fy(self) -> ScalarFY:  # noqa: D102
        return fyk.leaky_relu_fy(self.alpha)

    def phi(self, z: cp.Expression) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = 0.5 * cp.sum_squares(cp.pos(z)) + 0.5 / self.alpha * cp.sum_squares(
            cp.neg(z)
        )
        return expr

    def phi_conj(self, u: cp.Expression | ArrayLike) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = 0.5 * cp.sum_squares(cp.pos(u)) + 0.5 * self.alpha * cp.sum_squares(
            cp.neg(u)
        )
        return expr

    def phi_value(self, z: FloatArray) -> float:  # noqa: D102
        p, n = np.maximum(z, 0.0), np.minimum(z, 0.0)
        return 0.5 * float(np.vdot(p, p)) + 0.5 / self.alpha * float(np.vdot(n, n))

    def phi_conj_value(self, u: FloatArray) -> float:  # noqa: D102
        p, n = np.maximum(u, 0.0), np.minimum(u, 0.0)
        return 0.5 * float(np.vdot(p, p)) + 0.5 * self.alpha * float(np.vdot(n, n))

    def _act(self, u: FloatArray) -> FloatArray:
        out: FloatArray = np.maximum(u, self.alpha * u)
        return out

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        return 0.0


class Sign(FenchelYoungActivation):
    r"""Sign function as a linear program (paper §4).

    .. math:: \operatorname{sign}(u) = \operatorname*{argmin}_{|z| \le 1} -uz,
              \qquad \Phi = \text{indicator of } [-1, 1],\ \Phi^*(u) = |u|.

    The argmin is the whole interval at :math:`u = 0`, and near zero an LP solver determines
    :math:`z` only to about (duality gap) / :math:`|u|`; verification therefore skips entries
    with :math:`|u| \le 10^{-3}`.

    Examples
    --------
    >>> Sign().act([[-2.0, 0.0, 3.0]])
    array([[-1.,  0.,  1.]])
    """

    name: ClassVar[str] = "sign"
    cone: ClassVar[str] = "lp"
    formula: ClassVar[str] = "sign(u)"
    divergence_text: ClassVar[str] = "|u| - u z"
    domain_text: ClassVar[str] = "-1 <= z <= 1"
    edge_values: ClassVar[tuple[float, ...]] = (1e-2, -1e-2, 1.0, -1.0, 50.0, -50.0)
    unique_threshold: ClassVar[float] = 1e-3

    def phi(self, z: cp.Expression) -> cp.Expression:  # noqa: D102
        return cp.Constant(0.0)

    def phi_conj(self, u: cp.Expression | ArrayLike) -> cp.Expression:  # noqa: D102
        expr: cp.Expression = cp.sum(cp.abs(u))
        return expr

    def domain(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> list[cp.Constraint]:  # noqa: D102
        return [z >= -1, z <= 1]

    def phi_value(self, z: FloatArray) -> float:  # noqa: D102
        return 0.0

    def phi_conj_value(self, u: FloatArray) -> float:  # noqa: D102
        return float(np.sum(np.abs(u)))

    def _act(self, u: FloatArray) -> FloatArray:
        return np.sign(u)

    def repair(self, u: FloatArray, z: FloatArray) -> FloatArray:  # noqa: D102
        return np.clip(z, -1.0, 1.0)

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        z = np.asarray(z, dtype=np.float64)
        return float(max(0.0, np.max(np.abs(z)) - 1.0)) if z.size else 0.0

    def unique_mask(self, u: FloatArray) -> NDArray[np.bool_]:  # noqa: D102
        return np.abs(u) > self.unique_threshold


def _shape(u: cp.Expression | ArrayLike) -> tuple[int, ...]:
    return tuple(u.shape) if hasattr(u, "shape") else np.shape(u)
