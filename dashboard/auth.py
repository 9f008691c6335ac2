"""Login sessions, CSRF protection and fleet scoping.

A session is a signed cookie (HMAC-SHA256 over user, expiry and a CSRF token), so any replica
that shares ``DRONETRACK_DASHBOARD_SESSION_SECRET`` can check it without a session table. The
cookie is HttpOnly and SameSite=Lax, and Secure whenever the request came over TLS. Every request
re-reads the user's fleets (cached for seconds), so a disabled user or a removed fleet stops
working at once rather than at cookie expiry; so does a new password, whose fingerprint no
longer matches the session's. Signing out records in the store that the user's sessions issued
until then are void, so a copied cookie stops working too, whatever the cache forgets.

CSRF: a state-changing request must come from our own origin (``Origin`` checked when the browser
sends it) and carry the session's token in ``X-CSRF-Token``, which a cross-site page cannot read.
Login takes JSON only, which a cross-site form cannot send without a CORS preflight.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

import msgspec
from aiohttp import web

from dashboard.keys import LOGIN_SLOTS, READS, SESSION_KEY, SETTINGS, THROTTLE
from dashboard.reads import now_ms
from dronetrack.passwords import fingerprint, verify_password
from dronetrack.web import problem

COOKIE = "dronetrack_session"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})
# The API paths open without a session (everything outside /api/ is: the page, static files,
# health and metrics).
PUBLIC = frozenset({"/api/login", "/api/openapi.json"})

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


class Session(msgspec.Struct, frozen=True):
    user: str
    expires: int  # epoch seconds
    csrf: str
    credential: str  # the password's fingerprint at login: a new password ends the session
    # Epoch ms of the login: a sign-out at or after it voids the session. (Cookies made before
    # this field existed have 0, so any sign-out of their user voids them.)
    issued: int = 0


class Principal(msgspec.Struct, frozen=True):
    """The signed-in user of a request, with the fleets they may see."""

    name: str
    fleets: list[str]
    csrf: str
    expires: int


PRINCIPAL = web.RequestKey("principal", Principal)


def session_key(settings_secret: str) -> bytes:
    return settings_secret.encode() if settings_secret else secrets.token_bytes(32)


def _sign(key: bytes, payload: bytes) -> str:
    return base64.urlsafe_b64encode(hmac.new(key, payload, hashlib.sha256).digest()).decode()


def encode_session(key: bytes, session: Session) -> str:
    payload = msgspec.json.encode(session)
    return base64.urlsafe_b64encode(payload).decode() + "." + _sign(key, payload)


def decode_session(key: bytes, cookie: str) -> Session | None:
    """The session if the signature holds and it has not expired; None otherwise."""
    body, _, signature = cookie.partition(".")
    if not cookie.isascii():  # a signature and base64 are ASCII; compare_digest needs it too
        return None
    try:
        payload = base64.urlsafe_b64decode(body)
        if not hmac.compare_digest(_sign(key, payload), signature):
            return None
        session = msgspec.json.decode(payload, type=Session)
    except (ValueError, msgspec.DecodeError):
        return None
    return session if session.expires > time.time() else None


def _secure(request: web.Request) -> bool:
    if request.secure:
        return True
    proxy_https = request.headers.get("X-Forwarded-Proto", "").lower() == "https"
    return request.app[SETTINGS].dashboard_trust_proxy and proxy_https


def client_address(request: web.Request) -> str:
    """The client's address: behind a trusted proxy, the last one it added to X-Forwarded-For
    (the earlier entries are the client's own word)."""
    if request.app[SETTINGS].dashboard_trust_proxy:
        forwarded = request.headers.get("X-Forwarded-For", "").rsplit(",", 1)[-1].strip()
        if forwarded:
            return forwarded
    return request.remote or ""


def _same_origin(request: web.Request) -> bool:
    origin = request.headers.get("Origin")
    if origin is None:  # not a browser, or a same-origin GET-like navigation
        return True
    # Host only: behind a TLS-terminating proxy the scheme we see is not the browser's.
    return urlsplit(origin).netloc == request.host


async def principal(request: web.Request) -> Principal | None:
    raw = request.cookies.get(COOKIE)
    if not raw:
        return None
    session = decode_session(request.app[SESSION_KEY], raw)
    if session is None:
        return None
    # The user's record is cached for seconds (and in process for a fraction of that), so this
    # costs no store read, and usually no Redis round trip, per request.
    access = await request.app[READS].access(session.user)
    if access is None or access.disabled or access.credential != session.credential:
        return None
    if access.sessions_valid_after and session.issued <= access.sessions_valid_after:
        return None  # signed out: a copy of the cookie is worth nothing either
    return Principal(session.user, access.fleets, session.csrf, session.expires)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Authenticate /api/ calls and refuse cross-site state changes."""
    if request.method not in SAFE_METHODS and not _same_origin(request):
        return problem(403, "Cross-origin request refused", "Origin does not match this site")
    if request.path in PUBLIC or not request.path.startswith("/api/"):
        return await handler(request)
    who = await principal(request)
    if who is None:
        return problem(401, "Not signed in", "log in at POST /api/login")
    if request.method not in SAFE_METHODS:
        token = request.headers.get(CSRF_HEADER, "")
        if not token.isascii() or not hmac.compare_digest(token.encode(), who.csrf.encode()):
            return problem(403, "CSRF token missing or wrong", f"send the {CSRF_HEADER} header")
    request[PRINCIPAL] = who
    return await handler(request)


def current(request: web.Request) -> Principal:
    return request[PRINCIPAL]


def fleet_of(request: web.Request) -> str | None:
    """The fleet a request asks for (default: the user's first); None if it is not theirs."""
    who = current(request)
    wanted = request.query.get("fleet") or (who.fleets[0] if who.fleets else "")
    return wanted if wanted in who.fleets else None


class Credentials(msgspec.Struct, forbid_unknown_fields=True):
    name: str
    password: str


async def login(request: web.Request) -> web.Response:
    if request.content_type != "application/json":
        return problem(415, "Send JSON", 'POST {"name": ..., "password": ...} as application/json')
    try:
        creds = msgspec.json.decode(await request.read(), type=Credentials)
    except msgspec.DecodeError as exc:
        return problem(400, "Bad login request", str(exc))
    throttle = request.app[THROTTLE]
    address = client_address(request)
    wait_s = await throttle.retry_after(creds.name, address)
    if wait_s:
        response = problem(
            429, "Too many failed logins", f"try again in {wait_s} s, with the right password"
        )
        response.headers["Retry-After"] = str(wait_s)
        return response
    store = request.app[READS].store
    user = await store.get_user(creds.name)
    # argon2 is deliberately slow and memory-hard: keep it off the event loop. An unknown name
    # (None) costs the same work as a wrong password, so timing does not reveal names.
    stored = user.password_hash if user is not None else None
    async with request.app[LOGIN_SLOTS]:
        ok = await asyncio.to_thread(verify_password, stored, creds.password)
    if user is None or user.disabled or not ok:
        await throttle.failed(creds.name, address)
        return problem(401, "Wrong name or password")
    await throttle.succeeded(creds.name)
    settings = request.app[SETTINGS]
    session = Session(
        user.name,
        int(time.time()) + settings.dashboard_session_max_age_s,
        secrets.token_urlsafe(24),
        fingerprint(user.password_hash),
        now_ms(),
    )
    response = web.json_response(_describe(user.name, user.fleets, session.csrf, session.expires))
    response.set_cookie(
        COOKIE,
        encode_session(request.app[SESSION_KEY], session),
        max_age=settings.dashboard_session_max_age_s,
        path="/",
        httponly=True,
        samesite="Lax",
        secure=_secure(request),
    )
    return response


async def logout(request: web.Request) -> web.Response:
    """End the session for every copy of its cookie, not just this browser's: the store records
    that the user's sessions issued until now are void (all of them: the price of keeping no
    session table). Dropping the cached user record makes it take at once on this replica; the
    others see it once their copy of the record ages out (seconds)."""
    who = current(request)
    reads = request.app[READS]
    await reads.store.end_sessions(who.name, now_ms())
    await reads.forget_user(who.name)
    response = web.json_response({"signed_out": True})
    response.del_cookie(COOKIE, path="/", secure=_secure(request), samesite="Lax")
    return response


async def session_info(request: web.Request) -> web.Response:
    """Who is signed in, their fleets and the CSRF token the page sends back."""
    who = current(request)
    return web.json_response(_describe(who.name, who.fleets, who.csrf, who.expires))


def _describe(name: str, fleets: list[str], csrf: str, expires: int) -> dict[str, object]:
    return {"user": name, "fleets": fleets, "csrf_token": csrf, "expires": expires}
