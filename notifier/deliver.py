"""One delivery attempt of one alert event to one channel: the payload, its signature, the
webhook POST or the e-mail. An attempt ends ``ok``, ``retry`` (worth trying again: timeouts,
refused connections, 5xx, 408, 429, SMTP 4xx) or ``failed`` (never going to work: other 4xx, SMTP
5xx), which the dispatcher turns into retries and dead letters."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import smtplib
import ssl
import time
from dataclasses import dataclass
from email.message import EmailMessage
from typing import Literal

import aiohttp
import msgspec

from dronetrack.events import AlertEvent
from dronetrack.settings import Settings
from dronetrack.store import Channel

Result = Literal["ok", "retry", "failed"]
SIGNATURE_HEADER = "X-Dronetrack-Signature"
TIMESTAMP_HEADER = "X-Dronetrack-Timestamp"
IDEMPOTENCY_HEADER = "Idempotency-Key"
_RETRYABLE_HTTP = frozenset({408, 425, 429})


@dataclass(frozen=True, slots=True)
class Outcome:
    result: Result
    reason: str = ""


class Payload(msgspec.Struct, kw_only=True, omit_defaults=True):
    """The JSON body of a webhook (format ``json``); docs/notifications.md describes it."""

    idempotency_key: str
    channel: str
    event: str
    fleet: str
    drone_id: str
    alert_id: str
    alert_type: str
    severity: str
    raised_at: int
    at: int
    detail: str = ""
    test: bool = False


def idempotency_key(event: AlertEvent, channel: Channel) -> str:
    """The same for every attempt and every redelivery of one event to one channel."""
    return f"{event.fleet}/{event.alert_id}/{event.event}/{channel.channel_id}"


def summary(event: AlertEvent) -> str:
    verb = "raised" if event.event == "raised" else "cleared"
    text = f"[{event.severity}] {event.type} {verb}: drone {event.drone_id} of fleet {event.fleet}"
    return f"{text} ({event.detail})" if event.detail else text


def body(event: AlertEvent, channel: Channel, *, test: bool = False) -> bytes:
    """The webhook body; stable across attempts, so a receiver may compare retries."""
    if channel.format == "slack":
        return msgspec.json.encode({"text": summary(event)})
    return msgspec.json.encode(
        Payload(
            idempotency_key=idempotency_key(event, channel),
            channel=channel.channel_id,
            event=event.event,
            fleet=event.fleet,
            drone_id=event.drone_id,
            alert_id=event.alert_id,
            alert_type=event.type,
            severity=event.severity,
            raised_at=event.raised_at,
            at=event.at,
            detail=event.detail,
            test=test,
        )
    )


def signature(secret: str, timestamp: str, payload: bytes) -> str:
    """``v1=`` + hex HMAC-SHA256 over ``TIMESTAMP.BODY`` with the channel's secret."""
    mac = hmac.new(secret.encode(), timestamp.encode() + b"." + payload, hashlib.sha256)
    return "v1=" + mac.hexdigest()


async def post_webhook(
    http: aiohttp.ClientSession,
    channel: Channel,
    secret: str,
    event: AlertEvent,
    *,
    timeout_s: float,
    test: bool = False,
) -> Outcome:
    payload = body(event, channel, test=test)
    timestamp = str(int(time.time()))
    headers = {
        "Content-Type": "application/json",
        "User-Agent": "dronetrack-notifier",
        TIMESTAMP_HEADER: timestamp,
        IDEMPOTENCY_HEADER: idempotency_key(event, channel),
    }
    if secret:
        headers[SIGNATURE_HEADER] = signature(secret, timestamp, payload)
    try:
        async with http.post(
            channel.target,
            data=payload,
            headers=headers,
            timeout=aiohttp.ClientTimeout(total=timeout_s),
            allow_redirects=False,
        ) as response:
            await response.read()
            status = response.status
    except (aiohttp.ClientError, TimeoutError) as exc:
        return Outcome("retry", f"{type(exc).__name__}: {exc}".rstrip(": "))
    if 200 <= status < 300:
        return Outcome("ok")
    if status >= 500 or status in _RETRYABLE_HTTP:
        return Outcome("retry", f"HTTP {status}")
    return Outcome("failed", f"HTTP {status}")


def email_message(settings: Settings, channel: Channel, event: AlertEvent) -> EmailMessage:
    key = idempotency_key(event, channel)
    message = EmailMessage()
    message["From"] = settings.notify_smtp_from
    message["To"] = channel.target
    message["Subject"] = f"dronetrack: {summary(event)}"
    # The same Message-ID on every attempt: mail systems drop the duplicates of a retry.
    digest = hashlib.sha256(key.encode()).hexdigest()[:32]
    message["Message-ID"] = f"<{digest}@dronetrack>"
    message[IDEMPOTENCY_HEADER] = key
    message.set_content(
        f"{summary(event)}\n\nalert {event.alert_id}\nevent time {event.at} (epoch ms)\n"
    )
    return message


def _send_mail(settings: Settings, message: EmailMessage) -> None:
    with smtplib.SMTP(
        settings.notify_smtp_host, settings.notify_smtp_port, timeout=settings.notify_timeout_s
    ) as smtp:
        if settings.notify_smtp_starttls:
            cafile = settings.notify_smtp_ca_file or None
            smtp.starttls(context=ssl.create_default_context(cafile=cafile))
        if settings.notify_smtp_username:
            smtp.login(settings.notify_smtp_username, settings.notify_smtp_password)
        smtp.send_message(message)


async def send_email(settings: Settings, channel: Channel, event: AlertEvent) -> Outcome:
    if not settings.notify_smtp_host:
        return Outcome("failed", "DRONETRACK_NOTIFY_SMTP_HOST is not set")
    message = email_message(settings, channel, event)
    try:
        await asyncio.to_thread(_send_mail, settings, message)
    except smtplib.SMTPResponseException as exc:
        result: Result = "failed" if 500 <= exc.smtp_code < 600 else "retry"
        return Outcome(result, f"SMTP {exc.smtp_code}")
    except (smtplib.SMTPException, OSError) as exc:
        return Outcome("retry", f"{type(exc).__name__}: {exc}".rstrip(": "))
    return Outcome("ok")
