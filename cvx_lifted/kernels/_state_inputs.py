# SPDX-License-Identifier: Apache-2.0
"""Input checks shared by the state steps of FY and sparsemax layers (private)."""

from __future__ import annotations

from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from ._validation import (
    as_float_array,
    float_dtype,
    nonnegative_scalar,
    positive_int,
    positive_scalar,
)
from .boxqp import _Coupling

FloatArray = NDArray[np.floating[Any]]

__all__ = ["_check_state_inputs"]


def _check_state_inputs(
    U: ArrayLike,
    W: ArrayLike,
    b: ArrayLike,
    coupling: Any,
    a: float,
    c: float,
    Z0: ArrayLike | None,
    tol: float,
    max_iter: int,
    chunk_rows: int | None,
) -> tuple[Any, ...]:
    """Check the inputs of a state step; return them converted, with defaults filled in."""
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
    if p < 1:
        raise ValueError(f"U must have at least one column, got shape {U_arr.shape}")
    if W_arr.shape[1] != p:
        raise ValueError(f"W must have shape (q, {p}) to act on rows of U, got {W_arr.shape}")
    if b_arr.shape != (q,):
        raise ValueError(f"b must have shape ({q},), got {b_arr.shape}")
    if coupling.shape != (m, q):
        raise ValueError(f"the coupling target must have shape {(m, q)}, got {coupling.shape}")
    a_f = positive_scalar(a, "a")
    c_f = nonnegative_scalar(c, "c")
    tol_f = positive_scalar(tol, "tol")
    max_iter = positive_int(max_iter, "max_iter")
    if chunk_rows is None:
        chunk_rows = max(64, 2**17 // p)
    chunk_rows = positive_int(chunk_rows, "chunk_rows")
    Z0_arr = None
    if Z0 is not None:
        Z0_arr = as_float_array(Z0, "Z0", ndim=2)
        if Z0_arr.shape != (m, p):
            raise ValueError(f"Z0 must have shape {(m, p)}, got {Z0_arr.shape}")
    out_dtype = float_dtype(U_arr, W_arr, b_arr, coupling.target)
    return U_arr, W_arr, b_arr, a_f, c_f, tol_f, max_iter, chunk_rows, Z0_arr, out_dtype
