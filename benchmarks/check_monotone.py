# SPDX-License-Identifier: Apache-2.0
"""Randomized audit: in N small fits over the catalogue, heads and backends, does any block raise
the lifted objective beyond 1e-9 (relative) without being rejected and recorded?

Each fit is :func:`cvx_lifted.testing.random_fit_audit` with seeds 0..N-1 (1-3 hidden layers,
mixed activations, a random head and backend, ``track_blocks=True``). Prints every fit with a
violation or an error and a summary; writes ``benchmarks/results/check_monotone.json``.
The test suite runs 16 of these fits (``tests/test_blocks.py``).

    PYTHONPATH=. python benchmarks/check_monotone.py [--fits 200]
"""

from __future__ import annotations

import argparse
import time
from typing import Any

from _common import machine_info, write_json

from cvx_lifted.testing import random_fit_audit


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--fits", type=int, default=200)
    ap.add_argument("--sweeps", type=int, default=3)
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    reports = [random_fit_audit(seed, sweeps=args.sweeps) for seed in range(args.fits)]
    for seed, rep in enumerate(reports):
        if rep["error"] or rep["violations"]:
            print(seed, rep["setting"], rep["error"], rep["violations"])
    summary = {
        "fits": args.fits,
        "fits_with_violations": sum(bool(r["violations"]) for r in reports),
        "fits_with_errors": sum(bool(r["error"]) for r in reports),
        "rejected_blocks": sum(int(r.get("rejected", 0)) for r in reports),  # type: ignore[call-overload]
        "retried_blocks": sum(int(r.get("retried", 0)) for r in reports),  # type: ignore[call-overload]
        "seconds": time.perf_counter() - t0,
    }
    print(summary)
    write_json("check_monotone", {"machine": machine_info(), "summary": summary, "fits": reports})
    return summary


if __name__ == "__main__":
    main()
