"""Uplift Studio: page configuration and navigation only."""

import streamlit as st

st.set_page_config(page_title="Uplift Studio", page_icon=":material/target:", layout="wide")

pages = [
    st.Page("pages/1_data.py", title="1 · Data", icon=":material/table_view:", default=True),
]
st.navigation(pages).run()
