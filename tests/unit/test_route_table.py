"""The route table: every route is guarded the way its audience says, and typed bodies
refuse what they must with a message that names the field."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings

from mesh.commands import command_problem
from node.api import workers
from node.api.bodies import decode
from node.api.catalog import ROUTES
from node.api.guards import GUARDS
from node.api.ha import ConfigSet
from node.api.models import Publish
from node.api.openapi import document
from node.api.table import Audience, Installed, Route
from node.errors import ApiError
from tests.integration.openapi_support import Spec

DOCUMENT = document()


def test_every_route_is_guarded_or_checks_credentials_itself() -> None:
    for route in ROUTES:
        where = f"{route.method} {route.path}"
        assert route.checks_credentials or route.audience in GUARDS, where
        if route.audience is Audience.PUBLIC:
            assert not route.checks_credentials, where


def test_operations_and_routes_are_one_to_one() -> None:
    declared = {(r.method.lower(), r.documented_path) for r in ROUTES}
    documented = {(m, p) for p, item in DOCUMENT["paths"].items() for m in item}
    assert declared == documented
    assert len(declared) == len(ROUTES)


def test_paths_no_route_matches_get_their_family_envelope() -> None:
    async def handler(_: Any) -> Any:
        raise AssertionError

    def route(path: str, audience: Audience) -> Route:
        return Route("GET", path, handler, audience, path, "t", "s", answers={200: "ok"})

    table = Installed.of(
        [
            (object(), route("/api/keys", Audience.MANAGEMENT)),  # type: ignore[misc]
            (object(), route("/ha/status", Audience.CONTROL_PLANE)),  # type: ignore[misc]
        ]
    )
    assert table.envelopes == {"api": "management", "ha": "error"}


@pytest.mark.parametrize(
    ("body", "param", "words"),
    [
        ({"value": 1}, "key", ["key is required", "letters, digits"]),
        ({"key": "a", "value": 1, "colour": 1}, "colour", ["allowed: expected_version, key"]),
        ({"key": "a\n", "value": 1}, "key", ["key:"]),
        ({"key": "a", "value": 1, "expected_version": "\u00b2"}, "expected_version", ["0-9"]),
        ([], None, ["expected `object`"]),
    ],
)
def test_a_refused_body_names_the_field_and_what_to_send(
    body: Any, param: str | None, words: list[str]
) -> None:
    with pytest.raises(ApiError) as refused:
        decode(body, ConfigSet)
    assert refused.value.status == 400 and refused.value.param == param
    for word in words:
        assert word in refused.value.message


def test_nested_fields_are_named_by_their_path() -> None:
    with pytest.raises(ApiError) as refused:
        decode({"config": {"externalPath": "/elsewhere"}}, Publish)
    assert refused.value.param == "config.externalPath"
    assert "/models/<name>" in refused.value.message
    with pytest.raises(ApiError) as unknown:
        decode({"config": {"colour": 1}}, Publish)
    assert "allowed: authentication, externalPath" in unknown.value.message


SPEC = Spec(DOCUMENT)


@settings(max_examples=150, deadline=None, suppress_health_check=list(HealthCheck))
@given(SPEC.values(DOCUMENT["components"]["schemas"]["WorkerCreate"]))
def test_a_worker_body_the_api_takes_is_one_apply_takes(body: dict[str, Any]) -> None:
    """The typed body and the command's rule (mesh.commands.command_problem, which
    apply runs too) agree: what the API accepts never becomes a refused command."""
    typed = decode(body, workers.WorkerCreate)
    spec = {"id": "w1", "url": typed.url, **workers._changes(typed)}
    assert command_problem("worker.add", {"worker": spec}) is None
