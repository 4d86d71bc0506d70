# SPDX-License-Identifier: Apache-2.0
"""Targets, labels and scores of the scikit-learn estimators on row-chunked Dask arrays.

:class:`~cvx_lifted.LiftedMLPClassifier` and :class:`~cvx_lifted.LiftedMLPRegressor` take
Dask arrays as they take NumPy arrays. What they need beyond :func:`~.data.as_rows` lives here,
and none of it brings the rows to the client:

* :func:`label_rows` aligns the labels with the row chunks of ``X`` and finds the classes with
  one reduction (:func:`dask.array.unique`; only the sorted classes reach the client);
* :func:`one_hot_rows` encodes them as one-hot rows, chunk by chunk on the workers;
* :func:`target_rows` makes regression targets a 2-D array chunked like ``X``;
* :func:`predict_rows` predicts by the feed-forward rule, and :func:`labels_of` maps the
  arg-max of predicted probabilities to the classes, per chunk;
* :func:`score_rows` computes the accuracy or :math:`R^2` by reductions (a float), and
  :class:`ScoreOnRowsMixin` gives the estimators a ``score`` that uses it for Dask arrays;
* :func:`fit_rows` does all of it for a fit.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from .cluster import is_dask_array
from .data import as_rows, like_rows

__all__ = [
    "ScoreOnRowsMixin",
    "check_rows",
    "fit_rows",
    "label_rows",
    "labels_of",
    "one_hot_rows",
    "predict_rows",
    "score_rows",
    "target_rows",
]


def check_rows(X: Any, n_features: int | None, dtype: Any) -> Any:
    """Check the estimator input ``X`` (a Dask array chunked along rows) without computing it.

    Parameters
    ----------
    X : dask.array.Array, shape (m, n_features)
        Inputs.
    n_features : int or None
        Required number of columns (``None``: any, for a new fit).
    dtype : numpy dtype
        The dtype to train in (the conversion is lazy).

    Returns
    -------
    dask.array.Array
    """
    width = X.shape[1] if getattr(X, "ndim", 0) == 2 else 0  # as_rows refuses other ranks
    return as_rows(X, "X", n_features=width if n_features is None else n_features, dtype=dtype)


def _rows_like(y: Any, X: Any, name: str) -> Any:
    """Return ``y`` (Dask or in memory, 1-D or 2-D) as a Dask array with ``X``'s row chunks."""
    import dask.array as da

    if not is_dask_array(y):
        y = np.asarray(y)
    if y.ndim not in (1, 2):
        raise ValueError(f"{name} must be 1-D or 2-D (rows are samples), got shape {y.shape}.")
    if is_dask_array(y) and any(math.isnan(c) for c in y.chunks[0]):
        raise ValueError(
            f"{name} has unknown chunk sizes; call {name}.compute_chunk_sizes() first."
        )
    if y.shape[0] != X.shape[0]:
        raise ValueError(
            f"{name} must have one entry per row of X ({X.shape[0]} rows), got {y.shape[0]}."
        )
    rows = (X.chunks[0],) if y.ndim == 1 else (X.chunks[0], (y.shape[1],))
    if not is_dask_array(y):
        return da.from_array(y, chunks=rows)
    return y if y.chunks == rows else y.rechunk(rows)


def label_rows(y: Any, X: Any) -> tuple[Any, np.ndarray]:
    """Return the class labels chunked like ``X`` and the sorted classes (one reduction).

    Parameters
    ----------
    y : dask.array.Array or array_like, shape (m,) or (m, 1)
        Class labels (numbers or strings); in memory, it is split like ``X``.
    X : dask.array.Array
        The inputs, checked by :func:`check_rows`.

    Returns
    -------
    labels : dask.array.Array, shape (m,)
    classes : numpy.ndarray
        The distinct labels, sorted.

    Raises
    ------
    ValueError
        For multi-output labels, a length other than ``X``'s, NaN or infinite labels, or
        non-integer numbers (a regression target).
    """
    import dask.array as da

    y = _rows_like(y, X, "y")
    if y.ndim == 2 and y.shape[1] == 1:
        y = y[:, 0]
    if y.ndim != 1:
        raise ValueError(
            f"y must be 1-D (one class label per row), got shape {y.shape}; multilabel and "
            "multi-output classification are not supported (fit one classifier per output)."
        )
    classes = np.asarray(da.unique(y).compute())
    if classes.dtype.kind == "f":
        if not np.all(np.isfinite(classes)):
            raise ValueError("y holds NaN or infinity; class labels must be finite.")
        if np.any(classes != np.round(classes)):
            raise ValueError(
                "y holds non-integer numbers (a continuous target), which are not class "
                "labels; fit LiftedMLPRegressor to regress them."
            )
    return y, classes


def _one_hot_chunk(y: Any, *, classes: np.ndarray, out_dtype: Any) -> np.ndarray:
    out = np.zeros((len(y), len(classes)), dtype=out_dtype)
    out[np.arange(len(y)), np.searchsorted(classes, y)] = 1
    return out


def one_hot_rows(y: Any, classes: np.ndarray, dtype: Any) -> Any:
    """Encode labels as one-hot rows, one column per class, on the workers.

    Parameters
    ----------
    y : dask.array.Array, shape (m,)
        Labels, all in ``classes`` (as :func:`label_rows` returns them).
    classes : numpy.ndarray
        The sorted classes.
    dtype : numpy dtype
        The dtype of the rows.

    Returns
    -------
    dask.array.Array, shape (m, len(classes))
        Chunked along rows like ``y``.
    """
    k = len(classes)
    return y.map_blocks(
        _one_hot_chunk, classes=classes, out_dtype=dtype, dtype=dtype, new_axis=1,
        chunks=(y.chunks[0], (k,)), meta=np.empty((0, k), dtype=dtype),
    )  # fmt: skip


def target_rows(y: Any, X: Any, dtype: Any) -> Any:
    """Return regression targets as a 2-D Dask array chunked like ``X``.

    Parameters
    ----------
    y : dask.array.Array or array_like, shape (m,) or (m, n_outputs)
        Numeric targets; in memory, they are split like ``X``.
    X : dask.array.Array
        The inputs, checked by :func:`check_rows`.
    dtype : numpy dtype
        The dtype to train in.

    Returns
    -------
    dask.array.Array, shape (m, n_outputs)
    """
    y = _rows_like(y, X, "y")
    if np.dtype(y.dtype).kind not in "biuf":
        raise ValueError(f"y must be numeric to be regressed, got dtype {y.dtype}.")
    Y = y[:, None] if y.ndim == 1 else y
    return like_rows(Y, X, "y", n_columns=Y.shape[1], dtype=dtype)


def predict_rows(network: Any, X: Any, *, prediction: str = "feedforward") -> Any:
    """Return an estimator's network output on a Dask array (lazy, chunked like ``X``).

    Parameters
    ----------
    network : LiftedNetwork
        The fitted network.
    X : dask.array.Array, shape (m, n_features)
        Inputs, chunked along rows.
    prediction : {"feedforward", "lifted"}, default="feedforward"
        The estimator's prediction rule; only the feed-forward rule runs on Dask arrays.

    Returns
    -------
    dask.array.Array, shape (m, n_outputs)

    Raises
    ------
    ValueError
        For ``prediction="lifted"``, with the two ways out.
    """
    if prediction != "feedforward":
        raise ValueError(
            f"prediction={prediction!r} runs on arrays in memory only; for a Dask array set "
            "prediction='feedforward' (set_params(prediction='feedforward')), or pass "
            "X.compute() if it fits in memory."
        )
    return network.predict(X)


def _argmax_labels(P: Any, *, classes: np.ndarray) -> np.ndarray:
    return classes[np.argmax(P, axis=1)]


def labels_of(P: Any, classes: np.ndarray) -> Any:
    """Return the class of the largest entry of each row of ``P``, chunk by chunk (lazy).

    Parameters
    ----------
    P : dask.array.Array, shape (m, len(classes))
        Scores or probabilities.
    classes : numpy.ndarray
        The labels of ``P``'s columns.

    Returns
    -------
    dask.array.Array, shape (m,)
    """
    return P.map_blocks(
        _argmax_labels, classes=classes, drop_axis=1, dtype=classes.dtype,
        meta=np.empty((0,), dtype=classes.dtype),
    )  # fmt: skip


def _r2(num: np.ndarray, den: np.ndarray) -> float:
    """Average over outputs of ``1 - num/den``, as :func:`sklearn.metrics.r2_score` does."""
    num, den = np.atleast_1d(num), np.atleast_1d(den)
    with np.errstate(divide="ignore", invalid="ignore"):
        r2 = np.where(den > 0, 1.0 - num / np.where(den > 0, den, 1.0), 0.0)
    r2 = np.where((den == 0) & (num == 0), 1.0, r2)  # a constant target predicted exactly
    return float(np.mean(r2))


def score_rows(pred: Any, y: Any, *, classify: bool, sample_weight: Any = None) -> float:
    """Return the accuracy (``classify``) or :math:`R^2` of predictions, computed by reductions.

    The same numbers as :func:`sklearn.metrics.accuracy_score` and
    :func:`sklearn.metrics.r2_score` (averaged uniformly over outputs), without bringing the
    rows to the client.

    Parameters
    ----------
    pred : dask.array.Array, shape (m,) or (m, n_outputs)
        Predictions, chunked along rows.
    y : dask.array.Array or array_like
        True labels or targets, of ``pred``'s shape.
    classify : bool
        Accuracy when true, :math:`R^2` otherwise.
    sample_weight : dask.array.Array or array_like, shape (m,), optional
        Weights of the rows.

    Returns
    -------
    float
    """
    import dask

    y = _rows_like(y, pred, "y")
    if y.ndim != pred.ndim:
        y = y.reshape(pred.shape)
    w = None if sample_weight is None else _rows_like(sample_weight, pred, "sample_weight")
    if w is not None and w.ndim != 1:
        raise ValueError(f"sample_weight must be 1-D (one weight per row), got {w.shape}.")
    if classify:
        hit = (pred == y).astype(np.float64)
        num, den = (hit.sum(), pred.shape[0]) if w is None else ((hit * w).sum(), w.sum())
        num, den = dask.compute(num, den)
        return float(num / den)
    if w is None:
        wt: Any = 1.0
        mean = y.mean(axis=0)
    else:
        wt = w[:, None] if pred.ndim == 2 else w
        mean = (wt * y).sum(axis=0) / w.sum()
    num, den = dask.compute((wt * (y - pred) ** 2).sum(axis=0), (wt * (y - mean) ** 2).sum(axis=0))
    return _r2(np.asarray(num, dtype=np.float64), np.asarray(den, dtype=np.float64))


def fit_rows(
    X: Any, y: Any, n_features: int | None, dtype: Any, classify: bool
) -> tuple[Any, Any, np.ndarray | None]:
    """Check an estimator's training data on Dask arrays and encode its targets, lazily.

    Parameters
    ----------
    X : dask.array.Array, shape (m, n_features)
        Inputs, chunked along rows (checked by :func:`check_rows`).
    y : dask.array.Array or array_like
        Class labels (``classify``) or regression targets.
    n_features : int or None
        Required number of columns of ``X`` (``None``: any).
    dtype : numpy dtype
        The dtype to train in.
    classify : bool
        Encode ``y`` as one-hot rows of its classes (one reduction finds them), or take it as
        regression targets.

    Returns
    -------
    X : dask.array.Array
    Y : dask.array.Array, shape (m, n_outputs)
        Chunked like ``X``.
    classes : numpy.ndarray or None
        The sorted classes when ``classify``.
    """
    X = check_rows(X, n_features, dtype)
    if not classify:
        return X, target_rows(y, X, dtype), None
    labels, classes = label_rows(y, X)
    return X, one_hot_rows(labels, classes, dtype), classes


class ScoreOnRowsMixin:
    """``score`` of Dask arrays by reductions on the cluster; of arrays in memory, scikit-learn's.

    Put it before scikit-learn's ``ClassifierMixin`` or ``RegressorMixin`` in the bases.
    """

    def score(self, X: Any, y: Any, sample_weight: Any = None) -> float:
        """Return the accuracy (classifier) or :math:`R^2` (regressor) of ``predict(X)``.

        Parameters
        ----------
        X : array-like or dask.array.Array of shape (n_samples, n_features)
            Inputs; a Dask array is scored on its cluster, where its rows stay.
        y : array-like or dask.array.Array of shape (n_samples,) or (n_samples, n_outputs)
            True labels or targets.
        sample_weight : array-like of shape (n_samples,), optional
            Weights of the samples.

        Returns
        -------
        float
        """
        if not is_dask_array(X):
            return float(super().score(X, y, sample_weight=sample_weight))  # type: ignore[misc]
        from sklearn.base import is_classifier

        pred = self.predict(X)  # type: ignore[attr-defined]
        return score_rows(pred, y, classify=is_classifier(self), sample_weight=sample_weight)
