"""Uplift Studio: page configuration and navigation only."""

import streamlit as st

import ui

st.set_page_config(page_title="Uplift Studio", page_icon=":material/target:", layout="wide")

ui.navigate([
    ("pages/1_data.py", "1 · Data"),
    ("pages/2_diagnostics.py", "2 · Diagnostics"),
    ("pages/3_models.py", "3 · Models"),
    ("pages/4_evaluation.py", "4 · Evaluation"),
    ("pages/5_allocation.py", "5 · Allocation"),
    ("pages/6_policies.py", "6 · Policies"),
    ("pages/7_report.py", "7 · Report"),
    ("pages/8_design.py", "8 · Next test"),
    ("pages/9_monitor.py", "9 · Monitor"),
])
