# SPDX-License-Identifier: Apache-2.0
r"""Column-wise L-BFGS for the separable weight steps of :mod:`~cvx_lifted.kernels.glm` (private).

The weight steps minimise :math:`F(\Theta) = \sum_j \bigl[\sum_i \ell_{ij}(u_{ij})
+ \tfrac\alpha2\|w_j\|^2\bigr]` over :math:`\Theta = [W^\top; b^\top]` with
:math:`U = [X, \mathbf 1]\Theta`. On data of MNIST size their cost is the products over the
data, :math:`m\times p` by :math:`p\times q`: the image :math:`XD` of a search direction and the
moments :math:`X^\top G` of a gradient. :func:`lbfgs_columns` takes two per iteration and no
other: the image :math:`U` of the start is given (the weight step of the previous sweep left it
up to date), the scale of the stopping test is bounded without a product (:class:`GradScale`), and
no gradient is computed after the last iteration when ``max_iter`` stops the run.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.linalg
import scipy.optimize
from numpy.typing import NDArray

FloatArray = NDArray[np.floating[Any]]

__all__ = ["GradScale", "armijo_columns", "colsum", "lbfgs_columns", "lbfgs_preconditioned"]


class GradScale:
    r"""The scale :math:`s` of a relative gradient test :math:`\|\nabla F\| \le \text{tol}\,s`.

    :math:`s = \|[X, \mathbf 1]^\top M\|_F` costs a product over the data; it is computed only
    when a gradient is small enough for the test to pass against the upper bound
    ``bound`` :math:`\ge s` (:math:`\|[X, \mathbf 1]\|_2\|M\|_F`), which costs nothing.

    Parameters
    ----------
    exact : callable
        ``exact() -> float``, the scale (one product).
    bound : float
        An upper bound of the scale (``inf`` computes the scale at the first test).
    """

    def __init__(self, exact: Callable[[], float], bound: float) -> None:
        self._exact = exact
        self.bound = float(bound)
        self.value: float | None = None

    def passes(self, grad_norm: float, tol: float) -> bool:
        """Return whether ``grad_norm <= tol * scale`` (computing the scale only if it may)."""
        if self.value is None:
            if not grad_norm <= tol * self.bound:
                return False
            self.value = max(float(self._exact()), np.finfo(np.float64).tiny)
        return grad_norm <= tol * self.value

    def relative(self, grad_norm: float) -> float:
        """Return ``grad_norm`` over the scale, or over its bound if it was never needed."""
        scale = self.value if self.value is not None else self.bound
        return grad_norm / max(scale, np.finfo(np.float64).tiny)


def lbfgs_preconditioned(
    obj_grad: Callable[[NDArray[np.float64]], tuple[float, NDArray[np.float64]]],
    theta0: NDArray[np.float64],
    R: NDArray[np.float64] | None,
    g_scale: float,
    tol: float,
    max_iter: int,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    r"""Minimise a smooth function of :math:`\Theta` by L-BFGS-B in the variables :math:`R\Theta`.

    Stops at the first accepted iterate with :math:`\|\nabla F(\Theta)\|_F \le` ``tol`` ``g_scale``.
    Returns the final iterate if its objective does not exceed the start's, else the best point
    evaluated (the start included), so the result is never worse than ``theta0``.
    """
    shape = theta0.shape

    def to_theta(phi: NDArray[np.float64]) -> NDArray[np.float64]:
        if R is None:
            return phi
        out: NDArray[np.float64] = scipy.linalg.solve_triangular(R, phi, check_finite=False)
        return out

    F_start, grad_start = obj_grad(theta0)
    state: dict[str, Any] = {"x": None, "g": np.inf, "n_eval": 0, "best": (F_start, theta0)}

    def fun(phi_flat: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
        theta = to_theta(phi_flat.reshape(shape))
        val, grad = obj_grad(theta)
        state["n_eval"] += 1
        state["x"] = phi_flat.copy()
        state["g"] = float(np.linalg.norm(grad)) / g_scale
        if val < state["best"][0]:
            state["best"] = (val, theta)
        if R is not None:
            grad = scipy.linalg.solve_triangular(R, grad, trans="T", check_finite=False)
        return val, grad.ravel()

    def callback(intermediate_result: scipy.optimize.OptimizeResult) -> None:
        if state["x"] is not None and np.array_equal(state["x"], intermediate_result.x):
            if state["g"] <= tol:
                raise StopIteration

    grad_rel = float(np.linalg.norm(grad_start)) / g_scale
    n_iter = 0
    if grad_rel > tol:
        phi0 = theta0 if R is None else R @ theta0
        res = scipy.optimize.minimize(
            fun,
            phi0.ravel(),
            jac=True,
            method="L-BFGS-B",
            callback=callback,
            options={"maxiter": max_iter, "maxfun": 2 * max_iter + 20, "gtol": 0.0, "ftol": 0.0},
        )
        n_iter = int(res.nit)
        grad_rel = state["g"]
        theta_last = to_theta(np.asarray(res.x).reshape(shape))
        F_last = float(res.fun)
        if F_last <= F_start:  # prefer the final iterate (objective values resolve only sqrt(eps))
            state["best"] = (F_last, theta_last)
    F_best, theta = state["best"]
    info = {
        "n_iter": n_iter,
        "n_eval": state["n_eval"],
        "grad_norm": grad_rel,
        "converged": bool(grad_rel <= tol),
        "objective": float(F_best),
        "objective_start": float(F_start),
    }
    return theta, info


def colsum(A: FloatArray, B: FloatArray) -> NDArray[np.float64]:
    r"""Column-wise inner products :math:`\sum_i a_{ij} b_{ij}`."""
    out: NDArray[np.float64] = np.einsum("ij,ij->j", A, B, dtype=np.float64)
    return out


def armijo_columns(
    line: Callable[
        [NDArray[np.float64]],
        tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.floating] | None],
    ],
    f0: NDArray[np.float64],
    ww: NDArray[np.float64],
    wd: NDArray[np.float64],
    dd: NDArray[np.float64],
    slope0: NDArray[np.float64],
    alpha: float,
) -> tuple[
    NDArray[np.float64], NDArray[np.float64], NDArray[np.floating] | None, NDArray[np.bool_]
]:
    r"""Per-column line search from the unit step; returns the steps and the new objectives.

    Column :math:`j` of the objective along the line is the convex function
    :math:`\varphi_j(t) = \sum_i \bigl[\Phi^*(u_{ij} + tv_{ij}) - (u_{ij} + tv_{ij})t_{ij}\bigr]
    + \tfrac\alpha2\|w_j + td_j\|^2` (``f0`` :math:`= \varphi_j(0)`, ``slope0``
    :math:`= \varphi_j'(0) < 0`, ``ww``, ``wd``, ``dd`` the column products of the weight part);
    ``line(t)`` returns the data part of :math:`\varphi_j(t_j)`, its derivative and, optionally,
    the residual :math:`\phi(U + Vt) - T` it computed on the way.

    A step is accepted when it decreases the objective sufficiently (Armijo,
    :math:`\varphi_j(t) \le \varphi_j(0) + 10^{-4} t \varphi_j'(0)`) or when
    :math:`\varphi_j'(t) \le 0` (then :math:`\varphi_j` decreases on all of :math:`[0, t]`: a test
    that stays exact when the decrease is below the rounding of :math:`\varphi_j`). Otherwise the
    step moves to the root of the secant of :math:`\varphi_j'` (exact for a quadratic), kept in
    :math:`[0.05t, 0.95t]`. Each trial is one pass over ``U``; the unit step is usually accepted.
    Columns that find no acceptable step keep :math:`t_j = 0`: the objective never increases.

    Returns
    -------
    step, f_new : ndarray, shape (q,)
        The accepted steps and the objectives there.
    resid : ndarray or None
        The residual :math:`\phi(U + V\,\mathrm{diag}(t)) - T` at the accepted steps, in the columns
        marked by ``filled`` (``None`` when ``line`` returns none).
    filled : ndarray of bool, shape (q,)
        The columns of ``resid`` that hold the residual at the accepted step.
    """
    q = f0.shape[0]
    t = np.ones(q)
    active = slope0 < 0
    step = np.zeros(q)
    f_new = f0.copy()
    resid: NDArray[np.floating] | None = None
    filled = np.zeros(q, dtype=bool)
    for trial in range(40):
        if not active.any():
            break
        tt = np.where(active, t, 0.0)
        f, d1, P = line(tt)
        f += 0.5 * alpha * (ww + 2 * tt * wd + tt * tt * dd)
        d1 += alpha * (wd + tt * dd)
        ok = active & ((f <= f0 + 1e-4 * tt * slope0) | (d1 <= 0))
        step[ok], f_new[ok] = t[ok], f[ok]
        if P is not None:
            if trial == 0:  # columns not searched were evaluated at t = 0, their final step
                resid = P
                filled = ok | ~active
            elif ok.any():
                assert resid is not None
                resid[:, ok] = P[:, ok]
                filled |= ok
        active &= ~ok
        with np.errstate(divide="ignore", invalid="ignore"):
            t_sec = t * slope0 / (slope0 - d1)
        t_sec = np.where(np.isnan(t_sec), 0.5 * t, t_sec)
        t = np.where(active, np.clip(t_sec, 0.05 * t, 0.95 * t), t)
        active &= t > 1e-30
    return step, f_new, resid, filled


def lbfgs_columns(
    image_dir: Callable[[NDArray[np.float64]], Any],
    moments: Callable[[Any], NDArray[np.float64]],
    residual: Callable[[Any], Any],
    objective_cols: Callable[[Any, NDArray[np.float64]], NDArray[np.float64]],
    line_cols: Callable[
        [Any, Any, NDArray[np.float64]],
        tuple[NDArray[np.float64], NDArray[np.float64], Any],
    ],
    alpha: float,
    theta0: NDArray[np.float64],
    U0: Any,
    R: NDArray[np.float64],
    scale: GradScale,
    tol: float,
    max_iter: int,
    *,
    advance: Callable[[Any, Any, NDArray[np.float64]], Any],
    memory: int = 8,
    carry: dict[str, Any] | None = None,
) -> tuple[NDArray[np.float64], Any, dict[str, Any]]:
    r"""Column-wise L-BFGS for a separable GLM W-step (the default method of the W-steps).

    The objective is :math:`F(\Theta) = \sum_j \bigl[\sum_i \ell_{ij}(u_{ij})
    + \tfrac\alpha2\|w_j\|^2\bigr]` with :math:`U = [X, \mathbf 1]\Theta`; ``residual(U)`` is
    :math:`\partial\ell/\partial U` (so :math:`\nabla F = [X, \mathbf 1]^\top` ``residual(U)``
    :math:`+ \alpha[W^\top; 0]`), ``objective_cols(U, Theta)`` the per-column objective and
    ``line_cols(U, V, t)`` those sums at :math:`U + V\operatorname{diag}(t)`, their derivatives in
    :math:`t` and optionally the residual there (reused as the next gradient's residual).
    ``advance(U, V, t)`` returns :math:`U + V\operatorname{diag}(t)` (in memory: ``U`` changed in
    place). :math:`U` and :math:`V` are touched only through these callables, so they may be
    row-partitioned arrays held elsewhere (:mod:`cvx_lifted.kernels._rowops`).

    The problem separates over the :math:`q` columns of :math:`\Theta`; every column runs its own
    L-BFGS recursion (vectorised across columns) in the preconditioned variables
    :math:`\Phi = R\Theta`, with its own initial scaling and its own Armijo backtracking
    (:func:`armijo_columns`). Since the objective is evaluated along the line from the image
    :math:`U` and the image :math:`V` of the direction, an iteration costs two products over the
    data (the direction's image and the gradient's moments) and usually one pass over :math:`U`,
    against two per *function evaluation* for a generic L-BFGS. The last iteration allowed by
    ``max_iter`` computes no gradient. Stops when :math:`\|\nabla F\|_F \le` ``tol`` times the
    scale (:class:`GradScale`).

    Returns
    -------
    theta : ndarray, shape (p + 1, q)
        The last iterate, or ``theta0`` if rounding made the total objective worse.
    U : ndarray or None
        ``U0`` updated in place to the image of ``theta`` (``None`` when ``theta0`` is returned:
        ``U0`` was changed and is the image of neither).
    info : dict
        ``n_iter``, ``grad_norm`` (relative, at the last iterate whose gradient was computed:
        the returned one when the test passed, the one before the last step when ``max_iter``
        stopped the run; over the bound of the scale when the exact scale was never needed, so
        then a lower bound), ``converged``, ``objective``, ``objective_start``,
        ``column_grad_norm``.
    """
    # kept whole: a numerical kernel; the two-loop recursion, the line search and the pair
    # update share the per-column state of one iteration, which a split would pass around.
    p = theta0.shape[0] - 1

    def gradient(Z: NDArray[np.floating], theta: NDArray[np.float64]) -> NDArray[np.float64]:
        G = moments(Z)
        G[:p] += alpha * theta[:p]
        return G

    def precondition(G: NDArray[np.float64]) -> NDArray[np.float64]:
        x: NDArray[np.float64] = scipy.linalg.solve_triangular(R, G, trans="T", check_finite=False)
        return x

    theta = theta0.copy()
    U = U0  # updated in place (the caller passes an image it owns)
    f_cols = objective_cols(U, theta)
    F_start = float(f_cols.sum())
    g = gradient(residual(U), theta)
    g_norm = float(np.linalg.norm(g))
    converged = scale.passes(g_norm, tol)
    gP = precondition(g)
    pairs: list[tuple[FloatArray, FloatArray, FloatArray]] = []
    if carry is not None:
        pairs = list(carry.get("pairs", []))
        pending = carry.get("pending")
        if pending is not None:  # the last step of the previous call, completed here
            pairs.append(_cross_pair(pending[0], gP - pending[1]))
            del pairs[:-memory]
    last: tuple[FloatArray, FloatArray] | None = None
    n_iter = 0
    while not converged and n_iter < max_iter:
        r = gP.copy()
        coefs = []
        for s, y, rho in reversed(pairs):
            a = rho * colsum(s, r)
            r -= a * y
            coefs.append(a)
        if pairs:
            s, y, _ = pairs[-1]
            yy = colsum(y, y)
            with np.errstate(divide="ignore", invalid="ignore"):
                gamma = np.where(yy > 0, colsum(s, y) / yy, 1.0)
            r *= gamma
        for (s, y, rho), a in zip(pairs, reversed(coefs), strict=True):
            r += s * (a - rho * colsum(y, r))
        dP = -r
        slope = colsum(dP, gP)
        bad = ~(slope < 0)
        if bad.any():  # not a descent direction for some columns: steepest descent there
            dP[:, bad] = -gP[:, bad]
            slope[bad] = -colsum(gP[:, bad], gP[:, bad])
        D = scipy.linalg.solve_triangular(R, dP, check_finite=False)
        V = image_dir(D)
        t, f_cols, resid, filled = armijo_columns(
            functools.partial(line_cols, U, V),
            f_cols,
            colsum(theta[:p], theta[:p]),
            colsum(theta[:p], D[:p]),
            colsum(D[:p], D[:p]),
            slope,
            alpha,
        )
        theta += D * t
        U = advance(U, V, t)
        del V
        n_iter += 1
        last = (dP * t, gP)
        if n_iter == max_iter:  # the gradient here would serve neither a test nor a step
            break
        if resid is None or not filled.all():
            resid = residual(U)
        g = gradient(resid, theta)
        del resid
        gP_new = precondition(g)
        pairs.append(_pair(last[0], gP_new - gP))
        last = None
        if len(pairs) > memory:
            pairs.pop(0)
        gP = gP_new
        g_norm = float(np.linalg.norm(g))
        converged = scale.passes(g_norm, tol)
    F = float(f_cols.sum())  # the line searches return each column's objective at its step
    info = {
        "n_iter": n_iter,
        "grad_norm": scale.relative(g_norm),
        "converged": bool(converged),
        "objective": F,
        "objective_start": F_start,
        "column_grad_norm": np.array([scale.relative(float(v)) for v in np.linalg.norm(g, axis=0)]),
    }
    if F > F_start:  # rounding only (every accepted step decreases its column): keep the start
        if carry is not None:
            carry.clear()
        return theta0, None, {**info, "objective": F_start}
    if carry is not None:
        carry["pairs"], carry["pending"] = pairs, last
    return theta, U, info


def _cross_pair(
    s: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    r"""Return the pair of a step whose gradients were taken with different targets, screened.

    Between two calls the targets change, so :math:`y` holds the change of the linear term
    besides the curvature. In the preconditioned variables the Hessian lies between 0 and
    :math:`I`, so an exact pair has :math:`0 < y^\top y \le s^\top y`; columns that fail this
    test drop the pair (``s = y = 0``).
    """
    sy, yy = colsum(s, y), colsum(y, y)
    bad = ~((sy > 0) & (yy <= sy * (1.0 + 1e-8)))
    if bad.any():
        s, y = s.copy(), y.copy()
        s[:, bad] = 0.0
        y[:, bad] = 0.0
    return _pair(s, y)


def _pair(
    s: NDArray[np.float64], y: NDArray[np.float64]
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Return the L-BFGS pair ``(s, y, 1/s'y)`` per column (0 where the curvature is not > 0)."""
    sy = colsum(s, y)
    with np.errstate(divide="ignore"):
        return s, y, np.where(sy > 1e-300, 1.0 / sy, 0.0)
