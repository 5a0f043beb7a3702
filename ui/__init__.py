"""Streamlit-aware glue between the pages and ``core``: session state, caching, widgets."""

from pathlib import Path

import streamlit as st

from ui.state import current, discard_changes, keep_scenario_in_url, save_changes, step_status, unsaved_changes

_ROUTED = "_routed_through_app"
# Steps a page completes just by being viewed.  Only these trigger a redraw of the sidebar: a
# rerun would drop messages that a button (fit, build) or a first visit (a bad link) printed.
REDRAW_AFTER = {"diagnostics", "evaluation", "allocation", "policies", "design"}


STATUS_ICONS = {"done": ":material/check_circle:", "attention": ":material/error:", "todo": ":material/radio_button_unchecked:"}


def navigate(steps) -> None:
    """Route to the selected step (``app.py``'s one job), marking the session as routed.

    ``steps`` is a list of (page file, title); each sidebar entry shows the step's status.
    """
    st.session_state[_ROUTED] = True
    status = step_status()
    pages = [st.Page(path, title=title, icon=STATUS_ICONS[status[Path(path).stem.split("_", 1)[1]]], default=i == 0)
             for i, (path, title) in enumerate(steps)]
    page = st.navigation(pages)
    box = st.sidebar.container()
    keep_scenario_in_url(before_page=True)
    try:
        page.run()
    finally:
        # also when a page stops early: the URL names the open scenario (the page has read a
        # scenario named in the URL first), and the sidebar says whether it has unsaved changes
        keep_scenario_in_url()
        with box:
            scenario_box()
    changed = {step for step, now in step_status().items() if now != status[step]}
    if changed and changed <= REDRAW_AFTER:
        # the page just completed its step by being viewed: redraw the sidebar now, not one page later
        st.rerun()


def page_setup() -> None:
    """Call first on every page.

    A ``pages/`` folder next to ``app.py`` makes Streamlit start in its old multipage mode
    until some session runs ``st.navigation``; a browser that reloads a page URL on a freshly
    started server would then run that page without ``app.py`` (no navigation, no page
    config).  A session whose first run did not pass through :func:`navigate` leaves that
    mode and reruns through ``app.py``.
    """
    if st.session_state.get(_ROUTED):
        return
    # deferred: Streamlit internals, needed only on a first visit
    from streamlit.runtime.pages_manager import PagesManager

    PagesManager.uses_pages_directory = False
    st.session_state[_ROUTED] = True
    st.rerun()


def scenario_box() -> None:
    """The sidebar's note on the open scenario: saved, or unsaved changes with Save / Discard."""
    cur = current()
    if not cur.scenario_id:
        if cur.dataset_id:
            st.caption(":material/info: Not saved as a scenario: your choices live in this browser tab. "
                       "Save them in step 1 · Data to share a link.")
        return
    if unsaved_changes():
        st.warning(f"**{cur.scenario_name}**: unsaved changes. Others who open this scenario see its saved version.",
                   icon=":material/edit:")
        c1, c2 = st.columns(2)
        c1.button("Save changes", key="scenario_save", type="primary", on_click=save_changes)
        c2.button("Discard", key="scenario_discard", on_click=discard_changes, help="Go back to the saved version.")
    else:
        st.caption(f":material/cloud_done: **{cur.scenario_name}**: every change is saved.")
