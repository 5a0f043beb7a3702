"""Run the golden cases of one dataset in-process (``core.cli.main``), in order, in one work
folder and one workspace.  Shared by ``generate.py`` (frozen commit) and the tests (current code).

``core`` is imported lazily, inside the functions, from whatever ``import core`` resolves to.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import re
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

try:  # a package under pytest, plain modules when generate.py runs as a script
    from .cases import Case, cases_of
except ImportError:  # pragma: no cover - the generator's import path
    from cases import Case, cases_of

SPARK_FLAGS = ("--engine", "spark", "--spark-master", "local[2]")
SOURCE_FILES = {"sample": "sample_campaign.parquet", "hillstrom": "hillstrom.csv.gz"}
NEW_CUSTOMERS = 5000  # the shipped logs' first rows: new customers to score (and Hillstrom's cases that estimate propensities)
_PLACEHOLDER = re.compile(r"\{(data|tmp|out:([\w-]+):([\w.-]+))\}")


@dataclass
class Outcome:
    """What one case did: exit code, parsed JSON (None unless code 0), stderr, written files."""

    case: Case
    engine: str
    code: int | None = None
    output: dict | None = None
    stdout: str = ""
    stderr: str = ""
    files: dict = field(default_factory=dict)
    seconds: float = 0.0
    skipped: str | None = None  # why it did not run (an earlier case it needs failed)
    argv_text: tuple = ()  # the command line as run (placeholders filled)

    def describe_failure(self) -> str:
        tail = "\n".join(self.stderr.strip().splitlines()[-15:])
        return (f"{self.case.id} [{self.engine}] exited {self.code}: python -m core {' '.join(self.argv_text)}\n"
                f"stderr (tail):\n{tail}")


def core_location() -> str:
    import core

    return str(Path(core.__file__).resolve().parent)


def data_dir() -> Path:
    """The shipped data next to the ``core`` being run (the frozen copy, or the current tree)."""
    return Path(core_location()).parent / "data"


def replacements_for(workdir: Path) -> dict[str, str]:
    """Path prefixes written as placeholders in the goldens (see ``compare.normalise_json``)."""
    return {str(workdir): "{tmp}", str(data_dir()): "{datadir}"}


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


PACKAGES = ("numpy", "pandas", "scipy", "scikit-learn", "lightgbm", "statsmodels", "pyarrow", "duckdb", "plotly",
            "pulp", "highspy", "pyspark", "econml")


def package_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"python": sys.version.split()[0]}
    for name in PACKAGES:
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def commit_of(tree: Path) -> dict:
    def git(*args):
        return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=False).stdout.strip()

    return {"commit": git("rev-parse", "HEAD"), "dirty_files_under_core": git("status", "--porcelain", "--", "core")}


# --- datasets -----------------------------------------------------------------------------------

def prepare(dataset: str, workdir: Path) -> Path:
    """The dataset's log path; for ``folder``, simulate it and split it into Parquet files first,
    and write the extra inputs its cases read (a policy file, new customers to score)."""
    workdir.mkdir(parents=True, exist_ok=True)
    if dataset == "sample":  # predict scores the first 5,000 customers as "new" ones
        import pandas as pd

        source = data_dir() / SOURCE_FILES[dataset]
        pd.read_parquet(source).head(NEW_CUSTOMERS).to_parquet(workdir / "new_customers.parquet", index=False)
        return source
    if dataset == "hillstrom":  # the same, byte for byte from the CSV (see cases.HILL_HEAD)
        import gzip

        source = data_dir() / SOURCE_FILES[dataset]
        with gzip.open(source, "rb") as handle:
            head = b"".join(handle.readline() for _ in range(NEW_CUSTOMERS + 1))
        (workdir / "head.csv").write_bytes(head)
        return source
    if dataset != "folder":
        raise ValueError(dataset)
    import numpy as np
    import pandas as pd

    from core.cli import main

    try:
        from .cases import FOLDER_PARTS, FOLDER_ROWS, FOLDER_SEED
    except ImportError:  # pragma: no cover
        from cases import FOLDER_PARTS, FOLDER_ROWS, FOLDER_SEED

    source = workdir / "_source" / "sim.parquet"
    source.parent.mkdir(exist_ok=True)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()) as err:
        code = main(["simulate", "--n", str(FOLDER_ROWS), "--seed", str(FOLDER_SEED), "--out", str(source)])
    if code != 0:
        raise RuntimeError(f"simulate for the folder dataset failed: {err.getvalue()}")
    frame = pd.read_parquet(source)
    folder = workdir / "log"
    folder.mkdir(exist_ok=True)
    for i, rows in enumerate(np.array_split(np.arange(len(frame)), FOLDER_PARTS)):
        frame.iloc[rows].to_parquet(folder / f"part-{i}.parquet", index=False)

    # a stochastic policy over the four arms, joined on id (rows shuffled, so not by position)
    rng = np.random.default_rng(3)
    labels = ["no_offer", "pct10_off", "free_shipping", "coupon_20"]
    probs = rng.dirichlet(np.ones(len(labels)), len(frame))
    policy = pd.DataFrame({"id": frame["customer_id"], **{f"prob__{a}": probs[:, j] for j, a in enumerate(labels)}})
    policy.sample(frac=1.0, random_state=2).to_csv(workdir / "policy_probs.csv", index=False)

    # new customers for predict --cold-start: an unseen segment, and rows without any feature
    fresh = frame.head(200).copy()
    fresh.loc[:9, "lifecycle"] = "vip"
    mapped = {"customer_id", "offer", "propensity", "revenue", "incentive_cost", "lifecycle", "send_date"}
    fresh.loc[10:14, [c for c in fresh.columns if c not in mapped]] = np.nan
    fresh.to_csv(workdir / "fresh.csv", index=False)
    return folder


# --- placeholders -------------------------------------------------------------------------------

def _lookup(outcomes: dict, case_name: str, path: str):
    outcome = outcomes.get(case_name)
    if outcome is None or outcome.output is None:
        raise LookupError(f"needs the output of case '{case_name}', which did not succeed")
    value = outcome.output
    for key in path.split("."):
        value = value[key]
    return value


def substitute(obj, context: dict, outcomes: dict):
    """Fill ``{data}``, ``{tmp}`` and ``{out:CASE:path}`` in strings, recursively."""
    if isinstance(obj, dict):
        return {k: substitute(v, context, outcomes) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [substitute(v, context, outcomes) for v in obj]
    if not isinstance(obj, str):
        return obj
    whole = _PLACEHOLDER.fullmatch(obj)
    if whole and whole.group(2):
        return _lookup(outcomes, whole.group(2), whole.group(3))

    def one(match):
        if match.group(2):
            return str(_lookup(outcomes, match.group(2), match.group(3)))
        return str(context[match.group(1)])

    return _PLACEHOLDER.sub(one, obj)


OUTPUT_OPTIONS = ("--out", "--model-out", "--predictions-out", "--allocation-out")


def _tmp_paths(case: Case) -> set[str]:
    text = json.dumps([list(case.argv), case.config])
    return set(re.findall(r"\{tmp\}/([\w.-]+)", text))


def _written(case: Case) -> set[str]:
    """The ``{tmp}`` files a case writes: its output options' values (and simulate's truth file)."""
    argv = list(case.argv)
    out = {argv[i + 1] for i, a in enumerate(argv[:-1]) if a in OUTPUT_OPTIONS}
    out |= {p + ".truth.parquet" for p in out if argv[0] == "simulate"}
    return {p[len("{tmp}/"):] for p in out if p.startswith("{tmp}/")}


def _out_refs(case: Case) -> set[str]:
    return set(re.findall(r"\{out:([\w-]+):", json.dumps([list(case.argv), case.config])))


def dependencies(cases: list[Case]) -> dict[str, set[str]]:
    """Case name → the earlier cases it reads from (files in ``{tmp}`` written by them, or their
    JSON through ``{out:…}``), transitively.  Files that ``prepare`` writes need no case."""
    writer: dict[str, str] = {}
    direct: dict[str, set[str]] = {}
    for case in cases:
        needs = {writer[p] for p in _tmp_paths(case) - _written(case) if p in writer} | _out_refs(case)
        direct[case.name] = needs
        for p in _written(case):
            writer[p] = case.name
    closed: dict[str, set[str]] = {}
    for case in cases:
        todo, seen = list(direct[case.name]), set()
        while todo:
            name = todo.pop()
            if name not in seen:
                seen.add(name)
                todo.extend(direct[name])
        closed[case.name] = seen
    return closed


# --- running ------------------------------------------------------------------------------------

def run_case(case: Case, engine: str, context: dict, outcomes: dict) -> Outcome:
    from core.cli import main

    outcome = Outcome(case, engine)
    try:
        argv = [str(a) for a in substitute(list(case.argv), context, outcomes)]
        if case.config is not None:
            config = substitute(case.config, context, outcomes)
            Path(context["tmp"], f"{case.name}.json").write_text(json.dumps(config, indent=1))
    except LookupError as exc:
        outcome.skipped = str(exc)
        return outcome
    if engine == "spark":
        argv += SPARK_FLAGS
    outcome.argv_text = tuple(argv)
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()) as out, contextlib.redirect_stderr(io.StringIO()) as err:
        try:
            outcome.code = main(argv)
        except SystemExit as exc:  # argparse --help and the like; never expected here
            outcome.code = exc.code if isinstance(exc.code, int) else 1
    outcome.seconds = time.perf_counter() - start
    outcome.stdout, outcome.stderr = out.getvalue(), err.getvalue()
    if outcome.code == 0:
        lines = outcome.stdout.strip().splitlines()
        outcome.output = json.loads(lines[-1]) if lines else None
    outcome.files = {name: Path(context["tmp"], name) for name in case.files}
    return outcome


def run_dataset(dataset: str, workdir: Path, engine: str = "local", spark_cases: set[str] | None = None,
                progress=None) -> dict[str, Outcome]:
    """Run the dataset's cases in order in ``workdir`` with a workspace of its own.

    ``engine="local"``: every case, locally.  ``engine="spark"``: the cases named in
    ``spark_cases`` with ``--engine spark``, plus, locally, the cases they need (not compared).
    """
    workdir = Path(workdir)
    cases = cases_of(dataset)
    previous = os.environ.get("UPLIFT_STUDIO_WORKSPACE")
    os.environ["UPLIFT_STUDIO_WORKSPACE"] = str(workdir / "workspace.duckdb")
    try:
        data = prepare(dataset, workdir)
        context = {"data": data, "tmp": workdir}
        needs = dependencies(cases)
        wanted = {c.name: "local" for c in cases}
        if engine == "spark":
            wanted = {name: "spark" for name in spark_cases or ()}
            for name in spark_cases or ():
                for dep in needs[name]:
                    wanted.setdefault(dep, "local")
        outcomes: dict[str, Outcome] = {}
        for case in cases:
            if case.name not in wanted:
                continue
            failed = sorted(d for d in needs[case.name] if d in outcomes and outcomes[d].code != 0)
            if failed:  # say so, rather than fail on a missing file
                outcomes[case.name] = Outcome(case, wanted[case.name], skipped="it needs the output of "
                                              + ", ".join(f"'{d}' ({outcomes[d].skipped or f'exit {outcomes[d].code}'})"
                                                          for d in failed))
            else:
                outcomes[case.name] = run_case(case, wanted[case.name], context, outcomes)
            if progress:
                progress(outcomes[case.name])
        return outcomes
    finally:
        if previous is None:
            os.environ.pop("UPLIFT_STUDIO_WORKSPACE", None)
        else:
            os.environ["UPLIFT_STUDIO_WORKSPACE"] = previous


def lazy_runs(tmp_path_factory, engine: str = "local", cases_of_dataset=None):
    """dataset → (work folder, outcomes), each dataset run on first use (a fixture's getter).

    ``cases_of_dataset``: with ``engine="spark"``, the names of a dataset's cases to run there."""
    cache: dict = {}
    prefix = "golden" if engine == "local" else f"golden_{engine}"
    print(f"\n{prefix}: core under test: {core_location()}")  # shown with -s

    def get(dataset: str):
        if dataset not in cache:
            workdir = tmp_path_factory.mktemp(f"{prefix}_{dataset}")
            names = cases_of_dataset(dataset) if cases_of_dataset else None
            cache[dataset] = (workdir, run_dataset(dataset, workdir, engine=engine, spark_cases=names))
        return cache[dataset]

    return get
