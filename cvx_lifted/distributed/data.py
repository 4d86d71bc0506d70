# SPDX-License-Identifier: Apache-2.0
"""Row-chunked data for the Dask path: checks, loaders that read from storage, and prediction.

A lifted network's data must be chunked along rows only: every block of a sweep maps over row
chunks or sums over them. :func:`as_rows` checks that (and says how to rechunk when it is not),
:func:`check_chunks` that one task's working set fits in a worker's memory limit, and
:func:`rows_from_npy` reads a ``.npy`` file a chunk at a time on the workers (a memory map opened
where the chunk is needed; nothing of the file passes through the client). Zarr arrays come in
through :func:`dask.array.from_zarr`, which reads lazily in the same way.
"""

from __future__ import annotations

import copy
import math
import warnings
from typing import TYPE_CHECKING, Any

import numpy as np

from cvx_lifted._validation import caller_stacklevel

from .cluster import is_dask_array, require_dask, workers

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = [
    "as_rows",
    "check_chunks",
    "cluster_memory",
    "like_rows",
    "predict",
    "rows_from_npy",
    "task_bytes",
    "warn_small_chunks",
]


def as_rows(X: Any, name: str, *, n_features: int, dtype: Any) -> Any:
    """Check that ``X`` is a 2-D Dask array chunked along rows only; return it in ``dtype``.

    Parameters
    ----------
    X : dask.array.Array
        The array.
    name : str
        Its name in messages.
    n_features : int
        Required number of columns.
    dtype : numpy dtype
        The dtype to train in (the conversion is lazy).

    Returns
    -------
    dask.array.Array

    Raises
    ------
    ValueError
        For another number of dimensions or columns, a non-numeric dtype, unknown chunk sizes,
        or chunks along columns.
    """
    if not is_dask_array(X):
        raise TypeError(f"{name} must be a dask.array.Array, got {type(X).__name__}.")
    if X.ndim != 2:
        raise ValueError(f"{name} must be 2-D (rows are samples), got {X.ndim} dimensions.")
    if np.dtype(X.dtype).kind not in "biuf":
        raise ValueError(f"{name} must be numeric, got dtype {X.dtype}.")
    if any(math.isnan(c) for c in X.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )
    if X.shape[1] != n_features:
        raise ValueError(f"{name} must have {n_features} columns, got {X.shape[1]}.")
    if len(X.chunks[1]) > 1:
        raise ValueError(
            f"{name} must be chunked along rows only (one chunk spanning its {X.shape[1]} "
            f"columns), got column chunks {X.chunks[1]}; rechunk it: "
            f"{name} = {name}.rechunk({{0: 'auto', 1: -1}})."
        )
    if X.shape[0] < 1:
        raise ValueError(f"{name} must have at least one row.")
    if 0 in X.chunks[0]:  # e.g. a filtered array after compute_chunk_sizes(): nothing to do there
        X = X.rechunk({0: tuple(c for c in X.chunks[0] if c)})
    return X if X.dtype == dtype else X.astype(dtype)


def like_rows(Y: Any, X: Any, name: str, *, n_columns: int, dtype: Any) -> Any:
    """Return ``Y`` as a Dask array chunked along rows exactly like ``X``.

    ``Y`` may be a Dask array (its row chunks are aligned with ``X``'s) or in memory (it is
    split like ``X``).

    Parameters
    ----------
    Y : dask.array.Array or array_like, shape (m, n_columns)
        Targets.
    X : dask.array.Array
        The inputs, checked by :func:`as_rows`.
    name : str
        Name in messages.
    n_columns : int
        Required number of columns.
    dtype : numpy dtype
        The dtype to train in.

    Returns
    -------
    dask.array.Array
    """
    import dask.array as da

    if not is_dask_array(Y):
        Y = np.asarray(Y)
        if Y.shape != (X.shape[0], n_columns):
            raise ValueError(
                f"{name} must have shape ({X.shape[0]}, {n_columns}) (one row per row of X), "
                f"got {Y.shape}."
            )
        return da.from_array(Y.astype(dtype), chunks=(X.chunks[0], (n_columns,)))
    if any(math.isnan(c) for c in Y.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )
    if Y.shape != (X.shape[0], n_columns):
        raise ValueError(
            f"{name} must have shape ({X.shape[0]}, {n_columns}) (one row per row of X), "
            f"got {Y.shape}."
        )
    Y = Y.astype(dtype)
    if Y.chunks != (X.chunks[0], (n_columns,)):
        Y = Y.rechunk((X.chunks[0], (n_columns,)))
    return Y


def task_bytes(rows: int, layer_sizes: Any) -> int:
    """Estimate the memory one task of a sweep needs for a chunk of ``rows`` rows (bytes).

    The largest task is a weight step's over the widest layer: the chunk of its input, the
    image, the direction's image, the residual and the kernel's temporaries of that layer, in
    float64: ``8 * rows * (max input width + 6 * max output width)``.
    """
    sizes = list(layer_sizes)
    return 8 * rows * (max(sizes[:-1]) + 6 * max(sizes[1:]))


def worker_memory_limits() -> list[int]:
    """Return the memory limit of every worker of the active client (0: no limit)."""
    return [int(w.get("memory_limit") or 0) for w in workers().values()]


def _host_memory() -> int:
    import psutil  # a dependency of distributed

    return int(psutil.virtual_memory().total)


def cluster_memory() -> int:
    """Return the bytes the workers of the active client may hold between them.

    The sum of their memory limits; a worker without one (``memory_limit=0``) may use its host's
    memory, which is counted once per host (asked of the workers, one round trip).
    """
    from distributed import get_client

    info = workers()
    total = sum(int(w.get("memory_limit") or 0) for w in info.values())
    hosts = {w.get("host") for w in info.values() if not w.get("memory_limit")}
    if hosts:
        per_host = {info[a].get("host"): b for a, b in get_client().run(_host_memory).items()}
        total += sum(per_host.get(h, 0) for h in hosts)
    return total


def check_chunks(X: Any, layer_sizes: Any, fraction: float) -> list[int]:
    """Check that a task on ``X``'s largest row chunk fits in every worker's memory.

    Parameters
    ----------
    X : dask.array.Array
        Row-chunked inputs.
    layer_sizes : sequence of int
        The network's layer sizes.
    fraction : float
        The share of a worker's memory limit one task may take.

    Returns
    -------
    list of int
        The workers' memory limits (0: no limit).

    Raises
    ------
    MemoryError
        When a task on the largest chunk needs more than ``fraction`` of the smallest limit;
        the message gives the estimate and a chunk size that fits.
    """
    limits = worker_memory_limits()
    fits = _rows_that_fit(layer_sizes, fraction, limits)
    rows = int(max(X.chunks[0]))
    if fits is not None and rows > fits:
        need = task_bytes(rows, layer_sizes)
        finite = [lim for lim in limits if lim > 0]
        raise MemoryError(
            f"a row chunk of X holds {rows} rows; one task on it needs about {need / 2**20:.0f} "
            f"MiB, more than {fraction:.0%} of a worker's memory limit "
            f"({min(finite) / 2**20:.0f} MiB). Use smaller chunks, e.g. "
            f"X = X.rechunk({{0: {max(1, fits)}}}), or workers with more memory."
        )
    return limits


#: Rows per chunk below which :func:`warn_small_chunks` warns (when there are more chunks than
#: twice the workers): a sweep runs a few tasks per chunk, each with milliseconds of overhead.
#: Measured on digits, three sweeps on two workers: 1.4 s in one chunk, 8.9 s in chunks of 97
#: rows, 82 s in chunks of 7.
MIN_CHUNK_ROWS = 1_000


def warn_small_chunks(X: Any, layer_sizes: Any, fraction: float, limits: list[int]) -> None:
    """Warn when ``X`` is cut into many small row chunks, and suggest a size that fits.

    Parameters
    ----------
    X : dask.array.Array
        Row-chunked inputs.
    layer_sizes : sequence of int
        The network's layer sizes (the suggestion fits ``fraction`` of a worker's memory).
    fraction : float
        The share of a worker's memory limit one task may take.
    limits : list of int
        The workers' memory limits (0: none), as :func:`check_chunks` returns them.
    """
    n_chunks, rows = len(X.chunks[0]), int(X.shape[0])
    n_workers = max(1, len(limits))
    if n_chunks <= 2 * n_workers or rows / n_chunks >= MIN_CHUNK_ROWS:
        return
    size = min(rows, max(MIN_CHUNK_ROWS, -(-rows // (2 * n_workers))))
    fits = _rows_that_fit(layer_sizes, fraction, limits)
    size = size if fits is None else max(1, min(size, fits))
    warnings.warn(
        f"X is cut into {n_chunks} row chunks of about {rows // n_chunks} rows for "
        f"{n_workers} worker(s): each sweep runs tasks on every chunk, and their overhead "
        f"dominates chunks this small. Rechunk it, e.g. X = X.rechunk({{0: {size}}}).",
        UserWarning,
        stacklevel=caller_stacklevel(),
    )


def _rows_that_fit(layer_sizes: Any, fraction: float, limits: list[int]) -> int | None:
    """Rows of the largest chunk whose task takes at most ``fraction`` of the smallest limit.

    ``None`` when no worker has a memory limit.
    """
    finite = [lim for lim in limits if lim > 0]
    if not finite:
        return None
    return int(fraction * min(finite) / task_bytes(1, layer_sizes))


def _load_rows(path: str, start: int, stop: int) -> Any:
    return np.array(np.load(path, mmap_mode="r")[start:stop])


def rows_from_npy(path: str, chunk_rows: int) -> Any:
    """Return a ``.npy`` file as a Dask array of row chunks read on the workers.

    Each chunk is read from a memory map opened by the task that needs it, so the file is
    never loaded whole, and never through the client. The workers must see ``path``.

    Parameters
    ----------
    path : str
        A 2-D ``.npy`` file.
    chunk_rows : int
        Rows per chunk.

    Returns
    -------
    dask.array.Array
    """
    require_dask()
    import dask
    import dask.array as da

    header = np.load(path, mmap_mode="r")
    if header.ndim != 2:
        raise ValueError(f"{path} must hold a 2-D array, got {header.ndim} dimensions.")
    m, p = header.shape
    if int(chunk_rows) != chunk_rows or chunk_rows < 1:
        raise ValueError(f"chunk_rows must be a positive integer, got {chunk_rows!r}.")
    parts = [
        da.from_delayed(
            dask.delayed(_load_rows, pure=True)(str(path), s, min(s + chunk_rows, m)),
            shape=(min(s + chunk_rows, m) - s, p),
            dtype=header.dtype,
        )
        for s in range(0, m, int(chunk_rows))
    ]
    return da.concatenate(parts, axis=0)


def _predict_chunk(X: Any, *, network: Any) -> Any:
    return network.predict(X)


def predict(network: LiftedNetwork, X: Any) -> Any:
    """Return the feed-forward prediction of row-chunked ``X`` as a (lazy) Dask array.

    Parameters
    ----------
    network : LiftedNetwork
        A fitted network.
    X : dask.array.Array, shape (m, n_inputs)
        Inputs, chunked along rows.

    Returns
    -------
    dask.array.Array, shape (m, n_outputs)
    """
    import dask
    import dask.array as da

    X = as_rows(X, "X", n_features=network.layer_sizes[0], dtype=network.dtype)
    q = network.layer_sizes[-1]
    frozen = copy.deepcopy(network)  # the prediction of these weights, whatever a refit does
    return da.map_blocks(
        _predict_chunk, X, network=dask.delayed(frozen, pure=True, traverse=False),
        chunks=(X.chunks[0], (q,)), dtype=network.dtype, meta=np.empty((0, q), network.dtype),
    )  # fmt: skip
