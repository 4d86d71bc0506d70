# SPDX-License-Identifier: Apache-2.0
"""Row-wise helpers of the state-step kernels (private): every operation is vectorised over rows."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

FloatArray = NDArray[np.floating[Any]]
ChunkResult = tuple[
    FloatArray, NDArray[np.int64], FloatArray, NDArray[np.bool_], FloatArray, FloatArray
]
"""What a state-step chunk returns: ``(Z, n_iter, residual, converged, f_start, f)`` per row."""

__all__ = ["_batched_spd_solve", "_cholesky_solve_qqn", "_clip", "_pick", "_rowdot"]


def _rowdot(A: FloatArray, B: FloatArray) -> FloatArray:
    """Row-wise inner products."""
    out: FloatArray = np.einsum("ij,ij->i", A, B)
    return out


def _clip(Z: FloatArray, lo: float, hi: float, out: FloatArray | None = None) -> FloatArray:
    """Project onto the box ``[lo, hi]`` (a copy, or into ``out``)."""
    if np.isfinite(lo) or np.isfinite(hi):
        return np.clip(Z, lo, hi, out=out)
    if out is None:
        return Z.copy()
    out[...] = Z
    return out


def _batched_spd_solve(K: FloatArray, r: FloatArray) -> FloatArray:
    """Solve ``K[i] x[i] = r[i]``, SPD ``K`` of shape ``(n, q, q)``, ``r`` of shape ``(n, q)``."""
    return _cholesky_solve_qqn(np.ascontiguousarray(K.transpose(1, 2, 0)), r.T).T


def _cholesky_solve_qqn(A: FloatArray, r: FloatArray) -> FloatArray:
    """Solve ``A[:, :, i] x[:, i] = r[:, i]`` for SPD ``A`` of shape ``(q, q, n)`` (overwritten).

    Cholesky with loops over ``q``, vectorised over the ``n`` systems. The ``(q, q, n)`` layout
    makes every operation run along contiguous rows: 2.5-5x faster than on ``(n, q, q)`` at
    q = 10. Only the lower triangle of ``A`` is read; it is overwritten by the factor.
    """
    q = A.shape[0]
    x = np.array(r, dtype=np.float64, order="C")  # (q, n)
    tiny = np.finfo(np.float64).tiny
    for j in range(q):  # the lower triangle of A becomes the Cholesky factor L
        if j:
            A[j, j] -= np.einsum("kn,kn->n", A[j, :j], A[j, :j])
        np.maximum(A[j, j], tiny, out=A[j, j])
        np.sqrt(A[j, j], out=A[j, j])
        if j + 1 < q:
            if j:
                A[j + 1 :, j] -= np.einsum("ikn,kn->in", A[j + 1 :, :j], A[j, :j])
            A[j + 1 :, j] /= A[j, j]
    for j in range(q):  # L y = r
        if j:
            x[j] -= np.einsum("kn,kn->n", A[j, :j], x[:j])
        x[j] /= A[j, j]
    for j in range(q - 1, -1, -1):  # L^T x = y
        if j + 1 < q:
            x[j] -= np.einsum("kn,kn->n", A[j + 1 :, j], x[j + 1 :])
        x[j] /= A[j, j]
    return x


def _pick(
    best: FloatArray,
    f_best: FloatArray,
    final: FloatArray,
    f_final: FloatArray,
    f_start: FloatArray,
) -> tuple[FloatArray, FloatArray]:
    r"""Per row, the final iterate unless its objective exceeds the start's, else the best one.

    The final iterate is the one whose residual was tested; selecting by objective alone would only
    resolve :math:`z` to about :math:`\sqrt{\text{eps}}` near the optimum.
    """
    use_final = f_final <= f_start
    out = np.where(use_final[:, None], final, best)
    return out, np.where(use_final, f_final, f_best)
