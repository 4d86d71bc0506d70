# SPDX-License-Identifier: Apache-2.0
"""Data-parallel lifted training on Dask: the rows on a cluster, the small solves on the client.

Lifted training is data-parallel by construction: the state and output steps are independent
across rows, and a weight step needs only sums over rows (Grams, moments, per-column sums). A
sweep is therefore a few maps and reductions whose messages are the size of the weights, never
of the data (see ``docs/distributed.md`` for the cost model). Pass row-chunked
:class:`dask.array.Array` inputs to :meth:`cvx_lifted.LiftedNetwork.fit` (or the estimators) and
training runs here::

    import dask.array as da
    from cvx_lifted import LiftedNetwork

    X = da.from_zarr("pixels.zarr")  # rows chunked, read by the workers
    net = LiftedNetwork([784, 300, 10], output="softmax_xent")
    net.fit(X, Y, scheduler="tcp://scheduler:8786")  # or the active Client, or a local cluster
    proba = net.predict(X)  # a Dask array

The kernels are the in-memory ones, called per chunk (:class:`~cvx_lifted.kernels.RowOps`), so
the iterates follow the in-memory path's to rounding. The estimators
(:class:`~cvx_lifted.LiftedMLPClassifier`, :class:`~cvx_lifted.LiftedMLPRegressor`) encode their
targets and score on the workers too (:mod:`.labels`).
"""

from ._ops import CommunicationCount, DaskRowOps
from .cluster import RECOMMENDED_CONFIG, cluster_client, is_dask_array
from .data import as_rows, check_chunks, predict, rows_from_npy, task_bytes
from .labels import (
    ScoreOnRowsMixin,
    check_rows,
    fit_rows,
    label_rows,
    labels_of,
    one_hot_rows,
    predict_rows,
    score_rows,
    target_rows,
)
from .solver import DaskBCDSolver

__all__ = [
    "RECOMMENDED_CONFIG",
    "CommunicationCount",
    "DaskBCDSolver",
    "DaskRowOps",
    "ScoreOnRowsMixin",
    "as_rows",
    "check_chunks",
    "check_rows",
    "cluster_client",
    "fit_rows",
    "is_dask_array",
    "label_rows",
    "labels_of",
    "one_hot_rows",
    "predict",
    "predict_rows",
    "rows_from_npy",
    "score_rows",
    "target_rows",
    "task_bytes",
]
