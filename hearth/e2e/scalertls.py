"""KEDA <-> gateway mutual TLS end to end (issue 27, ``spec.scaling.externalScaler.tls``): with real KEDA in
external-push mode, a ScaledObject whose trigger authenticates with a client certificate scales its backend
0 -> 1 on a cold request and back to 0, while the gateway's gRPC scaler accepts nothing but mutual TLS.

The run makes its own CA, the gateway's server certificate (for ``<name>-scaler.<namespace>.svc``, the
name KEDA dials) and KEDA's client certificate, the way a user would with cert-manager or openssl, and hands
KEDA its half through a TriggerAuthentication (``caCert``, ``tlsClientCert``, ``tlsClientKey``). The other
modes have no gRPC scaler, so they do not promise this scenario.
"""

from __future__ import annotations

import base64
import contextlib
import datetime
import time
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from hearth.e2e import fixtures
from hearth.e2e.runner import Run, ScenarioFailedError
from hearth.kube import resources
from hearth.kube.errors import ApiError
from hearth.render import names

SERVICE = "mtls"
SERVER_SECRET = "mtls-scaler-tls"
CLIENT_SECRET = "mtls-keda-client"
TRIGGER_AUTHENTICATION = "mtls-keda"


class Authority:
    """A one-run CA signing the gateway's server certificate and KEDA's client certificate (also the
    gateway's mTLS tests' CA)."""

    def __init__(self, name: str = "hearth-e2e scaler CA") -> None:
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, name)])
        self.cert = (
            self._builder(self.name, self.key.public_key())
            .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
            .sign(self.key, hashes.SHA256())
        )

    def _builder(self, subject: x509.Name, public_key: Any) -> x509.CertificateBuilder:
        now = datetime.datetime.now(datetime.UTC)
        return (
            x509.CertificateBuilder()
            .subject_name(subject)
            .issuer_name(self.name)
            .public_key(public_key)
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
        )

    @property
    def pem(self) -> bytes:
        return self.cert.public_bytes(serialization.Encoding.PEM)

    def issue(self, common_name: str, *, dns_names: list[str] | None = None) -> tuple[bytes, bytes]:
        """(certificate, key) PEM: a server's for *dns_names*, else a client's."""
        key = ec.generate_private_key(ec.SECP256R1())
        usage = ExtendedKeyUsageOID.SERVER_AUTH if dns_names else ExtendedKeyUsageOID.CLIENT_AUTH
        builder = self._builder(
            x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)]), key.public_key()
        ).add_extension(x509.ExtendedKeyUsage([usage]), critical=False)
        if dns_names:
            alternatives = x509.SubjectAlternativeName([x509.DNSName(name) for name in dns_names])
            builder = builder.add_extension(alternatives, critical=False)
        cert = builder.sign(self.key, hashes.SHA256())
        key_pem = key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
        return cert.public_bytes(serialization.Encoding.PEM), key_pem


def _secret(name: str, namespace: str, data: dict[str, bytes]) -> dict[str, Any]:
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": name, "namespace": namespace},
        "data": {key: base64.b64encode(value).decode() for key, value in data.items()},
    }


def manifests(namespace: str, runtime: str) -> list[dict[str, Any]]:
    """The Secrets, the TriggerAuthentication and the LLMService, in the order to apply them."""
    authority = Authority()
    host = names.scaler_service(SERVICE)
    server_cert, server_key = authority.issue(
        host, dns_names=[f"{host}.{namespace}.svc", f"{host}.{namespace}.svc.cluster.local"]
    )
    client_cert, client_key = authority.issue("keda-operator")
    service = fixtures.service(SERVICE, namespace, runtime)
    service["spec"]["scaling"]["max"] = 1
    service["spec"]["scaling"]["externalScaler"] = {
        "tls": {
            "serverSecretName": SERVER_SECRET,
            "authenticationRef": {"name": TRIGGER_AUTHENTICATION, "kind": "TriggerAuthentication"},
        }
    }
    parameters = {"caCert": "ca.crt", "tlsClientCert": "tls.crt", "tlsClientKey": "tls.key"}
    return [
        _secret(
            SERVER_SECRET, namespace, {"tls.crt": server_cert, "tls.key": server_key, "ca.crt": authority.pem}
        ),
        _secret(
            CLIENT_SECRET, namespace, {"tls.crt": client_cert, "tls.key": client_key, "ca.crt": authority.pem}
        ),
        {
            "apiVersion": resources.TRIGGER_AUTHENTICATION.api_version,
            "kind": resources.TRIGGER_AUTHENTICATION.kind,
            "metadata": {"name": TRIGGER_AUTHENTICATION, "namespace": namespace},
            "spec": {
                "secretTargetRef": [
                    {"parameter": parameter, "name": CLIENT_SECRET, "key": key}
                    for parameter, key in parameters.items()
                ]
            },
        },
        service,
    ]


async def mutual_tls_scales_zero_one_zero(run: Run) -> str:
    """K1: the ScaledObject becomes Ready over mutual TLS, KEDA's stream is connected, a cold request is
    answered after KEDA's 0 -> 1, and the backend returns to 0."""
    if not (await run.traits("cold")).gateway_serves_grpc:
        run.not_promised("mutual TLS secures KEDA's connection to external-push's gRPC scaler")
    try:
        for manifest in manifests(run.namespace, run.runtime):
            await run.client.apply(manifest)
        await run.wait("ScaledObject mtls Ready", lambda: _scaled_object_ready(run), within=120)
        url = await run.gateway_url(SERVICE)
        await run.wait("the mtls backend at 0", lambda: _at(run, 0))
        # The gRPC server takes nothing but mutual TLS: a stream connected is KEDA's client certificate at
        # work (KEDA opens StreamIsActive once it has built the scaler).
        streams = await run.wait("KEDA's StreamIsActive over mutual TLS", lambda: _streams(run), within=60)
        started = time.monotonic()
        events, first_token = await run.stream(url, 4, model=SERVICE)
        if events[-1] != b"data: [DONE]" or first_token is None:
            raise ScenarioFailedError(f"the cold stream was not answered: {events[-2:]}")
        answered = time.monotonic() - started
        ended = time.monotonic()
        await run.wait("the mtls backend back at 0", lambda: _at(run, 0), within=180)
        return (
            f"ScaledObject Ready with a TriggerAuthentication (caCert, tlsClientCert, tlsClientKey); "
            f"{streams:g} KEDA stream(s) over mutual TLS; cold stream answered in {answered:.1f}s "
            f"(first token {first_token:.1f}s); back to 0 {time.monotonic() - ended:.1f}s after it ended"
        )
    finally:
        with contextlib.suppress(ApiError):
            await run.client.delete(resources.LLMSERVICE, SERVICE, run.namespace)


async def _scaled_object_ready(run: Run) -> bool:
    scaled = await run.client.get(resources.SCALED_OBJECT, names.scaled_object(SERVICE), run.namespace)
    conditions = (scaled or {}).get("status", {}).get("conditions") or []
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in conditions)


async def _at(run: Run, replicas: int) -> bool:
    return (await run.replicas(names.backend(SERVICE))) == (replicas, replicas)


async def _streams(run: Run) -> float:
    """KEDA's StreamIsActive calls open on the mtls gateway pods (0 while there is none)."""
    metrics = await run.gateway_metrics(SERVICE)
    return sum(samples.get("hearth_gateway_scaler_streams", 0.0) for samples in metrics.values())


SCENARIOS = [
    ("K1 KEDA <-> gateway mutual TLS: 0 -> 1 -> 0", mutual_tls_scales_zero_one_zero),
]
