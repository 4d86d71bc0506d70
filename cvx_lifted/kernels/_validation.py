# SPDX-License-Identifier: Apache-2.0
"""Input checks shared by the kernels (private).

Every check raises :class:`ValueError` whose message names the offending argument, so that a kernel
never returns NaN silently. Kernels compute in the floating dtype of their inputs: ``float32`` stays
``float32``, every other real dtype (integers, ``float16``, ``float64``) becomes ``float64``.
"""

from __future__ import annotations

import numbers

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "as_float_array",
    "bound_scalar",
    "check_finite",
    "float_dtype",
    "nonnegative_scalar",
    "positive_int",
    "positive_scalar",
]


def float_dtype(*arrays: ArrayLike) -> np.dtype:
    """Return ``float32`` when every argument is ``float32``, else ``float64``."""
    # ``.dtype`` first: a row-partitioned (e.g. Dask) array must not be gathered to ask
    dtypes = [np.dtype(a.dtype) if hasattr(a, "dtype") else np.asarray(a).dtype for a in arrays]
    if dtypes and all(d == np.float32 for d in dtypes):
        return np.dtype(np.float32)
    return np.dtype(np.float64)


def as_float_array(
    value: ArrayLike,
    name: str,
    *,
    ndim: int | tuple[int, ...] = 2,
    dtype: np.dtype | type | None = None,
    finite: bool = True,
) -> NDArray[np.floating]:
    """Convert ``value`` to a floating array and check its dimension and finiteness.

    Parameters
    ----------
    value : array_like
        The input.
    name : str
        The argument name used in error messages.
    ndim : int or tuple of int, default 2
        Allowed numbers of dimensions.
    dtype : dtype, optional
        Target dtype; by default ``float32`` is kept and anything else becomes ``float64``.
    finite : bool, default True
        Reject NaN and infinite entries.

    Returns
    -------
    ndarray
        A floating array (no copy when the input already has the target dtype).
    """
    arr = np.asarray(value)
    if arr.dtype.kind not in "biuf":
        raise ValueError(f"{name} must be a real numeric array, got dtype {arr.dtype}")
    target = np.dtype(dtype) if dtype is not None else float_dtype(arr)
    arr = arr.astype(target, copy=False)
    allowed = (ndim,) if isinstance(ndim, int) else ndim
    if arr.ndim not in allowed:
        raise ValueError(
            f"{name} must have {' or '.join(map(str, allowed))} dimension(s), got shape {arr.shape}"
        )
    if finite:
        check_finite(arr, name)
    return arr


def check_finite(arr: NDArray[np.floating], name: str) -> None:
    """Raise :class:`ValueError` if ``arr`` has a NaN or infinite entry."""
    if not np.isfinite(arr).all():
        raise ValueError(f"{name} must be finite (it contains NaN or inf)")


def _scalar(value: float, name: str) -> float:
    if isinstance(value, np.ndarray):
        if value.ndim != 0:
            raise ValueError(f"{name} must be a scalar, got an array of shape {value.shape}")
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ValueError(f"{name} must be a real scalar, got {value!r}")
    out = float(value)
    if np.isnan(out):
        raise ValueError(f"{name} must not be NaN")
    return out


def positive_scalar(value: float, name: str) -> float:
    """Return ``value`` as a float after checking that it is finite and > 0."""
    out = _scalar(value, name)
    if not (np.isfinite(out) and out > 0.0):
        raise ValueError(f"{name} must be a finite number > 0, got {value!r}")
    return out


def nonnegative_scalar(value: float, name: str) -> float:
    """Return ``value`` as a float after checking that it is finite and >= 0."""
    out = _scalar(value, name)
    if not (np.isfinite(out) and out >= 0.0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}")
    return out


def bound_scalar(value: float, name: str) -> float:
    """Return a box bound as a float; ``+inf`` and ``-inf`` are allowed, NaN is not."""
    return _scalar(value, name)


def positive_int(value: int, name: str) -> int:
    """Return ``value`` after checking that it is an integer >= 1."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise ValueError(f"{name} must be an integer >= 1, got {value!r}")
    return int(value)
