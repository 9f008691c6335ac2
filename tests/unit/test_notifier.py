"""The notifier's pieces that need no peer: commit bookkeeping, backoff, signature, sealing."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from prometheus_client import CollectorRegistry

from dronetrack.settings import Settings, SettingsError
from dronetrack.store import Channel
from notifier import deliver, secrets
from notifier.dispatch import Dispatcher, Tracker
from notifier.metrics import NotifierMetrics

KEY = "Qm9vdHN0cmFwIGtleSBmb3IgdGVzdHMgb25seSEhISE="


def test_the_committable_offset_waits_for_every_earlier_event() -> None:
    t = Tracker(TopicPartition("drone.alerts.v1", 0))
    a = t.add(10, 2)  # two channels
    b = t.add(11, 1)
    t.add(12, 0)  # no channel wanted it
    assert t.committable is None
    t.finish(b)
    assert t.committable is None, "offset 10 is still being delivered"
    t.finish(a)
    assert t.committable is None, "one of 10's two deliveries is left"
    t.finish(a)
    assert t.committable == 13
    assert len(t) == 0


def test_backoff_doubles_up_to_the_cap_with_full_jitter() -> None:
    settings = Settings(notify_backoff_base_ms=100, notify_backoff_max_ms=1_000)
    d = Dispatcher(settings, None, None, NotifierMetrics(CollectorRegistry()))  # type: ignore[arg-type]
    for attempt, ceiling in ((1, 0.1), (2, 0.2), (3, 0.4), (4, 0.8), (5, 1.0), (12, 1.0)):
        waits = [d.backoff_s(attempt) for _ in range(200)]
        assert min(waits) >= 0
        assert max(waits) <= ceiling
        assert max(waits) > ceiling / 2, "spread over the whole range"


def test_the_signature_is_hmac_sha256_over_timestamp_dot_body() -> None:
    assert deliver.signature("topsecret-topsecret", "1795000000", b'{"a":1}') == (
        "v1=1417a2592d5cc8667e2dc702de959eb406651f58b11162fc4c9aa6e95800eb32"
    )


def test_a_channel_rule_filters_by_type_and_severity() -> None:
    c = Channel(
        fleet="f",
        channel_id="c",
        kind="webhook",
        target="http://x",
        created_at=0,
        alert_types=["link_lost"],
        severities=["critical"],
    )
    assert c.matches("link_lost", "critical")
    assert not c.matches("link_lost", "warning")
    assert not c.matches("battery_low", "critical")
    anything = Channel(fleet="f", channel_id="c", kind="email", target="a@b", created_at=0)
    assert anything.matches("battery_low", "warning")


def test_secrets_are_sealed_and_opened_only_with_the_key() -> None:
    settings = Settings(notify_secret_key=KEY)
    box = secrets.seal(settings, "topsecret-topsecret")
    assert "topsecret" not in box
    assert secrets.unseal(settings, box) == "topsecret-topsecret"
    other = Settings(notify_secret_key=secrets.new_key())
    with pytest.raises(SettingsError, match="does not open with DRONETRACK_NOTIFY_SECRET_KEY"):
        secrets.unseal(other, box)
    with pytest.raises(SettingsError, match="DRONETRACK_NOTIFY_SECRET_KEY is not set"):
        secrets.seal(Settings(), "x")
    with pytest.raises(SettingsError, match="not a Fernet key"):
        secrets.seal(Settings(notify_secret_key="short"), "x")


def test_the_key_never_shows_in_the_settings_repr() -> None:
    assert KEY not in repr(Settings(notify_secret_key=KEY, notify_smtp_password="pw-123456"))
    assert "pw-123456" not in repr(Settings(notify_smtp_password="pw-123456"))
