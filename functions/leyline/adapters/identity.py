"""Where clients sign in (accounts mode): the Cognito user-pool API, as boto3 resolves it in this environment."""

from __future__ import annotations

import os

import boto3


def region() -> str:
    return os.environ.get("AWS_REGION") or os.environ.get("AWS_DEFAULT_REGION") or "us-east-1"


def cognito_endpoint() -> str:
    """AWS's regional endpoint (https://cognito-idp.<region>.amazonaws.com) when deployed; wherever
    AWS_ENDPOINT_URL (or AWS_ENDPOINT_URL_COGNITO_IDP) points otherwise, e.g. the local stack's moto server.
    No request is made: boto3 only resolves the URL."""
    return str(boto3.client("cognito-idp", region_name=region()).meta.endpoint_url)
