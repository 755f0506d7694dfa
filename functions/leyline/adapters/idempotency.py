"""Idempotency-Key records of task submits: Powertools' idempotency utility on DynamoDB (SubmitIdempotencyTable).

Powertools keeps the record's life cycle: an in-progress record written before the submit runs (a
conditional PutItem, so of two concurrent requests exactly one runs), the response stored when it
returns, the record deleted when it raises, the payload hash compared on every later use of the key.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from aws_lambda_powertools.utilities.idempotency import (
    DynamoDBPersistenceLayer,
    IdempotencyConfig,
    idempotent_function,
)
from aws_lambda_powertools.utilities.idempotency.exceptions import (
    IdempotencyAlreadyInProgressError,
    IdempotencyValidationError,
)
from aws_lambda_powertools.utilities.typing import LambdaContext

from leyline.errors import IdempotencyKeyReused, RequestInProgress

KEY_PREFIX = "submit"  # records are "submit#<sha256 of scope and key>"


class DynamoDBSubmitRecords:
    def __init__(self, table_name: str, *, lifetime_seconds: int, client: Any | None = None) -> None:
        self._config = IdempotencyConfig(
            event_key_jmespath="key",
            payload_validation_jmespath="fingerprint",
            raise_on_no_idempotency_key=True,
            expires_after_seconds=lifetime_seconds,
            hash_function="sha256",  # keys are chosen by clients: no MD5 collisions between them
        )
        persistence = DynamoDBPersistenceLayer(table_name=table_name, boto3_client=client)
        self._run = idempotent_function(
            _run_submit,
            data_keyword_argument="request",
            persistence_store=persistence,
            config=self._config,
            key_prefix=KEY_PREFIX,
        )

    def register_lambda_context(self, context: LambdaContext) -> None:
        """An in-progress record then expires with the invocation that wrote it: a request that died (a
        timeout, a crash) leaves its key usable by a retry rather than answering 409 for a day."""
        self._config.register_lambda_context(context)

    def once(self, key: str, fingerprint: dict[str, Any], submit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
        try:
            result = self._run(request={"key": key, "fingerprint": fingerprint}, submit=submit)
        except IdempotencyValidationError as exc:
            raise IdempotencyKeyReused(
                "This Idempotency-Key was already used with a different request; use a new key for a new request."
            ) from exc
        except IdempotencyAlreadyInProgressError as exc:
            raise RequestInProgress(
                "The first request with this Idempotency-Key is still being handled; retry in a moment."
            ) from exc
        return dict(result)


def _run_submit(request: dict[str, Any], submit: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The function Powertools makes idempotent: `request` is what it hashes, `submit` what it runs."""
    return submit()
