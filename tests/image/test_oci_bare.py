"""``build_oci_image.py --bare``: one static executable alone in an image (the test bed's pause image is
built this way). Needs no frozen binary: Debian's static busybox stands in for the executable."""

from __future__ import annotations

import gzip
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tests.helpers import REPO

BUILDER = REPO / "testing" / "image" / "build_oci_image.py"
BUSYBOX = next((Path(p) for p in ("/bin/busybox", "/usr/bin/busybox") if Path(p).is_file()), None)


def _build(out: Path, binary: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-I", "-S", str(BUILDER), "--bare", "--binary", str(binary)),
            *("--binary-path", "/busybox", "--entrypoint", '["/busybox"]', "--user", "65535:65535"),
            *("--ref", "hearth.dev/bare-test:1", "--out", str(out), *extra),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def _read(out: Path) -> tuple[dict[str, object], tarfile.TarFile]:
    with tarfile.open(out) as layout:
        files = {m.name: layout.extractfile(m).read() for m in layout.getmembers() if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(files["index.json"])
    digest = index["manifests"][0]["digest"].removeprefix("sha256:")
    manifest = json.loads(files[f"blobs/sha256/{digest}"])
    config = json.loads(files["blobs/sha256/" + manifest["config"]["digest"].removeprefix("sha256:")])
    layer = gzip.decompress(files["blobs/sha256/" + manifest["layers"][0]["digest"].removeprefix("sha256:")])
    return config, tarfile.open(fileobj=io.BytesIO(layer))


@pytest.fixture
def busybox() -> Path:
    if BUSYBOX is None:
        pytest.fail("busybox-static is missing (scripts/system-deps.sh installs it)")
    return BUSYBOX


def test_a_bare_image_holds_only_the_static_executable(busybox: Path, tmp_path: Path) -> None:
    out = tmp_path / "bare.tar"
    result = _build(out, busybox)
    assert result.returncode == 0, result.stderr
    assert "0 host libraries" in result.stdout
    config, layer = _read(out)
    members = layer.getmembers()
    assert [(m.name, m.mode, m.uid, m.mtime) for m in members] == [("busybox", 0o755, 0, 0)]
    container = config["config"]
    assert isinstance(container, dict)
    assert container["Entrypoint"] == ["/busybox"]
    assert container["User"] == "65535:65535"
    assert container["WorkingDir"] == "/", "a bare image has no /tmp"
    assert [entry.split("=")[0] for entry in container["Env"]] == ["PATH"]
    again = tmp_path / "again.tar"
    assert _build(again, busybox).returncode == 0
    assert again.read_bytes() == out.read_bytes(), "reproducible"

    if os.geteuid() == 0:  # the executable runs alone in the root filesystem
        root = tmp_path / "rootfs"
        layer.extractall(root, filter="fully_trusted")
        chroot = shutil.which("chroot", path="/usr/sbin:/usr/bin:/sbin:/bin")
        assert chroot
        ran = subprocess.run(
            [chroot, "--userspec=65535:65535", str(root), "/busybox", "echo", "alone"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert (ran.returncode, ran.stdout) == (0, "alone\n"), ran.stderr


def test_a_dynamically_linked_executable_is_refused_by_name(tmp_path: Path) -> None:
    dynamic = Path(os.path.realpath(sys.executable))
    result = _build(tmp_path / "x.tar", dynamic)
    assert result.returncode == 1
    assert f"{dynamic} is dynamically linked" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "x.tar").exists()
