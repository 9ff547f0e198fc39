"""The console's security headers, on every answer under /ui: its handlers' and the ones
aiohttp's router makes itself (a 405 for POST /ui/app.js), which no handler sees."""

from __future__ import annotations

from typing import Final

from aiohttp import web

CSP: Final = (
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; object-src 'none'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS: Final = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-cache",
}


def under_console(path: str) -> bool:
    return path == "/ui" or path.startswith("/ui/")


async def add_console_headers(request: web.Request, response: web.StreamResponse) -> None:
    """on_response_prepare: an answer under /ui gets the headers it does not carry yet."""
    if under_console(request.path):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
