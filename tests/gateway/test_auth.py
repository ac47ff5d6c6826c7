"""API keys at the gateway (DESIGN 5): checked before anything counts as demand, rotated without a
restart from a directory laid out as the kubelet mounts a Secret, never forwarded to the backend."""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
from typing import Any

import openai
import pytest

from hearth.gateway.front import auth
from tests.gateway.conftest import GatewayFactory, echo_app, running_app, running_stub

MESSAGES: list[Any] = [{"role": "user", "content": "hi"}]
BODY = {"model": "m", "messages": MESSAGES}

pytestmark = pytest.mark.looptime


def _mount_secret(directory: Path, keys: dict[str, str], version: str) -> None:
    """Lay out a Secret volume the way the kubelet does, and swap it in atomically: every key is a
    symlink through ``..data``, which points at a timestamped directory holding the real files."""
    directory.mkdir(exist_ok=True)
    data = directory / f"..{version}"
    data.mkdir()
    for name, value in keys.items():
        (data / name).write_text(value + "\n")
    staging = directory / "..data_tmp"
    staging.symlink_to(data.name)
    os.replace(staging, directory / "..data")
    for name in keys:
        link = directory / name
        if not link.is_symlink():
            link.symlink_to(Path("..data") / name)
    for stale in directory.iterdir():
        if stale.is_symlink() and not stale.exists():
            stale.unlink()  # a key removed from the Secret


@pytest.fixture
def keys_dir(tmp_path: Path) -> Path:
    directory = tmp_path / "api-keys"
    _mount_secret(directory, {"primary": "sk-first"}, "2026_01")
    return directory


async def test_a_request_without_a_valid_key_is_refused_before_it_counts_as_demand(
    start_gateway: GatewayFactory, keys_dir: Path
) -> None:
    async with start_gateway(api_keys_dir=str(keys_dir)) as gw:  # cold: no backend at all
        missing = await gw.http.post(f"{gw.url}/v1/chat/completions", json=BODY)
        wrong = await gw.http.post(
            f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-guess"}
        )
        for response, message in ((missing, "missing API key"), (wrong, "incorrect API key")):
            assert response.status == 401
            assert response.headers["WWW-Authenticate"].startswith("Bearer")
            error = (await response.json())["error"]
            assert error["code"] == "invalid_api_key"
            assert message in error["message"]
        async with gw.http.get(f"{gw.url}/hearth/queue") as queue:
            assert (await queue.json(content_type=None))["pending"] == 0
        assert gw.metric("hearth_gateway_activation_events_total") == 0, "nothing may wake the backend"
        assert gw.metric('hearth_gateway_rejections_total{reason="unauthorized"}') == 2
        assert gw.metric('hearth_gateway_requests_total{code="401"}') == 2


async def test_the_gateways_own_endpoints_need_no_key(start_gateway: GatewayFactory, keys_dir: Path) -> None:
    async with start_gateway(api_keys_dir=str(keys_dir)) as gw:
        for path in ("/healthz", "/hearth/queue", "/metrics"):
            async with gw.http.get(f"{gw.url}{path}") as response:
                assert response.status == 200, path


async def test_the_openai_client_passes_with_its_key_and_fails_clearly_without(
    start_gateway: GatewayFactory, keys_dir: Path
) -> None:
    async with running_stub() as stub, start_gateway(backends=[stub], api_keys_dir=str(keys_dir)) as gw:
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="sk-first", max_retries=0) as client:
            answer = await client.chat.completions.create(model="m", messages=MESSAGES)
            assert answer.choices[0].message.content
        async with openai.AsyncOpenAI(base_url=f"{gw.url}/v1", api_key="sk-wrong", max_retries=0) as client:
            with pytest.raises(openai.AuthenticationError, match="incorrect API key"):
                await client.models.list()


async def test_the_key_is_not_forwarded_to_the_backend(start_gateway: GatewayFactory, keys_dir: Path) -> None:
    async with (
        running_app(echo_app()) as echo,
        start_gateway(backends=[echo], api_keys_dir=str(keys_dir)) as gw,
    ):
        async with gw.http.post(
            f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-first"}
        ) as response:
            assert response.status == 200
            seen = {name.lower() for name in (await response.json())["headers"]}
    assert "authorization" not in seen


async def test_keys_rotate_without_a_restart(start_gateway: GatewayFactory, keys_dir: Path) -> None:
    async with running_stub() as stub, start_gateway(backends=[stub], api_keys_dir=str(keys_dir)) as gw:
        keys = gw.gateway.api_keys
        assert keys is not None

        async def status(key: str) -> int:
            headers = {"Authorization": f"Bearer {key}"}
            async with gw.http.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=headers) as response:
                return response.status

        # Step 1 of a rotation: the new key is added next to the old one.
        _mount_secret(keys_dir, {"primary": "sk-first", "next": "sk-second"}, "2026_02")
        assert keys.reload()
        assert (await status("sk-first"), await status("sk-second")) == (200, 200)
        # Step 2: the old key is removed (same file name, new value).
        _mount_secret(keys_dir, {"primary": "sk-second"}, "2026_03")
        assert keys.reload()
        assert (await status("sk-first"), await status("sk-second")) == (401, 200)
        assert not keys.reload(), "an unchanged directory is not re-read"


async def test_a_missing_secret_refuses_everything_and_says_why(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    async with start_gateway(api_keys_dir=str(tmp_path / "not-mounted")) as gw:
        async with gw.http.post(
            f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer anything"}
        ) as response:
            assert response.status == 401
            assert "no API key is configured" in (await response.json())["error"]["message"]


@pytest.mark.parametrize(
    ("header", "token"),
    [
        ("Bearer sk-1", "sk-1"),
        ("bearer   sk-1  ", "sk-1"),
        ("Basic dXNlcjpwYXNz", None),
        ("Bearer", None),
        ("Bearer    ", None),
        (None, None),
        ("", None),
    ],
)
def test_bearer_token_parsing(header: str | None, token: str | None) -> None:
    assert auth.bearer_token(header) == token


def test_an_empty_or_oversized_file_is_not_a_key(tmp_path: Path) -> None:
    (tmp_path / "empty").write_text("\n")
    (tmp_path / "huge").write_text("x" * (auth.MAX_KEY_BYTES + 1))
    (tmp_path / "real").write_text("sk-real")
    keys = auth.ApiKeys(tmp_path)
    assert keys.count == 1
    assert keys.accepts("sk-real")
    assert not keys.accepts("")
    assert not keys.accepts("x" * (auth.MAX_KEY_BYTES + 1))


# ---- spec.endpoint.authentication.secretRef: one key of one Secret, in one file -----------------------


def _project_key(directory: Path, value: str | None, version: str) -> Path:
    """Lay out a Secret volume with one projected item (``items: [{key, path: api-key}]``), as the kubelet
    does; *value* None: the Secret (or its key) is missing, so the optional volume holds no file."""
    _mount_secret(directory, {} if value is None else {"api-key": value}, version)
    return directory / "api-key"


async def test_one_key_file_admits_its_key_and_refuses_others_with_a_bearer_challenge(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    key_file = _project_key(tmp_path / "api-key", "sk-only", "2026_01")
    async with running_stub() as stub, start_gateway(backends=[stub], api_key_file=str(key_file)) as gw:
        ok = await gw.http.post(
            f"{gw.url}/v1/chat/completions", json=BODY, headers={"Authorization": "Bearer sk-only"}
        )
        assert ok.status == 200
        for headers in ({}, {"Authorization": "Bearer sk-guess"}):
            async with gw.http.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=headers) as refused:
                assert refused.status == 401
                assert refused.headers["WWW-Authenticate"].startswith("Bearer")
                assert (await refused.json())["error"]["code"] == "invalid_api_key"


async def test_an_unreadable_key_answers_503_authentication_unavailable_until_it_appears(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    directory = tmp_path / "api-key"
    key_file = _project_key(directory, None, "2026_01")  # the Secret does not exist yet
    async with running_stub() as stub, start_gateway(backends=[stub], api_key_file=str(key_file)) as gw:
        keys = gw.gateway.api_keys
        assert keys is not None

        async def answer(key: str) -> tuple[int, str | None, str]:
            headers = {"Authorization": f"Bearer {key}"}
            async with gw.http.post(f"{gw.url}/v1/chat/completions", json=BODY, headers=headers) as response:
                code = (await response.json())["error"]["code"] if response.status != 200 else ""
                return response.status, response.headers.get("X-Hearth-Refusal"), code

        unavailable = (503, "authentication_unavailable", "authentication_unavailable")
        assert await answer("sk-only") == unavailable
        async with gw.http.post(f"{gw.url}/v1/chat/completions", json=BODY) as keyless:
            assert keyless.status == 503, "no key can be checked: not the client's fault"
            assert keyless.headers["Retry-After"]
        assert gw.metric("hearth_gateway_activation_events_total") == 0, "nothing may wake the backend"
        assert gw.metric('hearth_gateway_rejections_total{reason="authentication_unavailable"}') == 2

        # The Secret is created: read without a restart.
        _project_key(directory, "sk-only", "2026_02")
        assert keys.reload()
        assert await answer("sk-only") == (200, None, "")
        # Rotated in place: the old key stops working at once, the new one works.
        _project_key(directory, "sk-next", "2026_03")
        assert keys.reload()
        assert (await answer("sk-only"))[0] == 401
        assert await answer("sk-next") == (200, None, "")
        # The key is emptied (or removed from the Secret): unavailable again, not open.
        _project_key(directory, "", "2026_04")
        assert keys.reload()
        assert await answer("sk-next") == unavailable


async def test_the_gateway_checks_the_key_file_on_its_own(
    start_gateway: GatewayFactory, tmp_path: Path
) -> None:
    """The reload loop runs in the background (fake time): a Secret fixed later is picked up alone."""
    directory = tmp_path / "api-key"
    key_file = _project_key(directory, None, "2026_01")
    async with running_stub() as stub, start_gateway(backends=[stub], api_key_file=str(key_file)) as gw:
        keys = gw.gateway.api_keys
        assert keys is not None
        assert not keys.available
        _project_key(directory, "sk-late", "2026_02")
        await asyncio.sleep(auth.RELOAD_SECONDS * 2)
        assert keys.available


def test_one_key_file_is_compared_whole_and_in_constant_time(tmp_path: Path) -> None:
    path = tmp_path / "api-key"
    path.write_text("  sk-exact\n")
    key = auth.ApiKeyFile(path)
    assert (key.available, key.count) == (True, 1)
    assert key.accepts("sk-exact")
    assert not key.accepts("sk-exac")
    assert not key.accepts("sk-exact-and-more")
    path.write_text("x" * (auth.MAX_KEY_BYTES + 1))
    assert key.reload()
    assert not key.available, "an oversized file is not a key"
    path.unlink()
    assert not key.reload(), "still no usable file: nothing changed"
    assert not key.available
    path.write_text("sk-back")
    assert key.reload()
    assert key.accepts("sk-back")
