"""User errors and the one way they end a command: one line on stderr, no traceback.

Imports nothing of ours, so every layer can raise these.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager
from typing import Iterator, NoReturn


class UserError(Exception):
    """An error the user can fix; the entry point prints it as one line, no traceback."""


class ConfigError(UserError):
    """A misspelt key, a wrong type or an out-of-range value in the configuration."""


class RunFailed(UserError):
    """A run that started, then stopped for a reason the user can act on (e.g. a NaN loss): one
    line and exit status 1, and its directory (logs, curves, earlier checkpoints) is kept."""


class ToolError(UserError):
    """A user error of this tool, with its exit status."""

    def __init__(self, message: str, code: int = 1):
        super().__init__(message)
        self.code = code


def first_line(e: BaseException) -> str:
    """An exception's message as one line: its first non-empty line, else its type's name."""
    lines = [line.strip() for line in str(e).splitlines() if line.strip()]
    return lines[0] if lines else type(e).__name__


def fail(message: str, code: int = 2, prog: str = "inktrace_train") -> NoReturn:
    """Print ``<prog>: error: <message>`` on stderr and exit with ``code``."""
    print(f"{prog}: error: {message}", file=sys.stderr)
    raise SystemExit(code)


def os_error_line(e: OSError) -> str:
    """An OSError as one line that names its file."""
    return f"{e.filename}: {e.strerror or e}" if e.filename else first_line(e)


@contextmanager
def reported(prog: str, code: int = 1) -> Iterator[None]:
    """The body of a command-line tool: every error the user can act on ends it as one line
    ``<prog>: error: ...`` and an exit status (a :class:`ToolError`'s own, else ``code``), with no
    traceback. A reader that went away (``tool | head``) ends it quietly."""
    try:
        yield
    except ToolError as e:
        fail(str(e), e.code, prog=prog)
    except UserError as e:
        fail(str(e), code, prog=prog)
    except BrokenPipeError:  # the reader has gone, not an error of ours; no second error on exit
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        raise SystemExit(1) from None
    except OSError as e:
        fail(os_error_line(e), code, prog=prog)
