"""Numbers for people (issue 13, item 13): exact strings for hand-picked values."""

import numpy as np
import pandas as pd
import pytest

from core.format import column_printf, format_number, format_p, format_table


@pytest.mark.parametrize("value,expected", [
    (22236.0542, "22,236"), (1234567.0, "1,234,567"), (12345.6, "12,346"), (999.4, "999"), (12.345, "12.3"),
    (0.076612, "0.0766"), (-0.0049, "-0.00490"), (1.0, "1.00"), (0.0, "0"), (3.2e-6, "3.20e-06"),
    (np.nan, "—"), (None, "—"), (42, "42"), (np.int64(123456), "123,456"), (True, "True"),
])
def test_format_number(value, expected):
    assert format_number(value) == expected


@pytest.mark.parametrize("p,expected", [
    (2.3e-142, "p = 2.3e-142"), (0.0, "p < 1e-300"), (0.0234, "p = 0.023"), (0.001, "p = 0.001"),
    (0.00099, "p = 9.9e-04"), (0.5, "p = 0.500"), (np.nan, "—"),
])
def test_format_p(p, expected):
    assert format_p(p) == expected


def test_tables_never_show_scientific_notation_or_zero_runs():
    table = pd.DataFrame({"arm": ["a", "b"], "n": [21307, 64], "effect": [22236.0542, 12345.0],
                          "p_value": [2.3e-142, 0.0], "defined": [True, False]})
    out = format_table(table)
    assert out.to_dict("list") == {"arm": ["a", "b"], "n": ["21,307", "64"], "effect": ["22,236", "12,345"],
                                   "p_value": ["2.3e-142", "< 1e-300"], "defined": [True, False]}
    assert column_printf([22236.05, 1500.0]) == "%,.0f"
    assert column_printf([0.0766, 0.0453, 0.0]) == "%,.4f"
    assert column_printf([np.nan]) is None
