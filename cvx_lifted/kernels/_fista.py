# SPDX-License-Identifier: Apache-2.0
r"""Projected FISTA with per-row adaptive restart: the one loop of the state steps (private).

Accelerated projected gradient (Beck & Teboulle 2009) with step :math:`1/L` and, per row, the
gradient and function restart tests of O'Donoghue & Candès (2015), batched over the rows of a
chunk; rows leave the working set as they converge. The loop knows nothing of the problem: a
:class:`FistaOracle` supplies the projection, the stopping residual, and the smooth objective
through an affine *image* of the iterate (:math:`V = ZW^\top + b` for a coupling, :math:`ZH`
for a quadratic with Hessian :math:`H`), which the extrapolation combines instead of
recomputing it. Its users: the box state step (``method="fista"``,
:mod:`~cvx_lifted.kernels._boxqp_fista`) and the state step after a sparsemax layer
(:mod:`~cvx_lifted.kernels._simplex_state`).

Every row returns its last iterate (the one whose residual was tested) unless its objective
exceeds that of the projected start, in which case the best one by objective: the returned
objective never exceeds the start's.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np
from numpy.typing import NDArray

from ._rows import ChunkResult, _pick, _rowdot

FloatArray = NDArray[np.floating[Any]]
Rows = tuple[FloatArray, ...]
"""Per-row data of the objective (e.g. ``(U, T)``); the loop drops the rows that converge."""

__all__ = ["FistaOracle", "Rows", "fista_rows"]


class FistaOracle(Protocol):
    """What :func:`fista_rows` needs of a problem.

    Attributes
    ----------
    L : float
        Lipschitz constant of the gradient (the step is ``1/L``).
    max_iter : int
        Cap on iterations per row.
    """

    L: float
    max_iter: int

    def project(self, Z: FloatArray) -> FloatArray:
        """Return the projection of ``Z`` onto the feasible set (``Z`` may be overwritten)."""
        ...

    def residual(
        self, Y: FloatArray, grad: FloatArray, X: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        """Return the per-row stopping residual at ``Y`` and its threshold.

        ``grad`` is the gradient at ``Y`` and ``X = project(Y - grad / L)``.
        """
        ...

    def image(self, Z: FloatArray) -> FloatArray:
        """Return the affine image of ``Z`` the objective is evaluated through."""
        ...

    def value(self, Z: FloatArray, A: FloatArray, rows: Rows) -> tuple[FloatArray, FloatArray]:
        """Return the objective per row at ``Z`` (image ``A``) and the gradient data there."""
        ...

    def extrapolated(self, A: FloatArray, rows: Rows) -> FloatArray:
        """Return the gradient data at an extrapolated point whose image is ``A``."""
        ...

    def grad(self, Z: FloatArray, C: FloatArray, rows: Rows) -> FloatArray:
        """Return the gradient at ``Z`` from its gradient data ``C``."""
        ...


def fista_rows(oracle: FistaOracle, Z0: FloatArray, rows: Rows) -> ChunkResult:
    """Minimise every row of a chunk by projected FISTA with adaptive restart.

    Parameters
    ----------
    oracle : FistaOracle
        The problem.
    Z0 : ndarray, shape (n, p)
        Starting points (projected first; not modified).
    rows : tuple of ndarray
        Per-row data passed to the oracle (each of length ``n``).

    Returns
    -------
    ChunkResult
        ``(Z, n_iter, residual, converged, f_start, f)`` per row.
    """
    n = Z0.shape[0]
    L, max_iter = oracle.L, oracle.max_iter
    x = oracle.project(Z0.copy())
    Ax = oracle.image(x)
    fx, Cx = oracle.value(x, Ax, rows)
    f_start = fx.copy()
    best, f_best = x.copy(), fx.copy()
    final, f_final = x.copy(), fx.copy()
    n_iter = np.zeros(n, dtype=np.int64)
    res_out = np.full(n, np.inf)
    conv = np.zeros(n, dtype=bool)

    idx = np.arange(n)  # chunk rows of the working set
    y, Ay, Cy = x, Ax, Cx
    tk = np.ones(n)
    for it in range(1, max_iter + 1):
        grad = oracle.grad(y, Cy, rows)
        x_new = oracle.project(y - grad / L)
        res, thr = oracle.residual(y, grad, x_new)
        newly = res <= thr
        An = oracle.image(x_new)
        fn, _ = oracle.value(x_new, An, rows)
        better = fn < f_best[idx]
        if better.any():
            improved = idx[better]
            best[improved] = x_new[better]
            f_best[improved] = fn[better]
        n_iter[idx] = it
        res_out[idx] = res
        conv[idx[newly]] = True
        exiting = newly | (it == max_iter)
        if exiting.any():
            final[idx[exiting]] = x_new[exiting]
            f_final[idx[exiting]] = fn[exiting]
        if exiting.all():
            break
        step = x_new - x
        restart = (_rowdot(grad, step) > 0) | (fn > fx)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * tk * tk))
        beta = np.where(restart, 0.0, (tk - 1.0) / t_next)
        tk = np.where(restart, 1.0, t_next)
        y = x_new + beta[:, None] * step
        Ay = An + beta[:, None] * (An - Ax)
        Cy = oracle.extrapolated(Ay, rows)
        x, Ax, fx = x_new, An, fn
        if newly.any():  # before the last iteration, the rows exiting are the converged ones
            keep = ~newly
            idx = idx[keep]
            rows = tuple(r[keep] for r in rows)
            x, Ax, fx, y, Ay, Cy, tk = (
                x[keep], Ax[keep], fx[keep], y[keep], Ay[keep], Cy[keep], tk[keep]
            )  # fmt: skip
    out, f_out = _pick(best, f_best, final, f_final, f_start)
    return out, n_iter, res_out, conv, f_start, f_out
