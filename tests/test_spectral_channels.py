"""CASA channel ranges for data.continuum.linefree: what they select, and one clear error."""

from __future__ import annotations

import numpy as np
import pytest

from htclean.imaging.errors import InputError
from htclean.imaging.spectral.channels import KEY, parse_channels


def test_ranges_and_single_channels():
    got = parse_channels("0~5;55~62", 64)
    assert got.dtype == np.int64
    assert got.tolist() == [*range(0, 6), *range(55, 63)]
    assert parse_channels("7", 8).tolist() == [7]
    assert parse_channels(" 3 ; 7~8 ", 10).tolist() == [3, 7, 8]
    assert parse_channels("4~9;0~5;2", 10).tolist() == list(range(10))  # union, sorted
    assert parse_channels("0~63", 64).tolist() == list(range(64))


def test_one_spectral_window_prefix():
    assert parse_channels("0:0~5;55~62", 64).tolist() == parse_channels("0~5;55~62", 64).tolist()
    assert parse_channels("2:1~2", 4, spw=2).tolist() == [1, 2]
    assert parse_channels("*:1~2", 4, spw=2).tolist() == [1, 2]
    assert parse_channels("3:1~2", 4).tolist() == [1, 2]  # window not known: accepted
    with pytest.raises(InputError, match=rf"^{KEY}: .*spectral window 1, but spectral window 0"):
        parse_channels("1:0~5", 64, spw=0)


@pytest.mark.parametrize("text, why", [
    ("0~64", r"past the spectral window's last channel 63 \(64 channels\)"),
    ("0~5;64", r"past the spectral window's last channel 63"),
    ("5~2", r"reversed \(start 5 > end 2\)"),
    ("0~5;9~3", r"'9~3' is reversed"),
    ("abc", r"'abc' in 'abc' is not a channel range"),
    ("0~", r"is not a channel range"),
    ("~5", r"is not a channel range"),
    ("-1~5", r"is not a channel range"),
    ("0~5;;9", r"'' in '0~5;;9' is not a channel range"),
    ("1.40~1.41GHz", r"is not a channel range"),
    ("0~10^2", r"is not a channel range"),
    ("0:0~5,1:2~9", r"several spectral windows"),
    ("x:0~5", r"bad spectral-window prefix 'x'"),
    ("", r"empty"),
    ("  ", r"empty"),
    (5, r"expected CASA channel ranges"),
    (None, r"expected CASA channel ranges"),
])
def test_bad_ranges_are_one_input_error_naming_the_key(text, why):
    with pytest.raises(InputError, match=rf"^{KEY}: ") as err:
        parse_channels(text, 64)
    assert "\n" not in str(err.value)
    assert err.match(why)


def test_other_key_and_no_channels():
    with pytest.raises(InputError, match=r"^cube.linefree: range '9' goes past"):
        parse_channels("9", 4, key="cube.linefree")
    with pytest.raises(InputError, match="has no channels"):
        parse_channels("0", 0)
