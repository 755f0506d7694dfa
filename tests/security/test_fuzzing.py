"""Schema-based fuzzing of every route, against the OpenAPI document the running local stack serves.

schemathesis (its engine, as `st run` drives it: documented examples, boundary and negative cases,
undeclared methods, then random data) generates requests from GET /openapi.json and checks each answer.
Bounded: MAX_EXAMPLES per route and phase, on a stack of its own (fuzzing creates tasks, which the
shared stack's per-client cap must not count). Its pytest plugin is not used: schemathesis 4.32's lazy
fixture loader reads a pytest node attribute that pytest 9 removed. schemathesis and hypothesis are imported
when a test here runs, not when the module is collected: `make unit` collects it without loading them.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

import pytest

from infra.testing import RunningStack
from tests.stack import local_stack

pytestmark = pytest.mark.integration

MAX_EXAMPLES = 25


@pytest.fixture(scope="module")
def fuzzed_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningStack]:
    # Every POST /uploads that passes creates a PENDING task: lift the per-client cap for this stack only.
    overrides = {"MaxWaitingTasksPerClient": "10000"}
    with local_stack(tmp_path_factory.mktemp("fuzzed-stack"), parameter_overrides=overrides) as running:
        yield running


@pytest.fixture(autouse=True)
def _hypothesis_home(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """Hypothesis' caches go to a temporary directory, not into the work tree."""
    from hypothesis.configuration import set_hypothesis_home_dir

    set_hypothesis_home_dir(tmp_path_factory.mktemp("hypothesis"))
    yield
    set_hypothesis_home_dir(None)


def error_object_on_4xx(ctx: Any, response: Any, case: Any) -> bool | None:
    """Issue 5: every 4xx a route answers carries our error object."""
    if 400 <= response.status_code < 500:
        body = response.json()
        assert isinstance(body, dict), body
        assert set(body) == {"error"}, f"not an error object: {body}"
        assert set(body["error"]) == {"code", "message"}, body
        assert body["error"]["code"].isupper(), body
    return None


def fuzz(api_url: str, checks: dict[str, Any]) -> tuple[list[str], dict[str, int]]:
    """Runs the engine over every route; returns its failures (with a curl to reproduce each) and how many
    times each check ran."""
    import schemathesis
    from schemathesis.config import SchemathesisConfig
    from schemathesis.engine import Status, from_schema
    from schemathesis.engine import events as engine_events

    schemathesis.check(error_object_on_4xx)  # registered by name: registering it again replaces it
    config = SchemathesisConfig.from_dict(
        {
            "generation": {"max-examples": MAX_EXAMPLES, "database": "none"},
            "phases": {"stateful": {"enabled": False}},  # the document declares no links between routes
            "request-timeout": 30,
            "checks": checks,
        }
    )
    schema = schemathesis.openapi.from_url(f"{api_url}/openapi.json", config=config, timeout=10)
    failures: list[str] = []
    ran: dict[str, int] = {}
    for event in from_schema(schema).execute():
        if isinstance(event, engine_events.ScenarioFinished):
            for results in event.recorder.checks.values():
                for result in results:
                    ran[result.name] = ran.get(result.name, 0) + 1
                    if result.status != Status.SUCCESS and result.failure_info is not None:
                        failure = result.failure_info
                        failures.append(f"{event.label} {result.name}: {failure.failure}\n  {failure.code_sample}")
        elif isinstance(event, engine_events.NonFatalError | engine_events.FatalError):
            failures.append(f"engine error: {event}")
    return failures, ran


def test_no_route_answers_5xx_or_outside_its_document(fuzzed_stack):
    # Given requests generated from the served document for every route: valid, boundary, invalid,
    # and with methods the document does not declare
    # When they are sent to the local stack, with every schemathesis check but one (below) and ours
    # (413 counts as refusing invalid input, as 400 and 415 do: a body with a content type outside the
    # document's enum and a size over the limit is answered 413, the size being checked first)
    refusals = ["400", "401", "403", "404", "405", "406", "409", "413", "415", "422", "428", "429", "5xx"]
    checks = {
        "enabled": True,
        "positive_data_acceptance": {"enabled": False},
        "negative_data_rejection": {"expected-statuses": refusals},
    }
    failures, ran = fuzz(fuzzed_stack.api_url, checks)

    # Then no answer is a 5xx, statuses, content types, headers and bodies are the documented ones,
    # invalid input is refused, an undeclared method gets 405 with Allow, and every 4xx is our error object
    assert not failures, "\n".join(failures)
    for check in ("not_a_server_error", "response_schema_conformance", "unsupported_method", "error_object_on_4xx"):
        assert ran.get(check, 0) > 0, f"{check} never ran: {ran}"


def test_requests_the_document_calls_valid_are_accepted(fuzzed_stack):
    # Given requests the document says are valid
    # When they are sent
    # (404 for a task no one made, 413 past this deployment's size limit, 415 for random bytes that
    # are no image and 422 for an Idempotency-Key the fuzzer already sent with another request remain
    # legitimate answers to a valid request)
    accepted = ["2xx", "3xx", "404", "409", "410", "413", "415", "422", "429"]
    checks = {"enabled": False, "positive_data_acceptance": {"enabled": True, "expected-statuses": accepted}}
    failures, ran = fuzz(fuzzed_stack.api_url, checks)

    # Then none is refused as malformed; but for a webhook: whether a made-up webhook_url's host resolves, and
    # to an address the service may call, is the world's answer, not the document's, and webhook_events
    # needs a webhook_url, which JSON Schema's types do not say (400 INVALID_WEBHOOK_URL; tests/notifications
    # and tests/unit/test_logic_webhooks.py show each case)
    assert ran.get("positive_data_acceptance", 0) > 0
    webhook = re.compile(r'"webhook_url": "[^"]|"webhook_events": \[')
    refused = [failure for failure in failures if not webhook.search(failure)]
    assert not refused, "\n".join(refused)
