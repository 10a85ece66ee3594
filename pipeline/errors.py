"""Errors a user can act on: printed as one line, exit code 2, no traceback."""


class UserError(Exception):
    """Bad input: a missing file, an unknown option value, a config that contradicts itself."""


class NotAvailable(UserError):
    """A feature that cannot work here: the message names the missing piece."""


class BuildFailed(Exception):
    """The compiler failed or crashed on an input it accepted (a bug of ours or TVM's, not the user's):
    printed as one line, exit code 1."""

    def __init__(self, message: str, built: tuple = ()):
        super().__init__(message)
        self.built = built  # what a multi-device compile did build before or after the failure
