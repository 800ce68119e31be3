"""The one exception type that means "the user asked for something wrong"."""


class UserError(Exception):
    """Bad input: the CLI prints the message as one line and exits with status 2.

    The message says what is wrong and how to fix it; no traceback is shown.
    """
