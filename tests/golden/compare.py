"""Normalise what a case printed and wrote, store it as goldens, and compare a new run with them.

Every difference is reported as one line naming the case, where (JSON path, or file, column and
row, or the report's text around the spot) and both values.  No ``core`` import here.
"""

from __future__ import annotations

import base64
import gzip
import json
import math
import re
from pathlib import Path

try:
    from .cases import VOLATILE
except ImportError:  # pragma: no cover - the generator's import path
    from cases import VOLATILE

# Local engine against the goldens: the same code path must give the same floats up to a few ulps
# of reordered sums.  The absolute floor is for values that are mathematically 0 (a cost effect
# of a constant cost, a weighted SMD, an allocation gap) but come out as ±1e-17 or so: relative
# tolerance is meaningless there.
REL, ABS = 1e-12, 1e-12
# The Spark engine against the same goldens (cli-contract.md, section Engines).
SPARK_REL, SPARK_ABS = 1e-9, 1e-12

TABLE_SUFFIXES = (".csv", ".csv.gz", ".parquet")
HTML_SUFFIX = ".html"


# --- normalising ----------------------------------------------------------------------------------

def normalise_json(obj, replacements: dict[str, str]):
    """Drop the ``VOLATILE`` keys at any depth; write the run's own folders as placeholders."""
    if isinstance(obj, dict):
        return {k: normalise_json(v, replacements) for k, v in obj.items() if k not in VOLATILE}
    if isinstance(obj, list):
        return [normalise_json(v, replacements) for v in obj]
    if isinstance(obj, str):
        for old, new in replacements.items():
            obj = obj.replace(old, new)
    return obj


def read_table(path: Path):
    """A table a command wrote (CSV or Parquet), floats parsed exactly as written."""
    import pandas as pd

    name = str(path)
    if name.endswith(".parquet"):
        return pd.read_parquet(path)
    return pd.read_csv(path, float_precision="round_trip")


_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_STAMP = re.compile(r"\d{4}-\d{2}-\d{2} \d{2}:\d{2}(?::\d{2})? UTC")
_PLOTLY_JS = re.compile(r"<script[^>]*>\s*/\*\*\s*\* plotly\.js v.*?</script>", re.DOTALL)
# Plotly writes "/" (and may write "+") of the base64 text as JSON escapes inside the HTML
_BDATA = re.compile(r'\{"dtype":"(\w+)","bdata":"((?:[A-Za-z0-9+/=]|\\u002[bBfF])*)"(,"shape":"[\d, ]*")?\}')
_NUMBER = re.compile(r"(?<![\w.])[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
_DTYPES = {"f8": "<f8", "f4": "<f4", "i1": "i1", "u1": "u1", "i2": "<i2", "u2": "<u2", "i4": "<i4", "u4": "<u4",
           "i8": "<i8", "u8": "<u8"}


def _decode_bdata(match: re.Match) -> str:
    import numpy as np

    dtype, data, shape = match.group(1), match.group(2), match.group(3) or ""
    data = re.sub(r"\\u002[fF]", "/", re.sub(r"\\u002[bB]", "+", data))
    values = np.frombuffer(base64.b64decode(data, validate=True), dtype=_DTYPES[dtype])
    text = ",".join(repr(float(v)) if dtype[0] == "f" else str(int(v)) for v in values)
    return f'{{"dtype":"{dtype}","values":[{text}]{shape}}}'


def normalise_html(text: str) -> str:
    """The report without what legitimately changes between runs: the embedded plotly.js bundle
    (the installed Plotly's, not ours), Plotly's random div ids, the "generated …" time stamp.
    Plotly's base64 number arrays are decoded, so that their numbers compare with the float
    tolerance like every other number of the report."""
    text = _PLOTLY_JS.sub("<script>/* plotly.js bundle */</script>", text)
    ids: dict[str, str] = {}
    text = _UUID.sub(lambda m: ids.setdefault(m.group(0), f"plotly-div-{len(ids) + 1}"), text)
    text = _STAMP.sub("<TIME STAMP>", text)
    return _BDATA.sub(_decode_bdata, text)


MARK = "\ue000"  # stands for a number in the report's text (a private-use character: never in the text)


def split_numbers(text: str) -> tuple[str, list[str]]:
    """The text with every number replaced by ``MARK``, and the numbers in order."""
    numbers = _NUMBER.findall(text)
    return _NUMBER.sub(MARK, text), numbers


# --- storing --------------------------------------------------------------------------------------

def golden_name(file_name: str) -> str:
    if file_name.endswith(HTML_SUFFIX):
        return file_name + ".norm.gz"
    if file_name.endswith(TABLE_SUFFIXES):
        return file_name + ".parquet" if not file_name.endswith(".parquet") else file_name
    raise ValueError(f"no golden format for {file_name}")


def store_outcome(outcome, dest: Path, replacements: dict[str, str]) -> list[Path]:
    """Write a case's goldens into ``dest`` (its own folder); return the files written."""
    dest.mkdir(parents=True, exist_ok=True)
    written = []
    if outcome.code == 0:
        record = {"code": 0, "stdout": normalise_json(outcome.output, replacements)}
    else:  # a case that fails on the frozen commit is recorded as such (a finding, kept visible)
        error = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
        record = {"code": outcome.code, "error": normalise_json(error[-1] if error else "", replacements)}
    path = dest / "result.json"
    path.write_text(json.dumps(record, indent=1, ensure_ascii=False, allow_nan=False) + "\n", encoding="utf-8")
    written.append(path)
    if outcome.code != 0:
        return written
    for name, source in outcome.files.items():
        target = dest / golden_name(name)
        if name.endswith(HTML_SUFFIX):
            raw = normalise_html(Path(source).read_text(encoding="utf-8"))
            # mtime 0: the same report gives the same bytes
            with open(target, "wb") as handle, gzip.GzipFile(filename="", mode="wb", fileobj=handle, mtime=0,
                                                             compresslevel=9) as gz:
                gz.write(raw.encode("utf-8"))
        else:
            table = read_table(source)
            # floats byte-stream-split (their exponent bytes compress), integers (ids) delta-coded,
            # text dictionary-coded: a third of plain zstd's size, every bit of every value kept
            encoding = {c: "BYTE_STREAM_SPLIT" if table[c].dtype.kind == "f" else "DELTA_BINARY_PACKED"
                        for c in table.columns if table[c].dtype.kind in "fiu"}
            table.to_parquet(target, compression="zstd", compression_level=19, index=False,
                             use_dictionary=[c for c in table.columns if c not in encoding] or False,
                             column_encoding=encoding or None)
        written.append(target)
    return written


def load_golden_html(path: Path) -> str:
    return gzip.decompress(path.read_bytes()).decode("utf-8")


# JSON keys that the current code may print although the goldens do not have them: additions made
# on purpose (cli-contract.md allows new keys), each named here with its reason.  Keys that go
# missing, and every value of the keys both have, are still compared.
ACCEPTED_NEW_KEYS: dict[str, str] = {
    "warnings": "ope: the policy's warnings (few effective customers, clipped propensities, rare offers) are part of "
                "its result, shown alike by the Policies page, the report and the CLI (issue 23, item 4)",
}


# --- comparing ------------------------------------------------------------------------------------

def _kind(x) -> str:
    if x is None:
        return "null"
    if isinstance(x, bool):
        return "bool"
    if isinstance(x, int):
        return "int"
    if isinstance(x, float):
        return "float"
    if isinstance(x, str):
        return "str"
    if isinstance(x, list):
        return "list"
    if isinstance(x, dict):
        return "dict"
    return type(x).__name__


def close(a: float, b: float, rel: float, abs_: float) -> bool:
    return math.isclose(a, b, rel_tol=rel, abs_tol=abs_)


def json_differences(expected, actual, path: str = "$", rel: float = REL, abs_: float = ABS) -> list[str]:
    """Where two JSON values differ: missing/extra keys, list lengths, types (an int count that
    became a float is a change of the printed JSON), text, or floats beyond the tolerance."""
    ke, ka = _kind(expected), _kind(actual)
    if ke != ka:
        return [f"{path}: expected {ke} {expected!r}, got {ka} {actual!r}"]
    if ke == "dict":
        out = []
        missing = [k for k in expected if k not in actual]
        extra = [k for k in actual if k not in expected and k not in ACCEPTED_NEW_KEYS]
        if missing:
            out.append(f"{path}: keys missing {missing}")
        if extra:
            out.append(f"{path}: unexpected keys {extra}")
        for key in expected:
            if key in actual:
                out += json_differences(expected[key], actual[key], f"{path}.{key}", rel, abs_)
        return out
    if ke == "list":
        out = [] if len(expected) == len(actual) else [f"{path}: length {len(expected)} expected, got {len(actual)}"]
        for i, (x, y) in enumerate(zip(expected, actual)):
            out += json_differences(x, y, f"{path}[{i}]", rel, abs_)
        return out
    if ke == "float":
        if close(expected, actual, rel, abs_):
            return []
        relative = abs(actual - expected) / max(abs(expected), 1e-300)
        return [f"{path}: expected {expected!r}, got {actual!r} (relative difference {relative:.3g})"]
    return [] if expected == actual else [f"{path}: expected {expected!r}, got {actual!r}"]


def table_differences(expected, actual, where: str, rel: float = REL, abs_: float = ABS, limit: int = 5) -> list[str]:
    """Same columns in the same order, same rows, same values (floats within the tolerance, NaN
    where NaN); the first ``limit`` differing rows of each column are named."""
    import numpy as np
    import pandas as pd

    out = []
    if list(expected.columns) != list(actual.columns):
        out.append(f"{where}: columns {list(expected.columns)} expected, got {list(actual.columns)}")
    if len(expected) != len(actual):
        out.append(f"{where}: {len(expected)} rows expected, got {len(actual)}")
    n = min(len(expected), len(actual))
    for column in [c for c in expected.columns if c in actual.columns]:
        e, a = expected[column].iloc[:n].reset_index(drop=True), actual[column].iloc[:n].reset_index(drop=True)
        e_num = pd.api.types.is_numeric_dtype(e) and not pd.api.types.is_bool_dtype(e)
        a_num = pd.api.types.is_numeric_dtype(a) and not pd.api.types.is_bool_dtype(a)
        if e_num and a_num:
            if pd.api.types.is_float_dtype(e) != pd.api.types.is_float_dtype(a):
                out.append(f"{where}: column '{column}' is {e.dtype} in the goldens, {a.dtype} now")
            ev, av = e.to_numpy(dtype=float), a.to_numpy(dtype=float)
            same = np.isclose(av, ev, rtol=rel, atol=abs_, equal_nan=True)
            same |= (ev == av)  # equal infinities
        else:
            if e_num != a_num or pd.api.types.is_bool_dtype(e) != pd.api.types.is_bool_dtype(a):
                out.append(f"{where}: column '{column}' is {e.dtype} in the goldens, {a.dtype} now")
            ev, av = e.to_numpy(dtype=object), a.to_numpy(dtype=object)
            same = np.array([(x == y) or (pd.isna(x) and pd.isna(y)) if not isinstance(x, (list, np.ndarray)) else False
                             for x, y in zip(ev, av)], dtype=bool)
        bad = np.flatnonzero(~same)
        if len(bad):
            def plain(v):  # np.float64(1.5) → 1.5
                return v.item() if hasattr(v, "item") else v

            shown = "; ".join(f"row {i}: expected {plain(ev[i])!r}, got {plain(av[i])!r}" for i in bad[:limit])
            out.append(f"{where}: column '{column}' differs in {len(bad)} of {n} rows: {shown}")
    return out


def html_differences(expected: str, actual: str, where: str, rel: float = REL, abs_: float = ABS,
                     limit: int = 5) -> list[str]:
    """Both reports, normalised: the text around the numbers exactly, the numbers within the
    tolerance.  Each difference is shown with the report text around it."""
    skel_e, nums_e = split_numbers(expected)
    skel_a, nums_a = split_numbers(actual)
    out = []
    if skel_e != skel_a:
        i = next((k for k, (x, y) in enumerate(zip(skel_e, skel_a)) if x != y), min(len(skel_e), len(skel_a)))
        shown = [s[max(0, i - 120):i + 120].replace(MARK, "#") for s in (skel_e, skel_a)]
        out.append(f"{where}: the text differs (numbers shown as #) at character {i}: expected …{shown[0]!r}…, "
                   f"got …{shown[1]!r}…")
        return out  # the numbers no longer line up
    positions = [m.start() for m in re.finditer(MARK, skel_e)]
    bad = []
    for k, (x, y) in enumerate(zip(nums_e, nums_a)):
        if x == y:
            continue
        try:
            ok = close(float(x), float(y), rel, abs_)
        except ValueError:
            ok = False
        if not ok:
            bad.append(k)
    for k in bad[:limit]:
        at = positions[k] if k < len(positions) else 0
        context = skel_e[max(0, at - 100):at + 40].replace(MARK, "#")
        out.append(f"{where}: number {k} expected {nums_e[k]}, got {nums_a[k]}, in …{context!r}…")
    if len(bad) > limit:
        out.append(f"{where}: … {len(bad) - limit} more numbers differ")
    return out


def outcome_differences(outcome, golden_dir: Path, replacements: dict[str, str], rel: float = REL,
                        abs_: float = ABS) -> list[str]:
    """Every difference between a new run of a case and its goldens."""
    where = outcome.case.id
    if outcome.skipped:
        return [f"{where}: not run: {outcome.skipped}"]
    record = json.loads((golden_dir / "result.json").read_text(encoding="utf-8"))
    if record["code"] != outcome.code:
        return [f"{where}: exit code {record['code']} expected, got {outcome.code}\n{outcome.describe_failure()}"]
    if outcome.code != 0:
        error = [line for line in outcome.stderr.splitlines() if line.startswith("error:")]
        got = normalise_json(error[-1] if error else "", replacements)
        return [] if got == record["error"] else [f"{where}: error {record['error']!r} expected, got {got!r}"]
    out = [f"{where} stdout {d}" for d in json_differences(record["stdout"], normalise_json(outcome.output, replacements),
                                                            "$", rel, abs_)]
    for name, path in outcome.files.items():
        golden = golden_dir / golden_name(name)
        if not Path(path).exists():
            out.append(f"{where}: the command did not write {name}")
            continue
        if name.endswith(HTML_SUFFIX):
            out += html_differences(load_golden_html(golden), normalise_html(Path(path).read_text(encoding="utf-8")),
                                    f"{where} file {name}", rel, abs_)
        else:
            import pandas as pd

            out += table_differences(pd.read_parquet(golden), read_table(path), f"{where} file {name}", rel, abs_)
    return out
