"""Golden outputs of every CLI command, captured from a frozen commit (see ``generate.py``)."""

import os

# LightGBM's OpenMP threads spin while they wait for work.  On a 2-core machine that other jobs
# share, the spinning threads starve each other: the golden cases' LightGBM fits took 3-7 minutes
# instead of about one.  Passive waiting changes scheduling only, never a number (the goldens
# match either way).  It must be set before LightGBM is first loaded, which the code does lazily,
# so importing this package at collection time is early enough; an explicit setting wins.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
