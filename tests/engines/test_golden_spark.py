"""The golden cases on ``--engine spark``: the same goldens as the local engine (tests/golden),
floats equal to 1e-9 relative (cli-contract.md, section Engines).

Every case of ``tests/golden/cases.py`` whose command has a Spark engine (``engines`` includes
``spark``) runs with ``--engine spark --spark-master local[2]``; the cases it needs (fit's model,
deploy's plan, …) run before it on the local engine and are not compared here (the local golden
test does).  ``NOT_ON_SPARK_YET`` lists the (case, engine) pairs that have no Spark engine yet:
they run too and are expected to fail (``xfail(strict=True)``): the day one starts working and
matches its goldens, the test fails until its pair is removed from the list.
``KNOWN_DIFFERENCES`` does the same for bugs these goldens found (with the reason).

Skips without a Java runtime unless ``UPLIFT_REQUIRE_SPARK`` is set (as tests/engines/test_spark_engine.py).
"""

from __future__ import annotations

import os
import shutil

import pytest

if not (shutil.which("java") or os.environ.get("JAVA_HOME")) and not os.environ.get("UPLIFT_REQUIRE_SPARK"):
    pytest.skip("no Java runtime: the Spark engine's tests need one (CI installs it)", allow_module_level=True)
pytest.importorskip("pyspark")
os.environ.setdefault("UPLIFT_SPARK_PARTITIONS", "4")  # small logs: fewer, fuller partitions (still several)

from tests.golden import cases as table
from tests.golden import compare, runner
from tests.golden.test_golden import check

pytestmark = pytest.mark.golden

NOT_YET = pytest.mark.xfail(strict=True, reason="not on Spark yet")
SPARK_CASES = [c for c in table.CASES if "spark" in c.engines or (c.id, "spark") in table.NOT_ON_SPARK_YET]


@pytest.fixture(scope="module")
def spark_runs(tmp_path_factory):
    """dataset → (work folder, outcomes), its Spark cases run on first use."""
    yield runner.lazy_runs(tmp_path_factory, "spark", lambda dataset: {c.name for c in SPARK_CASES if c.dataset == dataset})
    from core.engines.spark.session import stop_sessions

    stop_sessions()


def marks(case: table.Case) -> list:
    if (case.id, "spark") in table.NOT_ON_SPARK_YET:
        return [NOT_YET]
    if (case.id, "spark") in table.KNOWN_DIFFERENCES:
        return [pytest.mark.xfail(strict=True, reason=table.KNOWN_DIFFERENCES[case.id, "spark"])]
    return []


@pytest.mark.parametrize("case", [pytest.param(c, id=c.id, marks=marks(c)) for c in SPARK_CASES])
def test_case_on_spark_matches_the_local_goldens(case, spark_runs):
    workdir, outcomes = spark_runs(case.dataset)
    outcome = outcomes[case.name]
    assert outcome.engine == "spark"
    check(case, workdir, outcome, compare.SPARK_REL, compare.SPARK_ABS)


def test_every_spark_command_is_covered():
    """Every command that reads a log runs on Spark: each has at least one golden case on Spark
    (describe and design, whose output the goldens hold locally, are compared in test_spark_engine.py)."""
    commands = {c.argv[0] for c in table.CASES if "spark" in c.engines}
    assert commands == {"srm", "overlap", "readout", "fit", "predict", "evaluate", "allocate", "ope", "monitor"}
