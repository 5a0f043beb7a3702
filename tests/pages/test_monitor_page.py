"""The Monitor page: daily logs stored once, the dashboard, alerts on the injected days, fairness."""

import pytest

from core.simulate import simulate_live
from tests.pages.helpers import fit_quick_model, new_app, texts

SHARED_WORKSPACE = True


@pytest.fixture(scope="module")
def live():
    return simulate_live(days=4, per_day=3000, seed=4, drift_day=3)


def csv_of(frame) -> bytes:
    return frame.to_csv(index=False).encode()


@pytest.fixture(scope="module")
def monitored(module_workspace, live):
    at = new_app().run()
    fit_quick_model(at, learners=("x",))
    at.switch_page("pages/9_monitor.py").run()
    assert not at.exception, at.exception
    before = [i.value for i in at.info]
    at.text_input[0].set_value("spring test").run()
    at.file_uploader(key="monitor_upload").set_value([("days.csv", csv_of(live.log), "text/csv")]).run()
    [store] = [b for b in at.button if b.label == "Store these days"]
    store.click().run()
    return at, before


def test_days_are_stored_once(monitored, live):
    at, before = monitored
    assert any("No day stored for" in text for text in before)
    assert not at.exception and not at.error, texts(at.error)
    assert "days.csv: 4 new day(s) stored (12,000 rows)" in texts(at.success)
    [store] = [b for b in at.button if b.label == "Store these days"]
    store.click().run()
    assert "days.csv: 0 new day(s) stored (0 rows); 4 day(s) already stored unchanged" in texts(at.success)
    changed = live.log.copy()
    changed.loc[0, "revenue"] += 5
    at.file_uploader(key="monitor_upload").set_value([("changed.csv", csv_of(changed), "text/csv")]).run()
    [store] = [b for b in at.button if b.label == "Store these days"]
    store.click().run()
    assert "changed.csv was not stored" in texts(at.error) and "2026-11-02" in texts(at.error)
    stored = [d.value for d in at.dataframe if "n_rows" in d.value.columns][0]
    assert stored["n_rows"].tolist() == [3000] * 4


def test_dashboard_and_alerts_show_the_drift_from_its_day(monitored):
    at, _ = monitored
    assert at.session_state["current"].config["monitoring"]["days"] == 4
    [alerts] = [d.value for d in at.dataframe if "kind" in d.value.columns]
    drift = alerts[alerts["kind"] == "feature_drift"]
    assert set(drift["subject"]) == {"email_engagement"} and sorted(drift["day"]) == ["2026-11-04", "2026-11-05"]
    assert any(m.label == "Days stored" and m.value == "4" for m in at.metric)
    [propensities] = [d.value for d in at.dataframe if "share below the clip" in d.value.columns]
    assert propensities["day"].tolist() == ["2026-11-02", "2026-11-03", "2026-11-04", "2026-11-05"]
    assert (propensities["lowest"] == 0.05).all()  # exploration: 0.2 spread over four arms


def test_fairness_tab_compares_groups(monitored):
    at, _ = monitored
    [attribute] = [s for s in at.selectbox if s.label == "Audit by"]
    attribute.set_value("region").run()
    assert not at.exception and not at.error, texts(at.error)
    [audit] = [d.value for d in at.dataframe if "offer_rate_ratio" in d.value.columns]
    assert sorted(audit["group"]) == ["east", "north", "south", "west"]
    assert "gets offers at" in texts(at.markdown)


def test_report_gains_a_monitoring_section(monitored):
    from core.report import build_report
    from core.workspace import Workspace

    at, _ = monitored
    cur = at.session_state["current"]
    html, sections = build_report(Workspace().load_dataset(cur.dataset_id), {**cur.config, "mapping": cur.mapping},
                                  workspace=Workspace(), n_boot=20)
    assert "monitoring" in sections
    assert "Monitoring: spring test" in html and "4 day(s) from 2026-11-02 to 2026-11-05" in html
    assert "feature_drift" in html


def test_a_deployment_file_adds_sends_against_the_plan(monitored, live):
    at, _ = monitored
    at.file_uploader(key="monitor_plan").set_value(("assignment.csv", csv_of(live.plan), "text/csv")).run()
    assert not at.exception and not at.error, texts(at.error)
    [volume] = [d.value for d in at.dataframe if "coupon_20 planned" in d.value.columns]
    assert (volume["coupon_20 planned"] == volume["coupon_20 sent"]).all()  # the simulator sends what it planned
    assert volume["coupon_20 sent"].sum() == (live.log["offer"] == "coupon_20").sum()
