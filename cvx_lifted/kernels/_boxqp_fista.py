# SPDX-License-Identifier: Apache-2.0
r"""FISTA with adaptive restart for the box state step (private; ``method="fista"``).

Accelerated projected gradient with step :math:`1/L` and per-row restart (gradient and function
tests, O'Donoghue & Candès 2015); see :func:`~cvx_lifted.kernels.boxqp.state_step`. ``prob`` is
the ``_Problem`` of :mod:`~cvx_lifted.kernels.boxqp` (the data shared by all chunks).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._rows import ChunkResult, _clip, _pick, _rowdot

FloatArray = NDArray[np.floating[Any]]

__all__ = ["_fista_chunk", "_fista_gram_chunk"]


def _fista_chunk(prob: Any, U: FloatArray, T: FloatArray, Z0: FloatArray) -> ChunkResult:
    n = U.shape[0]
    lo, hi, L = prob.lo, prob.hi, prob.L
    x = _clip(Z0, lo, hi)
    Vx = prob.image(x)
    fx, Gx = prob.objective(x, U, Vx, T)
    f_start = fx.copy()
    best = x.copy()
    f_best = fx.copy()
    final = x.copy()
    f_final = fx.copy()
    n_iter = np.zeros(n, dtype=np.int64)
    res_out = np.full(n, np.inf)
    conv = np.zeros(n, dtype=bool)

    idx = np.arange(n)  # chunk rows of the working set
    Ua, Ta = U, T
    y, Vy, Gy = x, Vx, Gx
    tk = np.ones(n)
    for it in range(1, prob.max_iter + 1):
        grad = prob.grad(y, Ua, Gy)
        res, thr = prob.residual(y, grad)
        newly = res <= thr
        x_new = y - grad / L
        _clip(x_new, lo, hi, out=x_new)
        Vn = prob.image(x_new)
        fn, Gn = prob.objective(x_new, Ua, Vn, Ta)
        better = fn < f_best[idx]
        if better.any():
            rows = idx[better]
            best[rows] = x_new[better]
            f_best[rows] = fn[better]
        n_iter[idx] = it
        res_out[idx] = res
        conv[idx[newly]] = True
        exiting = newly | (it == prob.max_iter)
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
        Vy = Vn + beta[:, None] * (Vn - Vx)
        _, Gy = prob.coupling._eval(Vy, Ta)
        x, Vx, fx = x_new, Vn, fn
        if newly.any():
            keep = ~newly
            idx = idx[keep]
            Ua, Ta = Ua[keep], Ta[keep]
            x, Vx, fx, y, Vy, Gy, tk = (
                x[keep],
                Vx[keep],
                fx[keep],
                y[keep],
                Vy[keep],
                Gy[keep],
                tk[keep],
            )
    out, f_out = _pick(best, f_best, final, f_final, f_start)
    return out, n_iter, res_out, conv, f_start, f_out


def _fista_gram_chunk(prob: Any, U: FloatArray, T: FloatArray, Z0: FloatArray) -> ChunkResult:
    r"""FISTA for :class:`L2Coupling` with the shared Hessian: one (n,p)@(p,p) GEMM per iteration.

    With :math:`H = aI + cW^\top W` and :math:`R_0 = aU + c(T - b)W`,
    :math:`\nabla f(z) = zH - R_0` and
    :math:`f(z) = \tfrac12 z^\top H z - R_0^\top z + \text{const}`; :math:`yH` at the
    extrapolated point is a combination of the stored :math:`xH`.
    """
    n = U.shape[0]
    a, c, lo, hi, L = prob.a, prob.c, prob.lo, prob.hi, prob.L
    H = prob.hessian()
    R0 = (T - prob.b) @ prob.W
    R0 *= c
    R0 += a * U
    const = 0.5 * a * _rowdot(U, U) + 0.5 * c * _rowdot(T - prob.b, T - prob.b)

    def fval(Z: FloatArray, ZH: FloatArray, R: FloatArray, k: FloatArray) -> FloatArray:
        return 0.5 * _rowdot(Z, ZH) - _rowdot(R, Z) + k

    x = _clip(Z0, lo, hi)
    xH = x @ H
    fx = fval(x, xH, R0, const)
    f_start = fx.copy()
    best = x.copy()
    f_best = fx.copy()
    final = x.copy()
    f_final = fx.copy()
    n_iter = np.zeros(n, dtype=np.int64)
    res_out = np.full(n, np.inf)
    conv = np.zeros(n, dtype=bool)
    idx = np.arange(n)
    Ra, ka = R0, const
    y, yH = x, xH
    tk = np.ones(n)
    for it in range(1, prob.max_iter + 1):
        grad = yH - Ra
        res, thr = prob.residual(y, grad)
        newly = res <= thr
        x_new = y - grad / L
        _clip(x_new, lo, hi, out=x_new)
        xnH = x_new @ H
        fn = fval(x_new, xnH, Ra, ka)
        better = fn < f_best[idx]
        if better.any():
            rows = idx[better]
            best[rows] = x_new[better]
            f_best[rows] = fn[better]
        n_iter[idx] = it
        res_out[idx] = res
        conv[idx[newly]] = True
        exiting = newly | (it == prob.max_iter)
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
        yH = xnH + beta[:, None] * (xnH - xH)
        x, xH, fx = x_new, xnH, fn
        if newly.any():
            keep = ~newly
            idx = idx[keep]
            Ra, ka = Ra[keep], ka[keep]
            x, xH, fx, y, yH, tk = x[keep], xH[keep], fx[keep], y[keep], yH[keep], tk[keep]
    out, f_out = _pick(best, f_best, final, f_final, f_start)
    return out, n_iter, res_out, conv, f_start, f_out
