"""Streamlit-aware glue between the pages and ``core``: session state, caching, widgets."""
