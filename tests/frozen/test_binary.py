"""Smoke tests of the PyInstaller-frozen executable, dist/hearth (built by scripts/build-binary.sh)."""

from __future__ import annotations

import asyncio
import json
import subprocess
from pathlib import Path

import openai
import pytest

from hearth.cmd import compiled
from tests.helpers import FROZEN_BINARY, running_hearth

pytestmark = pytest.mark.frozen


@pytest.fixture(scope="module")
def binary() -> str:
    if not FROZEN_BINARY.is_file():
        pytest.fail(f"{FROZEN_BINARY} is missing: build it with scripts/build-binary.sh")
    return str(FROZEN_BINARY)


def test_frozen_binary_reports_its_build(binary: str) -> None:
    result = subprocess.run(
        [binary, "version", "-o", "json"], capture_output=True, text=True, timeout=60, check=True
    )
    info = json.loads(result.stdout)
    assert info["frozen"] is True
    assert info["aiohttp_c_parser"] is True, "the binary must carry aiohttp's C HTTP parser"
    assert info["compiled_modules"] == sorted(compiled.MODULES), "the gateway's request path, compiled"
    assert info["self_signed_tls"] is True, "--metrics-secure needs cryptography inside the binary"
    version = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=True)
    assert version.stdout == f"hearth {info['version']}\n"


def test_frozen_binary_bundles_the_package_data(binary: str) -> None:
    from hearth.common import bundle

    result = subprocess.run(
        [binary, "version", "-o", "json"], capture_output=True, text=True, timeout=60, check=True
    )
    assert json.loads(result.stdout)["bundled"] == {kind: bundle.names(kind) for kind in bundle.KINDS}


async def test_frozen_stub_serves_a_streamed_chat_completion(binary: str) -> None:
    env = {"STUB_LISTEN_ADDR": "127.0.0.1:0", "STUB_TOKEN_COUNT": "3", "STUB_TOKEN_DELAY": "1ms"}
    async with running_hearth(["stub", "--served-model-name", "qwen"], executable=[binary], env=env) as stub:
        async with openai.AsyncOpenAI(base_url=f"{stub.url}/v1", api_key="unused", max_retries=0) as client:
            stream = await client.chat.completions.create(
                model="qwen", messages=[{"role": "user", "content": "hi"}], stream=True
            )
            text = "".join([chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices])
    assert text == "tok0 tok1 tok2 "


def test_frozen_binary_rejects_bad_settings_cleanly(binary: str) -> None:
    result = subprocess.run(
        [binary, "stub"],
        env={"STUB_TOKEN_DELAY": "5x"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2
    assert "STUB_TOKEN_DELAY" in result.stderr
    assert "Traceback" not in result.stderr


async def test_frozen_gateway_fronts_the_frozen_stub_and_serves_the_scaler(binary: str) -> None:
    import grpc

    from hearth.gateway.scaler import protowire
    from tests.cluster.controlplane import free_port

    stub_env = {"STUB_LISTEN_ADDR": "127.0.0.1:0", "STUB_TOKEN_COUNT": "2", "STUB_TOKEN_DELAY": "1ms"}
    async with running_hearth(["stub"], executable=[binary], env=stub_env) as stub:
        scaler_port = free_port()
        env = {
            "HEARTH_BACKEND_URL": stub.url,
            "HEARTH_LISTEN_ADDR": "127.0.0.1:0",
            "HEARTH_READINESS": "probe",
            "HEARTH_SCALER_LISTEN_ADDR": f"127.0.0.1:{scaler_port}",
        }
        async with running_hearth(["gateway"], executable=[binary], env=env) as gateway:
            async with grpc.aio.insecure_channel(f"127.0.0.1:{scaler_port}") as channel:
                is_active = channel.unary_unary(
                    "/externalscaler.ExternalScaler/IsActive",
                    request_serializer=protowire.ScaledObjectRef.encode,
                    response_deserializer=protowire.decode_is_active_response,
                )
                assert await is_active(protowire.ScaledObjectRef("q", "ml", {"targetValue": "1"})) is False
            async with openai.AsyncOpenAI(
                base_url=f"{gateway.url}/v1", api_key="unused", max_retries=0
            ) as client:
                stream = await client.chat.completions.create(
                    model="hearth-stub", messages=[{"role": "user", "content": "hi"}], stream=True
                )
                text = "".join(
                    [chunk.choices[0].delta.content or "" async for chunk in stream if chunk.choices]
                )
            assert text == "tok0 tok1 "
            assert "event_loop=uvloop" in gateway.text(), "the frozen gateway carries and runs uvloop"


def test_frozen_binary_carries_the_upstream_kubernetes_schemas(binary: str, tmp_path: Path) -> None:
    """Probes and env vars are checked against hearth/api/k8s_schema/core_v1.json, which must be inside."""
    manifest = tmp_path / "service.yaml"
    manifest.write_text(
        "apiVersion: serving.hearth.dev/v1alpha1\nkind: LLMService\nmetadata: {name: q}\n"
        "spec: {model: {source: {uri: 'hf://a/b'}}, runtime: {name: vllm-stub}}\n"
    )
    result = subprocess.run(
        [binary, "render", "-f", str(manifest), "-o", "json"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "readinessProbe" in result.stdout
    runtime = tmp_path / "runtime.yaml"
    runtime.write_text(
        "apiVersion: serving.hearth.dev/v1alpha1\nkind: InferenceRuntime\nmetadata: {name: vllm-stub}\n"
        "spec: {vendor: generic, container: {image: i}, accelerator: {resourceName: r},\n"
        "  health: {readiness: {httpGet: {port: 8000, paht: /}}}}\n"
    )
    refused = subprocess.run(
        [binary, "render", "-f", str(manifest), "-r", str(runtime)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert refused.returncode != 0
    assert "httpGet.paht: unknown field" in refused.stderr


async def test_frozen_binary_as_python3_runs_a_real_prewarm(binary: str, tmp_path: Path) -> None:
    """The stub image links python3 to the binary: under that name it downloads from HF_ENDPOINT."""
    from aiohttp import test_utils

    from hearth.common import hfcache
    from hearth.stub import hub, tinymodel

    link = tmp_path / "bin" / "python3"
    link.parent.mkdir()
    link.symlink_to(binary)
    server = test_utils.TestServer(hub.make_app(("hearth/e2e-model",)), host="127.0.0.1")
    await server.start_server()
    try:
        env = {"HF_ENDPOINT": str(server.make_url("")).rstrip("/"), "HF_HOME": str(tmp_path / "hf")}
        script = 'from huggingface_hub import snapshot_download; snapshot_download("hearth/e2e-model")'
        process = await asyncio.create_subprocess_exec(
            str(link), "-c", script, env=env, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        stdout, stderr = await asyncio.wait_for(process.communicate(), 60)
    finally:
        await server.close()
    assert process.returncode == 0, stderr.decode()
    commit = tinymodel.generate("hearth/e2e-model").commit
    assert stdout.decode().strip().endswith(f"/snapshots/{commit}")
    found = hfcache.find(tmp_path / "hf" / "hub", "hearth/e2e-model")
    assert found is not None
    assert found.commit == commit
