"""The base map: tiles from a local MBTiles file, and a labelled grid with a notice when no tile
source is reachable (the page must never be markers on a blank plane)."""

from __future__ import annotations

from pathlib import Path

from playwright.async_api import Page, expect

from tests.browser.test_map import MARKER, sign_in
from tests.dashboard_env import Dashboard
from tests.mbtiles import make_mbtiles

GRID_LABEL = ".leaflet-grid-label"
LOADED_TILE = "img.leaflet-tile-loaded"


async def test_no_tile_source_shows_a_grid_and_says_so(
    page: Page, dashboard: Dashboard, artifacts: Path
) -> None:
    await sign_in(page, dashboard, "alice")  # the test dashboard has no tile URL
    await expect(page.locator(MARKER)).to_have_count(3)
    notice = page.locator("#basemap-notice")
    await expect(notice).to_be_visible()
    await expect(notice).to_contain_text("No base map is configured")
    await expect(notice).to_contain_text("DRONETRACK_DASHBOARD_TILES_MBTILES")
    assert await page.locator(GRID_LABEL).count() >= 2, "grid lines are labelled"
    labels = await page.locator(GRID_LABEL).all_inner_texts()
    assert any(text.startswith("47.") for text in labels), labels  # the latitudes in view
    assert any(text.startswith("8.") for text in labels), labels  # and the longitudes
    await expect(page.locator(".leaflet-control-scale-line")).to_be_visible()
    await expect(page.locator(".leaflet-control-attribution")).not_to_contain_text("OpenStreet")
    await page.screenshot(path=artifacts / "basemap-grid.png")


async def test_an_unreachable_tile_server_shows_the_grid(page: Page, dashboard: Dashboard) -> None:
    # Nothing listens on port 9 of this machine: every tile fails, as without internet.
    dashboard.settings = dashboard.settings.replace(
        dashboard_tile_url="http://127.0.0.1:9/{z}/{x}/{y}.png"
    )
    await dashboard.restart()
    await sign_in(page, dashboard, "alice")
    notice = page.locator("#basemap-notice")
    await expect(notice).to_be_visible(timeout=15_000)
    await expect(notice).to_contain_text("Base map unavailable")
    await expect(page.locator(GRID_LABEL).first).to_be_attached()
    await expect(page.locator(".leaflet-control-attribution")).not_to_contain_text("OpenStreet")


async def test_tiles_from_a_local_mbtiles_file(
    page: Page, dashboard: Dashboard, tmp_path: Path, artifacts: Path
) -> None:
    make_mbtiles(tmp_path / "area.mbtiles")
    dashboard.settings = dashboard.settings.replace(
        dashboard_tiles_mbtiles=str(tmp_path / "area.mbtiles")
    )
    await dashboard.restart()
    await sign_in(page, dashboard, "alice")
    await expect(page.locator(MARKER)).to_have_count(3)
    await expect(page.locator(LOADED_TILE).first).to_be_visible()
    sources = await page.locator(LOADED_TILE).evaluate_all(
        "els => els.map(e => new URL(e.src).pathname)"
    )
    assert sources, "tiles were drawn"
    assert all(path.startswith("/tiles/") for path in sources), sources
    await expect(page.locator("#basemap-notice")).to_be_hidden()
    await expect(page.locator(GRID_LABEL)).to_have_count(0)
    await expect(page.locator(".leaflet-control-attribution")).to_contain_text("test tiles")
    await page.screenshot(path=artifacts / "basemap-mbtiles.png")
