"""The e2e's mutual-TLS fixture (hearth.e2e.scalertls) is what a user would write: its LLMService parses and
renders a trigger naming its TriggerAuthentication, which hands KEDA the three parameters KEDA's external
scaler reads, and the server certificate is valid for the address the trigger dials, signed by the CA both
sides trust."""

from __future__ import annotations

import base64
from typing import Any

from cryptography import x509

from hearth.api import loading
from hearth.api.llmservice import LLMService
from hearth.api.scalermodes import ScalerMode
from hearth.e2e import scalertls
from hearth.render import scalers


def _decoded(secret: dict[str, Any]) -> dict[str, bytes]:
    return {key: base64.b64decode(value) for key, value in secret["data"].items()}


def test_the_fixture_is_a_consistent_mutual_tls_setup() -> None:
    server, client, authentication, document = scalertls.manifests("hearth-e2e-x", "rt")
    service = loading.parse_object(document, source="e2e")
    assert isinstance(service, LLMService)
    trigger = scalers.of(ScalerMode.EXTERNAL_PUSH).trigger(service)  # type: ignore[misc]
    assert trigger["authenticationRef"] == {
        "name": authentication["metadata"]["name"],
        "kind": "TriggerAuthentication",
    }
    refs = authentication["spec"]["secretTargetRef"]
    assert {ref["parameter"] for ref in refs} == {"caCert", "tlsClientCert", "tlsClientKey"}
    assert {ref["name"] for ref in refs} == {client["metadata"]["name"]}
    assert service.spec.scaling.external_scaler is not None
    assert service.spec.scaling.external_scaler.tls is not None
    assert service.spec.scaling.external_scaler.tls.server_secret_name == server["metadata"]["name"]

    host = trigger["metadata"]["scalerAddress"].rsplit(":", 1)[0]
    server_files, client_files = _decoded(server), _decoded(client)
    certificate = x509.load_pem_x509_certificate(server_files["tls.crt"])
    names = certificate.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert host in names.get_values_for_type(x509.DNSName)
    authority = x509.load_pem_x509_certificate(server_files["ca.crt"])
    certificate.verify_directly_issued_by(authority)
    x509.load_pem_x509_certificate(client_files["tls.crt"]).verify_directly_issued_by(authority)
    assert client_files["ca.crt"] == server_files["ca.crt"]
