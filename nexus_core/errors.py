"""Errors a user can cause. The CLI prints `error: <message>` and exits 2 for these, never a traceback."""


class NexusError(Exception):
    """Base of every user-facing error: the message is one line that says what to fix."""


class ConfigError(NexusError):
    """A bad preset, config file, override or value."""


class DataError(NexusError):
    """A missing or empty corpus, an unreadable tokenizer file."""


class CheckpointError(NexusError):
    """A corrupt, truncated or mismatched checkpoint."""
