"""ApiFunction: the web page, its OpenAPI document, the two submits (POST /uploads, and the original API's form
upload POST /upload), cancel (POST /tasks/{task_id}/cancel) and delete (DELETE /tasks/{task_id})."""

from __future__ import annotations

from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.handlers.http.routes import app, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
