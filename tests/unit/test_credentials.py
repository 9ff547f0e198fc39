"""Worker credentials: split out of URLs, sealed under the mesh secret, old records still work."""

from __future__ import annotations

import msgspec
import pytest

from node.api.workers import Secret
from node.workers.credentials import (
    CredentialBox,
    basic,
    is_sealed,
    needs_sealing,
    safe_url,
    split_userinfo,
)
from tests.support import strong

SECRET = strong("credentials-test")


def test_userinfo_is_split_out_and_percent_decoded() -> None:
    assert split_userinfo("http://al%40ice:p%3Ass@10.0.0.5:8000/v") == (
        "http://10.0.0.5:8000/v",
        ("al@ice", "p:ss"),
    )
    assert split_userinfo("http://10.0.0.5:8000") == ("http://10.0.0.5:8000", None)
    assert safe_url("https://u:secret@host") == "https://host"


def test_a_sealed_credential_opens_to_its_header_and_hides_the_secret() -> None:
    box = CredentialBox(SECRET)
    sealed = box.seal("Bearer sk-very-secret")
    assert is_sealed(sealed) and "sk-very-secret" not in sealed
    assert box.open(sealed) == "Bearer sk-very-secret"
    record = {"url": "http://h:1/", "api_key": sealed}
    target = box.target(record)
    assert (target.url, target.headers) == (
        "http://h:1",
        {"Authorization": "Bearer sk-very-secret"},
    )
    assert not needs_sealing(record)


def test_records_written_before_sealing_keep_working() -> None:
    box = CredentialBox(SECRET)
    plaintext = {"url": "http://h:1", "api_key": "sk-old"}
    assert box.target(plaintext).headers == {"Authorization": "Bearer sk-old"}
    assert needs_sealing(plaintext)
    userinfo = {"url": "http://bob:pw@h:1", "api_key": None}
    target = box.target(userinfo)
    assert (target.url, target.headers) == ("http://h:1", {"Authorization": basic("bob", "pw")})


def test_a_credential_sealed_under_another_secret_is_reported_not_sent() -> None:
    sealed = CredentialBox(strong("another-mesh")).seal("Bearer k")
    target = CredentialBox(SECRET).target({"url": "http://h:1", "api_key": sealed})
    assert target.headers == {} and target.problem and "another mesh secret" in target.problem


def test_an_api_key_that_could_not_go_in_a_header_is_refused() -> None:
    """A control character would split the header it goes in (a worker left pending for
    ever, as discovery could not send it); a key has a size limit too."""
    for key in ("sk-ok", "kéy ☃", "k" * 4096):
        assert msgspec.convert(key, Secret) == key
    for key in ("k\r\nX-Injected: 1", "k\n", "k\x00y", "k\x7f", "k" * 4097):
        with pytest.raises(msgspec.ValidationError):
            msgspec.convert(key, Secret)
