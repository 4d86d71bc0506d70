# SPDX-License-Identifier: Apache-2.0
"""Which Dask cluster a fit runs on: the one given, the active one, or a local one started for it.

A fit on Dask arrays uses, in this order, the ``scheduler`` it is given (an address such as
``"tcp://10.0.0.5:8786"`` or a :class:`distributed.Client`), the active client
(:func:`distributed.get_client`, e.g. one made by ``Client(SLURMCluster(...))`` from
dask-jobqueue), or a :class:`distributed.LocalCluster` of worker *processes* (one thread each)
that the package starts for the fit and closes after it (with :data:`RECOMMENDED_CONFIG`).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

__all__ = [
    "MALLOC_THRESHOLD",
    "RECOMMENDED_CONFIG",
    "local_cluster",
    "cluster_client",
    "is_dask_array",
    "require_dask",
    "workers",
]

#: Seconds to wait for a scheduler given by address.
CONNECT_TIMEOUT = 10
#: Bytes below which a worker's C allocator reuses freed memory instead of returning it to the
#: system (``MALLOC_TRIM_THRESHOLD_`` and ``MALLOC_MMAP_THRESHOLD_`` of glibc's malloc).
MALLOC_THRESHOLD = 2**27
_MALLOC_VARIABLES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

#: Settings of the clusters the package starts, and recommended for others (set them before the
#: cluster starts: the scheduler reads the first, the nannies the others when they start a worker):
#:
#: * without work stealing, Dask does not move a task (and the row chunk it needs) to a less
#:   busy worker; the rows stay where they were placed, and a sweep moves only weights and sums;
#: * Dask starts its workers with ``MALLOC_TRIM_THRESHOLD_=65536``, which makes every array of
#:   more than 64 KiB a fresh ``mmap`` whose pages fault in on first touch: the state step, whose
#:   temporaries are a few MB per chunk of rows, ran 2.3-2.7x slower in a worker than in the
#:   client (0.59-0.79 s vs 0.21-0.28 s on 25,000 rows x 300). With both thresholds at
#:   :data:`MALLOC_THRESHOLD` (128 MiB) it ran at the client's speed (0.23-0.27 s); a worker then
#:   keeps up to that much freed memory for reuse.
RECOMMENDED_CONFIG: dict[str, Any] = {
    "distributed.scheduler.work-stealing": False,
    **{f"distributed.nanny.pre-spawn-environ.{k}": MALLOC_THRESHOLD for k in _MALLOC_VARIABLES},
}


@contextmanager
def _malloc_environ() -> Iterator[None]:
    """Set this process's ``MALLOC_*_THRESHOLD_`` variables to :data:`MALLOC_THRESHOLD` for a while.

    Dask's nannies take a variable of ``pre-spawn-environ`` from the environment of the process
    that starts them when it is set there, and they set it there themselves: after one cluster
    with Dask's defaults, a process holds ``MALLOC_TRIM_THRESHOLD_=65536`` and the configuration
    alone no longer reaches new workers.
    """
    saved = {k: os.environ.get(k) for k in _MALLOC_VARIABLES}
    os.environ.update({k: str(MALLOC_THRESHOLD) for k in _MALLOC_VARIABLES})
    try:
        yield
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v


def is_dask_array(X: Any) -> bool:
    """Whether ``X`` is a :class:`dask.array.Array` (checked without importing Dask)."""
    return type(X).__module__.startswith("dask.") and type(X).__name__ == "Array"


def workers() -> dict[str, Any]:
    """Return every worker of the active client: address -> the scheduler's information on it.

    ``Client.scheduler_info()`` lists only the first few workers unless asked for all of them.
    """
    from distributed import get_client

    client = get_client()
    try:
        info = client.scheduler_info(n_workers=-1)
    except TypeError:  # older distributed lists every worker anyway
        info = client.scheduler_info()
    return dict(info["workers"])


def require_dask() -> None:
    """Raise :class:`ImportError` naming the extra to install when Dask is missing."""
    try:
        import dask.array  # noqa: F401
        import distributed  # noqa: F401
    except ImportError as exc:
        raise ImportError(
            "training on Dask arrays needs dask[array] and distributed: "
            "pip install 'cvx-lifted[dask]'"
        ) from exc


def local_cluster() -> Any:
    """Start the :class:`distributed.LocalCluster` the package trains on when given no scheduler.

    ``os.cpu_count()`` worker processes with one thread each, the dashboard on a free port, and
    :data:`RECOMMENDED_CONFIG` (no work stealing, workers that reuse freed memory). The caller
    closes it.

    Returns
    -------
    distributed.LocalCluster
    """
    require_dask()
    import dask
    from distributed import LocalCluster

    with dask.config.set(RECOMMENDED_CONFIG), _malloc_environ():
        return LocalCluster(
            n_workers=os.cpu_count() or 1, threads_per_worker=1, processes=True,
            dashboard_address=":0",
        )  # fmt: skip


@contextmanager
def cluster_client(scheduler: Any = None) -> Iterator[tuple[Any, bool]]:
    """Yield ``(client, owned)``: the client to run on and whether this context made it.

    Parameters
    ----------
    scheduler : str or distributed.Client, optional
        A scheduler address or a client. By default the active client, else a new local cluster
        of ``os.cpu_count()`` worker processes with one thread each (closed on exit).

    Yields
    ------
    tuple
        The :class:`distributed.Client` and ``True`` when it (and its cluster) close on exit.

    Raises
    ------
    ConnectionError
        When the scheduler at ``scheduler`` cannot be reached.
    """
    require_dask()
    from distributed import Client, get_client

    if isinstance(scheduler, Client):
        yield scheduler, False
        return
    if scheduler is not None:
        if not isinstance(scheduler, str):
            raise TypeError(
                f"scheduler must be an address such as 'tcp://host:8786' or a "
                f"distributed.Client, got {type(scheduler).__name__}."
            )
        try:
            client = Client(scheduler, timeout=CONNECT_TIMEOUT)
        except (OSError, TimeoutError) as exc:
            raise ConnectionError(
                f"cannot reach the Dask scheduler at {scheduler!r} within {CONNECT_TIMEOUT} s "
                f"({exc}). Start one (`dask scheduler`, dask-jobqueue, dask-kubernetes) and pass "
                "its address, or leave scheduler unset to train on a local cluster."
            ) from exc
        try:
            yield client, True
        finally:
            client.close()
        return
    try:
        active = get_client()
    except ValueError:  # no active client
        active = None
    if active is not None:
        yield active, False
        return
    cluster = local_cluster()
    client = Client(cluster)
    try:
        yield client, True
    finally:
        client.close()
        cluster.close()
