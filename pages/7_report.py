"""Step 7 · Report: one self-contained HTML file for stakeholders."""

import streamlit as st

import ui
from core.errors import UserError
from core.report import build_report
from ui import cached
from ui.widgets import require_log, show_error

ui.page_setup()

st.title("Report")
st.caption("One HTML file with the data summary, the diagnostics, the model leaderboard, the chosen allocation "
           "and its frontier, and the policy comparison — charts included. It opens offline in any browser.")
cur, log = require_log()
steps = [("Diagnostics", True), ("Models", bool(cur.config.get("models"))), ("Allocation", bool(cur.config.get("allocation"))),
         ("Policies", bool(cur.config.get("policies")))]
st.markdown(" · ".join(f"{':material/check_box:' if done else ':material/check_box_outline_blank:'} {name}"
                       for name, done in steps))
if cur.scenario_id:
    st.caption(f"Scenario `{cur.scenario_id}`: the same report comes from `python -m core report --scenario {cur.scenario_id} --out report.html` "
               "once the scenario is saved with these choices (step 1 · Save scenario).")
if st.button("Build the report", type="primary"):
    frame = cached.dataset_frame(cur.dataset_id, str(cached.workspace().path))
    with st.spinner("Building the report (the policy comparison refits the reward model)…"):
        try:
            text, sections = build_report(frame, {**cur.config, "mapping": cur.mapping}, workspace=cached.workspace(),
                                          title=cur.scenario_name or f"Uplift Studio report: {cur.dataset_name}")
        except UserError as exc:
            show_error(exc)
            st.stop()
    st.session_state["report_html"] = text
    st.session_state["report_sections"] = sections
if "report_html" in st.session_state:
    sections = st.session_state.get("report_sections", [])
    st.success(f"Report ready: {', '.join(sections)} ({len(st.session_state['report_html'].encode()) / 1e6:.1f} MB).")
    st.download_button("Download the report (HTML)", st.session_state["report_html"].encode(), "uplift_report.html", "text/html")
