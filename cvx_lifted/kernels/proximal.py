# SPDX-License-Identifier: Apache-2.0
r"""The proximal weight step of one layer on a batch: mini-batch BCD's weight block.

:func:`~cvx_lifted.minibatch.prox_weight_step` decreases

.. math::

    F(W, b) = \frac{w}{m}\, g(XW^\top + \mathbf 1 b^\top) + \frac\rho2\|W\|_F^2
    + \frac\mu2\|W - W_0\|_F^2

by majorisation-minimisation with the coupling's curvature bound (see
:mod:`cvx_lifted.minibatch` for where it is used); :func:`~cvx_lifted.minibatch.batch_kernel`
makes what the step keeps of a batch across epochs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import NDArray

from .boxqp import L2Coupling
from .ridge import CentredRows, KernelRidge, Ridge
from .spectral import SpectralBound

FloatArray = NDArray[np.floating[Any]]

__all__ = ["FLOAT32_MIN_ENTRIES", "batch_kernel", "prox_penalty", "prox_weight_step"]

#: A batch input with at least this many entries is multiplied in float32 by the weight step.
FLOAT32_MIN_ENTRIES = 1 << 16


def prox_weight_step(
    X: FloatArray | CentredRows,
    coupling: Any,
    W: FloatArray,
    b: FloatArray,
    *,
    weight: float,
    rho: float,
    mu: float,
    n_iter: int = 1,
    U: FloatArray | None = None,
    bound: SpectralBound | None = None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Majorisation-minimisation on a proximal weight step of one layer.

    Decreases, from :math:`(W_0, b_0) = (W, b)`,

    .. math::

        F(W, b) = \frac{w}{m}\, g(XW^\top + \mathbf 1 b^\top) + \frac\rho2\|W\|_F^2
        + \frac\mu2\|W - W_0\|_F^2

    with :math:`g` the ``coupling`` (a function of the pre-activation with an
    :math:`L`-Lipschitz gradient, :math:`L` = ``coupling.lipschitz``). Each iteration minimises
    the quadratic majoriser of :math:`g` at the current image :math:`U_k`, a ridge regression
    with targets :math:`U_k - \nabla g(U_k)/L`, through one factor of
    :math:`[X, \mathbf 1]^\top[X, \mathbf 1] + \alpha I` (:class:`~cvx_lifted.kernels.Ridge`,
    :math:`\alpha = m(\rho+\mu)/(wL)`) whose moments carry the prox centre, or, for a batch
    with fewer rows than inputs (:math:`m < p`), of the centred :math:`m \times m` kernel matrix
    plus :math:`\alpha I` (:class:`~cvx_lifted.kernels.KernelRidge`, on :math:`W - \kappa W_0`
    with :math:`\kappa = \mu/(\rho+\mu)`; 500 rows of 784 pixels: 0.63 GFLOP a step instead of
    1.08). So
    :math:`F` never increases, up to rounding (the products over an ``X`` of
    ``FLOAT32_MIN_ENTRIES`` (65,536) entries or more are float32 ones, the solves float64 (but
    see :class:`~cvx_lifted.kernels.KernelRidge`), as in
    :class:`~cvx_lifted.kernels.Ridge`); for a quadratic :math:`g`
    (:class:`~cvx_lifted.kernels.L2Coupling`) one iteration is the exact minimiser.

    Parameters
    ----------
    X : ndarray, shape (m, p), or CentredRows
        The layer's input on the batch; or, for a batch with fewer rows than inputs, its
        :class:`~cvx_lifted.kernels.CentredRows` when the caller keeps them (:func:`batch_kernel`;
        saves the centring and the largest product of the step, the kernel matrix).
    coupling : kernels coupling
        :math:`g` with its targets (:data:`cvx_lifted.paths.COUPLING` makes it).
    W : ndarray, shape (q, p)
        Current weights, the prox centre :math:`W_0` and the start.
    b : ndarray, shape (q,)
        Current biases (unpenalised, not held back).
    weight : float
        :math:`w > 0`, the weight of the divergence (:math:`\lambda`, or 1 for a loss).
    rho : float
        :math:`\rho \ge 0`.
    mu : float
        :math:`\mu > 0`.
    n_iter : int, default=1
        MM iterations (one is used for a quadratic ``coupling``).
    U : ndarray, shape (m, q), optional
        :math:`XW^\top + \mathbf 1 b^\top` when the caller has it (saves a product).
    bound : SpectralBound, optional
        A curvature bound of the centred rows ``X`` (:class:`~cvx_lifted.kernels.SpectralBound`):
        each iteration then minimises the majoriser with :math:`X_c^\top X_c` replaced by the
        bound, a gradient step with two thin products instead of the kernel system's factor
        and solves (``F`` still never increases).

    Returns
    -------
    W, b : ndarray
        The new weights and biases (float64).
    """
    m, p = X.shape
    lip = float(coupling.lipschitz)
    scale = weight * lip / m  # curvature of the majoriser per unit of ||U - U_k||^2
    if isinstance(X, CentredRows):  # kept for a batch with fewer rows than inputs
        dual, products = True, "auto"
    else:  # fewer rows than inputs: solve through the m x m kernel matrix
        dual, products = m < p, _products(X)
    W_k = np.asarray(W, dtype=np.float64)
    b_k = np.asarray(b, dtype=np.float64)
    if isinstance(coupling, L2Coupling):
        n_iter = 1
    if bound is not None:
        if not isinstance(X, CentredRows) or bound.vectors.shape[0] != p:
            raise ValueError(
                f"bound= needs X as the CentredRows the bound was made from (inputs of width "
                f"{bound.vectors.shape[0]}), got {type(X).__name__} of shape {X.shape}; pass "
                f"batch_kernel(X) as X, or bound=None for the exact step."
            )
        return _bound_step(X, bound, coupling, W_k, b_k, scale, rho, mu, n_iter, U)
    if dual:
        # rho/2 |W|^2 + mu/2 |W - W_0|^2 = (rho + mu)/2 |W - kappa W_0|^2 + const: a ridge
        # regression on W - kappa W_0 with targets less X (kappa W_0)^T
        kappa = mu / (rho + mu)
        solver: Any = KernelRidge(X, prox_penalty(m, weight, lip, rho, mu), products=products)
    else:
        assert not isinstance(X, CentredRows)
        solver = Ridge(X, prox_penalty(m, weight, lip, rho, mu), products=products)
        centre = (mu / scale) * W_k.T
    shift: Any = None
    for _ in range(n_iter):
        if U is None:
            U = _image_of(X, W_k, b_k)
        _, grad = coupling.value_grad(U)
        targets = U - grad / lip
        if dual:
            if shift is None:  # X (kappa W_0)^T from the image at the start
                shift = kappa * (U - b_k.astype(U.dtype))
            V, b_k = solver.solve(targets - shift)
            W_k = np.multiply(W, kappa, dtype=np.float64)  # kappa W_0 + V, one new array
            W_k += V
        else:
            XtT, col_sums = solver.moments(targets)
            W_k, b_k = solver.solve_moments(XtT + centre, col_sums)
        U = None
    return W_k, b_k


def prox_penalty(m: int, weight: float, lipschitz: float, rho: float, mu: float) -> float:
    r"""Return :math:`\alpha = m(\rho + \mu)/(wL)`, the ridge penalty of a proximal weight step.

    The step on ``m`` rows minimises a ridge regression with this penalty
    (:func:`~cvx_lifted.minibatch.prox_weight_step`); a
    :class:`~cvx_lifted.kernels.SpectralBound` serves the step when it
    :meth:`~cvx_lifted.kernels.SpectralBound.fits` it.
    """
    return m * (rho + mu) / (weight * lipschitz)


def _bound_step(
    X: CentredRows,
    bound: SpectralBound,
    coupling: Any,
    W0: NDArray[np.float64],
    b: NDArray[np.float64],
    scale: float,
    rho: float,
    mu: float,
    n_iter: int,
    U: FloatArray | None,
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """``prox_weight_step``'s iterations with the curvature ``bound`` (module docs)."""
    lip = float(coupling.lipschitz)
    W = W0
    for _ in range(n_iter):
        U = X.image(W, b) if U is None else U
        _, grad = coupling.value_grad(U)
        g_mean = grad.mean(axis=0, dtype=np.float64)
        R = np.subtract(grad, g_mean, dtype=X.centred.dtype)
        G = R.T @ X.centred  # the gradient of F in W: (w/m) R^T Xc + rho W + mu (W - W0)
        G *= G.dtype.type(scale / lip)
        extra = rho * W if W is W0 else rho * W + mu * (W - W0)
        np.add(G, extra, out=G, casting="same_kind")
        W_next = W - bound.solve(G, scale, rho + mu)
        # the intercept minimises the majoriser exactly: the mean image moves by -mean(grad)/L
        b = b - g_mean / lip + (W - W_next) @ X.mean
        W, U = W_next, None
    return W, b


def batch_kernel(X: FloatArray) -> CentredRows | None:
    """Return what :func:`prox_weight_step` keeps of the batch input ``X`` across epochs.

    ``None`` when ``X`` has as many rows as columns or more (the step then factors the Gram
    matrix of the columns instead, and keeps nothing).

    Parameters
    ----------
    X : ndarray, shape (m, p)
        A layer's input on a batch.

    Returns
    -------
    CentredRows or None
        ``X`` less its column means and its kernel matrix, with the step's product precision;
        :meth:`~cvx_lifted.kernels.CentredRows.image` gives the batch's pre-activations from them,
        so the rows themselves are not needed again.
    """
    if X.shape[0] >= X.shape[1]:
        return None
    return CentredRows(X, products=_products(X))


def _image_of(X: FloatArray | CentredRows, W: FloatArray, b: FloatArray) -> FloatArray:
    """Return ``X W^T + b`` of a batch input (in its dtype) or of its kept centred rows."""
    if isinstance(X, CentredRows):
        return X.image(W, b)
    return np.asarray(X @ W.T.astype(X.dtype) + b.astype(X.dtype))


def _products(X: FloatArray) -> str:
    """Return the precision of the products of a weight step on the batch input ``X``."""
    return "float32" if X.size >= FLOAT32_MIN_ENTRIES else "auto"
