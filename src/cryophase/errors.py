"""Errors a user can fix. The CLI prints them as one line, without a traceback."""

from cryophase.io.mrc import MrcError
from cryophase.io.star import StarError


class CryophaseError(ValueError):
    """A problem with the user's input or settings, with a message that names the file and the problem."""


USER_ERRORS = (CryophaseError, MrcError, StarError, FileNotFoundError, PermissionError)
