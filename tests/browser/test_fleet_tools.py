"""The operator's tools around the map: the drone list, the phone and tablet layouts, battery
colours from the alert thresholds, replay opening at its first data, empty states, and live
updates that carry only what changed."""

from __future__ import annotations

import re
from datetime import UTC, datetime
from pathlib import Path

from playwright.async_api import Browser, Page, expect

from dronetrack.passwords import hash_password
from dronetrack.store import User
from tests.browser.test_map import MARKER, sign_in, top_of
from tests.dashboard_env import PASSWORD, Dashboard, now_ms, telemetry

ROW = "#drone-list li.drone-row"


async def list_ids(page: Page) -> list[str]:
    ids: list[str] = await page.locator(ROW).evaluate_all("els => els.map(e => e.dataset.droneId)")
    return ids


async def test_drone_list_search_sort_filter_and_centre(
    page: Page, dashboard: Dashboard, artifacts: Path
) -> None:
    t0 = now_ms()
    await dashboard.store.write_telemetry(
        [
            telemetry("alpha", "a-10", t0, battery=12, alt_m=300.0, speed_mps=2.0),
            telemetry("alpha", "a-11", t0, battery=30, alt_m=50.0, speed_mps=20.0, lat=47.45),
        ]
    )
    await sign_in(page, dashboard, "alice")
    await expect(page.locator(ROW)).to_have_count(5)
    assert await list_ids(page) == ["a-1", "a-2", "a-3", "a-10", "a-11"]
    await expect(page.locator("#drones-title")).to_have_text("Drones (5 of 5)")

    await page.fill("#drone-search", "a-1")
    await expect(page.locator(ROW)).to_have_count(3)
    assert await list_ids(page) == ["a-1", "a-10", "a-11"]
    await page.fill("#drone-search", "")

    for sort, first in (("battery", "a-10"), ("altitude", "a-10"), ("speed", "a-11")):
        await page.select_option("#drone-sort", sort)
        await expect(page.locator(ROW).first).to_have_attribute("data-drone-id", first)

    await page.select_option("#drone-filter", "low")
    await expect(page.locator(ROW)).to_have_count(1)
    assert await list_ids(page) == ["a-10"]
    await page.select_option("#drone-filter", "alert")  # the seeded alerts of a-1 and a-2
    await expect(page.locator(ROW)).to_have_count(2)
    assert sorted(await list_ids(page)) == ["a-1", "a-2"]
    await page.select_option("#drone-filter", "silent")
    await expect(page.locator("#drone-list")).to_have_text("No drone matches.")
    await page.select_option("#drone-filter", "")

    # Colours turn where alerts fire (20 % and 10 %), not at the old 35 % and 15 %.
    await expect(page.locator(f'{MARKER}[data-drone-id="a-11"]')).to_have_class(
        re.compile(r"^drone ok\b")
    )
    await expect(page.locator(f'{MARKER}[data-drone-id="a-10"]')).to_have_class(
        re.compile(r"^drone warn\b")
    )
    await expect(page.locator(".legend")).to_contain_text("≤ 10 %")

    # A click in the list centres the map on the drone and opens its panel.
    await page.locator(f'{ROW}[data-drone-id="a-11"] button').click()
    await expect(page.locator("#panel-title")).to_have_text("a-11")
    await top_of(page, "a-11")  # the map has stopped moving
    offset = await page.evaluate(
        """() => {
            const m = document.querySelector('.leaflet-marker-pane .drone[data-drone-id="a-11"]')
                .getBoundingClientRect();
            const map = document.getElementById("map").getBoundingClientRect();
            return [m.x + m.width / 2 - (map.x + map.width / 2),
                    m.y + m.height / 2 - (map.y + map.height / 2)];
        }"""
    )
    assert abs(offset[0]) < 3, offset
    assert abs(offset[1]) < 3, offset
    await expect(page.locator(f'{ROW}[data-drone-id="a-11"]')).to_have_class(
        re.compile(r"\bselected\b")
    )

    await page.check("#drone-labels")
    await expect(page.locator(".drone-label")).to_have_count(await page.locator(MARKER).count())
    await expect(page.locator(".drone-label", has_text="a-11")).to_be_visible()
    await page.screenshot(path=artifacts / "drone-list.png")


async def test_phone_layout_sheet_collapses_and_sign_out_reachable(
    browser: Browser, dashboard: Dashboard, artifacts: Path
) -> None:
    context = await browser.new_context(
        viewport={"width": 390, "height": 844}, is_mobile=True, has_touch=True
    )
    page = await context.new_page()
    try:
        await sign_in(page, dashboard, "alice")
        await expect(page.locator(MARKER)).to_have_count(3)
        toggle = page.locator("#sheet-toggle")
        await expect(toggle).to_be_visible()
        assert await page.evaluate("document.documentElement.scrollWidth") <= 390
        map_box = await page.locator("#map").bounding_box()
        assert map_box is not None
        assert map_box["width"] == 390
        open_height = map_box["height"]
        await page.screenshot(path=artifacts / "phone.png")

        await toggle.click()
        await expect(page.locator("#side")).to_have_class(re.compile(r"\bcollapsed\b"))
        await expect(toggle).to_have_attribute("aria-expanded", "false")
        await expect(page.locator("#drone-list")).to_be_hidden()
        collapsed = await page.locator("#map").bounding_box()
        assert collapsed is not None
        assert collapsed["height"] > open_height + 200
        await page.screenshot(path=artifacts / "phone-collapsed.png")

        # Tapping a marker opens the sheet on the drone's panel.
        await page.locator(f'{MARKER}[data-drone-id="a-2"]').tap()
        await expect(page.locator("#panel-title")).to_have_text("a-2")
        await expect(page.locator("#panel")).to_be_in_viewport()

        for control in ("#replay-toggle", "#logout", "#sheet-toggle"):
            await expect(page.locator(control)).to_be_in_viewport(ratio=1)
        await page.locator("#logout").tap()
        await expect(page.locator("#login")).to_be_visible()
    finally:
        await context.close()


async def test_tablet_layout(browser: Browser, dashboard: Dashboard, artifacts: Path) -> None:
    context = await browser.new_context(viewport={"width": 768, "height": 1024}, has_touch=True)
    page = await context.new_page()
    try:
        await sign_in(page, dashboard, "alice")
        await expect(page.locator(MARKER)).to_have_count(3)
        assert await page.evaluate("document.documentElement.scrollWidth") <= 768
        for control in ("#replay-toggle", "#logout", "#sheet-toggle", "#drone-search"):
            await expect(page.locator(control)).to_be_in_viewport(ratio=1)
        await page.screenshot(path=artifacts / "tablet.png")
        await page.click("#replay-toggle")
        await expect(page.locator("#replay-play")).to_be_in_viewport(ratio=1)
        await expect(page.locator("#replay-exit")).to_be_in_viewport(ratio=1)
    finally:
        await context.close()


def iso(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, UTC).isoformat(timespec="milliseconds")[:-6] + "Z"


async def test_replay_opens_at_the_first_data(
    page: Page, dashboard: Dashboard, artifacts: Path
) -> None:
    t0 = dashboard.t0
    # a-1's history starts at t0 - 119 s: a window from t0 - 10 min opens there, not 8 min
    # of empty map earlier (at 1x, a-1 would otherwise appear only after 8 minutes).
    await sign_in(page, dashboard, "alice", f"?from={iso(t0 - 600_000)}&to={iso(t0)}&speed=1")
    await expect(page.locator("#live")).to_have_text("replay")
    note = page.locator("#replay-note")
    await expect(note).to_be_visible()
    await expect(note).to_contain_text("first data in this window")
    await expect(page.locator(f'{MARKER}[data-drone-id="a-1"]')).to_be_visible()
    await expect(page.locator(ROW)).to_have_count(1)  # the list follows the replay
    await expect(page.locator(f'{ROW}[data-drone-id="a-1"]')).to_be_visible()
    clock: int = await page.evaluate("state.replay.clock")
    assert t0 - 119_000 <= clock < t0 - 100_000
    await page.screenshot(path=artifacts / "replay-first-data.png")


async def test_replay_says_when_a_window_has_no_data(page: Page, dashboard: Dashboard) -> None:
    t0 = dashboard.t0
    await sign_in(page, dashboard, "alice", f"?from={iso(t0 - 7_200_000)}&to={iso(t0 - 3_600_000)}")
    note = page.locator("#replay-note")
    await expect(note).to_be_visible()
    await expect(note).to_contain_text("No drone reported between")
    await expect(page.locator("#drone-list")).to_contain_text("No drone reported in this window")
    await expect(page.locator(MARKER)).to_have_count(0)


async def test_an_empty_fleet_says_how_to_send_the_first_drone(
    page: Page, dashboard: Dashboard
) -> None:
    await dashboard.store.put_user(
        User(name="erin", password_hash=hash_password(PASSWORD), fleets=["charlie"])
    )
    await sign_in(page, dashboard, "erin")
    await expect(page.locator("#live")).to_have_text("live")
    empty = page.locator("#drone-list")
    await expect(empty).to_contain_text("No drone has reported to fleet “charlie” yet")
    await expect(empty).to_contain_text("/v1/telemetry")
    await expect(empty).to_contain_text("dronetrack simulate")


# Every server-sent event the page receives, in order: [type, parsed data].
RECORD_EVENTS = """
(() => {
  window.__sse = [];
  const Original = window.EventSource;
  window.EventSource = class extends Original {
    addEventListener(type, listener, ...rest) {
      super.addEventListener(type, (e) => {
        window.__sse.push([type, JSON.parse(e.data)]);
        listener(e);
      }, ...rest);
    }
  };
})();
"""


async def test_live_updates_carry_only_what_changed(page: Page, dashboard: Dashboard) -> None:
    await page.add_init_script(RECORD_EVENTS)
    await sign_in(page, dashboard, "alice")
    await expect(page.locator(MARKER)).to_have_count(3)
    before = await top_of(page, "a-2")
    # a-2 flies on; a-1 and a-3 have stopped reporting new positions.
    for step in range(1, 4):
        await dashboard.store.write_telemetry(
            [telemetry("alpha", "a-2", now_ms(), north=0.004 * step, seq=step)]
        )
        await page.wait_for_function(
            "n => window.__sse.filter(([t]) => t === 'drones-delta').length >= n", arg=step
        )
    events = await page.evaluate("window.__sse")
    kinds = [kind for kind, _ in events if kind.startswith("drones")]
    assert kinds[0] == "drones", "the first update is the full fleet"
    assert kinds.count("drones") == 1
    deltas = [data for kind, data in events if kind == "drones-delta"]
    sent = sorted({d["drone_id"] for delta in deltas for d in delta["drones"]})
    assert sent == ["a-2"], "a drone that did not move is not sent again"
    first = next(data for kind, data in events if kind == "drones")
    assert sorted(d["drone_id"] for d in first["drones"]) == ["a-1", "a-2", "a-3"]
    y = await top_of(page, "a-2")
    assert y < before - 10

    # A reconnect (the server restarted) starts again with a full snapshot.
    count = len(events)
    await dashboard.restart()
    await page.wait_for_function(
        "n => window.__sse.slice(n).some(([t]) => t === 'drones')", arg=count
    )
    after = (await page.evaluate("window.__sse"))[count:]
    snapshot = next(data for kind, data in after if kind == "drones")
    assert sorted(d["drone_id"] for d in snapshot["drones"]) == ["a-1", "a-2", "a-3"]
    await expect(page.locator("#live")).to_have_text("live")


async def test_a_fleet_over_a_thousand_is_drawn_on_a_canvas(
    page: Page, dashboard: Dashboard, artifacts: Path
) -> None:
    t0 = now_ms()
    await dashboard.store.write_telemetry(
        [
            telemetry(
                "bravo",
                f"swarm-{i:04d}",
                t0,
                battery=(i * 7) % 100,
                lat=47.30 + (i * 7919 % 1000) / 1000 * 0.12,  # scattered, repeatably
                lon=8.45 + (i * 104729 % 997) / 997 * 0.18,
            )
            for i in range(1_200)
        ]
    )
    await sign_in(page, dashboard, "bob")
    await expect(page.locator("body")).to_have_attribute("data-renderer", "canvas")
    await expect(page.locator("body")).to_have_attribute("data-markers", "1201")
    await expect(page.locator(".leaflet-overlay-pane canvas")).to_have_count(1)
    await expect(page.locator(MARKER)).to_have_count(0)
    await expect(page.locator(".marker-cluster")).to_have_count(0)
    # A click on a drone's disc opens its panel, as a marker does.
    await page.wait_for_function("() => !map._animatingZoom")
    box = await page.locator("#map").bounding_box()
    assert box is not None
    x, y = await page.evaluate(
        "() => { const p = map.latLngToContainerPoint(markers.get('swarm-0007').getLatLng());"
        " return [p.x, p.y]; }"
    )
    await page.mouse.click(box["x"] + x, box["y"] + y)
    await expect(page.locator("#panel-title")).to_have_text(re.compile(r"^swarm-\d{4}$"))
    await page.screenshot(path=artifacts / "canvas-fleet.png")
