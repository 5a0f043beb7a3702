"""Mutation testing of the statistical modules with mutmut (issue 24): kill rate per module.

Not part of CI (it takes hours over every module). Run from the project root:

    .venv/bin/python bench/mutation.py                                  # every module of the issue
    .venv/bin/python bench/mutation.py core/resample.py core/ope/estimators.py
    .venv/bin/python bench/mutation.py --report-only                    # the table of the last run

mutmut (installed here if missing) copies ``core/`` into ``mutants/`` of a scratch copy of the
project, mutates the chosen modules one small change at a time (an operator, a constant, a
comparison, a dropped argument…) and runs the tests that reach the mutated function (found once
by a first run of the whole selection).  A mutant is *killed* when a test fails, *survived* when
every test passes.  The selection is the fast part of the suite: ``tests/core`` without the slow
statistical tests (the CLI, page, browser and Spark tests reach the same functions through core
and take minutes per mutant).

Prints, per module: mutants, killed, survived, no tests, timeouts, not checked, kill rate
(killed + timeout) / (killed + timeout + survived), and writes the survivors' diffs to
``mutants-survivors.txt`` in the scratch copy for the review that RESULTS.md records.
"""

from __future__ import annotations

import argparse
import collections
import importlib.util
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCRATCH = Path("/tmp/uplift-mutation")
MODULES = ["core/diagnostics/*", "core/evaluation/*", "core/uplift/*", "core/decision/*", "core/ope/*",
           "core/design/*", "core/monitoring/*", "core/resample.py"]
TESTS = ["tests/core", "-m", "not slow"]
KILLED = {"killed", "timeout"}  # a mutant that never ends is caught too (mutmut's own convention)


def ensure_mutmut() -> None:
    if importlib.util.find_spec("mutmut") is None:
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "mutmut==3.8.1"], check=True)


def scratch_copy(modules: list[str]) -> Path:
    """A copy of the project with a [mutmut] section naming ``modules`` (the repo stays clean)."""
    if SCRATCH.exists():
        shutil.rmtree(SCRATCH)
    ignore = shutil.ignore_patterns("__pycache__", "artifacts", "*.pyc")
    for name in ("core", "tests", "data"):
        shutil.copytree(ROOT / name, SCRATCH / name, ignore=ignore)
    shutil.copy(ROOT / "pytest.ini", SCRATCH / "pytest.ini")
    lines = "\n    ".join
    (SCRATCH / "setup.cfg").write_text(
        "[mutmut]\n"
        "source_paths = core\n"
        f"only_mutate =\n    {lines(modules)}\n"
        "also_copy =\n    data\n    pytest.ini\n"
        f"pytest_add_cli_args_test_selection =\n    {lines(TESTS)}\n"
        # one process per test run; no parallel workers inside a mutant's run
        "pytest_add_cli_args =\n    -p\n    no:cacheprovider\n    -n\n    0\n"
        "mutate_only_covered_lines = false\n")
    return SCRATCH


def results(where: Path) -> dict[str, collections.Counter]:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results", "--all", "true"], cwd=where,
                         capture_output=True, text=True, check=True).stdout
    per_module: dict[str, collections.Counter] = collections.defaultdict(collections.Counter)
    for line in out.splitlines():
        match = re.match(r"\s*(\S+?)\.(?:x_|xǁ)\S*__mutmut_\d+: (.+)$", line)
        if match:
            per_module[match.group(1)][match.group(2).strip()] += 1
    return per_module


def survivors(where: Path) -> str:
    out = subprocess.run([sys.executable, "-m", "mutmut", "results"], cwd=where, capture_output=True,
                         text=True, check=True).stdout
    names = [line.split(":")[0].strip() for line in out.splitlines() if line.strip().endswith("survived")]
    diffs = [subprocess.run([sys.executable, "-m", "mutmut", "show", name], cwd=where, capture_output=True,
                            text=True).stdout for name in names]
    return "\n".join(diffs)


def table(per_module: dict[str, collections.Counter]) -> str:
    rows = ["| module | mutants | killed | survived | no tests | timeout | not checked | kill rate |",
            "|---|---|---|---|---|---|---|---|"]
    total = collections.Counter()
    for module in sorted(per_module):
        c = per_module[module]
        total.update(c)
        rows.append(_row(module, c))
    rows.append(_row("**all**", total))
    return "\n".join(rows)


def _row(name: str, c: collections.Counter) -> str:
    n = sum(c.values())
    caught = sum(c[k] for k in KILLED)
    tested = caught + c["survived"]  # mutants no test reaches, or not run, do not count either way
    rate = f"{caught / tested:.1%}" if tested else "–"
    return (f"| {name} | {n} | {c['killed']} | {c['survived']} | {c['no tests']} | {c['timeout']} | "
            f"{c['not checked']} | {rate} |")


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("modules", nargs="*", default=MODULES, help="files or globs under core/ (default: issue 24's)")
    parser.add_argument("--max-children", type=int, default=2, help="mutants tested at once (default 2)")
    parser.add_argument("--report-only", action="store_true", help="print the table of the last run in the scratch copy")
    args = parser.parse_args(argv)
    ensure_mutmut()
    where = SCRATCH if args.report_only else scratch_copy(args.modules)
    if not args.report_only:
        subprocess.run([sys.executable, "-m", "mutmut", "run", "--max-children", str(args.max_children)], cwd=where)
    print(table(results(where)))
    (where / "mutants-survivors.txt").write_text(survivors(where))
    print(f"survivors' diffs: {where / 'mutants-survivors.txt'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
