"""The base map without internet: raster tiles served from a local MBTiles file, and what the
page needs to know about its map (where tiles come from, the battery colour thresholds).

MBTiles is SQLite with a ``tiles(zoom_level, tile_column, tile_row, tile_data)`` table (a view
in some files) and a ``metadata(name, value)`` table. Rows are numbered TMS-style, from the
south: the page asks in XYZ (from the north), so ``tile_row = 2**z - 1 - y``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import sqlite3
import threading
from pathlib import Path
from typing import Any

from aiohttp import web

from dashboard.keys import SETTINGS
from dronetrack.settings import Settings, SettingsError
from dronetrack.web import problem

log = logging.getLogger(__name__)

TILE_PATH = "/tiles/{z}/{x}/{y}"
# Tiles change only when the file is replaced: browsers keep them a day and revalidate by ETag.
CACHE_CONTROL = "public, max-age=86400"
RASTER = {"png": "image/png", "jpg": "image/jpeg", "jpeg": "image/jpeg", "webp": "image/webp"}
OSM_ATTRIBUTION = "&copy; OpenStreetMap contributors"


class MBTiles:
    """A read-only MBTiles file. One connection, used by one thread at a time."""

    def __init__(self, path: Path) -> None:
        self.path = path
        try:
            self._db = sqlite3.connect(
                path.resolve().as_uri() + "?mode=ro", uri=True, check_same_thread=False
            )
            rows = self._db.execute("SELECT name, value FROM metadata").fetchall()
            self._db.execute("SELECT 1 FROM tiles LIMIT 1").fetchall()
        except sqlite3.Error as exc:
            raise SettingsError(
                f"DRONETRACK_DASHBOARD_TILES_MBTILES={path}: not a readable MBTiles file ({exc})"
            ) from None
        self.metadata: dict[str, str] = {str(k): str(v) for k, v in rows}
        fmt = self.metadata.get("format", "png").lower()
        if fmt not in RASTER:
            raise SettingsError(
                f"DRONETRACK_DASHBOARD_TILES_MBTILES={path}: holds {fmt!r} tiles; the map needs "
                f"raster tiles ({', '.join(sorted(RASTER))})"
            )
        self.content_type = RASTER[fmt]
        self._lock = threading.Lock()

    def tile(self, z: int, x: int, y: int) -> bytes | None:
        """The tile at XYZ address ``z/x/y``, or None if the file has none there."""
        if not (0 <= z <= 30 and 0 <= x < 2**z and 0 <= y < 2**z):
            return None
        with self._lock:
            row = self._db.execute(
                "SELECT tile_data FROM tiles "
                "WHERE zoom_level = ? AND tile_column = ? AND tile_row = ?",
                (z, x, 2**z - 1 - y),
            ).fetchone()
        return None if row is None else bytes(row[0])

    def page_layer(self) -> dict[str, Any]:
        """Leaflet tile layer options: beyond the file's zoom range the page scales what it has."""
        layer: dict[str, Any] = {
            "url": TILE_PATH,
            "attribution": self.metadata.get("attribution", ""),
        }
        for key, option in (("minzoom", "minNativeZoom"), ("maxzoom", "maxNativeZoom")):
            if self.metadata.get(key, "").isdigit():
                layer[option] = int(self.metadata[key])
        bounds = [float(v) for v in self.metadata.get("bounds", "").split(",") if v.strip()]
        if len(bounds) == 4:  # left, bottom, right, top -> Leaflet's [[south, west], [north, east]]
            layer["bounds"] = [[bounds[1], bounds[0]], [bounds[3], bounds[2]]]
        return layer

    def close(self) -> None:
        self._db.close()


TILES = web.AppKey("tiles", MBTiles)


def setup_tiles(app: web.Application) -> None:
    """Open the configured MBTiles file (a broken one stops start-up, naming the setting) and
    route ``/tiles/``. Tiles are as public as the page's scripts: no session needed."""
    path = app[SETTINGS].dashboard_tiles_mbtiles
    if path:
        tiles = app[TILES] = MBTiles(Path(path))
        log.info("base map tiles from %s", path, extra={"format": tiles.content_type})

        async def close(app: web.Application) -> None:
            tiles.close()

        app.on_cleanup.append(close)
    app.router.add_get(TILE_PATH, serve_tile)


async def serve_tile(request: web.Request) -> web.Response:
    tiles = request.app.get(TILES)
    if tiles is None:
        return problem(404, "No tile set", "DRONETRACK_DASHBOARD_TILES_MBTILES is not set")
    address = [request.match_info[k] for k in ("z", "x", "y")]
    data = None
    if all(part.isascii() and part.isdigit() and len(part) <= 9 for part in address):
        data = await asyncio.to_thread(tiles.tile, *(int(part) for part in address))
    if data is None:
        return problem(404, "No such tile", f"the tile set has no tile {'/'.join(address)}")
    etag = '"' + hashlib.blake2b(data, digest_size=12).hexdigest() + '"'
    headers = {"ETag": etag, "Cache-Control": CACHE_CONTROL}
    if etag in request.headers.get("If-None-Match", ""):
        return web.Response(status=304, headers=headers)
    return web.Response(body=data, content_type=tiles.content_type, headers=headers)


def map_config(app: web.Application) -> dict[str, Any]:
    """What the page's map needs from the settings: its base layer (local tiles, a tile server
    or none) and the battery levels where alerts fire, so marker colours agree with alerts."""
    settings: Settings = app[SETTINGS]
    tiles = app.get(TILES)
    layer: dict[str, Any] | None = None
    if tiles is not None:
        layer = tiles.page_layer()
    elif settings.dashboard_tile_url:
        layer = {"url": settings.dashboard_tile_url, "attribution": OSM_ATTRIBUTION}
    return {
        "baseLayer": layer,
        "batteryLowPct": settings.streams_battery_low_pct,
        "batteryCriticalPct": settings.streams_battery_critical_pct,
    }
