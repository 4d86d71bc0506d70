# SPDX-License-Identifier: Apache-2.0
r"""Matrix ridge regression with a reusable Cholesky factor (the W-step of the JCR layers).

Rows are samples: :math:`X` is :math:`m \times p`, the targets :math:`T` are :math:`m \times q`, and
the layer is :math:`T \approx X W^\top + \mathbf 1 b^\top` with :math:`W` of shape :math:`q \times
p`. The normal equations share one :math:`(p+1) \times (p+1)` matrix for every right-hand side, so
the Gram matrix and its Cholesky factor are built once per input :math:`X` (for layer 0, whose input
never changes, once per fit); each solve is then one GEMM :math:`X^\top T` plus triangular solves.

Mixed precision. The products over the data (:math:`X^\top T` here, and the images and gradients
of the weight steps of :mod:`~cvx_lifted.kernels.glm`) dominate the training time. For float64
data of at least :data:`MIXED_MIN_ENTRIES` entries they run in float32 on a float32 copy of
:math:`X` made once (``products="auto"``): a float32 product is twice as fast (0.25 s against
0.50 s for 60,000 x 784 x 300 on one core with OpenBLAS' Haswell kernels) and its relative error,
about 1e-7, is far below the accuracy the weight steps are run to. Everything of size
:math:`p \times p` or smaller (the Gram matrix, its Cholesky factor, the solves) stays in float64.
Small problems keep float64 products, so the kernels agree with CVXPY to 1e-10 there.
"""

from __future__ import annotations

import time
from typing import Any

import numpy as np
import scipy.linalg
from numpy.typing import ArrayLike, NDArray

from cvx_lifted import threads

from ._rowops import MEMORY, RowOps
from ._validation import as_float_array, float_dtype, positive_scalar

__all__ = [
    "FLOAT32_SOLVE_MAX_COND",
    "MIXED_MIN_ENTRIES",
    "CentredRows",
    "KernelRidge",
    "Ridge",
    "centred_kernel",
]

#: Float64 data with at least this many entries is multiplied in float32 (``products="auto"``).
MIXED_MIN_ENTRIES = 1_000_000

#: :class:`KernelRidge` with float32 products factors in float32 below this condition bound.
FLOAT32_SOLVE_MAX_COND = 1e4
_PRODUCTS = ("auto", "exact", "float32")
#: What a numerically singular ridge system means, and its fixes.
_SINGULAR = (
    "the ridge system is numerically singular: increase alpha (in training: rho, the weight "
    "penalty) or rescale X (standardise the features, e.g. with "
    "sklearn.preprocessing.StandardScaler; cvx-lifted train does so unless --no-standardize)"
)
#: A product with fewer columns does not pay for making the float32 copy of ``X``.
_COPY_MIN_COLUMNS = 32


def _product_dtype(X: Any, products: str) -> np.dtype[Any]:
    """Return the dtype of the products over ``X`` for a ``products`` setting (checked)."""
    if products not in _PRODUCTS:
        raise ValueError(f"products must be one of {_PRODUCTS}, got {products!r}")
    if products == "auto":
        products = "float32" if X.size >= MIXED_MIN_ENTRIES else "exact"
    return np.dtype(np.float32) if products == "float32" else np.dtype(X.dtype)


def _centred_gram32(X: NDArray[np.floating], rows: int = 8192) -> NDArray[np.float64]:
    r"""Return :math:`X^\top X` (float64) of float32 ``X`` from float32 products, a chunk at a time.

    A float32 Gram of uncentred data loses the Schur complement of the intercept block to
    rounding (a singular system for data with mean 100 and unit spread). Each chunk is centred
    first, :math:`D = C - \mathbf 1\mu^\top`, and
    :math:`C^\top C = D^\top D + s\mu^\top + \mu s^\top + n\mu\mu^\top` with
    :math:`s = D^\top\mathbf 1`: the float32 product :math:`D^\top D` is accurate relative to the
    spread, the rest is float64. Half the time of a float64 product, and ``X`` is never copied
    whole.
    """
    m, p = X.shape
    gram = np.zeros((p, p))
    buf = np.empty((min(rows, m), p), dtype=np.float32)
    for start in range(0, m, rows):
        chunk = X[start : start + rows]
        n = chunk.shape[0]
        mu = chunk.mean(axis=0, dtype=np.float64).astype(np.float32)
        D = buf[:n]
        np.subtract(chunk, mu, out=D)
        s = D.sum(axis=0, dtype=np.float64)
        mu64 = mu.astype(np.float64)
        gram += threads.matmul(D.T, D)
        gram += np.outer(s, mu64) + np.outer(mu64, s) + n * np.outer(mu64, mu64)
    return gram


def gram_chunk(X: NDArray[np.floating]) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    r"""Return :math:`X^\top X` and the column sums of ``X`` (float64) of one chunk of rows."""
    if X.dtype == np.float64:
        gram = threads.matmul(X.T, X)  # SYRK (numpy detects X.T @ X)
    else:
        gram = _centred_gram32(X)
    return gram, X.sum(axis=0, dtype=np.float64)


def moments_chunk(
    X: NDArray[np.floating], T: NDArray[np.floating], dtype: Any
) -> tuple[NDArray[np.floating], NDArray[np.float64]]:
    r"""Return :math:`X^\top T` (products in ``dtype``) and the column sums of ``T`` of a chunk."""
    XtT = threads.matmul(X.astype(dtype, copy=False).T, T.astype(dtype, copy=False))
    return XtT, T.sum(axis=0, dtype=np.float64)


def image_chunk(X: NDArray[np.floating], Wt: NDArray[Any], b: NDArray[Any]) -> NDArray[np.floating]:
    r"""Return :math:`XW^\top + \mathbf 1b^\top` of a chunk (``Wt`` is :math:`W^\top`)."""
    U = threads.matmul(X, Wt)
    U += b
    return U


def _squared_residual_chunk(
    X: NDArray[np.floating], T: NDArray[np.floating], Wt: NDArray[Any], b: NDArray[Any]
) -> float:
    R = T - X @ Wt - b
    return float(np.vdot(R, R))


class Ridge:
    r"""Ridge regression solver with the factorised augmented Gram matrix of :math:`[X, \mathbf 1]`.

    :meth:`solve` returns

    .. math::

        (W^\star, b^\star) = \operatorname*{argmin}_{W \in \mathbb R^{q\times p},\, b \in \mathbb
        R^q}
            \; \frac12 \bigl\|T - X W^\top - \mathbf 1 b^\top\bigr\|_F^2 + \frac\alpha2 \|W\|_F^2,

    the intercept :math:`b` being unpenalised (fixed to 0 when ``fit_intercept`` is false).

    Method: the constructor forms the augmented Gram matrix

    .. math::

        A = \begin{pmatrix} X^\top X + \alpha I & X^\top \mathbf 1 \\
                            \mathbf 1^\top X & m \end{pmatrix}

    (positive definite for :math:`\alpha > 0`, :math:`m \ge 1`: its Schur complement is
    :math:`X_c^\top X_c + \alpha I` with :math:`X_c` the centred :math:`X`) and its Cholesky factor
    with :func:`scipy.linalg.cho_factor`. :meth:`solve` computes :math:`[X, \mathbf 1]^\top T` (the
    GEMM :math:`X^\top T` and the column sums of :math:`T`) and back-substitutes. Nothing of size
    :math:`m \times m` (nor a copy of :math:`X`) is ever formed. The factor is computed in float64;
    the GEMMs run in the input dtype.

    Complexity: construction :math:`O(m p^2 + p^3)` (one SYRK and one Cholesky); each solve
    :math:`O(m p q + p^2 q)`.

    Parameters
    ----------
    X : array_like, shape (m, p)
        Inputs, one sample per row. Kept by reference (not copied) when already float32/float64.
    alpha : float
        Ridge penalty :math:`\alpha > 0`.
    fit_intercept : bool, default True
        Fit the unpenalised intercept :math:`b`.
    products : {"auto", "exact", "float32"}, default "auto"
        Precision of the products over the data (:meth:`solve`, :meth:`image` and the weight
        steps that take this object): ``"exact"`` in the dtype of ``X``; ``"float32"`` on a
        float32 copy of ``X`` made at first use; ``"auto"``: ``"float32"`` for float64 ``X``
        with at least :data:`MIXED_MIN_ENTRIES` entries, else ``"exact"``.

    Attributes
    ----------
    X : ndarray, shape (m, p)
        The inputs.
    alpha : float
        The penalty.
    fit_intercept : bool
        Whether :math:`b` is fitted.
    gram : ndarray, shape (p + 1, p + 1) or (p, p)
        The regularised (augmented) Gram matrix :math:`A` (float64).
    factor : tuple
        The ``(c, lower)`` pair of :func:`scipy.linalg.cho_factor` for :math:`A` (float64), reusable
        with :func:`scipy.linalg.cho_solve`.
    gram_seconds : float
        Wall time spent forming :math:`A`.
    factor_seconds : float
        Wall time spent in the Cholesky factorisation.
    product_dtype : numpy.dtype
        The dtype the products over the data run in.

    Raises
    ------
    ValueError
        If ``X`` is not a finite 2-D array with at least one row and column, ``alpha`` is not a
        finite number > 0, or ``products`` is not one of the names above.
    """

    def __init__(
        self,
        X: ArrayLike,
        alpha: float,
        *,
        fit_intercept: bool = True,
        products: str = "auto",
        ops: RowOps = MEMORY,
    ) -> None:
        X_arr: Any = as_float_array(X, "X", ndim=2) if not ops.distributed else X
        m, p = X_arr.shape
        if m < 1 or p < 1:
            raise ValueError(
                f"X must have at least one row and one column, got shape {X_arr.shape}"
            )
        self.alpha = positive_scalar(alpha, "alpha")
        self.fit_intercept = bool(fit_intercept)
        self.product_dtype = _product_dtype(X_arr, products)
        self.X = X_arr
        self.ops = ops
        self._Xp: Any = X_arr if self.product_dtype == X_arr.dtype else None
        self._image: tuple[NDArray[Any], NDArray[Any], Any] | None = None
        self.workspace: dict[str, Any] = {}
        t0 = time.perf_counter()
        gram, col_sums = ops.sum(gram_chunk, X_arr)
        k = p + 1 if self.fit_intercept else p
        A = np.empty((k, k), dtype=np.float64)
        A[:p, :p] = gram
        A[np.arange(p), np.arange(p)] += self.alpha
        if self.fit_intercept:
            A[:p, p] = col_sums
            A[p, :p] = col_sums
            A[p, p] = float(m)
        self.gram = A
        self.gram_seconds = time.perf_counter() - t0
        t0 = time.perf_counter()
        try:
            self.factor = scipy.linalg.cho_factor(A, lower=False, check_finite=False)
        except np.linalg.LinAlgError as exc:  # only through rounding: A is PD in exact arithmetic
            raise ValueError(_SINGULAR) from exc
        self.factor_seconds = time.perf_counter() - t0

    @property
    def n_samples(self) -> int:
        """Number of rows :math:`m` of ``X``."""
        return int(self.X.shape[0])

    @property
    def n_features(self) -> int:
        """Number of columns :math:`p` of ``X``."""
        return int(self.X.shape[1])

    def _check_targets(self, T: ArrayLike) -> Any:
        if self.ops.distributed:  # row-partitioned targets are checked where they are made
            return T
        T_arr = as_float_array(T, "T", ndim=2)
        if T_arr.shape[0] != self.n_samples:
            raise ValueError(
                f"T must have {self.n_samples} rows (one per row of X), got shape {T_arr.shape}"
            )
        return T_arr

    def moments(self, T: ArrayLike) -> tuple[NDArray[np.floating], NDArray[np.float64]]:
        r"""Return :math:`X^\top T` (shape ``(p, q)``) and :math:`T^\top \mathbf 1` (float64).

        Complexity: one GEMM, :math:`O(m p q)`.

        Parameters
        ----------
        T : array_like, shape (m, q)
            Targets.

        Returns
        -------
        XtT : ndarray, shape (p, q)
            :math:`X^\top T` in the common dtype of ``X`` and ``T``.
        col_sums : ndarray, shape (q,)
            Column sums of ``T``.
        """
        T_arr = self._check_targets(T)
        return self._moments(T_arr)

    def _moments(self, T: Any) -> tuple[NDArray[np.floating], NDArray[np.float64]]:
        dt = float_dtype(self.X, T)
        # the float32 copy of X costs about as much as a float64 product with a few columns:
        # made for products with many columns, used whenever it exists
        lowp = self._Xp is not None or T.shape[1] >= _COPY_MIN_COLUMNS
        if dt == np.float64 and self.product_dtype == np.float32 and lowp:
            XtT, cs = self.ops.sum(moments_chunk, self.product_matrix(), T, dtype=np.float32)
            return XtT.astype(np.float64), cs
        XtT, cs = self.ops.sum(moments_chunk, self.X, T, dtype=dt)
        return XtT, cs

    def product_matrix(self) -> Any:
        """Return ``X`` in :attr:`product_dtype` (a float32 copy is made at the first call).

        Returns
        -------
        ndarray, shape (m, p)
            A row-partitioned array of the same shape when ``X`` is one.
        """
        if self._Xp is None:
            self._Xp = self.ops.astype(self.X, self.product_dtype)
        return self._Xp

    def image(self, W: ArrayLike, b: ArrayLike) -> Any:
        r"""Return :math:`U = XW^\top + \mathbf 1 b^\top` in :attr:`product_dtype`.

        With float32 products the image is kept in float32 (its float64 digits would be noise),
        half the memory of a float64 image. When ``W`` and ``b`` equal the pair last given
        to :meth:`remember_image` (a weight step of this layer remembers the image it kept up to
        date), that image is returned without a product; otherwise the new image is computed
        and remembered.

        Parameters
        ----------
        W : array_like, shape (q, p)
            Weights.
        b : array_like, shape (q,)
            Intercepts.

        Returns
        -------
        ndarray, shape (m, q)
            The image, owned by this object: do not modify it, and copy it to keep it (the next
            weight step on this ridge updates it in place).
        """
        W_arr = as_float_array(W, "W", ndim=2)
        b_arr = as_float_array(b, "b", ndim=1)
        if W_arr.shape[1] != self.n_features or b_arr.shape != (W_arr.shape[0],):
            raise ValueError(
                f"W must have shape (q, {self.n_features}) and b shape (q,), got {W_arr.shape} "
                f"and {b_arr.shape}"
            )
        U = self.recall_image(W_arr, b_arr)
        if U is None:
            Xp = self.product_matrix()
            U = self.ops.map(
                image_chunk, Xp, Wt=W_arr.T.astype(Xp.dtype), b=b_arr.astype(Xp.dtype),
                cols=W_arr.shape[0], dtype=Xp.dtype,
            )  # fmt: skip
            self.remember_image(W_arr, b_arr, U)
        return U

    def remember_image(self, W: NDArray[Any], b: NDArray[Any], U: Any) -> None:
        """Remember that ``U`` is the image of ``(W, b)`` (the previous one is forgotten).

        Parameters
        ----------
        W : ndarray, shape (q, p)
        b : ndarray, shape (q,)
        U : ndarray, shape (m, q)
            Kept by reference.
        """
        self._image = (np.array(W, copy=True), np.array(b, copy=True), U)

    def recall_image(self, W: NDArray[Any], b: NDArray[Any]) -> Any:
        """Return the remembered image of ``(W, b)``, or ``None`` if another pair was remembered."""
        if self._image is None:
            return None
        Wr, br, U = self._image
        same = Wr.shape == np.shape(W) and br.shape == np.shape(b)
        if same and np.array_equal(Wr, W) and np.array_equal(br, b):
            return U
        return None

    def forget_image(self) -> None:
        """Drop the remembered image (frees its memory)."""
        self._image = None

    def solve_moments(
        self, XtT: ArrayLike, col_sums: ArrayLike | None = None
    ) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        r"""Solve the normal equations for given moments.

        Given :math:`X^\top T` and :math:`T^\top\mathbf 1`, return

        .. math::

            \begin{pmatrix} W^\top \\ b^\top \end{pmatrix} = A^{-1}
            \begin{pmatrix} X^\top T \\ \mathbf 1^\top T \end{pmatrix},

        i.e. the minimiser of :meth:`objective` when the moments are those of :math:`T`. Lets
        callers that update :math:`X^\top T` incrementally (e.g. the majorisation–minimisation
        W-steps) reuse the factor without recomputing the GEMM.

        Method: two triangular solves with :attr:`factor` (float64). Complexity: :math:`O(p^2 q)`.

        Parameters
        ----------
        XtT : array_like, shape (p, q)
            :math:`X^\top T`.
        col_sums : array_like, shape (q,), optional
            :math:`T^\top \mathbf 1`; required when ``fit_intercept`` is true.

        Returns
        -------
        W : ndarray, shape (q, p)
            Weights (float64, C-contiguous).
        b : ndarray, shape (q,)
            Intercepts (zeros when ``fit_intercept`` is false).
        """
        p = self.n_features
        XtT_arr = as_float_array(XtT, "XtT", ndim=2, dtype=np.float64)
        if XtT_arr.shape[0] != p:
            raise ValueError(f"XtT must have {p} rows, got shape {XtT_arr.shape}")
        q = XtT_arr.shape[1]
        if self.fit_intercept:
            if col_sums is None:
                raise ValueError("col_sums is required when fit_intercept is true")
            cs = as_float_array(col_sums, "col_sums", ndim=1, dtype=np.float64)
            if cs.shape != (q,):
                raise ValueError(f"col_sums must have shape ({q},), got {cs.shape}")
            rhs = np.vstack([XtT_arr, cs[None, :]])
        else:
            rhs = XtT_arr
        sol = scipy.linalg.cho_solve(self.factor, rhs, check_finite=False)
        W = np.ascontiguousarray(sol[:p].T)
        b = sol[p].copy() if self.fit_intercept else np.zeros(q)
        return W, b

    def solve(self, T: ArrayLike) -> tuple[NDArray[np.floating], NDArray[np.floating]]:
        r"""Ridge solution for the targets ``T``.

        .. math::

            (W^\star, b^\star) = \operatorname*{argmin}_{W, b}
                \; \frac12 \bigl\|T - X W^\top - \mathbf 1 b^\top\bigr\|_F^2
                + \frac\alpha2 \|W\|_F^2 .

        Method: the GEMM :math:`X^\top T`, the column sums of :math:`T`, and two triangular solves
        with the stored Cholesky factor. Complexity: :math:`O(m p q + p^2 q)`.

        Parameters
        ----------
        T : array_like, shape (m, q)
            Targets, one row per row of ``X``.

        Returns
        -------
        W : ndarray, shape (q, p)
            Weights, in ``float32`` if ``X`` and ``T`` are both ``float32``, else ``float64``.
        b : ndarray, shape (q,)
            Intercepts (zeros when ``fit_intercept`` is false), same dtype as ``W``.

        Raises
        ------
        ValueError
            If ``T`` is not a finite 2-D array with ``m`` rows.
        """
        T_arr = self._check_targets(T)
        XtT, cs = self._moments(T_arr)
        W, b = self.solve_moments(XtT, cs)
        dt = float_dtype(self.X, T_arr)
        return W.astype(dt, copy=False), b.astype(dt, copy=False)

    def objective(self, W: ArrayLike, b: ArrayLike, T: ArrayLike) -> float:
        r"""Evaluate :math:`\frac12\|T - XW^\top - \mathbf 1 b^\top\|_F^2 + \frac\alpha2\|W\|_F^2`.

        Method: one GEMM :math:`X W^\top`, in float64. Complexity: :math:`O(m p q)`.

        Parameters
        ----------
        W : array_like, shape (q, p)
            Weights.
        b : array_like, shape (q,)
            Intercepts.
        T : array_like, shape (m, q)
            Targets.

        Returns
        -------
        float
            The objective value.
        """
        T_arr = self._check_targets(T).astype(np.float64, copy=False)
        q = T_arr.shape[1]
        W_arr = as_float_array(W, "W", ndim=2, dtype=np.float64)
        b_arr = as_float_array(b, "b", ndim=1, dtype=np.float64)
        if W_arr.shape != (q, self.n_features):
            raise ValueError(f"W must have shape {(q, self.n_features)}, got {W_arr.shape}")
        if b_arr.shape != (q,):
            raise ValueError(f"b must have shape ({q},), got {b_arr.shape}")
        sq = self.ops.sum(_squared_residual_chunk, self.X, T_arr, Wt=W_arr.T, b=b_arr)
        return 0.5 * float(sq) + 0.5 * self.alpha * float(np.vdot(W_arr, W_arr))


def _centred(X: ArrayLike, products: str) -> tuple[NDArray[np.float64], NDArray[np.floating]]:
    """Return the column means of ``X`` (float64) and ``X`` less them, in the product dtype.

    ``X`` is checked: a finite 2-D array with at least one row and one column.
    """
    X_arr = as_float_array(X, "X", ndim=2)
    if X_arr.shape[0] < 1 or X_arr.shape[1] < 1:
        raise ValueError(f"X must have at least one row and one column, got shape {X_arr.shape}")
    dt = _product_dtype(X_arr, products)
    mean = X_arr.mean(axis=0, dtype=np.float64)
    return mean, np.subtract(X_arr, mean.astype(dt), dtype=dt)


def centred_kernel(X: ArrayLike, *, products: str = "auto") -> NDArray[np.floating]:
    r"""Return the kernel matrix :math:`K = X_c X_c^\top` that :class:`KernelRidge` factors.

    :math:`X_c` is ``X`` less its column means, in the product dtype of ``products`` (see
    :class:`KernelRidge`); pass the result as ``KernelRidge(X, alpha, products=products,
    kernel=K)`` to factor :math:`K + \alpha I` for another ``alpha`` without the SYRK.

    Parameters
    ----------
    X : array_like, shape (m, p)
        Inputs, one sample per row.
    products : {"auto", "exact", "float32"}, default "auto"
        As for :class:`KernelRidge`.

    Returns
    -------
    ndarray, shape (m, m)
        :math:`K`, in the product dtype.

    Raises
    ------
    ValueError
        If ``X`` is not a finite 2-D array or ``products`` is not one of ``"auto"``,
        ``"exact"``, ``"float32"``.
    """
    _, Xc = _centred(X, products)
    return np.asarray(threads.matmul(Xc, Xc.T))  # SYRK


class CentredRows:
    r"""Rows less their column means, with their kernel matrix: what :class:`KernelRidge` factors.

    Made once for rows that are regressed on again and again with other penalties and targets
    (the batches of :class:`~cvx_lifted.minibatch.MinibatchBCDSolver`, the same in every epoch):
    ``KernelRidge(rows, alpha)`` then takes the centred copy and :math:`K = X_cX_c^\top` from
    here instead of forming them, and :meth:`image` gives :math:`XW^\top + \mathbf 1 b^\top`
    without the rows themselves.

    Parameters
    ----------
    X : array_like, shape (m, p)
        Inputs, one sample per row (finite).
    products : {"auto", "exact", "float32"}, default "auto"
        Precision of the centred copy and of its products, as for :class:`KernelRidge`.

    Attributes
    ----------
    mean : ndarray, shape (p,)
        :math:`\bar x`, the column means (float64).
    centred : ndarray, shape (m, p)
        :math:`X_c = X - \mathbf 1\bar x^\top` in the product dtype (read only).
    kernel : ndarray, shape (m, m)
        :math:`K = X_cX_c^\top` in the product dtype (:func:`centred_kernel`; read only).
    shape : tuple of int
        ``(m, p)``.

    Raises
    ------
    ValueError
        If ``X`` is not a finite 2-D array with at least one row and column, or ``products`` is
        not one of ``"auto"``, ``"exact"``, ``"float32"``.
    """

    def __init__(self, X: ArrayLike, *, products: str = "auto") -> None:
        self.mean, self.centred = _centred(X, products)
        self.kernel: NDArray[np.floating] = np.asarray(
            threads.matmul(self.centred, self.centred.T)
        )  # SYRK
        self.centred.flags.writeable = False
        self.kernel.flags.writeable = False
        m, p = self.centred.shape
        self.shape: tuple[int, int] = (int(m), int(p))

    def image(self, W: ArrayLike, b: ArrayLike, *, dtype: Any = np.float64) -> NDArray[np.floating]:
        r"""Return :math:`XW^\top + \mathbf 1 b^\top` from the centred rows.

        :math:`X_cW^\top + \mathbf 1(b + W\bar x)^\top`: one product in the product dtype.

        Parameters
        ----------
        W : array_like, shape (q, p)
            Weights.
        b : array_like, shape (q,)
            Intercepts.
        dtype : dtype, default float64
            Floating type of the result.

        Returns
        -------
        ndarray, shape (m, q)
        """
        W_arr = np.asarray(W, dtype=np.float64)
        if W_arr.ndim != 2 or W_arr.shape[1] != self.shape[1]:
            raise ValueError(f"W must have shape (q, {self.shape[1]}), got {W_arr.shape}")
        shift = np.asarray(b, dtype=np.float64) + W_arr @ self.mean
        U = self.centred @ W_arr.T.astype(self.centred.dtype)
        out: NDArray[np.floating] = np.add(U, shift, dtype=dtype)
        return out


class KernelRidge:
    r"""Ridge regression through the :math:`m \times m` kernel matrix, for fewer rows than columns.

    Returns the same minimiser as :class:`Ridge`,

    .. math::

        (W^\star, b^\star) = \operatorname*{argmin}_{W, b}
            \; \frac12 \bigl\|T - X W^\top - \mathbf 1 b^\top\bigr\|_F^2 + \frac\alpha2 \|W\|_F^2

    with the intercept unpenalised, from the other side of the push-through identity
    :math:`(X_c^\top X_c + \alpha I)^{-1} X_c^\top = X_c^\top (X_c X_c^\top + \alpha I)^{-1}`,
    :math:`X_c` being :math:`X` with its column means :math:`\bar x` taken away (centring is what
    leaves the intercept unpenalised): :math:`W^{\star\top} = X_c^\top (K + \alpha I)^{-1}
    (T - \mathbf 1\bar t^\top)` with :math:`K = X_c X_c^\top`, and
    :math:`b^\star = \bar t - W^\star \bar x`.

    Method: the constructor centres a copy of :math:`X` (in the product dtype), forms :math:`K`
    (one SYRK, :math:`m^2 p`) and factors :math:`K + \alpha I` (:math:`m^3/3`);
    :meth:`solve` takes two triangular solves (:math:`2m^2 q`) and one product
    :math:`X_c^\top Z` (:math:`2mpq`). Against :class:`Ridge`'s :math:`p^2 m + p^3/3 + 2p^2 q +
    2mpq` this is cheaper when :math:`m < p`: a batch of 500 rows of 784-pixel images costs
    about 0.63 GFLOP instead of 1.08 for 300 outputs. Centring first also keeps a float32
    :math:`K` accurate relative to the spread of the data. With float32 products the factor and
    the solves are float32 too when :math:`1 + \operatorname{tr}K/\alpha` (a bound on the
    condition number of :math:`K + \alpha I`) is at most ``FLOAT32_SOLVE_MAX_COND`` (1e4), and
    float64 otherwise: the answer is then the minimiser to about 1e-4 relative, and its
    objective exceeds the minimum by the square of that (a minimiser is a stationary point), as
    good as float64 for a majorisation step (a mini-batch epoch on Fashion-MNIST 7-11 % faster,
    the same test accuracy and objective to 1e-7).

    Parameters
    ----------
    X : array_like, shape (m, p), or CentredRows
        Inputs, one sample per row; or their :class:`CentredRows`, made once for many
        penalties (its centred copy and kernel matrix are used as they are: ``products`` and
        ``kernel`` are then ignored).
    alpha : float
        Ridge penalty :math:`\alpha > 0`.
    products : {"auto", "exact", "float32"}, default "auto"
        Precision of :math:`K` and of :math:`X_c^\top Z` (as for :class:`Ridge`), and of the
        factor and the solves when the system is well conditioned (above).
    kernel : ndarray, shape (m, m), optional
        :math:`K`, when the caller kept it: the :attr:`kernel` of an earlier
        :class:`KernelRidge` of the same ``X`` and ``products``, with any ``alpha`` (saves the
        SYRK, :math:`m^2 p`, the largest product of the constructor). It is not checked beyond
        its shape and dtype.

    Attributes
    ----------
    alpha : float
        The penalty.
    kernel : ndarray, shape (m, m)
        :math:`K = X_c X_c^\top` in the product dtype, without :math:`\alpha` (not modified).
    mean : ndarray, shape (p,)
        :math:`\bar x` (float64).
    product_dtype : numpy.dtype
        The dtype of the centred copy and its products.

    Raises
    ------
    ValueError
        If ``X`` is not a finite 2-D array with at least one row and column, ``alpha`` is not a
        finite number > 0, ``products`` is not one of ``"auto"``, ``"exact"``, ``"float32"``,
        or ``kernel`` has not the shape ``(m, m)`` and the product dtype.
    """

    def __init__(
        self,
        X: ArrayLike | CentredRows,
        alpha: float,
        *,
        products: str = "auto",
        kernel: NDArray[np.floating] | None = None,
    ) -> None:
        self.alpha = positive_scalar(alpha, "alpha")
        if isinstance(X, CentredRows):
            self.mean, self._Xc, kernel = X.mean, X.centred, X.kernel
        else:
            self.mean, self._Xc = _centred(X, products)
        m = self._Xc.shape[0]
        dt = self.product_dtype = self._Xc.dtype
        if kernel is None:
            kernel = np.asarray(threads.matmul(self._Xc, self._Xc.T))  # SYRK
        elif np.shape(kernel) != (m, m) or np.asarray(kernel).dtype != dt:
            raise ValueError(
                f"kernel must be the centred kernel matrix of X in the product dtype: an array "
                f"of shape {(m, m)} and dtype {dt}, got shape {np.shape(kernel)} and dtype "
                f"{np.asarray(kernel).dtype}; pass the kernel attribute of a KernelRidge of the "
                f"same X and products, or None."
            )
        self.kernel = kernel
        # float32 products: a float32 factor too when K + alpha I is well conditioned
        # (condition number at most 1 + trace(K) / alpha)
        single = dt == np.float32 and (
            1.0 + float(np.trace(kernel, dtype=np.float64)) / self.alpha <= FLOAT32_SOLVE_MAX_COND
        )
        # a copy: the kernel is kept
        K: NDArray[np.floating] = np.array(kernel, dtype=np.float32 if single else np.float64)
        K[np.arange(m), np.arange(m)] += self.alpha
        try:
            self.factor = scipy.linalg.cho_factor(
                K, lower=False, overwrite_a=True, check_finite=False
            )
        except np.linalg.LinAlgError as exc:  # only through rounding: K + alpha I is PD
            raise ValueError(_SINGULAR) from exc

    def solve(self, T: ArrayLike) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
        r"""Ridge solution for the targets ``T`` (see the class documentation).

        Parameters
        ----------
        T : array_like, shape (m, q)
            Targets, one row per row of ``X``.

        Returns
        -------
        W : ndarray, shape (q, p)
            Weights (float64, C-contiguous).
        b : ndarray, shape (q,)
            Intercepts (float64).

        Raises
        ------
        ValueError
            If ``T`` is not a finite 2-D array with ``m`` rows.
        """
        T_arr = as_float_array(T, "T", ndim=2)
        m = self._Xc.shape[0]
        if T_arr.shape[0] != m:
            raise ValueError(f"T must have {m} rows (one per row of X), got shape {T_arr.shape}")
        t_mean = T_arr.mean(axis=0, dtype=np.float64)
        R = np.subtract(T_arr, t_mean, dtype=self.factor[0].dtype)
        Z = scipy.linalg.cho_solve(self.factor, R, check_finite=False)
        Wt = np.asarray(threads.matmul(self._Xc.T, Z.astype(self.product_dtype, copy=False)))
        W = np.ascontiguousarray(Wt.T, dtype=np.float64)
        return W, t_mean - W @ self.mean
