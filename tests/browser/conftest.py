"""The console in a real browser: Debian's Chromium driven by Playwright, against a real
3-node mesh on loopback.

Playwright never downloads a browser here: it launches /usr/bin/chromium (`apt-get
install chromium`; `.ci/run` installs it). Without it these tests skip, unless
MESHGATE_REQUIRE_BROWSER=1 (as CI sets) makes that a failure.

One mesh and one browser per module (starting either costs seconds); each test gets a
fresh browser context, so its sessionStorage (the signed-in session) starts empty.
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from node.identity.passwords import hash_password
from tests.cluster.conftest import Mesh
from tests.support import strong

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
ADMIN_USER = "admin"
ADMIN_PASSWORD = strong("console-admin-password")
ADMIN_KEY = strong("console-admin-key")  # the tests' own calls (a static control-plane key)
JWT_SECRET = strong("console-jwt-secret")
IDP_ISSUER, IDP_AUDIENCE = "https://idp.console.test/", "meshgate-console"
EXPECT_MS = 10_000  # a DOM condition's deadline (a loaded CI machine)


def _missing_browser() -> str | None:
    if not CHROMIUM.exists():
        return f"{CHROMIUM} is missing (apt-get install chromium)"
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "the playwright package is missing (pip install -e '.[test]')"
    return None


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    why = _missing_browser()
    if why is None:
        return
    if os.environ.get("MESHGATE_REQUIRE_BROWSER") == "1":
        raise pytest.UsageError(f"the browser tests must run here, but {why}")
    here = Path(__file__).parent
    for item in items:
        if here in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.skip(reason=f"browser tests skipped: {why}"))


@dataclass
class ConsoleMesh:
    """A running mesh for the console: its nodes, the tests' admin headers, and an identity
    provider whose tokens the nodes accept (`idp_token`)."""

    mesh: Mesh
    idp_key: rsa.RSAPrivateKey
    admin: dict[str, str] = field(default_factory=lambda: {"Authorization": f"Bearer {ADMIN_KEY}"})

    @property
    def url(self) -> str:
        """The first node's URL: the one the page is opened on."""
        return self.mesh.nodes[0].url

    def status(self, url: str | None = None) -> dict[str, Any]:
        resp = requests.get((url or self.url) + "/ha/status", headers=self.admin, timeout=5)
        resp.raise_for_status()
        return resp.json()  # type: ignore[no-any-return]

    def call(self, method: str, path: str, body: Any = None, url: str | None = None) -> Any:
        """An admin call (through `url`, else the first node) that must succeed."""
        resp = requests.request(
            method, (url or self.url) + path, json=body, headers=self.admin, timeout=10
        )
        assert resp.ok, f"{method} {path}: {resp.status_code} {resp.text}"
        return resp.json()

    def idp_token(self, subject: str = "idp-user", **claims: Any) -> str:
        """An identity provider's token (RS256): a tenant user unless `groups` says admin."""
        now = int(time.time())
        body = {"iss": IDP_ISSUER, "aud": IDP_AUDIENCE, "sub": subject, "iat": now}
        body.update({"exp": now + 600, "groups": ["devs"], **claims})
        return jwt.encode(body, self.idp_key, algorithm="RS256", headers={"kid": "k1"})


def console_flags(jwks: Path) -> list[str]:
    """Every console mesh's node flags: admin login (user `admin`), the tests' admin key,
    and the identity provider of `jwks` (group `platform-admins` is admin)."""
    return [
        *("--control-plane-api-keys", f"a:ops:admin:{ADMIN_KEY}"),
        *("--jwt-secret", JWT_SECRET),
        *("--admin-credentials", f"{ADMIN_USER}:{hash_password(ADMIN_PASSWORD)}"),
        *("--idp-jwks-file", str(jwks), "--idp-issuer", IDP_ISSUER),
        *("--idp-audience", IDP_AUDIENCE, "--idp-role-claim", "groups"),
        *("--idp-admin-values", "platform-admins"),
        # Tenant users' pages call fast; the per-user limit has tests of its own.
        *("--management-burst", "0"),
    ]


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ConsoleMesh]:
    """3 nodes n1-n3 and an echo worker (the page opens on n1)."""
    tmp = tmp_path_factory.mktemp("console-mesh")
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(key.public_key()))
    jwks = tmp / "jwks.json"
    jwks.write_text(json.dumps({"keys": [{**jwk, "kid": "k1", "use": "sig", "alg": "RS256"}]}))
    mesh = Mesh(tmp, extra=tuple(console_flags(jwks)))
    try:
        console = ConsoleMesh(mesh, key)
        mesh.wait_ready_with(console.admin)
        yield console
    finally:
        mesh.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        try:
            yield chromium
        finally:
            chromium.close()


@pytest.fixture
def page(browser: Any, mesh: ConsoleMesh) -> Iterator[Any]:
    """A fresh page (its own context: empty sessionStorage) on the first node's origin.

    Every console error the page logs (a CSP violation, an uncaught exception) fails the
    test at teardown: the page must run clean under its own policy."""
    from playwright.sync_api import expect

    expect.set_options(timeout=EXPECT_MS)
    context = browser.new_context(base_url=mesh.url)
    context.set_default_timeout(EXPECT_MS)
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda exc: errors.append(f"uncaught: {exc}"))
    page.on(
        "console",
        lambda msg: msg.type == "error" and _unexpected(msg.text) and errors.append(msg.text),
    )
    try:
        yield page
    finally:
        context.close()
    assert not errors, "the page logged errors:\n" + "\n".join(errors)


def _unexpected(text: str) -> bool:
    """A console error that is not the browser reporting a refused or failed request
    (a test provokes those: a wrong password, a node it stopped)."""
    expected = ("Failed to load resource", "WebSocket connection to", "net::ERR_")
    return not any(marker in text for marker in expected)


def sign_in_admin(
    page: Any, mesh: ConsoleMesh, password: str = ADMIN_PASSWORD, url: str = ""
) -> None:
    """Open the console (on `url`'s node, else the first) and sign in as the admin (does not
    wait for the result)."""
    page.goto(f"{url}/ui/")
    page.locator("[data-view=signin] input[name=username]").fill(ADMIN_USER)
    page.locator("[data-view=signin] input[name=password]").fill(password)
    page.locator("[data-view=signin] [data-action=signin]").click()


def screenshot(page: Any, tmp_path: Path, name: str) -> Path:
    """Save a screenshot of the page under the test's temporary directory."""
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path
