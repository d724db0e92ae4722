"""The one error type of the mixture-scoring tools."""


class InfluenceError(ValueError):
    """Bad input to `mlr1 mix score` / `mlr1 mix filter`; the message names the file, flag or source."""
