# SPDX-License-Identifier: Apache-2.0
"""Where runs of the paper's experiment are kept: the run store and the output folder.

:class:`RunStore` is the append-only ``runs.jsonl`` that makes every run resumable;
:func:`fingerprint` names a protocol, so that a changed protocol is a different run;
:func:`output_folder` never lets a run write into an earlier run's folder unless it resumes it.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["RunStore", "fingerprint", "jsonable", "output_folder", "prune_empty"]


def _key(record: dict[str, Any]) -> str:
    fields = ("kind", "dataset", "architecture", "seed", "init", "lr", "fingerprint")
    return json.dumps([record.get(f) for f in fields])


class RunStore:
    """Append-only JSON-lines store of finished runs (one record per line, flushed and synced).

    A record is identified by its ``kind``, ``dataset``, ``architecture``, ``seed``, ``init``,
    ``lr`` and ``fingerprint`` fields; the last record with a given identity wins. Lines that do
    not parse (a run interrupted while writing) are ignored.

    Parameters
    ----------
    path : str or os.PathLike
        The ``.jsonl`` file (created with its folder when missing).
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        self.path = Path(path)
        self.records: dict[str, dict[str, Any]] = {}
        if self.path.exists():
            for line in self.path.read_text(encoding="utf-8").splitlines():
                try:
                    record = json.loads(line)
                except json.JSONDecodeError:
                    continue
                if isinstance(record, dict):
                    self.records[_key(record)] = record

    def get(self, **identity: Any) -> dict[str, Any] | None:
        """Return the stored record with this identity, or ``None``."""
        return self.records.get(_key(identity))

    def put(self, record: dict[str, Any]) -> None:
        """Store a finished record now (append, flush, fsync)."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps(jsonable(record), allow_nan=True)
        with self.path.open("a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())
        self.records[_key(record)] = record

    def select(self, **match: Any) -> list[dict[str, Any]]:
        """Return the records whose fields equal ``match``."""
        return [r for r in self.records.values() if all(r.get(k) == v for k, v in match.items())]


def jsonable(obj: Any) -> Any:
    """Return ``obj`` with tuples, NumPy scalars and arrays and paths as plain JSON values.

    Parameters
    ----------
    obj : Any
        Nested dicts, lists and tuples of JSON values, NumPy values and paths.

    Returns
    -------
    Any
        The same structure with lists, Python numbers and strings only.
    """
    if isinstance(obj, dict):
        return {str(k): jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [jsonable(v) for v in obj]
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    return obj


def fingerprint(payload: dict[str, Any]) -> str:
    """Return a 12-character digest of a protocol (its JSON form, keys sorted).

    Parameters
    ----------
    payload : dict
        The settings that make a run what it is.

    Returns
    -------
    str
        The first 12 hexadecimal digits of the SHA-1 of the canonical JSON.
    """
    text = json.dumps(jsonable(payload), sort_keys=True)
    return hashlib.sha1(text.encode("utf-8")).hexdigest()[:12]


def _has_results(folder: Path) -> bool:
    """Whether ``folder`` exists and holds anything (an earlier run's results)."""
    try:
        return folder.is_dir() and any(folder.iterdir())
    except OSError:
        return True


def output_folder(
    out_dir: str | os.PathLike[str] | None, default: str | os.PathLike[str], *, resume: bool
) -> Path:
    """Choose the output folder of a run: never an earlier run's folder unless ``resume``.

    Parameters
    ----------
    out_dir : str or os.PathLike or None
        The folder asked for. With results in it and ``resume=False``: an error.
    default : str or os.PathLike
        The folder used when ``out_dir`` is ``None`` (e.g. ``experiments/mnist-10k``). With
        results in it and ``resume=False``, the first of ``default-2``, ``default-3``, ... that
        does not exist yet or is empty is used instead.
    resume : bool
        Continue the run in the folder (finished runs are reused, not recomputed).

    Returns
    -------
    pathlib.Path

    Raises
    ------
    ValueError
        If ``out_dir`` holds results and ``resume`` is false.
    """
    if out_dir is not None:
        out = Path(out_dir)
        if not resume and _has_results(out):
            raise ValueError(
                f"the output folder {out} already holds results of an earlier run; pass --resume "
                "(resume=True) to continue that run, or choose another --out folder."
            )
        return out
    out = Path(default)
    k = 2
    while not resume and _has_results(out):
        out = Path(default).with_name(f"{Path(default).name}-{k}")
        k += 1
    return out


def prune_empty(folder: Path, existed: bool) -> None:
    """Remove ``folder`` (and the empty folders in it) if this run created it and wrote nothing.

    Parameters
    ----------
    folder : pathlib.Path
        The output folder of a run that failed.
    existed : bool
        Whether the folder existed before the run (then it is kept).
    """
    if existed or not folder.is_dir():
        return
    for root, dirs, files in os.walk(folder, topdown=False):
        if files:
            return
        for name in dirs:
            with contextlib.suppress(OSError):
                os.rmdir(Path(root) / name)
    with contextlib.suppress(OSError):
        folder.rmdir()
    parent = folder.parent  # experiments/ itself, when this run made it
    with contextlib.suppress(OSError):
        if parent.name == "experiments" and not any(parent.iterdir()):
            parent.rmdir()
