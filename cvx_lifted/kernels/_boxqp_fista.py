# SPDX-License-Identifier: Apache-2.0
r"""FISTA for the box state step (private; ``method="fista"``).

The loop is :func:`~cvx_lifted.kernels._fista.fista_rows`; this module gives it the box
problems: :class:`CouplingOracle` (any coupling, through the image :math:`V = ZW^\top + b`; also
used, with the simplex projection, by the state step after a sparsemax layer) and
:class:`GramOracle` (:class:`~cvx_lifted.kernels.boxqp.L2Coupling` with the shared Hessian). See
:func:`~cvx_lifted.kernels.boxqp.state_step`. ``prob`` is the ``_Problem`` of
:mod:`~cvx_lifted.kernels.boxqp` (the data shared by all chunks).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._fista import Rows, fista_rows
from ._rows import ChunkResult, _clip, _rowdot

FloatArray = NDArray[np.floating[Any]]
Residual = Callable[[FloatArray, FloatArray, FloatArray], tuple[FloatArray, FloatArray]]

__all__ = ["CouplingOracle", "GramOracle", "_fista_chunk", "_fista_gram_chunk"]


class CouplingOracle:
    r"""The smooth part :math:`\frac a2\|z - u\|^2 + c\,g(Wz + b)` of ``prob``, rows ``(U, T)``.

    Parameters
    ----------
    prob : _Problem
        The box problem (its image, objective and gradient).
    project : callable
        ``project(Z)``: the projection onto the feasible set (may overwrite ``Z``).
    residual : callable
        ``residual(Y, grad, X)``: the stopping residual and its threshold per row.
    """

    def __init__(
        self, prob: Any, project: Callable[[FloatArray], FloatArray], residual: Residual
    ) -> None:
        self.prob = prob
        self.L: float = prob.L
        self.max_iter: int = prob.max_iter
        self.project = project
        self.residual = residual

    def image(self, Z: FloatArray) -> FloatArray:
        r"""Return :math:`V = ZW^\top + b`."""
        V: FloatArray = self.prob.image(Z)
        return V

    def value(self, Z: FloatArray, A: FloatArray, rows: Rows) -> tuple[FloatArray, FloatArray]:
        """Return the objective per row and the coupling's gradient :math:`G` at ``Z``."""
        U, T = rows
        out: tuple[FloatArray, FloatArray] = self.prob.objective(Z, U, A, T)
        return out

    def extrapolated(self, A: FloatArray, rows: Rows) -> FloatArray:
        """Return the coupling's gradient at the image ``A``."""
        G: FloatArray = self.prob.coupling._eval(A, rows[1])[1]
        return G

    def grad(self, Z: FloatArray, C: FloatArray, rows: Rows) -> FloatArray:
        """Return :math:`a(Z - U) + cGW`."""
        g: FloatArray = self.prob.grad(Z, rows[0], C)
        return g


class GramOracle:
    r"""The box QP of :class:`L2Coupling` through :math:`ZH`, rows ``(R_0, k)``.

    With :math:`H = aI + cW^\top W` and :math:`R_0 = aU + c(T - b)W`,
    :math:`\nabla f(z) = zH - R_0` and :math:`f(z) = \tfrac12 z^\top H z - R_0^\top z + k`:
    one ``(n, p) @ (p, p)`` GEMM per iteration, and :math:`yH` at the extrapolated point is a
    combination of the stored products.

    Parameters
    ----------
    prob : _Problem
        The box problem (step, iteration cap, Hessian).
    project, residual : callable
        As for :class:`CouplingOracle`.
    """

    def __init__(
        self, prob: Any, project: Callable[[FloatArray], FloatArray], residual: Residual
    ) -> None:
        self.L: float = prob.L
        self.max_iter: int = prob.max_iter
        self.H: FloatArray = prob.hessian()
        self.project = project
        self.residual = residual

    def image(self, Z: FloatArray) -> FloatArray:
        """Return :math:`ZH`."""
        ZH: FloatArray = Z @ self.H
        return ZH

    def value(self, Z: FloatArray, A: FloatArray, rows: Rows) -> tuple[FloatArray, FloatArray]:
        """Return the objective per row and :math:`ZH` (the gradient data)."""
        R, k = rows
        return 0.5 * _rowdot(Z, A) - _rowdot(R, Z) + k, A

    def extrapolated(self, A: FloatArray, rows: Rows) -> FloatArray:
        """Return the image itself: the gradient is :math:`yH - R_0`."""
        return A

    def grad(self, Z: FloatArray, C: FloatArray, rows: Rows) -> FloatArray:
        """Return :math:`ZH - R_0`."""
        return C - rows[0]


def _box(prob: Any) -> tuple[Callable[[FloatArray], FloatArray], Residual]:
    """Return the box's projection (in place) and its scaled projected-gradient residual."""
    lo, hi = prob.lo, prob.hi

    def project(Z: FloatArray) -> FloatArray:
        return _clip(Z, lo, hi, out=Z)

    def residual(Y: FloatArray, grad: FloatArray, X: FloatArray) -> tuple[FloatArray, FloatArray]:
        out: tuple[FloatArray, FloatArray] = prob.residual(Y, grad)
        return out

    return project, residual


def _fista_chunk(prob: Any, U: FloatArray, T: FloatArray, Z0: FloatArray) -> ChunkResult:
    """FISTA on a chunk for any coupling (two thin GEMMs per iteration)."""
    return fista_rows(CouplingOracle(prob, *_box(prob)), Z0, (U, T))


def _fista_gram_chunk(prob: Any, U: FloatArray, T: FloatArray, Z0: FloatArray) -> ChunkResult:
    """FISTA on a chunk for :class:`L2Coupling` through the shared Hessian (:class:`GramOracle`)."""
    a, c = prob.a, prob.c
    R0 = (T - prob.b) @ prob.W
    R0 *= c
    R0 += a * U
    const = 0.5 * a * _rowdot(U, U) + 0.5 * c * _rowdot(T - prob.b, T - prob.b)
    return fista_rows(GramOracle(prob, *_box(prob)), Z0, (R0, const))
