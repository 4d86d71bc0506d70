# SPDX-License-Identifier: Apache-2.0
"""``cvx-lifted train --scheduler``: the cluster, row chunks and the small decisions on them.

With ``--scheduler ADDRESS`` (or ``local``) ``train`` fits on row-chunked Dask arrays: a CSV or
NPZ file (or a named data set) is read on the client as usual and split into chunks of
``--chunk-rows`` rows that the workers hold; a ``.npy`` file is read a chunk at a time by the
workers (:func:`cvx_lifted.distributed.rows_from_npy`) and never loaded whole. What ``train``
decides from the data (the task, the classes, the standardisation) is then computed by
reductions on the cluster (:func:`infer_task`, :func:`integer_valued`, :func:`unique`,
:class:`RowScaler`).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from cvx_lifted.cli._common import UsageError
from cvx_lifted.distributed import cluster_client, is_dask_array, rows_from_npy, task_bytes
from cvx_lifted.distributed.cluster import local_cluster, require_dask, workers
from cvx_lifted.tables import MAX_EXACT_INTEGER, few_classes

__all__ = [
    "TASK_BUDGET",
    "RowScaler",
    "auto_chunk_rows",
    "dask_client",
    "infer_task",
    "integer_valued",
    "is_npy",
    "npy_rows",
    "to_rows",
    "unique",
]

#: Bytes one task on a chunk of the default size (``--chunk-rows`` unset) needs at most.
TASK_BUDGET = 256 * 2**20


@contextmanager
def dask_client(address: str) -> Iterator[Any]:
    """Yield a :class:`distributed.Client`, active, for ``address`` or a local cluster.

    Parameters
    ----------
    address : str
        A scheduler address (``"tcp://host:8786"``), or ``"local"``: the package's
        :func:`~cvx_lifted.distributed.cluster.local_cluster` (``os.cpu_count()`` worker
        processes with one thread each), started here and closed on exit.

    Yields
    ------
    distributed.Client

    Raises
    ------
    ConnectionError
        When the scheduler cannot be reached (the message says how to start one).
    """
    if address != "local":
        with cluster_client(address) as (client, _), client.as_current():
            yield client
        return
    require_dask()
    from distributed import Client

    cluster = local_cluster()
    try:
        with Client(cluster, set_as_default=False) as client, client.as_current():
            yield client
    finally:
        cluster.close()


def auto_chunk_rows(m: int, layer_sizes: Sequence[int]) -> int:
    """Return the default rows per chunk (``--chunk-rows`` unset).

    The rows split evenly over the active client's workers, at most as many as keep one task
    within :data:`TASK_BUDGET` (:func:`cvx_lifted.distributed.task_bytes`).

    Parameters
    ----------
    m : int
        Rows of the data.
    layer_sizes : sequence of int
        The network's layer sizes (an estimate of them will do).

    Returns
    -------
    int
    """
    n_workers = max(1, len(workers()))
    fits = max(1, TASK_BUDGET // task_bytes(1, layer_sizes))
    return max(1, min(fits, math.ceil(m / n_workers)))


def to_rows(X: np.ndarray, chunk_rows: int) -> Any:
    """Return an array in memory as a Dask array of row chunks (sent to the workers)."""
    import dask.array as da

    X = np.asarray(X)
    return da.from_array(X, chunks=(chunk_rows, *X.shape[1:]))


def is_npy(path: str) -> bool:
    """Whether ``path`` names an existing ``.npy`` file (by its suffix or its magic bytes)."""
    p = Path(path).expanduser()
    if not p.is_file():
        return False
    with open(p, "rb") as fh:
        return p.suffix.lower() == ".npy" or fh.read(4) == b"\x93NUM"


def npy_rows(
    path: str, target: str | None, chunk_rows: int | None, hidden: Sequence[int]
) -> tuple[Any, Any]:
    """Return the features and the target column of a 2-D ``.npy`` file as row-chunked arrays.

    The workers read the chunks from the file (which they must see); the client reads its
    header only.

    Parameters
    ----------
    path : str
        The file.
    target : str or None
        Index of the target column (negative counts from the end; default: the last one).
    chunk_rows : int or None
        Rows per chunk (``None``: :func:`auto_chunk_rows`).
    hidden : sequence of int
        Hidden widths, for the default chunk size.

    Returns
    -------
    X : dask.array.Array, shape (m, p), float64
    y : dask.array.Array, shape (m,)
    """
    head = np.load(Path(path).expanduser(), mmap_mode="r", allow_pickle=False)
    if head.ndim != 2 or head.dtype.kind not in "biuf":
        raise ValueError(
            f"{path}: a .npy data file must hold a 2-D numeric array (rows are samples, the "
            f"target one of its columns), got {head.dtype} {head.shape}."
        )
    m, n_cols = head.shape
    try:
        t = int(target) if target is not None else -1
    except ValueError:
        raise UsageError(
            f"--target {target!r}: a .npy file has no column names; give a 0-based index."
        ) from None
    if not -n_cols <= t < n_cols or n_cols < 2:
        raise UsageError(f"--target {t} is out of range for the {n_cols} columns of {path}.")
    t %= n_cols
    rows = chunk_rows or auto_chunk_rows(m, [n_cols - 1, *hidden, 1])
    A = rows_from_npy(str(Path(path).expanduser()), rows)
    X = A[:, :t] if t == n_cols - 1 else A[:, [j for j in range(n_cols) if j != t]]
    y = A[:, t]
    return X.astype(np.float64), (y.astype(np.int64) if y.dtype.kind == "b" else y)


def integer_valued(y: Any) -> bool:
    """Whether the numbers in Dask array ``y`` are finite integers up to ``2**53`` (a reduction)."""
    import dask
    import dask.array as da

    if y.dtype.kind in "iu":
        return True
    finite, top, whole = dask.compute(
        da.isfinite(y).all(), da.fabs(y).max(), (y == da.round(y)).all()
    )
    return bool(finite and top <= MAX_EXACT_INTEGER and whole)


def infer_task(y: Any) -> str:
    """:func:`cvx_lifted.tables.infer_task` for a Dask array: classify a few distinct integers."""
    if y.ndim != 1 or not integer_valued(y):
        return "regress"
    return "classify" if few_classes(unique(y).size, int(y.shape[0])) else "regress"


def unique(y: Any) -> np.ndarray:
    """Return the sorted distinct values of ``y`` (NumPy or Dask: one reduction)."""
    if not is_dask_array(y):
        return np.unique(y)
    import dask.array as da

    return np.asarray(da.unique(y).compute())


class RowScaler:
    """:class:`~sklearn.preprocessing.StandardScaler` of a Dask array: one reduction, lazy use.

    Attributes
    ----------
    mean_, scale_ : numpy.ndarray
        Column means and standard deviations (1 for constant columns, as scikit-learn does).
    """

    mean_: np.ndarray
    scale_: np.ndarray

    def fit(self, A: Any) -> RowScaler:
        """Find the column means and scales of ``A`` (2-D) on the cluster; return ``self``."""
        import dask

        mean, var = dask.compute(A.mean(axis=0), A.var(axis=0))
        mean, var = np.asarray(mean, dtype=np.float64), np.asarray(var, dtype=np.float64)
        eps, m = np.finfo(np.float64).eps, A.shape[0]
        constant = var <= m * eps * var + (m * mean * eps) ** 2  # as scikit-learn decides it
        self.mean_, self.scale_ = mean, np.where(constant, 1.0, np.sqrt(var))
        return self

    def transform(self, A: Any) -> Any:
        """Return ``(A - mean_) / scale_`` (lazy for a Dask array)."""
        return (A - self.mean_) / self.scale_
