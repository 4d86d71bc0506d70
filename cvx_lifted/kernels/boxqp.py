# SPDX-License-Identifier: Apache-2.0
r"""The hidden-state step (X-step): a box-constrained problem per sample with a shared matrix.

Rows are samples. For a hidden layer with pre-activation :math:`U = X_{l-1}W_{l-1}^\top + b_{l-1}`
(from the previous layer) and next-layer weights :math:`W` (:math:`q\times p`), :math:`b`, the state
step solves, independently for every row,

.. math::

    z^\star = \operatorname*{argmin}_{lo \le z \le hi}
        \frac a2 \|z - u\|_2^2 + c\, g(Wz + b),

where :math:`g` is the next layer's divergence as a function of its pre-activation
:math:`v = Wz + b` (a *coupling*: :class:`L2Coupling`, :class:`ReluFenchelCoupling`,
:class:`SoftmaxCoupling`, and :class:`FYCoupling` for any elementwise Fenchel–Young next layer).
With :class:`L2Coupling` it is a box QP whose Hessian
:math:`H = aI + cW^\top W` is shared by all rows.

Methods and why (measured with ``benchmarks/bench_kernels.py``, one BLAS thread):

* ``"newton"``: projected Newton (Bertsekas 1982) with an :math:`\varepsilon`-binding set, Newton
  directions on the free variables through the Woodbury identity :math:`(aI + cW_F^\top C^\top C
  W_F)^{-1} = \frac1a\bigl(I - cW_F^\top C^\top K^{-1} C W_F\bigr)`, :math:`K = aI_q + cCW_FW_F^\top
  C^\top` (:math:`q\times q` per row; :math:`W_FW_F^\top` for all rows is one GEMM of the free mask
  with the :math:`q(q+1)/2` column products of :math:`W`), and a projected Armijo search. It
  converges in a handful of iterations whatever the conditioning :math:`c\|W\|^2/a`. Cost per
  iteration :math:`O(mpq^2)`.
* ``"fista"``: accelerated projected gradient with step :math:`1/L`, :math:`L = a + cL_g\|W\|_2^2`,
  and per-row adaptive restart (gradient and function tests, O'Donoghue & Candès 2015). Cost per
  iteration :math:`O(mpq)` (two thin GEMMs), or, for :class:`L2Coupling` with :math:`p < 2q`, one
  GEMM with the precomputed :math:`H` (at p = q = 300 that route took 140 s against 185 s for the
  thin GEMMs, m = 60,000, 68 iterations); but the number of iterations grows like
  :math:`\sqrt{L/a}`.
* ``"dual"`` (:class:`L2Coupling` only): semismooth Newton on the concave dual in
  :math:`y \in \mathbb R^q` (:math:`z(y) = \mathrm{clip}(u + W^\top y/a)`), the same
  :math:`q\times q` systems, three passes over the :math:`m\times p` data per step
  (:mod:`~cvx_lifted.kernels._boxqp_dual`: steps accepted on the dual gradient, rows certified
  by a bound on the primal residual). At m = 60,000, p = 300, q = 10, warm started as in a sweep,
  one thread, a loaded machine: 0.9-1.0 s, against 1.1-1.15 s for the dual method that evaluated
  the dual value and the primal residual at every step and 2.1-2.3 s for ``"newton"``.
* ``"auto"`` (default) picks ``"dual"`` for :class:`L2Coupling` and ``"newton"`` for the other
  couplings when :math:`q \le 32` and ``"fista"`` otherwise. Measured
  (one thread, Fashion-MNIST ReLU features, p = 300, a = 1, L2 coupling, tol 1e-8): at m = 60,000,
  q = 10, Newton 4.5 s (1.4 iterations per row on average) versus FISTA 28.4 s (16.9), and with
  c = 10 Newton 6.5 s versus FISTA 44 s (74 iterations); at m = 4,000 the two cross between q = 32
  (Newton 2.2 s, FISTA 4.2 s) and q = 64 (9.9 s versus 4.0 s; q = 128: 43 s versus 6.0 s). Newton
  thus costs :math:`O(mpq^2)` per iteration rather than :math:`O(mpq)`, deliberately: it needs 2 to
  3 iterations where FISTA needs 17 to 75, and its cost does not grow with :math:`c\|W\|^2/a`.

Common to all: rows are processed in chunks of ``chunk_rows`` (default: about 1 MB of float64 per
``(chunk, p)`` array, 436 rows for p = 300; 4 MB for ``"dual"``) so that the many elementwise passes
run in cache (at m = 60,000, p = 300, q = 10 the projected Newton took 3.1 s with 512-row chunks,
4.3 s with 4096 and 9.1 s unchunked) and float32 inputs can be upcast to float64 without doubling
the memory of the whole problem; inside a chunk every operation is vectorised over rows, and rows
leave the working set as they converge. A row stops when

.. math::

    L\,\|z - P_{[lo,hi]}(z - \nabla f(z)/L)\|_\infty \le \text{tol}\,(1 + \|\nabla f(z)\|_\infty).

Each method also keeps, per row, the best iterate by objective value (projected start included);
it returns the last iterate (the one the stopping test is about) unless its objective exceeds that
of the projected start, in which case it returns the best one. So the returned objective never
exceeds that of the start (block-coordinate descent relies on it).
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from cvx_lifted import threads

from ._boxqp_dual import dual_chunk
from ._boxqp_fista import _fista_chunk, _fista_gram_chunk
from ._result import StepResult
from ._rows import ChunkResult, _batched_spd_solve, _clip, _pick, _rowdot
from ._scalar_fy import ScalarFY
from ._validation import (
    as_float_array,
    bound_scalar,
    float_dtype,
    nonnegative_scalar,
    positive_int,
    positive_scalar,
)

FloatArray = NDArray[np.floating[Any]]

__all__ = [
    "FYCoupling",
    "L2Coupling",
    "ReluFenchelCoupling",
    "SoftmaxCoupling",
    "state_step",
]

_EPS = float(np.finfo(np.float64).eps)


# --------------------------------------------------------------------------------------------------
# Couplings
# --------------------------------------------------------------------------------------------------


class _Coupling:
    """Base class: a separable-over-rows convex function of :math:`V` (shape ``(m, q)``)."""

    #: Lipschitz constant of the gradient (in each row, Euclidean norm).
    lipschitz: float = 1.0

    def __init__(self, target: ArrayLike, name: str) -> None:
        self.target = as_float_array(target, name, ndim=2)

    @property
    def shape(self) -> tuple[int, int]:
        """Shape ``(m, q)`` of :math:`V` and of the target."""
        return self.target.shape

    def value_grad(self, V: ArrayLike) -> tuple[float, FloatArray]:
        """Return the total value and the gradient with respect to ``V``.

        Parameters
        ----------
        V : array_like, shape (m, q)
            Pre-activations of the next layer.

        Returns
        -------
        value : float
            Sum over rows.
        dV : ndarray, shape (m, q)
            Gradient (float64).
        """
        V_arr = as_float_array(V, "V", ndim=2, dtype=np.float64)
        if V_arr.shape != self.shape:
            raise ValueError(f"V must have shape {self.shape}, got {V_arr.shape}")
        rows, grad = self._eval(V_arr, self.target.astype(np.float64, copy=False))
        return float(rows.sum()), grad

    def _eval(
        self, V: FloatArray, T: FloatArray
    ) -> tuple[FloatArray, FloatArray]:  # pragma: no cover
        raise NotImplementedError

    def _curvature(
        self, V: FloatArray, G: FloatArray
    ) -> tuple[str, FloatArray | None]:  # pragma: no cover
        raise NotImplementedError


class L2Coupling(_Coupling):
    r"""Squared loss of the next layer, :math:`g(V) = \tfrac12\|T - V\|_F^2`.

    Gradient :math:`V - T`, Hessian the identity (Lipschitz constant 1). It is the JCR coupling of a
    next layer with :math:`D(v, z) = \tfrac12\|z - v\|^2` (ReLU, clip, identity, ...).

    Parameters
    ----------
    T : array_like, shape (m, q)
        Targets (the next layer's states).
    """

    lipschitz = 1.0

    def __init__(self, T: ArrayLike) -> None:
        super().__init__(T, "T")

    def _eval(self, V: FloatArray, T: FloatArray) -> tuple[FloatArray, FloatArray]:
        R = V - T
        return 0.5 * np.einsum("ij,ij->i", R, R), R

    def _curvature(self, V: FloatArray, G: FloatArray) -> tuple[str, FloatArray | None]:
        return "identity", None


class ReluFenchelCoupling(_Coupling):
    r"""Fenchel–Young ReLU divergence as a function of the pre-activation.

    :math:`g(V) = \sum \tfrac12\max(v,0)^2 - vt`.

    This is :math:`D(v, t) = \tfrac12 t^2 + \tfrac12\max(v, 0)^2 - vt` without the constant
    :math:`\tfrac12 t^2`. Gradient :math:`\max(V, 0) - T`, generalised Hessian
    :math:`\operatorname{diag}(\mathbb 1[v > 0])`, Lipschitz constant 1.

    Parameters
    ----------
    T : array_like, shape (m, q)
        Next-layer states (normally :math:`\ge 0`).
    """

    lipschitz = 1.0

    def __init__(self, T: ArrayLike) -> None:
        super().__init__(T, "T")

    def _eval(self, V: FloatArray, T: FloatArray) -> tuple[FloatArray, FloatArray]:
        Vp = np.maximum(V, 0.0)
        rows = np.einsum("ij,ij->i", Vp, 0.5 * Vp) - np.einsum("ij,ij->i", V, T)
        return rows, Vp - T

    def _curvature(self, V: FloatArray, G: FloatArray) -> tuple[str, FloatArray | None]:
        return "diag", (V > 0).astype(np.float64)


class SoftmaxCoupling(_Coupling):
    r"""Softmax cross-entropy of the next layer.

    :math:`g(V) = \sum_i \mathrm{lse}(v_i) - y_i^\top v_i`.

    Gradient :math:`\mathrm{softmax}(V) - Y` (computed with a max shift, no overflow), Hessian
    :math:`\operatorname{diag}(s) - ss^\top \preceq \tfrac12 I`, so the Lipschitz constant is 1/2.

    Parameters
    ----------
    Y : array_like, shape (m, q)
        Labels (rows normally on the probability simplex).
    """

    lipschitz = 0.5

    def __init__(self, Y: ArrayLike) -> None:
        super().__init__(Y, "Y")

    def _eval(self, V: FloatArray, T: FloatArray) -> tuple[FloatArray, FloatArray]:
        shift = V.max(axis=1, keepdims=True)
        E = np.exp(V - shift)
        s = E.sum(axis=1, keepdims=True)
        lse = np.log(s[:, 0]) + shift[:, 0]
        rows = lse - np.einsum("ij,ij->i", T, V)
        E /= s
        return rows, E - T

    def _curvature(self, V: FloatArray, G: FloatArray) -> tuple[str, FloatArray | None]:
        shift = V.max(axis=1, keepdims=True)
        E = np.exp(V - shift)
        E /= E.sum(axis=1, keepdims=True)
        return "softmax", E


class FYCoupling(_Coupling):
    r"""Elementwise Fenchel–Young divergence of the next layer as a function of its pre-activation.

    :math:`g(V) = \sum \Phi^*(v) - vt` for the pair :math:`(\Phi, \Phi^*)` of ``spec``: the
    divergence :math:`D(v, t) = \Phi(t) + \Phi^*(v) - vt` without the constant :math:`\Phi(t)`.
    Gradient :math:`\phi(V) - T`, Hessian :math:`\operatorname{diag}(\phi'(V))`, Lipschitz
    constant ``spec.curvature``. With :data:`~cvx_lifted.kernels.fenchel_young.RELU_FY` it is
    :class:`ReluFenchelCoupling`.

    Parameters
    ----------
    spec : ScalarFY
        The next layer's pair (:class:`~cvx_lifted.kernels.fenchel_young.ScalarFY`).
    T : array_like, shape (m, q)
        Next-layer states (normally in the domain of :math:`\Phi`).

    Raises
    ------
    ValueError
        If ``spec`` is not a ``ScalarFY`` or ``T`` is not a finite 2-D array.
    """

    def __init__(self, spec: ScalarFY, T: ArrayLike) -> None:
        if not isinstance(spec, ScalarFY):
            raise ValueError(f"spec must be a ScalarFY, got {type(spec).__name__}")
        super().__init__(T, "T")
        self.spec = spec
        self.lipschitz = spec.curvature

    def _eval(self, V: FloatArray, T: FloatArray) -> tuple[FloatArray, FloatArray]:
        rows = self.spec.conj(V).sum(axis=1) - np.einsum("ij,ij->i", V, T)
        return rows, self.spec.conj_grad(V) - T

    def _curvature(self, V: FloatArray, G: FloatArray) -> tuple[str, FloatArray | None]:
        return "diag", np.asarray(self.spec.conj_hess(V), dtype=np.float64)


class _Problem:
    """The data shared by all chunks (float64)."""

    def __init__(
        self,
        W: FloatArray,
        b: FloatArray,
        coupling: _Coupling,
        a: float,
        c: float,
        lo: float,
        hi: float,
        L: float,
        tol: float,
        max_iter: int,
    ) -> None:
        self.W = W
        self.WT = np.ascontiguousarray(W.T)
        self.b = b
        self.coupling = coupling
        self.a, self.c, self.lo, self.hi, self.L = a, c, lo, hi, L
        self.tol, self.max_iter = tol, max_iter
        self._pairs: tuple[NDArray[np.intp], NDArray[np.intp], FloatArray] | None = None
        self._hess: FloatArray | None = None
        self.workspace: dict[str, Any] = {}  # what a method derives once and its chunks share

    # -- objective pieces -------------------------------------------------------------------------
    def image(self, Z: FloatArray) -> FloatArray:
        return Z @ self.WT + self.b

    def objective(
        self, Z: FloatArray, U: FloatArray, V: FloatArray, T: FloatArray
    ) -> tuple[FloatArray, FloatArray]:
        rows, G = self.coupling._eval(V, T)
        D = Z - U
        return 0.5 * self.a * _rowdot(D, D) + self.c * rows, G

    def grad(self, Z: FloatArray, U: FloatArray, G: FloatArray) -> FloatArray:
        out = G @ self.W
        out *= self.c
        out += self.a * (Z - U)
        return out

    def residual(self, Z: FloatArray, grad: FloatArray) -> tuple[FloatArray, FloatArray]:
        r"""Scaled projected-gradient residual and the per-row tolerance.

        :math:`L(z - P(z - g/L)) = \mathrm{clip}(g, L(z - hi), L(z - lo))` coordinatewise.
        """
        lo, hi, L = self.lo, self.hi, self.L
        if np.isfinite(lo) and np.isfinite(hi):
            r = np.clip(grad, L * (Z - hi), L * (Z - lo))
        elif np.isfinite(lo):
            r = np.minimum(grad, L * (Z - lo) if lo != 0.0 else L * Z)
        elif np.isfinite(hi):
            r = np.maximum(grad, L * (Z - hi) if hi != 0.0 else L * Z)
        else:
            r = grad.copy()
        np.abs(r, out=r)
        res = np.max(r, axis=1)
        scale = 1.0 + np.max(np.abs(grad), axis=1)
        return res, self.tol * scale

    def binding(self, Z: FloatArray, grad: FloatArray, eps: FloatArray) -> NDArray[np.bool_]:
        """Bertsekas' epsilon-binding set: near a bound with the gradient pushing outward."""
        lo, hi = self.lo, self.hi
        out = np.zeros(Z.shape, dtype=bool)
        if np.isfinite(lo):
            out |= (Z <= lo + eps) & (grad > 0)
        if np.isfinite(hi):
            out |= (Z >= hi - eps) & (grad < 0)
        return out

    # -- Newton helpers ---------------------------------------------------------------------------
    def pairs(self) -> tuple[NDArray[np.intp], NDArray[np.intp], FloatArray]:
        if self._pairs is None:
            q = self.W.shape[0]
            iu, ju = np.triu_indices(q)
            prod = np.ascontiguousarray((self.W[iu] * self.W[ju]).T)  # (p, q(q+1)/2)
            self._pairs = (iu, ju, prod)
        return self._pairs

    def hessian(self) -> FloatArray:
        if self._hess is None:
            p = self.W.shape[1]
            H = self.c * (self.W.T @ self.W)
            H[np.arange(p), np.arange(p)] += self.a
            self._hess = H
        return self._hess


# --------------------------------------------------------------------------------------------------
# Projected Newton with the Woodbury identity
# --------------------------------------------------------------------------------------------------


def _newton_direction(
    prob: _Problem, V: FloatArray, G: FloatArray, grad: FloatArray, binding: NDArray[np.bool_]
) -> tuple[FloatArray, FloatArray]:
    r"""Projected-Newton direction and its predicted free-variable decrease.

    On the free set :math:`F`, :math:`d_F = -H_{FF}^{-1} g_F` with
    :math:`H_{FF} = aI + cW_F^\top C^\top C W_F` inverted by Woodbury through the
    :math:`q\times q` matrices :math:`K = aI + cCW_FW_F^\top C^\top`; on the binding set
    :math:`d = -g/a`. Both read
    :math:`d = (c\,\mathbb 1_F \circ (C^\top K^{-1}CW_Fg_F)^\top W - g)/a`.
    """
    a, c = prob.a, prob.c
    W = prob.W
    n = grad.shape[0]
    q = W.shape[0]
    iu, ju, prod = prob.pairs()
    fr = (~binding).astype(np.float64)
    gF = grad * fr
    Mflat = fr @ prod  # (n, q(q+1)/2): entries of M = W_F W_F^T
    M = np.empty((n, q, q))
    M[:, iu, ju] = Mflat
    M[:, ju, iu] = Mflat
    s = gF @ prob.WT  # W_F g_F, (n, q)
    kind, data = prob.coupling._curvature(V, G)
    if kind == "identity":
        K = c * M
        rhs = s
    elif kind == "diag":
        sq = np.sqrt(data)  # type: ignore[arg-type]
        K = c * M * sq[:, :, None] * sq[:, None, :]
        rhs = sq * s
    else:  # softmax: C = diag(sqrt(pi)) (I - 1 pi^T)
        assert data is not None
        pi = data
        sq = np.sqrt(pi)
        Mpi = np.einsum("ijk,ik->ij", M, pi)  # M pi
        piMpi = _rowdot(pi, Mpi)
        N = M - Mpi[:, None, :] - Mpi[:, :, None] + piMpi[:, None, None]
        K = c * N * sq[:, :, None] * sq[:, None, :]
        rhs = sq * (s - _rowdot(pi, s)[:, None])
    K[:, np.arange(q), np.arange(q)] += a
    y = _batched_spd_solve(K, rhs)
    if kind == "identity":
        back = y
    elif kind == "diag":
        back = sq * y
    else:
        t = sq * y
        back = t - pi * t.sum(axis=1, keepdims=True)
    back *= c
    d = back @ W
    d *= fr
    d -= grad
    if a != 1.0:
        d /= a
    free_dec = -_rowdot(gF, d)
    return d, free_dec


def _newton_chunk(prob: _Problem, U: FloatArray, T: FloatArray, Z0: FloatArray) -> ChunkResult:
    n = U.shape[0]
    lo, hi, L = prob.lo, prob.hi, prob.L
    bounded = np.isfinite(lo) or np.isfinite(hi)
    sigma = 1e-4
    z = _clip(Z0, lo, hi)
    V = prob.image(z)
    f, G = prob.objective(z, U, V, T)
    f_start = f.copy()
    best = z.copy()
    f_best = f.copy()
    final = z.copy()
    f_final = f.copy()
    n_iter = np.zeros(n, dtype=np.int64)
    res_out = np.full(n, np.inf)
    conv = np.zeros(n, dtype=bool)
    idx = np.arange(n)
    Ua, Ta = U, T
    eps_bar = 1e-3 * (1.0 + np.max(np.abs(U), axis=1))
    for it in range(0, prob.max_iter + 1):
        grad = prob.grad(z, Ua, G)
        res, thr = prob.residual(z, grad)
        n_iter[idx] = it
        res_out[idx] = res
        done = res <= thr
        conv[idx[done]] = True
        exiting = done | (it == prob.max_iter)
        if exiting.any():
            final[idx[exiting]] = z[exiting]
            f_final[idx[exiting]] = f[exiting]
            if exiting.all():
                break
            keep = ~exiting
            idx = idx[keep]
            Ua, Ta, z, V, f, G, grad, res = (
                Ua[keep],
                Ta[keep],
                z[keep],
                V[keep],
                f[keep],
                G[keep],
                grad[keep],
                res[keep],
            )
        # epsilon-binding set with eps = min(eps_bar, ||z - P(z - g/L)||_inf) (Bertsekas 1982).
        if bounded:
            eps = np.minimum(eps_bar[idx], res / L)[:, None]
            binding = prob.binding(z, grad, eps)
        else:
            binding = np.zeros(z.shape, dtype=bool)
        d, free_dec = _newton_direction(prob, V, G, grad, binding)
        g_bind = grad * binding
        # Projected Armijo search along z(alpha) = P(z + alpha d), per row; alpha = 1 first.
        na = idx.size
        alpha = np.ones(na)
        z_new, V_new, f_new, G_new = z, V, f, G  # rows that never accept keep the old point
        accepted = np.zeros(na, dtype=bool)
        pending = np.arange(na)
        for trial in range(40):
            if trial == 0:
                zp = z + d
                Up, Tp, fz, gb = Ua, Ta, f, g_bind
            else:
                zp = z[pending] + alpha[pending, None] * d[pending]
                Up, Tp, fz, gb = Ua[pending], Ta[pending], f[pending], g_bind[pending]
            _clip(zp, lo, hi, out=zp)
            Vp = prob.image(zp)
            fp, Gp = prob.objective(zp, Up, Vp, Tp)
            zq = z if trial == 0 else z[pending]
            pred = alpha[pending] * free_dec[pending] + _rowdot(gb, zq - zp)
            ok = fp <= fz - sigma * pred + 1e-12 * (1.0 + np.abs(fz))
            if trial == 0:
                z_new, V_new, f_new, G_new = zp, Vp, fp, Gp
                if ok.all():
                    accepted[:] = True
                    break
                # restore the old point for the rows that must backtrack
                bad = ~ok
                z_new[bad], V_new[bad], f_new[bad], G_new[bad] = z[bad], V[bad], f[bad], G[bad]
            else:
                acc = pending[ok]
                z_new[acc], V_new[acc], f_new[acc], G_new[acc] = zp[ok], Vp[ok], fp[ok], Gp[ok]
            accepted[pending[ok]] = True
            pending = pending[~ok]
            if pending.size == 0:
                break
            alpha[pending] *= 0.5
        z, V, f, G = z_new, V_new, f_new, G_new
        better = f < f_best[idx]
        if better.any():
            rows = idx[better]
            best[rows] = z[better]
            f_best[rows] = f[better]
        if not accepted.all():
            # No acceptable step even at rounding level: the row has stalled; stop it here.
            stalled = ~accepted
            n_iter[idx[stalled]] = it + 1
            final[idx[stalled]] = z[stalled]
            f_final[idx[stalled]] = f[stalled]
            idx = idx[accepted]
            if idx.size == 0:
                break
            Ua, Ta, z, V, f, G = (
                Ua[accepted],
                Ta[accepted],
                z[accepted],
                V[accepted],
                f[accepted],
                G[accepted],
            )
    out, f_out = _pick(best, f_best, final, f_final, f_start)
    return out, n_iter, res_out, conv, f_start, f_out


# --------------------------------------------------------------------------------------------------
_DUAL_MAX_ITER = 50
"""Dual Newton steps after which :func:`_dual_chunk` hands the rows still running to the primal
Newton method.

Warm-started rows take 1-5 steps; a row still running after 50 is cycling on a degenerate active
set (seen on 2 of 60,000 Fashion-MNIST rows, which otherwise ran to ``max_iter``)."""


def _dual_chunk(prob: _Problem, U: FloatArray, T: FloatArray, Z0: FloatArray) -> ChunkResult:
    """Semismooth Newton on the dual (:mod:`~cvx_lifted.kernels._boxqp_dual`), primal fallback."""
    return dual_chunk(prob, U, T, Z0, min(prob.max_iter, _DUAL_MAX_ITER), _newton_chunk)


# --------------------------------------------------------------------------------------------------
# Public entry point
# --------------------------------------------------------------------------------------------------

_NEWTON_MAX_Q = 32


def _run_chunks(
    prob: _Problem,
    chosen: str,
    U: FloatArray,
    Z0: FloatArray,
    chunk_rows: int,
    out: tuple[
        FloatArray, NDArray[np.int64], FloatArray, NDArray[np.bool_], FloatArray, FloatArray
    ],
) -> None:
    """Solve every chunk of rows with the ``chosen`` method, writing into the arrays of ``out``.

    ``out`` is ``(Z, n_iter, residual, converged, objective_start, objective)``. The chunks run
    through :func:`cvx_lifted.threads.map_row_parts` in chunks of equal size (on measured worker
    threads during training).
    """
    Z, n_iter, residual, converged, obj0, obj = out
    m, p = U.shape
    q = prob.W.shape[0]
    coupling = prob.coupling
    if chosen == "dual":
        solver = _dual_chunk
    elif chosen == "newton":
        solver = _newton_chunk
    elif isinstance(coupling, L2Coupling) and p < 2 * q:
        solver = _fista_gram_chunk
    else:
        solver = _fista_chunk
    # what the chunks share is computed once, before they may run concurrently
    if solver is _fista_gram_chunk:
        prob.hessian()
    elif chosen in ("dual", "newton"):
        prob.workspace["pairs32"] = np.ascontiguousarray(prob.pairs()[2].T, dtype=np.float32)

    def work(start: int, stop: int) -> None:
        sl = slice(start, stop)
        Uc = U[sl].astype(np.float64, copy=False)
        Tc = coupling.target[sl].astype(np.float64, copy=False)
        Zc = Z0[sl].astype(np.float64, copy=False)
        best, it, res, conv, f0, fb = solver(prob, Uc, Tc, Zc)
        Z[sl] = best
        n_iter[sl], residual[sl], converged[sl], obj0[sl], obj[sl] = it, res, conv, f0, fb

    threads.map_row_parts(work, m, -(-m // chunk_rows), key=f"state_step:{chosen}")


def state_step(
    U: ArrayLike,
    W: ArrayLike,
    b: ArrayLike,
    coupling: L2Coupling | ReluFenchelCoupling | SoftmaxCoupling | FYCoupling,
    a: float,
    c: float,
    lo: float = -np.inf,
    hi: float = np.inf,
    *,
    Z0: ArrayLike | None = None,
    tol: float = 1e-8,
    max_iter: int = 1000,
    method: str = "auto",
    chunk_rows: int | None = None,
) -> StepResult:
    r"""Hidden-state step: box-constrained minimisation per row with a shared linear map.

    .. math::

        Z^\star = \operatorname*{argmin}_{lo \le Z \le hi}
            \; \frac a2 \|Z - U\|_F^2 + c\, g\bigl(Z W^\top + \mathbf 1 b^\top\bigr),

    row by row, where :math:`g` is the ``coupling`` (:class:`L2Coupling`:
    :math:`\tfrac12\|T - V\|_F^2`, a box QP with the shared Hessian :math:`aI + cW^\top W`;
    :class:`ReluFenchelCoupling`: :math:`\sum\tfrac12\max(v,0)^2 - vt`;
    :class:`SoftmaxCoupling`: :math:`\sum_i \mathrm{lse}(v_i) - y_i^\top v_i`;
    :class:`FYCoupling`: :math:`\sum\Phi^*(v) - vt`), :math:`a > 0`,
    :math:`c \ge 0` and :math:`lo < hi` scalars (infinite allowed). The problem is
    :math:`a`-strongly convex, so the minimiser is unique.

    Method: projected Newton with Woodbury-reduced :math:`q\times q` systems (``"newton"``) or FISTA
    with adaptive restart (``"fista"``), chosen by ``method="auto"`` from :math:`q`; see the module
    docstring for the algorithms and the measurements. Both stop per row on the scaled
    projected-gradient residual
    :math:`L\,\|z - P(z - \nabla f/L)\|_\infty \le \text{tol}\,(1 + \|\nabla f\|_\infty)` with
    :math:`L = a + cL_g\|W\|_2^2`, start from ``Z0`` projected onto the box (default: ``U``
    projected), and return per row the last iterate, or the best one by objective if the last is
    worse than the projected start, so the objective never exceeds that of the projected start.
    With :math:`c = 0` the answer is the projection of :math:`U`.
    Computation is in float64, chunk by chunk of rows.

    Complexity: per iteration :math:`O(mpq)` for ``"fista"`` (two thin GEMMs;
    :math:`O(mp^2)` with the shared Hessian for :class:`L2Coupling` when :math:`p < 2q`) and
    :math:`O(mpq^2 + mq^3)` for ``"newton"``; memory :math:`O(\text{chunk\_rows}\cdot(p + q^2))`
    beyond the output.

    Parameters
    ----------
    U : array_like, shape (m, p)
        Centres (the pre-activations from the previous layer).
    W : array_like, shape (q, p)
        Next-layer weights.
    b : array_like, shape (q,)
        Next-layer intercepts.
    coupling : L2Coupling or ReluFenchelCoupling or SoftmaxCoupling or FYCoupling
        The next layer's term, with a target of shape ``(m, q)``.
    a : float
        Weight :math:`a > 0` of the proximity term.
    c : float
        Weight :math:`c \ge 0` of the coupling.
    lo, hi : float, default -inf, inf
        Box bounds, ``lo < hi``.
    Z0 : array_like, shape (m, p), optional
        Warm start (projected onto the box).
    tol : float, default 1e-8
        Tolerance on the scaled projected-gradient residual.
    max_iter : int, default 1000
        Safety cap on iterations per row; rows that reach it are returned (no warning) with
        ``info['converged']`` false.
    method : {"auto", "dual", "newton", "fista"}, default "auto"
        Algorithm (``"dual"`` needs an :class:`L2Coupling`).
    chunk_rows : int, optional
        The most rows processed together (the rows are cut into equal chunks of at most this
        many); default ``max(64, 2**17 // p)`` (about 1 MB per float64 array),
        ``max(64, 2**19 // p)`` for ``"dual"``.

    Returns
    -------
    StepResult
        ``value``: the states ``Z``, shape ``(m, p)``, ``float32`` if all of ``U``, ``W``, ``b``
        and the coupling target are ``float32``, else ``float64``. ``info``: per-row
        ``n_iter``, ``residual`` (at the last tested iterate), ``converged``, ``objective`` and
        ``objective_start`` (float64 arrays), and ``method`` (``"dual"``, ``"newton"``,
        ``"fista"``, or ``"closed_form"`` when ``c = 0``).

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite inputs, ``a <= 0``, ``c < 0``, ``lo >= hi``, NaN bounds,
        an unknown coupling or method.
    """
    U_arr = as_float_array(U, "U", ndim=2)
    W_arr = as_float_array(W, "W", ndim=2)
    b_arr = as_float_array(b, "b", ndim=1)
    if not isinstance(coupling, _Coupling):
        raise ValueError(
            "coupling must be an L2Coupling, ReluFenchelCoupling, SoftmaxCoupling or FYCoupling, "
            f"got {type(coupling).__name__}"
        )
    m, p = U_arr.shape
    q = W_arr.shape[0]
    if W_arr.shape[1] != p:
        raise ValueError(f"W must have shape (q, {p}) to act on rows of U, got {W_arr.shape}")
    if b_arr.shape != (q,):
        raise ValueError(f"b must have shape ({q},), got {b_arr.shape}")
    if coupling.shape != (m, q):
        raise ValueError(f"the coupling target must have shape {(m, q)}, got {coupling.shape}")
    a_f = positive_scalar(a, "a")
    c_f = nonnegative_scalar(c, "c")
    lo_f = bound_scalar(lo, "lo")
    hi_f = bound_scalar(hi, "hi")
    if not lo_f < hi_f:
        raise ValueError(f"lo must be < hi, got lo={lo!r}, hi={hi!r}")
    tol_f = positive_scalar(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    if chunk_rows is not None:
        chunk_rows = positive_int(chunk_rows, "chunk_rows")
    if method not in ("auto", "dual", "newton", "fista"):
        raise ValueError(f"method must be 'auto', 'dual', 'newton' or 'fista', got {method!r}")
    if Z0 is not None:
        Z0_arr = as_float_array(Z0, "Z0", ndim=2)
        if Z0_arr.shape != (m, p):
            raise ValueError(f"Z0 must have shape {(m, p)}, got {Z0_arr.shape}")
    else:
        Z0_arr = U_arr
    out_dtype = float_dtype(U_arr, W_arr, b_arr, coupling.target)

    W64 = W_arr.astype(np.float64)
    b64 = b_arr.astype(np.float64)
    gram_small = W64 @ W64.T if q <= p else W64.T @ W64
    sigma_max_sq = max(float(np.linalg.eigvalsh(gram_small)[-1]), 0.0)  # ||W||_2^2
    L = a_f + c_f * coupling.lipschitz * sigma_max_sq
    L *= 1.0 + 1e-12  # guard rounding in the eigenvalue
    if method == "auto":
        if q > _NEWTON_MAX_Q:
            chosen = "fista"
        else:
            chosen = "dual" if isinstance(coupling, L2Coupling) else "newton"
    else:
        chosen = method
    if chosen == "dual" and not isinstance(coupling, L2Coupling):
        raise ValueError("method='dual' needs an L2Coupling (the dual is explicit only for it)")
    if chunk_rows is None:
        # the dual method makes few passes over a chunk and many small q x q operations: larger
        # chunks share their Python overhead (at m = 60,000, p = 300, q = 10: 0.91 s with 2048
        # rows, 1.11 s with 436)
        chunk_rows = max(64, (2**19 if chosen == "dual" else 2**17) // max(p, 1))

    Z = np.empty((m, p), dtype=out_dtype)
    n_iter = np.zeros(m, dtype=np.int64)
    residual = np.zeros(m)
    converged = np.ones(m, dtype=bool)
    obj = np.zeros(m)
    obj0 = np.zeros(m)
    if c_f == 0.0 or m == 0:
        Z[...] = _clip(U_arr.astype(np.float64), lo_f, hi_f)
        chosen = "closed_form"
    else:
        prob = _Problem(W64, b64, coupling, a_f, c_f, lo_f, hi_f, L, tol_f, max_iter)
        _run_chunks(
            prob, chosen, U_arr, Z0_arr, chunk_rows, (Z, n_iter, residual, converged, obj0, obj)
        )
    if chosen == "closed_form":  # c = 0: the objective is the proximity term alone
        D = Z.astype(np.float64) - U_arr
        obj[:] = 0.5 * a_f * _rowdot(D, D)
        D0 = _clip(Z0_arr.astype(np.float64), lo_f, hi_f) - U_arr
        obj0[:] = 0.5 * a_f * _rowdot(D0, D0)
    info = {
        "n_iter": n_iter,
        "residual": residual,
        "converged": converged,
        "objective": obj,
        "objective_start": obj0,
        "method": chosen,
    }
    return StepResult(Z, info)
