"""The console's shell and the Mesh view, in Chromium against a 3-node mesh."""

from __future__ import annotations

import http.client
from pathlib import Path
from typing import Any

from playwright.sync_api import expect

from node.console.routes import HEADERS
from tests.browser.conftest import ConsoleMesh, screenshot, sign_in_admin


def test_admin_signs_in_and_sees_every_node_and_the_leader(
    page: Any, mesh: ConsoleMesh, tmp_path: Path
) -> None:
    sign_in_admin(page, mesh)
    view = page.locator("[data-view=mesh]")
    rows = view.locator("[data-table=nodes] tbody tr")
    expect(rows).to_have_count(3)
    for name in ("n1", "n2", "n3"):
        expect(view.locator(f"[data-row={name}]")).to_be_visible()
    leader = mesh.status()["leader"]["name"]
    expect(view.locator("tr[data-leader=true]")).to_have_attribute("data-row", leader)
    expect(page.locator("[data-who]")).to_contain_text("admin")
    expect(page.locator("[data-live]")).to_have_attribute("data-live", "open")
    # The session is in sessionStorage, never in the URL or a cookie.
    assert "token" not in page.url and page.context.cookies() == []
    screenshot(page, tmp_path, "mesh")


def test_the_static_route_serves_its_files_and_refuses_traversal(mesh: ConsoleMesh) -> None:
    """Raw request lines (no client normalises the dots away), over real HTTP."""
    host, port = mesh.url.removeprefix("http://").split(":")

    def get(path: str, headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request("GET", path, headers=headers or {})
            resp = conn.getresponse()
            return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
        finally:
            conn.close()

    status, headers, body = get("/ui/")
    assert status == 200 and headers["content-type"].startswith("text/html")
    for name, value in HEADERS.items():
        assert headers[name.lower()] == value
    assert get("/ui")[0] == 308 and get("/ui")[1]["location"] == "/ui/"
    status, headers, _ = get("/ui/lib/api.js")
    assert status == 200 and headers["content-type"] == "text/javascript; charset=utf-8"
    assert get("/ui/lib/api.js", {"If-None-Match": headers["etag"]})[0] == 304
    for attack in (
        "/ui/../../etc/passwd",
        "/ui/%2e%2e/%2e%2e/etc/passwd",
        "/ui/%2E%2E%2F%2E%2E%2Fetc%2Fpasswd",
        "/ui/..%2f..%2f..%2fetc/passwd",
        "/ui//etc/passwd",
        "/ui/%2fetc%2fpasswd",
        "/ui/..\\..\\etc\\passwd",
        "/ui/lib/",
        "/ui/vendor",
        "/ui/" + "a/" * 200,
    ):
        status, headers, body = get(attack)
        assert status == 404, attack
        assert (
            b"root:" not in body
            and headers["content-security-policy"] == HEADERS["Content-Security-Policy"]
        ), attack
