"""Bearer-token authentication: the token names the fleet, the body never does."""

from __future__ import annotations

from aiohttp import web

from dronetrack.tokens import TokenTable
from ingest import problems


def fleet_of(request: web.Request, table: TokenTable) -> str:
    """The fleet of the request's bearer token, or a 401 problem."""
    header = request.headers.get("Authorization")
    if header is None:
        raise problems.unauthorized("send 'Authorization: Bearer <fleet token>'", error=None)
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise problems.unauthorized(
            "the Authorization header is not 'Bearer <token>'", "invalid_request"
        )
    fleet = table.fleet_for(token.strip())
    if fleet is None:
        raise problems.unauthorized("the token is not valid")
    return fleet
