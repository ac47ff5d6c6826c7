"""AWS Signature Version 4 for S3 requests (header-based authentication), small enough for the frozen binary.

The algorithm as AWS documents it (https://docs.aws.amazon.com/IAM/latest/UserGuide/create-signed-request.html
and, for S3, https://docs.aws.amazon.com/AmazonS3/latest/API/sig-v4-header-based-auth.html):

1. the canonical request: method, the URI-encoded path (S3 does not encode it twice), the sorted query
   string (each name and value URI-encoded), the lower-cased headers signed, their names, and the payload's
   hash (``x-amz-content-sha256``; ``UNSIGNED-PAYLOAD`` is not used, every request here has an empty body);
2. the string to sign: ``AWS4-HMAC-SHA256``, the time, the scope ``<date>/<region>/s3/aws4_request`` and
   the canonical request's sha256;
3. the signing key: HMAC-SHA256 chained over ``"AWS4" + secret``, the date, the region, the service and
   ``aws4_request``; the signature is the HMAC of the string to sign with it, in hex.
"""

from __future__ import annotations

import dataclasses
import datetime
import hashlib
import hmac
import urllib.parse
from collections.abc import Mapping

ALGORITHM = "AWS4-HMAC-SHA256"
EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()
# RFC 3986's unreserved characters: AWS encodes everything else.
_UNRESERVED = "-_.~"


@dataclasses.dataclass(frozen=True, slots=True, repr=False)
class Credentials:
    access_key: str
    secret_key: str
    session_token: str | None = None

    def __repr__(self) -> str:  # never the secret in a log or traceback
        return f"Credentials(access_key={self.access_key!r})"


def encode_path(path: str) -> str:
    """*path* (decoded, starting with ``/``) URI-encoded segment by segment, as S3 signs it."""
    return urllib.parse.quote(path, safe="/" + _UNRESERVED)


def canonical_query(query: Mapping[str, str]) -> str:
    pairs = sorted(
        (urllib.parse.quote(key, safe=_UNRESERVED), urllib.parse.quote(value, safe=_UNRESERVED))
        for key, value in query.items()
    )
    return "&".join(f"{key}={value}" for key, value in pairs)


def sign(
    *,
    method: str,
    host: str,
    path: str,
    query: Mapping[str, str],
    region: str,
    credentials: Credentials,
    now: datetime.datetime,
    headers: Mapping[str, str] | None = None,
    payload_sha256: str = EMPTY_SHA256,
    service: str = "s3",
) -> dict[str, str]:
    """The headers to send with the request: ``Authorization``, ``x-amz-date``, ``x-amz-content-sha256``
    (and ``x-amz-security-token``), plus *headers*, all of them signed. *path* is already encoded
    (:func:`encode_path`), as it goes on the wire; *host* is the Host header (``host[:port]``)."""
    stamp = now.astimezone(datetime.UTC).strftime("%Y%m%dT%H%M%SZ")
    date = stamp[:8]
    signed: dict[str, str] = {key.lower(): value.strip() for key, value in (headers or {}).items()}
    signed.update({"host": host, "x-amz-date": stamp, "x-amz-content-sha256": payload_sha256})
    if credentials.session_token:
        signed["x-amz-security-token"] = credentials.session_token
    names = sorted(signed)
    canonical = "\n".join(
        [
            method,
            path,
            canonical_query(query),
            "".join(f"{name}:{signed[name]}\n" for name in names),
            ";".join(names),
            payload_sha256,
        ]
    )
    scope = f"{date}/{region}/{service}/aws4_request"
    to_sign = "\n".join([ALGORITHM, stamp, scope, hashlib.sha256(canonical.encode()).hexdigest()])
    key = _hmac(f"AWS4{credentials.secret_key}".encode(), date)
    for part in (region, service, "aws4_request"):
        key = _hmac(key, part)
    signature = hmac.new(key, to_sign.encode(), hashlib.sha256).hexdigest()
    authorization = (
        f"{ALGORITHM} Credential={credentials.access_key}/{scope}, "
        f"SignedHeaders={';'.join(names)}, Signature={signature}"
    )
    out = {name: value for name, value in signed.items() if name != "host"}
    out["Authorization"] = authorization
    return out


def _hmac(key: bytes, message: str) -> bytes:
    return hmac.new(key, message.encode(), hashlib.sha256).digest()
