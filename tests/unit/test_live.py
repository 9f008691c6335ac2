"""What one live-update client is sent: snapshots first, deltas after, never a gap."""

from __future__ import annotations

from dashboard.live import Subscriber


def test_deltas_follow_a_snapshot_and_a_lagging_client_gets_a_fresh_one() -> None:
    sub = Subscriber()
    sub.offer_change("drones", b"S1", b"D1")
    assert sub.pending == {"drones": b"S1"}, "a new client starts from a snapshot"
    sub.pending.clear()  # sent
    sub.offer_change("drones", b"S2", b"D2")
    assert sub.pending == {"drones-delta": b"D2"}
    sub.offer_change("drones", b"S3", b"D3")
    assert sub.pending == {"drones": b"S3"}, "D2 unsent: D3 alone would leave a gap"
    sub.offer("alerts", b"A1")
    sub.offer("alerts", b"A2")
    assert sub.pending == {"drones": b"S3", "alerts": b"A2"}, "only the newest snapshot waits"
