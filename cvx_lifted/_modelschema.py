# SPDX-License-Identifier: Apache-2.0
"""The schema of a model file's ``metadata.json``.

Constants, the checksum, and the checks run before anything is allocated
(:mod:`cvx_lifted.modelfile` re-exports the public names).
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from cvx_lifted._version import __version__
from cvx_lifted.exceptions import ModelFileError

__all__ = [
    "DEFAULT_SUFFIX",
    "FORMAT_NAME",
    "FORMAT_VERSION",
    "MAX_LAYERS",
    "MAX_LAYER_WIDTH",
    "MAX_PARAMETERS",
    "METADATA_MEMBER",
    "bad_file",
    "metadata_digest",
    "parse_metadata",
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


def bad_file(path: Path, what: str, todo: str = "") -> ModelFileError:
    todo = todo or "re-save the model from the network that produced it, or retrain it"
    return ModelFileError(f"{path}: {what}; {todo}.")


def _json_depth(raw: bytes) -> int:
    """Return the nesting depth of a JSON text (brackets outside strings), without parsing it."""
    stripped = re.sub(rb'"(?:[^"\\]|\\.)*"', b"", raw)
    delta = np.frombuffer(stripped, dtype=np.uint8)
    steps = (np.isin(delta, (ord("["), ord("{")))).astype(np.int64)
    steps -= np.isin(delta, (ord("]"), ord("}"))).astype(np.int64)
    return int(np.cumsum(steps).max(initial=0))


def parse_metadata(raw: bytes, path: Path) -> dict[str, Any]:
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

    arch: Any = meta.get("architecture")
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
    for field in ("lam", "rho"):
        val = arch.get(field)
        need(
            isinstance(val, list) and len(val) == n_layers and all(_is_number(v) for v in val),
            f"'{field}' must be a list of {n_layers} numbers, got {val!r:.200}",
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
    arrays: Any = meta.get("arrays")
    need(isinstance(arrays, list), "no 'arrays' list")
    expected: dict[tuple[str, int], tuple[str, list[int]]] = {}
    for layer in range(n_layers):
        shape = [sizes[layer + 1], sizes[layer]]
        expected[("weight", layer)] = (f"W{layer}", shape)
        expected[("bias", layer)] = (f"b{layer}", shape[:1])
    seen: set[tuple[str, int]] = set()
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
            isinstance(entry.get("sha256"), str) and _HEX64.fullmatch(entry["sha256"]) is not None,
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
