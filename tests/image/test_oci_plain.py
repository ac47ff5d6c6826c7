"""``build_oci_image.py --plain``: a dynamically linked executable that is not a PyInstaller onefile (the
e2e's llama-server image is built this way), with the host libraries it links and no shell. A host
program (coreutils' ``ls``) stands in for the engine, so this needs no compiler or frozen binary."""

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
HOST_PROGRAM = Path(shutil.which("ls", path="/usr/bin:/bin") or "/bin/ls").resolve()


def _build(out: Path, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-I", "-S", str(BUILDER), "--plain", "--binary", str(HOST_PROGRAM)),
            *("--binary-path", "/usr/local/bin/engine", "--entrypoint", '["/usr/local/bin/engine"]'),
            *("--ref", "hearth.dev/plain-test:1", "--out", str(out), *extra),
        ],
        capture_output=True,
        text=True,
        check=False,
    )


def _layer(out: Path) -> tarfile.TarFile:
    with tarfile.open(out) as layout:
        files = {m.name: layout.extractfile(m).read() for m in layout.getmembers() if m.isfile()}  # type: ignore[union-attr]
    index = json.loads(files["index.json"])
    manifest = json.loads(files["blobs/sha256/" + index["manifests"][0]["digest"].removeprefix("sha256:")])
    layer = gzip.decompress(files["blobs/sha256/" + manifest["layers"][0]["digest"].removeprefix("sha256:")])
    return tarfile.open(fileobj=io.BytesIO(layer))


def test_a_plain_image_holds_the_executable_and_its_libraries_but_no_shell(tmp_path: Path) -> None:
    out = tmp_path / "plain.tar"
    built = _build(out)
    assert built.returncode == 0, built.stderr
    names = set(_layer(out).getnames())
    assert "usr/local/bin/engine" in names
    assert any(os.path.basename(name).startswith("libc.so.") for name in names), sorted(names)
    assert not any(name in names for name in ("bin/busybox", "bin/sh")), "a plain image has no shell"
    assert {"etc/passwd", "tmp"} <= names


def test_a_plain_image_runs_under_chroot(tmp_path: Path) -> None:
    if os.geteuid() != 0:
        pytest.skip("running the image's root filesystem needs chroot, which needs root")
    out = tmp_path / "plain.tar"
    assert _build(out).returncode == 0
    root = tmp_path / "root"
    _layer(out).extractall(root, filter="tar")
    ran = subprocess.run(
        ["chroot", str(root), "/usr/local/bin/engine", "/usr/local/bin"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert ran.returncode == 0, ran.stderr
    assert ran.stdout.split() == ["engine"]


def test_bare_and_plain_exclude_each_other(tmp_path: Path) -> None:
    built = _build(tmp_path / "x.tar", "--bare")
    assert built.returncode == 1
    assert "--bare and --plain exclude each other" in built.stderr
