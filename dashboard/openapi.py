"""The dashboard API's OpenAPI 3.1 document. Data shapes come from the same msgspec structs the
handlers encode, so the document cannot drift from the responses."""

from __future__ import annotations

import functools
from typing import Any

import msgspec

from dronetrack.record import MAX_EPOCH_MS, Telemetry
from dronetrack.store import Alert, FleetStats, TrackPoint

Json = dict[str, Any]

_FLEET = {
    "name": "fleet",
    "in": "query",
    "schema": {"type": "string"},
    "description": "One of the user's fleets (default: their first). Another fleet is a 404.",
}
_DRONE = {"name": "drone_id", "in": "path", "required": True, "schema": {"type": "string"}}
_TIME_DOC = "epoch milliseconds or an RFC 3339 date-time (with its zone), years 1 to 9999"
# What dashboard.handlers._time takes (MIN: 0001-01-01T00:00:00Z).
_TIME = {
    "anyOf": [
        {"type": "integer", "minimum": -62_135_596_800_000, "maximum": MAX_EPOCH_MS},
        {"type": "string", "format": "date-time"},
    ]
}


def _time(name: str, what: str, *, required: bool = False) -> Json:
    return {
        "name": name,
        "in": "query",
        "required": required,
        "schema": _TIME,
        "description": f"{what}; {_TIME_DOC}",
    }


def _limit(default: int, maximum: int) -> Json:
    return {
        "name": "limit",
        "in": "query",
        "schema": {"type": "integer", "minimum": 1, "maximum": maximum, "default": default},
    }


def _ref(name: str) -> Json:
    return {"$ref": f"#/components/schemas/{name}"}


def _ok(description: str, schema: Json) -> Json:
    return {"description": description, "content": {"application/json": {"schema": schema}}}


def _object(**properties: Json) -> Json:
    return {"type": "object", "properties": properties, "required": list(properties)}


def _list(name: str) -> Json:
    return {"type": "array", "items": _ref(name)}


_PROBLEM = {"content": {"application/problem+json": {"schema": _ref("Problem")}}}
_CSRF = {
    "name": "X-CSRF-Token",
    "in": "header",
    "required": True,
    "schema": {"type": "string"},
    "description": "the session's csrf_token (from login or GET /api/session)",
}
_FORBIDDEN = {
    "description": "CSRF token missing or wrong, or Origin is another site's",
    **_PROBLEM,
}
_ERRORS = {
    "400": {
        "description": "A malformed query parameter (`parameter` names it), or a window whose "
        "since is not before its until (a replay's: longer than 6 h)",
        **_PROBLEM,
    },
    "401": {"description": "Not signed in", **_PROBLEM},
    "404": {"description": "No such fleet, drone or alert among the user's", **_PROBLEM},
}


def _get(summary: str, params: list[Json], ok: Json) -> Json:
    return {"get": {"summary": summary, "parameters": params, "responses": {"200": ok, **_ERRORS}}}


@functools.cache
def document() -> Json:
    _, components = msgspec.json.schema_components(
        [Telemetry, TrackPoint, Alert, FleetStats], ref_template="#/components/schemas/{name}"
    )
    components["Problem"] = {
        "type": "object",
        "description": "RFC 9457 problem details",
        "properties": {
            "type": {"type": "string"},
            "title": {"type": "string"},
            "status": {"type": "integer"},
            "detail": {"type": "string"},
            "parameter": {"type": "string", "description": "the query parameter at fault"},
        },
    }
    components["Session"] = _object(
        user={"type": "string"},
        fleets={"type": "array", "items": {"type": "string"}},
        csrf_token={"type": "string", "description": "send back as X-CSRF-Token"},
        expires={"type": "integer", "description": "epoch seconds"},
    )
    nullable_int = {"type": ["integer", "null"]}
    paths: Json = {
        "/api/login": {
            "post": {
                "summary": "Sign in; sets the HttpOnly session cookie",
                "security": [],
                "requestBody": {
                    "required": True,
                    "content": {
                        "application/json": {
                            "schema": {
                                **_object(name={"type": "string"}, password={"type": "string"}),
                                "additionalProperties": False,
                            }
                        }
                    },
                },
                "responses": {
                    "200": _ok("Signed in", _ref("Session")),
                    "400": {"description": "Not a JSON object of name and password", **_PROBLEM},
                    "401": {"description": "Wrong name or password", **_PROBLEM},
                    "403": {"description": "Origin is another site's", **_PROBLEM},
                    "415": {"description": "Not JSON", **_PROBLEM},
                    "429": {
                        "description": "Too many failed logins for this name or address; "
                        "Retry-After says when to try again",
                        **_PROBLEM,
                    },
                },
            }
        },
        "/api/logout": {
            "post": {
                "summary": "Sign out: clears the cookie and ends the user's sessions, every copy "
                "of their cookies included",
                "parameters": [_CSRF],
                "responses": {
                    "200": _ok("Signed out", _object(signed_out={"const": True})),
                    "401": {"description": "Not signed in", **_PROBLEM},
                    "403": _FORBIDDEN,
                },
            }
        },
        "/api/session": _get("Who is signed in", [], _ok("The session", _ref("Session"))),
        "/api/drones": _get(
            "Latest state of every drone of a fleet",
            [_FLEET],
            _ok(
                "Drones, with the server clock and the stale/lost thresholds",
                _object(
                    fleet={"type": "string"},
                    now={"type": "integer"},
                    stale_after_ms={"type": "integer"},
                    lost_after_ms={"type": "integer"},
                    drones=_list("Telemetry"),
                ),
            ),
        ),
        "/api/drones/{drone_id}": _get(
            "One drone's latest state", [_DRONE, _FLEET], _ok("The drone", _ref("Telemetry"))
        ),
        "/api/drones/{drone_id}/track": _get(
            "One drone's track, newest first",
            [
                _DRONE,
                _FLEET,
                _time("since", "earliest point (inclusive)"),
                _time("before", "page cursor: points strictly older than this"),
                _limit(1000, 10_000),
            ],
            _ok(
                "A page of points; next_before is the cursor for the next page",
                _object(
                    drone_id={"type": "string"},
                    points=_list("TrackPoint"),
                    next_before=nullable_int,
                ),
            ),
        ),
        "/api/drones/{drone_id}/alerts": _get(
            "One drone's alerts, newest first",
            [_DRONE, _FLEET, _limit(50, 1000)],
            _ok("Alerts", _object(drone_id={"type": "string"}, alerts=_list("Alert"))),
        ),
        "/api/alerts": _get(
            "A fleet's alerts raised in [since, until), newest first (default: the last day)",
            [
                _FLEET,
                _time("since", "window start (inclusive)"),
                _time("until", "window end (exclusive); page cursor"),
                {
                    "name": "state",
                    "in": "query",
                    "schema": {"enum": ["active", "acknowledged", "cleared"]},
                },
                _limit(200, 1000),
            ],
            _ok(
                "Alerts; next_until pages further back (key alerts by alert_id)",
                _object(fleet={"type": "string"}, alerts=_list("Alert"), next_until=nullable_int),
            ),
        ),
        "/api/alerts/{alert_id}/ack": {
            "post": {
                "summary": "Acknowledge an alert (the first acknowledgement wins)",
                "parameters": [
                    {
                        "name": "alert_id",
                        "in": "path",
                        "required": True,
                        "schema": {"type": "string"},
                    },
                    _FLEET,
                    _CSRF,
                ],
                "responses": {
                    "200": _ok("The alert", _ref("Alert")),
                    "403": _FORBIDDEN,
                    **_ERRORS,
                },
            }
        },
        "/api/stats": _get(
            "Fleet statistics: now, and per minute over [since, until) (default: last hour)",
            [_FLEET, _time("since", "window start"), _time("until", "window end")],
            _ok(
                "Statistics",
                _object(
                    fleet={"type": "string"},
                    now={"type": "integer"},
                    current={"type": "object"},
                    minutes=_list("FleetStats"),
                ),
            ),
        ),
        "/api/replay": _get(
            "Every drone's track in [since, until) oldest first, and the alerts raised in it",
            [
                _FLEET,
                _time("since", "window start", required=True),
                _time("until", "window end (after since, at most 6 h on)", required=True),
            ],
            _ok("The window's flights", {"type": "object"}),
        ),
        "/api/events": _get(
            "Live updates as Server-Sent Events: `drones` and `alerts` (full snapshots), then "
            "`drones-delta` (only the drones that reported since; merge by drone_id)",
            [_FLEET],
            {"description": "An event stream", "content": {"text/event-stream": {}}},
        ),
        "/api/replay/columns": _get(
            "The replay window in compact form: per drone, delta-coded integer columns "
            "(ts in ms; lat/lon in microdegrees; alt_m, speed_mps, battery_pct in tenths; "
            "heading_deg in degrees; `scales` gives the divisors), and the window's alerts",
            [
                _FLEET,
                _time("since", "window start", required=True),
                _time("until", "window end (after since, at most 6 h on)", required=True),
            ],
            _ok("The window's flights as columns", {"type": "object"}),
        ),
    }
    paths.update(_export_paths())
    return {
        "openapi": "3.1.0",
        "info": {"title": "dronetrack dashboard API", "version": "1"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {
                "session": {"type": "apiKey", "in": "cookie", "name": "dronetrack_session"}
            },
        },
        "security": [{"session": []}],
    }


# -- exports (dashboard.exports) ----------------------------------------------------------


def _export_paths() -> Json:
    text = {"type": "string"}
    files = {
        "application/gpx+xml": {"schema": text},
        "application/vnd.google-earth.kml+xml": {"schema": text},
        "application/geo+json": {
            "schema": {
                "type": "object",
                "required": ["type", "features"],
                "properties": {
                    "type": {"const": "FeatureCollection"},
                    "features": {"type": "array"},
                },
            }
        },
        "text/csv": {"schema": text},
    }
    export = _get(
        "One drone's track in [since, until) as a file, oldest point first: GPX 1.1, KML 2.2 "
        "(gx:Tracks in a gx:MultiTrack, altitude absolute), GeoJSON (a FeatureCollection of "
        "Points [lon, lat, alt]) or CSV; times UTC ISO 8601, altitude metres above mean sea level",
        [
            _DRONE,
            {
                "name": "format",
                "in": "path",
                "required": True,
                "schema": {"enum": ["gpx", "kml", "geojson", "csv"]},
            },
            _FLEET,
            _time("since", "range start (inclusive)", required=True),
            _time("until", "range end (exclusive; default: now)"),
        ],
        {
            "description": "The file, streamed, named by Content-Disposition",
            "headers": {"Content-Disposition": {"schema": text}},
            "content": files,
        },
    )
    export["get"]["responses"]["422"] = {
        "description": "The range holds more points than an export may (max_points names the "
        "limit, DRONETRACK_DASHBOARD_EXPORT_MAX_POINTS); nothing of the file is sent",
        **_PROBLEM,
    }
    return {"/api/drones/{drone_id}/track.{format}": export}
