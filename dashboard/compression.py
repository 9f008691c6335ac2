"""gzip for JSON responses when the client accepts it: drone lists and replays are repetitive
text that shrinks several times over. Small bodies are sent as they are (not worth the CPU)."""

from __future__ import annotations

from aiohttp import web

from dronetrack.web import Handler

MIN_BYTES = 1_024
JSON_TYPES = frozenset({"application/json", "application/problem+json"})


@web.middleware
async def compress_json(request: web.Request, handler: Handler) -> web.StreamResponse:
    response = await handler(request)
    if isinstance(response, web.Response) and response.content_type in JSON_TYPES:
        response.headers["Vary"] = "Accept-Encoding"
        body = response.body
        accepts = request.headers.get("Accept-Encoding", "")
        if isinstance(body, bytes) and len(body) >= MIN_BYTES and "gzip" in accepts:
            response.enable_compression(web.ContentCoding.gzip)
    return response
