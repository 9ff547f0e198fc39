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


def add_console_headers(request: web.Request, response: web.StreamResponse) -> None:
    """An answer under /ui gets the headers it does not carry yet (node/web.py calls it
    before each answer's headers go, the router's own answers included)."""
    if under_console(request.path):
        for name, value in HEADERS.items():
            response.headers.setdefault(name, value)
