# SPDX-License-Identifier: Apache-2.0
"""Tabular data files: the CSV, NPZ and NPY files that the command line trains and predicts on.

:func:`read_table` reads them; :func:`infer_task` and :func:`train_validation_split` are the
small decisions made about them.

CSV files are parsed by the standard :mod:`csv` module (RFC 4180 quoting: a quoted cell may hold
the delimiter, a doubled quote or a line break), strictly: a malformed quote is refused with its
line. Feature cells must be numbers -- a cell that holds a line break is refused, never read as
the digits on either side of it. Features (and numeric targets) must be finite and smaller in
magnitude than :func:`cvx_lifted.network.max_magnitude` (about 1e150), beyond which training
would overflow; the message names the column and says to rescale it. A ``.npy`` file holds one
2-D numeric array whose columns are read like those of a CSV file without a header.
"""

from __future__ import annotations

import csv
import io as _io
import math
import os
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import NDArray

from cvx_lifted._validation import max_magnitude

__all__ = [
    "MAX_CLASSES_ANY_SIZE",
    "MAX_CLASSES_FRACTION",
    "MAX_EXACT_INTEGER",
    "Table",
    "few_classes",
    "infer_task",
    "read_table",
    "train_validation_split",
]

MAX_EXACT_INTEGER = 2**53
"""Largest magnitude up to which a float target counts as an integer class label (float64 holds
every integer up to here exactly; beyond it, integer-valued targets are regressed)."""

MAX_CLASSES_ANY_SIZE = 20
"""An integer-valued target with at most this many distinct values is taken for class labels."""

MAX_CLASSES_FRACTION = 0.05
"""... and so is one whose distinct values are at most this fraction of its rows."""

Task = Literal["classify", "regress"]


@dataclass
class Table:
    """A data set read from a CSV, NPZ or NPY file.

    Attributes
    ----------
    X : numpy.ndarray, shape (m, n)
        Features as float64.
    y : numpy.ndarray or None
        Target: shape ``(m,)`` (numbers or strings) or ``(m, k)`` (NPZ only); ``None`` when
        the file has no target.
    feature_names : list of str or None
        Column names of ``X`` when the file has a header.
    target_name : str or None
        Name of the target column when the file has a header.
    path : pathlib.Path
        The file read.
    """

    X: NDArray[np.float64]
    y: np.ndarray | None
    feature_names: list[str] | None = None
    target_name: str | None = None
    path: Path = field(default_factory=Path)


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _detect_header(rows: list[list[str]]) -> bool:
    """Return whether the first row is a header.

    A header has a non-numeric cell above numeric cells in some column, and most of its cells
    are not numbers (so that a data row with one bad cell is reported, not taken for a header).
    """
    first, rest = rows[0], rows[1:101]
    if not rest:
        return not any(_is_number(c) for c in first)
    if 2 * sum(_is_number(c) for c in first) >= len(first):
        return False
    for j, cell in enumerate(first):
        if not _is_number(cell) and all(j < len(r) and _is_number(r[j]) for r in rest):
            return True
    return False


def _check_finite(X: np.ndarray, path: Path, names: list[str] | None, what: str) -> None:
    """Refuse NaN, infinity and magnitudes that overflow in training, naming the column."""
    if X.size == 0:
        return
    bad = ~np.isfinite(X)
    if bad.any():
        j = int(np.flatnonzero(bad.any(axis=0))[0])
        col = repr(names[j]) if names is not None else str(j)
        raise ValueError(
            f"{path}: the {what} contain NaN or infinity (column {col}); clean or impute them."
        )
    limit = max_magnitude(np.float64)
    top = np.max(np.abs(X), axis=0)
    if top.max() > limit:
        j = int(np.argmax(top))
        col = repr(names[j]) if names is not None else str(j)
        raise ValueError(
            f"{path}: column {col} of the {what} holds values as large as {top[j]:.3g} in "
            f"magnitude; beyond {limit:.1e} their squares overflow during training. Rescale "
            "that column (divide it by a power of ten, or take its logarithm) and try again."
        )


def _column_index(spec: str | int, names: list[str] | None, n_cols: int, path: Path) -> int:
    if names is not None and isinstance(spec, str) and spec in names:
        return names.index(spec)
    try:
        idx = int(spec)
    except (TypeError, ValueError):
        known = f"; columns: {', '.join(names)}" if names else " (the file has no header)"
        raise ValueError(f"{path}: no column named {spec!r}{known}.") from None
    if not -n_cols <= idx < n_cols:
        raise ValueError(f"{path}: column index {idx} is out of range for {n_cols} columns.")
    return idx % n_cols


def _read_csv(
    path: Path,
    target: str | int | None,
    features: Sequence[str] | None,
    header: bool | None,
) -> Table:
    try:
        with open(path, encoding="utf-8-sig", newline="") as fh:
            text = fh.read()
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text (CSV) file.") from None
    sample = next((ln for ln in text.splitlines() if ln.strip()), "")
    delimiter = next((d for d in (",", "\t", ";") if d in sample), ",")
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    reader = csv.reader(_io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    start = 1
    try:
        for row in reader:
            number, start = start, reader.line_num + 1
            if not row or all(not c.strip() for c in row):
                continue
            rows.append([c.strip() for c in row])
            line_numbers.append(number)
    except csv.Error as exc:
        raise ValueError(
            f"{path}: line {start}: malformed CSV ({exc}); quote cells that hold the delimiter, "
            'a quote ("") or a line break, as in RFC 4180.'
        ) from None
    if not rows:
        raise ValueError(f"{path}: the file is empty.")
    has_header = _detect_header(rows) if header is None else header
    names = rows[0] if has_header else None
    data = rows[1:] if has_header else rows
    numbers = line_numbers[1:] if has_header else line_numbers
    if not data:
        raise ValueError(f"{path}: no data rows after the header.")
    n_cols = len(names) if names is not None else len(data[0])
    for row, number in zip(data, numbers, strict=True):
        if len(row) != n_cols:
            raise ValueError(f"{path}: line {number} has {len(row)} columns, expected {n_cols}.")
    t_idx = None if target is None else _column_index(target, names, n_cols, path)
    missing = [f for f in features if f not in names] if features and names else []
    if features is not None and names is not None and not missing:
        cols = [names.index(f) for f in features]
    elif missing and (
        len(names or ()) != len(features or ()) + (t_idx is not None)
        or len(missing) < len(features or ())  # some named: the others are misnamed or absent
    ):
        raise ValueError(
            f"{path}: missing feature column(s) {', '.join(map(repr, missing))} (the header has "
            f"{', '.join(map(repr, names or ()))})."
        )
    else:
        cols = [j for j in range(n_cols) if j != t_idx]
    if not cols:
        raise ValueError(f"{path}: no feature columns (only the target).")
    try:  # NumPy parses the strings in C; on failure, find the cell to report
        X = np.array([[row[j] for j in cols] for row in data], dtype=np.float64)
    except ValueError:
        for row, number in zip(data, numbers, strict=True):
            for j in cols:
                if not _is_number(row[j]):
                    col = repr(names[j]) if names is not None else str(j)
                    why = (
                        " (a quoted cell that spans lines)"
                        if "\n" in row[j] or "\r" in row[j]
                        else ""
                    )
                    raise ValueError(
                        f"{path}: line {number}, column {col}: {row[j]!r} is not a "
                        f"number{why}; features must be numeric (encode categories first)."
                    ) from None
        raise
    _check_finite(X, path, [names[j] for j in cols] if names is not None else None, "features")
    y: np.ndarray | None = None
    if t_idx is not None:
        raw = [row[t_idx] for row in data]
        if any(not c for c in raw):
            raise ValueError(f"{path}: the target column has empty cells.")
        y = np.array([float(c) for c in raw]) if all(_is_number(c) for c in raw) else np.array(raw)
        if y.dtype.kind == "f":
            _check_finite(y[:, None], path, [names[t_idx]] if names is not None else None, "target")
    return Table(
        X=X,
        y=y,
        feature_names=[names[j] for j in cols] if names is not None else None,
        target_name=names[t_idx] if names is not None and t_idx is not None else None,
        path=path,
    )


def _read_npz(path: Path, target: str | int | None) -> Table:
    try:
        with np.load(path, allow_pickle=False) as npz:
            keys = list(npz.files)
            if "X" not in keys:
                raise ValueError(
                    f"{path}: an NPZ data file must hold an array 'X' (and 'y' for training); "
                    f"it holds {', '.join(keys) or 'nothing'}."
                )
            X = npz["X"]
            y = npz["y"] if target is not None and "y" in keys else None
    except (zipfile.BadZipFile, OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable NPZ file ({exc}).") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(
                f"{path}: holds object arrays, which are not loaded (no pickle)."
            ) from None
        raise
    if target is not None and y is None:
        raise ValueError(f"{path}: no target array 'y' in the NPZ file.")
    if X.ndim != 2 or X.dtype.kind not in "biuf":
        raise ValueError(f"{path}: 'X' must be a 2-D numeric array, got {X.dtype} {X.shape}.")
    X = X.astype(np.float64)
    _check_finite(X, path, None, "'X'")
    if y is not None:
        if y.shape[0] != X.shape[0] or y.ndim > 2:
            raise ValueError(f"{path}: 'y' has shape {y.shape}, expected ({X.shape[0]},).")
        if y.dtype.kind == "b":
            y = y.astype(np.int64)
        if y.dtype.kind == "f":
            _check_finite(y.reshape(len(y), -1), path, None, "'y'")
    return Table(X=X, y=y, path=path)


def _read_npy(path: Path, target: str | int | None) -> Table:
    try:
        A = np.load(path, allow_pickle=False)
    except (OSError, EOFError) as exc:
        raise ValueError(f"{path}: not a readable .npy file ({exc}).") from None
    except ValueError as exc:
        if "allow_pickle" in str(exc):
            raise ValueError(
                f"{path}: holds object arrays, which are not loaded (no pickle)."
            ) from None
        raise ValueError(f"{path}: not a readable .npy file ({exc}).") from None
    if A.ndim != 2 or A.dtype.kind not in "biuf":
        raise ValueError(
            f"{path}: a .npy data file must hold a 2-D numeric array (rows are samples, the "
            f"target one of its columns), got {A.dtype} {A.shape}."
        )
    t_idx = None if target is None else _column_index(target, None, A.shape[1], path)
    cols = [j for j in range(A.shape[1]) if j != t_idx]
    if not cols:
        raise ValueError(f"{path}: no feature columns (only the target).")
    X = A[:, cols].astype(np.float64)
    _check_finite(X, path, None, "features")
    y = None if t_idx is None else A[:, t_idx]
    if y is not None and y.dtype.kind == "b":
        y = y.astype(np.int64)
    if y is not None and y.dtype.kind == "f":
        _check_finite(y[:, None], path, None, "target")
    return Table(X=X, y=y, path=path)


def read_table(
    path: str | os.PathLike[str],
    *,
    target: str | int | None = -1,
    features: Sequence[str] | None = None,
    header: bool | None = None,
) -> Table:
    """Read a data set from a CSV, NPZ or NPY file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` file (arrays ``X`` and, for training, ``y``), a ``.npy`` file (a 2-D numeric
        array, the target one of its columns) or a delimited text file (comma, tab or
        semicolon, detected from the first line).
    target : str or int or None, default=-1
        CSV and NPY: the target column, by header name (CSV) or 0-based index (negative counts
        from the end); ``None`` when the file has no target (prediction). NPZ: ``None`` ignores
        ``y``.
    features : sequence of str, optional
        CSV with a header: take exactly these columns, in this order, as features (e.g. the
        feature names a model was trained on); other columns are ignored. When the header names
        none of them and the file has exactly as many columns as expected, the columns are taken
        by position; when it names some but not all, that is an error.
    header : bool, optional
        Whether the first CSV row is a header. Default: detected (a header has a non-numeric
        cell above numeric cells).

    Returns
    -------
    Table
        Features as float64, the target (numbers, or strings when any entry is not a number),
        column names.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ValueError
        With the line and column of the problem: ragged rows, non-numeric features, NaN,
        unknown column names, empty files, NPZ files without ``X``.
    """
    p = Path(path).expanduser()
    if not p.is_file():
        if p.is_dir():
            raise ValueError(f"{p} is a folder, not a data file.")
        if p.exists():
            raise ValueError(f"{p} is not a regular file (a pipe or a device?); save the data.")
        raise FileNotFoundError(f"no such data file: {p}")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if p.suffix.lower() == ".npz" or magic == b"PK\x03\x04":
        return _read_npz(p, target)
    if p.suffix.lower() == ".npy" or magic == b"\x93NUM":
        return _read_npy(p, target)
    return _read_csv(p, target, features, header)


def infer_task(y: np.ndarray) -> Task:
    """Guess the task from a target: strings, booleans and a few distinct integers classify.

    A numeric target classifies when every value is an integer and it has few distinct values:
    at most :data:`MAX_CLASSES_ANY_SIZE` (20), or at most a fraction
    :data:`MAX_CLASSES_FRACTION` (5 %) of the rows; otherwise it is regressed (a count or a
    measurement that happens to be recorded in whole units, such as scikit-learn's diabetes
    target, 214 distinct values in 442 rows). Float targets count as integer-valued only up to
    :data:`MAX_EXACT_INTEGER` (``2**53``) in magnitude: larger values are not exact integers in
    float64 (and overflow int64 beyond ``9.2e18``), so such targets are regressed.

    Parameters
    ----------
    y : numpy.ndarray
        Target values, shape ``(m,)`` or ``(m, k)``.

    Returns
    -------
    {"classify", "regress"}
    """
    y = np.asarray(y)
    if y.ndim == 2 and y.shape[1] > 1:
        return "regress"
    if y.dtype.kind in "OUSb":
        return "classify"
    if y.dtype.kind not in "iu" and not (
        np.all(np.isfinite(y))
        and np.all(np.abs(y) <= MAX_EXACT_INTEGER)
        and np.all(y == np.round(y))
    ):
        return "regress"
    return "classify" if few_classes(np.unique(y).size, y.shape[0]) else "regress"


def few_classes(n_distinct: int, n_rows: int) -> bool:
    """Whether ``n_distinct`` integer values in ``n_rows`` rows look like class labels.

    At most :data:`MAX_CLASSES_ANY_SIZE`, or at most :data:`MAX_CLASSES_FRACTION` of the rows
    (:func:`infer_task`).

    Parameters
    ----------
    n_distinct : int
        Distinct values of the target.
    n_rows : int
        Rows of the target.

    Returns
    -------
    bool
    """
    return n_distinct <= max(MAX_CLASSES_ANY_SIZE, MAX_CLASSES_FRACTION * n_rows)


def train_validation_split(
    X: np.ndarray,
    y: np.ndarray,
    fraction: float,
    *,
    random_state: int | None = 0,
    stratify: bool = False,
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray | None]:
    """Hold out a fraction of the rows for validation (stratified when asked and possible).

    Parameters
    ----------
    X, y : numpy.ndarray
        Features and target.
    fraction : float
        Share of rows held out, in ``[0, 1)``; ``0`` keeps every row for training.
    random_state : int, optional
        Seed of the shuffle.
    stratify : bool, default=False
        Keep class proportions (used when every class has at least two rows).

    Returns
    -------
    X_train, y_train, X_val, y_val
        ``X_val`` and ``y_val`` are ``None`` when ``fraction`` is 0.

    Raises
    ------
    ValueError
        If ``fraction`` is outside ``[0, 1)`` or leaves an empty split.
    """
    if not 0.0 <= fraction < 1.0:
        raise ValueError(f"the validation fraction must be in [0, 1), got {fraction}.")
    if fraction == 0.0:
        return X, y, None, None
    from sklearn.model_selection import train_test_split

    m = X.shape[0]
    n_val = math.ceil(fraction * m)
    if n_val < 1 or m - n_val < 1:
        raise ValueError(f"a validation fraction of {fraction} leaves an empty split of {m} rows.")
    strat = None
    if stratify:
        _, counts = np.unique(y, return_counts=True)
        if counts.min() >= 2 and n_val >= counts.size and m - n_val >= counts.size:
            strat = y
    X_tr, X_val, y_tr, y_val = train_test_split(
        X, y, test_size=n_val, random_state=random_state, stratify=strat
    )
    return X_tr, y_tr, X_val, y_val
