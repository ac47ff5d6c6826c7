"""The real model-delivery servers for tests (issue 26): the CNCF distribution registry, versitygw (an S3
store that checks SigV4 signatures) and the ORAS CLI, built by testing/delivery/build.sh and started here on
127.0.0.1 with a free port.

Absent binaries skip the tests on a developer's machine (with the command that builds them); under CI
(``CI`` set) they are built (or waited for: .ci/run builds them in the background while the tests run)."""

from __future__ import annotations

import base64
import contextlib
import datetime
import hashlib
import json
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from hearth.common import sigv4
from tests.helpers import REPO

BUILD = REPO / "testing" / "delivery" / "build.sh"
TOOLS = ("registry", "versitygw", "oras")
#: The registry's one user; its bcrypt hash (cost 10) is the htpasswd line below.
REGISTRY_USER, REGISTRY_PASSWORD = "hearth", "hearth-test-password"
HTPASSWD = f"{REGISTRY_USER}:$2a$10$3.tvIpN.AwvBiz4iL.Yew.DRDTeA8LTj2JKYKjVUndL1uk3bexyV6\n"
S3_ACCESS, S3_SECRET = "hearthtestaccess", "hearth-test-secret-key"


def binaries() -> dict[str, Path]:
    """The three binaries, built under CI, else skipping the test when one is missing."""
    paths = [Path(line) for line in _run([str(BUILD), "--print"]).split()]
    found = dict(zip(TOOLS, paths, strict=True))
    if all(path.is_file() for path in paths):
        return found
    if not os.environ.get("CI"):
        pytest.skip(f"the delivery test servers are not built (run {BUILD.relative_to(REPO)})")
    _run(["nice", "-n", "10", str(BUILD)], timeout=1800)
    return found


def _run(command: list[str], timeout: float = 60) -> str:
    return subprocess.run(command, check=True, capture_output=True, text=True, timeout=timeout).stdout


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def _wait_http(url: str, process: subprocess.Popen[bytes], log: Path, within_s: float = 30) -> float:
    """Seconds until *url* answers (any HTTP status)."""
    started = time.monotonic()
    while time.monotonic() - started < within_s:
        if process.poll() is not None:
            raise RuntimeError(f"{process.args[0]} exited {process.returncode}: {log.read_text()[-3000:]}")
        try:
            urllib.request.urlopen(url, timeout=2).close()
        except urllib.error.HTTPError:
            pass
        except OSError:
            time.sleep(0.05)
            continue
        return time.monotonic() - started
    raise RuntimeError(f"{url} did not answer within {within_s}s: {log.read_text()[-3000:]}")


@contextlib.contextmanager
def _process(
    command: list[str], log: Path, env: dict[str, str] | None = None
) -> Iterator[subprocess.Popen[bytes]]:
    with log.open("wb") as out:
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, **(env or {})},
        )
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@contextlib.contextmanager
def registry(binary: Path, folder: Path, *, auth: bool) -> Iterator[str]:
    """A distribution registry on 127.0.0.1 (htpasswd Basic auth when *auth*): yields ``host:port``."""
    port = free_port()
    folder.mkdir(parents=True, exist_ok=True)
    config = [
        "version: 0.1",
        "log:",
        "  level: warn",
        "storage:",
        "  filesystem:",
        f"    rootdirectory: {folder / 'data'}",
        "http:",
        f"  addr: 127.0.0.1:{port}",
        "  secret: hearth-test",
    ]
    if auth:
        (folder / "htpasswd").write_text(HTPASSWD)
        config += ["auth:", "  htpasswd:", "    realm: hearth-test", f"    path: {folder / 'htpasswd'}"]
    (folder / "config.yml").write_text("\n".join(config) + "\n")
    with _process([str(binary), "serve", str(folder / "config.yml")], folder / "registry.log") as process:
        took = _wait_http(f"http://127.0.0.1:{port}/v2/", process, folder / "registry.log")
        (folder / "started-in").write_text(f"{took:.2f}\n")
        yield f"127.0.0.1:{port}"


@contextlib.contextmanager
def object_store(binary: Path, folder: Path) -> Iterator[str]:
    """versitygw's posix backend on 127.0.0.1, with one root user: yields the endpoint URL."""
    port = free_port()
    (folder / "data").mkdir(parents=True, exist_ok=True)
    (folder / "meta").mkdir(parents=True, exist_ok=True)
    command = [
        str(binary),
        "--port",
        f"127.0.0.1:{port}",
        "--quiet",
        "posix",
        "--sidecar",
        str(folder / "meta"),
        str(folder / "data"),
    ]
    # The keys by environment, as testing/delivery/serve.sh passes them (not in argv, which ps shows).
    keys = {"ROOT_ACCESS_KEY_ID": S3_ACCESS, "ROOT_SECRET_ACCESS_KEY": S3_SECRET}
    with _process(command, folder / "versitygw.log", env=keys) as process:
        took = _wait_http(f"http://127.0.0.1:{port}/", process, folder / "versitygw.log")
        (folder / "started-in").write_text(f"{took:.2f}\n")
        yield f"http://127.0.0.1:{port}"


def s3_put(endpoint: str, path: str, data: bytes = b"") -> None:
    """A signed PUT of *path* (``/<bucket>`` makes a bucket, ``/<bucket>/<key>`` an object)."""
    host = endpoint.removeprefix("http://")
    encoded = sigv4.encode_path(path)
    headers = sigv4.sign(
        method="PUT",
        host=host,
        path=encoded,
        query={},
        region="us-east-1",
        credentials=sigv4.Credentials(S3_ACCESS, S3_SECRET),
        now=datetime.datetime.now(datetime.UTC),
        payload_sha256=hashlib.sha256(data).hexdigest(),
    )
    request = urllib.request.Request(endpoint + encoded, data=data, method="PUT", headers=headers)
    urllib.request.urlopen(request, timeout=10).close()


def oras_push(oras: Path, reference: str, folder: Path, files: list[str], *, auth: bool) -> str:
    """``oras push`` of *files* (paths relative to *folder*) as an artifact: returns its manifest digest."""
    login = ["--username", REGISTRY_USER, "--password", REGISTRY_PASSWORD] if auth else []
    command = [
        str(oras),
        "push",
        "--plain-http",
        *login,
        "--format",
        "go-template={{.digest}}",
        reference,
        *files,
    ]
    env = {**os.environ, "HOME": str(folder)}  # no docker config of the machine's
    out = subprocess.run(command, cwd=folder, check=True, capture_output=True, text=True, env=env, timeout=60)
    return out.stdout.strip().splitlines()[-1]


def docker_config(folder: Path, registry_host: str, password: str = REGISTRY_PASSWORD) -> Path:
    """A ``$DOCKER_CONFIG`` folder as a mounted dockerconfigjson Secret gives it."""
    auth = base64.b64encode(f"{REGISTRY_USER}:{password}".encode()).decode()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps({"auths": {registry_host: {"auth": auth}}}))
    return folder
