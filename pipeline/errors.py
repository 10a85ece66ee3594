"""Errors a user can act on: printed as one line, exit code 2, no traceback."""


class UserError(Exception):
    """Bad input: a missing file, an unknown option value, a config that contradicts itself."""


class NotAvailable(UserError):
    """A feature that cannot work here: the message names the missing piece."""
