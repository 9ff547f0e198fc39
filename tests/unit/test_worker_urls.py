"""Worker URLs are compared as the same backend whatever the case of scheme and host."""

from __future__ import annotations

import pytest

from node.app import normalise_url


@pytest.mark.parametrize(
    ("given", "compared"),
    [
        ("HTTP://Worker.Example:8000/", "http://worker.example:8000"),
        (" http://10.0.0.5:8000 ", "http://10.0.0.5:8000"),
        ("HTTPS://[FE80::1]:8443/v1", "https://[fe80::1]:8443/v1"),
        # userinfo and path keep their case: a password and a path are case-sensitive
        ("http://User:PaSS@HOST:80/V1", "http://User:PaSS@host:80/V1"),
        ("not a url", "not a url"),  # left for the caller's validation to refuse
    ],
)
def test_scheme_and_host_are_lower_cased(given: str, compared: str) -> None:
    assert normalise_url(given) == compared
