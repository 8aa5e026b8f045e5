"""Errors the CLI turns into one-line messages and exit codes."""

from __future__ import annotations

EXIT_OK = 0
EXIT_PARTIAL = 1
EXIT_USAGE = 2
EXIT_INTERRUPTED = 130


class CurateError(Exception):
    """A problem the user can fix: printed as one line, never as a traceback."""

    exit_code = EXIT_USAGE

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.message = message
        self.hint = hint

    def __str__(self) -> str:
        return f"{self.message} ({self.hint})" if self.hint else self.message


class Interrupted(CurateError):
    """Ctrl-C, with a command-specific way to resume in the message."""

    exit_code = EXIT_INTERRUPTED


class InputError(CurateError):
    """Bad input: missing paths, malformed files, unknown names. Nothing was written."""


class NetworkError(CurateError):
    """A download failed or no network is reachable."""


class CredentialsError(CurateError):
    """Credentials for a remote service are missing or rejected."""


class UnreadableImage(Exception):
    """One image cannot be decoded. Never fatal: callers record `reason` and go on."""

    def __init__(self, reason: str, detail: str = ""):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail
