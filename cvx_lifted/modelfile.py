# SPDX-License-Identifier: Apache-2.0
r"""Model files: a network's architecture, weights and history in one self-verifying file.

:func:`save_network` (also :meth:`LiftedNetwork.save`) writes a
:class:`~cvx_lifted.network.LiftedNetwork` to a *model file*, and :func:`load_network` (also
:func:`cvx_lifted.load`) reads it back. A model file is a zip archive with nothing executable in
it (no pickle)::

    model.cvxl
    ├── metadata.json   format name and version, package version, architecture
    │                   (network.describe()), whether it is fitted, training history, user
    │                   metadata ("extra"), the shape, dtype and SHA-256 of every array, and
    │                   the SHA-256 of the metadata itself
    ├── W0.npy          weight of layer 0, shape (layer_sizes[1], layer_sizes[0])
    ├── b0.npy          bias of layer 0, shape (layer_sizes[1],)
    ├── W1.npy ...      one pair per layer, in the .npy format (no pickle)

``metadata.json`` looks like::

    {"format": "cvx_lifted.model", "format_version": 2, "cvx_lifted_version": "0.1.0",
     "architecture": {"layer_sizes": [64, 100, 10],
                      "activations": [{"name": "relu_fenchel", "params": {}}],
                      "output": {"name": "simplex_xent", "params": {}},
                      "lam": [1.0, 1.0], "rho": [0.001, 0.001], "penalty": "l2",
                      "dtype": "float64"},
     "fitted": true,
     "arrays": [{"name": "W0", "file": "W0.npy", "layer": 0, "kind": "weight",
                 "shape": [100, 64], "dtype": "float64", "sha256": "…"}, …],
     "history": {"objective": […], "terms": […], …} or null,
     "extra": {"task": "classify", "classes": [0, 1, …]},
     "metadata_sha256": "…"}

Integrity
---------
Loading checks, in this order, and every failure is a
:class:`~cvx_lifted.exceptions.ModelFileError` that says what is wrong and what to do (a
missing file is a ``FileNotFoundError``):

1. the path is a *regular file* (``os.stat`` before opening; it is opened with ``O_NONBLOCK``,
   so a FIFO or a device can never block the reader);
2. the archive is a readable, unencrypted zip whose members are stored or deflated;
3. ``metadata.json`` is at most 64 MiB of UTF-8 JSON nested at most 64 levels deep;
4. its ``metadata_sha256`` is the SHA-256 of the metadata's canonical form (the JSON object
   without that key, keys sorted, no spaces): an edited activation, head, λ, class list or
   array table is detected even when the zip CRCs were recomputed;
5. the schema, with bounds, *before anything is allocated*: at most
   :data:`MAX_LAYERS` layers, widths up to :data:`MAX_LAYER_WIDTH`, at most
   :data:`MAX_PARAMETERS` weights in all, one ``W``/``b`` pair per layer with the shapes the
   architecture implies exactly when ``fitted`` is true, and none otherwise;
6. each array: its SHA-256, then its ``.npy`` header (shape, dtype, memory order) against the
   metadata, then its exact byte length, then finiteness. Arrays are decoded with
   :func:`numpy.frombuffer`, so a forged header can never make the reader allocate more than
   the architecture needs.

The checksums guard against damage and careless edits, not against a deliberate forger (who can
recompute them); a model file never holds code, so loading one never runs any.

Custom activations are stored by their registry name and parameters, together with the module
that defined them (``architecture.modules``). When such a name is not registered at load time,
installed packages' ``cvx_lifted.activations`` entry points are tried
(:mod:`cvx_lifted.plugins`); failing that, the error names the module to import.

Saving
------
The archive is written to a temporary file ``.NAME.PID.XXXX.tmp`` in the destination folder,
flushed and ``fsync``'d, then moved over the destination with :func:`os.replace`: an interrupted
save leaves either the old file or the new one, never a partial one. The temporary file is
removed on every exit the process survives: exceptions and Ctrl-C (``try``/``finally``),
``SIGTERM``/``SIGHUP`` received during the save (a handler installed for the duration of the
save removes it, then lets the signal terminate the process as it would have), and interpreter
exit (:mod:`atexit`). A process killed outright (``SIGKILL``, power loss) cannot clean up after
itself; the next save to the same destination removes temporary files left there by processes
that no longer exist. Files are byte-for-byte deterministic (fixed zip timestamps).

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
import hashlib
import io as _io
import json
import math
import os
import stat
import tempfile
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

from cvx_lifted import _atomic
from cvx_lifted._modelschema import (
    _DIGEST_KEY,
    _MAX_METADATA_BYTES,
    _NPY_HEADER_MAX,
    _ZIP_DATE,
    DEFAULT_SUFFIX,
    FORMAT_NAME,
    FORMAT_VERSION,
    MAX_LAYER_WIDTH,
    MAX_LAYERS,
    MAX_PARAMETERS,
    METADATA_MEMBER,
    bad_file,
    metadata_digest,
    parse_metadata,
)
from cvx_lifted._version import __version__
from cvx_lifted.activations import ACTIVATIONS
from cvx_lifted.exceptions import ModelFileError
from cvx_lifted.losses import OUTPUTS
from cvx_lifted.plugins import load_activation_plugin

if TYPE_CHECKING:
    from cvx_lifted.network import LiftedNetwork

__all__ = [
    "DEFAULT_SUFFIX",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_LAYERS",
    "MAX_LAYER_WIDTH",
    "MAX_PARAMETERS",
    "ModelContents",
    "check_registered",
    "guarded",
    "read_model",
    "metadata_digest",
    "model_bytes",
    "read_metadata",
    "save_network",
]


# =========================================================================================
# Saving
# =========================================================================================
@dataclass(frozen=True)
class ModelContents:
    """What :func:`read_model` found in a model file, checked but not yet turned into a network.

    Attributes
    ----------
    metadata : dict
        The whole ``metadata.json`` (format, versions, architecture, array checksums, ...).
    weights, biases : list of numpy.ndarray
        One per layer, in the architecture's dtype (empty lists for an unfitted network).
    path : pathlib.Path
        The file read.
    """

    metadata: dict[str, Any]
    weights: list[np.ndarray]
    biases: list[np.ndarray]
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
        If ``extra`` is not JSON-serialisable, the weights do not fit the architecture or are
        not finite, or only some layers have weights.
    """
    arch = network.describe()
    arrays: list[tuple[dict[str, Any], bytes]] = []
    fitted = bool(network.weights or network.biases)
    if fitted:
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
                if not np.all(np.isfinite(arr)):
                    raise ValueError(
                        f"layer {layer}: the {kind} contains NaN or infinity; a model file only "
                        "holds finite weights (retrain the network)."
                    )
                name = f"{'W' if kind == 'weight' else 'b'}{layer}"
                data = _npy_bytes(arr)
                entry: dict[str, Any] = {
                    "name": name,
                    "file": f"{name}.npy",
                    "layer": layer,
                    "kind": kind,
                    "shape": list(arr.shape),
                    "dtype": arr.dtype.name,
                    "sha256": hashlib.sha256(data).hexdigest(),
                }
                arrays.append((entry, data))
    metadata = {
        "format": FORMAT_NAME,
        "format_version": FORMAT_VERSION,
        "cvx_lifted_version": __version__,
        "architecture": arch,
        "fitted": fitted,
        "arrays": [entry for entry, _ in arrays],
        "history": _history_dict(getattr(network, "history", None)),
        "extra": dict(extra) if extra is not None else {},
    }
    try:
        # the round trip turns NumPy values into what a reader will see, then the digest is
        # taken over exactly that
        plain = json.loads(json.dumps(metadata, default=_json_default))
    except (TypeError, ValueError) as exc:
        raise ValueError(
            f"the model metadata is not JSON-serialisable ({exc}); pass plain numbers, strings, "
            "lists and dicts in `extra`."
        ) from None
    plain[_DIGEST_KEY] = metadata_digest(plain)
    text = json.dumps(plain, indent=1)
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
        :attr:`SavedModel.extra` by :func:`load_model`.

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
        If writing fails; the destination is then left as it was, and no temporary file stays.
    """
    if Path(path).expanduser().is_dir():
        raise IsADirectoryError(f"{path} is a folder; give a file name such as model.cvxl.")
    target = _with_suffix(path)
    if target.is_dir():
        raise IsADirectoryError(f"{target} is a folder; give a file name such as model.cvxl.")
    folder = target.parent
    if not folder.is_dir():
        raise FileNotFoundError(f"cannot save {target}: the folder {folder} does not exist.")
    unnamed = [a.name for a in network.activations if a.name not in ACTIVATIONS]
    if unnamed:  # the file would name an activation that no registry can give back
        raise ValueError(
            f"cannot save {target}: the activation(s) {unnamed} are not registered, so the file "
            "could not be loaded; declare them with custom_activation(..., register=True) (the "
            "default) or cvx_lifted.register_activation."
        )
    data = model_bytes(network, extra)
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        mode = 0o666 & ~_current_umask()
    _atomic.remove_stale_temporaries(target)
    with _atomic.cleanup_on_signals():
        fd, tmp_name = tempfile.mkstemp(
            dir=folder, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"
        )
        with _atomic.PENDING_LOCK:
            _atomic.PENDING.add(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, mode)
            os.replace(tmp_name, target)
        finally:
            with _atomic.PENDING_LOCK:
                _atomic.PENDING.discard(tmp_name)
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)  # only still there when the replace did not happen
    _atomic.fsync_folder(folder)
    return target


# =========================================================================================
# Loading
# =========================================================================================
def _resolve(path: str | os.PathLike[str]) -> Path:
    p = Path(path).expanduser()
    if not p.exists() and not p.suffix and p.with_name(p.name + DEFAULT_SUFFIX).exists():
        return p.with_name(p.name + DEFAULT_SUFFIX)
    return p


def _kind_of(mode: int) -> str:
    for test, name in (
        (stat.S_ISFIFO, "a FIFO (named pipe)"),
        (stat.S_ISSOCK, "a socket"),
        (stat.S_ISCHR, "a character device"),
        (stat.S_ISBLK, "a block device"),
    ):
        if test(mode):
            return name
    return "not a regular file"


def _open_regular(path: Path) -> BinaryIO:
    """Open ``path`` for reading if it is a regular file, never blocking on anything else."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise FileNotFoundError(f"no model file at {path}.") from None
    except OSError as exc:
        raise bad_file(
            path, f"cannot be read ({exc})", "check the file and its permissions"
        ) from None
    if stat.S_ISDIR(st.st_mode):
        raise bad_file(path, "is a folder, not a model file", "pass the .cvxl file inside it")
    if not stat.S_ISREG(st.st_mode):
        raise bad_file(
            path,
            f"is {_kind_of(st.st_mode)}, not a regular file; model files are only read from "
            "regular files",
            "save the model to a file and pass that",
        )
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0)
    try:
        fd = os.open(path, flags)
    except OSError as exc:
        raise bad_file(
            path, f"cannot be read ({exc})", "check the file and its permissions"
        ) from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):  # replaced between stat and open
            raise bad_file(path, "is not a regular file", "save the model to a file and pass that")
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def _open_zip(path: Path, fh: BinaryIO) -> zipfile.ZipFile:
    try:
        return zipfile.ZipFile(fh, "r")
    except zipfile.BadZipFile:
        raise bad_file(
            path,
            "is not a cvx_lifted model file (not a zip archive: truncated, corrupted, or "
            "another kind of file)",
        ) from None
    except (OSError, ValueError, EOFError, OverflowError, NotImplementedError) as exc:
        raise bad_file(path, f"is not a readable zip archive ({exc})") from None


def _read_member(zf: zipfile.ZipFile, path: Path, name: str, limit: int) -> bytes:
    try:
        info = zf.getinfo(name)
    except KeyError:
        raise bad_file(
            path,
            f"the member {name!r} is missing from the archive (truncated or edited file)",
        ) from None
    if info.flag_bits & 0x1:
        raise bad_file(
            path,
            f"the member {name!r} is marked as encrypted, which cvx_lifted never writes "
            "(edited or foreign file)",
        )
    if info.compress_type not in (zipfile.ZIP_STORED, zipfile.ZIP_DEFLATED):
        raise bad_file(
            path,
            f"the member {name!r} uses zip compression method {info.compress_type}, which "
            "cvx_lifted never writes (edited or foreign file)",
        )
    if info.file_size > limit:
        raise bad_file(
            path,
            f"the member {name!r} is {info.file_size} bytes, more than the {limit} expected",
        )
    try:
        with zf.open(info) as fh:
            data = fh.read(limit + 1)
    except (
        zipfile.BadZipFile,
        OSError,
        EOFError,
        ValueError,
        RuntimeError,
        NotImplementedError,
        OverflowError,
    ) as exc:
        raise bad_file(path, f"the member {name!r} is corrupted ({exc})") from None
    if len(data) > limit:
        raise bad_file(path, f"the member {name!r} is longer than the {limit} bytes expected")
    return data


def _missing_activation(name: str, arch: dict[str, Any], path: Path) -> ModelFileError:
    module = arch.get("modules", {}).get(name)
    if module == "__main__":
        where = (
            " It was defined in a script run as __main__, which no other process can import: "
            "move the custom_activation(...) call into a module, import that module, and save "
            "the model again."
        )
    elif module:
        where = (
            f" It was defined in the module {module!r}: import it first (`import {module}` in "
            f"Python, `cvx-lifted --import {module} ...` on the command line), then load the "
            "model again."
        )
    else:
        where = (
            " Register it first (e.g. import the module that calls "
            f"cvx_lifted.custom_activation(name={name!r}, ...) or "
            "cvx_lifted.register_activation), then load the model again."
        )
    return ModelFileError(
        f"{path}: the model uses the activation {name!r}, which is not registered in this "
        f"session and is provided by no installed package (entry-point group "
        f"'cvx_lifted.activations').{where}"
    )


def check_registered(arch: dict[str, Any], path: Path) -> None:
    """Make sure every activation and the head of ``arch`` are known (entry points included).

    Parameters
    ----------
    arch : dict
        The ``architecture`` entry of a model file's checked metadata.
    path : pathlib.Path
        The model file, named in the errors.

    Raises
    ------
    ModelFileError
        Naming the module to import for an unregistered custom activation.
    """
    names = [a["name"] for a in arch["activations"]]
    head = arch["output"]
    if head["name"] not in OUTPUTS:
        raise bad_file(
            path,
            f"unknown output head {head['name']!r:.100} (known: {', '.join(OUTPUTS)})",
            "load it with the cvx_lifted version that wrote it",
        )
    if isinstance(head["params"].get("activation"), str):
        names.append(head["params"]["activation"])
    for name in names:
        if name in ACTIVATIONS:
            continue
        try:
            found = load_activation_plugin(name)
        except ValueError as exc:
            raise ModelFileError(f"{path}: {exc}") from None
        if not found:
            raise _missing_activation(name, arch, path)


def _decode_npy(
    data: bytes, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], path: Path
) -> np.ndarray[Any, np.dtype[Any]]:
    """Decode ``.npy`` bytes whose header must announce exactly ``shape`` and ``dtype``."""
    from numpy.lib import format as npy_format

    buf = _io.BytesIO(data)
    try:
        version = npy_format.read_magic(buf)
        if version == (1, 0):
            got_shape, fortran, got_dtype = npy_format.read_array_header_1_0(buf)
        elif version in ((2, 0), (3, 0)):
            got_shape, fortran, got_dtype = npy_format.read_array_header_2_0(buf)
        else:  # pragma: no cover - read_magic only returns known versions
            raise ValueError(f"unknown .npy version {version}")
    except (ValueError, OSError, EOFError, SyntaxError, TypeError) as exc:
        raise bad_file(path, f"{name!r} is not a valid .npy array ({exc})") from None
    if tuple(got_shape) != shape:
        raise bad_file(
            path, f"{name!r} has shape {tuple(got_shape)}, the architecture needs {shape}"
        )
    if got_dtype != dtype or fortran:
        order = " (Fortran order)" if fortran else ""
        raise bad_file(path, f"{name!r} has dtype {got_dtype}{order}, the model says {dtype}")
    body = data[buf.tell() :]
    if len(body) != math.prod(shape) * dtype.itemsize:
        raise bad_file(
            path,
            f"{name!r} holds {len(body)} bytes of data, {math.prod(shape) * dtype.itemsize} "
            "expected",
        )
    return np.frombuffer(body, dtype=dtype).reshape(shape).copy()


def _read_arrays(
    zf: zipfile.ZipFile, meta: dict[str, Any], path: Path
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    if not meta["fitted"]:
        return [], []
    arch = meta["architecture"]
    dtype = np.dtype(arch["dtype"])
    n_layers = len(arch["layer_sizes"]) - 1
    found: dict[tuple[str, int], np.ndarray] = {}
    for entry in meta["arrays"]:
        shape = tuple(entry["shape"])
        limit = math.prod(shape) * dtype.itemsize + _NPY_HEADER_MAX
        data = _read_member(zf, path, entry["file"], limit)
        digest = hashlib.sha256(data).hexdigest()
        if digest != entry["sha256"]:
            raise bad_file(
                path,
                f"checksum mismatch for {entry['file']!r} (SHA-256 {digest[:12]}... instead of "
                f"{entry['sha256'][:12]}...): the array was modified or damaged after saving",
                "restore the file from a good copy or retrain the model; do not trust its "
                "predictions",
            )
        found[(entry["kind"], entry["layer"])] = _decode_npy(
            data, entry["file"], shape, dtype, path
        )
    try:
        return (
            [found[("weight", i)] for i in range(n_layers)],
            [found[("bias", i)] for i in range(n_layers)],
        )
    except KeyError as exc:
        raise bad_file(path, f"the array for {exc.args[0]} is missing") from None


def guarded(path: Path, action: str) -> contextlib.AbstractContextManager[None]:
    """Turn any unexpected exception while reading ``path`` into a ModelFileError."""

    @contextlib.contextmanager
    def guard() -> Iterator[None]:
        try:
            yield
        except (ModelFileError, FileNotFoundError):
            raise
        except Exception as exc:  # a case the checks above do not foresee: still a clean error
            raise bad_file(
                path,
                f"could not be {action} ({type(exc).__name__}: {str(exc)[:200]})",
            ) from exc

    return guard()


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
        ``fitted``, ``arrays``, ``history``, ``extra``, ``metadata_sha256``.

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        If the file is not a well-formed, intact cvx_lifted model file, or needs a newer
        cvx_lifted.
    """
    p = _resolve(path)
    with guarded(p, "read as a model file"), _open_regular(p) as fh, _open_zip(p, fh) as zf:
        return parse_metadata(_read_member(zf, p, METADATA_MEMBER, _MAX_METADATA_BYTES), p)


def read_model(path: str | os.PathLike[str]) -> ModelContents:
    """Read and check a whole model file: metadata, architecture bounds and every array.

    :func:`cvx_lifted.network.load_model` builds the network from what this returns.

    Parameters
    ----------
    path : str or os.PathLike
        Model file (``.cvxl`` is tried when the name has no extension and does not exist).

    Returns
    -------
    ModelContents

    Raises
    ------
    FileNotFoundError
        If there is no such file.
    ModelFileError
        For anything else that is wrong (see the module documentation): not a regular file,
        truncated, not a zip archive, encrypted or oddly compressed members, a missing member,
        a failed checksum (metadata or array), malformed or oversized JSON, an architecture
        out of bounds, array headers that disagree with the metadata, an unknown or newer
        format, or a custom activation that is not registered (the message names the module to
        import). Never another exception.
    """
    p = _resolve(path)
    with guarded(p, "loaded"), _open_regular(p) as fh, _open_zip(p, fh) as zf:
        meta = parse_metadata(_read_member(zf, p, METADATA_MEMBER, _MAX_METADATA_BYTES), p)
        check_registered(meta["architecture"], p)
        weights, biases = _read_arrays(zf, meta, p)
    return ModelContents(metadata=meta, weights=weights, biases=biases, path=p)
