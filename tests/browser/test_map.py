"""The fleet map as a person uses it, in headless Chromium against a real dashboard."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Page, expect

from tests.dashboard_env import PASSWORD, Dashboard, alert, now_ms, telemetry

MARKER = ".leaflet-marker-pane .drone"


async def sign_in(page: Page, dashboard: Dashboard, name: str, query: str = "") -> None:
    await page.goto(f"{dashboard.url}/{query}")
    await expect(page.locator("#login")).to_be_visible()
    await page.fill("#login-name", name)
    await page.fill("#login-password", PASSWORD)
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login")).to_be_hidden()


async def top_of(page: Page, drone_id: str) -> float:
    """Where the drone's marker sits once the map is still: the first snapshot fits the map to
    the fleet with a zoom animation, and a marker measured during it is not where it stays."""
    await page.locator(f'{MARKER}[data-drone-id="{drone_id}"]').wait_for()
    y: float = await page.evaluate(
        """async (id) => {
            const el = () => document.querySelector(
                `.leaflet-marker-pane .drone[data-drone-id="${id}"]`);
            const frame = () => new Promise((resolve) => requestAnimationFrame(resolve));
            let last = null;
            for (let still = 0; still < 10; ) {  // ten frames in a row at the same place
                await frame();
                const y = el().getBoundingClientRect().y;
                still = y === last ? still + 1 : 0;
                last = y;
            }
            return last;
        }""",
        drone_id,
    )
    return y


async def moved_up(page: Page, drone_id: str, was_y: float) -> None:
    """Wait until the drone's marker sits higher on screen (it flew north) without a reload."""
    await page.wait_for_function(
        """([id, y]) => {
            const el = document.querySelector(`.leaflet-marker-pane .drone[data-drone-id="${id}"]`);
            return el && el.getBoundingClientRect().y < y - 10;
        }""",
        arg=[drone_id, was_y],
        timeout=15_000,
    )


async def test_fleet_map_live(page: Page, dashboard: Dashboard, artifacts: Path) -> None:
    t0 = now_ms()
    await dashboard.store.write_telemetry(
        [
            telemetry("alpha", "a-9", t0 - 60_000, battery=25),  # silent a minute: grey
            telemetry("alpha", "a-8", t0 - 600_000),  # silent ten minutes: off the map
            telemetry("alpha", "a-3", t0, battery=9, heading_deg=200.0),
        ]
    )
    await page.goto(dashboard.url)
    await page.fill("#login-name", "alice")
    await page.fill("#login-password", "wrong")
    await page.click("#login-form button[type=submit]")
    await expect(page.locator("#login-error")).to_contain_text("Wrong")
    await sign_in(page, dashboard, "alice")

    # The right markers: alice's fleet only, the silent one grey, the lost one gone.
    await expect(page.locator(MARKER)).to_have_count(4)
    ids = await page.locator(MARKER).evaluate_all("els => els.map(e => e.dataset.droneId)")
    assert sorted(ids) == ["a-1", "a-2", "a-3", "a-9"]
    await expect(page.locator(f'{MARKER}[data-drone-id="a-9"]')).to_have_class(
        re.compile(r"\bstale\b")
    )
    await expect(page.locator(f'{MARKER}[data-drone-id="a-3"]')).to_have_class(
        re.compile(r"^drone crit\b(?!.*stale)")
    )
    await expect(page.locator("#live")).to_have_text("live")

    # Click a drone: its panel shows its state, its trail is drawn.
    await page.locator(f'{MARKER}[data-drone-id="a-1"]').click()
    await expect(page.locator("#panel")).to_be_visible()
    await expect(page.locator("#panel-title")).to_have_text("a-1")
    await expect(page.locator("#panel-state")).to_contain_text("battery")
    await expect(page.locator("#panel-alerts li.alert")).to_have_count(1)
    await expect(page.locator("path.trail")).to_have_count(1)

    # New telemetry moves the marker without a reload.
    before = await top_of(page, "a-2")
    await dashboard.store.write_telemetry([telemetry("alpha", "a-2", now_ms(), north=0.01)])
    await moved_up(page, "a-2", before)

    # A new alert appears in the fleet's list, and can be acknowledged there.
    raised = alert("alpha", "a-3", now_ms(), "battery_critical")
    await dashboard.store.write_alerts([raised])
    item = page.locator(f'#alerts li[data-alert-id="{raised.alert_id}"]')
    await expect(item).to_be_visible(timeout=10_000)
    await expect(item).to_contain_text("battery critical")
    await expect(page.locator("#stats-now")).to_contain_text("mean battery")
    await page.screenshot(path=artifacts / "dashboard.png")
    await item.locator("button.ack").click()
    await expect(item).to_contain_text("acknowledged")
    stored = await dashboard.store.alerts("alpha", since_ms=raised.raised_at, until_ms=now_ms() + 1)
    assert stored[0].acknowledged_by == "alice"


async def test_replay_window_from_the_url(
    page: Page, dashboard: Dashboard, artifacts: Path
) -> None:
    t0 = dashboard.t0

    def iso(ms: int) -> str:
        return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"

    query = f"?from={iso(t0 - 60_000)}&to={iso(t0 - 30_000)}&speed=1"
    await sign_in(page, dashboard, "alice", query)
    await expect(page.locator("#live")).to_have_text("replay")
    await expect(page.locator("#replay")).to_be_visible()
    # Only a-1 has history in that window; the others first reported at t0.
    await expect(page.locator(MARKER)).to_have_count(1)
    await expect(page.locator(f'{MARKER}[data-drone-id="a-1"]')).to_be_visible()
    await page.screenshot(path=artifacts / "replay.png")
    await page.click("#replay-exit")
    await expect(page.locator("#live")).to_have_text("live")
    await expect(page.locator(MARKER)).to_have_count(3)


async def test_a_large_fleet_clusters(page: Page, dashboard: Dashboard, artifacts: Path) -> None:
    t0 = now_ms()
    await dashboard.store.write_telemetry(
        [
            telemetry(
                "bravo",
                f"swarm-{i:03d}",
                t0,
                battery=(i * 7) % 100,
                lat=47.30 + (i * 7919 % 1000) / 1000 * 0.12,  # scattered, repeatably
                lon=8.45 + (i * 104729 % 997) / 997 * 0.18,
                heading_deg=float(i * 37 % 360),
            )
            for i in range(300)
        ]
    )
    await sign_in(page, dashboard, "bob")
    await expect(page.locator(".marker-cluster").first).to_be_visible()
    shown = await page.locator(MARKER).count()
    clusters = await page.locator(".marker-cluster").count()
    assert clusters > 0
    assert shown < 300, "zoomed out, nearby drones are grouped"
    rings = await page.locator(".drone-cluster").evaluate_all(
        "els => els.map(e => [...e.classList].find(c => ['ok', 'warn', 'crit'].includes(c)))"
    )
    assert "crit" in rings, "a cluster holding a drone below 15 % shows it"
    await page.screenshot(path=artifacts / "large-fleet.png")


async def test_live_updates_resume_after_the_server_restarts(
    page: Page, dashboard: Dashboard
) -> None:
    await sign_in(page, dashboard, "alice")
    await expect(page.locator("#live")).to_have_text("live")
    before = await top_of(page, "a-3")
    await dashboard.restart()
    await dashboard.store.write_telemetry([telemetry("alpha", "a-3", now_ms(), north=0.01)])
    await moved_up(page, "a-3", before)
    await expect(page.locator("#live")).to_have_text("live")
