# SPDX-License-Identifier: Apache-2.0
"""The ``cvx-lifted`` command line (also ``python -m cvx_lifted``).

Each subcommand is a pair of functions, ``_add_<name>(subparsers)`` and ``_run_<name>(args)``,
listed in :data:`COMMANDS`. Exit codes: 0 on success, 1 when a check fails (``verify``), 2 on bad
input (with a one-line reason on stderr).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Sequence

from cvx_lifted._version import __version__

__all__ = ["COMMANDS", "build_parser", "main"]

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


class UsageError(Exception):
    """Bad input from the command line: printed as one line, exit code 2."""


# ---------------------------------------------------------------------------------- list
def _add_list(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "list",
        help="show the activation catalogue",
        description="Show every registered activation: divergence, domain, closed form, "
        "convexity class and fast kernel.",
    )
    p.add_argument("--markdown", action="store_true", help="print a Markdown table")


def catalogue_rows() -> list[tuple[str, ...]]:
    """Return one row per registered activation: name, divergence, domain, closed form, ..."""
    from cvx_lifted.activations import ACTIVATIONS

    rows = []
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


def _run_list(args: argparse.Namespace) -> int:
    header = ("name", "divergence D(u, z)", "domain", "closed form", "convexity", "cone", "kernel")
    rows = catalogue_rows()
    if args.markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for r in rows:
            cells = (f"`{c}`" if i < 4 else c for i, c in enumerate(r))
            print("| " + " | ".join(cells) + " |")
        return EXIT_OK
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for r in [header, tuple("-" * w for w in widths), *rows]:
        print("  ".join(str(c).ljust(w) for c, w in zip(r, widths, strict=True)).rstrip())
    return EXIT_OK


# ---------------------------------------------------------------------------------- verify
def _add_verify(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "verify",
        help="solve each activation's convex program and compare with its closed form",
        description="Solve argmin_z D(u, z) for standard inputs (random, 0, +-1e-8, +-50, domain "
        "boundaries) with a compiled CVXPY problem and compare with the closed form. Exits with "
        "1 when any activation misses its tolerance.",
    )
    p.add_argument("names", nargs="*", metavar="NAME", help="activations (default: all)")
    p.add_argument(
        "--accuracy",
        choices=("tight", "default"),
        default="tight",
        help="solver tolerances (default: tight)",
    )
    p.add_argument("--batch-size", type=int, default=1, help="rows per compiled problem")
    p.add_argument("--json", action="store_true", help="print the reports as JSON")


def _run_verify(args: argparse.Namespace) -> int:
    import json

    from cvx_lifted.activations import get_activation
    from cvx_lifted.verify import format_reports, verify_all

    for name in args.names:
        try:
            get_activation(name)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
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
        print(f"\n{n - len(failed)}/{n} activations within tolerance.")
    return EXIT_FAILED if failed else EXIT_OK


COMMANDS: dict[
    str,
    tuple[Callable[[argparse._SubParsersAction], None], Callable[[argparse.Namespace], int]],
] = {
    "list": (_add_list, _run_list),
    "verify": (_add_verify, _run_verify),
}
"""Subcommand name -> (add its parser, run it)."""


def build_parser() -> argparse.ArgumentParser:
    """Build the ``cvx-lifted`` argument parser."""
    parser = argparse.ArgumentParser(
        prog="cvx-lifted",
        description="Lifted neural networks: activations as convex programs, trained by "
        "block-coordinate descent.",
    )
    parser.add_argument("--version", action="version", version=f"cvx-lifted {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for add, _ in COMMANDS.values():
        add(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; return the exit code.

    Parameters
    ----------
    argv : sequence of str, optional
        Arguments without the program name (default ``sys.argv[1:]``).

    Returns
    -------
    int
        0 on success, 1 when a check fails, 2 on bad input.
    """
    parser = build_parser()
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return EXIT_USAGE
    _, run = COMMANDS[args.command]
    try:
        return run(args)
    except UsageError as exc:
        print(f"cvx-lifted {args.command}: error: {exc}", file=sys.stderr)
        return EXIT_USAGE


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
