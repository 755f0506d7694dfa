"""Where moto differs from AWS in a way the product depends on (or costs far more than the local stack can
spend), the change that makes it behave as AWS does: applied once per process, to the local stack's server and
to the in-process mock the handler tests use alike."""

from __future__ import annotations

from infra.moto_cognito import verify_on_confirmation
from infra.moto_dynamodb import (
    conditions_parsed_once,
    items_answered_as_json,
    partitioned_index_queries,
    serialise_item_access,
    stream_records_answered_as_json,
)
from infra.moto_sqs import long_polls_wake_on_change


def behave_as_aws() -> None:
    """Idempotent."""
    serialise_item_access()  # requests are served on threads: a read could see half a write otherwise
    partitioned_index_queries()  # an index Query reads its partition, not the whole table (GET /tasks, the cap)
    verify_on_confirmation()  # a confirmed sign-up proves the address, as Cognito marks it (task emails)
    long_polls_wake_on_change()  # a FIFO group freed during a long poll delivers its next message at once
    items_answered_as_json()  # an item read's answer costs what DynamoDB's JSON costs, not 5 ms per item
    stream_records_answered_as_json()  # and so does a read of a table's stream
    conditions_parsed_once()  # a condition repeated by a transaction's writes is parsed once
