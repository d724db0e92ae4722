"""The one error of the config layer."""


class ConfigError(ValueError):
    """A config file or setting is malformed; the message names the file, the table and the key."""
