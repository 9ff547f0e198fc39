"""The console's shell and the Mesh view, in Chromium against a 3-node mesh."""

from __future__ import annotations

import datetime
import http.client
import json
import re
import threading
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from playwright.sync_api import expect

from node.console.headers import HEADERS
from tests.browser.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    ConsoleMesh,
    screenshot,
    sign_in_admin,
)
from tests.support import wait_for


def test_admin_signs_in_and_sees_every_node_and_the_leader(
    page: Any, mesh: ConsoleMesh, tmp_path: Path
) -> None:
    sign_in_admin(page, mesh, password="not-the-password")
    form = page.locator("[data-view=signin]")
    expect(form.locator("[data-error=form]")).to_contain_text("wrong username or password")
    sign_in_admin(page, mesh)
    view = page.locator("[data-view=mesh]")
    rows = view.locator("[data-table=nodes] tbody tr")
    expect(rows).to_have_count(3)
    for name in ("n1", "n2", "n3"):
        expect(view.locator(f"[data-row={name}] [data-field=status]")).to_have_text("alive")
    leader = mesh.status()["leader"]["name"]
    expect(view.locator("tr[data-leader=true]")).to_have_attribute("data-row", leader)
    expect(view.locator("[data-quorum]")).to_have_attribute("data-quorum", "true")
    expect(page.locator("[data-who]")).to_contain_text("admin")
    # The indicator once missed the socket opening between the page's render and its
    # subscription, and said "connecting" on a live feed for good (app.js:useLiveState).
    expect(page.locator("[data-live]")).to_have_attribute("data-live", "open")
    # The session is in sessionStorage, never in the URL or a cookie.
    stored = json.loads(page.evaluate("sessionStorage.getItem('meshgate.session')"))
    assert stored["kind"] == "admin" and stored["admin"] is True and stored["token"]
    assert stored["token"] not in page.url and page.context.cookies() == []
    screenshot(page, tmp_path, "mesh")


def test_tenant_users_sign_in_with_a_key_or_an_idp_token(page: Any, mesh: ConsoleMesh) -> None:
    mesh.call("POST", "/api/admin/tenants", {"name": "team-a"})
    key = mesh.call("POST", "/api/keys", {"name": "console", "namespace": "team-a"})["apiKey"]
    page.goto("/ui/")
    signin = page.locator("[data-view=signin]")
    signin.locator("[data-action=mode-key]").click()
    signin.locator("input[name=apiKey]").fill("mg_not-a-key")
    signin.locator("[data-action=signin]").click()
    expect(signin.locator("[data-error=apiKey]")).to_be_visible()  # the API's 401, by the field
    signin.locator("input[name=apiKey]").fill(key)
    signin.locator("[data-action=signin]").click()
    expect(page.locator("[data-who]")).to_contain_text("tenant team-a")
    expect(page.locator("[data-nav=mesh]")).to_have_count(0)  # an admin view: not offered
    page.locator("[data-action=signout]").click()
    expect(signin.locator("[data-message]")).to_have_text("You signed out.")

    signin.locator("[data-action=mode-idp]").click()
    hostile = '<img src=x onerror="window.xss=1">'  # the token's name claim, shown as text
    signin.locator("input[name=token]").fill(mesh.idp_token("dana", tenant="team-a", name=hostile))
    signin.locator("[data-action=signin]").click()
    expect(page.locator("[data-who]")).to_contain_text(f"{hostile} · tenant team-a")
    assert page.locator("img").count() == 0 and page.evaluate("window.xss") is None
    stored = json.loads(page.evaluate("sessionStorage.getItem('meshgate.session')"))
    assert (stored["kind"], stored["tenant"], stored["admin"]) == ("idp", "team-a", False)
    page.locator("[data-action=signout]").click()
    signin.locator("[data-action=mode-idp]").click()
    signin.locator("input[name=token]").fill(mesh.idp_token("root", groups=["platform-admins"]))
    signin.locator("[data-action=signin]").click()
    expect(page.locator("[data-nav=mesh]")).to_be_visible()


def test_a_drain_through_another_node_shows_live_then_a_revocation_signs_out(
    page: Any, mesh: ConsoleMesh
) -> None:
    sign_in_admin(page, mesh)
    row = page.locator("[data-view=mesh] [data-row=n2]")
    expect(row.locator("[data-field=status]")).to_have_text("alive")
    expect(page.locator("[data-live]")).to_have_attribute("data-live", "open")
    # /ha/status blocked from now on: only the live feed can tell the page of the drain.
    page.route("**/ha/status", lambda route: route.abort())
    mesh.call("POST", "/ha/drain", {"target": "n2", "draining": True}, url=mesh.mesh.nodes[2].url)
    expect(row.locator("[data-field=status]")).to_have_text("draining")
    page.unroute("**/ha/status")
    # A rolling restart is refused while a voter is not healthy, with the CLI's reason.
    page.locator("[data-action=rolling-restart]").click()
    page.locator("[data-action=confirm]").click()
    refusal = page.locator("[data-error=rolling]")
    expect(refusal).to_have_text(re.compile(r"^refusing to start: [0-2] of 3 voters are healthy"))
    expect(refusal).to_contain_text("must leave a majority of 2; not healthy: ")
    expect(refusal).to_contain_text("n2 (draining)")
    row.locator("[data-action=undrain]").click()
    page.locator("[data-action=cancel]").click()  # No: nothing is sent
    expect(row.locator("[data-field=status]")).to_have_text("draining")
    row.locator("[data-action=undrain]").click()
    page.locator("[data-action=confirm]").click()
    expect(row.locator("[data-field=status]")).to_have_text("alive")
    # The page's undo reached the mesh (the status word follows n2's next report).
    wait_for(lambda: next(n for n in mesh.status()["nodes"] if n["name"] == "n2")["ready"])

    # The admin's tokens revoked through another node: the page notices on its next call.
    mesh.call("POST", "/api/admin/users/admin/revoke-tokens", url=mesh.mesh.nodes[1].url)
    message = page.locator("[data-view=signin] [data-message]")
    expect(message).to_have_text("Your session expired or was revoked: sign in again.")
    assert page.evaluate("sessionStorage.getItem('meshgate.session')") is None


KNOWN_NODES = "import('/ui/lib/nodes.js').then((m) => m.knownNodes())"
# What the shell does with /ha/status (app.js): remember its nodes, unless the call fails.
LATE_CALL = """() => {
  window.late = Promise.all([import('/ui/lib/api.js'), import('/ui/lib/nodes.js')]).then(
    ([api, nodes]) => api.api('GET', '/ha/status').then(
      (status) => { nodes.rememberNodes(status); return 'remembered'; }, (e) => e.code));
}"""


def _pumped(page: Any, condition: Any, timeout: float = 10.0) -> Any:
    """wait_for that lets Playwright run the page's route handlers while it polls."""
    return wait_for(lambda: page.wait_for_timeout(20) or condition(), timeout=timeout)


def test_a_session_change_forgets_the_node_list_and_stops_a_rolling_restart(
    page: Any, mesh: ConsoleMesh
) -> None:
    """No node restarts: the test holds the run's first POST /ha/shutdown, signs out, signs
    another admin in, then answers it as if the node had gone down and come back."""
    held: dict[str, list[Any]] = {"shutdown": [], "status": []}
    faked = {"hold_status": False, "rebooted": None}

    def status(route: Any) -> None:
        if faked["hold_status"]:
            held["status"].append(route)
            return
        answer = route.fetch()
        body = answer.json()
        for node in body["nodes"]:  # the held shutdown's node, as if back from a restart
            if node["name"] == faked["rebooted"]:
                node["boot_id"] = "a-new-run"
        route.fulfill(response=answer, body=json.dumps(body))

    sign_in_admin(page, mesh)
    view = page.locator("[data-view=mesh]")
    expect(view.locator("[data-table=nodes] tbody tr")).to_have_count(3)
    assert len(page.evaluate(KNOWN_NODES)["nodes"]) == 3
    page.route("**/ha/shutdown", lambda route: held["shutdown"].append(route))
    page.route("**/ha/status", status)
    view.locator("input[name=settle_secs]").fill("0")
    view.locator("[data-action=rolling-restart]").click()
    view.locator("[data-action=confirm]").click()
    _pumped(page, lambda: held["shutdown"])
    target = held["shutdown"][0].request.post_data_json["target"]
    faked["hold_status"] = True  # a /ha/status of this session, answered after it ended
    page.evaluate(LATE_CALL)
    _pumped(page, lambda: held["status"])

    page.locator("[data-action=signout]").click()
    message = page.locator("[data-view=signin] [data-message]")
    expect(message).to_contain_text("The rolling restart stopped when its session ended")
    expect(message).to_contain_text(f"{target} was asked to restart")
    assert page.evaluate(KNOWN_NODES) == {"self": None, "nodes": []}
    faked["hold_status"] = False
    for route in held["status"]:
        route.continue_()
    assert page.evaluate("window.late") == "session_ended"  # dropped, not remembered
    assert page.evaluate(KNOWN_NODES) == {"self": None, "nodes": []}

    signin = page.locator("[data-view=signin]")  # the same page: the run's code still loaded
    signin.locator("input[name=username]").fill(ADMIN_USER)
    signin.locator("input[name=password]").fill(ADMIN_PASSWORD)
    signin.locator("[data-action=signin]").click()
    expect(view.locator("[data-table=nodes] tbody tr")).to_have_count(3)
    faked["rebooted"] = target
    held["shutdown"][0].fulfill(status=200, json={"target": target})
    # Unbound, the run would now see the node back and ask the next one within ~0.5 s.
    with pytest.raises(PlaywrightTimeout):
        page.wait_for_event("request", lambda r: "/ha/shutdown" in r.url, timeout=1000)
    assert len(held["shutdown"]) == 1


def test_a_browser_clock_hours_ahead_signs_in_and_its_session_ends_on_time(
    page: Any, mesh: ConsoleMesh
) -> None:
    """The admin token's lifetime (an hour) as the node measured it, counted on the page's
    clock from sign-in: two hours ahead of the node's, it must neither refuse the sign-in
    nor cut the session short."""
    page.clock.install(time=datetime.datetime.now(datetime.UTC) + datetime.timedelta(hours=2))
    sign_in_admin(page, mesh)
    expect(page.locator("[data-view=mesh]")).to_be_visible()
    page.clock.fast_forward("58:00")
    expect(page.locator("[data-view=mesh]")).to_be_visible()
    page.clock.fast_forward("03:00")
    message = page.locator("[data-view=signin] [data-message]")
    expect(message).to_have_text("Your session expired: sign in again.")


def test_a_rolling_restart_from_the_page_and_its_node_going_away(
    page: Any, mesh: ConsoleMesh, tmp_path: Path
) -> None:
    """The page's own node, restarted by the rolling restart, stays down until the page has
    noticed (the test's supervisor holds it): a banner offers the other nodes' consoles, the
    indicator says the feed is down; then the node comes back, the page reconnects and the
    restart goes on to the end."""
    noticed = threading.Event()
    mesh.mesh.supervise(hold=lambda name: name == "n1" and not noticed.is_set())
    status = mesh.status()
    before = {n["name"]: n["boot_id"] for n in status["nodes"]}
    leader = status["leader"]["name"]
    sign_in_admin(page, mesh)
    view = page.locator("[data-view=mesh]")
    expect(view.locator("[data-table=nodes] tbody tr")).to_have_count(3)
    live = page.locator("[data-live]")
    expect(live).to_have_attribute("data-live", "open")
    view.locator("input[name=settle_secs]").fill("0.5")
    view.locator("[data-action=rolling-restart]").click()
    view.locator("[data-action=confirm]").click()
    banner = page.locator("[data-banner=node-lost]")
    try:
        expect(banner).to_be_visible(timeout=60_000)
        expect(live).not_to_have_attribute("data-live", "open")
        links = banner.locator("a")
        expect(links).to_have_count(2)
        found = {a.get_attribute("data-node"): a.get_attribute("href") for a in links.all()}
        assert found == {name: mesh.mesh.node(name).url + "/ui/" for name in ("n2", "n3")}
    finally:
        noticed.set()
    expect(live).to_have_attribute("data-live", "open", timeout=30_000)
    expect(banner).to_have_count(0)
    expect(view.locator("[data-rolling=done]")).to_be_visible(timeout=90_000)
    progress = view.locator("[data-table=rolling] li")
    expect(progress).to_have_count(3)
    assert all(li.get_attribute("data-phase") == "done" for li in progress.all())
    status = mesh.status()
    assert all(n["boot_id"] != before[n["name"]] for n in status["nodes"]), "each restarted"
    order = [li.get_attribute("data-row") for li in progress.all()]
    assert order == [*sorted(set(before) - {leader}), leader], "followers by name, leader last"
    # The leader, restarted last, handed over: the page highlights the new one by itself.
    assert status["leader"]["name"] != leader
    expect(view.locator("tr[data-leader=true]")).to_have_attribute(
        "data-row", status["leader"]["name"]
    )
    screenshot(page, tmp_path, "rolling-restart")


def test_the_static_route_serves_its_files_and_refuses_traversal(mesh: ConsoleMesh) -> None:
    """Raw request lines (no client normalises the dots away), over real HTTP."""
    host, port = mesh.url.removeprefix("http://").split(":")

    def get(
        path: str, headers: dict[str, str] | None = None, method: str = "GET"
    ) -> tuple[int, dict[str, str], bytes]:
        conn = http.client.HTTPConnection(host, int(port), timeout=5)
        try:
            conn.request(method, path, headers=headers or {})
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
    for method in ("POST", "PUT", "DELETE", "OPTIONS"):  # the router's own 405s
        status, headers, _ = get("/ui/app.js", method=method)
        assert status == 405, method
        assert all(headers[name.lower()] == value for name, value in HEADERS.items()), method
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


def test_the_leader_killed_the_page_shows_the_new_one(page: Any, mesh: ConsoleMesh) -> None:
    """Last: the rolling restart's supervisor starts the killed node again, in the background.
    The page is opened on a follower, which outlives the leader."""
    leader = mesh.status()["leader"]["name"]
    watcher = next(node for node in mesh.mesh.nodes if node.name != leader)
    sign_in_admin(page, mesh, url=watcher.url)
    rows = page.locator("[data-view=mesh] tr[data-leader=true]")
    expect(rows).to_have_attribute("data-row", leader)
    mesh.mesh.node(leader).proc.kill()
    new = page.locator(f"[data-view=mesh] tr[data-leader=true]:not([data-row={leader}])")
    expect(new).to_have_count(1, timeout=20_000)  # an election, then the next poll
    elected = wait_for(lambda: (mesh.status(watcher.url).get("leader") or {}).get("name"))
    expect(rows).to_have_attribute("data-row", elected)
