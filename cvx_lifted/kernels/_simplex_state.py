# SPDX-License-Identifier: Apache-2.0
r"""The state step after a sparsemax layer: projected FISTA on the simplex (private module).

:func:`simplex_state_step` is re-exported by :mod:`~cvx_lifted.kernels.fenchel_young` and
:mod:`cvx_lifted.kernels`.
"""

from __future__ import annotations

from typing import Any, cast

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._boxqp_fista import CouplingOracle
from ._fista import fista_rows
from ._result import StepResult
from ._rows import _rowdot
from ._state_inputs import _check_state_inputs
from .boxqp import FYCoupling, L2Coupling, ReluFenchelCoupling, SoftmaxCoupling, _Problem
from .simplex import _project_simplex64

FloatArray = NDArray[np.floating[Any]]

__all__ = ["simplex_state_step"]


def _simplex_oracle(prob: _Problem) -> CouplingOracle:
    """FISTA's problem: the box problem's smooth part (no box), the projection onto the simplex."""
    L, tol = prob.L, prob.tol

    def project(Z: FloatArray) -> FloatArray:
        out: FloatArray = _project_simplex64(cast(NDArray[np.float64], Z), 1.0)  # float64 rows
        return out

    def residual(Y: FloatArray, grad: FloatArray, X: FloatArray) -> tuple[FloatArray, FloatArray]:
        res = L * np.max(np.abs(Y - X), axis=1)  # scaled projected-gradient residual at Y
        return res, tol * (1.0 + np.max(np.abs(grad), axis=1))

    return CouplingOracle(prob, project, residual)


def simplex_state_step(
    U: ArrayLike,
    W: ArrayLike,
    b: ArrayLike,
    coupling: L2Coupling | ReluFenchelCoupling | SoftmaxCoupling | FYCoupling,
    a: float,
    c: float,
    *,
    Z0: ArrayLike | None = None,
    tol: float = 1e-8,
    max_iter: int = 1000,
) -> StepResult:
    r"""Hidden-state step after a sparsemax layer: the state lies on the probability simplex.

    .. math::

        Z^\star = \operatorname*{argmin}_{z_i \ge 0,\ \mathbf 1^\top z_i = 1}
            \; \frac a2 \|Z - U\|_F^2 + c\, g\bigl(Z W^\top + \mathbf 1 b^\top\bigr),

    row by row (the sparsemax divergence :math:`\tfrac12\|z - u\|^2` on the simplex plus the next
    layer's ``coupling`` :math:`g`), :math:`a > 0`, :math:`c \ge 0`; :math:`a`-strongly convex,
    so the minimiser is unique. With :math:`c = 0` it is :math:`\operatorname{sparsemax}(U)`.

    Method: projected FISTA with step :math:`1/L`, :math:`L = a + cL_g\|W\|_2^2`, the Euclidean
    projection onto the simplex (:func:`~cvx_lifted.kernels.project_simplex`'s sort-based
    algorithm) and per-row adaptive restart (gradient and function tests), batched over rows in
    chunks of about 1 MB. A row stops when
    :math:`L\|y - P(y - \nabla f(y)/L)\|_\infty \le \text{tol}\,(1 + \|\nabla f(y)\|_\infty)`;
    the iteration count grows like :math:`\sqrt{L/a}`. Each row returns its last iterate unless its
    objective exceeds that of the projected start, then its best one, so the objective never
    exceeds the start's.

    Complexity: per iteration :math:`O(mpq)` (two thin GEMMs) plus :math:`O(mp\log p)` for the
    projection.

    Parameters
    ----------
    U : array_like, shape (m, p)
        Pre-activations of the previous (sparsemax) layer.
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
    Z0 : array_like, shape (m, p), optional
        Warm start (projected onto the simplex); default :math:`\operatorname{sparsemax}(U)`.
    tol : float, default 1e-8
        Tolerance on the scaled projected-gradient residual.
    max_iter : int, default 1000
        Cap on iterations per row; rows that reach it have ``info['converged']`` false.

    Returns
    -------
    StepResult
        ``value``: the states ``Z``, shape ``(m, p)``, rows on the simplex; ``float32`` if all of
        ``U``, ``W``, ``b`` and the coupling target are ``float32``, else ``float64``. ``info``:
        per-row ``n_iter``, ``residual``, ``converged``, ``objective`` and ``objective_start``,
        and ``method`` (``"fista"`` or ``"closed_form"``).

    Raises
    ------
    ValueError
        On inconsistent shapes, non-finite inputs, ``a <= 0`` or ``c < 0``.
    """
    U_arr, W_arr, b_arr, a_f, c_f, tol_f, max_iter, chunk_rows, Z0_arr, out_dtype = (
        _check_state_inputs(U, W, b, coupling, a, c, Z0, tol, max_iter, None)
    )
    m, p = U_arr.shape
    q = W_arr.shape[0]
    W64 = W_arr.astype(np.float64)
    b64 = b_arr.astype(np.float64)
    gram_small = W64 @ W64.T if q <= p else W64.T @ W64
    sigma_max_sq = max(float(np.linalg.eigvalsh(gram_small)[-1]), 0.0) if q else 0.0
    L = (a_f + c_f * coupling.lipschitz * sigma_max_sq) * (1.0 + 1e-12)
    # the smooth part is the box step's with an infinite box; only the projection differs
    oracle = _simplex_oracle(
        _Problem(W64, b64, coupling, a_f, c_f, -np.inf, np.inf, L, tol_f, max_iter)
    )
    Z = np.empty((m, p), dtype=out_dtype)
    n_iter = np.zeros(m, dtype=np.int64)
    residual = np.zeros(m)
    converged = np.ones(m, dtype=bool)
    obj = np.zeros(m)
    obj0 = np.zeros(m)
    for start in range(0, m, chunk_rows):
        sl = slice(start, min(start + chunk_rows, m))
        Uc = U_arr[sl].astype(np.float64)
        Tc = coupling.target[sl].astype(np.float64)
        Zc = Uc if Z0_arr is None else Z0_arr[sl].astype(np.float64)
        if c_f == 0.0:
            Zopt = _project_simplex64(Uc, 1.0)
            Z[sl] = Zopt
            Zs = _project_simplex64(Zc, 1.0)
            for target, val in ((obj0, Zs), (obj, Zopt)):  # c = 0: the proximity term
                D = val - Uc
                target[sl] = 0.5 * a_f * _rowdot(D, D)
            continue
        out, it, res, conv, f0, fb = fista_rows(oracle, Zc, (Uc, Tc))
        Z[sl] = out
        n_iter[sl], residual[sl], converged[sl], obj0[sl], obj[sl] = it, res, conv, f0, fb
    info = {
        "n_iter": n_iter,
        "residual": residual,
        "converged": converged,
        "objective": obj,
        "objective_start": obj0,
        "method": "closed_form" if c_f == 0.0 else "fista",
    }
    return StepResult(Z, info)
