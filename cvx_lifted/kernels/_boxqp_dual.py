# SPDX-License-Identifier: Apache-2.0
r"""Semismooth Newton on the dual of the box QP with an ``L2Coupling`` (private; ``method="dual"``).

With :math:`r = t - b`, the row problem
:math:`\min_{lo\le z\le hi} \tfrac a2\|z-u\|^2 + \tfrac c2\|r - Wz\|^2` has the concave dual

.. math::
    g(y) = y^\top r - \tfrac1{2c}\|y\|^2 + \tfrac a2\|z(y) - u\|^2 - y^\top W z(y),
    \qquad z(y) = \operatorname{clip}(u + W^\top y / a, lo, hi),

in :math:`y \in \mathbb R^q`, with :math:`\nabla g = r - y/c - Wz(y)` and generalised Hessian
:math:`-(I/c + W_F W_F^\top / a)` (:math:`F` the coordinates strictly inside the box).

What a step costs, per row block: two thin products (:math:`yW` and :math:`zW^\top`), one product
of the free mask with the :math:`q(q+1)/2` column products of :math:`W` (the Hessians), a
:math:`q\times q` Cholesky per row, and three elementwise passes over the :math:`n\times p` block
(add :math:`u` and clip when :math:`z(y)` is evaluated, the free mask only for the rows that take a
Newton step: the last evaluation of a row, after which it stops, needs none). Nothing else touches
the :math:`n\times p` data:

* **Acceptance on the dual gradient.** A Newton step is accepted when it decreases
  :math:`\|\nabla g\|_2` by the factor :math:`1 - 10^{-4}`; the gradient at the trial point is
  the one the next step needs, so a full step costs one evaluation of :math:`z(y)`. Rows whose
  gradient does not decrease fall back to an Armijo search on :math:`g` itself (the only place
  its value, one more pass, is computed), which keeps the method globally convergent.
* **A certificate without the primal gradient.** On free coordinates the primal gradient at
  :math:`z(y)` is :math:`-cW^\top\nabla g(y)`, and on a bound it points outward by at most that
  much, so the scaled projected-gradient residual of every method (see
  :func:`~cvx_lifted.kernels.boxqp.state_step`) is at most
  :math:`c\,\|W^\top\nabla g\|_\infty \le c\,\max_j \sum_k |w_{kj}|\;\|\nabla g\|_\infty`.
  A row stops when this bound is below ``tol``; the exact residual (a product and five passes)
  is computed only for rows that reach the iteration cap.

The start :math:`y_0 = c(r - Wz_0)` is exact at the solution, so warm starts take one or two
steps. Rows still running after ``max_dual`` steps (a degenerate active set the steps cycle on:
2 of 60,000 Fashion-MNIST rows) are finished by the primal method ``fallback``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
from numpy.typing import NDArray

from ._rows import ChunkResult, _cholesky_solve_qqn, _clip, _rowdot

FloatArray = NDArray[np.floating[Any]]

__all__ = ["dual_chunk"]

_SIGMA = 1e-4


def _evaluate(
    prob: Any, y: FloatArray, U: FloatArray, out: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """Return :math:`z(y)` (written into ``out``) and :math:`Wz(y)`."""
    a, lo, hi = prob.a, prob.lo, prob.hi
    np.matmul(y, prob.W, out=out)
    if a != 1.0:
        out *= 1.0 / a
    out += U
    has_lo, has_hi = bool(np.isfinite(lo)), bool(np.isfinite(hi))
    if has_lo and has_hi:
        np.clip(out, lo, hi, out=out)
    elif has_lo:
        np.maximum(out, lo, out=out)
    elif has_hi:
        np.minimum(out, hi, out=out)
    return out, out @ prob.WT


def _free_mask(prob: Any, z: FloatArray) -> FloatArray | None:
    """Return the coordinates of :math:`z(y)` inside the box (float32, for the Hessian product).

    ``None`` when the box has no finite bound (every coordinate is free). Computed from the
    clipped :math:`z`, only for the rows that take a Newton step.
    """
    lo, hi = prob.lo, prob.hi
    has_lo, has_hi = bool(np.isfinite(lo)), bool(np.isfinite(hi))
    if not (has_lo or has_hi):
        return None
    mask = np.empty(z.shape, dtype=np.float32)
    if has_lo:
        np.greater(z, lo, out=mask)
        if has_hi:
            mask *= z < hi
    else:
        np.less(z, hi, out=mask)
    return mask


def _dual_value(
    prob: Any, y: FloatArray, z: FloatArray, V: FloatArray, U: FloatArray, R: FloatArray
) -> FloatArray:
    D = z - U
    value: FloatArray = (
        _rowdot(y, R)
        - _rowdot(y, y) / (2.0 * prob.c)
        + 0.5 * prob.a * _rowdot(D, D)
        - _rowdot(y, V)
    )
    return value


def _newton(prob: Any, z: FloatArray, g: FloatArray) -> FloatArray:
    r"""Solve :math:`(I/c + W_FW_F^\top/a)d = \nabla g` row by row (an ascent direction).

    The entries of :math:`W_FW_F^\top` are one float32 product of the free mask with the
    column products of :math:`W`: a Hessian accurate to 1e-7 only changes the step by as much,
    and the steps are accepted (and the rows certified) on the exact dual gradient.
    """
    iu, ju, prod = prob.pairs()
    q = prob.W.shape[0]
    free = _free_mask(prob, z)
    if free is None:
        pairsT = np.repeat(prod.sum(axis=0)[:, None], g.shape[0], axis=1)
    else:
        prod32 = prob.workspace.get("pairs32")
        if prod32 is None:
            prod32 = prob.workspace["pairs32"] = np.ascontiguousarray(prod.T, dtype=np.float32)
        pairsT = prod32 @ free.T
    M = np.empty((q, q, g.shape[0]))  # the (q, q, n) layout of _cholesky_solve_qqn
    M[ju, iu] = pairsT  # the lower triangle, which is all the Cholesky reads: the rest stays unset
    if prob.a != 1.0:
        M[ju, iu] *= 1.0 / prob.a  # (scaling all of M multiplied whatever memory it held)
    diag = np.arange(q)
    M[diag, diag] += 1.0 / prob.c
    return _cholesky_solve_qqn(M, g.T).T


def dual_chunk(
    prob: Any,
    U: FloatArray,
    T: FloatArray,
    Z0: FloatArray,
    max_dual: int,
    fallback: Callable[..., ChunkResult],
) -> ChunkResult:
    """Solve the rows of one chunk; returns ``(Z, n_iter, residual, converged, f0, f)``.

    Rows leave the working arrays when they stop, but the ``n x p`` arrays are compacted only
    once at least a third of their rows have stopped: until then a stopped row stays in place,
    frozen (a zero Newton step, so its ``z`` is recomputed unchanged), which costs less than
    copying the rows that go on.
    """
    n = U.shape[0]
    a, c, lo, hi = prob.a, prob.c, prob.lo, prob.hi
    wmax = float(np.max(np.abs(prob.W).sum(axis=0))) if prob.W.size else 0.0
    R = T - prob.b
    inside = (not np.isfinite(lo) or Z0.min() >= lo) and (not np.isfinite(hi) or Z0.max() <= hi)
    z0 = Z0 if inside else _clip(Z0, lo, hi)  # only read from here on
    E0 = R - z0 @ prob.WT
    spare = np.empty_like(U)
    np.subtract(z0, U, out=spare)
    f_start = 0.5 * a * _rowdot(spare, spare) + 0.5 * c * _rowdot(E0, E0)
    y = c * E0
    n_iter = np.zeros(n, dtype=np.int64)
    res_out = np.full(n, np.inf)
    conv = np.zeros(n, dtype=bool)
    final: FloatArray | None = None  # allocated when the first rows stop (unless all at once)
    f_final = f_start.copy()
    idx = np.arange(n)  # the chunk's row of every working row
    live: NDArray[np.bool_] | None = None  # the working rows not yet stopped (None: all)
    Ua, Ra = U, R
    z, V = _evaluate(prob, y, Ua, np.empty_like(U))
    for it in range(max_dual + 1):
        E = Ra - V
        g = E - y / c
        bound = c * wmax * np.max(np.abs(g), axis=1)
        certified = bound <= prob.tol
        exiting = certified | (it == max_dual)
        if live is not None:
            exiting &= live
        if exiting.any():
            every = bool(exiting.all())
            rows = idx if every else idx[exiting]
            zc = z if every else z[exiting]
            Ec = E if every else E[exiting]
            Dc = spare[: zc.shape[0]]
            np.subtract(zc, Ua if every else Ua[exiting], out=Dc)
            if final is None and every and idx.size == n:
                final = zc  # every row stops at once: no copy
            else:
                if final is None:
                    final = np.empty_like(U)
                final[rows] = zc
            f_final[rows] = 0.5 * a * _rowdot(Dc, Dc) + 0.5 * c * _rowdot(Ec, Ec)
            n_iter[rows] = it
            cert = certified[exiting]
            res_out[rows[cert]] = bound[exiting][cert]
            conv[rows[cert]] = True
            if not cert.all():  # the iteration cap: the exact residual of the rows left
                grad_p = (-c * Ec[~cert]) @ prob.W
                grad_p += a * Dc[~cert]
                res, thr = prob.residual(zc[~cert], grad_p)
                res_out[rows[~cert]] = res
                conv[rows[~cert]] = res <= thr
            live = ~exiting if live is None else live & ~exiting
            n_live = int(np.count_nonzero(live))
            if n_live == 0:
                break
            if 3 * n_live <= 2 * idx.size:  # a third or more stopped: compact
                idx, Ua, Ra, y, g = idx[live], Ua[live], Ra[live], y[live], g[live]
                z, V = z[live], V[live]
                live = None
        na = idx.size
        d = _newton(prob, z, g if live is None else g * live[:, None])  # frozen rows: d = 0
        yt = y + d
        zt, Vt = _evaluate(prob, yt, Ua, spare[:na])
        gt = Ra - Vt - yt / c
        worse = _rowdot(gt, gt) > (1.0 - _SIGMA) ** 2 * _rowdot(g, g)
        if live is not None:
            worse &= live
        bad = np.flatnonzero(worse)
        if bad.size:  # Armijo on the dual value for the rows whose gradient did not decrease
            slope = _rowdot(g[bad], d[bad])  # > 0: d ascends the concave dual
            phi = _dual_value(prob, y[bad], z[bad], V[bad], Ua[bad], Ra[bad])
            yb0, db, Ub, Rb = y[bad], d[bad], Ua[bad], Ra[bad]
            todo = np.arange(bad.size)
            tau = 1.0
            for _ in range(40):
                if todo.size == 0:
                    break
                tau *= 0.5
                yb = yb0[todo] + tau * db[todo]
                zb, Vb = _evaluate(prob, yb, Ub[todo], np.empty((todo.size, z.shape[1])))
                pb = _dual_value(prob, yb, zb, Vb, Ub[todo], Rb[todo])
                ok = pb >= phi[todo] + _SIGMA * tau * slope[todo]
                acc = bad[todo[ok]]
                yt[acc], zt[acc], Vt[acc] = yb[ok], zb[ok], Vb[ok]
                todo = todo[~ok]
            if todo.size:  # no ascent in floating point: stay (the iteration cap decides)
                stay = bad[todo]
                yt[stay], zt[stay], Vt[stay] = y[stay], z[stay], V[stay]
        spare = z
        y, z, V = yt, zt, Vt
    assert final is not None  # every row stops at the iteration cap at the latest
    r = np.flatnonzero(~conv)
    if r.size:
        # rows the dual Newton steps stalled on (degenerate active sets, rare): finish them with
        # the primal Newton method, warm started from the dual's answer
        z_r, it_r, res_r, conv_r, _, f_r = fallback(prob, U[r], T[r], final[r])
        better = f_r <= f_final[r]
        final[r[better]] = z_r[better]
        f_final[r[better]] = f_r[better]
        n_iter[r] += it_r
        res_out[r] = np.where(better, res_r, res_out[r])
        conv[r] = np.where(better, conv_r, conv[r])
    worse_start = f_final > f_start
    if worse_start.any():  # never return a point worse than the (projected) start
        final[worse_start] = z0[worse_start]
        f_final[worse_start] = f_start[worse_start]
    return final, n_iter, res_out, conv, f_start, f_final.copy()
