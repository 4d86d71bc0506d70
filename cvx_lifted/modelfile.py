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

import atexit
import contextlib
import hashlib
import io as _io
import json
import math
import os
import re
import signal
import stat
import tempfile
import threading
import zipfile
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

import numpy as np

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

FORMAT_NAME = "cvx_lifted.model"
"""Value of the ``"format"`` key of ``metadata.json``."""

FORMAT_VERSION = 2
"""Model-file format version this package writes and reads (2: checksummed metadata)."""

DEFAULT_SUFFIX = ".cvxl"
"""Extension appended by :func:`save_network` to a path that has none."""

MAX_LAYERS = 1024
"""Most weight layers a model file may declare."""

MAX_LAYER_WIDTH = 2**24
"""Widest layer a model file may declare (16,777,216 units)."""

MAX_PARAMETERS = 2**31
"""Most weights and biases a model file may declare in all (16 GiB in float64)."""

METADATA_MEMBER = "metadata.json"
_DIGEST_KEY = "metadata_sha256"
_MAX_METADATA_BYTES = 64 * 2**20  # a history of many thousand sweeps is still far below this
_MAX_JSON_DEPTH = 64
_NPY_HEADER_MAX = 4096  # np.save writes 128-byte headers for these arrays
_ZIP_DATE = (1980, 1, 1, 0, 0, 0)  # fixed timestamp: identical networks give identical files
_HEX64 = re.compile(r"[0-9a-f]{64}")


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


def metadata_digest(metadata: Mapping[str, Any]) -> str:
    """Return the SHA-256 of a model file's metadata, as stored under ``metadata_sha256``.

    The digest covers the canonical JSON form of every key except ``metadata_sha256`` itself:
    keys sorted, no whitespace, non-ASCII characters escaped.

    Parameters
    ----------
    metadata : mapping
        The parsed ``metadata.json``.

    Returns
    -------
    str
        64 lowercase hexadecimal digits.
    """
    body = {k: v for k, v in metadata.items() if k != _DIGEST_KEY}
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    return hashlib.sha256(text.encode("ascii")).hexdigest()


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


# -------------------------------------------------------------- temporary-file bookkeeping
_PENDING: set[str] = set()  # temporary files being written by this process
_PENDING_LOCK = threading.Lock()


def _remove_pending() -> None:
    """Remove the temporary files of saves still in progress (atexit and signal handlers)."""
    for name in list(_PENDING):
        with contextlib.suppress(OSError):
            os.unlink(name)
        _PENDING.discard(name)


atexit.register(_remove_pending)

_CLEANUP_SIGNALS = tuple(
    getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)
)


def _terminate_after_cleanup(signum: int, frame: Any) -> None:  # pragma: no cover - subprocess
    """Remove pending temporary files, then die of the signal as if no handler was installed."""
    _remove_pending()
    signal.signal(signum, signal.SIG_DFL)
    os.kill(os.getpid(), signum)


@contextlib.contextmanager
def _cleanup_on_signals() -> Iterator[None]:
    """While saving, make SIGTERM/SIGHUP remove the temporary file before terminating.

    Only signals whose handler is the default (terminate) are taken over, and only in the main
    thread (where Python runs signal handlers); the previous handlers are restored afterwards.
    """
    previous: dict[int, Any] = {}
    if threading.current_thread() is threading.main_thread():
        for signum in _CLEANUP_SIGNALS:
            with contextlib.suppress(ValueError, OSError):
                if signal.getsignal(signum) == signal.SIG_DFL:
                    previous[signum] = signal.signal(signum, _terminate_after_cleanup)
    try:
        yield
    finally:
        for signum, handler in previous.items():
            with contextlib.suppress(ValueError, OSError):
                signal.signal(signum, handler)


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError, ValueError):
        return True  # exists but not ours, or not a pid: leave its files alone
    return True


def _remove_stale_temporaries(target: Path) -> None:
    """Remove ``.NAME.PID.*.tmp`` files left next to ``target`` by processes that are gone."""
    pattern = re.compile(re.escape(f".{target.name}.") + r"(\d+)\.[^/]*\.tmp\Z")
    try:
        names = os.listdir(target.parent)
    except OSError:
        return
    for name in names:
        match = pattern.match(name)
        if match is None:
            continue
        pid = int(match.group(1))
        if pid != os.getpid() and not _pid_alive(pid):
            with contextlib.suppress(OSError):
                os.unlink(target.parent / name)


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
    data = model_bytes(network, extra)
    if target.exists():
        mode = target.stat().st_mode & 0o777
    else:
        mode = 0o666 & ~_current_umask()
    _remove_stale_temporaries(target)
    with _cleanup_on_signals():
        fd, tmp_name = tempfile.mkstemp(
            dir=folder, prefix=f".{target.name}.{os.getpid()}.", suffix=".tmp"
        )
        with _PENDING_LOCK:
            _PENDING.add(tmp_name)
        try:
            with os.fdopen(fd, "wb") as fh:
                fh.write(data)
                fh.flush()
                os.fsync(fh.fileno())
            os.chmod(tmp_name, mode)
            os.replace(tmp_name, target)
        finally:
            with _PENDING_LOCK:
                _PENDING.discard(tmp_name)
            with contextlib.suppress(OSError):
                os.unlink(tmp_name)  # only still there when the replace did not happen
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


# =========================================================================================
# Loading
# =========================================================================================
def bad_file(path: Path, what: str, todo: str = "") -> ModelFileError:
    todo = todo or "re-save the model from the network that produced it, or retrain it"
    return ModelFileError(f"{path}: {what}; {todo}.")


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


def _json_depth(raw: bytes) -> int:
    """Return the nesting depth of a JSON text (brackets outside strings), without parsing it."""
    stripped = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", raw)
    delta = np.frombuffer(stripped, dtype=np.uint8)
    steps = (np.isin(delta, (ord("["), ord("{")))).astype(np.int64)
    steps -= np.isin(delta, (ord("]"), ord("}"))).astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def _parse_metadata(raw: bytes, path: Path) -> dict[str, Any]:
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise bad_file(path, f"{METADATA_MEMBER} is not UTF-8 text ({exc})") from None
    depth = _json_depth(raw)
    if depth > _MAX_JSON_DEPTH:
        raise bad_file(
            path,
            f"{METADATA_MEMBER} is nested {depth} levels deep, more than the "
            f"{_MAX_JSON_DEPTH} a model file ever needs (edited or foreign file)",
        )
    try:
        meta = json.loads(text)
    except (ValueError, RecursionError) as exc:  # JSONDecodeError, too many digits
        raise bad_file(path, f"{METADATA_MEMBER} is not valid JSON ({exc})") from None
    if not isinstance(meta, dict):
        raise bad_file(
            path, f"{METADATA_MEMBER} must hold a JSON object, got {type(meta).__name__}"
        )
    fmt = meta.get("format")
    if fmt != FORMAT_NAME:
        raise bad_file(
            path,
            f"is not a cvx_lifted model file ({METADATA_MEMBER} says format {fmt!r}, expected "
            f"{FORMAT_NAME!r})",
            "load it with the tool that wrote it",
        )
    version = meta.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise bad_file(path, f"invalid format_version {version!r} in {METADATA_MEMBER}")
    if version > FORMAT_VERSION:
        writer = meta.get("cvx_lifted_version", "a newer version")
        raise bad_file(
            path,
            f"was written in model-file format version {version} (by cvx_lifted {writer}), but "
            f"this cvx_lifted {__version__} reads format version {FORMAT_VERSION}",
            "upgrade cvx_lifted (pip install --upgrade cvx-lifted) to load it",
        )
    if version < FORMAT_VERSION:
        raise bad_file(
            path,
            f"is in model-file format version {version}, written by a development version of "
            f"cvx_lifted before metadata checksums; this version reads format version "
            f"{FORMAT_VERSION} only",
            "retrain the model (or load it with the version that wrote it and save it again "
            "with this one)",
        )
    stored = meta.get(_DIGEST_KEY)
    if not isinstance(stored, str) or _HEX64.fullmatch(stored) is None:
        raise bad_file(path, f"{METADATA_MEMBER} has no valid {_DIGEST_KEY!r} (edited file)")
    digest = metadata_digest(meta)
    if digest != stored:
        raise bad_file(
            path,
            f"checksum mismatch for {METADATA_MEMBER} (SHA-256 {digest[:12]}... instead of "
            f"{stored[:12]}...): the architecture, settings or metadata were modified or damaged "
            "after saving",
            "restore the file from a good copy or retrain the model; do not trust its predictions",
        )
    _check_metadata(meta, path)
    return meta


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_metadata(meta: dict[str, Any], path: Path) -> None:
    """Check types, sizes and bounds of everything loading relies on (nothing is allocated)."""

    def need(ok: bool, what: str) -> None:
        if not ok:
            raise bad_file(path, f"malformed {METADATA_MEMBER}: {what}")

    arch = meta.get("architecture")
    need(isinstance(arch, dict), "no 'architecture' object")
    sizes = arch.get("layer_sizes")
    need(
        isinstance(sizes, list) and 2 <= len(sizes) <= MAX_LAYERS + 1,
        f"'layer_sizes' must list 2 to {MAX_LAYERS + 1} positive integers, got {sizes!r:.200}",
    )
    need(
        all(_is_int(s) and 1 <= s <= MAX_LAYER_WIDTH for s in sizes),
        f"'layer_sizes' must hold integers from 1 to {MAX_LAYER_WIDTH}, got {sizes!r:.200}",
    )
    n_params = sum(a * b + b for a, b in zip(sizes[:-1], sizes[1:], strict=False))
    need(
        n_params <= MAX_PARAMETERS,
        f"the architecture {sizes} has {n_params} weights, more than the {MAX_PARAMETERS} a "
        "model file may hold",
    )
    n_layers = len(sizes) - 1
    acts = arch.get("activations")
    need(
        isinstance(acts, list)
        and len(acts) == n_layers - 1
        and all(
            isinstance(a, dict)
            and isinstance(a.get("name"), str)
            and isinstance(a.get("params"), dict)
            for a in acts
        ),
        f"'activations' must list one {{name, params}} object per hidden layer, got {acts!r:.200}",
    )
    out = arch.get("output")
    need(
        isinstance(out, dict)
        and isinstance(out.get("name"), str)
        and isinstance(out.get("params"), dict),
        f"'output' must be a {{name, params}} object, got {out!r:.200}",
    )
    for key in ("lam", "rho"):
        val = arch.get(key)
        need(
            isinstance(val, list) and len(val) == n_layers and all(_is_number(v) for v in val),
            f"'{key}' must be a list of {n_layers} numbers, got {val!r:.200}",
        )
    need(
        arch.get("penalty", "l2") in ("l2", "l1", "custom"),
        f"unknown penalty {arch.get('penalty')!r:.100}",
    )
    need(arch.get("dtype") in ("float32", "float64"), f"unsupported dtype {arch.get('dtype')!r}")
    modules = arch.get("modules", {})
    need(
        isinstance(modules, dict) and all(isinstance(v, str) for v in modules.values()),
        "'modules' must map activation names to module names",
    )
    fitted = meta.get("fitted")
    need(isinstance(fitted, bool), "'fitted' must be true or false")
    arrays = meta.get("arrays")
    need(isinstance(arrays, list), "no 'arrays' list")
    expected = {}
    for layer in range(n_layers):
        shape = [sizes[layer + 1], sizes[layer]]
        expected[("weight", layer)] = (f"W{layer}", shape)
        expected[("bias", layer)] = (f"b{layer}", shape[:1])
    seen = set()
    for entry in arrays:
        need(
            isinstance(entry, dict)
            and entry.get("kind") in ("weight", "bias")
            and _is_int(entry.get("layer"))
            and (entry["kind"], entry["layer"]) in expected,
            f"bad array entry {entry!r:.200}",
        )
        key = (entry["kind"], entry["layer"])
        name, shape = expected[key]
        need(key not in seen, f"array {name!r} is listed twice")
        seen.add(key)
        need(
            entry.get("name") == name and entry.get("file") == f"{name}.npy",
            f"array entry for {name!r} names {entry.get('file')!r:.100}, expected '{name}.npy'",
        )
        if entry.get("shape") != shape:
            raise bad_file(
                path,
                f"array {name + '.npy'!r} is listed with shape {entry.get('shape')!r:.100}, but "
                f"the architecture {sizes} needs {tuple(shape)} (edited or mixed-up file)",
            )
        need(
            entry.get("dtype") == arch["dtype"],
            f"array {name!r} has dtype {entry.get('dtype')!r:.50}, the model says {arch['dtype']}",
        )
        need(
            isinstance(entry.get("sha256"), str) and _HEX64.fullmatch(entry["sha256"]),
            f"array {name!r} has no valid sha256",
        )
    if fitted:
        missing = [expected[k][0] for k in expected if k not in seen]
        need(not missing, f"the model is marked fitted but lacks the arrays {', '.join(missing)}")
    else:
        need(not arrays, "the model is marked unfitted but lists arrays")
    history = meta.get("history")
    need(history is None or isinstance(history, dict), "bad 'history'")
    if isinstance(history, dict):
        for key, value in history.items():
            want = dict if key == "paths" else list
            need(isinstance(value, want), f"history field {key!r:.50} must be a {want.__name__}")
    need(isinstance(meta.get("extra", {}), dict), "'extra' must be an object")


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


def _decode_npy(data: bytes, name: str, shape: tuple[int, ...], dtype: np.dtype[Any], path: Path):
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
        return _parse_metadata(_read_member(zf, p, METADATA_MEMBER, _MAX_METADATA_BYTES), p)


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
        meta = _parse_metadata(_read_member(zf, p, METADATA_MEMBER, _MAX_METADATA_BYTES), p)
        check_registered(meta["architecture"], p)
        weights, biases = _read_arrays(zf, meta, p)
    return ModelContents(metadata=meta, weights=weights, biases=biases, path=p)
