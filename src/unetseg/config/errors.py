"""The error raised for a wrong configuration key or value."""


class ConfigError(ValueError):
    """A configuration key or value is wrong; the message names it and says what was expected."""
