"""Monitoring a live campaign: daily logs in the workspace (store), feature drift (drift),
day-by-day metrics and alerts (daily), and the fairness audit (fairness)."""
