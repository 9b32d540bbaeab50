import math

import pytest

from ionspike.errors import UnitError
from ionspike.units import format_quantity, parse_quantity


@pytest.mark.parametrize("text, unit, expected", [
    ("250 MOhm", "ohm", 250e6), ("1 TOhm", "ohm", 1e12), ("22kOhm", "ohm", 22e3), ("1 GΩ", "ohm", 1e9),
    ("10 pF", "F", 10e-12), ("4.14 aF", "F", 4.14e-18), ("2 us", "s", 2e-6), ("2 µs", "s", 2e-6),
    ("300ms", "s", 0.3), ("0.8V", "V", 0.8), ("550 1/(s*V)", "1/(s*V)", 550.0), ("600 1/s", "1/s", 600.0),
    ("9.75e-4 A/V^2", "A/V^2", 9.75e-4), ("0.2", "", 0.2), ("inf", "", math.inf), ("300 K", "K", 300.0),
])
def test_parses_unit_strings_to_si(text, unit, expected):
    assert parse_quantity(text, unit) == pytest.approx(expected, rel=1e-12, abs=0)


def test_numbers_pass_through_as_si():
    assert parse_quantity(2.5e8, "ohm") == 2.5e8


@pytest.mark.parametrize("text, fragment", [
    ("250 Mohms?", "is not a quantity"),
    ("abc", "is not a quantity"),
    ("1 foo", "unknown unit 'foo'"),
    ("250 pF", "expected ohm"),
])
def test_malformed_or_wrong_unit_is_rejected_with_the_name(text, fragment):
    with pytest.raises(UnitError, match="circuit.r_c") as info:
        parse_quantity(text, "ohm", name="circuit.r_c")
    assert fragment in str(info.value)


def test_format_uses_engineering_prefixes():
    assert format_quantity(2.5e8, "Ohm") == "250 MOhm"
    assert format_quantity(1e-11, "F") == "10 pF"
