"""User-facing errors: they name the file and the field, and the CLI prints them without a traceback."""

from __future__ import annotations


class DtbError(Exception):
    """A mistake in the user's input (config, data file, command line)."""


class ConfigError(DtbError):
    """A config value is missing, of the wrong type or unit, or inconsistent.

    ``source`` is the file (or "<dict>"), ``field`` a dotted path such as
    ``projections[2].delay``.
    """

    def __init__(self, source: str, field: str, message: str):
        self.source = source
        self.field = field
        self.message = message
        where = f"{source}: {field}" if field else source
        super().__init__(f"{where}: {message}")
