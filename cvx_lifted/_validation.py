# SPDX-License-Identifier: Apache-2.0
"""Validation of arguments: one place for the checks every layer shares.

Every check returns the value in its normalised form (``int``, ``float``) or raises a
``ValueError`` that names the argument, says what it must be and shows what it got.
"""

from __future__ import annotations

import math
import numbers
import sys
import types
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

__all__ = [
    "check_array",
    "check_choice",
    "check_fraction",
    "check_non_negative_float",
    "check_non_negative_int",
    "check_positive_float",
    "check_positive_int",
    "check_thread_setting",
    "max_magnitude",
]


# ------------------------------------------------------------------------------------------
# Scalars: integers and real numbers (first used by the configuration of cvx_lifted.paper)
# ------------------------------------------------------------------------------------------
def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_real(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool)


def check_positive_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` >= 1.

    Parameters
    ----------
    value : Any
        The value to check (an integer; ``bool`` is refused).
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``value`` is not an integer >= 1.
    """
    if not _is_int(value) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}.")
    return int(value)


def check_non_negative_int(value: Any, name: str) -> int:
    """Return ``value`` as an ``int`` >= 0.

    Parameters
    ----------
    value : Any
        The value to check (an integer; ``bool`` is refused).
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    int

    Raises
    ------
    ValueError
        If ``value`` is not an integer >= 0.
    """
    if not _is_int(value) or value < 0:
        raise ValueError(f"{name} must be an integer >= 0, got {value!r}.")
    return int(value)


def check_positive_float(value: Any, name: str) -> float:
    """Return ``value`` as a finite ``float`` > 0.

    Parameters
    ----------
    value : Any
        The value to check (a real number; ``bool`` is refused).
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``value`` is not a finite number > 0 (NaN included).
    """
    if not _is_real(value) or not (math.isfinite(float(value)) and float(value) > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}.")
    return float(value)


def check_non_negative_float(value: Any, name: str) -> float:
    """Return ``value`` as a finite ``float`` >= 0.

    Parameters
    ----------
    value : Any
        The value to check (a real number; ``bool`` is refused).
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``value`` is not a finite number >= 0 (NaN included).
    """
    if not _is_real(value) or not (math.isfinite(float(value)) and float(value) >= 0):
        raise ValueError(f"{name} must be a finite number >= 0, got {value!r}.")
    return float(value)


def check_fraction(value: Any, name: str) -> float:
    """Return ``value`` as a ``float`` strictly between 0 and 1.

    Parameters
    ----------
    value : Any
        The value to check (a real number; ``bool`` is refused).
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    float

    Raises
    ------
    ValueError
        If ``value`` is not a number in the open interval (0, 1).
    """
    if not _is_real(value) or not 0.0 < float(value) < 1.0:
        raise ValueError(f"{name} must be a number between 0 and 1 (exclusive), got {value!r}.")
    return float(value)


def check_choice(value: Any, name: str, choices: Sequence[str]) -> str:
    """Return ``value`` if it is one of the strings ``choices``.

    Parameters
    ----------
    value : Any
        The value to check.
    name : str
        The argument's name, used in the error message.
    choices : sequence of str
        The accepted values, in the order the message lists them.

    Returns
    -------
    str

    Raises
    ------
    ValueError
        If ``value`` is not one of ``choices``.
    """
    if not isinstance(value, str) or value not in choices:
        quoted = [repr(c) for c in choices]
        listed = quoted[0] if len(quoted) == 1 else f"{', '.join(quoted[:-1])} or {quoted[-1]}"
        raise ValueError(f"{name} must be {listed}, got {value!r}.")
    return value


def check_thread_setting(value: Any, name: str) -> int | str | None:
    """Return a thread setting: a positive ``int``, ``"auto"`` or ``None``.

    Parameters
    ----------
    value : Any
        The value to check (an integer; ``bool`` is refused).
    name : str
        The argument's name, used in the error message.

    Returns
    -------
    int, "auto" or None

    Raises
    ------
    ValueError
        If ``value`` is none of these.
    """
    if value is None:
        return None
    if isinstance(value, str):
        if value == "auto":
            return "auto"
    elif _is_int(value) and value >= 1:
        return int(value)
    raise ValueError(f"{name} must be a positive integer, 'auto' or None, got {value!r}.")


# ------------------------------------------------------------------------------------------
# Arrays: the inputs and targets of networks and estimators
# ------------------------------------------------------------------------------------------
def max_magnitude(dtype: Any = np.float64) -> float:
    """Return the largest input magnitude accepted for ``dtype`` (about 1e150 for float64).

    Training forms squares and Gram matrices of the inputs; beyond this bound they overflow
    (the square root of the largest float, with a margin of 1e4 for sums over rows).

    Parameters
    ----------
    dtype : numpy dtype, default=float64

    Returns
    -------
    float
    """
    return float(np.sqrt(np.finfo(np.dtype(dtype)).max)) / 1e4


def check_array(
    X: ArrayLike, name: str = "X", *, n_features: int | None = None, dtype: Any = np.float64
) -> NDArray[np.floating[Any]]:
    """Validate a 2-D, finite, non-empty float array (rows are samples).

    Parameters
    ----------
    X : array_like
        Input.
    name : str, default="X"
        Argument name for error messages.
    n_features : int, optional
        Required number of columns.
    dtype : numpy dtype, default=float64
        Output dtype.

    Returns
    -------
    numpy.ndarray

    Raises
    ------
    ValueError
        For non-numeric, non-2-D, empty, NaN/infinite input or the wrong width.
    """
    arr = np.asarray(X)
    if arr.dtype.kind not in "biuf":
        raise ValueError(
            f"{name} must be numeric, got dtype {arr.dtype}; encode categories as numbers first."
        )
    if arr.ndim != 2:
        raise ValueError(
            f"{name} must be 2-D (rows are samples), got shape {arr.shape}; reshape a single "
            f"sample with x.reshape(1, -1) or a single feature with x.reshape(-1, 1)."
        )
    if arr.shape[0] == 0 or arr.shape[1] == 0:
        raise ValueError(f"{name} is empty (shape {arr.shape}); at least one sample is needed.")
    if n_features is not None and arr.shape[1] != n_features:
        raise ValueError(f"{name} has {arr.shape[1]} features, the network expects {n_features}.")
    if arr.dtype.kind == "f" and not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains NaN or infinity; clean or impute it first.")
    limit = max_magnitude(dtype)
    if arr.dtype.kind == "b":
        arr = arr.astype(np.uint8)
    top = max(float(arr.max()), -float(arr.min()))
    if top > limit:
        column = int(np.argmax(np.max(np.abs(arr.astype(np.float64)), axis=0)))
        raise ValueError(
            f"{name} has entries as large as {top:.3g} in magnitude (column {column}); squares "
            f"of such values overflow {np.dtype(dtype).name}, so {name} must stay below "
            f"{limit:.1e} in magnitude. Rescale it first, e.g. with "
            "sklearn.preprocessing.StandardScaler or by dividing that column by its largest value."
        )
    return np.asarray(arr, dtype=dtype)


def caller_stacklevel() -> int:
    """Return the ``stacklevel`` that points a warning at the first frame outside the libraries.

    A warning raised deep in this package (or reached through scikit-learn's wrappers, such as
    ``_fit_context``) should name the user's line that led to it. Call this from the function
    that calls :func:`warnings.warn`.
    """
    packages = [str(Path(__file__).resolve().parent)]
    sklearn_file = getattr(sys.modules.get("sklearn"), "__file__", None)
    if isinstance(sklearn_file, str):
        packages.append(str(Path(sklearn_file).resolve().parent))
    level = 1  # the caller of this function
    frame: types.FrameType | None = sys._getframe(1)
    while frame is not None and str(Path(frame.f_code.co_filename).resolve()).startswith(
        tuple(packages)
    ):
        level += 1
        frame = frame.f_back
    return level


def check_seed(value: Any, name: str = "random_state") -> Any:
    """Return ``value`` if NumPy takes it as a seed (None, an integer >= 0, a Generator), or raise.

    Raises
    ------
    ValueError
        Naming ``name`` and what it takes.
    """
    if value is None or isinstance(value, np.random.Generator):
        return value
    if isinstance(value, numbers.Integral) and not isinstance(value, bool) and int(value) >= 0:
        return int(value)
    raise ValueError(
        f"{name} must be None, an integer >= 0 or a numpy.random.Generator, got {value!r}."
    )
