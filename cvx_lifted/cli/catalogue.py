# SPDX-License-Identifier: Apache-2.0
"""``cvx-lifted list`` and ``cvx-lifted verify``: the activation catalogue, and its checks.

``list`` prints every registered activation (those of installed packages too); ``verify`` solves
each activation's convex program and compares it with the closed form.
"""

from __future__ import annotations

import argparse
import json
import sys

from cvx_lifted.activations import ACTIVATIONS
from cvx_lifted.cli._common import (
    EXIT_FAILED,
    EXIT_OK,
    SubParsers,
    UsageError,
    one_line,
    positive_int,
)
from cvx_lifted.plugins import load_activation_plugins, resolve_activation
from cvx_lifted.verify import format_reports, verify_all

__all__ = ["add_list", "add_verify", "catalogue_rows", "run_list", "run_verify"]


def add_list(sub: SubParsers) -> None:
    """Add the ``list`` subcommand."""
    p = sub.add_parser(
        "list",
        help="show the activation catalogue",
        description="Show every registered activation: divergence, domain, closed form, "
        "convexity class and fast kernel.",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")


def catalogue_rows() -> list[tuple[str, ...]]:
    """Return one row per registered activation: name, divergence, domain, closed form, ..."""
    rows: list[tuple[str, ...]] = []
    for name, cls in ACTIVATIONS.items():
        rows.append(
            (
                name,
                cls.divergence_text,
                cls.domain_text,
                cls.formula,
                str(cls.convexity),
                str(cls.cone),
                cls.kernel or "-",
            )
        )
    return rows


def run_list(args: argparse.Namespace) -> int:
    """Run ``cvx-lifted list``; return the exit code."""
    try:
        load_activation_plugins()  # list what installed packages provide too
    except ValueError as exc:
        print(f"cvx-lifted list: warning: {one_line(exc)}", file=sys.stderr)
    header = ("name", "divergence D(u, z)", "domain", "closed form", "convexity", "cone", "kernel")
    rows = catalogue_rows()
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for r in rows:
            # a pipe splits a table cell even inside backticks in GitHub Markdown: escape it
            cells = ((f"`{c}`" if i < 4 else c).replace("|", "\\|") for i, c in enumerate(r))
            print("| " + " | ".join(cells) + " |")
        return EXIT_OK
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


def add_verify(sub: SubParsers) -> None:
    """Add the ``verify`` subcommand."""
    p = sub.add_parser(
        "verify",
        help="solve each activation's convex program and compare with its closed form",
        description="Solve argmin_z D(u, z) for standard inputs (random rows, a log-spaced grid "
        "of +-1e-6 to +-1e3, and 0, +-1e-8, +-50, domain boundaries) with a compiled CVXPY "
        "problem and compare with the closed form. Exits with 1 when any activation misses its "
        "tolerance, and with 2 when a named activation has a closed form only (nothing to "
        "verify).",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="activations (default: all)")
    p.add_argument(
        "--accuracy",
        choices=("tight", "default"),
        default="tight",
        help="solver tolerances (default: tight)",
    )
    p.add_argument("--batch-size", type=positive_int, default=1, help="rows per compiled problem")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")


def run_verify(args: argparse.Namespace) -> int:
    """Run ``cvx-lifted verify``; return 1 when an activation misses its tolerance."""
    closed_form_only = []
    for name in args.names:
        try:
            act = resolve_activation(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        if not act.has_program:
            closed_form_only.append(act.name)
    if closed_form_only:
        names = ", ".join(closed_form_only)
        raise UsageError(
            f"{names} {'has' if len(closed_form_only) == 1 else 'have'} a closed form only (no "
            "convex program), so there is nothing to verify it against; 'cvx-lifted list' shows "
            "which activations have a program."
        )
    if args.batch_size < 1:
        raise UsageError(f"--batch-size must be a positive integer, got {args.batch_size}.")
    reports = verify_all(args.names or None, accuracy=args.accuracy, batch_size=args.batch_size)
    if args.json:
        print(
            json.dumps(
                [
                    {"activation": r[0], "skipped": r[1]} if isinstance(r, tuple) else r.as_dict()
                    for r in reports
                ],
                indent=2,
            )
        )
    else:
        print(format_reports(reports))
    failed = [r for r in reports if not isinstance(r, tuple) and not r.passed]
    if not args.json:
        n = sum(not isinstance(r, tuple) for r in reports)
        skipped = [r[0] for r in reports if isinstance(r, tuple)]
        note = (
            f" ({len(skipped)} skipped, closed form only: {', '.join(skipped)})" if skipped else ""
        )
        print(f"\n{n - len(failed)}/{n} activations within tolerance{note}.")
    return EXIT_FAILED if failed else EXIT_OK
