"""Error type for bad data input (missing roots, unknown classes, malformed files)."""


class DataError(ValueError):
    """Raised when data on disk does not match an accepted layout; the message names the file or value."""
