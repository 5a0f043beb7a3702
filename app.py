"""Uplift Studio: page configuration and navigation only."""

import streamlit as st

import ui

st.set_page_config(page_title="Uplift Studio", page_icon=":material/target:", layout="wide")

ui.navigate([
    st.Page("pages/1_data.py", title="1 · Data", icon=":material/table_view:", default=True),
    st.Page("pages/2_diagnostics.py", title="2 · Diagnostics", icon=":material/health_and_safety:"),
    st.Page("pages/3_models.py", title="3 · Models", icon=":material/model_training:"),
    st.Page("pages/4_evaluation.py", title="4 · Evaluation", icon=":material/leaderboard:"),
    st.Page("pages/5_allocation.py", title="5 · Allocation", icon=":material/tune:"),
    st.Page("pages/6_policies.py", title="6 · Policies", icon=":material/compare_arrows:"),
    st.Page("pages/7_report.py", title="7 · Report", icon=":material/description:"),
])
