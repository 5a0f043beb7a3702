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


def promo_log_csv(n: int = 4000, seed: int = 0) -> bytes:
    """A Starbucks-like promotion log as a foreign user uploads it: arm Yes/No, a binary purchase,
    no cost column; the promotion lifts purchases only where V1 > 0."""
    import numpy as np
    import pandas as pd

    rng = np.random.default_rng(seed)
    v1, v2, v3 = rng.normal(size=n), rng.normal(size=n), rng.integers(0, 4, n)
    promoted = rng.random(n) < 0.5
    rate = 0.02 + 0.06 * promoted * (v1 > 0)
    frame = pd.DataFrame({"ID": np.arange(1, n + 1), "Promotion": np.where(promoted, "Yes", "No"),
                          "purchase": (rng.random(n) < rate).astype(int), "V1": v1.round(3), "V2": v2.round(3), "V3": v3})
    return frame.to_csv(index=False).encode()


def upload(at: AppTest, name: str, content: bytes) -> AppTest:
    """Upload a file on the Data page (the app must be on it)."""
    at.radio(key="data_source").set_value("Upload a file").run()
    at.file_uploader[0].set_value((name, content, "application/octet-stream")).run()
    return at
