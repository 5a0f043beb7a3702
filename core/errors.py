"""The one exception type for problems the user can fix, in the user's own terms.

Anything raised as :class:`UserError` is shown verbatim: in the app as an ``st.error``, in the
CLI as one ``error: …`` line with exit status 2.  Messages name the column, value or setting at
fault and say what was expected.  A setting is named with :func:`setting`: core knows it by one
key (``budget``, ``clip``…), and each interface spells it as its users know it — the CLI as its
flag (``--budget``), the app as the widget's label — through :meth:`UserError.spelled`.
"""

from __future__ import annotations

import re
from typing import Callable, Mapping

_MARK = "\x1f"
_SETTING = re.compile(f"{_MARK}([a-z_]+){_MARK}")

# how a setting reads where no interface spells it (a message printed as it is)
PLAIN = {"cpi_max": "the CPI limit", "psi_bins": "the number of PSI bins", "min_propensity": "the propensity floor",
         "n": "the number of customers", "mde": "the effect to detect", "srm_drop": "the SRM drop",
         "action_cost": "the cost per arm", "spark_master": "the Spark master", "model_out": "the model file",
         "ranking_scorer": "the ranking scorer", "time": "the day column", "id": "the id column",
         "by": "the group column", "expected": "the intended split", "baseline_sd": "the outcome's standard deviation",
         "baseline_rate": "the baseline conversion rate", "fit_engine": "the fitting backend"}


def setting(key: str) -> str:
    """A setting named in a message (``key`` as core knows it), spelled by each interface."""
    return f"{_MARK}{key}{_MARK}"


def cli_spelling(key: str) -> str:
    """A setting as the CLI spells it: its flag."""
    return "--" + key.replace("_", "-")


def plain_spelling(key: str) -> str:
    """A setting in plain words."""
    return PLAIN.get(key, key.replace("_", " "))


def spell(text: str, spelling: Callable[[str], str] | Mapping[str, str] | None = None) -> str:
    """``text`` with every :func:`setting` spelled by ``spelling`` (a function or a mapping of
    keys; keys it lacks read plainly)."""
    if isinstance(spelling, Mapping):
        table = spelling
        spelling = lambda key: table.get(key) or plain_spelling(key)  # noqa: E731
    return _SETTING.sub(lambda m: (spelling or plain_spelling)(m.group(1)), text)


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

    def spelled(self, spelling: Callable[[str], str] | Mapping[str, str] | None = None) -> "UserError":
        """The same error with its settings spelled as an interface spells them."""
        return UserError(spell(self.summary, spelling), [spell(p, spelling) for p in self.problems])

    def __str__(self) -> str:
        return spell(super().__str__())
