"""The notifier against real peers started here: an aiohttp webhook receiver that checks the
signature and drops duplicates by idempotency key (counting effects), an aiosmtpd SMTP server,
and the session's embedded broker. Alert events are produced as the worker produces them."""

from __future__ import annotations

import asyncio
import email.policy
import hashlib
import hmac
import os
import signal
import sys
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import aiohttp
import msgspec
import pytest
from aiohttp import web
from aiokafka import TopicPartition
from aiosmtpd.controller import Controller

from dronetrack import events, kafka, processes, topics
from dronetrack.broker import free_port
from dronetrack.events import AlertEvent
from dronetrack.settings import Settings
from dronetrack.store import Channel
from dronetrack.store.sqlite import SqliteStore
from notifier import secrets
from notifier.app import create_app
from notifier.dispatch import DEAD_LETTER
from tests.integration import topic_contract
from tests.integration.conftest import eventually

KEY = "Qm9vdHN0cmFwIGtleSBmb3IgdGVzdHMgb25seSEhISE="  # a fixed Fernet key for these tests
SECRET = "5e9f0c3a7b1d4e2f8a6c0b9d3e7f1a2c"
T0 = 1_795_000_000_000


@dataclass
class Receiver:
    """A webhook receiver as a fleet would run one: verifies, then applies each key once."""

    secret: str
    mode: dict[str, str] = field(default_factory=dict)  # path -> ok | fail-once | 500 | hang
    requests: Counter[str] = field(default_factory=Counter)  # idempotency key -> requests
    effects: list[str] = field(default_factory=list)  # keys applied, once each
    bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    bad_signatures: int = 0
    hanging: asyncio.Event = field(default_factory=asyncio.Event)
    release: asyncio.Event = field(default_factory=asyncio.Event)
    url: str = ""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        timestamp = request.headers["X-Dronetrack-Timestamp"]
        expected = hmac.new(
            self.secret.encode(), timestamp.encode() + b"." + body, hashlib.sha256
        ).hexdigest()
        if not hmac.compare_digest(request.headers["X-Dronetrack-Signature"], f"v1={expected}"):
            self.bad_signatures += 1
            return web.Response(status=401)
        key = request.headers["Idempotency-Key"]
        self.requests[key] += 1
        mode = self.mode.get(request.path, "ok")
        if mode == "500" or (mode == "fail-once" and self.requests[key] == 1):
            return web.Response(status=500)
        if mode == "410":
            return web.Response(status=410)
        if key not in self.effects:
            self.effects.append(key)
            self.bodies[key] = msgspec.json.decode(body)
        if mode == "hang":  # the effect is applied, the answer never comes
            self.hanging.set()
            await self.release.wait()
        return web.Response(status=204)


@asynccontextmanager
async def receiver(secret: str = SECRET) -> AsyncIterator[Receiver]:
    r = Receiver(secret)
    app = web.Application()
    app.router.add_post("/{path:.*}", r.handle)
    runner = web.AppRunner(app, shutdown_timeout=0.1)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    r.url = f"http://127.0.0.1:{port}"
    try:
        yield r
    finally:
        r.release.set()
        await runner.cleanup()


@pytest.fixture
def notify_settings(settings: Settings, tmp_path: Path) -> Settings:
    return settings.replace(
        sqlite_path=tmp_path / "notify.sqlite3",
        notify_port=free_port(),
        notify_group=f"notifier-{uuid.uuid4().hex[:8]}",
        notify_offset_reset="earliest",
        notify_secret_key=KEY,
        notify_max_attempts=3,
        notify_backoff_base_ms=20,
        notify_backoff_max_ms=100,
        notify_timeout_s=30.0,
        notify_rate_per_s=0.0,
    )


def fleet_name() -> str:
    return f"fleet-{uuid.uuid4().hex[:8]}"


async def add_channel(
    settings: Settings, fleet: str, channel_id: str, target: str, **kw: Any
) -> None:
    store = SqliteStore(settings.sqlite_path)
    await store.open()
    try:
        kind = "email" if "@" in target and "://" not in target else "webhook"
        await store.put_channel(
            Channel(
                fleet=fleet,
                channel_id=channel_id,
                kind=kind,
                target=target,
                created_at=T0,
                secret_box=secrets.seal(settings, SECRET) if kind == "webhook" else "",
                **kw,
            )
        )
    finally:
        await store.close()


def alert(fleet: str, n: int, event: str = "raised", drone: str = "d1") -> AlertEvent:
    raised = T0 + n * 1000
    return AlertEvent(
        event=event,  # type: ignore[arg-type]
        alert_id=f"{drone}:battery_low:{raised}",
        fleet=fleet,
        drone_id=drone,
        type="battery_low",
        severity="warning",
        raised_at=raised,
        at=raised if event == "raised" else raised + 500,
        detail="battery 19.5 %",
    )


async def publish(settings: Settings, *alerts: AlertEvent) -> None:
    """As streams/sink.py does: key drone_id, value the encoded AlertEvent."""
    producer = kafka.producer(settings)
    await producer.start()
    try:
        for a in alerts:
            await producer.send_and_wait(topics.ALERTS, events.encode(a), key=a.drone_id.encode())
    finally:
        await producer.stop()


@asynccontextmanager
async def notifier(settings: Settings) -> AsyncIterator[web.Application]:
    app = create_app(settings)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", settings.notify_port).start()
    try:
        yield app
    finally:
        await runner.cleanup()


async def dead_letters(settings: Settings, fleet: str) -> list[tuple[bytes, dict[str, bytes]]]:
    consumer = kafka.consumer(settings, auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    try:
        await consumer.topics()  # fetches the metadata
        parts = [
            TopicPartition(DEAD_LETTER, p) for p in consumer.partitions_for_topic(DEAD_LETTER) or ()
        ]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        found = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for messages in (await consumer.getmany(*parts, timeout_ms=200)).values():
                for m in messages:
                    if (m.key or b"").startswith(f"{fleet}/".encode()):
                        found.append((m.value or b"", dict(m.headers)))
        return found
    finally:
        await consumer.stop()


async def test_a_webhook_gets_each_event_signed_and_in_order(notify_settings: Settings) -> None:
    fleet = fleet_name()
    async with receiver() as r:
        await add_channel(notify_settings, fleet, "ops", f"{r.url}/ops")
        await add_channel(
            notify_settings, fleet, "critical-only", f"{r.url}/crit", severities=["critical"]
        )
        async with notifier(notify_settings):
            await publish(notify_settings, alert(fleet, 1), alert(fleet, 1, "cleared"))
            await eventually(lambda: _n(r.effects, 2), what="two deliveries")
            base = f"http://127.0.0.1:{notify_settings.notify_port}"
            async with aiohttp.ClientSession() as http:
                async with http.get(f"{base}/readyz") as response:
                    assert response.status == 200
                async with http.get(f"{base}/metrics") as response:
                    metrics = await response.text()
        assert 'notifier_deliveries_total{kind="webhook",outcome="delivered"} 2.0' in metrics
        assert 'notifier_deliveries_total{kind="email",outcome="dead_lettered"} 0.0' in metrics
        assert 'notifier_alert_events_total{outcome="matched"} 2.0' in metrics
        assert r.bad_signatures == 0
        assert r.effects == [
            f"{fleet}/d1:battery_low:{T0 + 1000}/raised/ops",
            f"{fleet}/d1:battery_low:{T0 + 1000}/cleared/ops",
        ]
        assert r.bodies[r.effects[0]] == {
            "idempotency_key": f"{fleet}/d1:battery_low:{T0 + 1000}/raised/ops",
            "channel": "ops",
            "event": "raised",
            "fleet": fleet,
            "drone_id": "d1",
            "alert_id": f"d1:battery_low:{T0 + 1000}",
            "alert_type": "battery_low",
            "severity": "warning",
            "raised_at": T0 + 1000,
            "at": T0 + 1000,
            "detail": "battery 19.5 %",
        }


async def _n(items: list[Any], n: int) -> bool:
    return len(items) >= n


async def test_a_500_is_retried_and_takes_effect_once(notify_settings: Settings) -> None:
    fleet = fleet_name()
    async with receiver() as r:
        r.mode["/flaky"] = "fail-once"
        await add_channel(notify_settings, fleet, "flaky", f"{r.url}/flaky")
        async with notifier(notify_settings):
            await publish(notify_settings, alert(fleet, 2))
            await eventually(lambda: _n(r.effects, 1), what="the retried delivery")
        key = f"{fleet}/d1:battery_low:{T0 + 2000}/raised/flaky"
        assert r.effects == [key]
        assert r.requests[key] == 2


async def test_after_n_failures_the_event_is_dead_lettered(notify_settings: Settings) -> None:
    fleet = fleet_name()
    async with receiver() as r:
        r.mode["/down"] = "500"
        await add_channel(notify_settings, fleet, "down", f"{r.url}/down")
        async with notifier(notify_settings):
            event = alert(fleet, 3)
            await publish(notify_settings, event)
            found = await eventually(
                lambda: dead_letters(notify_settings, fleet), what="a dead letter"
            )
        key = f"{fleet}/d1:battery_low:{T0 + 3000}/raised/down"
        assert r.requests[key] == 3, "notify_max_attempts"
        assert r.effects == []
        [(value, headers)] = found
        assert events.decode_alert(value) == event
        assert headers["dlq.reason"] == b"HTTP 500"
        assert headers["notify.attempts"] == b"3"
        assert headers["notify.channel"] == f"{fleet}/down".encode()
        assert headers["dlq.topic"] == b"drone.alerts.v1"
        # As analysts' tools read it (librdkafka), by the published contract (docs/topics.md).
        read = await asyncio.to_thread(topic_contract.read_all, notify_settings)
        ours = [
            m for m in read if m.topic == "drone.notifications.dlq.v1" and m.key == key.encode()
        ]
        assert len(ours) == 1
        assert topic_contract.problems(ours, notify_settings) == []


async def test_a_dead_receiver_of_one_fleet_does_not_delay_another(
    notify_settings: Settings,
) -> None:
    fleet_a, fleet_b = fleet_name(), fleet_name()
    async with receiver() as r:
        r.mode["/a"] = "hang"
        await add_channel(notify_settings, fleet_a, "a", f"{r.url}/a")
        await add_channel(notify_settings, fleet_b, "b", f"{r.url}/b")
        async with notifier(notify_settings):
            # Same drone id, so the same partition: B's events come after A's in the log.
            await publish(notify_settings, alert(fleet_a, 4), alert(fleet_a, 5))
            await asyncio.wait_for(r.hanging.wait(), 60)
            await publish(notify_settings, alert(fleet_b, 4), alert(fleet_b, 5))
            await eventually(lambda: _b_done(r, fleet_b), what="fleet B's deliveries")
            assert r.release.is_set() is False, "A's receiver still holds its first request"
            assert [k for k in r.requests if k.startswith(fleet_a)] == [
                f"{fleet_a}/d1:battery_low:{T0 + 4000}/raised/a"
            ]
            r.release.set()
            await eventually(lambda: _n(r.effects, 4), what="A's deliveries once released")


async def _b_done(r: Receiver, fleet: str) -> bool:
    return len([k for k in r.effects if k.startswith(fleet)]) == 2


@dataclass
class Mailbox:
    messages: list[Message] = field(default_factory=list)

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(message_from_bytes(envelope.content, policy=email.policy.default))
        return "250 OK"


@pytest.fixture
def smtp_server() -> Iterator[tuple[Mailbox, int]]:
    box = Mailbox()
    port = free_port()
    controller = Controller(box, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield box, port
    finally:
        controller.stop()


async def test_an_email_channel_gets_a_mail_per_event(
    notify_settings: Settings, smtp_server: tuple[Mailbox, int]
) -> None:
    box, port = smtp_server
    settings = notify_settings.replace(
        notify_smtp_host="127.0.0.1",
        notify_smtp_port=port,
        notify_smtp_starttls=False,
        notify_smtp_from="alerts@dronetrack.example",
    )
    fleet = fleet_name()
    await add_channel(settings, fleet, "duty", "duty@example.com")
    async with notifier(settings):
        await publish(settings, alert(fleet, 6))
        await eventually(lambda: _n(box.messages, 1), what="a mail")
    [mail] = box.messages
    assert mail["To"] == "duty@example.com"
    assert mail["From"] == "alerts@dronetrack.example"
    assert mail["Subject"] == (
        f"dronetrack: [warning] battery_low raised: drone d1 of fleet {fleet} (battery 19.5 %)"
    )
    assert mail["Idempotency-Key"] == f"{fleet}/d1:battery_low:{T0 + 6000}/raised/duty"


async def test_a_sigkill_mid_delivery_loses_nothing_and_doubles_no_effect(
    notify_settings: Settings, tmp_path: Path
) -> None:
    fleet = fleet_name()
    env = {**os.environ, **notify_settings.to_env()}
    log = tmp_path / "notifier.log"
    async with receiver() as r:
        await add_channel(notify_settings, fleet, "ops", f"{r.url}/ops")
        r.mode["/ops"] = "hang"  # applies the effect, then never answers
        await publish(notify_settings, *(alert(fleet, 10 + i) for i in range(5)))
        with log.open("ab") as out:
            first = processes.spawn([sys.executable, "-m", "notifier"], env=env, output=out)
        try:
            await asyncio.wait_for(r.hanging.wait(), 60)
            first.send_signal(signal.SIGKILL)
            await asyncio.to_thread(first.wait, 30)
        finally:
            if first.poll() is None:
                first.kill()
        r.mode["/ops"] = "ok"
        r.release.set()
        with log.open("ab") as out:
            second = processes.spawn([sys.executable, "-m", "notifier"], env=env, output=out)
        try:
            await eventually(lambda: _n(r.effects, 5), what="every event's effect")
        finally:
            assert processes.stop(second, 30.0) == 0, f"notifier log: {log}"
    keys = [f"{fleet}/d1:battery_low:{T0 + (10 + i) * 1000}/raised/ops" for i in range(5)]
    assert r.effects == keys
    assert r.requests[keys[0]] == 2, "the event in flight at the kill was delivered again"


async def test_notify_cli_adds_lists_tests_and_removes_a_channel(
    notify_settings: Settings, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from dronetrack.cli import main

    for name, value in notify_settings.to_env().items():
        monkeypatch.setenv(name, value)
    fleet = fleet_name()

    async def cli(*argv: str) -> tuple[int, str, str]:
        code = await asyncio.to_thread(main, ["notify", *argv])
        out, err = capsys.readouterr()
        return code, out, err

    async with receiver(secret="") as r:
        code, out, _ = await cli(
            "add", fleet, "ops", "--webhook", f"{r.url}/ops", "--severity", "critical"
        )
        assert code == 0
        secret = out.split("signing secret (shown once, keep it with the receiver): ")[1].strip()
        assert len(secret) == 64
        r.secret = secret

        code, out, _ = await cli("list", fleet)
        assert code == 0
        assert secret not in out
        shown = msgspec.json.decode(out)
        assert isinstance(shown.pop("created_at"), int)
        assert shown == {
            "fleet": fleet,
            "channel_id": "ops",
            "kind": "webhook",
            "target": f"{r.url}/ops",
            "format": "json",
            "alert_types": [],
            "severities": ["critical"],
            "signed": True,
        }

        code, out, _ = await cli("test", fleet, "ops")
        assert (code, out) == (0, f"test message delivered to {r.url}/ops\n")
        assert r.bad_signatures == 0
        [key] = r.effects
        assert r.bodies[key]["test"] is True
        assert r.bodies[key]["fleet"] == fleet

        assert (await cli("remove", fleet, "ops"))[0] == 0
        assert await cli("list", fleet) == (0, "", "")
        code, _, err = await cli("remove", fleet, "ops")
        assert (code, err) == (1, f"dronetrack: fleet {fleet} has no channel ops\n")
        code, _, err = await cli("add", fleet, "Bad Id", "--email", "a@b.example")
        assert code == 1
        assert "channel id 'Bad Id'" in err


def self_signed(tmp_path: Path) -> tuple[Path, Path]:
    """A certificate for 127.0.0.1 and its key, as a relay with a private CA would have."""
    import datetime as dt
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "smtp.test")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=5))
        .not_valid_after(now + dt.timedelta(hours=1))
        .add_extension(
            x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "smtp.crt", tmp_path / "smtp.key"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    return cert_path, key_path


async def test_mail_goes_over_starttls_with_the_configured_login(
    notify_settings: Settings, tmp_path: Path
) -> None:
    import ssl

    from aiosmtpd.smtp import AuthResult

    cert, key = self_signed(tmp_path)
    tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    tls.load_cert_chain(cert, key)
    logins: list[tuple[bytes, bytes]] = []

    def authenticator(server: Any, session: Any, envelope: Any, mechanism: str, data: Any) -> Any:
        logins.append((data.login, data.password))
        return AuthResult(success=(data.login, data.password) == (b"alerts", b"pw-4f9a2c"))

    box, port = Mailbox(), free_port()
    controller = Controller(
        box,
        hostname="127.0.0.1",
        port=port,
        tls_context=tls,
        require_starttls=True,
        auth_required=True,
        authenticator=authenticator,
    )
    controller.start()
    try:
        settings = notify_settings.replace(
            notify_smtp_host="127.0.0.1",
            notify_smtp_port=port,
            notify_smtp_starttls=True,
            notify_smtp_ca_file=str(cert),
            notify_smtp_username="alerts",
            notify_smtp_password="pw-4f9a2c",
        )
        fleet = fleet_name()
        await add_channel(settings, fleet, "duty", "duty@example.com")
        async with notifier(settings):
            await publish(settings, alert(fleet, 7))
            await eventually(lambda: _n(box.messages, 1), what="a mail over STARTTLS")
    finally:
        controller.stop()
    assert logins == [(b"alerts", b"pw-4f9a2c")]
    assert box.messages[0]["Idempotency-Key"] == f"{fleet}/d1:battery_low:{T0 + 7000}/raised/duty"


async def test_a_refusal_that_can_never_succeed_is_dead_lettered_at_once(
    notify_settings: Settings,
) -> None:
    fleet = fleet_name()
    async with receiver() as r:
        r.mode["/gone"] = "410"
        await add_channel(notify_settings, fleet, "gone", f"{r.url}/gone")
        async with notifier(notify_settings):
            await publish(notify_settings, alert(fleet, 8))
            [(_, headers)] = await eventually(
                lambda: dead_letters(notify_settings, fleet), what="a dead letter"
            )
        assert r.requests[f"{fleet}/d1:battery_low:{T0 + 8000}/raised/gone"] == 1
        assert (headers["dlq.reason"], headers["notify.attempts"]) == (b"HTTP 410", b"1")
