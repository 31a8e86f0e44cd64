"""The `izgens` command: operations on the database and the dev stack.

With DATABASE_URL unset, every command talks to the dev stack's database (starting it if
needed), so `izgens credits show` next to a running `make dev` sees what the console shows;
`izgens cleanup` then also uses the dev stack's settings (its simulators, its bucket).
Exit codes: 0 ok, 1 the operation was refused (or a cleanup job failed), 2 usage or
environment error. Results go to stdout as JSON; progress goes to stderr.

The files: `context` (which database and settings a command works on, output), `commands`
(one function per command), `parser` (the arguments and `main`).
"""

from __future__ import annotations

from izgens.cli.context import HTTP_FUNCTIONS
from izgens.cli.parser import build_parser, main

__all__ = ["HTTP_FUNCTIONS", "build_parser", "main"]
