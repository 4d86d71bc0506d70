# SPDX-License-Identifier: Apache-2.0
r"""Max-pooling as a jointly convex argmin (paper eq. 9).

The paper writes :math:`\phi(u) = \operatorname{argmin}_z 1^\top z + 1^\top(u - Dz)_+`, with
:math:`D` the pooling matrix. With weight one on the hinge that objective is flat on each pool
between the second-largest and the largest entry, so the argmin is not unique (errors up to 3.5
measured, see ``docs/solver-facts.md``). A weight :math:`w > 1` on the hinge makes it unique:
just below the pool maximum the slope is :math:`1 - w < 0`, just above it is :math:`1 > 0`.
"""

from __future__ import annotations

from typing import Any, ClassVar

import cvxpy as cp
import numpy as np
from numpy.typing import ArrayLike

from cvx_lifted.activations.base import Activation, FloatArray, _operand

__all__ = ["MaxPool"]


class MaxPool(Activation):
    r"""Max over contiguous pools of ``pool_size`` inputs, as a jointly convex LP.

    .. math::
        \phi(u)_k = \max_{i \in G_k} u_i = \operatorname*{argmin}_z\ 1^\top z
        + w\, 1^\top (u - D z)_+, \qquad w > 1,

    where :math:`D \in \{0,1\}^{n \times g}` maps each of the :math:`g = n / \text{pool\_size}`
    outputs to its pool.

    Parameters
    ----------
    pool_size : int, default=2
        Inputs per pool; the number of inputs must be a multiple of it.
    weight : float, default=2.0
        Weight :math:`w > 1` of the hinge term.

    Examples
    --------
    >>> MaxPool(2).act([[1.0, 3.0, -2.0, -1.0]])
    array([[ 3., -1.]])
    """

    name: ClassVar[str] = "max_pool"
    cone: ClassVar[str] = "lp"
    elementwise: ClassVar[bool] = False
    formula: ClassVar[str] = "max over each pool"
    divergence_text: ClassVar[str] = "1'z + w 1'(u - Dz)_+, w > 1"
    domain_text: ClassVar[str] = "-"

    def __init__(self, pool_size: int = 2, weight: float = 2.0) -> None:
        if int(pool_size) != pool_size or pool_size < 1:
            raise ValueError(f"max_pool needs a positive integer pool_size, got {pool_size!r}.")
        weight = float(weight)
        if not weight > 1.0:
            raise ValueError(
                f"max_pool needs weight > 1 (with weight <= 1 the argmin is not unique), "
                f"got weight={weight}."
            )
        self.pool_size = int(pool_size)
        self.weight = weight

    @property
    def params(self) -> dict[str, Any]:  # noqa: D102
        return {"pool_size": self.pool_size, "weight": self.weight}

    def output_size(self, n: int) -> int:  # noqa: D102
        if n % self.pool_size:
            raise ValueError(
                f"max_pool with pool_size={self.pool_size} needs a multiple of {self.pool_size} "
                f"inputs, got {n}."
            )
        return n // self.pool_size

    def pooling_matrix(self, n: int) -> np.ndarray:
        r"""Return :math:`D^\top`, the ``(g, n)`` 0/1 matrix copying each output to its pool."""
        g = self.output_size(n)
        return np.kron(np.eye(g), np.ones((1, self.pool_size)))

    def divergence(self, u: cp.Expression | ArrayLike, z: cp.Expression) -> cp.Expression:  # noqa: D102
        u = _operand(u)
        n = int(u.shape[-1])
        expr: cp.Expression = cp.sum(z) + self.weight * cp.sum(
            cp.pos(u - z @ self.pooling_matrix(n))
        )
        return expr

    def value(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        u = np.atleast_2d(np.asarray(u, dtype=np.float64))
        z = np.atleast_2d(np.asarray(z, dtype=np.float64))
        hinge = np.maximum(u - np.repeat(z, self.pool_size, axis=1), 0.0)
        return float(np.sum(z) + self.weight * np.sum(hinge))

    def domain_violation(self, u: ArrayLike, z: ArrayLike) -> float:  # noqa: D102
        return 0.0

    def _act(self, u: FloatArray) -> FloatArray:
        m, n = u.shape
        g = self.output_size(n)
        out: FloatArray = u.reshape(m, g, self.pool_size).max(axis=2)
        return out
