"""The base map from a local MBTiles file: tiles by XYZ address (the file's rows are TMS),
caching headers, problem+json for what is not there, and the page told where tiles are."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from dashboard.app import create_app
from dronetrack.broker import free_port
from dronetrack.settings import SettingsError
from tests.dashboard_env import dashboard_settings
from tests.mbtiles import make_mbtiles, png


@pytest.fixture
async def served(tmp_path: Path) -> AsyncIterator[tuple[str, dict[tuple[int, int, int], bytes]]]:
    tiles = make_mbtiles(tmp_path / "area.mbtiles")
    settings = dashboard_settings(tmp_path, dashboard_tiles_mbtiles=str(tmp_path / "area.mbtiles"))
    server = TestServer(create_app(settings), host="127.0.0.1", port=free_port())
    await server.start_server()
    try:
        yield f"http://127.0.0.1:{server.port}", tiles
    finally:
        await server.close()


async def test_a_tile_by_its_xyz_address(
    served: tuple[str, dict[tuple[int, int, int], bytes]],
) -> None:
    url, tiles = served
    # Zurich at zoom 12 is XYZ tile 2145/1434; the file stores it in TMS row 4095 - 1434 = 2661.
    assert (12, 2145, 1434) in tiles
    async with aiohttp.ClientSession() as http:
        async with http.get(f"{url}/tiles/12/2145/1434") as r:
            assert r.status == 200
            assert r.content_type == "image/png"
            body = await r.read()
            assert body == tiles[12, 2145, 1434]
            assert body[:8] == b"\x89PNG\r\n\x1a\n"
            assert r.headers["Cache-Control"] == "public, max-age=86400"
            etag = r.headers["ETag"]
            assert re.fullmatch(r'"[0-9a-f]{24}"', etag)
        async with http.get(f"{url}/tiles/12/2145/1434", headers={"If-None-Match": etag}) as r:
            assert r.status == 304
            assert await r.read() == b""
        # The TMS row number used as an XYZ row is another (absent) tile: the flip is done.
        async with http.get(f"{url}/tiles/12/2145/2661") as r:
            assert r.status == 404


async def test_a_missing_tile_is_a_problem(
    served: tuple[str, dict[tuple[int, int, int], bytes]],
) -> None:
    url, _ = served
    async with aiohttp.ClientSession() as http:
        for path in ("/tiles/3/1/1", "/tiles/12/99999/1", "/tiles/12/2145/x"):
            async with http.get(url + path) as r:
                assert r.status == 404, path
                assert r.content_type == "application/problem+json", path
        async with http.get(f"{url}/tiles/3/1/1") as r:
            assert (await r.json())["detail"] == "the tile set has no tile 3/1/1"


async def test_the_page_is_told_about_local_tiles_and_battery_levels(
    served: tuple[str, dict[tuple[int, int, int], bytes]],
) -> None:
    url, _ = served
    async with aiohttp.ClientSession() as http, http.get(url + "/") as r:
        page = await r.text()
    config = json.loads(re.search(r'<script id="config"[^>]*>(.*?)</script>', page, re.S)[1])  # type: ignore[index]
    assert config["baseLayer"] == {
        "url": "/tiles/{z}/{x}/{y}",
        "attribution": "test tiles",
        "minNativeZoom": 10,
        "maxNativeZoom": 14,
        "bounds": [[47.33, 8.47], [47.42, 8.61]],
    }
    assert config["batteryLowPct"] == 20.0
    assert config["batteryCriticalPct"] == 10.0


async def test_without_a_tile_set_tiles_are_a_problem(tmp_path: Path) -> None:
    server = TestServer(create_app(dashboard_settings(tmp_path)), port=free_port())
    await server.start_server()
    try:
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/tiles/12/2145/1434") as r,
        ):
            assert r.status == 404
            assert r.content_type == "application/problem+json"
            assert "DRONETRACK_DASHBOARD_TILES_MBTILES" in (await r.json())["detail"]
        async with (
            aiohttp.ClientSession() as http,
            http.get(f"http://127.0.0.1:{server.port}/") as r,
        ):
            assert '"baseLayer": null' in await r.text()
    finally:
        await server.close()


def test_a_broken_or_vector_file_stops_start_up(tmp_path: Path) -> None:
    (tmp_path / "junk.mbtiles").write_bytes(b"not sqlite at all" * 100)
    with pytest.raises(SettingsError, match="not a readable MBTiles file"):
        create_app(dashboard_settings(tmp_path, dashboard_tiles_mbtiles=str(tmp_path / "junk")))
    with pytest.raises(SettingsError, match="not a readable MBTiles file"):
        create_app(
            dashboard_settings(tmp_path, dashboard_tiles_mbtiles=str(tmp_path / "junk.mbtiles"))
        )
    make_mbtiles(tmp_path / "vector.mbtiles", zooms=range(1, 2))
    import sqlite3

    db = sqlite3.connect(tmp_path / "vector.mbtiles")
    with db:
        db.execute("UPDATE metadata SET value = 'pbf' WHERE name = 'format'")
    db.close()
    with pytest.raises(SettingsError, match="holds 'pbf' tiles; the map needs raster tiles"):
        create_app(
            dashboard_settings(tmp_path, dashboard_tiles_mbtiles=str(tmp_path / "vector.mbtiles"))
        )
    assert png((1, 2, 3), size=4)[:8] == b"\x89PNG\r\n\x1a\n"
