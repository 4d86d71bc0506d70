# SPDX-License-Identifier: Apache-2.0
"""Model files and tabular data files.

Model files
-----------
:func:`save_network` writes a :class:`~cvx_lifted.network.LiftedNetwork` to a *model file*, and
:func:`load_network` (also :func:`cvx_lifted.load`) reads it back. A model file is a zip archive
with nothing executable in it (no pickle)::

    model.cvxl
    ├── metadata.json   format name and version, package version, architecture
    │                   (network.describe()), training history, user metadata ("extra"),
    │                   and the shape, dtype and SHA-256 of every array
    ├── W0.npy          weight of layer 0, shape (layer_sizes[1], layer_sizes[0])
    ├── b0.npy          bias of layer 0, shape (layer_sizes[1],)
    ├── W1.npy ...      one pair per layer, written with np.save(allow_pickle=False)

``metadata.json`` looks like::

    {"format": "cvx_lifted.model", "format_version": 1, "cvx_lifted_version": "0.1.0",
     "architecture": {"layer_sizes": [64, 100, 10],
                      "activations": [{"name": "relu", "params": {}}],
                      "output": {"name": "simplex_xent", "params": {}},
                      "lam": [1.0, 1.0], "rho": [0.001, 0.001], "dtype": "float64"},
     "arrays": [{"name": "W0", "file": "W0.npy", "layer": 0, "kind": "weight",
                 "shape": [100, 64], "dtype": "float64", "sha256": "…"}, …],
     "history": {"objective": […], "terms": […], …} or null,
     "extra": {"task": "classify", "classes": [0, 1, …]}}

The SHA-256 is taken over the bytes of each ``.npy`` member (header and data), so an edited array
is detected even when its zip CRC has been recomputed. Activations are stored by their registry
name and constructor parameters; a custom activation must be registered again (by importing the
module that calls :func:`cvx_lifted.custom_activation`) before its model is loaded.

Saving is atomic: the archive is written to a temporary file in the destination folder, flushed
and ``fsync``'d, then moved over the destination with :func:`os.replace`. An interrupted save
leaves either the old file or the new one, never a partial file. Files are byte-for-byte
deterministic (fixed zip timestamps), so saving the same network twice gives the same bytes.

Tabular data
------------
:func:`read_table` reads the CSV and NPZ files that the command line trains and predicts on;
:func:`infer_task` and :func:`train_validation_split` are the small decisions it makes about them.

Examples
--------
>>> import numpy as np, tempfile, os
>>> from cvx_lifted import LiftedNetwork, load
>>> net = LiftedNetwork([3, 4, 2]).initialize(0)
>>> path = net.save(os.path.join(tempfile.mkdtemp(), "tiny"))
>>> path.name
'tiny.cvxl'
>>> X = np.ones((2, 3))
>>> bool(np.array_equal(load(path).predict(X), net.predict(X)))
True
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import io as _io
import json
import math
import os
import tempfile
import zipfile
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
from numpy.typing import NDArray

from cvx_lifted._version import __version__
from cvx_lifted.exceptions import ModelFileError

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = [
    "DEFAULT_SUFFIX",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "SavedModel",
    "Table",
    "infer_task",
    "load_model",
    "load_network",
    "model_bytes",
    "read_metadata",
    "read_table",
    "save_network",
    "train_validation_split",
]

FORMAT_NAME = "cvx_lifted.model"
"""Value of the ``"format"`` key of ``metadata.json``."""

FORMAT_VERSION = 1
"""Newest model-file format version this package writes and reads."""

DEFAULT_SUFFIX = ".cvxl"
"""Extension appended by :func:`save_network` to a path that has none."""

METADATA_MEMBER = "metadata.json"
_MAX_METADATA_BYTES = 64 * 2**20  # a history of many thousand sweeps is still far below this
_NPY_HEADER_SLACK = 2**16  # np.save headers are ~128 bytes; the .npy format allows up to 64 KiB
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamp: identical networks give identical files


# =========================================================================================
# Model files
# =========================================================================================
@dataclass(frozen=True)
class SavedModel:
    """A model file as loaded by :func:`load_model`.

    Attributes
    ----------
    network : LiftedNetwork
        The network, with weights, biases and (when saved) training history.
    extra : dict
        The user metadata given to :func:`save_network` (``{}`` when none), e.g. the command
        line's ``{"task": "classify", "classes": [...], "feature_names": [...]}``.
    metadata : dict
        The whole ``metadata.json`` (format, versions, architecture, array checksums, ...).
    path : pathlib.Path
        The file read.
    """

    network: LiftedNetwork
    extra: dict[str, Any]
    metadata: dict[str, Any]
    path: Path


def _json_default(obj: Any) -> Any:
    """Turn NumPy scalars and arrays into plain Python for :func:`json.dumps`."""
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, (tuple, set, frozenset)):
        return list(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON-serialisable")


def _history_dict(history: Any) -> dict[str, Any] | None:
    """Return a training history as plain data (``BCDHistory.as_dict`` or a mapping)."""
    if history is None:
        return None
    if hasattr(history, "as_dict"):
        return dict(history.as_dict())
    if isinstance(history, Mapping):
        return dict(history)
    return None


def _npy_bytes(arr: np.ndarray) -> bytes:
    buf = _io.BytesIO()
    np.save(buf, arr, allow_pickle=False)
    return buf.getvalue()


def _zip_info(name: str) -> zipfile.ZipInfo:
    info = zipfile.ZipInfo(name, date_time=_ZIP_DATE)
    info.compress_type = zipfile.ZIP_DEFLATED
    info.external_attr = 0o644 << 16
    return info


def _current_umask() -> int:
    """Return the process umask without changing it (Linux), else the usual 0o022."""
    try:
        with open("/proc/self/status", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    return 0o022


def _with_suffix(path: str | os.PathLike[str]) -> Path:
    out = Path(path).expanduser()
    if not out.suffix:
        out = out.with_name(out.name + DEFAULT_SUFFIX)
    return out


def model_bytes(network: LiftedNetwork, extra: Mapping[str, Any] | None = None) -> bytes:
    """Serialise a network to the bytes of a model file (see the module documentation).

    Parameters
    ----------
    network : LiftedNetwork
        The network (fitted or not; an unfitted network is saved without arrays).
    extra : mapping, optional
        JSON-serialisable user metadata stored under ``"extra"``.

    Returns
    -------
    bytes

    Raises
    ------
    ValueError
        If ``extra`` is not JSON-serialisable, or the weights do not fit the architecture.
    """
    arch = network.describe()
    arrays: list[tuple[dict[str, Any], bytes]] = []
    if network.weights or network.biases:
        if len(network.weights) != network.n_layers or len(network.biases) != network.n_layers:
            raise ValueError(
                f"the network has {len(network.weights)} weight matrices and "
                f"{len(network.biases)} bias vectors for {network.n_layers} layers; "
                "use set_weights() or fit() to set all of them."
            )
        for layer, (W, b) in enumerate(zip(network.weights, network.biases, strict=True)):
            shape = (network.layer_sizes[layer + 1], network.layer_sizes[layer])
            for kind, arr, want in (("weight", W, shape), ("bias", b, shape[:1])):
                arr = np.ascontiguousarray(arr, dtype=network.dtype)
                if arr.shape != want:
                    raise ValueError(
                        f"layer {layer}: {kind} has shape {arr.shape}, the architecture "
                        f"{list(network.layer_sizes)} needs {want}."
                    )
                name = f"{'W' if kind == 'weight' else 'b'}{layer}"
                data = _npy_bytes(arr)
                entry = {
                    "name": name,
                    "file": f"{name}.npy",
                    "layer": layer,
                    "kind": kind,
                    "shape": list(arr.shape),
                    "dtype": arr.dtype.name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
                arrays.append((entry, data))
    history = getattr(network, "history", None)
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "cvx_lifted_version": __version__,
        "architecture": arch,
        "arrays": [entry for entry, _ in arrays],
        "history": _history_dict(history),
        "extra": dict(extra) if extra is not None else {},
    }
    try:
        text = json.dumps(metadata, indent=1, default=_json_default)
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"the model metadata is not JSON-serialisable ({exc}); pass plain numbers, strings, "
            "lists and dicts in `extra`."
        ) from None
    buf = _io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr(_zip_info(METADATA_MEMBER), text.encode("utf-8"))
        for entry, data in arrays:
            zf.writestr(_zip_info(entry["file"]), data)
    return buf.getvalue()


def save_network(
    network: LiftedNetwork,
    path: str | os.PathLike[str],
    *,
    extra: Mapping[str, Any] | None = None,
) -> Path:
    """Save a network to a model file, atomically (no pickle; see the module documentation).

    Parameters
    ----------
    network : LiftedNetwork
        The network to save: architecture, weights, biases and training history.
    path : str or os.PathLike
        Destination. ``.cvxl`` is appended when the name has no extension; any extension the
        caller gives is kept. An existing file is replaced only once the new one is complete.
    extra : mapping, optional
        JSON-serialisable user metadata (NumPy scalars and arrays are converted), read back as
        :attr:`SavedModel.extra` by :func:`load_model`; the command line stores
        ``{"task": ..., "classes": [...], "feature_names": [...]}`` here.

    Returns
    -------
    pathlib.Path
        The path written.

    Raises
    ------
    ValueError
        If ``extra`` is not JSON-serialisable or the weights do not fit the architecture.
    FileNotFoundError
        If the destination folder does not exist.
    IsADirectoryError
        If ``path`` is a folder.
    OSError
        If writing fails; the destination is then left as it was.
    """
    if Path(path).expanduser().is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as model.cvxl.")
    target = _with_suffix(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; give a file name such as model.cvxl.")
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save {target}: the folder {folder} does not exist.")
    data = model_bytes(network, extra)
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        mode = 0o666 & ~_current_umask()
    fd, tmp_name = tempfile.mkstemp(dir=folder, prefix=f".{target.name}.", suffix=".tmp")
    tmp = Path(tmp_name)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.chmod(tmp, mode)
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            tmp.unlink()
        raise
    _fsync_folder(folder)
    return target


def _fsync_folder(folder: Path) -> None:
    """Make the rename durable (POSIX); a no-op where folders cannot be opened."""
    try:
        dir_fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(dir_fd)
    except OSError:
        pass
    finally:
        os.close(dir_fd)


# ----------------------------------------------------------------------------- loading
def _bad(path: Path, what: str, todo: str = "") -> ModelFileError:
    todo = todo or "re-save the model from the network that produced it, or retrain it"
    return ModelFileError(f"{path}: {what}; {todo}.")


def _open_zip(path: Path) -> zipfile.ZipFile:
    if not path.exists():
        raise FileNotFoundError(f"no model file at {path}.")
    if path.is_dir():
        raise _bad(path, "is a folder, not a model file", "pass the .cvxl file inside it")
    try:
        return zipfile.ZipFile(path, "r")
    except zipfile.BadZipFile:
        raise _bad(
            path,
            "is not a cvx_lifted model file (not a zip archive: truncated, corrupted, or "
            "another kind of file)",
        ) from None
    except OSError as exc:
        raise _bad(path, f"cannot be read ({exc})", "check the file and its permissions") from None


def _read_member(zf: zipfile.ZipFile, path: Path, name: str, limit: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise _bad(
            path,
            f"the member {name!r} is missing from the archive (truncated or edited file)",
        ) from None
    if info.file_size > limit:
        raise _bad(path, f"the member {name!r} is {info.file_size} bytes, more than expected")
    try:
        with zf.open(info) as fh:
            return fh.read(limit + 1)
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, ValueError) as exc:
        raise _bad(path, f"the member {name!r} is corrupted ({exc})") from None


def _parse_metadata(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        meta = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _bad(path, f"{METADATA_MEMBER} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise _bad(path, f"{METADATA_MEMBER} must hold a JSON object, got {type(meta).__name__}")
    fmt = meta.get("format")
    if fmt != FORMAT_NAME:
        raise _bad(
            path,
            f"is not a cvx_lifted model file ({METADATA_MEMBER} says format {fmt!r}, expected "
            f"{FORMAT_NAME!r})",
            "load it with the tool that wrote it",
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise _bad(path, f"invalid format_version {version!r} in {METADATA_MEMBER}")
    if version > FORMAT_VERSION:
        writer = meta.get("cvx_lifted_version", "a newer version")
        raise _bad(
            path,
            f"was written in model-file format version {version} (by cvx_lifted {writer}), but "
            f"this cvx_lifted {__version__} reads format versions up to {FORMAT_VERSION}",
            "upgrade cvx_lifted (pip install --upgrade cvx-lifted) to load it",
        )
    _check_metadata(meta, path)
    return meta


def _check_metadata(meta: dict[str, Any], path: Path) -> None:
    """Check the types of the keys that loading relies on."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise _bad(path, f"malformed {METADATA_MEMBER}: {what}")

    arch = meta.get("architecture")
    need(isinstance(arch, dict), "no 'architecture' object")
    sizes = arch.get("layer_sizes")
    need(
        isinstance(sizes, list)
        and len(sizes) >= 2
        and all(isinstance(s, int) and not isinstance(s, bool) and s >= 1 for s in sizes),
        f"'layer_sizes' must list at least two positive integers, got {sizes!r}",
    )
    acts = arch.get("activations")
    need(
        isinstance(acts, list)
        and len(acts) == len(sizes) - 2
        and all(
            isinstance(a, dict)
            and isinstance(a.get("name"), str)
            and isinstance(a.get("params"), dict)
            for a in acts
        ),
        f"'activations' must list one {{name, params}} object per hidden layer, got {acts!r}",
    )
    out = arch.get("output")
    need(
        isinstance(out, dict)
        and isinstance(out.get("name"), str)
        and isinstance(out.get("params"), dict),
        f"'output' must be a {{name, params}} object, got {out!r}",
    )
    for key in ("lam", "rho"):
        val = arch.get(key)
        need(
            isinstance(val, list)
            and all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in val),
            f"'{key}' must be a list of numbers, got {val!r}",
        )
    need(arch.get("dtype") in ("float32", "float64"), f"unsupported dtype {arch.get('dtype')!r}")
    arrays = meta.get("arrays")
    need(isinstance(arrays, list), "no 'arrays' list")
    for entry in arrays:
        need(
            isinstance(entry, dict)
            and isinstance(entry.get("file"), str)
            and entry.get("kind") in ("weight", "bias")
            and isinstance(entry.get("layer"), int)
            and isinstance(entry.get("shape"), list)
            and isinstance(entry.get("sha256"), str),
            f"bad array entry {entry!r}",
        )
    need(meta.get("history") is None or isinstance(meta["history"], dict), "bad 'history'")
    need(isinstance(meta.get("extra", {}), dict), "'extra' must be an object")


def _check_registered(arch: dict[str, Any], path: Path) -> None:
    from cvx_lifted.activations import ACTIVATIONS
    from cvx_lifted.losses import OUTPUTS

    names = [a["name"] for a in arch["activations"]]
    head = arch["output"]
    if head["name"] not in OUTPUTS:
        raise _bad(
            path,
            f"unknown output head {head['name']!r} (known: {', '.join(OUTPUTS)})",
            "load it with the cvx_lifted version that wrote it",
        )
    if isinstance(head["params"].get("activation"), str):
        names.append(head["params"]["activation"])
    for name in names:
        if name not in ACTIVATIONS:
            raise ModelFileError(
                f"{path}: the model uses the activation {name!r}, which is not registered in this "
                f"session; register it first (e.g. import the module that calls "
                f"cvx_lifted.custom_activation(name={name!r}, ...) or "
                f"cvx_lifted.register_activation), then load the model again."
            )


def _build_network(arch: dict[str, Any], path: Path) -> LiftedNetwork:
    from cvx_lifted.activations import get_activation
    from cvx_lifted.losses import get_output
    from cvx_lifted.network import LiftedNetwork

    _check_registered(arch, path)
    try:
        acts = [get_activation(a["name"], **a["params"]) for a in arch["activations"]]
        head = get_output(arch["output"]["name"], **arch["output"]["params"])
        # a custom penalty callable is not stored (nothing executable is); it only matters for
        # further training, so the loaded network falls back to the l2 penalty
        penalty = arch.get("penalty", "l2")
        return LiftedNetwork(
            arch["layer_sizes"],
            activation=acts,
            output=head,
            lam=arch["lam"],
            rho=arch["rho"],
            dtype=np.dtype(arch["dtype"]),
            penalty=penalty if penalty in ("l2", "l1") else "l2",
        )
    except (ValueError, TypeError, NotImplementedError) as exc:
        raise _bad(path, f"the stored architecture is invalid ({exc})") from None


def _load_arrays(zf: zipfile.ZipFile, meta: dict[str, Any], net: LiftedNetwork, path: Path) -> None:
    entries = meta["arrays"]
    if not entries:
        return
    expected = {}
    for layer in range(net.n_layers):
        shape = (net.layer_sizes[layer + 1], net.layer_sizes[layer])
        expected[("weight", layer)] = shape
        expected[("bias", layer)] = shape[:1]
    found: dict[tuple[str, int], np.ndarray] = {}
    for entry in entries:
        key = (entry["kind"], entry["layer"])
        if key not in expected or key in found:
            raise _bad(path, f"unexpected array entry {entry['file']!r} for this architecture")
        want = expected[key]
        if tuple(entry["shape"]) != want:
            raise _bad(
                path,
                f"array {entry['file']!r} is listed with shape {tuple(entry['shape'])}, but the "
                f"architecture {list(net.layer_sizes)} needs {want} (edited or mixed-up file)",
            )
        limit = math.prod(want) * net.dtype.itemsize + _NPY_HEADER_SLACK
        data = _read_member(zf, path, entry["file"], limit)
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise _bad(
                path,
                f"checksum mismatch for {entry['file']!r} (SHA-256 {digest[:12]}... instead of "
                f"{entry['sha256'][:12]}...): the array was modified or damaged after saving",
                "restore the file from a good copy or retrain the model; do not trust its "
                "predictions",
            )
        try:
            arr = np.load(_io.BytesIO(data), allow_pickle=False)
        except (ValueError, OSError, EOFError) as exc:
            raise _bad(path, f"{entry['file']!r} is not a valid .npy array ({exc})") from None
        if not isinstance(arr, np.ndarray) or arr.shape != want:
            shape = getattr(arr, "shape", None)
            raise _bad(path, f"{entry['file']!r} has shape {shape}, the architecture needs {want}")
        if arr.dtype != net.dtype:
            raise _bad(path, f"{entry['file']!r} has dtype {arr.dtype}, the model says {net.dtype}")
        found[key] = arr
    missing = sorted(f"{k[0]} {k[1]}" for k in expected if k not in found)
    if missing:
        raise _bad(path, f"arrays missing from the metadata: {', '.join(missing)}")
    try:
        net.set_weights(
            [found[("weight", i)] for i in range(net.n_layers)],
            [found[("bias", i)] for i in range(net.n_layers)],
        )
    except ValueError as exc:
        raise _bad(path, f"the stored weights are unusable ({exc})") from None


def _history(raw: dict[str, Any] | None) -> Any:
    if raw is None:
        return None
    from cvx_lifted.bcd import BCDHistory

    known = {f.name for f in fields(BCDHistory)}
    kwargs = {k: v for k, v in raw.items() if k in known}
    if "blocks" in kwargs:
        kwargs["blocks"] = [tuple(b) for b in kwargs["blocks"]]
    try:
        return BCDHistory(**kwargs)
    except TypeError:  # pragma: no cover - fields are all optional
        return None


def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists() and not p.suffix and p.with_name(p.name + DEFAULT_SUFFIX).exists():
        return p.with_name(p.name + DEFAULT_SUFFIX)
    return p


def read_metadata(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Read and check the ``metadata.json`` of a model file without loading the arrays.

    Parameters
    ----------
    path : str or os.PathLike
        Model file (``.cvxl`` is tried when the name has no extension and does not exist).

    Returns
    -------
    dict
        The metadata: ``format``, ``format_version``, ``cvx_lifted_version``, ``architecture``,
        ``arrays``, ``history``, ``extra``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is not a well-formed cvx_lifted model file, or needs a newer cvx_lifted.
    """
    p = _resolve(path)
    with _open_zip(p) as zf:
        return _parse_metadata(_read_member(zf, p, METADATA_MEMBER, _MAX_METADATA_BYTES), p)


def load_model(path: str | os.PathLike[str]) -> SavedModel:
    """Load a model file: the network plus the metadata stored next to it.

    Parameters
    ----------
    path : str or os.PathLike
        Model file written by :func:`save_network` (``.cvxl`` is tried when the name has no
        extension and does not exist).

    Returns
    -------
    SavedModel
        ``network``, ``extra`` (user metadata), ``metadata`` (all of ``metadata.json``), ``path``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is truncated, not a zip archive, lacks a member, fails a checksum, has
        arrays whose shape does not fit the architecture, holds malformed JSON, is of an unknown
        format or of a newer format version, or uses a custom activation that is not registered.
        The message says what is wrong and what to do.
    """
    p = _resolve(path)
    with _open_zip(p) as zf:
        meta = _parse_metadata(_read_member(zf, p, METADATA_MEMBER, _MAX_METADATA_BYTES), p)
        net = _build_network(meta["architecture"], p)
        _load_arrays(zf, meta, net, p)
    net.history = _history(meta.get("history"))
    return SavedModel(network=net, extra=dict(meta.get("extra") or {}), metadata=meta, path=p)


def load_network(path: str | os.PathLike[str]) -> LiftedNetwork:
    """Load a network saved by :func:`save_network` (also :func:`cvx_lifted.load`).

    Parameters
    ----------
    path : str or os.PathLike
        Model file.

    Returns
    -------
    LiftedNetwork
        Predicts bit-for-bit like the saved network.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is damaged, of an unknown or newer format, or needs a custom activation
        that is not registered (see :func:`load_model`).
    """
    return load_model(path).network


# =========================================================================================
# Tabular data (CSV / NPZ)
# =========================================================================================
Task = Literal["classify", "regress"]


@dataclass
class Table:
    """A data set read from a CSV or NPZ file.

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
    """Return whether the first row is a header: non-numeric above numeric cells in a column."""
    first, rest = rows[0], rows[1:101]
    if not rest:
        return not any(_is_number(c) for c in first)
    for j, cell in enumerate(first):
        if not _is_number(cell) and all(j < len(r) and _is_number(r[j]) for r in rest):
            return True
    return False


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
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError:
        raise ValueError(f"{path}: not a UTF-8 text (CSV) file.") from None
    lines = text.splitlines()
    sample = next((ln for ln in lines if ln.strip()), "")
    delimiter = next((d for d in (",", "\t", ";") if d in sample), ",")
    rows: list[list[str]] = []
    line_numbers: list[int] = []
    for number, row in enumerate(csv.reader(lines, delimiter=delimiter), start=1):
        if not row or all(not c.strip() for c in row):
            continue
        rows.append([c.strip() for c in row])
        line_numbers.append(number)
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
    elif missing and len(names or ()) != len(features or ()) + (t_idx is not None):
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
                    raise ValueError(
                        f"{path}: line {number}, column {col}: {row[j]!r} is not a number "
                        "(features must be numeric; encode categories first)."
                    ) from None
        raise
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: the features contain NaN or infinity; clean or impute them.")
    y: np.ndarray | None = None
    if t_idx is not None:
        raw = [row[t_idx] for row in data]
        if any(not c for c in raw):
            raise ValueError(f"{path}: the target column has empty cells.")
        y = np.array([float(c) for c in raw]) if all(_is_number(c) for c in raw) else np.array(raw)
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
    if not np.all(np.isfinite(X)):
        raise ValueError(f"{path}: 'X' contains NaN or infinity; clean or impute it.")
    if y is not None:
        if y.shape[0] != X.shape[0] or y.ndim > 2:
            raise ValueError(f"{path}: 'y' has shape {y.shape}, expected ({X.shape[0]},).")
        if y.dtype.kind == "b":
            y = y.astype(np.int64)
    return Table(X=X, y=y, path=path)


def read_table(
    path: str | os.PathLike[str],
    *,
    target: str | int | None = -1,
    features: Sequence[str] | None = None,
    header: bool | None = None,
) -> Table:
    """Read a data set from a CSV or NPZ file.

    Parameters
    ----------
    path : str or os.PathLike
        A ``.npz`` file (arrays ``X`` and, for training, ``y``) or a delimited text file
        (comma, tab or semicolon, detected from the first line).
    target : str or int or None, default=-1
        CSV: the target column, by header name or 0-based index (negative counts from the end);
        ``None`` when the file has no target (prediction). NPZ: ``None`` ignores ``y``.
    features : sequence of str, optional
        CSV with a header: take exactly these columns, in this order, as features (e.g. the
        feature names a model was trained on); other columns are ignored. When some are missing
        but the file has exactly as many columns as expected, the columns are taken by position.
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
        raise FileNotFoundError(f"no such data file: {p}")
    with open(p, "rb") as fh:
        magic = fh.read(4)
    if p.suffix.lower() == ".npz" or magic == b"PK\x03\x04":
        return _read_npz(p, target)
    return _read_csv(p, target, features, header)


def infer_task(y: np.ndarray) -> Task:
    """Guess the task from a target: strings or integer-valued numbers classify, else regress.

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
    if y.dtype.kind in "iu":
        return "classify"
    return "classify" if np.all(np.isfinite(y)) and np.all(y == np.round(y)) else "regress"


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
