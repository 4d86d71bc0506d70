# SPDX-License-Identifier: Apache-2.0
r"""How the weight steps touch row data: maps over row chunks and sums over them.

A weight step needs the data only through products and sums over its rows: the Gram
:math:`[X, \mathbf 1]^\top[X, \mathbf 1]`, the moments :math:`[X, \mathbf 1]^\top G`, the image
:math:`XW^\top + \mathbf 1b^\top` and per-column sums along a line. :class:`RowOps` names those
two operations:

* ``map(fn, *arrays, cols=, dtype=, **consts)``: a new row-partitioned array whose chunk is
  ``fn(*chunks, **consts)`` (same rows, ``cols`` columns);
* ``sum(fn, *arrays, **consts)``: the sum over chunks of ``fn(*chunks, **consts)`` (an array, a
  number or a tuple of them);
* ``update(fn, target, *arrays, **consts)``: ``target`` after ``fn(target_chunk, *chunks)``
  changed each chunk in place (in memory the very array; distributed a new one).

:data:`MEMORY` is the in-memory version: the whole array is one chunk and every call is the function
itself, so the kernels run exactly as plain NumPy. :mod:`cvx_lifted.distributed` provides the Dask
version, in which the same functions run once per row chunk on the workers. The chunk functions are
the kernels' own; there is one implementation of every solver.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np

__all__ = ["MEMORY", "RowOps"]


class RowOps:
    """Maps and sums over the row chunks of arrays (in memory: one chunk, the array itself).

    Attributes
    ----------
    distributed : bool
        False here; True when chunks live elsewhere (then a chunk function's array results
        cannot be returned by :meth:`sum`, only numbers and small arrays).
    """

    distributed = False

    def map(
        self,
        fn: Callable[..., Any],
        *arrays: Any,
        cols: int,
        dtype: Any,
        keep: bool = True,
        **consts: Any,
    ) -> Any:
        """Return the row-partitioned array whose chunks are ``fn(*chunks, **consts)``.

        Parameters
        ----------
        fn : callable
            Chunk function; it must not change its inputs.
        *arrays : array
            Row-partitioned alike (same rows).
        cols : int
            Columns of the result.
        dtype : dtype
            Dtype of the result.
        keep : bool, default=True
            Whether the result is used more than once (distributed: kept in the workers' memory;
            otherwise computed as part of whatever uses it).
        **consts
            Passed to every call unchanged.

        Returns
        -------
        array
            Row-partitioned like ``arrays`` (in memory: ``fn``'s result).
        """
        return fn(*arrays, **consts)

    def sum(self, fn: Callable[..., Any], *arrays: Any, **consts: Any) -> Any:
        """Return the sum over chunks of ``fn(*chunks, **consts)`` (tuples summed entrywise)."""
        return fn(*arrays, **consts)

    def update(self, fn: Callable[..., Any], target: Any, *arrays: Any, **consts: Any) -> Any:
        """Apply the in-place chunk function ``fn(target_chunk, *chunks, **consts)``.

        Returns the updated array: in memory ``target`` itself, changed in place.
        """
        fn(target, *arrays, **consts)
        return target

    def astype(self, X: Any, dtype: Any) -> Any:
        """Return ``X`` in ``dtype`` (a copy)."""
        return np.asarray(X).astype(dtype)


MEMORY = RowOps()
"""The in-memory :class:`RowOps`: every call runs its function once on the whole array."""
