"""The Workers, Models and publishing, and Tenants and keys views, in Chromium against the
module's 3-node mesh: forms that show the API's error next to its field and change
nothing, secrets shown once, changes made through another node shown without a reload,
and a tenant user's page holding only its tenant."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import openai
import pytest
import requests
from playwright.sync_api import expect

from tests.browser.conftest import ConsoleMesh, screenshot, sign_in_admin
from tests.cluster.conftest import MODEL
from tests.support import wait_for

HOSTILE = "<img src=x onerror=alert(1)>"


def _open(page: Any, view: str) -> Any:
    """The view, in the page's signed-in session (no reload: the hash routes)."""
    expect(page.locator("[data-live]")).to_be_visible()  # signed in: the shell is up
    page.evaluate("view => { location.hash = '#/' + view }", view)
    root = page.locator(f"[data-view={view}]")
    expect(root).to_be_visible()
    page.evaluate("window.notReloaded = true")  # gone if anything reloads the page
    return root


def _not_reloaded(page: Any) -> None:
    assert page.evaluate("window.notReloaded") is True


def _fill(form: Any, fields: dict[str, str]) -> None:
    """Type each value into the form's input of that (API field) name."""
    for name, value in fields.items():
        form.locator(f"[name='{name}']").fill(value)


def _confirm(page: Any) -> None:
    page.locator("[data-confirm] [data-action=confirm]").click()


def _api(mesh: ConsoleMesh, node: int, method: str, path: str, **kwargs: Any) -> Any:
    resp = requests.request(
        method, mesh.mesh.nodes[node].url + path, headers=mesh.admin, timeout=10, **kwargs
    )
    assert resp.ok, resp.text
    return resp.json()


def _sign_in_key(page: Any, key: str) -> None:
    page.goto("/ui/")
    page.locator("[data-view=signin] [data-action=mode-key]").click()
    page.locator("[data-view=signin] input[name=apiKey]").fill(key)
    page.locator("[data-view=signin] [data-action=signin]").click()


def test_workers_drain_remove_add_edit(page: Any, mesh: ConsoleMesh, tmp_path: Path) -> None:
    """The mesh's own worker: drained, removed, added back (ready again for the others)."""
    (worker,) = _api(mesh, 1, "GET", "/workers")["workers"]
    sign_in_admin(page, mesh)
    view = _open(page, "workers")
    row = view.locator(f"tr[data-row='{worker['id']}']")
    expect(row).to_have_attribute("data-status", "ready")
    row.locator("[data-action=drain]").click()
    _confirm(page)
    expect(row).to_have_attribute("data-status", "draining")
    row.locator("[data-action=remove]").click()
    _confirm(page)
    expect(row).to_have_count(0)
    wait_for(lambda: _api(mesh, 2, "GET", "/workers")["total"] == 0, what="the removal on n3")

    view.locator("[data-action=add-worker]").click()
    form = view.locator("[data-form=add-worker]")
    bad_url = {"url": "ftp://10.0.0.5:8000", "labels": f"x={HOSTILE}"}
    _fill(form, {**bad_url, "api_key": "worker-credential-42"})
    form.locator("[data-action=add]").click()
    expect(form.locator("[data-error=url]")).to_contain_text("url must be http://")
    expect(form.locator("[data-error=form]")).to_have_count(0)
    assert _api(mesh, 1, "GET", "/workers")["total"] == 0  # nothing added

    form.locator("[name=url]").fill(worker["url"])  # what else was typed is kept
    form.locator("[data-action=add]").click()
    (added,) = wait_for(lambda: _api(mesh, 1, "GET", "/workers")["workers"], what="the add")
    row = view.locator(f"tr[data-row='{added['id']}']")
    expect(row).to_have_attribute("data-status", "ready")  # pending, then ready
    expect(row).to_contain_text(HOSTILE)  # a label is text, never markup
    assert view.locator("img").count() == 0
    assert "worker-credential-42" not in page.content() and added["has_api_key"] is True

    row.locator("[data-action=edit]").click()
    edit = view.locator("[data-form=edit-worker]")
    edit.locator("[name=priority]").fill("7")
    edit.locator("[name=api_key]").fill("")  # left empty: the credential stays
    edit.locator("[data-action=save]").click()
    expect(edit).to_have_count(0)
    expect(row.locator("[data-cell=priority]")).to_have_text("7")
    assert _api(mesh, 2, "GET", f"/workers/{added['id']}")["has_api_key"] is True
    nodes = row.locator("[data-action=nodes]")
    expect(nodes).to_have_attribute("data-agreement", "agree")  # in every node's report
    nodes.click()
    by_node = view.locator(f"[data-table=health-by-node][data-worker='{added['id']}']")
    expect(by_node.locator("tbody tr")).to_have_count(3)
    expect(by_node.locator("tr[data-row=n2]")).to_contain_text("yes")
    screenshot(page, tmp_path, "workers")
    _not_reloaded(page)


def test_tenants_and_keys_shown_once_and_revoked_through_another_node(
    page: Any, mesh: ConsoleMesh, tmp_path: Path
) -> None:
    tenants = len(_api(mesh, 1, "GET", "/api/admin/tenants")["tenants"])
    keys = _api(mesh, 1, "GET", "/api/keys")["total"]
    sign_in_admin(page, mesh)
    view = _open(page, "tenants")
    tenant_form = view.locator("[data-form=create-tenant]")
    tenant_form.locator("[name=name]").fill("Team A")
    tenant_form.locator("[data-action=create-tenant]").click()
    expect(tenant_form.locator("[data-error=name]")).to_contain_text("lowercase")
    assert len(_api(mesh, 1, "GET", "/api/admin/tenants")["tenants"]) == tenants
    _fill(tenant_form, {"name": "team-a", "limits.requestsPerMinute": "600"})
    tenant_form.locator("[data-action=create-tenant]").click()
    expect(view.locator("[data-table=tenants] tr[data-row=team-a]")).to_contain_text(
        "requests/min 600"
    )

    key_form = view.locator("[data-form=create-key]")
    key_form.locator("[name=namespace]").select_option("team-a")
    _fill(key_form, {"name": f"ci {HOSTILE}", "expiresInSecs": "0"})
    key_form.locator("[data-action=create-key]").click()
    expect(key_form.locator("[data-error=expiresInSecs]")).to_contain_text("expiresInSecs")
    assert _api(mesh, 1, "GET", "/api/keys")["total"] == keys
    key_form.locator("[name=expiresInSecs]").fill("3600")
    key_form.locator("[data-action=create-key]").click()
    secret = view.locator("[data-dialog=secret] [data-secret]")
    expect(secret).to_contain_text("mg_")
    key = secret.inner_text()
    page.context.grant_permissions(["clipboard-read", "clipboard-write"])
    view.locator("[data-dialog=secret] [data-action=copy]").click()
    expect(view.locator("[data-dialog=secret] [data-copied]")).to_have_text("Copied.")
    assert page.evaluate("navigator.clipboard.readText()") == key
    listed = _api(mesh, 0, "GET", "/api/keys")["keys"]
    (created,) = [k for k in listed if k["name"] == f"ci {HOSTILE}"]
    assert key.startswith(created["prefix"])
    row = view.locator(f"[data-table=keys] tr[data-row='{created['id']}']")
    expect(row).to_contain_text(created["prefix"])
    expect(row).to_contain_text(HOSTILE)  # a key's name is text, never markup
    assert view.locator("img").count() == 0
    screenshot(page, tmp_path, "tenants")
    view.locator("[data-dialog=secret] [data-action=close]").click()
    expect(secret).to_have_count(0)
    assert key not in page.content()  # shown once: gone with the dialog

    _api(mesh, 2, "DELETE", f"/api/keys/{created['id']}")  # through another node
    expect(row).to_have_count(0)
    _not_reloaded(page)


def test_a_tenant_user_sees_only_its_tenant_and_its_actions(page: Any, mesh: ConsoleMesh) -> None:
    for name in ("team-u", "team-v"):
        _api(mesh, 0, "POST", "/api/admin/tenants", json={"name": name})
    mine = _api(
        mesh,
        0,
        "POST",
        "/api/keys",
        json={"name": "u-minter", "namespace": "team-u", "role": "minter"},
    )
    sibling = _api(mesh, 0, "POST", "/api/keys", json={"name": "u-sibling", "namespace": "team-u"})
    _api(mesh, 0, "POST", "/api/keys", json={"name": "v-key", "namespace": "team-v"})
    for tenant in ("team-u", "team-v"):
        model = {"name": f"{tenant}-model", "namespace": tenant, "modelId": MODEL}
        _api(mesh, 0, "POST", "/api/models", json=model)

    _sign_in_key(page, mine["apiKey"])
    view = _open(page, "tenants")
    own = view.locator(f"tr[data-row='{mine['id']}']")
    expect(own.locator("[data-action=rotate]")).to_be_visible()  # a key manages itself
    expect(own.locator("[data-action=revoke]")).to_be_visible()
    expect(view.locator(f"tr[data-row='{sibling['id']}']")).to_be_visible()
    assert view.locator(f"tr[data-row='{sibling['id']}'] [data-action]").count() == 0
    as_user = {"Authorization": f"Bearer {mine['apiKey']}"}  # what the API says to this user
    refused = requests.delete(f"{mesh.url}/api/keys/{sibling['id']}", headers=as_user, timeout=5)
    assert refused.status_code == 403, refused.text
    assert view.locator("[data-table=tenants]").count() == 0
    assert "v-key" not in page.content() and "team-v" not in page.content()
    expect(view.locator("[data-form=create-key]")).to_be_visible()  # role minter mints
    for admin_only in ("mesh", "workers"):  # not offered
        assert page.locator(f"[data-nav={admin_only}]").count() == 0
    own.locator("[data-action=rotate]").click()  # its own key: the page goes on with the new one
    expect(page.locator("[data-confirm]")).to_contain_text("goes on with the new one")
    _confirm(page)
    secret = view.locator("[data-dialog=secret] [data-secret]")
    expect(secret).to_contain_text("mg_")
    rotated = {"Authorization": f"Bearer {secret.inner_text()}"}
    view.locator("[data-dialog=secret] [data-action=close]").click()
    expect(own.locator("[data-action=rotate]")).to_be_visible()  # still signed in
    assert requests.get(f"{mesh.url}/api/keys", headers=as_user, timeout=5).status_code == 401
    assert requests.get(f"{mesh.url}/api/keys", headers=rotated, timeout=5).ok

    models = _open(page, "models")
    expect(models.locator("[data-table=models] tr[data-row='team-u/team-u-model']")).to_be_visible()
    assert "team-v" not in page.content()  # no other tenant's object anywhere in the page


def test_rotating_a_publication_key_shows_the_new_key_once(
    page: Any, mesh: ConsoleMesh, tmp_path: Path
) -> None:
    _api(mesh, 0, "POST", "/api/admin/tenants", json={"name": "team-p"})
    _api(
        mesh,
        0,
        "POST",
        "/api/models",
        json={"name": "chat", "namespace": "team-p", "modelId": MODEL},
    )
    published = _api(
        mesh, 0, "POST", "/api/models/chat/publish?namespace=team-p", json={"config": {}}
    )
    old = published["publishedModel"]["apiKey"]

    sign_in_admin(page, mesh)
    view = _open(page, "models")
    row = view.locator("[data-table=publications] tr[data-row='team-p/chat']")
    row.locator("[data-action=rotate-key]").click()
    _confirm(page)
    secret = view.locator("[data-dialog=secret] [data-secret]")
    expect(secret).to_contain_text("pk_live_")
    new = secret.inner_text()
    assert new != old
    screenshot(page, tmp_path, "models")
    view.locator("[data-dialog=secret] [data-action=close]").click()
    expect(secret).to_have_count(0)
    assert new not in page.content()

    def chat(key: str) -> str | None:  # through another node than the page's
        client = openai.OpenAI(base_url=f"{mesh.mesh.nodes[1].url}/models/chat/v1", api_key=key)
        answer = client.with_options(max_retries=0).chat.completions.create(
            model=MODEL, messages=[{"role": "user", "content": "hello"}]
        )
        return answer.choices[0].message.content

    assert wait_for(lambda: chat(new), timeout=5, what="the new key on n2")
    with pytest.raises(openai.AuthenticationError):
        chat(old)
