"""Errors raised by the k3OS config model: one user-facing line naming the file and the key path."""

from __future__ import annotations


class ConfigError(Exception):
    """A config file or cmdline is invalid; the message names the source and the key path.

    Example message: ``config.yaml: k3os.labels.region: expected a string, got list``.
    """


class ApplyError(Exception):
    """Applying a phase finished with failures; ``actions`` lists what was done, ``failures`` what was not."""

    def __init__(self, actions: list[str], failures: list[str]) -> None:
        super().__init__("; ".join(failures))
        self.actions = actions
        self.failures = failures
