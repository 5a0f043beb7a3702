"""Uplift Studio core: data layer, statistics and decisions, with no Streamlit import."""

__version__ = "0.1.0"
