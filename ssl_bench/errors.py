"""Errors that the command line turns into a one-line message instead of a traceback."""


class BenchError(Exception):
    """Base class: a problem the user can fix (bad flag, bad file, bad recipe)."""


class DataError(BenchError):
    """A data file is missing, unreadable or malformed. The message names the file."""


class RecipeError(BenchError):
    """A recipe or flag is invalid. The message names the recipe key or flag."""


class CheckpointError(BenchError):
    """Weights do not fit the model they are loaded into, or a checkpoint is unreadable."""
