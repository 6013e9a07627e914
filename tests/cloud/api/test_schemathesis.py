"""Property-based requests generated from the OpenAPI document: no input makes a server error.

Authenticated as an admin, so every operation's handler runs (not only its 401). A small
number of examples per operation keeps the run short; the seed keeps it repeatable.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from cloud import accounts
from cloud.accounts import Role
from cloud.api.app import create_app
from cloud.config import load_settings
from cloud.service import CloudService
from forewarn.clock import SimClock
from tests.cloud.api.conftest import STEP, T0, punctured

MAX_EXAMPLES = 15
# Revoking tokens at random could revoke the one the run authenticates with.
SKIP = {("DELETE", "/api/v1/tokens/{token_id}")}


@pytest.fixture(scope="module")
def api(session_broker, tmp_path_factory) -> Iterator[tuple[object, str]]:
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(accounts, "SCRYPT_N", 2**10)
        clock = SimClock(T0)
        service = CloudService(
            load_settings(
                data_dir=tmp_path_factory.mktemp("fuzz"),
                mqtt_url=session_broker.url,
                ingest_receiver="thread",
            ),
            clock_ms=clock.now_ms,
        )
        service.actions.upsert_customer("c-1", "Ada", "ada@example.com")
        service.actions.upsert_device("ty-000001", "tyres", "c-1", "Family car")
        service.actions.technicians.upsert("tech-1", "Tess Tech", "north", ["tyres"])
        service.start()
        clock.set(T0 + 12 * STEP)
        service.pipeline.process(punctured("ty-000001"))
        _token, secret = service.accounts.create_token("fuzz", Role.ADMIN)
        try:
            yield create_app(service), secret
        finally:
            service.stop()


def test_no_request_makes_a_server_error(api):
    app, secret = api
    schema = schemathesis.openapi.from_asgi("/openapi.json", app)
    headers = {"Authorization": f"Bearer {secret}"}
    tested = []
    for result in schema.get_all_operations():
        operation = result.ok()
        if (operation.method.upper(), operation.path) in SKIP:
            continue

        @given(case=operation.as_strategy())
        @settings(
            max_examples=MAX_EXAMPLES,
            deadline=None,
            derandomize=True,
            database=None,
            suppress_health_check=list(HealthCheck),
        )
        def check(case: schemathesis.Case) -> None:
            case.call_and_validate(
                headers=headers, checks=[not_a_server_error, response_schema_conformance]
            )

        check()
        tested.append(operation.label)
    assert len(tested) > 25
