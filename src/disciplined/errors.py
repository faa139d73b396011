"""The one error type the command line turns into a one-line message."""


class DisciplinedError(Exception):
    """A problem the user can fix; the message says what was wrong and what to do."""
