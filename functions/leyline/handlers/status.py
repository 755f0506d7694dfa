"""StatusFunction: GET /status/{task_id} and GET /video/{task_id} (a 302 to a presigned GET)."""

from __future__ import annotations

from typing import Any

from leyline.handlers.init_phase import init_phase

with init_phase():  # imports and set-up, without the garbage collector: see init_phase.py
    from aws_lambda_powertools.logging import correlation_paths
    from aws_lambda_powertools.utilities.typing import LambdaContext

    from leyline.handlers.http.routes import app, logger, metrics, tracer


@logger.inject_lambda_context(correlation_id_path=correlation_paths.API_GATEWAY_HTTP, clear_state=True)
@tracer.capture_lambda_handler
@metrics.log_metrics  # flushes what its routes emit (without it, a metric added on a status route is lost)
def handler(event: dict[str, Any], context: LambdaContext) -> dict[str, Any]:
    return app.resolve(event, context)
