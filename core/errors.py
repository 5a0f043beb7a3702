"""The one exception type for problems the user can fix.

Anything raised as :class:`UserError` is shown verbatim: in the app as an ``st.error``,
in the CLI as one ``error: …`` line with exit status 2.  Messages name the column, value or
option at fault and say what was expected.
"""

from __future__ import annotations


class UserError(ValueError):
    """A user-facing error: bad file, unknown column, bad option value.

    Parameters
    ----------
    message : str
        Summary sentence.  When ``problems`` is given, the summary is followed by every
        problem, so validation can report all of them at once.
    problems : list of str, optional
        Individual problems, each naming the column or value at fault.
    """

    def __init__(self, message: str, problems: list[str] | None = None):
        self.problems = list(problems or [])
        self.summary = message
        if self.problems:
            message = message + ": " + "; ".join(self.problems)
        super().__init__(message)
