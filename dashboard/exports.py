"""One drone's track over a time range as a file: GPX 1.1, KML 2.2, GeoJSON or CSV.

An export is streamed, never held whole. A first pass reads the range page by page (newest
first, as the store pages) only to count it, refusing a range past the limit before a byte is
sent, and keeps each page's cursor; the second pass reads the pages again, oldest first, and
writes each as it comes. Pages are read from the store, not through the cache: an export is a
one-off bulk read, and caching its pages would hold the whole track in memory after all. A
flight's export is the same thing: its time range, with its id as the span's ``name``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from xml.sax.saxutils import escape

import msgspec

from dashboard.reads import Reads
from dronetrack.store import TrackPoint
from dronetrack.web import Problem

PAGE_POINTS = 2_000  # points per store read, so at most this many are in memory at once

_EPOCH = datetime(1970, 1, 1)
_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
_json = msgspec.json.Encoder()


def iso(ms: int) -> str:
    """UTC ISO 8601 with milliseconds and a Z, as every format here writes time."""
    return (_EPOCH + timedelta(milliseconds=ms)).isoformat(timespec="milliseconds") + "Z"


def num(x: float) -> str:
    """Shortest round-tripping decimal, never in exponent form (xsd:decimal has none)."""
    text = repr(x)
    return format(Decimal(text), "f") if "e" in text else text


@dataclass(frozen=True)
class Span:
    """What an export covers: ``since_ms <= ts < until_ms`` of one drone of one fleet."""

    fleet: str
    drone_id: str
    since_ms: int
    until_ms: int
    name: str | None = None  # e.g. a flight's id; else the file is named by its range

    @property
    def title(self) -> str:
        what = self.name or f"{iso(self.since_ms)} to {iso(self.until_ms)}"
        return f"{self.drone_id} {what}"

    @property
    def description(self) -> str:
        return (
            f"Track of drone {self.drone_id} of fleet {self.fleet} from {iso(self.since_ms)} "
            f"to {iso(self.until_ms)} (UTC); altitude in metres above mean sea level"
        )

    def filename(self, extension: str) -> str:
        def compact(ms: int) -> str:
            return (_EPOCH + timedelta(milliseconds=ms)).strftime("%Y%m%dT%H%M%SZ")

        what = self.name or f"{compact(self.since_ms)}_{compact(self.until_ms)}"
        stem = _UNSAFE.sub("_", f"{self.drone_id}_{what}").strip("._") or "track"
        return f"{stem}.{extension}"


@dataclass(frozen=True)
class Format:
    """A file format as text: a head, then each page of points (oldest first) as text, then a
    tail."""

    extension: str
    media_type: str
    head: Callable[[Span], str]
    page: Callable[[list[TrackPoint]], str]
    tail: str
    separator: str = ""  # between two pages' text


def _gpx_head(span: Span) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<gpx version="1.1" creator="dronetrack" xmlns="http://www.topografix.com/GPX/1/1">\n'
        f"<metadata><name>{escape(span.title)}</name>"
        f"<desc>{escape(span.description)}</desc></metadata>\n"
        f"<trk><name>{escape(span.drone_id)}</name><trkseg>\n"
    )


def _gpx_point(p: TrackPoint) -> str:
    # GPX's ele is metres above mean sea level, which alt_m is.
    return (
        f'<trkpt lat="{num(p.lat)}" lon="{num(p.lon)}"><ele>{num(p.alt_m)}</ele>'
        f"<time>{iso(p.ts)}</time></trkpt>\n"
    )


def _kml_head(span: Span) -> str:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>\n'
        '<kml xmlns="http://www.opengis.net/kml/2.2" xmlns:gx="http://www.google.com/kml/ext/2.2">\n'
        f"<Document><name>{escape(span.title)}</name>\n"
        f"<Placemark><name>{escape(span.drone_id)}</name>"
        f"<description>{escape(span.description)}</description>\n"
        "<gx:MultiTrack><altitudeMode>absolute</altitudeMode><gx:interpolate>1</gx:interpolate>\n"
    )


def _kml_page(points: list[TrackPoint]) -> str:
    """A gx:Track per page: its schema wants every ``when`` before every ``gx:coord``, so a
    page is one track, and the MultiTrack joins them (interpolated) into one line."""
    whens = "".join(f"<when>{iso(p.ts)}</when>\n" for p in points)
    coords = "".join(
        f"<gx:coord>{num(p.lon)} {num(p.lat)} {num(p.alt_m)}</gx:coord>\n" for p in points
    )
    return f"<gx:Track><altitudeMode>absolute</altitudeMode>\n{whens}{coords}</gx:Track>\n"


def _geojson_head(span: Span) -> str:
    meta = {
        "name": span.title,
        "fleet": span.fleet,
        "drone_id": span.drone_id,
        "since": iso(span.since_ms),
        "until": iso(span.until_ms),
    }
    # Foreign members (RFC 7946 6.1) carry what the file is; each point is a Feature.
    return '{"type":"FeatureCollection",' + _json.encode(meta).decode()[1:-1] + ',"features":[\n'


def _geojson_point(p: TrackPoint) -> str:
    return (
        '{"type":"Feature","geometry":{"type":"Point","coordinates":'
        f"[{num(p.lon)},{num(p.lat)},{num(p.alt_m)}]}},"
        f'"properties":{{"time":"{iso(p.ts)}","speed_mps":{num(p.speed_mps)},'
        f'"heading_deg":{num(p.heading_deg)},"battery_pct":{num(p.battery_pct)}}}}}'
    )


def _csv_point(p: TrackPoint) -> str:
    # Numbers and times only: nothing here ever needs CSV quoting.
    fields = (p.lat, p.lon, p.alt_m, p.speed_mps, p.heading_deg, p.battery_pct)
    return ",".join([iso(p.ts), *map(num, fields)]) + "\r\n"


def _each(
    point: Callable[[TrackPoint], str], between: str = ""
) -> Callable[[list[TrackPoint]], str]:
    return lambda points: between.join(map(point, points))


FORMATS = {
    "gpx": Format(
        "gpx",
        "application/gpx+xml",
        _gpx_head,
        _each(_gpx_point),
        "</trkseg></trk>\n</gpx>\n",
    ),
    "kml": Format(
        "kml",
        "application/vnd.google-earth.kml+xml",
        _kml_head,
        _kml_page,
        "</gx:MultiTrack></Placemark></Document>\n</kml>\n",
    ),
    "geojson": Format(
        "geojson",
        "application/geo+json",
        _geojson_head,
        _each(_geojson_point, ",\n"),
        "\n]}\n",
        ",\n",
    ),
    "csv": Format(
        "csv",
        "text/csv",
        lambda span: "time,lat,lon,alt_m,speed_mps,heading_deg,battery_pct\r\n",
        _each(_csv_point),
        "",
    ),
}


class TooLarge(Problem):
    """The range holds more points than an export may; the answer names the limit."""

    def __init__(self, max_points: int) -> None:
        super().__init__(
            422,
            "Export too large",
            f"the range holds more than {max_points} points, the most an export may have "
            "(DRONETRACK_DASHBOARD_EXPORT_MAX_POINTS): narrow since and until",
            max_points=max_points,
        )


async def plan(reads: Reads, span: Span, max_points: int) -> list[int]:
    """The ``before_ms`` cursor of each page of the span, newest page first; ``TooLarge`` if
    the span holds more than ``max_points`` (found reading at most one page past it)."""
    cursors: list[int] = []
    before, total = span.until_ms, 0
    while True:
        page = await _page(reads, span, before)
        if not page:
            return cursors
        total += len(page)
        if total > max_points:
            raise TooLarge(max_points)
        cursors.append(before)
        if len(page) < PAGE_POINTS:
            return cursors
        before = page[-1].ts


async def _page(reads: Reads, span: Span, before: int) -> list[TrackPoint]:
    reads.store_reads.labels("export").inc()
    return await reads.store.track(
        span.fleet, span.drone_id, limit=PAGE_POINTS, before_ms=before, since_ms=span.since_ms
    )


async def oldest_first(
    reads: Reads, span: Span, cursors: list[int]
) -> AsyncIterator[list[TrackPoint]]:
    """The planned pages again, oldest point first. Page k holds ``[cursors[k+1], cursors[k])``:
    a point that arrived late never shows twice, and a point purged since never shifts a page."""
    if not cursors:
        return
    floors = [*cursors[1:], span.since_ms]
    for before, floor in zip(reversed(cursors), reversed(floors), strict=True):
        page = await _page(reads, span, before)
        yield [p for p in reversed(page) if p.ts >= floor]


async def render(reads: Reads, span: Span, fmt: Format, cursors: list[int]) -> AsyncIterator[bytes]:
    """The file, a page at a time."""
    yield fmt.head(span).encode()
    first = True
    async for page in oldest_first(reads, span, cursors):
        if page:
            text = fmt.page(page)
            yield (text if first else fmt.separator + text).encode()
            first = False
    yield fmt.tail.encode()


def headers(span: Span, fmt: Format) -> dict[str, str]:
    charset = "; charset=utf-8" if fmt.media_type.startswith("text/") else ""
    return {
        "Content-Type": fmt.media_type + charset,
        "Content-Disposition": f'attachment; filename="{span.filename(fmt.extension)}"',
        "Cache-Control": "no-store",
        "X-Content-Type-Options": "nosniff",
    }
