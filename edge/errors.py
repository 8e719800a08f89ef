"""Errors the user can fix, and their exit codes (torch-free; imported by every layer, imports nothing).

Each kind is printed by the CLI as one line on stderr. Exit codes (the README's table):

==========  =====================================================================================
0           ok (all sources ended, ``--max-frames`` reached, or a clean stop by SIGTERM/SIGHUP)
1           a benchmark row or a calibration failed its tolerance
2           bad input: missing/corrupt file, foreign or truncated engine, missing plugin, invalid box,
            bad output location, a live source that never opened, a write that failed (disk full)
130         interrupted by SIGINT after a clean stop (outputs finalised)
==========  =====================================================================================
"""
from __future__ import annotations

EXIT_OK, EXIT_TOLERANCE, EXIT_USER, EXIT_INTERRUPTED = 0, 1, 2, 130


class UserError(Exception):
    """Bad input from the user: printed as one line, exit code 2."""

    exit_code = EXIT_USER


class OutputError(UserError):
    """Writing an output failed (disk full, I/O error, read-only): the run stops; what is complete is kept."""


class SourceError(UserError):
    """A source gave nothing: a live source that never opened, or gave up reconnecting before any frame."""
