"""Track exports through the running dashboard, each file read by a parser that is not ours:
GPX and KML validated against their published XML Schemas (lxml) and GPX read back by gpxpy,
GeoJSON against the published FeatureCollection JSON Schema, CSV by the csv module. The schemas
are vendored under tests/schemas (sources in its README)."""

from __future__ import annotations

import csv
import io
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import gpxpy
import jsonschema
import pytest
from lxml import etree

from dashboard import exports
from dronetrack.web import REGISTRY
from tests.dashboard_env import TRACK_POINTS, Dashboard, telemetry

SCHEMAS = Path(__file__).parent.parent / "schemas"
T0 = 1_767_225_600_000  # 2026-01-01T00:00:00Z
RANGE = "since=2026-01-01T00:00:00Z&until=2026-01-01T00:00:05Z"
# (ts, lat, lon, alt_m, speed_mps, heading_deg, battery_pct): a-7's three points in RANGE.
POINTS = [
    (T0, 47.5, 8.25, 420.5, 12.0, 90.0, 88.5),
    (T0 + 1_500, 47.50001, 8.25002, 421.25, 12.5, 91.0, 88.25),
    (T0 + 3_250, 47.50003, 8.25005, 422.0, 13.0, 92.5, 88.0),
]
OUTSIDE = [T0 - 1, T0 + 5_000]  # just before since, and at until (exclusive)


@pytest.fixture
async def a7(dashboard: Dashboard) -> Dashboard:
    """Drone a-7 of fleet alpha with POINTS in RANGE and a point either side of it."""
    inside = [
        telemetry(
            "alpha",
            "a-7",
            ts,
            lat=lat,
            lon=lon,
            alt_m=alt,
            speed_mps=speed,
            heading_deg=heading,
            battery=battery,
        )
        for ts, lat, lon, alt, speed, heading, battery in POINTS
    ]
    outside = [telemetry("alpha", "a-7", ts, lat=1.0, lon=2.0, alt_m=3.0) for ts in OUTSIDE]
    await dashboard.store.write_telemetry(inside + outside)
    return dashboard


async def _get(
    dashboard: Dashboard, path: str, user: str = "alice"
) -> tuple[int, dict[str, str], bytes]:
    async with dashboard.client() as http:
        await dashboard.login(http, user)
        async with http.get(path) as r:
            return r.status, dict(r.headers), await r.read()


def _xsd(path: Path) -> etree.XMLSchema:
    return etree.XMLSchema(etree.parse(str(path)))


async def test_gpx_is_valid_gpx_1_1_and_reads_back(a7: Dashboard) -> None:
    status, headers, body = await _get(a7, f"/api/drones/a-7/track.gpx?{RANGE}")
    assert status == 200, body
    assert headers["Content-Type"] == "application/gpx+xml"
    assert headers["Content-Disposition"] == (
        'attachment; filename="a-7_20260101T000000Z_20260101T000005Z.gpx"'
    )
    schema = _xsd(SCHEMAS / "gpx" / "gpx.xsd")
    schema.assertValid(etree.fromstring(body))

    gpx = gpxpy.parse(body.decode())
    assert gpx.version == "1.1"
    assert gpx.name == "a-7 2026-01-01T00:00:00.000Z to 2026-01-01T00:00:05.000Z"
    ((segment,),) = [track.segments for track in gpx.tracks]
    assert [(p.latitude, p.longitude, p.elevation, p.time) for p in segment.points] == [
        (47.5, 8.25, 420.5, datetime(2026, 1, 1, 0, 0, 0, tzinfo=UTC)),
        (47.50001, 8.25002, 421.25, datetime(2026, 1, 1, 0, 0, 1, 500_000, tzinfo=UTC)),
        (47.50003, 8.25005, 422.0, datetime(2026, 1, 1, 0, 0, 3, 250_000, tzinfo=UTC)),
    ]
    assert b"<time>2026-01-01T00:00:01.500Z</time>" in body


async def test_kml_is_valid_kml_2_2_with_timed_absolute_tracks(
    a7: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    # a-7's three points in pages of 2, newest first as the store pages: [1.5 s, 3.25 s], [0 s].
    monkeypatch.setattr(exports, "PAGE_POINTS", 2)
    status, headers, body = await _get(a7, f"/api/drones/a-7/track.kml?{RANGE}")
    assert status == 200, body
    assert headers["Content-Type"] == "application/vnd.google-earth.kml+xml"
    assert headers["Content-Disposition"].endswith('.kml"')
    # ogckml22.xsd imports kml22gx.xsd (gx:Track), atom and xAL from beside it.
    schema = _xsd(SCHEMAS / "kml" / "ogckml22.xsd")
    doc = etree.fromstring(body)
    schema.assertValid(doc)

    ns = {"kml": "http://www.opengis.net/kml/2.2", "gx": "http://www.google.com/kml/ext/2.2"}
    (multi,) = doc.findall(".//kml:Placemark/gx:MultiTrack", ns)
    assert multi.findtext("kml:altitudeMode", namespaces=ns) == "absolute"
    assert multi.findtext("gx:interpolate", namespaces=ns) == "1"
    tracks = multi.findall("gx:Track", ns)
    assert [t.findtext("kml:altitudeMode", namespaces=ns) for t in tracks] == ["absolute"] * 2
    assert [[w.text for w in t.findall("kml:when", ns)] for t in tracks] == [
        ["2026-01-01T00:00:00.000Z"],
        ["2026-01-01T00:00:01.500Z", "2026-01-01T00:00:03.250Z"],
    ]
    assert [[c.text for c in t.findall("gx:coord", ns)] for t in tracks] == [
        ["8.25 47.5 420.5"],
        ["8.25002 47.50001 421.25", "8.25005 47.50003 422.0"],
    ]


async def test_geojson_is_a_valid_feature_collection_of_points(
    a7: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "PAGE_POINTS", 2)  # pages joined into one features array
    status, headers, body = await _get(a7, f"/api/drones/a-7/track.geojson?{RANGE}")
    assert status == 200, body
    assert headers["Content-Type"] == "application/geo+json"
    assert headers["Content-Disposition"].endswith('.geojson"')
    schema = json.loads((SCHEMAS / "geojson" / "FeatureCollection.json").read_text())
    document = json.loads(body)
    jsonschema.Draft7Validator(schema).validate(document)

    assert document["drone_id"] == "a-7"
    assert document["since"] == "2026-01-01T00:00:00.000Z"
    assert document["until"] == "2026-01-01T00:00:05.000Z"
    assert [(f["geometry"], f["properties"]) for f in document["features"]] == [
        (
            {"type": "Point", "coordinates": [8.25, 47.5, 420.5]},
            {
                "time": "2026-01-01T00:00:00.000Z",
                "speed_mps": 12.0,
                "heading_deg": 90.0,
                "battery_pct": 88.5,
            },
        ),
        (
            {"type": "Point", "coordinates": [8.25002, 47.50001, 421.25]},
            {
                "time": "2026-01-01T00:00:01.500Z",
                "speed_mps": 12.5,
                "heading_deg": 91.0,
                "battery_pct": 88.25,
            },
        ),
        (
            {"type": "Point", "coordinates": [8.25005, 47.50003, 422.0]},
            {
                "time": "2026-01-01T00:00:03.250Z",
                "speed_mps": 13.0,
                "heading_deg": 92.5,
                "battery_pct": 88.0,
            },
        ),
    ]


async def test_csv_has_a_header_and_one_utc_point_per_row(a7: Dashboard) -> None:
    status, headers, body = await _get(a7, f"/api/drones/a-7/track.csv?{RANGE}")
    assert status == 200, body
    assert headers["Content-Type"] == "text/csv; charset=utf-8"
    assert headers["Transfer-Encoding"] == "chunked", "streamed, not sized in advance"
    assert headers["Content-Disposition"] == (
        'attachment; filename="a-7_20260101T000000Z_20260101T000005Z.csv"'
    )
    rows = list(csv.reader(io.StringIO(body.decode(), newline="")))
    assert rows == [
        ["time", "lat", "lon", "alt_m", "speed_mps", "heading_deg", "battery_pct"],
        ["2026-01-01T00:00:00.000Z", "47.5", "8.25", "420.5", "12.0", "90.0", "88.5"],
        ["2026-01-01T00:00:01.500Z", "47.50001", "8.25002", "421.25", "12.5", "91.0", "88.25"],
        ["2026-01-01T00:00:03.250Z", "47.50003", "8.25005", "422.0", "13.0", "92.5", "88.0"],
    ]


async def test_an_empty_range_is_an_empty_valid_file(a7: Dashboard) -> None:
    status, _, body = await _get(
        a7, "/api/drones/a-7/track.gpx?since=2025-06-01T00:00:00Z&until=2025-06-02T00:00:00Z"
    )
    assert status == 200
    _xsd(SCHEMAS / "gpx" / "gpx.xsd").assertValid(etree.fromstring(body))
    assert gpxpy.parse(body.decode()).tracks[0].segments[0].points == []


async def test_a_track_of_many_pages_comes_out_whole_and_oldest_first(
    dashboard: Dashboard, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(exports, "PAGE_POINTS", 50)  # a-1's 120 points: pages of 50, 50, 20
    since = dashboard.t0 - 3_600_000
    status, _, body = await _get(
        dashboard, f"/api/drones/a-1/track.csv?since={since}&until={dashboard.t0 + 1}"
    )
    assert status == 200, body
    times = [row[0] for row in list(csv.reader(io.StringIO(body.decode())))[1:]]
    start = datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=dashboard.t0)
    expected = [
        (start - timedelta(seconds=TRACK_POINTS - 1 - i)).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3]
        + "Z"
        for i in range(TRACK_POINTS)
    ]
    assert times == expected


async def test_a_range_past_the_limit_is_refused_before_any_of_the_file(a7: Dashboard) -> None:
    a7.settings = a7.settings.replace(dashboard_export_max_points=3)
    await a7.restart()
    status, _, _ = await _get(a7, f"/api/drones/a-7/track.gpx?{RANGE}")
    assert status == 200, "three points are within a limit of three"

    a7.settings = a7.settings.replace(dashboard_export_max_points=2)
    await a7.restart()
    status, headers, body = await _get(a7, f"/api/drones/a-7/track.gpx?{RANGE}")
    assert status == 422
    assert headers["Content-Type"].split(";")[0] == "application/problem+json"
    assert "Content-Disposition" not in headers
    problem = json.loads(body)
    assert problem["title"] == "Export too large"
    assert problem["max_points"] == 2
    assert "DRONETRACK_DASHBOARD_EXPORT_MAX_POINTS" in problem["detail"]


async def test_another_fleets_drone_is_unknown(a7: Dashboard) -> None:
    status, headers, body = await _get(a7, "/api/drones/b-1/track.gpx?since=0")
    assert status == 404
    assert headers["Content-Type"].split(";")[0] == "application/problem+json"
    assert b"<gpx" not in body
    status, _, _ = await _get(a7, "/api/drones/b-1/track.csv?since=0", user="bob")
    assert status == 200, "bob's fleet is bravo"


async def test_an_export_needs_a_session(a7: Dashboard) -> None:
    async with a7.client() as http, http.get(f"/api/drones/a-7/track.gpx?{RANGE}") as r:
        assert r.status == 401
        assert r.content_type == "application/problem+json"


@pytest.mark.parametrize(
    ("query", "status", "parameter"),
    [
        ("track.gpx", 400, "since"),
        ("track.gpx?since=yesterday", 400, "since"),
        ("track.gpx?since=2026-01-01T00:00:05Z&until=2026-01-01T00:00:05Z", 400, "since"),
        ("track.gpx?since=0&until=2026-13-01T00:00:00Z", 400, "until"),
        ("track.shp?since=0", 404, None),
    ],
)
async def test_bad_requests_are_named(
    a7: Dashboard, query: str, status: int, parameter: str | None
) -> None:
    got, headers, body = await _get(a7, f"/api/drones/a-7/{query}")
    assert got == status, body
    assert headers["Content-Type"].split(";")[0] == "application/problem+json"
    assert json.loads(body).get("parameter") == parameter


async def test_an_export_reads_the_store_not_the_cache(a7: Dashboard) -> None:
    """Two reads of its one page (count, then write), each time from the store: an export's
    pages are not cached, so it is never held in memory whole."""
    registry = a7.server.app[REGISTRY]
    for _ in range(2):
        status, _, _ = await _get(a7, f"/api/drones/a-7/track.csv?{RANGE}")
        assert status == 200
    reads = registry.get_sample_value("dashboard_store_reads_total", {"query": "export"})
    assert reads == 4
