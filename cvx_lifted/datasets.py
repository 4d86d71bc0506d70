# SPDX-License-Identifier: Apache-2.0
"""Offline loaders for the small image-classification sets used in examples and benchmarks.

Nothing here ever touches the network: file-based sets (MNIST, its 10,000-image subset and
Fashion-MNIST) are read from local folders holding the four standard IDX files of the MNIST
distribution, and scikit-learn's 8x8 digits ship inside scikit-learn itself.

Where the files are looked for, in order:

1. the ``path`` argument of a loader (``--data-dir`` on the command line): either the folder
   holding the four files, or -- like ``CVX_LIFTED_DATA`` -- a folder holding the data set's
   sub-folder (``mnist/``, ``mnist-10k/``, ``fashion-mnist/``). When given it is the only place
   looked at, so a mistyped path fails loudly instead of silently loading something else;
2. the environment variable ``CVX_LIFTED_DATA``, a folder holding the sub-folders ``mnist/``,
   ``mnist-10k/`` and ``fashion-mnist/`` (MNIST prefers ``mnist/`` and falls back to
   ``mnist-10k/``);
3. for Fashion-MNIST only, ``/usr/share/datasets/fashion-mnist``, where Debian's
   ``dataset-fashion-mnist`` package installs it.

Each folder must hold ``train-images-idx3-ubyte.gz``, ``train-labels-idx1-ubyte.gz``,
``t10k-images-idx3-ubyte.gz`` and ``t10k-labels-idx1-ubyte.gz``; the un-gzipped names and the
dotted variants (``train-images.idx3-ubyte``) are accepted as well. Whether a file is gzip'd is
decided by its first bytes, not by its name.

Examples
--------
>>> from cvx_lifted.datasets import load_dataset
>>> X_train, y_train, X_test, y_test = load_dataset("digits")
>>> X_train.shape, X_test.shape
((1347, 64), (450, 64))
"""

from __future__ import annotations

import gzip
import math
import os
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from cvx_lifted.exceptions import CvxLiftedError

__all__ = [
    "DATASETS",
    "DEBIAN_FASHION_MNIST_DIR",
    "ENV_VAR",
    "DataFormatError",
    "find_data_dir",
    "load_dataset",
    "load_digits",
    "load_fashion_mnist",
    "load_mnist",
    "read_idx",
]

#: Names accepted by :func:`load_dataset` (``"fashion_mnist"`` is accepted as an alias too).
DATASETS: tuple[str, ...] = ("digits", "mnist", "mnist-10k", "fashion-mnist")

#: Environment variable naming a folder with ``mnist/``, ``mnist-10k/``, ``fashion-mnist/``.
ENV_VAR = "CVX_LIFTED_DATA"

#: Where Debian's ``dataset-fashion-mnist`` package installs Fashion-MNIST.
DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")

Split = tuple[
    npt.NDArray[np.floating[Any]],
    npt.NDArray[np.int64],
    npt.NDArray[np.floating[Any]],
    npt.NDArray[np.int64],
]
"""``(X_train, y_train, X_test, y_test)`` as returned by every loader."""

_GZIP_MAGIC = b"\x1f\x8b"

# IDX type codes (third byte of the magic number); all multi-byte types are big-endian.
_IDX_DTYPES: dict[int, np.dtype[Any]] = {
    0x08: np.dtype(">u1"),
    0x09: np.dtype(">i1"),
    0x0B: np.dtype(">i2"),
    0x0C: np.dtype(">i4"),
    0x0D: np.dtype(">f4"),
    0x0E: np.dtype(">f8"),
}

# The four files of a set, each with the file names accepted for it, in order of preference.
_ROLES: tuple[str, ...] = ("train-images", "train-labels", "t10k-images", "t10k-labels")
_ROLE_FILE_NAMES: dict[str, tuple[str, ...]] = {
    role: (
        f"{role}-idx{kind}-ubyte.gz",
        f"{role}-idx{kind}-ubyte",
        f"{role}.idx{kind}-ubyte",
        f"{role}.idx{kind}-ubyte.gz",
    )
    for role, kind in zip(_ROLES, ("3", "1", "3", "1"), strict=True)
}
_STANDARD_FILE_NAMES: tuple[str, ...] = tuple(_ROLE_FILE_NAMES[r][0] for r in _ROLES)

# Sub-folders of $CVX_LIFTED_DATA searched for each file-based set, in order of preference.
_ENV_SUBDIRS: dict[str, tuple[str, ...]] = {
    "mnist": ("mnist", "mnist-10k"),
    "mnist-10k": ("mnist-10k",),
    "fashion-mnist": ("fashion-mnist",),
}

_DISPLAY_NAMES: dict[str, str] = {
    "mnist": "MNIST",
    "mnist-10k": "MNIST-10k",
    "fashion-mnist": "Fashion-MNIST",
}

_IMAGE_SHAPE = (28, 28)
_N_CLASSES = 10


class DataFormatError(CvxLiftedError, ValueError):
    """A data file is not a well-formed IDX file, or a set of files is inconsistent.

    A ``ValueError`` (and a :class:`~cvx_lifted.exceptions.CvxLiftedError`), so generic
    handlers keep working.
    """


# --------------------------------------------------------------------------------------------
# IDX reader
# --------------------------------------------------------------------------------------------


def read_idx(path: str | os.PathLike[str]) -> np.ndarray:
    """Read one file in the IDX format of the MNIST distribution.

    Parameters
    ----------
    path : str or os.PathLike
        The file to read, gzip'd or not. Gzip is recognised by its magic bytes
        (``1f 8b``), whatever the file is called.

    Returns
    -------
    numpy.ndarray
        A new, writable array in native byte order with the shape declared in the header,
        of dtype ``uint8``, ``int8``, ``int16``, ``int32``, ``float32`` or ``float64``
        according to the IDX type code.

    Raises
    ------
    DataFormatError
        If the gzip stream is corrupted or truncated, the magic number is wrong, the type
        code is unknown, the header is cut short, or the payload is shorter or longer than
        the declared sizes imply. The message names the file.
    FileNotFoundError
        If `path` does not exist.

    Notes
    -----
    An IDX file starts with the magic number: two zero bytes, a type code (``0x08``
    unsigned byte, ``0x09`` signed byte, ``0x0B`` short, ``0x0C`` int, ``0x0D`` float,
    ``0x0E`` double) and the number of dimensions ``d``. Then follow ``d`` big-endian
    unsigned 32-bit sizes, then the values in C order, big-endian.
    """
    path = Path(path)
    raw = path.read_bytes()
    if raw[:2] == _GZIP_MAGIC:
        try:
            data = gzip.decompress(raw)
        except (OSError, EOFError, zlib.error) as exc:
            raise DataFormatError(
                f"{path}: corrupted or truncated gzip stream ({type(exc).__name__}: {exc})"
            ) from exc
        where = f"{path} (after gunzip)"
    else:
        data = raw
        where = str(path)

    if len(data) < 4:
        raise DataFormatError(
            f"{where}: only {len(data)} byte(s), too short for the 4-byte IDX magic number"
        )
    zero0, zero1, type_code, ndim = data[0], data[1], data[2], data[3]
    if zero0 != 0 or zero1 != 0:
        raise DataFormatError(
            f"{where}: not an IDX file, wrong magic number {data[:4].hex(' ')} "
            "(expected two zero bytes, a type code and the number of dimensions)"
        )
    if type_code not in _IDX_DTYPES:
        known = ", ".join(f"0x{code:02X}" for code in _IDX_DTYPES)
        raise DataFormatError(f"{where}: unknown IDX type code 0x{type_code:02X} (known: {known})")
    if ndim == 0:
        raise DataFormatError(f"{where}: IDX header declares zero dimensions")

    header_len = 4 + 4 * ndim
    if len(data) < header_len:
        raise DataFormatError(
            f"{where}: truncated header, {ndim} dimension(s) need {header_len} bytes "
            f"but the file has {len(data)}"
        )
    shape = struct.unpack(f">{ndim}I", data[4:header_len])
    dtype = _IDX_DTYPES[type_code]
    expected = math.prod(shape) * dtype.itemsize
    actual = len(data) - header_len
    if actual < expected:
        raise DataFormatError(
            f"{where}: truncated payload, shape {shape} of {dtype.itemsize}-byte values needs "
            f"{expected} bytes after the header but only {actual} are present"
        )
    if actual > expected:
        raise DataFormatError(
            f"{where}: {actual - expected} trailing byte(s) after the {expected}-byte payload "
            f"declared by shape {shape}"
        )
    values = np.frombuffer(data, dtype=dtype, count=math.prod(shape), offset=header_len)
    return values.reshape(shape).astype(dtype.newbyteorder("="), copy=True)


# --------------------------------------------------------------------------------------------
# Look-up
# --------------------------------------------------------------------------------------------


def _normalise_name(name: str) -> str:
    """Return the canonical form of a data-set name, or raise ``ValueError``."""
    canonical = name.strip().lower().replace("_", "-")
    if canonical not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; known datasets: {', '.join(DATASETS)}")
    return canonical


def _file_based(name: str) -> str:
    """Return the canonical name of a file-based set, rejecting ``"digits"``."""
    canonical = _normalise_name(name)
    if canonical not in _ENV_SUBDIRS:
        raise ValueError(
            f"dataset {name!r} ships with scikit-learn and needs no data folder; "
            f"file-based datasets: {', '.join(_ENV_SUBDIRS)}"
        )
    return canonical


def _find_file(directory: Path, role: str) -> Path | None:
    """Return the first existing file for `role` in `directory`, or ``None``."""
    for file_name in _ROLE_FILE_NAMES[role]:
        candidate = directory / file_name
        if candidate.is_file():
            return candidate
    return None


def _missing_roles(directory: Path) -> list[str]:
    """Return the standard names of the files that `directory` lacks."""
    return [_ROLE_FILE_NAMES[role][0] for role in _ROLES if _find_file(directory, role) is None]


def _search_places(name: str, path: str | os.PathLike[str] | None) -> list[tuple[Path, str]]:
    """Return the folders to search for `name`, in order, each with where it comes from."""
    if path is not None:
        base = Path(path).expanduser()
        nested = [(base / sub, "path argument, sub-folder") for sub in _ENV_SUBDIRS[name]]
        return [(base, "path argument"), *nested]
    places: list[tuple[Path, str]] = []
    root = os.environ.get(ENV_VAR, "").strip()
    if root:
        base = Path(root).expanduser()
        places.extend((base / sub, f"${ENV_VAR}") for sub in _ENV_SUBDIRS[name])
    if name == "fashion-mnist":
        places.append((DEBIAN_FASHION_MNIST_DIR, "Debian package dataset-fashion-mnist"))
    return places


def find_data_dir(name: str, path: str | os.PathLike[str] | None = None) -> Path | None:
    """Find the folder holding the four IDX files of a file-based data set.

    Parameters
    ----------
    name : str
        One of ``"mnist"``, ``"mnist-10k"``, ``"fashion-mnist"`` (``"fashion_mnist"``
        is accepted too).
    path : str or os.PathLike, optional
        An explicit folder. When given, it is the only place looked at.

    Returns
    -------
    pathlib.Path or None
        The first folder, in the look-up order of the module documentation, that holds all
        four files, or ``None`` if there is none.

    Raises
    ------
    ValueError
        If `name` is unknown or is ``"digits"``, which needs no files.
    """
    canonical = _file_based(name)
    for directory, _origin in _search_places(canonical, path):
        if directory.is_dir() and not _missing_roles(directory):
            return directory
    return None


def _not_found_message(name: str, path: str | os.PathLike[str] | None) -> str:
    """Explain where `name` was looked for and how to make it available."""
    lines = [f"{_DISPLAY_NAMES[name]} data not found. Looked in:"]
    if path is None and not os.environ.get(ENV_VAR, "").strip():
        subdirs = " or ".join(f"{sub}/" for sub in _ENV_SUBDIRS[name])
        lines.append(f"  - ${ENV_VAR} is not set (it would be searched for {subdirs})")
    for directory, origin in _search_places(name, path):
        if not directory.exists():
            status = "does not exist"
        elif not directory.is_dir():
            status = "is not a folder"
        else:
            status = "missing " + ", ".join(_missing_roles(directory))
        lines.append(f"  - {directory} ({origin}): {status}")
    lines += [
        "Expected these four files in one folder: " + ", ".join(_STANDARD_FILE_NAMES),
        "(un-gzipped files and dotted names such as train-images.idx3-ubyte work too).",
        "Put the standard files in such a folder and pass it with --data-dir (command line) or "
        f"path= (Python), or set {ENV_VAR}; both also accept a folder holding "
        f"{', '.join(f'{s}/' for s in DATASETS[1:])} sub-folders. Nothing is downloaded.",
    ]
    return "\n".join(lines)


# --------------------------------------------------------------------------------------------
# Loaders
# --------------------------------------------------------------------------------------------


def _float_dtype(dtype: npt.DTypeLike) -> np.dtype[Any]:
    """Return `dtype` as a numpy dtype, checking it is a floating type."""
    result = np.dtype(dtype)
    if not np.issubdtype(result, np.floating):
        raise ValueError(f"dtype must be a floating-point type, got {result}")
    return result


def _read_pair(
    images_file: Path, labels_file: Path, dtype: np.dtype[Any]
) -> tuple[npt.NDArray[np.floating[Any]], npt.NDArray[np.int64]]:
    """Read and check one images/labels pair; return flattened scaled images and labels."""
    images = read_idx(images_file)
    labels = read_idx(labels_file)
    if images.dtype != np.uint8 or images.ndim != 3 or images.shape[1:] != _IMAGE_SHAPE:
        raise DataFormatError(
            f"{images_file}: expected unsigned-byte images of shape (n, 28, 28), "
            f"got {images.dtype} array of shape {images.shape}"
        )
    if labels.dtype != np.uint8 or labels.ndim != 1:
        raise DataFormatError(
            f"{labels_file}: expected a 1-d array of unsigned-byte labels, "
            f"got {labels.dtype} array of shape {labels.shape}"
        )
    if images.shape[0] != labels.shape[0]:
        raise DataFormatError(
            f"{images_file} holds {images.shape[0]} images but {labels_file} holds "
            f"{labels.shape[0]} labels"
        )
    if labels.size and int(labels.max()) >= _N_CLASSES:
        bad = np.unique(labels[labels >= _N_CLASSES]).tolist()
        raise DataFormatError(f"{labels_file}: labels must be in 0..{_N_CLASSES - 1}, found {bad}")
    X = images.reshape(images.shape[0], -1).astype(dtype)
    X /= dtype.type(255)
    return X, labels.astype(np.int64)


def _load_from_dir(directory: Path, dtype: np.dtype[Any]) -> Split:
    """Load the four files found in `directory`."""
    found = {role: _find_file(directory, role) for role in _ROLES}
    missing = [_ROLE_FILE_NAMES[role][0] for role, f in found.items() if f is None]
    if missing:  # the folder changed since it was found
        raise FileNotFoundError(f"{directory}: missing {', '.join(missing)}")
    files = {role: f for role, f in found.items() if f is not None}
    X_train, y_train = _read_pair(files["train-images"], files["train-labels"], dtype)
    X_test, y_test = _read_pair(files["t10k-images"], files["t10k-labels"], dtype)
    return X_train, y_train, X_test, y_test


def _load_file_set(name: str, path: str | os.PathLike[str] | None, dtype: npt.DTypeLike) -> Split:
    """Locate and load the file-based set `name` (canonical)."""
    float_dtype = _float_dtype(dtype)
    directory = find_data_dir(name, path)
    if directory is None:
        raise FileNotFoundError(_not_found_message(name, path))
    return _load_from_dir(directory, float_dtype)


def load_mnist(
    path: str | os.PathLike[str] | None = None, *, dtype: npt.DTypeLike = np.float64
) -> Split:
    """Load MNIST from local IDX files.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A folder holding the four IDX files. Without it, ``$CVX_LIFTED_DATA/mnist`` is
        used, or else ``$CVX_LIFTED_DATA/mnist-10k`` (a 10,000-image subset).
    dtype : numpy dtype-like, default numpy.float64
        Floating-point type of the images.

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, 784)
        Training images, flattened row by row, scaled to [0, 1].
    y_train : numpy.ndarray of shape (n_train,), dtype int64
        Training labels in 0..9.
    X_test : numpy.ndarray of shape (n_test, 784)
        Test images.
    y_test : numpy.ndarray of shape (n_test,), dtype int64
        Test labels.

    Raises
    ------
    FileNotFoundError
        If no folder with the four files is found; the message lists every place looked
        at and the file names expected.
    DataFormatError
        If a file is malformed or the files are inconsistent with each other.
    """
    return _load_file_set("mnist", path, dtype)


def load_fashion_mnist(
    path: str | os.PathLike[str] | None = None, *, dtype: npt.DTypeLike = np.float64
) -> Split:
    """Load Fashion-MNIST from local IDX files.

    Parameters
    ----------
    path : str or os.PathLike, optional
        A folder holding the four IDX files. Without it, ``$CVX_LIFTED_DATA/fashion-mnist``
        is used, or else Debian's ``/usr/share/datasets/fashion-mnist``.
    dtype : numpy dtype-like, default numpy.float64
        Floating-point type of the images.

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, 784)
        Training images, flattened row by row, scaled to [0, 1].
    y_train : numpy.ndarray of shape (n_train,), dtype int64
        Training labels in 0..9.
    X_test : numpy.ndarray of shape (n_test, 784)
        Test images.
    y_test : numpy.ndarray of shape (n_test,), dtype int64
        Test labels.

    Raises
    ------
    FileNotFoundError
        If no folder with the four files is found; the message lists every place looked
        at and the file names expected.
    DataFormatError
        If a file is malformed or the files are inconsistent with each other.
    """
    return _load_file_set("fashion-mnist", path, dtype)


def _load_mnist_10k(
    path: str | os.PathLike[str] | None = None, *, dtype: npt.DTypeLike = np.float64
) -> Split:
    """Load the 10,000-image MNIST subset, looked for only in ``mnist-10k/``."""
    return _load_file_set("mnist-10k", path, dtype)


def load_digits(
    *,
    test_size: float | int = 0.25,
    random_state: int | None = 0,
    dtype: npt.DTypeLike = np.float64,
) -> Split:
    """Load scikit-learn's bundled 8x8 digits with a stratified train/test split.

    No files are needed: the 1,797 images ship inside scikit-learn.

    Parameters
    ----------
    test_size : float or int, default 0.25
        Fraction (float) or number (int) of images in the test set, as in
        :func:`sklearn.model_selection.train_test_split`.
    random_state : int or None, default 0
        Seed of the split; the default makes it deterministic.
    dtype : numpy dtype-like, default numpy.float64
        Floating-point type of the images.

    Returns
    -------
    X_train : numpy.ndarray of shape (n_train, 64)
        Training images, flattened row by row, scaled to [0, 1] (pixel values / 16).
    y_train : numpy.ndarray of shape (n_train,), dtype int64
        Training labels in 0..9.
    X_test : numpy.ndarray of shape (n_test, 64)
        Test images.
    y_test : numpy.ndarray of shape (n_test,), dtype int64
        Test labels.
    """
    float_dtype = _float_dtype(dtype)
    from sklearn.datasets import load_digits as _sk_load_digits
    from sklearn.model_selection import train_test_split

    images, labels = _sk_load_digits(return_X_y=True)
    X = np.asarray(images, dtype=float_dtype) / float_dtype.type(16)
    y = np.asarray(labels, dtype=np.int64)
    X_train, X_test, y_train, y_test = train_test_split(
        X, y, test_size=test_size, random_state=random_state, stratify=y
    )
    return X_train, y_train, X_test, y_test


def load_dataset(name: str, path: str | os.PathLike[str] | None = None, **kw: Any) -> Split:
    """Load a data set by name.

    Parameters
    ----------
    name : str
        One of :data:`DATASETS`: ``"digits"``, ``"mnist"``, ``"mnist-10k"``,
        ``"fashion-mnist"`` (``"fashion_mnist"`` is accepted too). ``"mnist-10k"`` is
        looked for only in ``mnist-10k/``, whereas ``"mnist"`` prefers the full ``mnist/``.
    path : str or os.PathLike, optional
        A folder holding the four IDX files (file-based sets only).
    **kw
        Passed on to the loader: ``dtype`` for all sets, ``test_size`` and
        ``random_state`` for ``"digits"``.

    Returns
    -------
    tuple of numpy.ndarray
        ``(X_train, y_train, X_test, y_test)``, see :func:`load_mnist` and
        :func:`load_digits`.

    Raises
    ------
    ValueError
        If `name` is unknown (the message lists the known names), or `path` is given for
        ``"digits"``.
    FileNotFoundError
        If the files of a file-based set are not found.
    """
    canonical = _normalise_name(name)
    if canonical == "digits":
        if path is not None:
            raise ValueError("dataset 'digits' ships with scikit-learn and takes no path")
        return load_digits(**kw)
    if canonical == "mnist":
        return load_mnist(path, **kw)
    if canonical == "fashion-mnist":
        return load_fashion_mnist(path, **kw)
    return _load_mnist_10k(path, **kw)
