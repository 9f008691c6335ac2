"""The exports' text: numbers never in exponent form, times UTC with a Z, safe file names."""

from __future__ import annotations

from dashboard.exports import Span, iso, num


def test_numbers_are_plain_decimals() -> None:
    assert num(47.37) == "47.37"
    assert num(100.0) == "100.0"
    assert num(1e-05) == "0.00001"
    assert num(-2.5e-07) == "-0.00000025"
    assert num(1e16) == "10000000000000000"


def test_times_are_utc_iso_8601_with_milliseconds() -> None:
    assert iso(0) == "1970-01-01T00:00:00.000Z"
    assert iso(1_767_225_601_500) == "2026-01-01T00:00:01.500Z"
    assert iso(253_402_300_799_999) == "9999-12-31T23:59:59.999Z"


def test_file_names_are_safe_and_name_the_range_or_the_flight() -> None:
    span = Span("alpha", "a-1", 1_767_225_600_000, 1_767_229_200_000)
    assert span.filename("gpx") == "a-1_20260101T000000Z_20260101T010000Z.gpx"
    odd = Span("alpha", 'x/../"é;', 0, 1000)
    assert odd.filename("csv") == "x_..__19700101T000000Z_19700101T000001Z.csv"
    flight = Span("alpha", "a-1", 0, 1000, name="a-1:1767225600000")
    assert flight.filename("kml") == "a-1_a-1_1767225600000.kml"
    assert flight.title == "a-1 a-1:1767225600000"
