# SPDX-License-Identifier: Apache-2.0
"""Run the command line: ``python -m cvx_lifted``."""

from cvx_lifted.cli import main

raise SystemExit(main())
