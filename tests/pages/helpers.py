"""Shared steps of the page tests: a fresh app, readable element text, a quick model fit."""

from streamlit.testing.v1 import AppTest

from tests.conftest import ROOT

TIMEOUT = 300


def new_app() -> AppTest:
    return AppTest.from_file(str(ROOT / "app.py"), default_timeout=TIMEOUT)


def texts(elements) -> str:
    return " ".join(e.value for e in elements)


def fit_quick_model(at: AppTest, learners=("x",), folds: int = 2) -> AppTest:
    """Run the diagnostics (so fitting is allowed) and fit ``learners`` with few folds."""
    at.switch_page("pages/2_diagnostics.py").run()
    at.switch_page("pages/3_models.py").run()
    at.multiselect[0].set_value(list(learners))
    at.slider[0].set_value(folds)
    [b for b in at.button if b.label == "Fit models"][0].click().run()
    return at
