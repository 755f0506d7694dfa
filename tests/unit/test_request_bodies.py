import json

import pytest

from leyline.errors import BadRequest
from leyline.handlers.http.request_bodies import (
    CreateUploadRequest,
    create_upload_request,
    create_upload_request_schema,
)


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("{}", CreateUploadRequest()),
        ('{"content_type": null, "size": null}', CreateUploadRequest()),
        ('{"content_type": "image/png", "size": 162}', CreateUploadRequest("image/png", 162)),
        ('{"size": 162.0}', CreateUploadRequest(size=162)),  # JSON Schema's integer includes 162.0
        ('{"content_type": "image/gif", "size": 0}', CreateUploadRequest("image/gif", 0)),  # the service's to judge
    ],
)
def test_well_typed_bodies_become_requests(raw, expected):
    # Given a body whose fields have the types the schema declares
    # When it is validated
    request = create_upload_request(json.loads(raw))
    # Then the request carries its values, the size as an int
    assert request == expected
    assert request.size is None or type(request.size) is int


@pytest.mark.parametrize(
    ("raw", "names"),
    [
        ('{"size": "162"}', "size"),
        ('{"size": true}', "size"),
        ('{"size": 1.5}', "size"),
        ('{"size": NaN}', "size"),
        ('{"content_type": 5}', "content_type"),
        ('{"content_type": "image/png", "owner": "admin"}', "owner"),
    ],
)
def test_badly_typed_bodies_are_refused_with_what_is_wrong(raw, names):
    # Given a body with a field of the wrong type, or one the schema does not have
    # When it is validated
    with pytest.raises(BadRequest) as refused:
        create_upload_request(json.loads(raw))
    # Then it is a 400 BAD_REQUEST whose message names the field
    assert (refused.value.status, refused.value.code) == (400, "BAD_REQUEST")
    assert refused.value.message.startswith("The request body is not valid: ")
    assert names in refused.value.message


def test_the_document_states_the_values_the_service_accepts_on_top_of_the_validated_types():
    # Given the schema /openapi.json shows for POST /uploads
    documented = create_upload_request_schema()
    # Then it has the validated types, plus the accepted content types and a positive size
    properties = documented["properties"]
    assert properties["content_type"]["type"] == ["string", "null"]
    assert properties["content_type"]["enum"] == ["image/png", "image/jpeg", "image/webp", None]
    assert properties["size"] == properties["size"] | {"type": ["integer", "null"], "minimum": 1}
    assert documented["additionalProperties"] is False
    # and showing it did not loosen or tighten the validation (a size of 0 still reaches the service)
    assert create_upload_request({"size": 0}).size == 0
