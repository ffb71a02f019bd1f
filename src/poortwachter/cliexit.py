"""How CLI commands end: a refusal or bad input becomes one message on stderr and an exit status."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable

EXIT_OK, EXIT_REFUSED, EXIT_INVALID = 0, 1, 2

Command = Callable[[argparse.Namespace], int]


class CliExit(Exception):
    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


def guarded(func: Command, after: Callable[[], None] | None = None) -> Command:
    """Run a command; a CliExit prints its (Dutch / English) message and returns its status."""
    def run(args: argparse.Namespace) -> int:
        try:
            return func(args)
        except CliExit as exc:
            print(str(exc), file=sys.stderr)
            return exc.status
        finally:
            if after is not None:
                after()
    run.__name__ = func.__name__
    return run
