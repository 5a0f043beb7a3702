"""The next test: its sample size (power.py) and how to send a plan so the next log can still be
analysed (deploy.py)."""
