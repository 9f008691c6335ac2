"""Webhook signing secrets are sealed with a Fernet key from the settings (a Kubernetes Secret):
the notifier must use a secret to sign, so it cannot be stored hashed. The store only ever holds
the sealed box; a stolen database without the key gives nothing away."""

from __future__ import annotations

import secrets

from cryptography.fernet import Fernet, InvalidToken

from dronetrack.settings import PREFIX, Settings, SettingsError


def _fernet(settings: Settings) -> Fernet:
    if not settings.notify_secret_key:
        raise SettingsError(
            f"{PREFIX}NOTIFY_SECRET_KEY is not set: webhook secrets are sealed with it. Make one"
            " with `dronetrack notify keygen` and keep it in a Secret"
        )
    try:
        return Fernet(settings.notify_secret_key.encode())
    except ValueError:
        raise SettingsError(
            f"{PREFIX}NOTIFY_SECRET_KEY is not a Fernet key (urlsafe base64 of 32 bytes)"
        ) from None


def new_key() -> str:
    return Fernet.generate_key().decode()


def new_secret() -> str:
    """A webhook signing secret: 32 random bytes, hex."""
    return secrets.token_hex(32)


def seal(settings: Settings, secret: str) -> str:
    return _fernet(settings).encrypt(secret.encode()).decode()


def unseal(settings: Settings, box: str) -> str:
    try:
        return _fernet(settings).decrypt(box.encode()).decode()
    except InvalidToken:
        raise SettingsError(
            f"a webhook secret does not open with {PREFIX}NOTIFY_SECRET_KEY (was the key changed?)"
        ) from None
