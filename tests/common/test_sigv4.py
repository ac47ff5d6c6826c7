"""SigV4 against AWS's own worked examples for S3 (sig-v4-header-based-auth.html, "Examples")."""

from __future__ import annotations

import datetime

from hearth.common import sigv4

# The example credentials and time of AWS's S3 signing examples.
CREDENTIALS = sigv4.Credentials("AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY")
NOW = datetime.datetime(2013, 5, 24, tzinfo=datetime.UTC)
HOST = "examplebucket.s3.amazonaws.com"


def test_get_object_with_a_range_matches_aws_example() -> None:
    headers = sigv4.sign(
        method="GET",
        host=HOST,
        path="/test.txt",
        query={},
        region="us-east-1",
        credentials=CREDENTIALS,
        now=NOW,
        headers={"Range": "bytes=0-9"},
    )
    assert headers["Authorization"] == (
        "AWS4-HMAC-SHA256 Credential=AKIAIOSFODNN7EXAMPLE/20130524/us-east-1/s3/aws4_request, "
        "SignedHeaders=host;range;x-amz-content-sha256;x-amz-date, "
        "Signature=f0e8bdb87c964420e857bd35b5d6ed310bd44f0170aba48dd91039c6036bdb41"
    )


def test_list_objects_with_a_query_matches_aws_example() -> None:
    headers = sigv4.sign(
        method="GET",
        host=HOST,
        path="/",
        query={"max-keys": "2", "prefix": "J"},
        region="us-east-1",
        credentials=CREDENTIALS,
        now=NOW,
    )
    assert headers["Authorization"].endswith(
        "Signature=34b48302e7b5fa45bde8084f4b7868a86f0a534bc59db6670ed5711ef69dc6f7"
    )


def test_the_secret_never_shows_in_a_repr() -> None:
    assert "EXAMPLEKEY" not in repr(CREDENTIALS)
    assert sigv4.encode_path("/b/a b/ü+x") == "/b/a%20b/%C3%BC%2Bx"
