"""The Traffic and Activity views in Chromium against a 3-node mesh: charts drawn from
/ha/traffic after known traffic, and a change made through another node arriving in the
live feed, with who made it, without a reload. One signed-in page for both (a mesh, a
browser and a sign-in cost seconds each)."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import requests
from playwright.sync_api import expect

from tests.browser.conftest import (
    ADMIN_PASSWORD,
    ADMIN_USER,
    ConsoleMesh,
    screenshot,
    sign_in_admin,
)
from tests.cluster.conftest import MODEL

NONZERO = re.compile(r"^\s*[0-9.]*[1-9]")
HOSTILE = "<img src=x onerror=alert(1)>"


def _chat(mesh: ConsoleMesh, stream: bool) -> None:
    body = {"model": MODEL, "messages": [{"role": "user", "content": "hi"}], "stream": stream}
    answer = requests.post(
        mesh.url + "/v1/chat/completions", json=body, headers=mesh.admin, timeout=10
    )
    assert answer.status_code == 200, answer.text


def _with_proto_model(route: Any, served: bool) -> None:
    """The node's answer, with a model 'toString' on every node while `served`."""
    answer = route.fetch()
    body = answer.json()
    for summary in body["nodes"].values():
        if served:
            summary["models"]["toString"] = summary["total"]
    route.fulfill(response=answer, body=json.dumps(body))


def test_traffic_charts_after_known_traffic_then_a_change_through_another_node_is_live(
    page: Any, mesh: ConsoleMesh, tmp_path: Path
) -> None:
    for i in range(6):
        _chat(mesh, stream=i % 2 == 0)
    sign_in_admin(page, mesh)
    expect(page.locator("[data-view=mesh]")).to_be_visible()
    page.locator("[data-nav=traffic]").click()
    view = page.locator("[data-view=traffic]")
    expect(view.locator("[data-total=requests]")).to_have_text(NONZERO)
    for chart in ("requests", "errors", "latency", "ttft"):
        expect(view.locator(f"[data-chart={chart}] canvas")).to_have_count(1)
    # The legend shows the latest bucket with traffic: rate, latency and TTFT above zero.
    for chart in ("requests", "latency", "ttft"):
        value = view.locator(f"[data-chart={chart}] .u-legend .u-series .u-value").nth(1)
        expect(value).to_have_text(NONZERO)
    expect(view.locator("select[name=node] option")).to_have_count(3)  # scope=mesh: each node
    view.locator("select[name=model]").select_option(MODEL)
    expect(view.locator("[data-total=requests]")).to_have_text(NONZERO)
    screenshot(page, tmp_path, "traffic")
    # A model named like an Object.prototype member, chosen, then gone from the next answer.
    proto = {"served": True}
    page.route("**/ha/traffic*", lambda route: _with_proto_model(route, proto["served"]))
    view.locator("select[name=minutes]").select_option("5")  # a new window: fetched at once
    view.locator("select[name=model]").select_option("toString")
    expect(view.locator("select[name=model]")).to_have_value("toString")
    expect(view.locator("[data-total=requests]")).to_have_text(NONZERO)
    proto["served"] = False
    view.locator("select[name=minutes]").select_option("10")
    expect(view.locator("select[name=model]")).to_have_value("")  # back to every model
    expect(view.locator("[data-total=requests]")).to_have_text(NONZERO)
    page.unroute("**/ha/traffic*")

    page.locator("[data-nav=activity]").click()
    view = page.locator("[data-view=activity]")
    expect(view.locator("[data-table=changes]")).to_be_visible()
    expect(page.locator("[data-live]")).to_have_attribute("data-live", "open")
    other = mesh.mesh.nodes[1].url
    write = requests.post(
        other + "/ha/config", json={"key": "console-activity", "value": HOSTILE}, headers=mesh.admin
    )
    assert write.status_code == 200, write.text
    row = view.locator("[data-table=changes] tbody tr", has_text="console-activity")
    expect(row.locator("[data-field=op]")).to_have_text("config.set")
    expect(row.locator("[data-field=by]")).to_have_text("n2/a")  # the node and key id of who
    expect(row.locator("[data-field=object]")).to_contain_text(HOSTILE)  # as text, not markup
    assert view.locator("img").count() == 0
    # Below it, this node's audit log (the admin's login on n1 at least).
    expect(view.locator("[data-table=audit] [data-field=request]").first).to_be_visible()
    screenshot(page, tmp_path, "activity")
    # A new session (maybe another tenant's user, in the same tab) starts the feed empty.
    page.locator("[data-action=signout]").click()
    signin = page.locator("[data-view=signin]")  # the same page: no reload clears anything
    signin.locator("input[name=username]").fill(ADMIN_USER)
    signin.locator("input[name=password]").fill(ADMIN_PASSWORD)
    signin.locator("[data-action=signin]").click()
    page.locator("[data-nav=activity]").click()
    expect(page.locator("[data-view=activity] [data-empty=feed]")).to_be_visible()
    expect(page.locator("[data-table=changes] tbody tr")).to_have_count(0)
