"""Every CLI command, on three datasets, prints and writes what the frozen commit did.

The cases are in ``cases.py``; their goldens in ``expected/`` were written by ``generate.py``
from commit b91bbce (see its docstring to regenerate, which only an intended change of numbers
justifies).  Here every case runs again, in-process through ``core.cli.main``, on the current
code and is compared: same JSON keys, lengths, types and text, floats equal to 1e-12 relative
(see ``compare.REL``/``ABS``), written tables with the same columns, rows and values, and the
report's text exactly with its numbers to the same tolerance.

The cases of a dataset run once per module, in order, in one work folder and one workspace of
their own (``runner.run_dataset``): later cases read what earlier ones wrote.  stdout is
captured with ``contextlib.redirect_stdout`` rather than capsys, because the runs are shared by
the tests of the module (capsys is per test).

A failure names the case, the JSON path or file/column/row (or the report's text around the spot)
and both values.  A key added to a command's JSON on purpose (the contract allows new keys) goes
into ``compare.ACCEPTED_NEW_KEYS`` with its reason; any other change of output means a number (or
text) changed: fix the code, or, if the change is intended, regenerate the goldens from the
commit that intends it and say so (see ``generate.py``).  Run only these with ``-m golden``.
"""

from __future__ import annotations

import gzip
import json
import math
import re
from pathlib import Path

import pandas as pd
import pytest

from . import cases as table
from . import compare, runner
from .runner import package_versions, replacements_for, sha256

EXPECTED = Path(__file__).resolve().parent / "expected"
MANIFEST = json.loads((EXPECTED / "manifest.json").read_text()) if (EXPECTED / "manifest.json").exists() else {}

pytestmark = pytest.mark.golden


def header() -> str:
    """Where the goldens come from and what runs now: the first thing to read in a failure."""
    versions = package_versions()
    changed = {k: (v, versions.get(k)) for k, v in MANIFEST.get("packages", {}).items() if versions.get(k) != v}
    return (f"goldens from commit {MANIFEST.get('generated_from', {}).get('commit', '?')[:12]}; core under test: "
            f"{runner.core_location()}" + (f"; packages differ from the goldens' (golden, now): {changed}" if changed else ""))


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """dataset → (work folder, outcomes of all its cases), run on first use."""
    return runner.lazy_runs(tmp_path_factory)


def check(case: table.Case, workdir: Path, outcome: runner.Outcome, rel: float, abs_: float) -> None:
    differences = compare.outcome_differences(outcome, EXPECTED / case.dataset / case.name,
                                              replacements_for(workdir), rel, abs_)
    if differences:
        shown = differences[:25] + ([f"… and {len(differences) - 25} more"] if len(differences) > 25 else [])
        pytest.fail(f"{case.id} differs from its goldens ({header()}):\n  " + "\n  ".join(shown), pytrace=False)


@pytest.mark.parametrize("case", table.CASES, ids=lambda c: c.id)
def test_case_matches_its_goldens(case, runs):
    workdir, outcomes = runs(case.dataset)
    check(case, workdir, outcomes[case.name], compare.REL, compare.ABS)


def test_the_goldens_cover_exactly_the_case_table():
    assert MANIFEST, f"no goldens in {EXPECTED}: run generate.py (see its docstring)"
    assert MANIFEST["cases"] == {d: [c.name for c in table.cases_of(d)] for d in table.DATASETS}, \
        "cases.py changed since the goldens were generated: regenerate them from the frozen commit"
    stored = {f"{p.parent.name}/{p.name}" for p in EXPECTED.glob("*/*") if p.is_dir()}
    assert stored == {c.id for c in table.CASES}
    for case in table.CASES:
        record = json.loads((EXPECTED / case.dataset / case.name / "result.json").read_text())
        for name in case.files if record["code"] == 0 else ():
            assert (EXPECTED / case.dataset / case.name / compare.golden_name(name)).exists(), (case.id, name)


@pytest.mark.parametrize("name", sorted(runner.SOURCE_FILES.values()))
def test_the_shipped_data_is_what_the_goldens_were_made_from(name):
    assert sha256(runner.data_dir() / name) == MANIFEST["data_sha256"][name], \
        f"data/{name} changed since the goldens were generated: every number of its cases may change"


# --- the comparer itself must catch a change (so that a broken comparer cannot pass) ----------------

def _first_float(obj, path="$"):
    if isinstance(obj, float) and obj != 0:
        return path
    items = obj.items() if isinstance(obj, dict) else enumerate(obj) if isinstance(obj, list) else ()
    for key, value in items:
        found = _first_float(value, f"{path}.{key}" if isinstance(obj, dict) else f"{path}[{key}]")
        if found:
            return found
    return None


def _set(obj, path, value):
    keys = re.findall(r"\.([^.\[]+)|\[(\d+)\]", path)
    for name, index in keys[:-1]:
        obj = obj[name] if name else obj[int(index)]
    name, index = keys[-1]
    if name:
        obj[name] = value
    else:
        obj[int(index)] = value


def _get(obj, path):
    for name, index in re.findall(r"\.([^.\[]+)|\[(\d+)\]", path):
        obj = obj[name] if name else obj[int(index)]
    return obj


def test_the_comparer_catches_a_float_changed_by_1e_9_in_the_json():
    golden = json.loads((EXPECTED / "sample" / "readout" / "result.json").read_text())["stdout"]
    path = _first_float(golden)
    changed = json.loads(json.dumps(golden))
    _set(changed, path, _get(golden, path) * (1 + 1e-9))
    differences = compare.json_differences(golden, changed)
    assert len(differences) == 1 and differences[0].startswith(path), differences
    assert repr(_get(golden, path)) in differences[0] and repr(_get(changed, path)) in differences[0]
    # within the tolerance: equal; a count that became a float, a key that went: caught
    _set(changed, path, _get(golden, path) * (1 + 1e-14))
    assert compare.json_differences(golden, changed) == []
    assert compare.json_differences({"n": 3}, {"n": 3.0}) and compare.json_differences({"a": 1, "b": 2}, {"a": 1})
    assert compare.json_differences({"x": [1.0, 2.0]}, {"x": [1.0]}) and compare.json_differences({"s": "a"}, {"s": "b"})
    assert compare.json_differences({"x": 0.0}, {"x": 1e-13}) == []  # the absolute floor near 0


def test_the_comparer_catches_a_changed_table_cell():
    golden = pd.read_parquet(EXPECTED / "sample" / "fit_t" / compare.golden_name("oof_t.csv"))
    changed = golden.copy()
    column = next(c for c in golden.columns if c.startswith("tau_value__"))
    changed.loc[1234, column] = golden.loc[1234, column] * (1 + 1e-9)
    differences = compare.table_differences(golden, changed, "oof_t.csv")
    assert len(differences) == 1 and f"column '{column}'" in differences[0] and "row 1234" in differences[0], differences
    assert repr(float(golden.loc[1234, column])) in differences[0]
    assert compare.table_differences(golden, golden.iloc[:-1], "t"), "a missing row"
    assert compare.table_differences(golden, golden[golden.columns[::-1]], "t"), "columns in another order"
    swapped = golden.copy()
    swapped["id"] = swapped["id"].astype(float)
    assert compare.table_differences(golden, swapped, "t"), "ints written as floats"
    plan = pd.read_parquet(EXPECTED / "sample" / "allocate_fast" / compare.golden_name("alloc_fast.csv"))
    other = plan.copy()
    other.loc[7, "action"] = "coupon_20" if plan.loc[7, "action"] != "coupon_20" else "no_offer"
    assert any("column 'action'" in d and "row 7" in d for d in compare.table_differences(plan, other, "alloc"))


def test_the_comparer_catches_a_changed_number_or_word_in_the_report():
    golden = compare.load_golden_html(EXPECTED / "sample" / "report_diagnostics" /
                                      compare.golden_name("report_diagnostics.html"))
    assert compare.html_differences(golden, golden, "r") == []
    assert '"bdata"' not in golden, "every chart array is decoded, so its numbers compare with the tolerance"
    cells = list(re.finditer(r"<td>(-?\d[\d,]*\.\d+)</td>", golden))
    assert cells, "the report has number cells"
    cell = cells[len(cells) // 2]
    value = cell.group(1)
    last = value[-1]
    bumped = value[:-1] + ("1" if last == "0" else "0")
    changed = golden[:cell.start(1)] + bumped + golden[cell.end(1):]
    differences = compare.html_differences(golden, changed, "report")
    assert len(differences) == 1 and f"expected {value.split(',')[-1]}" in differences[0], differences
    assert compare.html_differences(golden, golden.replace("Average effect", "Mean effect", 1), "report")
    # a chart's numbers (decoded from Plotly's base64 arrays) are compared too
    numbers = [m for m in re.finditer(r'"values":\[(-?\d+\.\d+)', golden) if abs(float(m.group(1))) > 1e-3]
    assert numbers, "the report's charts carry decoded number arrays"
    first = numbers[0]
    moved = golden[:first.start(1)] + repr(float(first.group(1)) * (1 + 1e-9)) + golden[first.end(1):]
    differences = compare.html_differences(golden, moved, "report")
    assert len(differences) == 1 and first.group(1) in differences[0], differences


def test_the_report_normaliser_removes_only_what_changes_between_runs():
    text = ('<p>generated 2026-11-26 21:00 UTC</p><script type="text/javascript">/**\n* plotly.js v9.9.9\n*/ big'
            '</script><div id="0b6c1e52-1111-4a2b-9c3d-123456789abc"></div>'
            '<script>Plotly.newPlot("0b6c1e52-1111-4a2b-9c3d-123456789abc", [{"y":{"dtype":"f8","bdata":"AAAAAAAA+D8="}},'
            '{"x":{"dtype":"f8","bdata":"aoIfrYJUFUDrUsG3CPH9PwNjqIwwAv0\\u002f"}}])</script><td>1.25</td>')
    out = compare.normalise_html(text)
    assert "2026-11-26" not in out and "plotly.js v9" not in out and "0b6c1e52" not in out
    assert out.count("plotly-div-1") == 2 and '"values":[1.5]' in out and "<td>1.25</td>" in out
    assert '"values":[5.332529740379508,1.8713462045608888,1.8130345816081792]' in out, "a base64 array with an escaped /"
    assert gzip.decompress(gzip.compress(out.encode())).decode() == out
    assert math.isclose(1.5, float(re.search(r'"values":\[([\d.]+)', out).group(1)))
