"""Write the golden outputs of every case in ``cases.py`` from a FROZEN copy of the code.

The goldens in ``expected/`` were generated from commit b91bbce (the code before the refactor
"One home for every number"), on a worktree of it, with this script from the current tree:

    git -C /work/main worktree add /work/golden-base b91bbce
    cd /work/golden-base && UPLIFT_STUDIO_WORKSPACE=/tmp/golden-ws.duckdb PYTHONPATH=/work/golden-base \\
        /work/main/.venv/bin/python /work/main/tests/golden/generate.py --out /work/main/tests/golden/expected
    git -C /work/main worktree remove /work/golden-base

``import core`` must resolve to the frozen copy (the script prints where it resolved and refuses
the ``core`` next to this file unless ``--allow-this-tree`` is given).  Every case runs
in-process through ``core.cli.main`` in a temporary work folder with its own workspace, exactly
as ``test_golden.py`` runs it.  ``expected/manifest.json`` records the commit, the package
versions and the checksums of the shipped data the goldens were made with (no time stamps: two
runs of this script give the same bytes).

Regenerate only when a change of numbers is intended, and say so in the commit.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path

# LightGBM's OpenMP threads yield instead of spinning while they wait: on a shared 2-core machine a
# spinning pool makes multi-threaded fits many times slower.  Scheduling only: no number changes.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))  # cases, compare, runner as plain modules: never this tree's core

import cases as case_table
import compare
import runner


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", required=True, type=Path, help="the expected/ folder to (re)write")
    parser.add_argument("--datasets", default=",".join(case_table.DATASETS), help="comma list (default: all)")
    parser.add_argument("--workdir", type=Path, help="keep the work folders here (default: a temporary folder)")
    parser.add_argument("--allow-this-tree", action="store_true", help="allow generating from the core next to this file")
    args = parser.parse_args(argv)

    location = Path(runner.core_location())
    print(f"core under generation: {location}", flush=True)
    if location == HERE.parent.parent / "core" and not args.allow_this_tree:
        print("error: 'import core' resolves to this tree, not to a frozen copy; run from the worktree with "
              "PYTHONPATH=<worktree> (see the docstring)", file=sys.stderr)
        return 2
    if not os.environ.get("UPLIFT_STUDIO_WORKSPACE"):
        os.environ["UPLIFT_STUDIO_WORKSPACE"] = str(Path(tempfile.mkdtemp(prefix="golden-ws-")) / "ws.duckdb")
    datasets = [d.strip() for d in args.datasets.split(",") if d.strip()]
    out: Path = args.out
    if out.exists() and set(datasets) == set(case_table.DATASETS):
        if any(out.iterdir()) and not (out / "manifest.json").exists():
            print(f"error: {out} exists and is not a goldens folder; not touching it", file=sys.stderr)
            return 2
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)

    base = args.workdir or Path(tempfile.mkdtemp(prefix="golden-gen-"))
    failures, timings = [], {}
    for dataset in datasets:
        workdir = base / dataset
        if workdir.exists():
            shutil.rmtree(workdir)
        if (out / dataset).exists():
            shutil.rmtree(out / dataset)
        start = time.perf_counter()

        def report(outcome):
            status = "ok" if outcome.code == 0 else (f"SKIPPED ({outcome.skipped})" if outcome.skipped else f"EXIT {outcome.code}")
            print(f"  {outcome.case.id:45s} {outcome.seconds:7.2f} s  {status}", flush=True)
            if outcome.code not in (0, None):
                print("    " + outcome.describe_failure().replace("\n", "\n    "), flush=True)

        print(f"{dataset}:", flush=True)
        outcomes = runner.run_dataset(dataset, workdir, progress=report)
        timings[dataset] = time.perf_counter() - start
        for name, outcome in outcomes.items():
            if outcome.skipped:
                failures.append(outcome.case.id)
                continue
            if outcome.code != 0:
                failures.append(outcome.case.id)
            compare.store_outcome(outcome, out / dataset / name, runner.replacements_for(workdir))
        print(f"{dataset}: {timings[dataset]:.1f} s", flush=True)
        if not args.workdir:
            shutil.rmtree(workdir, ignore_errors=True)

    manifest_path = out / "manifest.json"
    manifest = json.loads(manifest_path.read_text()) if manifest_path.exists() else {}
    manifest.update({
        "generated_from": runner.commit_of(location.parent),
        "command": "PYTHONPATH=<worktree of that commit> python tests/golden/generate.py --out tests/golden/expected",
        "packages": runner.package_versions(),
        "data_sha256": {name: runner.sha256(runner.data_dir() / name) for name in sorted(runner.SOURCE_FILES.values())},
        "cases": {d: [c.name for c in case_table.cases_of(d)] for d in case_table.DATASETS},
        "failed_on_generation": sorted(set(manifest.get("failed_on_generation", [])) - {c.id for c in case_table.CASES
                                                                                       if c.dataset in datasets}
                                       | set(failures)),
    })
    manifest_path.write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")
    size = sum(p.stat().st_size for p in out.rglob("*") if p.is_file())
    print(f"wrote {out} ({size / 1e6:.2f} MB); {', '.join(f'{d} {t:.0f} s' for d, t in timings.items())}")
    if failures:
        print(f"cases that did not exit 0 (recorded as such): {', '.join(failures)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
