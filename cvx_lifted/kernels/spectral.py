# SPDX-License-Identifier: Apache-2.0
r"""A curvature bound of a batch from its top eigenpairs, for cheaper proximal weight steps.

The weight step of a layer on a batch minimises a quadratic whose curvature in the weights is
:math:`sX_c^\top X_c + (\rho + \mu)I` (:math:`X_c`: the batch's centred rows, :math:`s`: the
weight of the term per row times its curvature). Solving with that matrix exactly takes a
factor of the :math:`m \times m` kernel matrix and two triangular solves every step
(:class:`~cvx_lifted.kernels.KernelRidge`). With the top :math:`r` eigenpairs of
:math:`X_c^\top X_c`, :math:`E` (:math:`p \times r`, orthonormal) and :math:`\sigma_1 \ge \dots
\ge \sigma_r`, and :math:`t \ge \sigma_{r+1}`,

.. math::

    X_c^\top X_c \preceq B = E\,\mathrm{diag}(\sigma)E^\top + t\,(I - EE^\top),

so :math:`sB + (\rho + \mu)I` majorises the step's curvature and its inverse is
:math:`c^{-1}I + E\,\mathrm{diag}\bigl((s\sigma_i + \rho + \mu)^{-1} - c^{-1}\bigr)E^\top` with
:math:`c = st + \rho + \mu`: a step costs two thin products with :math:`E` besides the
gradient's product with :math:`X_c`; being the minimiser of a majoriser, it never raises the
step's objective. It moves every direction of the top :math:`r` as far as the exact step and
the others by at least :math:`(s\sigma_j + \rho + \mu)/c` of it, which is close to 1 when
:math:`t` is small next to :math:`\alpha = (\rho + \mu)/s`
(:meth:`~cvx_lifted.kernels.SpectralBound.fits`). The rows being the same in every epoch, the
eigenpairs are computed once per batch (about 16 ms for 500 rows, :math:`r = 64`, one thread)
and kept.

Measured (mini-batch BCD, 784-300-10, batch 500, one thread, the same seed). On pixels in [0, 1]
a batch's spectrum falls fast (:math:`\sigma_{65}` about 50 against :math:`\sigma_1` 3,000 to
10,000): Fashion-MNIST's bound fits from the start (:math:`\alpha` about 120), the epochs after
the second took 2.85 s instead of 3.28 s (medians of three alternating runs; the second, which
makes the eigenpairs, 4.8 s instead of 3.4 s) at the same test accuracy epoch by epoch (0.8814
against 0.8812 after ten); on MNIST-10k, used from the first epoch (with ``TIGHT`` = 4) it gave
0.9625 at best in 12 epochs against 0.961. On standardised pixels :math:`\sigma_{65}` is about
1,000: the bound used from the first epoch learned slower (0.927 against 0.950 after 12 epochs on
MNIST-10k), and with ``TIGHT`` = 4 Fashion-MNIST lost 0.7 points (0.878 against 0.885 after ten
epochs), so ``TIGHT`` is 1: there the exact step runs until the prox weight has grown
(Fashion-MNIST: from the eighth epoch, 0.8835 against 0.8851 after ten).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import NDArray

from .ridge import CentredRows

FloatArray = NDArray[np.floating[Any]]

__all__ = ["RANK", "TIGHT", "SpectralBound"]

#: Eigenpairs kept per batch.
RANK = 64
#: :meth:`~cvx_lifted.kernels.SpectralBound.fits` when the bound of the rest is at most this many
#: times alpha.
TIGHT = 1.0


def _room_for(rows: CentredRows, rank: int) -> bool:
    """Whether ``rows`` have the rows (``rank + 2``) and columns (``rank + 1``) ``rank`` needs."""
    m, p = rows.shape
    return m >= rank + 2 and p >= rank + 1


class SpectralBound:
    r"""The top eigenpairs of :math:`X_c^\top X_c` and a bound on the rest of its spectrum.

    See the module documentation. Built from a batch's :class:`~cvx_lifted.kernels.CentredRows`
    through its kernel matrix :math:`K = X_cX_c^\top`, whose nonzero eigenvalues are those of
    :math:`X_c^\top X_c` (eigenvectors :math:`q_i` of :math:`K` give
    :math:`X_c^\top q_i/\sqrt{\sigma_i}`).

    Parameters
    ----------
    rows : CentredRows
        The batch's centred rows and kernel matrix.
    rank : int, default=RANK
        Eigenpairs to keep, at most ``m - 2`` for ``m`` rows.

    Attributes
    ----------
    vectors : ndarray, shape (p, r)
        :math:`E`, orthonormal columns in the product dtype of ``rows`` (``r <= rank``: pairs
        within rounding of the bound are left to it).
    values : ndarray, shape (r,)
        :math:`\sigma_1 \ge \dots \ge \sigma_r` (float64).
    tail : float
        :math:`t`: :math:`\sigma_{r+1}` plus a margin for the rounding of the eigenvalues
        (:math:`m\,\varepsilon\,\sigma_1`, :math:`\varepsilon` the machine epsilon of
        :math:`K`'s dtype). The bound holds up to rounding: on batches of 500 Fashion-MNIST
        images in float32, :math:`B - X_c^\top X_c` had eigenvalues down to
        :math:`-3 \cdot 10^{-7}\sigma_1` (from the top pairs, not the tail).

    Raises
    ------
    ValueError
        If ``rank`` is not an integer >= 1, or the rows are too few for it (``m < rank + 2``) or
        too narrow (``p < rank + 1``).
    """

    def __init__(self, rows: CentredRows, rank: int = RANK) -> None:
        m, p = rows.shape
        if isinstance(rank, bool) or not isinstance(rank, int | np.integer) or rank < 1:
            raise ValueError(f"rank must be an integer >= 1, got {rank!r}.")
        if not _room_for(rows, rank):
            raise ValueError(
                f"rank={rank} needs at least {rank + 2} rows and {rank + 1} columns, got "
                f"{rows.shape}; use a smaller rank or the exact step (KernelRidge)."
            )
        K = rows.kernel
        values, Q = scipy.linalg.eigh(
            K, subset_by_index=[m - rank - 1, m - 1], driver="evr", check_finite=False
        )
        values = np.asarray(values[::-1], dtype=np.float64)  # descending
        Q = Q[:, ::-1]
        margin = m * float(np.finfo(K.dtype).eps) * max(float(values[0]), 0.0)
        self.tail = max(float(values[rank]), 0.0) + margin
        keep = values[:rank] > self.tail  # the others are within the bound already
        self.values: NDArray[np.float64] = values[:rank][keep]
        E = rows.centred.T @ Q[:, :rank][:, keep]
        E /= np.sqrt(self.values).astype(E.dtype)
        self.vectors: FloatArray = np.ascontiguousarray(E)

    @classmethod
    def of(cls, rows: CentredRows, rank: int = RANK) -> SpectralBound | None:
        """Return the bound of ``rows``, or ``None`` when they are too few for ``rank``."""
        if not _room_for(rows, rank):
            return None
        return cls(rows, rank)

    def fits(self, alpha: float) -> bool:
        r"""Whether the bound is tight enough for a step with penalty ``alpha``.

        ``True`` when :math:`t \le` ``TIGHT`` :math:`\cdot\,\alpha`, :math:`\alpha = (\rho +
        \mu)/s` (the ridge penalty of the exact step): every direction then moves at least
        1/(1 + ``TIGHT``) as far as in the exact step, and most much more.
        """
        return self.tail <= TIGHT * float(alpha)

    def solve(self, G: FloatArray, scale: float, shift: float) -> FloatArray:
        r"""Return :math:`G\,(sB + \delta I)^{-1}`: the step for the gradient rows ``G``.

        Parameters
        ----------
        G : ndarray, shape (q, p)
            Gradient with respect to the weights, one row per output (in the product dtype;
            overwritten with the step, which is returned: pass a copy to keep it).
        scale : float
            :math:`s > 0`.
        shift : float
            :math:`\delta = \rho + \mu > 0`.

        Returns
        -------
        ndarray, shape (q, p)
            The step, in the dtype of ``G``.
        """
        c = scale * self.tail + shift
        d = 1.0 / (scale * self.values + shift) - 1.0 / c
        GE = G @ self.vectors
        GE *= d.astype(GE.dtype)
        G *= G.dtype.type(1.0 / c)
        G += GE @ self.vectors.T
        return G
