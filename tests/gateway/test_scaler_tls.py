"""The external scaler's mutual TLS (spec.scaling.externalScaler.tls, issue 27) over real gRPC on loopback:
a client with a certificate signed by the configured CA is served, one without a certificate or with one
from another CA is refused, a rotated client CA is taken up without a restart, and unreadable files stop
the start with a message naming them. Certificates are made here."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from pathlib import Path

import grpc
import pytest

from hearth.common import netaddr
from hearth.e2e.scalertls import Authority
from hearth.gateway.metrics import GatewayMetrics
from hearth.gateway.model.demand import Demand
from hearth.gateway.scaler import external_scaler
from hearth.gateway.wake.readiness import ManualReadiness
from tests.gateway.conftest import running_gateway
from tests.gateway.test_external_scaler import PB, OneRoute

#: The name KEDA dials (``<svc>-scaler.<ns>.svc``) and checks the server certificate against.
SERVER_NAME = "qwen-scaler.ml.svc"


@pytest.fixture(scope="module")
def authorities() -> dict[str, Authority]:
    return {name: Authority(name) for name in ("server-ca", "keda-ca", "other-ca")}


def write_secret(directory: Path, authorities: dict[str, Authority], *, client_ca: str) -> None:
    """The Secret's files as the kubelet projects them."""
    cert, key = authorities["server-ca"].issue(SERVER_NAME, dns_names=[SERVER_NAME])
    (directory / "tls.key").write_bytes(key)
    (directory / "tls.crt").write_bytes(cert)
    (directory / "ca.crt").write_bytes(authorities[client_ca].pem)


@pytest.fixture
async def served(tmp_path: Path, authorities: dict[str, Authority]) -> AsyncIterator[tuple[int, Path]]:
    write_secret(tmp_path, authorities, client_ca="keda-ca")
    readiness = ManualReadiness()
    metrics = GatewayMetrics()
    demand = Demand(readiness=readiness, metrics=metrics.route(""), activation_timeout=30, ready_grace=0)
    demand.admitted()
    scaler = external_scaler.ExternalScaler(routes=OneRoute(demand), metrics=metrics)  # type: ignore[arg-type]
    server, port = await external_scaler.start(
        scaler, netaddr.ListenAddress("127.0.0.1", 0), tls_dir=tmp_path
    )
    yield port, tmp_path
    await server.stop(grace=None)
    await demand.close()


async def _is_active(port: int, credentials: grpc.ChannelCredentials) -> bool:
    """IsActive over a new channel (a new TLS handshake), as KEDA would call it."""
    options = (("grpc.ssl_target_name_override", SERVER_NAME),)
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", credentials, options=options) as channel:
        call = channel.unary_unary(
            "/externalscaler.ExternalScaler/IsActive",
            request_serializer=lambda message: message.SerializeToString(),
            response_deserializer=PB["IsActiveResponse"].FromString,
        )
        ref = PB["ScaledObjectRef"](name="qwen", namespace="ml", scalerMetadata={"targetValue": "1"})
        return bool((await call(ref, timeout=5)).result)


def keda(authorities: dict[str, Authority], client_ca: str | None) -> grpc.ChannelCredentials:
    """KEDA's credentials from a TriggerAuthentication: caCert, and tlsClientCert/tlsClientKey when given."""
    if client_ca is None:
        return grpc.ssl_channel_credentials(root_certificates=authorities["server-ca"].pem)
    cert, key = authorities[client_ca].issue("keda-operator")
    return grpc.ssl_channel_credentials(
        root_certificates=authorities["server-ca"].pem, private_key=key, certificate_chain=cert
    )


async def test_a_client_certificate_of_the_configured_ca_is_served(
    served: tuple[int, Path], authorities: dict[str, Authority]
) -> None:
    port, _ = served
    assert await _is_active(port, keda(authorities, "keda-ca")) is True


@pytest.mark.parametrize("client_ca", [None, "other-ca"], ids=["no-client-certificate", "another-ca"])
async def test_a_client_without_a_certificate_of_the_configured_ca_is_refused(
    served: tuple[int, Path], authorities: dict[str, Authority], client_ca: str | None
) -> None:
    port, _ = served
    with pytest.raises(grpc.aio.AioRpcError) as refused:
        await _is_active(port, keda(authorities, client_ca))
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_plaintext_client_is_refused(served: tuple[int, Path]) -> None:
    port, _ = served
    async with grpc.aio.insecure_channel(f"127.0.0.1:{port}") as channel:
        call = channel.unary_unary("/externalscaler.ExternalScaler/IsActive")
        with pytest.raises(grpc.aio.AioRpcError) as refused:
            await call(b"", timeout=5)
    assert refused.value.code() is grpc.StatusCode.UNAVAILABLE


async def test_a_rotated_secret_is_taken_up_without_a_restart(
    served: tuple[int, Path], authorities: dict[str, Authority]
) -> None:
    port, directory = served
    assert await _is_active(port, keda(authorities, "keda-ca")) is True
    write_secret(directory, authorities, client_ca="other-ca")
    # The files' modification times decide; make sure they moved even on a coarse clock.
    later = os.stat(directory / "ca.crt").st_mtime_ns + 10**9
    for name in ("tls.key", "tls.crt", "ca.crt"):
        os.utime(directory / name, ns=(later, later))
    assert await _is_active(port, keda(authorities, "other-ca")) is True
    with pytest.raises(grpc.aio.AioRpcError):
        await _is_active(port, keda(authorities, "keda-ca"))


async def test_missing_files_stop_the_start_naming_them(tmp_path: Path) -> None:
    metrics = GatewayMetrics()
    demand = Demand(readiness=ManualReadiness(), metrics=metrics.route(""), activation_timeout=30)
    scaler = external_scaler.ExternalScaler(routes=OneRoute(demand), metrics=metrics)  # type: ignore[arg-type]
    with pytest.raises(external_scaler.TLSFilesError, match=r"tls\.key.*cannot be read"):
        await external_scaler.start(scaler, netaddr.ListenAddress("127.0.0.1", 0), tls_dir=tmp_path)
    await demand.close()


async def test_the_gateway_serves_mutual_tls_when_its_settings_name_the_files(
    tmp_path: Path, authorities: dict[str, Authority]
) -> None:
    write_secret(tmp_path, authorities, client_ca="keda-ca")
    settings = {"scaler_listen": netaddr.ListenAddress("127.0.0.1", 0), "scaler_tls_dir": str(tmp_path)}
    async with running_gateway(**settings) as running:
        port = running.assembly.scaler_port
        assert port is not None
        assert await _is_active(port, keda(authorities, "keda-ca")) is False
        with pytest.raises(grpc.aio.AioRpcError):
            await _is_active(port, keda(authorities, None))
