"""Exceptions that carry a one-line message for the user."""


class NormlintError(Exception):
    """A user mistake (bad flag, bad config, bad target). The CLI prints it on one line, exit 2."""


class ConfigError(NormlintError):
    pass


class AuditError(Exception):
    """The audited model failed; raised from the model's own exception after cleaning up."""
