"""The OCI image built from dist/hearth by testing/image/build_oci_image.py.

The checks cover the layout's validity and reproducibility. Run as root, they also check that the image's root
filesystem is self-sufficient: the binary, busybox and the stub run under ``chroot`` as uid 65532.
"""

from __future__ import annotations

import contextlib
import gzip
import hashlib
import importlib.util
import io
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tarfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from tests.helpers import FROZEN_BINARY, REPO, split_sse

pytestmark = pytest.mark.frozen

BUILDER = REPO / "testing" / "image" / "build_oci_image.py"
REF = "hearth.dev/hearth-test:1.2.3"
ENTRYPOINT = ["/usr/local/bin/hearth", "stub"]
CHROOT_ENV = {"PATH": "/usr/local/bin:/usr/bin:/bin", "TMPDIR": "/tmp", "HOME": "/tmp"}
NONROOT = "--userspec=65532:65532"


def load_builder() -> ModuleType:
    spec = importlib.util.spec_from_file_location("build_oci_image", BUILDER)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses resolve annotations through sys.modules
    spec.loader.exec_module(module)
    return module


def build_with_cli(out: Path) -> subprocess.CompletedProcess[str]:
    # -I -S: no site-packages at all, which proves the builder needs nothing beyond the standard library.
    return subprocess.run(
        [
            sys.executable,
            "-I",
            "-S",
            str(BUILDER),
            "--binary",
            str(FROZEN_BINARY),
            "--ref",
            REF,
            "--out",
            str(out),
            "--entrypoint",
            json.dumps(ENTRYPOINT),
            "--port",
            "8000/tcp",
            "--symlink",
            "/usr/local/bin/python3=hearth",
        ],
        capture_output=True,
        text=True,
        check=False,
        env={key: value for key, value in os.environ.items() if key != "SOURCE_DATE_EPOCH"},
    )


@pytest.fixture(scope="module")
def image(tmp_path_factory: pytest.TempPathFactory) -> Path:
    if not FROZEN_BINARY.is_file():
        pytest.fail(f"{FROZEN_BINARY} is missing: build it first with `bash scripts/build-binary.sh`")
    out = tmp_path_factory.mktemp("image") / "hearth.tar"
    result = build_with_cli(out)
    assert result.returncode == 0, f"build_oci_image.py failed:\n{result.stderr}"
    summary = result.stdout.strip()
    assert summary.startswith(f"{REF} sha256:"), summary
    assert len(summary.splitlines()) == 1, summary
    return out


class Layout:
    """An image-layout tarball, read into memory (blobs by digest)."""

    def __init__(self, path: Path) -> None:
        with tarfile.open(path) as tar:
            self.members = tar.getmembers()
            self.files = {
                member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in self.members
                if member.isfile()
            }
        self.index = json.loads(self.files["index.json"])
        self.manifest_descriptor = self.index["manifests"][0]
        self.manifest = json.loads(self.blob(self.manifest_descriptor))
        self.config = json.loads(self.blob(self.manifest["config"]))
        self.layer_gz = self.blob(self.manifest["layers"][0])
        self.layer = gzip.decompress(self.layer_gz)

    def blob(self, descriptor: dict[str, Any]) -> bytes:
        algorithm, _, hexdigest = descriptor["digest"].partition(":")
        assert algorithm == "sha256"
        data = self.files[f"blobs/sha256/{hexdigest}"]
        assert hashlib.sha256(data).hexdigest() == hexdigest, descriptor
        assert len(data) == descriptor["size"], descriptor
        return data

    def layer_members(self) -> list[tarfile.TarInfo]:
        with tarfile.open(fileobj=io.BytesIO(self.layer)) as tar:
            return tar.getmembers()


@pytest.fixture(scope="module")
def layout(image: Path) -> Layout:
    return Layout(image)


@pytest.fixture(scope="module")
def rootfs(layout: Layout, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("rootfs")
    with tarfile.open(fileobj=io.BytesIO(layout.layer)) as tar:
        # fully_trusted keeps /tmp's sticky bit and the symlinks exactly as the container runtime would.
        tar.extractall(root, filter="fully_trusted")
    root.chmod(0o755)  # mktemp makes it 0700; a snapshotter's rootfs is 0755
    yield root
    shutil.rmtree(root, ignore_errors=True)


def test_layout_is_valid(layout: Layout) -> None:
    assert json.loads(layout.files["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    assert layout.index["schemaVersion"] == 2
    assert len(layout.index["manifests"]) == 1
    descriptor = layout.manifest_descriptor
    assert descriptor["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert descriptor["platform"] == {"architecture": "amd64", "os": "linux"}
    assert descriptor["annotations"] == {
        "io.containerd.image.name": REF,
        "org.opencontainers.image.ref.name": "1.2.3",
    }
    manifest = layout.manifest
    assert manifest["schemaVersion"] == 2
    assert manifest["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
    assert [layer["mediaType"] for layer in manifest["layers"]] == [
        "application/vnd.oci.image.layer.v1.tar+gzip"
    ]
    # Every blob in the tarball is referenced, and its name is its digest (checked by Layout.blob).
    blobs = {name for name in layout.files if name.startswith("blobs/")}
    referenced = {descriptor["digest"], manifest["config"]["digest"], manifest["layers"][0]["digest"]}
    assert blobs == {f"blobs/sha256/{digest.removeprefix('sha256:')}" for digest in referenced}

    config = layout.config
    assert (config["architecture"], config["os"]) == ("amd64", "linux")
    assert config["rootfs"] == {
        "type": "layers",
        "diff_ids": [f"sha256:{hashlib.sha256(layout.layer).hexdigest()}"],
    }
    container = config["config"]
    assert container["User"] == "65532:65532"
    assert container["Entrypoint"] == ENTRYPOINT
    assert "Cmd" not in container
    assert container["WorkingDir"] == "/tmp"
    assert container["ExposedPorts"] == {"8000/tcp": {}}
    assert "TMPDIR=/tmp" in container["Env"]
    assert any(entry.startswith("PATH=") and ":/bin" in entry for entry in container["Env"])
    assert container["Labels"]["org.opencontainers.image.version"] == "1.2.3"
    assert layout.layer_gz[4:8] == b"\0\0\0\0", "gzip header mtime must be 0"


def test_layer_contents(layout: Layout) -> None:
    members = layout.layer_members()
    names = [member.name for member in members]
    assert names == sorted(names)
    assert len(names) == len(set(names))
    for member in members:
        assert (member.uid, member.gid, member.uname, member.gname, member.mtime) == (0, 0, "", "", 0), (
            member.name
        )
    by_name = {member.name: member for member in members}
    assert by_name["usr/local/bin/hearth"].mode == 0o755
    assert by_name["usr/local/bin/hearth"].size == FROZEN_BINARY.stat().st_size
    assert by_name["tmp"].isdir()
    assert by_name["tmp"].mode == 0o1777
    assert by_name["bin/busybox"].isfile()
    for applet in ("sh", "sleep"):
        assert by_name[f"bin/{applet}"].issym()
        assert by_name[f"bin/{applet}"].linkname == "busybox"
    # --symlink: the stub image's python3 is the binary under another name (hearth/stub/pyshim.py).
    assert by_name["usr/local/bin/python3"].issym()
    assert resolve(by_name, "usr/local/bin/python3").name == "usr/local/bin/hearth"
    # The loader's path (PT_INTERP) resolves, through the host's symlink chain, to a file in the layer.
    assert resolve(by_name, "lib64/ld-linux-x86-64.so.2").isfile()
    libraries = {os.path.basename(name) for name in names if ".so" in name}
    assert {"ld-linux-x86-64.so.2", "libc.so.6", "libz.so.1"} <= libraries
    passwd = layout_file(layout, "etc/passwd")
    assert "nonroot:x:65532:65532:nonroot:/tmp:" in passwd
    assert "nonroot:x:65532:" in layout_file(layout, "etc/group")
    assert "hosts: files dns" in layout_file(layout, "etc/nsswitch.conf")


def resolve(by_name: dict[str, tarfile.TarInfo], path: str) -> tarfile.TarInfo:
    """Follow symlinks (at any path component) inside the layer, as the kernel would under chroot."""
    parts = path.strip("/").split("/")
    current: list[str] = []
    for _hop in range(40):
        for index, part in enumerate(parts):
            member = by_name.get("/".join([*current, part]))
            assert member is not None, f"/{'/'.join([*current, part])} is missing from the layer"
            if member.issym():
                base = [] if member.linkname.startswith("/") else current
                parts = [*base, *member.linkname.strip("/").split("/"), *parts[index + 1 :]]
                parts = os.path.normpath("/".join(parts)).strip("/").split("/")
                current = []
                break
            current.append(part)
        else:
            return by_name["/".join(current)]
    raise AssertionError(f"symlink loop at /{path}")


def layout_file(layout: Layout, name: str) -> str:
    with tarfile.open(fileobj=io.BytesIO(layout.layer)) as tar:
        return tar.extractfile(name).read().decode()  # type: ignore[union-attr]


def test_builds_are_reproducible(image: Path, tmp_path: Path) -> None:
    builder = load_builder()
    again = tmp_path / "again.tar"
    result = builder.build_image(
        binary=FROZEN_BINARY,
        ref=REF,
        out=again,
        entrypoint=ENTRYPOINT,
        ports=["8000/tcp"],
        source_date_epoch=0,
        symlinks={"/usr/local/bin/python3": "hearth"},
    )
    assert again.read_bytes() == image.read_bytes()
    assert result.size == image.stat().st_size
    assert any(os.path.basename(library) == "libc.so.6" for library in result.libraries)


def test_builtin_archive_reader_matches_pyinstaller() -> None:
    readers = pytest.importorskip("PyInstaller.archive.readers")
    builder = load_builder()
    ours = {entry.name: entry for entry in builder.read_carchive(FROZEN_BINARY)}
    reference = readers.CArchiveReader(str(FROZEN_BINARY))
    theirs = {name for name, entry in reference.toc.items() if entry[4] in ("b", "x", "n")}
    assert set(ours) == theirs
    assert ours["libpython3.11.so.1.0"].data == reference.extract("libpython3.11.so.1.0")


@pytest.mark.usefixtures("image")
def test_missing_busybox_is_a_clear_error(tmp_path: Path) -> None:
    result = subprocess.run(
        [
            *(sys.executable, "-I", "-S", str(BUILDER), "--binary", str(FROZEN_BINARY), "--ref", REF),
            *("--out", str(tmp_path / "x.tar"), "--busybox", str(tmp_path / "no-busybox")),
        ],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 1
    assert "busybox-static" in result.stderr
    assert "Traceback" not in result.stderr


# ------------------------------------------------------------------------------------ under chroot


def chroot_command(root: Path, *argv: str) -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("running the image's root filesystem needs chroot, which needs root")
    chroot = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin")
    assert chroot, "chroot (coreutils) not found"
    return [chroot, NONROOT, str(root), *argv]


def test_binary_runs_in_the_rootfs_as_nonroot(rootfs: Path) -> None:
    result = subprocess.run(
        chroot_command(rootfs, "/usr/local/bin/hearth", "version", "-o", "json"),
        capture_output=True,
        text=True,
        env=CHROOT_ENV,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    version = json.loads(result.stdout)
    assert version["frozen"] is True
    assert version["aiohttp_c_parser"] is True


def test_busybox_shell_runs_in_the_rootfs(rootfs: Path) -> None:
    result = subprocess.run(
        chroot_command(rootfs, "/bin/sh", "-c", "sleep 0 && echo ok && id -u"),
        capture_output=True,
        text=True,
        env=CHROOT_ENV,
        timeout=30,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["ok", "65532"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def wait_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"the stub exited with {process.returncode}:\n{log.read_text(errors='replace')}")
        with contextlib.suppress(OSError):
            with urllib.request.urlopen(f"{url}/health", timeout=2) as response:
                if response.status == 200:
                    return
        time.sleep(0.1)
    pytest.fail(f"the stub did not become healthy:\n{log.read_text(errors='replace')}")


def test_stub_serves_a_stream_in_the_rootfs(rootfs: Path, tmp_path: Path) -> None:
    port = free_port()
    command = chroot_command(
        rootfs, *ENTRYPOINT, "--listen", f"127.0.0.1:{port}", "--token-count", "3", "--token-delay", "1ms"
    )
    log = tmp_path / "stub.log"
    url = f"http://127.0.0.1:{port}"
    with log.open("wb") as log_file:
        # Its own session, so that a failed test can kill the bootloader AND the Python process it spawned.
        process = subprocess.Popen(
            command,
            stdin=subprocess.DEVNULL,
            stdout=log_file,
            stderr=log_file,
            env=CHROOT_ENV,
            start_new_session=True,
        )
    try:
        wait_healthy(url, process, log)
        request = urllib.request.Request(
            f"{url}/v1/chat/completions",
            data=json.dumps(
                {"model": "m", "messages": [{"role": "user", "content": "hi"}], "stream": True}
            ).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
            assert response.headers["Content-Type"].startswith("text/event-stream")
            body = response.read()
        events = split_sse(body)
        assert events[-1] == b"data: [DONE]\n\n"
        assert len(events) >= 4  # three tokens, then [DONE]
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=30) == 0, log.read_text(errors="replace")
    finally:
        with contextlib.suppress(ProcessLookupError):  # normally nothing is left in the session
            os.killpg(process.pid, signal.SIGKILL)
        process.wait()
