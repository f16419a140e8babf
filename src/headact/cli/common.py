"""What every command shares: turning user errors into one clean line, logging, progress."""

from __future__ import annotations

import functools
import logging
import sys
from collections.abc import Callable
from typing import Any, TypeVar

import click

from headact.errors import HeadactError

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(func: F) -> F:
    """Run a command body; a HeadactError becomes one line on stderr and exit code 1."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except HeadactError as exc:
            error = click.ClickException(str(exc))
            error.exit_code = getattr(exc, "exit_code", 1)
            raise error from None

    return wrapper  # type: ignore[return-value]


def configure_logging(verbosity: int) -> None:
    """-v shows info, -vv debug; the default shows warnings only."""
    level = logging.WARNING if verbosity <= 0 else logging.INFO if verbosity == 1 else logging.DEBUG
    logging.basicConfig(
        level=level, format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr
    )
    logging.getLogger("headact").setLevel(level)


def progress_enabled(quiet: bool) -> bool:
    """Progress bars only for a person at a terminal, and never with --quiet."""
    return not quiet and sys.stderr.isatty()
