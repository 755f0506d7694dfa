"""infra/moto_cognito.py: confirming a sign-up proves the pool's auto-verified attributes, as Cognito does."""

from __future__ import annotations

import boto3
import pytest
from moto import mock_aws

from infra.moto_cognito import verify_on_confirmation
from infra.settings import port_following_overrides


def confirmed_attributes(auto_verified: list[str]) -> dict[str, str]:
    with mock_aws():
        idp = boto3.client("cognito-idp", region_name="us-east-1")
        pool = idp.create_user_pool(
            PoolName="users", UsernameAttributes=["email"], AutoVerifiedAttributes=auto_verified
        )["UserPool"]["Id"]
        client = idp.create_user_pool_client(UserPoolId=pool, ClientName="page")["UserPoolClient"]["ClientId"]
        idp.sign_up(ClientId=client, Username="ada@example.com", Password="Correct-horse-42")
        idp.confirm_sign_up(ClientId=client, Username="ada@example.com", ConfirmationCode="123456")
        user = idp.admin_get_user(UserPoolId=pool, Username="ada@example.com")
        return {attribute["Name"]: attribute["Value"] for attribute in user["UserAttributes"]}


def test_a_confirmed_sign_up_has_its_email_verified_when_the_pool_verifies_emails():
    # Given the patch (the local stack applies it to its moto server), and a pool with AutoVerifiedAttributes email
    verify_on_confirmation()
    verify_on_confirmation()  # idempotent

    # When a user signs up and confirms, Then the address is verified, as Cognito marks it
    assert confirmed_attributes(["email"])["email_verified"] == "true"


def test_a_pool_that_verifies_nothing_leaves_the_email_unverified():
    verify_on_confirmation()
    assert confirmed_attributes([]).get("email_verified", "false") == "false"


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [({}, {"PageUrl": "http://127.0.0.1:18080/"}), ({"PageUrl": "https://videos.example/"}, {})],
    ids=["default-follows-the-port", "set-by-the-user"],
)
def test_links_to_the_page_point_at_the_local_page_unless_the_user_set_them(overrides, expected):
    # Given the template's empty PageUrl (the HttpApi's AWS URL), When the local API runs on 18080
    # Then task emails link to the local page, unless the user chose an address
    assert port_following_overrides(18080, {"PageUrl": ""}, overrides) == expected
