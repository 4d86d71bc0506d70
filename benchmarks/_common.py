# SPDX-License-Identifier: Apache-2.0
"""Helpers shared by the benchmark scripts (not part of the package).

* :func:`machine_info` -- CPU model, core count, load average, library versions and the BLAS
  libraries as threadpoolctl sees them, written into every results JSON;
* :func:`pin_threads` -- one BLAS thread (threadpoolctl) and one torch thread;
* :func:`timed` / :func:`median` / :func:`fmt_table` -- timing and reporting;
* :func:`write_json` -- ``benchmarks/results/<name>.json``.

Every figure a script reports as a ratio is computed from two measurements taken in the same
run, interleaved round by round, and summarised by the median over rounds: the machine is shared.
"""

from __future__ import annotations

import datetime as _dt
import gc
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
RESULTS = HERE / "results"

if str(REPO) not in sys.path:  # run from anywhere without installing the package
    sys.path.insert(0, str(REPO))


def cpu_model() -> str:
    """Return the ``model name`` line of /proc/cpuinfo (or platform.processor())."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.lower().startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
    """Return the SIMD flags of interest from /proc/cpuinfo."""
    wanted = ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512bw")
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as fh:
            for line in fh:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return [f for f in wanted if f in flags]
    except OSError:
        pass
    return []


def _version(mod: str) -> str | None:
    """Installed version from the package metadata (no import: torch alone costs ~200 MB RSS)."""
    from importlib import metadata

    try:
        return metadata.version(mod)
    except metadata.PackageNotFoundError:
        return None


def machine_info() -> dict[str, Any]:
    """Machine and library facts recorded in every results file."""
    info: dict[str, Any] = {
        "date": _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_flags": cpu_flags(),
        "n_cpus": os.cpu_count(),
        "loadavg_at_start": list(os.getloadavg()),
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "versions": {
            m: _version(m)
            for m in (
                "numpy",
                "scipy",
                "cvxpy",
                "torch",
                "osqp",
                "clarabel",
                "ecos",
                "scs",
                "threadpoolctl",
            )
        },
        "env": {
            k: os.environ.get(k)
            for k in (
                "OPENBLAS_NUM_THREADS",
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_CORETYPE",
            )
        },
    }
    try:
        import cvx_lifted

        info["versions"]["cvx_lifted"] = cvx_lifted.__version__
    except Exception:  # noqa: BLE001
        pass
    try:
        rev = subprocess.run(
            ["git", "-C", str(REPO), "rev-parse", "HEAD"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        info["git_head"] = rev.stdout.strip() or None
        diff = subprocess.run(
            ["git", "-C", str(REPO), "diff", "HEAD", "--name-only", "--", "cvx_lifted"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        )
        info["git_modified_package_files"] = diff.stdout.split()
    except (OSError, subprocess.SubprocessError):
        info["git_head"] = None
    try:
        from threadpoolctl import threadpool_info

        # library file names only: a full path would name a folder of one machine
        info["threadpools"] = [
            {**pool, "filepath": os.path.basename(str(pool.get("filepath", "")))}
            for pool in threadpool_info()
        ]
    except Exception:  # noqa: BLE001
        info["threadpools"] = None
    return info


class pin_threads:  # noqa: N801 - used like a function
    """Context manager: ``n`` BLAS/OpenMP threads (threadpoolctl) and ``n`` torch threads."""

    def __init__(self, n: int = 1) -> None:
        self.n = n
        self._limits: Any = None
        self._torch_threads: int | None = None

    def __enter__(self) -> pin_threads:
        from threadpoolctl import threadpool_limits

        self._limits = threadpool_limits(self.n)
        try:
            import torch

            self._torch_threads = torch.get_num_threads()
            torch.set_num_threads(self.n)
        except ImportError:
            pass
        return self

    def __exit__(self, *exc: object) -> None:
        if self._limits is not None:
            self._limits.restore_original_limits()
        if self._torch_threads is not None:
            import torch

            torch.set_num_threads(self._torch_threads)


def timed(fn: Callable[[], Any], *, collect: bool = True) -> tuple[float, Any]:
    """Run ``fn()`` once and return ``(seconds, result)``; a full GC runs before, untimed."""
    if collect:
        gc.collect()
    t0 = time.perf_counter()
    out = fn()
    return time.perf_counter() - t0, out


def median(xs: Sequence[float]) -> float:
    """Median, NaN for an empty sequence."""
    xs = [x for x in xs if x == x]
    return statistics.median(xs) if xs else float("nan")


def fmt_num(x: Any, digits: int = 3) -> str:
    """Compact number formatting for tables."""
    if isinstance(x, str):
        return x
    if x is None or x != x:
        return "-"
    if isinstance(x, int):
        return str(x)
    ax = abs(x)
    if ax != 0 and (ax >= 1e5 or ax < 1e-3):
        return f"{x:.{digits - 1}e}"
    return f"{x:.{digits}g}" if ax < 100 else f"{x:.0f}"


def fmt_table(headers: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    """A GitHub-flavoured Markdown table."""
    cells = [[fmt_num(c) for c in row] for row in rows]
    widths = [
        max(len(h), *(len(r[i]) for r in cells)) if cells else len(h) for i, h in enumerate(headers)
    ]
    line = "| " + " | ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)) + " |"
    sep = "|" + "|".join("-" * (w + 2) for w in widths) + "|"
    body = [
        "| " + " | ".join(c.rjust(w) for c, w in zip(r, widths, strict=True)) + " |" for r in cells
    ]
    return "\n".join([line, sep, *body])


def write_json(
    name: str, payload: dict[str, Any], out: str | os.PathLike[str] | None = None
) -> Path:
    """Write ``payload`` to ``benchmarks/results/<name>.json`` (or ``out``) and return the path."""
    path = Path(out) if out else RESULTS / f"{name}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    payload.setdefault("machine", {})["loadavg_at_end"] = list(os.getloadavg())
    tmp = path.with_suffix(path.suffix + ".tmp")
    with open(tmp, "w", encoding="utf-8") as fh:
        json.dump(payload, fh, indent=1, default=_json_default)
        fh.write("\n")
    os.replace(tmp, path)
    return path


def _json_default(obj: Any) -> Any:
    try:
        import numpy as np

        if isinstance(obj, np.generic):
            return obj.item()
        if isinstance(obj, np.ndarray):
            return obj.tolist()
    except ImportError:
        pass
    return str(obj)


def verdict(ok: bool | None) -> str:
    """``MET`` / ``MISSED`` / ``n/a``."""
    return "n/a" if ok is None else ("MET" if ok else "MISSED")
