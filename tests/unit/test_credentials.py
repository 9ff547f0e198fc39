"""Worker credentials: split out of URLs, sealed under the mesh secret, old records still work."""

from __future__ import annotations

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
