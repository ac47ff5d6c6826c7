"""The REST client's connection settings, against a local HTTPS server standing in for the API server: the
plain kubeconfig shapes read by hearth.kube.kubeconfig itself, an exec plugin read by kubernetes_asyncio's
loader, and a pod's in-cluster credentials with their token rotating on disk."""

from __future__ import annotations

import base64
import datetime
import json
import ssl
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web

from hearth.common import tls
from hearth.kube import kubeconfig, resources
from hearth.kube.client import KubeClient
from hearth.kube.errors import ApiError, ApiUnreachableError


class FakeApiServer:
    """Answers every request with a ConfigMap-shaped echo of what it received."""

    def __init__(self) -> None:
        self.seen: list[dict[str, Any]] = []
        self.url = ""
        self.ca_pem = b""

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.text()
        self.seen.append(
            {
                "method": request.method,
                "path": request.path,
                "query": list(request.query.items()),
                "authorization": request.headers.get("Authorization"),
                "content_type": request.headers.get("Content-Type"),
                "body": json.loads(body) if body else None,
            }
        )
        if request.path.endswith("/missing"):
            status = {"kind": "Status", "reason": "NotFound", "message": "configmaps missing not found"}
            return web.json_response(status, status=404)
        return web.json_response({"kind": "ConfigMap", "metadata": {"name": "echo"}})


@pytest.fixture
async def api_server(tmp_path: Path) -> AsyncIterator[FakeApiServer]:
    fake = FakeApiServer()
    cert, key = tls.self_signed_pair(["localhost"])
    (tmp_path / "server.crt").write_bytes(cert)
    (tmp_path / "server.key").write_bytes(key)
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.load_cert_chain(tmp_path / "server.crt", tmp_path / "server.key")
    runner = web.AppRunner(web.Application(), handle_signals=False)
    runner.app.router.add_route("*", "/{tail:.*}", fake.handle)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=context)
    await site.start()
    port = runner.addresses[0][1]
    fake.url, fake.ca_pem = f"https://127.0.0.1:{port}", cert
    yield fake
    await runner.cleanup()


def _kubeconfig(path: Path, cluster: dict[str, Any], user: dict[str, Any]) -> Path:
    config = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": "other", "cluster": {"server": "https://192.0.2.1"}},
            {"name": "c", "cluster": cluster},
        ],
        "users": [{"name": "u", "user": user}],
        "contexts": [
            {"name": "elsewhere", "context": {"cluster": "other", "user": "u"}},
            {"name": "here", "context": {"cluster": "c", "user": "u"}},
        ],
        "current-context": "here",
    }
    path.write_text(yaml.safe_dump(config))
    return path


async def test_a_plain_kubeconfig_is_read_without_the_library(
    api_server: FakeApiServer, tmp_path: Path
) -> None:
    cluster = {
        "server": api_server.url + "/",
        "certificate-authority-data": base64.b64encode(api_server.ca_pem).decode(),
    }
    path = _kubeconfig(tmp_path / "config", cluster, {"token": "abc"})
    client = await KubeClient.connect(kubeconfig=str(path))
    try:
        created = await client.create(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "ns"}}
        )
        await client.list(resources.POD, namespace="ns", label_selector="app=a,tier in (x)")
        assert await client.get(resources.POD, "missing", "ns") is None
        await client.apply(
            {"apiVersion": "v1", "kind": "Service", "metadata": {"name": "x", "namespace": "ns"}}
        )
    finally:
        await client.close()
    assert created == {"kind": "ConfigMap", "metadata": {"name": "echo"}}
    post, listing, _get, apply = api_server.seen
    assert post["method"] == "POST"
    assert post["path"] == "/api/v1/namespaces/ns/services"
    assert post["authorization"] == "Bearer abc"
    assert post["content_type"] == "application/json"
    assert post["body"]["metadata"]["name"] == "x"
    assert listing["query"] == [("limit", "500"), ("labelSelector", "app=a,tier in (x)")]
    assert apply["content_type"] == "application/apply-patch+yaml"
    assert apply["query"] == [("fieldManager", "hearth-operator"), ("force", "true")]
    assert client.writes == 2, "POST and PATCH count, GETs do not"


def test_a_plain_kubeconfig_leaves_the_library_unloaded(tmp_path: Path) -> None:
    # In a fresh process: another test in this one may have loaded the library already.
    path = _kubeconfig(tmp_path / "config", {"server": "https://192.0.2.9"}, {"token": "abc"})
    script = (
        "import asyncio, sys\n"
        "from hearth.kube.client import KubeClient\n"
        "async def main():\n"
        f"    client = await KubeClient.connect(kubeconfig={str(path)!r})\n"
        "    await client.close()\n"
        "asyncio.run(main())\n"
        "print(sorted(m for m in sys.modules if m.startswith('kubernetes')))\n"
    )
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    assert result.stdout.strip() == "[]"


async def test_the_server_certificate_is_checked(api_server: FakeApiServer, tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", {"server": api_server.url}, {"token": "abc"})
    client = await KubeClient.connect(kubeconfig=str(path))
    try:
        with pytest.raises(ApiUnreachableError, match="certificate verify failed"):
            await client.get(resources.POD, "p", "ns")
    finally:
        await client.close()
    insecure = _kubeconfig(
        tmp_path / "insecure", {"server": api_server.url, "insecure-skip-tls-verify": True}, {"token": "abc"}
    )
    client = await KubeClient.connect(kubeconfig=str(insecure))
    try:
        assert await client.get(resources.POD, "p", "ns") is not None
    finally:
        await client.close()


async def test_the_context_named_wins_over_the_current_one(tmp_path: Path) -> None:
    path = _kubeconfig(tmp_path / "config", {"server": "https://192.0.2.9"}, {"token": "abc"})
    connection = await kubeconfig.from_kubeconfig(str(path), "elsewhere")
    assert connection.host == "https://192.0.2.1"
    assert await connection.authorization() == "Bearer abc"


async def test_client_certificates_are_presented(tmp_path: Path) -> None:
    cert, key = tls.self_signed_pair(["client"])
    user = {
        "client-certificate-data": base64.b64encode(cert).decode(),
        "client-key-data": base64.b64encode(key).decode(),
    }
    path = _kubeconfig(tmp_path / "config", {"server": "https://192.0.2.9"}, user)
    connection = await kubeconfig.from_kubeconfig(str(path))
    assert await connection.authorization() is None, "no token: no Authorization header"
    (tmp_path / "client.crt").write_bytes(cert)
    (tmp_path / "client.key").write_bytes(key)
    from_files = _kubeconfig(
        tmp_path / "files",
        {"server": "https://192.0.2.9"},
        {"client-certificate": "client.crt", "client-key": "client.key"},
    )
    await kubeconfig.from_kubeconfig(str(from_files))  # relative to the kubeconfig's directory


async def test_an_exec_plugin_is_run_by_the_library(api_server: FakeApiServer, tmp_path: Path) -> None:
    plugin = tmp_path / "credential"
    credential = {
        "apiVersion": "client.authentication.k8s.io/v1beta1",
        "kind": "ExecCredential",
        "status": {"token": "from-plugin"},
    }
    plugin.write_text(f"#!/bin/sh\necho '{json.dumps(credential)}'\n")
    plugin.chmod(0o755)
    cluster = {
        "server": api_server.url,
        "certificate-authority-data": base64.b64encode(api_server.ca_pem).decode(),
    }
    user = {"exec": {"apiVersion": "client.authentication.k8s.io/v1beta1", "command": str(plugin)}}
    path = _kubeconfig(tmp_path / "config", cluster, user)
    client = await KubeClient.connect(kubeconfig=str(path))
    try:
        await client.get(resources.POD, "p", "ns")
    finally:
        await client.close()
    assert api_server.seen[0]["authorization"] == "Bearer from-plugin"


async def test_a_missing_kubeconfig_fails_to_connect(tmp_path: Path) -> None:
    with pytest.raises(Exception, match="kube-config"):  # the library's loader reports a missing one
        await KubeClient.connect(kubeconfig=str(tmp_path / "absent"))


async def test_in_cluster_credentials_follow_the_rotated_token(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("first")
    (tmp_path / "ca.crt").write_bytes(tls.self_signed_pair(["ca"])[0])
    monkeypatch.setenv("KUBERNETES_SERVICE_HOST", "fd00::1")
    monkeypatch.setenv("KUBERNETES_SERVICE_PORT", "443")
    connection = kubeconfig.in_cluster(tmp_path)
    assert connection.host == "https://[fd00::1]:443"
    assert await connection.authorization() == "Bearer first"
    (tmp_path / "token").write_text("second")
    assert await connection.authorization() == "Bearer first", "read again only once it is a minute old"
    monkeypatch.setattr(kubeconfig, "TOKEN_REFRESH", datetime.timedelta(0))
    refreshed = kubeconfig.in_cluster(tmp_path)
    (tmp_path / "token").write_text("third")
    assert await refreshed.authorization() == "Bearer third"


def test_in_cluster_needs_the_service_address(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    with pytest.raises(kubeconfig.KubeConfigError, match="not set"):
        kubeconfig.in_cluster(tmp_path)


async def test_an_api_error_carries_the_status(api_server: FakeApiServer, tmp_path: Path) -> None:
    cluster = {"server": api_server.url, "insecure-skip-tls-verify": True}
    client = await KubeClient.connect(
        kubeconfig=str(_kubeconfig(tmp_path / "config", cluster, {"token": "t"}))
    )
    try:
        with pytest.raises(ApiError) as raised:
            await client.put(resources.POD, {"metadata": {"name": "missing", "namespace": "ns"}})
    finally:
        await client.close()
    assert (raised.value.status, raised.value.reason) == (404, "NotFound")
