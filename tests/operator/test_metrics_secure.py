"""``--metrics-secure`` on a real API server: HTTPS, and /metrics only for callers whose token the API
server accepts and whose user may ``get /metrics`` (the hearth-metrics-reader ClusterRole)."""

from __future__ import annotations

import asyncio
import http.client
import json
import ssl
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

from aiohttp import web

from hearth.common import tls
from hearth.install import manifests
from tests.cluster.controlplane import ControlPlane, free_port
from tests.operator.conftest import OperatorProcess


def _insecure_context() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE  # the pair is self-signed; what is checked here is who may read
    return context


def get_metrics(port: int, token: str | None) -> tuple[int, str]:
    request = urllib.request.Request(f"https://127.0.0.1:{port}/metrics")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10, context=_insecure_context()) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def service_account_token(plane: ControlPlane, name: str) -> str:
    plane.kubectl("create", "serviceaccount", name, "-n", "default", check=False)
    return plane.kubectl("create", "token", name, "-n", "default").stdout.strip()


def test_secure_metrics_answer_only_callers_allowed_to_get_metrics(
    hearth_cluster: ControlPlane, start_operator: Callable[..., OperatorProcess]
) -> None:
    plane = hearth_cluster
    reader = next(
        obj
        for obj in manifests.objects(manifests.InstallConfig())
        if obj["metadata"]["name"] == (manifests.METRICS_READER)
    )
    plane.kubectl("apply", "-f", "-", stdin=json.dumps(reader))
    plane.kubectl(
        "create",
        "clusterrolebinding",
        "scraper-reads-metrics",
        f"--clusterrole={manifests.METRICS_READER}",
        "--serviceaccount=default:scraper",
        check=False,
    )
    scraper = service_account_token(plane, "scraper")
    stranger = service_account_token(plane, "stranger")
    port = free_port()
    start_operator(f"--metrics-bind-address=127.0.0.1:{port}", "--metrics-secure", name="secure")

    assert get_metrics(port, None)[0] == 401
    assert get_metrics(port, "not-a-token")[0] == 401
    status, body = get_metrics(port, stranger)
    assert status == 403
    assert "system:serviceaccount:default:stranger" in body
    status, body = get_metrics(port, scraper)
    assert status == 200
    assert "hearth_operator_api_writes_total" in body
    assert _writes(body) == _writes(get_metrics(port, scraper)[1]), (
        "reviews are not writes: scraping must not make an idle operator look busy"
    )
    assert _plain_http_status(port) is None, "plain HTTP gets nothing from the HTTPS port"


def _writes(page: str) -> list[str]:
    return [line for line in page.splitlines() if line.startswith("hearth_operator_api_writes_total ")]


def _plain_http_status(port: int) -> int | None:
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return error.code
    except (OSError, http.client.HTTPException):
        return None


def test_an_unusable_certificate_directory_stops_the_operator_with_its_name(
    hearth_cluster: ControlPlane, tmp_path: Path
) -> None:
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "hearth",
            "operator",
            f"--kubeconfig={hearth_cluster.kubeconfig}",
            f"--health-probe-bind-address=127.0.0.1:{free_port()}",
            f"--metrics-bind-address=127.0.0.1:{free_port()}",
            f"--metrics-cert-path={tmp_path}",
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert f"cannot read {tmp_path / 'tls.crt'}" in result.stderr
    assert "Traceback" not in result.stderr


def _write_pair(directory: Path, hostname: str) -> bytes:
    cert, key = tls.self_signed_pair([hostname])
    (directory / "tls.key").write_bytes(key)
    (directory / "tls.crt").write_bytes(cert)
    return cert


async def _served_certificate(context: ssl.SSLContext) -> str:
    app = web.Application()
    runner = web.AppRunner(app)
    await runner.setup()
    port = free_port()
    await web.TCPSite(runner, "127.0.0.1", port, ssl_context=context).start()
    try:
        return await asyncio.to_thread(ssl.get_server_certificate, ("127.0.0.1", port))
    finally:
        await runner.cleanup()


async def test_a_rotated_certificate_is_served_to_new_connections(tmp_path: Path) -> None:
    first = _write_pair(tmp_path, "first.example")
    certificate = tls.ServingCertificate.from_directory(tmp_path, cert_name="tls.crt", key_name="tls.key")
    assert (await _served_certificate(certificate.context)).encode() == first
    assert not certificate.reload_if_changed()
    second = _write_pair(tmp_path, "second.example")
    assert certificate.reload_if_changed()
    assert (await _served_certificate(certificate.context)).encode() == second
