"""``python -m core``: the headless CLI (also ``spark-submit core/__main__.py …`` on a cluster)."""

import sys

if __package__ in (None, ""):  # run as a file, as spark-submit does: import the package by path
    from pathlib import Path

    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    from core.cli import main
else:
    from .cli import main

if __name__ == "__main__":
    sys.exit(main())
