# SPDX-License-Identifier: Apache-2.0
"""Validation of arguments: one place for the checks every layer shares.

Every check returns the value in its normalised form (``int``, ``float``) or raises a
``ValueError`` that names the argument, says what it must be and shows what it got.
"""

from __future__ import annotations

import math
import numbers
from typing import Any

__all__ = [
    "check_fraction",
    "check_non_negative_float",
    "check_non_negative_int",
    "check_positive_float",
    "check_positive_int",
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
