# SPDX-License-Identifier: Apache-2.0
r"""Weight steps that are not plain ridge regressions (Fenchel–Young layers, softmax output).

Rows are samples: :math:`X` is :math:`m\times p`, :math:`U = XW^\top + \mathbf 1 b^\top` is
:math:`m\times q`, :math:`W` is :math:`q\times p`. Both problems separate over the :math:`q` output
columns, which the solvers exploit (per-column momentum, restarts and safeguards).

Method choice for :func:`relu_fenchel_wstep`, measured on Fashion-MNIST pixels in [0, 1]
(m = 10,000, p = 784, q = 300, :math:`\alpha = 1`, targets
:math:`T = \max(XW_t^\top + b_t + 0.3\,\varepsilon, 0)` (half of them zero), warm start at the plain
ridge solution (relative gradient :math:`\|\nabla F\|_F / \|\nabla F(0)\|_F = 1.9\text{e-}2`), one
BLAS thread. GEMMs of size m·p·q are counted because the shared 2-core machine was loaded during
the runs (wall times, inflated about 3x, in brackets; one GEMM took 0.14 s unloaded):

==================================================  =============  =============  ===============
method                                              to 1e-3        to 1e-4        to 1e-5
==================================================  =============  =============  ===============
MM (one ridge solve per step, same Gram)            > 300 (150 s)  —              > 4000
accelerated MM (FISTA in the Gram metric, restart)  39 (56 s)      113 (101 s)    287 (95 s)
semismooth Newton, CG preconditioned by the Gram    44 (22 s)      217 (84 s)     > 135 s
L-BFGS (scipy) on Gram-preconditioned variables     **24** (9 s)   **82** (32 s)  **252** (110 s)
==================================================  =============  =============  ===============

The problem is a ridge regression in which the entries with :math:`u_{ij} < 0` are "missing" (their
loss :math:`\tfrac12(u-t)^2 - \tfrac12 u^2 = -ut` is linear), so plain MM converges at the rate of
the missing information, and the Newton model keeps changing with the sign pattern. Both remaining
methods reuse the Cholesky factor :math:`R` of the plain ReLU W-step (:math:`A = R^\top R`): L-BFGS
runs on :math:`\Phi = R\Theta`, in which the Hessian is between 0 and :math:`I`. L-BFGS needs the
fewest GEMMs at every tolerance; the accelerated MM is kept as ``method="amm"``.

The default, ``method="lbfgs"``, goes further: the problem separates over the columns, so each
column runs its own L-BFGS recursion and its own backtracking line search, and the objective along
a line is evaluated from the image of the direction (one GEMM per iteration instead of two per
function evaluation). Measured on the same data (m = 10,000 rows, warm start at the ridge solution,
one BLAS thread; scipy's L-BFGS-B is ``method="scipy"``): after 3 iterations 2.2 s vs 2.9 s
(relative gradient 3.0e-3 vs 1.8e-3), after 10 iterations 6.2 s vs 6.6 s (5.0e-5 vs 3.4e-4); it
also converges to 1e-12 where scipy's line search stalls near 1e-9. Inside BCD on MNIST-10k
(784-300-10, λ = 1, 10 sweeps of 3 iterations) the W0 blocks took 12.2 s instead of 16.3 s and
ended at a lower lifted objective (0.06346 vs 0.06494), with the same validation accuracy
(0.9356).

:func:`fy_wstep` runs the same column-wise L-BFGS for any elementwise Fenchel–Young pair
(:class:`~cvx_lifted.kernels.fenchel_young.ScalarFY`): the line search evaluates
:math:`\Phi^*` and :math:`\phi` on :math:`U + tV` and hands :math:`\phi` on to the next
gradient, and the preconditioner is the factor of
:math:`L[X, \mathbf 1]^\top[X, \mathbf 1] + \alpha I_W` with :math:`L = \sup\phi'` (1/4 for the
sigmoid), refactored from the shared Gram in :math:`O(p^3)`. Measured on Fashion-MNIST pixels
(m = 10,000, p = 784, q = 300, float32, :math:`\alpha = 1`, warm start at the ridge solution,
3 iterations, one BLAS thread, a shared and loaded machine, three runs each): ReLU 0.8-1.8 s,
sigmoid 1.5-2.0 s, tanh 1.5-2.5 s; the extra cost is the transcendental passes over the
:math:`m\times q` image (a float32 ``logaddexp`` over 3·10^6 entries takes about 0.1 s, as much
as one of the two GEMMs).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, cast

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from cvx_lifted import threads

from ._lbfgs import GradScale, colsum, lbfgs_columns, lbfgs_preconditioned
from ._result import StepResult
from ._validation import as_float_array, float_dtype, positive_int, positive_scalar
from .fenchel_young import RELU_FY, ScalarFY
from .ridge import Ridge

__all__ = [
    "fy_step",
    "fy_wstep",
    "relu_fenchel_step",
    "relu_fenchel_wstep",
]


def _check_weights(
    W0: ArrayLike, b0: ArrayLike, q: int, p: int
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    W = np.asarray(as_float_array(W0, "W0", ndim=2, dtype=np.float64), dtype=np.float64)
    b = np.asarray(as_float_array(b0, "b0", ndim=1, dtype=np.float64), dtype=np.float64)
    if W.shape != (q, p):
        raise ValueError(f"W0 must have shape {(q, p)}, got {W.shape}")
    if b.shape != (q,):
        raise ValueError(f"b0 must have shape ({q},), got {b.shape}")
    return W, b


def _check_xt(
    X: ArrayLike, T: ArrayLike, tname: str
) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
    X_arr = as_float_array(X, "X", ndim=2)
    T_arr = as_float_array(T, tname, ndim=2)
    if T_arr.shape[0] != X_arr.shape[0]:
        raise ValueError(
            f"{tname} must have {X_arr.shape[0]} rows (one per row of X), got shape {T_arr.shape}"
        )
    if X_arr.shape[0] < 1 or X_arr.shape[1] < 1 or T_arr.shape[1] < 1:
        raise ValueError(f"X and {tname} must be non-empty, got {X_arr.shape} and {T_arr.shape}")
    dt = float_dtype(X_arr, T_arr)
    return X_arr.astype(dt, copy=False), T_arr.astype(dt, copy=False)


def _check_ridge(ridge: Ridge | None, X: NDArray[np.floating], alpha: float) -> Ridge:
    """Return ``ridge`` after checking that it was built on ``X`` and ``alpha``, else build one."""
    if ridge is None:
        return Ridge(X, alpha)
    if not isinstance(ridge, Ridge):
        raise ValueError(f"ridge must be a Ridge instance, got {type(ridge).__name__}")
    if ridge.X.shape != X.shape or ridge.alpha != alpha or not ridge.fit_intercept:
        raise ValueError(
            "ridge must be built on X with the same alpha and fit_intercept=True "
            f"(got X shape {ridge.X.shape}, alpha {ridge.alpha}, fit_intercept "
            f"{ridge.fit_intercept})"
        )
    return ridge


def _chunk_rows(q: int) -> int:
    """Rows per chunk of the fused elementwise passes: about 2 MB of float64 per chunk."""
    return max(256, 2**18 // max(q, 1))


#: Rows from which an elementwise pass over a layer's image runs in :data:`_PARTS` parts.
_PARTS_FROM_ROWS = 16_384
#: Parts of such a pass. A fixed number: the parts' sums add in the same order on any number of
#: threads, so the results do not depend on the threads the chooser picks.
_PARTS = 4


def _in_parts(fn: Callable[[int, int], Any], m: int, key: str) -> list[Any]:
    """Return ``fn(start, stop)`` over equal parts of ``m`` rows, on measured worker threads.

    :func:`cvx_lifted.threads.map_row_parts`: on one or two threads during training with
    ``blas_threads="auto"`` (NumPy releases the GIL in the passes), else in order.
    """
    return threads.map_row_parts(fn, m, _PARTS if m >= _PARTS_FROM_ROWS else 1, key=key)


def _image_theta(Xp: NDArray[np.floating], theta: NDArray[Any]) -> NDArray[np.floating]:
    r"""Return :math:`[X, \mathbf 1]\Theta` of a chunk (``theta`` in the dtype of ``Xp``)."""
    p = theta.shape[0] - 1
    V = threads.matmul(Xp, theta[:p])
    V += theta[p]
    return V


def _aug_moments(Xp: NDArray[np.floating], G: NDArray[np.floating]) -> NDArray[np.float64]:
    r"""Return :math:`[X, \mathbf 1]^\top G` (float64) of a chunk, in the product dtype."""
    p = Xp.shape[1]
    out = np.empty((p + 1, G.shape[1]))
    out[:p] = threads.matmul(Xp.T, G.astype(Xp.dtype, copy=False))
    out[p] = G.sum(axis=0, dtype=np.float64)
    return out


class _Products:
    r"""The products over the data of a GLM weight step, in the precision of ``ridge``.

    ``X`` is multiplied in :attr:`Ridge.product_dtype` (float32 for large float64 data, see
    :mod:`~cvx_lifted.kernels.ridge`) with the thread counts of :func:`cvx_lifted.threads.matmul`,
    chunk by chunk through the ridge's :class:`~cvx_lifted.kernels._rowops.RowOps`; images are
    returned in that dtype (:meth:`image_dir`) or in the dtype of ``X`` (:meth:`image`), moments
    in float64.
    """

    def __init__(self, ridge: Ridge, dt: np.dtype, q: int) -> None:
        self.ridge = ridge
        self.ops = ridge.ops
        self.Xp = ridge.product_matrix()
        self.pd = np.dtype(self.Xp.dtype)
        self.dt = dt
        self.p = self.Xp.shape[1]
        self.q = q

    def image_dir(self, theta: NDArray[np.float64]) -> Any:
        return self.ops.map(
            _image_theta, self.Xp, theta=theta.astype(self.pd), cols=self.q, dtype=self.pd
        )

    def image(self, theta: NDArray[np.float64]) -> NDArray[np.floating]:
        return cast(NDArray[np.floating], self.image_dir(theta).astype(self.dt, copy=False))

    def moments(self, G: Any) -> NDArray[np.float64]:
        return cast(NDArray[np.float64], self.ops.sum(_aug_moments, self.Xp, G))

    def norm(self, T: Any) -> float:
        r""":math:`\|T\|_F` of a row-partitioned ``T``."""
        return float(np.sqrt(self.ops.sum(_squares, T)))

    def bound(self, M_norm: float) -> float:
        r"""Upper bound of :math:`\|[X, \mathbf 1]^\top M\|_F` from :math:`\|M\|_F` (no product).

        :math:`\|[X, \mathbf 1]\|_2^2 \le \lambda_{\max}(A) \le \|A\|_F` for the regularised
        Gram :math:`A` of the ridge.
        """
        fro = self.ridge.workspace.get("gram_fro")
        if fro is None:
            fro = self.ridge.workspace["gram_fro"] = float(np.linalg.norm(self.ridge.gram))
        return float(np.sqrt(fro)) * M_norm * (1.0 + 1e-12)

    def start(
        self, W: NDArray[np.float64], b: NDArray[np.float64], theta0: NDArray[np.float64]
    ) -> Any:
        """Return an image of ``theta0`` the caller may change: the remembered one, or a new one.

        A weight step that starts where the previous one on this ridge ended also continues its
        L-BFGS memory (:attr:`carry`); any other start forgets it.
        """
        U = self.ridge.recall_image(W, b)
        self.carry: dict[str, Any] = self.ridge.workspace.setdefault("lbfgs", {})
        if U is None:
            self.carry.clear()
            return self.image_dir(theta0)
        self.ridge.forget_image()  # it is about to change in place
        return U

    def finish(
        self, theta: NDArray[np.float64], U: Any
    ) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
        """Return ``(W, b)`` in the dtype of ``X`` and remember ``U`` as their image."""
        W_out = np.ascontiguousarray(theta[: self.p].T).astype(self.dt, copy=False)
        b_out = theta[self.p].astype(self.dt, copy=True)
        if U is not None:
            self.ridge.remember_image(W_out, b_out, U)
        return W_out, b_out


def _squares(T: NDArray[np.floating]) -> float:
    return float(np.vdot(T, T))


def _relu_data_cols(U: NDArray[np.floating], T: NDArray[np.floating]) -> NDArray[np.float64]:
    r"""Per-column data term :math:`\sum_i \tfrac12\max(u,0)^2 - ut` of a chunk of rows."""
    return _relu_objective_sums(U, T, with_uT=False)[0]


def _relu_fy_cols(
    U: NDArray[np.floating], T: NDArray[np.floating], W: NDArray[np.float64], alpha: float
) -> NDArray[np.float64]:
    r"""Per-column objective :math:`\sum_i \tfrac12\max(u,0)^2 - ut + \tfrac\alpha2\|w_j\|^2`."""
    return cast(
        NDArray[np.float64], _relu_data_cols(U, T) + 0.5 * alpha * np.einsum("ij,ij->i", W, W)
    )


def _relu_objective_sums(
    U: NDArray[np.floating], T: NDArray[np.floating], with_uT: bool = True
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Return the data term per column and :math:`\sum_i u_{ij}t_{ij}` of a chunk (one pass).

    The second is zeros when not ``with_uT``.
    """
    m, q = U.shape
    rows = _chunk_rows(q)

    def part(start: int, stop: int) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        val = np.zeros(q)
        uT = np.zeros(q)
        for s in range(start, stop, rows):
            u, t = U[s : min(s + rows, stop)], T[s : min(s + rows, stop)]
            up = np.maximum(u, 0.0)
            val += colsum(0.5 * up - t, up)  # 1/2 max(u,0)^2 - max(u,0) t
            np.minimum(u, 0.0, out=up)
            val -= colsum(up, t)
            if with_uT:
                uT += colsum(u, t)
        return val, uT

    parts = _in_parts(part, m, "glm:relu_objective")
    return sum(p[0] for p in parts), sum(p[1] for p in parts)


def _relu_residual(U: NDArray[np.floating], T: NDArray[np.floating]) -> NDArray[np.floating]:
    r"""Return :math:`\max(U, 0) - T` of a chunk, in the dtype of ``U``, in cache-sized pieces."""
    out = np.empty(U.shape, dtype=U.dtype)
    rows = _chunk_rows(U.shape[1])

    def part(start: int, stop: int) -> None:
        for s in range(start, stop, rows):
            e = min(s + rows, stop)
            np.maximum(U[s:e], 0.0, out=out[s:e])
            out[s:e] -= T[s:e]

    _in_parts(part, U.shape[0], "glm:relu_residual")
    return out


def _relu_line_sums(
    U: NDArray[np.floating],
    V: NDArray[np.floating],
    T: NDArray[np.floating],
    t: NDArray[np.float64],
    with_vT: bool,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.float64]]:
    r"""Return the quadratic sums of the ReLU loss along a line at steps ``t``, over a chunk.

    Returns :math:`\sum_i \max(u + tv, 0)^2`, :math:`\sum_i v\max(u + tv, 0)` and (when
    ``with_vT``, else zeros) :math:`\sum_i v t_{ij}` per column, in one pass over ``U`` (pieces
    of rows in cache, no ``m x q`` temporary).
    """
    m, q = U.shape
    tu = t.astype(U.dtype)
    rows = _chunk_rows(q)

    def part(start: int, stop: int) -> tuple[NDArray[np.float64], ...]:
        value, slope, vT = np.zeros(q), np.zeros(q), np.zeros(q)
        buf = np.empty((min(rows, stop - start), q), dtype=U.dtype)
        for s in range(start, stop, rows):
            e = min(s + rows, stop)
            v = V[s:e]
            w = buf[: e - s]
            np.multiply(v, tu, out=w)
            w += U[s:e]
            np.maximum(w, 0.0, out=w)
            value += colsum(w, w)
            slope += colsum(v, w)
            if with_vT:
                vT += colsum(v, T[s:e])
        return value, slope, vT

    parts = _in_parts(part, m, "glm:relu_line")
    return tuple(sum(p[k] for p in parts) for k in range(3))


def _advance(U: NDArray[np.floating], V: NDArray[np.floating], t: NDArray[np.float64]) -> None:
    """``U += V diag(t)`` in place, a chunk of rows at a time (no ``m x q`` temporary)."""
    m, q = U.shape
    tu = t.astype(U.dtype)
    rows = _chunk_rows(q)

    def part(start: int, stop: int) -> None:
        buf = np.empty((min(rows, stop - start), q), dtype=U.dtype)
        for s in range(start, stop, rows):
            e = min(s + rows, stop)
            w = buf[: e - s]
            np.multiply(V[s:e], tu, out=w)
            U[s:e] += w

    _in_parts(part, m, "glm:advance")


def _lbfgs_columns_relu(
    prod: _Products,
    T: Any,
    alpha: float,
    theta0: NDArray[np.float64],
    U0: Any,
    R: NDArray[np.float64],
    scale: GradScale,
    tol: float,
    max_iter: int,
) -> tuple[NDArray[np.float64], Any, dict[str, Any]]:
    r"""Column-wise L-BFGS (:func:`~cvx_lifted.kernels._lbfgs.lbfgs_columns`), Fenchel–Young ReLU.

    The ReLU loss :math:`\tfrac12\max(u, 0)^2 - ut` is evaluated with dedicated passes over chunks
    of rows (:func:`_relu_line_sums`): no transcendental functions, no ``m x q`` temporaries; the
    residual is written directly in the dtype of the products.
    """
    p = theta0.shape[0] - 1
    ops = prod.ops
    if T.dtype != U0.dtype:  # float32 products: the targets too, once (half the traffic)
        T = ops.astype(T, U0.dtype)
    # the linear part of the loss along a line, sum_i (u + tv) t, is kept per column: it is
    # summed in the pass of the first trial step of a direction, and in no other pass
    lin: dict[str, Any] = {"uT": None, "V": None, "vT": None}

    def residual(U: Any) -> Any:
        return ops.map(_relu_residual, U, T, cols=prod.q, dtype=U0.dtype, keep=False)

    def objective_cols(U: Any, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        val, lin["uT"] = ops.sum(_relu_objective_sums, U, T)
        W = theta[:p].T
        return cast(NDArray[np.float64], val + 0.5 * alpha * np.einsum("ij,ij->i", W, W))

    def line_cols(
        U: Any, V: Any, t: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], None]:
        new = lin["V"] is not V
        value, slope, vT = ops.sum(_relu_line_sums, U, V, T, t=t, with_vT=new)
        if new:
            lin["V"], lin["vT"] = V, vT
        return 0.5 * value - (lin["uT"] + t * lin["vT"]), slope - lin["vT"], None

    def advance(U: Any, V: Any, t: NDArray[np.float64]) -> Any:
        U = ops.update(_advance, U, V, t=t)
        lin["uT"] = lin["uT"] + t * lin["vT"]
        lin["V"] = None
        return U

    return lbfgs_columns(
        prod.image_dir,
        prod.moments,
        residual,
        objective_cols,
        line_cols,
        alpha,
        theta0,
        U0,
        R,
        scale,
        tol,
        max_iter,
        advance=advance,
        carry=prod.carry,
    )


def relu_fenchel_step(
    ridge: Ridge,
    T: Any,
    alpha: float,
    W0: NDArray[np.float64],
    b0: NDArray[np.float64],
    *,
    tol: float,
    max_iter: int,
) -> StepResult:
    """Run the column-wise L-BFGS of :func:`relu_fenchel_wstep` on checked inputs, any row layout.

    ``ridge`` is built on the layer input (its :attr:`~Ridge.ops` say where the rows live), ``T``
    is partitioned like it, ``W0`` and ``b0`` are float64. Returns a :class:`StepResult` with
    ``(W, b)``.
    """
    prod = _Products(ridge, float_dtype(ridge.X, T), T.shape[1])
    theta0 = np.vstack([W0.T, b0[None, :]])
    scale = GradScale(lambda: float(np.linalg.norm(prod.moments(T))), prod.bound(prod.norm(T)))
    theta, U, info = _lbfgs_columns_relu(
        prod, T, alpha, theta0, prod.start(W0, b0, theta0), np.triu(ridge.factor[0]), scale,
        tol, max_iter,
    )  # fmt: skip
    return StepResult(prod.finish(theta, U), info)


def relu_fenchel_wstep(
    X: ArrayLike,
    T: ArrayLike,
    alpha: float,
    W0: ArrayLike,
    b0: ArrayLike,
    *,
    ridge: Ridge | None = None,
    tol: float = 1e-4,
    max_iter: int = 500,
    method: str = "lbfgs",
) -> StepResult:
    r"""W-step of a layer with the Fenchel–Young ReLU divergence.

    .. math::

        (W^\star, b^\star) = \operatorname*{argmin}_{W \in \mathbb R^{q\times p},\,b\in\mathbb R^q}
            \; \sum_{i,j} \Bigl[\tfrac12 \max(u_{ij}, 0)^2 - u_{ij} t_{ij}\Bigr]
            + \frac\alpha2 \|W\|_F^2,
        \qquad U = X W^\top + \mathbf 1 b^\top,

    the :math:`(W, b)` part of :math:`D(u, z) = \tfrac12 z^2 + \tfrac12\max(u, 0)^2 - uz` summed
    over the layer (:math:`T \ge 0` are the next states). Equivalently
    :math:`\sum \tfrac12 (u - t)^2 - \tfrac12 \min(u, 0)^2` up to a constant: a smooth,
    piecewise-quadratic convex problem.

    Method (see the module docstring for the measurements behind the choice). All methods use the
    augmented Gram :math:`A = R^\top R` of the plain ReLU W-step (pass its :class:`Ridge` to reuse
    the factor), because the curvature of :math:`\tfrac12\max(u,0)^2` is at most 1, so
    :math:`0 \preceq \nabla^2 F \preceq A`.

    * ``"lbfgs"`` (default): L-BFGS on :math:`\Phi = R\Theta`, :math:`\Theta = [W^\top; b^\top]`,
      warm-started at :math:`(W_0, b_0)`, one recursion and one Armijo line search per column;
      the image of the direction makes the line search GEMM-free, so an iteration costs two GEMMs
      and two triangular solves.
    * ``"scipy"``: L-BFGS-B (:func:`scipy.optimize.minimize`) on the same variables, all columns
      together; each function evaluation costs two GEMMs and two triangular solves.
    * ``"amm"``: majorisation–minimisation accelerated in the :math:`A`-metric. The quadratic
      majoriser at :math:`U_k` turns the problem into the ridge regression with targets
      :math:`T + \min(U_k, 0)`; an MM step is :math:`\Theta - A^{-1}\nabla F(\Theta)`, so Nesterov
      momentum applies (FISTA in the :math:`A`-metric), with per-column restart when the gradient
      makes an obtuse angle with the step or the objective increases. Each iteration costs two
      GEMMs; gradient and objective come for free.

    Both stop when :math:`\|\nabla F\|_F \le \text{tol}\,\|\nabla F(0)\|_F` (with
    :math:`\nabla F(0) = -[X,\mathbf 1]^\top T`, a scale independent of the start) and return the
    last iterate unless its objective exceeds that of :math:`(W_0, b_0)`, in which case they return
    the best point evaluated (per column for ``"amm"``), so the objective never exceeds the start's.

    Complexity: :math:`O(m p q)` per iteration (two GEMMs) plus :math:`O(m p^2 + p^3)` once when no
    ``ridge`` is given.

    Parameters
    ----------
    X : array_like, shape (m, p)
        Layer inputs.
    T : array_like, shape (m, q)
        Next states, :math:`T \ge 0`.
    alpha : float
        :math:`\alpha > 0`.
    W0 : array_like, shape (q, p)
        Starting weights.
    b0 : array_like, shape (q,)
        Starting intercepts.
    ridge : Ridge, optional
        A :class:`Ridge` built on the same ``X`` with the same ``alpha`` and ``fit_intercept=True``
        (the factor of the plain ReLU W-step); built here when omitted.
    tol : float, default 1e-4
        Relative gradient tolerance (``"scipy"`` stalls near 1e-9, where its line search needs
        decreases below rounding; ``"lbfgs"`` and ``"amm"`` reach 1e-12).
    max_iter : int, default 500
        Safety cap on iterations; ``info['converged']`` is false when it is reached.
    method : {"lbfgs", "scipy", "amm"}, default "lbfgs"
        Algorithm.

    Returns
    -------
    StepResult
        ``value`` is ``(W, b)``: weights of shape ``(q, p)`` and intercepts of shape ``(q,)``,
        ``float32`` when ``X`` and ``T`` are ``float32``, else ``float64``; ``info`` holds
        ``n_iter``, ``grad_norm`` (relative), ``converged``, ``objective`` and
        ``objective_start``.

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite inputs, negative ``T``, ``alpha <= 0``, an unknown
        ``method`` or a ``ridge`` built on a different problem.
    """
    X_arr, T_arr = _check_xt(X, T, "T")
    if (T_arr < 0).any():
        raise ValueError("T must be non-negative (the Fenchel-Young ReLU domain is z >= 0)")
    m, p = X_arr.shape
    q = T_arr.shape[1]
    alpha_f = positive_scalar(alpha, "alpha")
    W, b = _check_weights(W0, b0, q, p)
    tol_f = positive_scalar(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    if method not in ("lbfgs", "scipy", "amm"):
        raise ValueError(f"method must be 'lbfgs', 'scipy' or 'amm', got {method!r}")
    ridge = _check_ridge(ridge, X_arr, alpha_f)
    if method == "lbfgs":
        return relu_fenchel_step(ridge, T_arr, alpha_f, W, b, tol=tol_f, max_iter=max_iter)
    prod = _Products(ridge, X_arr.dtype, q)
    theta0 = np.vstack([W.T, b[None, :]])
    g_scale = max(float(np.linalg.norm(prod.moments(T_arr))), np.finfo(np.float64).tiny)
    if method == "scipy":

        def obj_grad(theta: NDArray[np.float64]) -> tuple[float, NDArray[np.float64]]:
            U = prod.image(theta)
            val = float(_relu_fy_cols(U, T_arr, theta[:p].T, alpha_f).sum())
            np.maximum(U, 0.0, out=U)
            U -= T_arr
            grad = prod.moments(U)
            grad[:p] += alpha_f * theta[:p]
            return val, grad

        theta, info = lbfgs_preconditioned(
            obj_grad, theta0, np.triu(ridge.factor[0]), g_scale, tol_f, max_iter
        )
        del info["n_eval"]
    else:
        theta, info = _amm_relu(
            prod.image, prod.moments, ridge, T_arr, alpha_f, theta0, g_scale, tol_f, max_iter
        )
    return StepResult(prod.finish(theta, None), info)


# --------------------------------------------------------------------------------------------------
# Generic Fenchel–Young W-step
# --------------------------------------------------------------------------------------------------


def _fy_line_cols(
    U: NDArray[np.floating],
    V: NDArray[np.floating],
    T: NDArray[np.floating],
    t: NDArray[np.float64],
    spec: ScalarFY,
) -> tuple[NDArray[np.float64], NDArray[np.float64], NDArray[np.floating]]:
    r"""Per-column data term :math:`\sum_i \Phi^*(u + tv) - (u + tv)t_{ij}` at steps ``t``, its
    derivative in ``t`` and the residual :math:`\phi(U + Vt) - T`, in one pass over ``U``."""  # noqa: D205, D209
    Ut = V * t.astype(U.dtype)
    Ut += U
    value = spec.conj(Ut).sum(axis=0, dtype=np.float64) - colsum(Ut, T)
    P = spec.conj_grad(Ut) - T
    return value, colsum(V, P), P


def _fy_preconditioner(ridge: Ridge, curvature: float, p: int) -> NDArray[np.float64]:
    r"""Upper Cholesky factor of :math:`L[X, \mathbf 1]^\top[X, \mathbf 1] + \alpha I_W`.

    ``ridge.gram`` is :math:`A = [X, \mathbf 1]^\top[X, \mathbf 1] + \alpha I_W` (no penalty on the
    intercept); for :math:`L = 1` its factor is reused as is, otherwise
    :math:`LA + (1 - L)\alpha I_W` is refactored (:math:`O(p^3)`, no pass over the data).
    """
    if curvature == 1.0:
        return np.triu(ridge.factor[0])
    A = curvature * ridge.gram
    A[np.arange(p), np.arange(p)] += (1.0 - curvature) * ridge.alpha
    return cast(NDArray[np.float64], scipy.linalg.cholesky(A, lower=False, check_finite=False))


def fy_wstep(
    X: ArrayLike,
    T: ArrayLike,
    alpha: float,
    W0: ArrayLike,
    b0: ArrayLike,
    spec: ScalarFY,
    *,
    ridge: Ridge | None = None,
    tol: float = 1e-6,
    max_iter: int = 3,
) -> StepResult:
    r"""W-step of a layer with an elementwise Fenchel–Young divergence (sigmoid, tanh, leaky ReLU).

    .. math::

        (W^\star, b^\star) = \operatorname*{argmin}_{W \in \mathbb R^{q\times p},\,b\in\mathbb R^q}
            \; \sum_{i,j} \Bigl[\Phi^*(u_{ij}) - u_{ij} t_{ij}\Bigr] + \frac\alpha2 \|W\|_F^2,
        \qquad U = X W^\top + \mathbf 1 b^\top,

    the :math:`(W, b)` part of :math:`D(u, z) = \Phi(z) + \Phi^*(u) - uz` summed over the layer, for
    the pair :math:`(\Phi, \Phi^*)` of ``spec`` (:math:`T` are the next states, in the domain of
    :math:`\Phi`). It is the generalised linear model whose gradient is
    :math:`[X, \mathbf 1]^\top(\phi(U) - T) + \alpha[W^\top; 0]`; with
    :data:`~cvx_lifted.kernels.fenchel_young.RELU_FY` it is :func:`relu_fenchel_wstep` (and gives
    exactly its result).

    Method: the column-wise L-BFGS of :func:`relu_fenchel_wstep` (one recursion and one Armijo
    line search per output column, the line search evaluated from the image of the direction, so
    an iteration costs two GEMMs and usually one pass of :math:`\Phi^*` and :math:`\phi` over
    :math:`U`, whose :math:`\phi` is reused as the next gradient), on the preconditioned variables
    :math:`R\Theta`, :math:`\Theta = [W^\top; b^\top]`. With :math:`L` = ``spec.curvature``
    (:math:`\sup\phi'`), :math:`0 \preceq \nabla^2 F \preceq L[X, \mathbf 1]^\top[X, \mathbf 1]
    + \alpha I_W = R^\top R`: for :math:`L = 1` the factor of ``ridge`` itself; otherwise it is
    refactored from ``ridge.gram`` (:math:`O(p^3)`, no pass over the data). Warm-started at
    :math:`(W_0, b_0)`; stops when :math:`\|\nabla F\|_F \le \text{tol}\,\|\nabla F(0)\|_F`
    (:math:`\nabla F(0) = [X, \mathbf 1]^\top(\phi(0) - T)`) or after ``max_iter`` iterations.
    Every accepted step decreases its column's objective, and the start is returned if rounding
    made the total worse, so the objective never exceeds that of :math:`(W_0, b_0)`.

    If a column of :math:`T` lies entirely on a finite bound of an open domain (e.g. all zeros
    for the sigmoid) its infimum is not attained (:math:`b_j \to -\infty`); the iterations then
    stop at ``max_iter``.

    Complexity: :math:`O(mpq)` per iteration (two GEMMs) plus :math:`O(mp^2 + p^3)` once when no
    ``ridge`` is given (:math:`O(p^3)` when :math:`L \ne 1`).

    Parameters
    ----------
    X : array_like, shape (m, p)
        Layer inputs.
    T : array_like, shape (m, q)
        Next states, in :math:`[lo, hi]` of ``spec``.
    alpha : float
        :math:`\alpha > 0`.
    W0 : array_like, shape (q, p)
        Starting weights.
    b0 : array_like, shape (q,)
        Starting intercepts.
    spec : ScalarFY
        The layer's Fenchel–Young pair.
    ridge : Ridge, optional
        A :class:`Ridge` built on the same ``X`` with the same ``alpha`` and ``fit_intercept=True``
        (the factor of :math:`[X, \mathbf 1]^\top[X, \mathbf 1] + \alpha I_W`, shared with the
        ridge W-steps); built here when omitted.
    tol : float, default 1e-6
        Relative gradient tolerance.
    max_iter : int, default 3
        Cap on iterations (a few per block-coordinate sweep); ``info['converged']`` is false when
        it is reached.

    Returns
    -------
    StepResult
        ``value`` is ``(W, b)``: weights of shape ``(q, p)`` and intercepts of shape ``(q,)``,
        ``float32`` when ``X`` and ``T`` are ``float32``, else ``float64``; ``info`` holds
        ``n_iter``, ``grad_norm`` (relative), ``converged``, ``objective``, ``objective_start``
        and ``column_grad_norm`` (relative gradient norm per output column).

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite inputs, ``T`` outside :math:`[lo, hi]`, ``alpha <= 0``,
        a ``spec`` that is not a :class:`ScalarFY` or a ``ridge`` built on a different problem.
    """
    if not isinstance(spec, ScalarFY):
        raise ValueError(f"spec must be a ScalarFY, got {type(spec).__name__}")
    X_arr, T_arr = _check_xt(X, T, "T")
    if (np.isfinite(spec.lo) and (T_arr < spec.lo).any()) or (
        np.isfinite(spec.hi) and (T_arr > spec.hi).any()
    ):
        raise ValueError(
            f"T must lie in the domain [{spec.lo}, {spec.hi}] of {spec.name!r} (otherwise the "
            "W-step is unbounded below)"
        )
    m, p = X_arr.shape
    q = T_arr.shape[1]
    alpha_f = positive_scalar(alpha, "alpha")
    W, b = _check_weights(W0, b0, q, p)
    tol_f = positive_scalar(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    ridge = _check_ridge(ridge, X_arr, alpha_f)
    return fy_step(ridge, T_arr, alpha_f, W, b, spec, tol=tol_f, max_iter=max_iter)


def _fy_residual(U: NDArray[np.floating], T: NDArray[np.floating], spec: ScalarFY) -> Any:
    return spec.conj_grad(U) - T


def _fy_objective_sums(
    U: NDArray[np.floating], T: NDArray[np.floating], spec: ScalarFY
) -> NDArray[np.float64]:
    return cast(NDArray[np.float64], spec.conj(U).sum(axis=0, dtype=np.float64) - colsum(U, T))


def _fy_line_sums(
    U: NDArray[np.floating],
    V: NDArray[np.floating],
    T: NDArray[np.floating],
    t: NDArray[np.float64],
    spec: ScalarFY,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    value, slope, _ = _fy_line_cols(U, V, T, t, spec)
    return value, slope


def _sum_and_squares(T: NDArray[np.floating]) -> tuple[float, float]:
    return float(T.sum(dtype=np.float64)), float(np.vdot(T, T))


def _minus(T: NDArray[np.floating], c: float) -> NDArray[np.floating]:
    return c - T


def fy_step(
    ridge: Ridge,
    T: Any,
    alpha: float,
    W0: NDArray[np.float64],
    b0: NDArray[np.float64],
    spec: ScalarFY,
    *,
    tol: float,
    max_iter: int,
) -> StepResult:
    """Run the column-wise L-BFGS of :func:`fy_wstep` on checked inputs, any row layout.

    ``ridge`` is built on the layer input (its :attr:`~Ridge.ops` say where the rows live), ``T``
    is partitioned like it, ``W0`` and ``b0`` are float64. Returns a :class:`StepResult` with
    ``(W, b)``.
    """
    if spec == RELU_FY:  # the dedicated passes of the ReLU loss (no transcendental functions)
        return relu_fenchel_step(ridge, T, alpha, W0, b0, tol=tol, max_iter=max_iter)
    ops = ridge.ops
    m, q = T.shape
    p = ridge.n_features
    prod = _Products(ridge, float_dtype(ridge.X, T), q)
    theta0 = np.vstack([W0.T, b0[None, :]])
    U0 = prod.start(W0, b0, theta0)
    phi0 = float(np.asarray(spec.conj_grad(np.zeros(1)), dtype=np.float64)[0])
    # ||phi0 - T||_F without an m x q temporary
    t_sum, t_sq = ops.sum(_sum_and_squares, T)
    M_norm = float(np.sqrt(max(t_sq - 2.0 * phi0 * t_sum + m * q * phi0 * phi0, 0.0)))
    res_dtype = np.result_type(U0.dtype, T.dtype)
    scale = GradScale(
        lambda: float(
            np.linalg.norm(
                prod.moments(ops.map(_minus, T, c=phi0, cols=q, dtype=T.dtype, keep=False))
            )
        ),
        prod.bound(M_norm),
    )

    def residual(U: Any) -> Any:
        return ops.map(_fy_residual, U, T, spec=spec, cols=q, dtype=res_dtype, keep=False)

    def objective_cols(U: Any, theta: NDArray[np.float64]) -> NDArray[np.float64]:
        val = ops.sum(_fy_objective_sums, U, T, spec=spec)
        penalty = 0.5 * alpha * np.einsum("ij,ij->j", theta[:p], theta[:p])
        return cast(NDArray[np.float64], val + penalty)

    def line_cols(
        U: Any, V: Any, t: NDArray[np.float64]
    ) -> tuple[NDArray[np.float64], NDArray[np.float64], Any]:
        if ops.distributed:  # the residual stays with the rows: recomputed by the gradient
            value, slope = ops.sum(_fy_line_sums, U, V, T, t=t, spec=spec)
            return value, slope, None
        return _fy_line_cols(U, V, T, t, spec)

    def advance(U: Any, V: Any, t: NDArray[np.float64]) -> Any:
        return ops.update(_advance, U, V, t=t)

    if not np.isfinite(objective_cols(U0, theta0)).all():
        raise ValueError(f"spec.conj of {spec.name!r} is not finite at the start (W0, b0)")
    theta, U, info = lbfgs_columns(
        prod.image_dir,
        prod.moments,
        residual,
        objective_cols,
        line_cols,
        alpha,
        theta0,
        U0,
        _fy_preconditioner(ridge, spec.curvature, p),
        scale,
        tol,
        max_iter,
        advance=advance,
        carry=prod.carry,
    )
    return StepResult(prod.finish(theta, U), info)


def _amm_relu(
    image: Callable[[NDArray[np.float64]], NDArray[np.floating]],
    moments: Callable[[NDArray[np.floating]], NDArray[np.float64]],
    ridge: Ridge,
    T: NDArray[np.floating],
    alpha: float,
    theta0: NDArray[np.float64],
    g_scale: float,
    tol: float,
    max_iter: int,
) -> tuple[NDArray[np.float64], dict[str, Any]]:
    """Accelerated MM in the Gram metric for :func:`relu_fenchel_wstep` (``method="amm"``)."""
    p, q = theta0.shape[0] - 1, theta0.shape[1]
    A = ridge.gram
    x_old = theta0
    U_old = image(x_old)
    F_old = _relu_fy_cols(U_old, T, x_old[:p].T, alpha)
    F_start = F_old.copy()
    best, F_best = x_old.copy(), F_old.copy()
    y, U_y = x_old, U_old
    t_mom = np.ones(q)
    converged = False
    grad_rel = np.inf
    n_iter = 0
    x_new, F_new = x_old, F_old
    for n_iter in range(1, max_iter + 1):  # noqa: B007 (n_iter is reported)
        rhs = moments(T + np.minimum(U_y, 0.0))
        grad_y = A @ y - rhs
        grad_rel = float(np.linalg.norm(grad_y)) / g_scale
        converged = grad_rel <= tol
        x_new = scipy.linalg.cho_solve(ridge.factor, rhs, check_finite=False)
        U_new = image(x_new)
        F_new = _relu_fy_cols(U_new, T, x_new[:p].T, alpha)
        improved = F_new < F_best
        best[:, improved] = x_new[:, improved]
        F_best[improved] = F_new[improved]
        if converged:
            break
        step = x_new - x_old
        restart = (np.einsum("ij,ij->j", grad_y, step) > 0) | (F_new > F_old)
        t_next = 0.5 * (1.0 + np.sqrt(1.0 + 4.0 * t_mom * t_mom))
        beta = np.where(restart, 0.0, (t_mom - 1.0) / t_next)
        t_mom = np.where(restart, 1.0, t_next)
        y = x_new + beta * step
        U_y = U_new + beta.astype(U_new.dtype) * (U_new - U_old)
        x_old, U_old, F_old = x_new, U_new, F_new
    # Per column: the last MM iterate (the one the stopping test is about) unless it is worse than
    # the start; selecting by objective alone would only resolve W to about sqrt(eps).
    use_last = F_new <= F_start
    theta = np.where(use_last, x_new, best)
    F_out = np.where(use_last, F_new, F_best)
    info = {
        "n_iter": n_iter,
        "grad_norm": grad_rel,
        "converged": converged,
        "objective": float(F_out.sum()),
        "objective_start": float(F_start.sum()),
    }
    return theta, info
