"""Errors that speak to the user.

A :class:`UserError` is an expected failure (bad config, missing model, wrong
checksum, no network).  Rule scripts print its message, without a traceback, to
the rule's log and to stderr, and exit with status 1.
"""


class UserError(RuntimeError):
    """An expected failure whose message says what went wrong and what to do."""


class ConfigError(UserError):
    """The configuration is invalid; the message names the key."""

    def __init__(self, key: str, message: str):
        self.key = key
        super().__init__(f"config error at '{key}': {message}")


def first_line(e: Exception) -> str:
    """The exception's type and the first line of its message, for a one-line report."""
    text = str(e).strip()
    return f"{type(e).__name__}: {text.splitlines()[0] if text else ''}"
