#!/usr/bin/env python3
"""Build an OCI image-layout tarball from the frozen ``dist/hearth``, without Docker or a registry.

Standard library only (test infrastructure, not product): run it with any ``python3``.

The image has ONE layer, a minimal root filesystem:

* ``/usr/local/bin/hearth`` (0755), the PyInstaller onefile executable;
* every host shared library it needs at run time. PyInstaller bundles most libraries, but never the
  "system" ones (the dynamic loader, libc, libm, libpthread, libdl, librt, ...), and the onefile bootloader
  itself links against the host's libz. They are found completely and deterministically: the onefile
  archive is read (a self-contained reader of PyInstaller's CArchive format, see :func:`read_carchive`;
  ``--python VENV/bin/python`` uses PyInstaller's own ``CArchiveReader`` instead) and extracted to a
  temporary directory, ``ldd`` runs on the bootloader and on every extracted ELF file (with
  ``LD_LIBRARY_PATH`` pointing at the extraction directory, as the bootloader sets it for the Python
  process), and each resolved library outside that directory is copied to the same path in the image,
  with every symlink on the way (``/lib -> usr/lib`` on merged-/usr hosts,
  ``ld-linux-x86-64.so.2 -> ...``) recreated as a symlink;
* the libraries glibc only ever ``dlopen``\\s (invisible to ``ldd``): ``libgcc_s.so.1`` (unwinding for
  ``pthread_exit``) unless PyInstaller bundled it, and ``libnss_files``/``libnss_dns`` when the host has them
  (glibc < 2.34 needs them for ``hosts: files dns``);
* ``/bin/busybox`` from Debian's ``busybox-static`` (a static binary) with a symlink in ``/bin`` for every
  applet, so Kubernetes ``preStop`` hooks such as ``/bin/sh -c "sleep 5"`` work;
* ``/tmp`` (1777; the onefile bootloader unpacks itself into ``$TMPDIR``), ``/etc/passwd`` and
  ``/etc/group`` with ``root`` and ``nonroot`` (65532, home ``/tmp``), ``/etc/nsswitch.conf``,
  ``/etc/hosts`` and empty ``/proc /sys /dev /run /root``.

The output is reproducible: same inputs, same bytes (sorted tar entries, uid/gid 0, no user/group names,
mtime ``SOURCE_DATE_EPOCH`` or 0, gzip header mtime 0, canonical JSON). Import it with
``ctr -n k8s.io images import OUT.tar`` and run it with ``imagePullPolicy: Never``.

``--plain`` packs a dynamically linked executable that is not a PyInstaller onefile (e.g. llama.cpp's
``llama-server``): the binary, the host libraries ``ldd`` finds for it (plus the ``dlopen``-only ones
above), ``/etc`` and ``/tmp`` as above, and no busybox: a shell-less image, as distroless and most engine
images are (so nothing Hearth renders for such a backend may rely on a shell).

``--bare`` packs a static executable alone instead (e.g. the test bed's pod-sandbox ``pause`` program):
the layer holds only that file, at ``--binary-path``; no libraries, busybox, ``/etc`` or ``/tmp``, and the
container runs in ``/`` with only ``PATH`` set (plus ``--env``).

Usage::

    python3 testing/image/build_oci_image.py --binary dist/hearth --ref hearth.dev/hearth:0.1.0 \\
        --out dist/images/hearth.tar [--entrypoint '["/usr/local/bin/hearth","stub"]'] \\
        [--cmd '["--port","8000"]'] [--port 8000/tcp ...] [--label KEY=VALUE ...] [--env KEY=VALUE ...]
    python3 testing/image/build_oci_image.py --bare --binary pause --binary-path /pause \\
        --entrypoint '["/pause"]' --user 65535:65535 --ref hearth.dev/pause:1 --out pause.tar
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime
import gzip
import hashlib
import io
import json
import os
import platform
import stat
import struct
import subprocess
import sys
import tarfile
import tempfile
import zlib
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import BinaryIO

BINARY_PATH = "/usr/local/bin/hearth"
DEFAULT_ENTRYPOINT = (BINARY_PATH,)
DEFAULT_USER = "65532:65532"
DEFAULT_PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
BUSYBOX_CANDIDATES = ("/bin/busybox", "/usr/bin/busybox")
BUSYBOX_PACKAGE = "busybox-static"
APT_HINT = f"apt-get install -y --no-install-recommends {BUSYBOX_PACKAGE}"

MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"

# uname -m -> OCI architecture, and the ELF e_machine the binary must have.
ARCHITECTURES = {
    "x86_64": ("amd64", 62),
    "amd64": ("amd64", 62),
    "aarch64": ("arm64", 183),
    "arm64": ("arm64", 183),
}
# Libraries glibc dlopen()s by soname at run time; ldd cannot see them.
DLOPEN_UNLESS_BUNDLED = ("libgcc_s.so.1",)
DLOPEN_IF_PRESENT = ("libnss_files.so.2", "libnss_dns.so.2")
GZIP_LEVEL = 6

PASSWD = "root:x:0:0:root:/root:/bin/sh\nnonroot:x:65532:65532:nonroot:/tmp:/bin/false\n"
GROUP = "root:x:0:\nnonroot:x:65532:\n"
NSSWITCH = "passwd: files\ngroup: files\nshadow: files\nhosts: files dns\nnetworks: files\n"
HOSTS = "127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n"


class BuildError(Exception):
    """An expected failure (missing input or tool): the CLI prints it without a traceback."""


# --------------------------------------------------------------------------------------------- ELF


@dataclasses.dataclass(frozen=True)
class ElfInfo:
    machine: int
    interpreter: str | None  # PT_INTERP; None for static executables and most shared objects


def elf_info(data: bytes) -> ElfInfo | None:
    """The ELF header facts we need, or None when ``data`` is not an ELF file."""
    if len(data) < 64 or data[:4] != b"\x7fELF":
        return None
    is64 = data[4] == 2
    end = "<" if data[5] == 1 else ">"
    machine = struct.unpack_from(end + "H", data, 18)[0]
    if is64:
        phoff, phentsize, phnum = (
            struct.unpack_from(end + "Q", data, 32)[0],
            *struct.unpack_from(end + "HH", data, 54),
        )
    else:
        phoff, phentsize, phnum = (
            struct.unpack_from(end + "I", data, 28)[0],
            *struct.unpack_from(end + "HH", data, 42),
        )
    interpreter = None
    for index in range(phnum):
        at = phoff + index * phentsize
        if at + phentsize > len(data):
            break
        if struct.unpack_from(end + "I", data, at)[0] == 3:  # PT_INTERP
            offset, size = struct.unpack_from(end + ("Q16xQ" if is64 else "I8xI"), data, at + 4 + is64 * 4)
            interpreter = data[offset : offset + size].rstrip(b"\0").decode(errors="replace")
    return ElfInfo(machine=machine, interpreter=interpreter)


def read_head(path: str | os.PathLike[str], size: int = 1 << 16) -> bytes:
    with open(path, "rb") as handle:
        return handle.read(size)


# ------------------------------------------------------------------------------ PyInstaller archive

_COOKIE_MAGIC = b"MEI\014\013\012\013\016"
_COOKIE = struct.Struct("!8sIIII64s")
_TOC_ENTRY = struct.Struct("!IIIIBc")
# Typecodes (PyInstaller.archive.readers): b binary, x data, n symlink, d dependency (multipackage).
_EXTRACTED_TYPECODES = {"b", "x", "n"}


@dataclasses.dataclass(frozen=True)
class ArchiveEntry:
    name: str
    typecode: str
    data: bytes  # decompressed; for a symlink ("n"), the target


def read_carchive(binary: Path) -> list[ArchiveEntry]:
    """Read the CArchive (PKG) a PyInstaller onefile executable carries, as ``CArchiveReader`` does.

    The cookie (magic, archive length, TOC offset and length, Python version, libpython name) ends the
    archive; the archive is appended to the bootloader or stored in an ELF section, so it is found by
    scanning for the LAST magic in the file. Only binaries, data files and symlinks are returned.
    """
    blob = binary.read_bytes()
    cookie_at = blob.rfind(_COOKIE_MAGIC)
    if cookie_at < 0 or cookie_at + _COOKIE.size > len(blob):
        raise BuildError(f"{binary} is not a PyInstaller onefile executable (no archive cookie found)")
    _magic, length, toc_offset, toc_length, _pyvers, pylib = _COOKIE.unpack_from(blob, cookie_at)
    start = cookie_at + _COOKIE.size - length
    if start < 0 or not pylib.rstrip(b"\0"):
        raise BuildError(f"{binary}: corrupt PyInstaller archive cookie")
    toc = blob[start + toc_offset : start + toc_offset + toc_length]
    entries: list[ArchiveEntry] = []
    pos = 0
    while pos < len(toc):
        entry_length, offset, data_length, _full_length, compressed, code = _TOC_ENTRY.unpack_from(toc, pos)
        name = toc[pos + _TOC_ENTRY.size : pos + entry_length].rstrip(b"\0").decode()
        pos += entry_length
        if entry_length <= _TOC_ENTRY.size:
            raise BuildError(f"{binary}: corrupt PyInstaller archive table of contents")
        typecode = code.decode("ascii")
        if typecode == "d":
            raise BuildError(f"{binary}: multipackage PyInstaller archives (typecode 'd') are not supported")
        if typecode not in _EXTRACTED_TYPECODES:
            continue
        data = blob[start + offset : start + offset + data_length]
        if compressed:
            data = zlib.decompress(data)
        if typecode == "n":
            data = data.rstrip(b"\0")
        entries.append(ArchiveEntry(name=name, typecode=typecode, data=data))
    return entries


_PYINSTALLER_EXTRACT = r"""
import json, sys, zlib
from PyInstaller.archive.readers import CArchiveReader
reader = CArchiveReader(sys.argv[1])
out = []
for name, (_off, _len, _full, _compressed, code) in reader.toc.items():
    if code == "d":
        sys.exit("multipackage PyInstaller archives (typecode 'd') are not supported")
    if code in ("b", "x", "n"):
        data = reader.extract(name)
        out.append([name, code, (data.rstrip(b"\0") if code == "n" else data).hex()])
json.dump(out, sys.stdout)
"""


def read_carchive_with_pyinstaller(binary: Path, python: str) -> list[ArchiveEntry]:
    """Same as :func:`read_carchive`, through PyInstaller's own reader in ``python`` (e.g. a venv's)."""
    try:
        result = subprocess.run(
            [python, "-c", _PYINSTALLER_EXTRACT, str(binary)], capture_output=True, text=True, check=False
        )
    except OSError as error:
        raise BuildError(f"cannot run --python {python}: {error}") from None
    if result.returncode != 0:
        raise BuildError(f"reading {binary} with PyInstaller ({python}) failed:\n{result.stderr.strip()}")
    return [ArchiveEntry(name, code, bytes.fromhex(data)) for name, code, data in json.loads(result.stdout)]


def extract_archive(entries: Iterable[ArchiveEntry], dest: Path) -> list[Path]:
    """Write the entries under ``dest``; return the ELF files among them."""
    elves: list[Path] = []
    for entry in entries:
        parts = Path(entry.name).parts
        if not parts or Path(entry.name).is_absolute() or ".." in parts:
            raise BuildError(f"refusing unsafe archive member name {entry.name!r}")
        path = dest.joinpath(*parts)
        path.parent.mkdir(parents=True, exist_ok=True)
        if entry.typecode == "n":
            os.symlink(entry.data.decode(), path)
            continue
        if entry.data[:4] == b"\x7fELF":  # other data files cannot load libraries
            path.write_bytes(entry.data)
            path.chmod(0o755)
            elves.append(path)
    return sorted(elves)


# ---------------------------------------------------------------------------------------------- ldd


def ldd(path: Path, *, library_path: Path | None) -> list[str]:
    """Absolute paths of the libraries ``path`` loads (ldd's transitive closure, loader included)."""
    env = {key: value for key, value in os.environ.items() if key not in ("LD_LIBRARY_PATH", "LD_PRELOAD")}
    env["LC_ALL"] = "C"
    if library_path is not None:
        env["LD_LIBRARY_PATH"] = str(library_path)
    try:
        result = subprocess.run(["ldd", str(path)], capture_output=True, text=True, env=env, check=False)
    except FileNotFoundError:
        raise BuildError("ldd not found (Debian package libc-bin)") from None
    output = result.stdout + result.stderr
    if result.returncode != 0:
        if "not a dynamic executable" in output:
            return []
        raise BuildError(f"ldd {path} failed (exit {result.returncode}):\n{output.strip()}")
    resolved: list[str] = []
    missing: list[str] = []
    for raw in result.stdout.splitlines():
        line = raw.strip()
        if "=>" in line:
            soname, _, target = line.partition("=>")
            target = target.strip()
            if target.startswith("not found"):
                missing.append(soname.strip())
                continue
            candidate = target.split(" (", 1)[0].strip()
        else:
            candidate = line.split(" (", 1)[0].strip()
        if candidate.startswith("/"):
            resolved.append(candidate)
    if missing:
        raise BuildError(f"ldd {path}: libraries not found on this host: {', '.join(sorted(set(missing)))}")
    return resolved


# ------------------------------------------------------------------------------------------- rootfs


@dataclasses.dataclass
class Node:
    kind: str  # "dir", "file" or "symlink"
    mode: int = 0o755
    source: str | None = None  # host file to copy (kind "file")
    data: bytes | None = None  # inline contents (kind "file")
    target: str = ""  # kind "symlink"


class RootFS:
    """The image's file tree, keyed by path relative to ``/`` ("usr/local/bin/hearth")."""

    def __init__(self) -> None:
        self.nodes: dict[str, Node] = {}
        self.host_files: list[str] = []  # host paths copied in (libraries), in order found

    def _parents(self, rel: str) -> None:
        parent = os.path.dirname(rel)
        if not parent:
            return
        node = self.nodes.get(parent)
        if node is None:
            self._parents(parent)
            self.nodes[parent] = Node("dir")
        elif node.kind != "dir":
            raise BuildError(f"/{rel}: parent /{parent} is a {node.kind} in the image")

    def _put(self, path: str, node: Node) -> None:
        rel = path.strip("/")
        if not rel:
            raise BuildError("cannot replace / in the image")
        existing = self.nodes.get(rel)
        if existing is not None:
            if existing == node:
                return
            if not (existing.kind == "dir" and node.kind == "dir"):
                raise BuildError(f"/{rel} added twice with different contents ({existing.kind}, {node.kind})")
        self._parents(rel)
        self.nodes[rel] = node

    def add_dir(self, path: str, mode: int = 0o755) -> None:
        self._put(path, Node("dir", mode=mode))

    def add_file(
        self, path: str, *, source: str | None = None, data: bytes | None = None, mode: int = 0o644
    ) -> None:
        self._put(path, Node("file", mode=mode, source=source, data=data))

    def add_symlink(self, path: str, target: str) -> None:
        self._put(path, Node("symlink", mode=0o777, target=target))

    def add_host_path(self, path: str, _depth: int = 0) -> None:
        """Copy host ``path`` to the same path, recreating every symlink met on the way to the real file."""
        if _depth > 40:
            raise BuildError(f"too many levels of symbolic links resolving {path}")
        parts = Path(os.path.normpath(path)).parts[1:]
        current = "/"
        for index, part in enumerate(parts):
            step = os.path.join(current, part)
            if os.path.islink(step):
                target = os.readlink(step)
                self.add_symlink(step, target)
                resolved = os.path.normpath(os.path.join(current, target))  # `current` has no symlinks
                self.add_host_path(os.path.join(resolved, *parts[index + 1 :]), _depth + 1)
                return
            current = step
        if not os.path.isfile(current):
            raise BuildError(f"{current} (needed by the binary) is not a regular file on this host")
        mode = 0o755 if os.stat(current).st_mode & stat.S_IXUSR else 0o644
        if current.strip("/") not in self.nodes:
            self.host_files.append(current)
        self.add_file(current, source=current, mode=mode)


# -------------------------------------------------------------------------------------- tar / blobs


class _HashingWriter:
    """A write-only file object that hashes and counts what passes through to ``sink``."""

    def __init__(self, sink: BinaryIO) -> None:
        self.sink = sink
        self.sha256 = hashlib.sha256()
        self.size = 0

    def write(self, data: bytes) -> int:
        self.sha256.update(data)
        self.size += len(data)
        self.sink.write(data)
        return len(data)

    def tell(self) -> int:
        return self.size

    def flush(self) -> None:
        self.sink.flush()


def _tarinfo(
    name: str, *, mtime: int, mode: int, kind: bytes, size: int = 0, linkname: str = ""
) -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type = kind
    info.mode = mode
    info.size = size
    info.linkname = linkname
    info.mtime = mtime
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    return info


def write_layer(rootfs: RootFS, dest: BinaryIO, *, mtime: int) -> tuple[str, str, int]:
    """Write the gzipped layer to ``dest``; return (diff_id, digest, compressed size)."""
    compressed = _HashingWriter(dest)
    with gzip.GzipFile(filename="", mode="wb", compresslevel=GZIP_LEVEL, fileobj=compressed, mtime=0) as gz:
        plain = _HashingWriter(gz)  # type: ignore[arg-type]
        with tarfile.open(fileobj=plain, mode="w", format=tarfile.PAX_FORMAT) as tar:  # type: ignore[call-overload]
            for rel in sorted(rootfs.nodes):
                node = rootfs.nodes[rel]
                if node.kind == "dir":
                    tar.addfile(_tarinfo(rel, mtime=mtime, mode=node.mode, kind=tarfile.DIRTYPE))
                elif node.kind == "symlink":
                    tar.addfile(
                        _tarinfo(rel, mtime=mtime, mode=0o777, kind=tarfile.SYMTYPE, linkname=node.target)
                    )
                elif node.data is not None:
                    info = _tarinfo(
                        rel, mtime=mtime, mode=node.mode, kind=tarfile.REGTYPE, size=len(node.data)
                    )
                    tar.addfile(info, io.BytesIO(node.data))
                else:
                    assert node.source is not None
                    with open(node.source, "rb") as handle:
                        size = os.fstat(handle.fileno()).st_size
                        info = _tarinfo(rel, mtime=mtime, mode=node.mode, kind=tarfile.REGTYPE, size=size)
                        tar.addfile(info, handle)
    return f"sha256:{plain.sha256.hexdigest()}", f"sha256:{compressed.sha256.hexdigest()}", compressed.size


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def descriptor(media_type: str, blob: bytes) -> dict[str, object]:
    return {
        "mediaType": media_type,
        "digest": f"sha256:{hashlib.sha256(blob).hexdigest()}",
        "size": len(blob),
    }


# -------------------------------------------------------------------------------------------- build


@dataclasses.dataclass(frozen=True)
class BuildResult:
    ref: str
    out: Path
    digest: str  # the manifest digest, as containerd reports it
    config_digest: str
    layer_digest: str
    diff_id: str
    size: int  # bytes of the output tarball
    libraries: tuple[str, ...]  # host libraries copied into the image


def split_ref(ref: str) -> tuple[str, str]:
    """``registry/repo:tag`` -> (repository, tag); the tag defaults to ``latest``."""
    if "@" in ref:
        raise BuildError(f"--ref {ref!r}: digest references cannot name a new image")
    name, sep, tag = ref.rpartition(":")
    if not sep or "/" in tag:
        return ref, "latest"
    if not name or not tag:
        raise BuildError(f"--ref {ref!r} is not NAME[:TAG]")
    return name, tag


def oci_architecture(machine: str | None = None) -> tuple[str, int]:
    machine = machine or platform.machine()
    try:
        return ARCHITECTURES[machine]
    except KeyError:
        raise BuildError(
            f"unsupported machine {machine!r} (known: {', '.join(sorted(ARCHITECTURES))})"
        ) from None


def find_busybox(path: str | None) -> Path:
    candidates = [path] if path else list(BUSYBOX_CANDIDATES)
    for candidate in candidates:
        if candidate and os.path.isfile(candidate):
            info = elf_info(read_head(candidate))
            if info is None:
                raise BuildError(f"{candidate} is not an ELF executable")
            if info.interpreter is not None:
                raise BuildError(
                    f"{candidate} is dynamically linked (Debian's 'busybox' package?); the image needs "
                    f"the static one from '{BUSYBOX_PACKAGE}': {APT_HINT}"
                )
            return Path(candidate)
    where = path or " or ".join(BUSYBOX_CANDIDATES)
    raise BuildError(
        f"busybox not found at {where}: install Debian's '{BUSYBOX_PACKAGE}' package: {APT_HINT}"
    )


def busybox_applets(busybox: Path) -> list[str]:
    result = subprocess.run([str(busybox), "--list"], capture_output=True, text=True, check=False)
    applets = sorted({line.strip() for line in result.stdout.splitlines() if line.strip()})
    if result.returncode != 0 or "sh" not in applets or "sleep" not in applets:
        raise BuildError(
            f"{busybox} --list failed or lacks sh/sleep (exit {result.returncode}): {result.stderr}"
        )
    return [applet for applet in applets if "/" not in applet and applet != "busybox"]


def find_host_libraries(binary: Path, *, python: str | None = None, plain: bool = False) -> list[str]:
    """Host paths of every shared library the onefile binary and its extracted contents load (sorted);
    *plain*: of a binary that is not a onefile (only its own ``ldd`` libraries and the dlopen-only ones)."""
    if plain:
        entries: list[ArchiveEntry] = []
    elif python:
        entries = read_carchive_with_pyinstaller(binary, python)
    else:
        entries = read_carchive(binary)
    bundled = {os.path.basename(entry.name) for entry in entries}
    found: set[str] = set()
    with tempfile.TemporaryDirectory(prefix="hearth-oci-") as temp:
        root = Path(temp).resolve()
        elves = extract_archive(entries, root)
        # The bootloader starts with the caller's environment; the Python process it spawns gets
        # LD_LIBRARY_PATH=<extraction dir>, so bundled copies win there.
        found.update(ldd(binary, library_path=None))
        for elf in elves:
            found.update(
                lib
                for lib in ldd(elf, library_path=root)
                if not Path(os.path.realpath(lib)).is_relative_to(root)
            )
        libc_dirs = sorted(
            {os.path.dirname(lib) for lib in found if os.path.basename(lib).startswith("libc.so.")}
        )
        extras = [name for name in DLOPEN_UNLESS_BUNDLED if name not in bundled] + list(DLOPEN_IF_PRESENT)
        for name in extras:
            for directory in libc_dirs:
                candidate = os.path.join(directory, name)
                if os.path.exists(candidate):
                    found.add(candidate)
                    found.update(ldd(Path(candidate), library_path=None))
                    break
    return sorted(found)


def build_rootfs(
    binary: Path,
    busybox: Path | None,
    libraries: Sequence[str],
    *,
    extra_files: dict[str, bytes] | None = None,
    binary_path: str = BINARY_PATH,
) -> RootFS:
    rootfs = RootFS()
    for directory in ("bin", "dev", "etc", "proc", "run", "sys", "usr/local/bin"):
        rootfs.add_dir(directory)
    rootfs.add_dir("root", 0o700)
    rootfs.add_dir("tmp", 0o1777)
    rootfs.add_file(binary_path, source=str(binary), mode=0o755)
    if busybox is not None:
        rootfs.add_file("/bin/busybox", source=str(busybox), mode=0o755)
        for applet in busybox_applets(busybox):
            rootfs.add_symlink(f"/bin/{applet}", "busybox")
    for path, text in (
        ("/etc/passwd", PASSWD),
        ("/etc/group", GROUP),
        ("/etc/nsswitch.conf", NSSWITCH),
        ("/etc/hosts", HOSTS),
    ):
        rootfs.add_file(path, data=text.encode())
    for path, data in (extra_files or {}).items():
        rootfs.add_file(path, data=data)
    for library in libraries:
        rootfs.add_host_path(library)
    return rootfs


def bare_rootfs(binary: Path, *, path: str) -> RootFS:
    """A root filesystem of one static executable (and the directories above it)."""
    rootfs = RootFS()
    rootfs.add_file(path, source=str(binary), mode=0o755)
    return rootfs


def check_binary(binary: Path, *, bare: bool, binary_path: str) -> str:
    """Refuse a binary this host's image cannot run; returns the OCI architecture."""
    if not binary.is_file():
        raise BuildError(f"binary {binary} not found: build it with `bash scripts/build-binary.sh`")
    architecture, machine = oci_architecture()
    info = elf_info(read_head(binary))
    if info is None:
        raise BuildError(f"{binary} is not an ELF executable")
    if info.machine != machine:
        raise BuildError(
            f"{binary} is for ELF machine {info.machine}, this host is {architecture} ({machine})"
        )
    if bare and info.interpreter is not None:
        raise BuildError(f"{binary} is dynamically linked ({info.interpreter}); --bare needs a static one")
    if not binary_path.startswith("/") or binary_path.rstrip("/") == "":
        raise BuildError(f"--binary-path {binary_path!r} must be an absolute file path")
    return architecture


def build_image(
    *,
    binary: Path | str,
    ref: str,
    out: Path | str,
    entrypoint: Sequence[str] = DEFAULT_ENTRYPOINT,
    cmd: Sequence[str] | None = None,
    ports: Sequence[str] = (),
    labels: dict[str, str] | None = None,
    env: dict[str, str] | None = None,
    user: str = DEFAULT_USER,
    busybox: str | None = None,
    python: str | None = None,
    source_date_epoch: int | None = None,
    bare: bool = False,
    plain: bool = False,
    binary_path: str = BINARY_PATH,
    symlinks: dict[str, str] | None = None,
) -> BuildResult:
    """Build the image; see the module docstring. Raises :class:`BuildError` on expected failures."""
    binary = Path(binary)
    out = Path(out)
    repository, tag = split_ref(ref)
    if bare and plain:
        raise BuildError("--bare and --plain exclude each other")
    architecture = check_binary(binary, bare=bare, binary_path=binary_path)
    for port in ports:
        number, _, protocol = port.partition("/")
        if not number.isdigit() or protocol not in ("tcp", "udp", "sctp"):
            raise BuildError(f"--port {port!r} is not PORT/tcp, PORT/udp or PORT/sctp")
    if source_date_epoch is None:
        source_date_epoch = int(os.environ.get("SOURCE_DATE_EPOCH") or 0)
    created = datetime.datetime.fromtimestamp(source_date_epoch, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")

    if bare:
        rootfs = bare_rootfs(binary, path=binary_path)
    else:
        libraries = find_host_libraries(binary, python=python, plain=plain)
        shell = None if plain else find_busybox(busybox)
        rootfs = build_rootfs(binary, shell, libraries, binary_path=binary_path)
    for path, target in (symlinks or {}).items():
        rootfs.add_symlink(path, target)

    out.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryFile(dir=out.parent) as layer_file:
        diff_id, layer_digest, layer_size = write_layer(rootfs, layer_file, mtime=source_date_epoch)

        # A bare image has no /tmp to work in or unpack into.
        base_env = {"PATH": DEFAULT_PATH} if bare else {"PATH": DEFAULT_PATH, "TMPDIR": "/tmp"}
        environment = {**base_env, **(env or {})}
        all_labels = {
            "org.opencontainers.image.title": repository.rsplit("/", 1)[-1],
            "org.opencontainers.image.version": tag,
            "org.opencontainers.image.created": created,
            "org.opencontainers.image.ref.name": tag,
            **(labels or {}),
        }
        container_config: dict[str, object] = {
            "User": user,
            "Entrypoint": list(entrypoint),
            "Env": [f"{key}={value}" for key, value in environment.items()],
            "WorkingDir": "/" if bare else "/tmp",
            "Labels": all_labels,
        }
        if cmd:
            container_config["Cmd"] = list(cmd)
        if ports:
            container_config["ExposedPorts"] = {port: {} for port in ports}
        config = canonical_json(
            {
                "architecture": architecture,
                "os": "linux",
                "created": created,
                "config": container_config,
                "rootfs": {"type": "layers", "diff_ids": [diff_id]},
                "history": [{"created": created, "created_by": "testing/image/build_oci_image.py"}],
            }
        )
        config_descriptor = descriptor(MEDIA_CONFIG, config)
        layer_descriptor = {"mediaType": MEDIA_LAYER, "digest": layer_digest, "size": layer_size}
        manifest = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_MANIFEST,
                "config": config_descriptor,
                "layers": [layer_descriptor],
                "annotations": {"org.opencontainers.image.created": created},
            }
        )
        manifest_descriptor = descriptor(MEDIA_MANIFEST, manifest)
        index = canonical_json(
            {
                "schemaVersion": 2,
                "mediaType": MEDIA_INDEX,
                "manifests": [
                    {
                        **manifest_descriptor,
                        "platform": {"architecture": architecture, "os": "linux"},
                        "annotations": {
                            "io.containerd.image.name": ref,
                            "org.opencontainers.image.ref.name": tag,
                        },
                    }
                ],
            }
        )

        blobs: dict[str, tuple[int, BinaryIO]] = {
            str(config_descriptor["digest"]): (len(config), io.BytesIO(config)),
            str(manifest_descriptor["digest"]): (len(manifest), io.BytesIO(manifest)),
            layer_digest: (layer_size, layer_file),
        }
        partial = out.with_name(out.name + ".partial")
        with tarfile.open(partial, mode="w", format=tarfile.PAX_FORMAT) as layout:
            layout.addfile(_tarinfo("blobs", mtime=source_date_epoch, mode=0o755, kind=tarfile.DIRTYPE))
            layout.addfile(
                _tarinfo("blobs/sha256", mtime=source_date_epoch, mode=0o755, kind=tarfile.DIRTYPE)
            )
            for digest in sorted(blobs):
                size, handle = blobs[digest]
                handle.seek(0)
                name = "blobs/sha256/" + digest.removeprefix("sha256:")
                layout.addfile(
                    _tarinfo(name, mtime=source_date_epoch, mode=0o644, kind=tarfile.REGTYPE, size=size),
                    handle,
                )
            for name, data in (
                ("index.json", index),
                ("oci-layout", canonical_json({"imageLayoutVersion": "1.0.0"})),
            ):
                member = _tarinfo(
                    name, mtime=source_date_epoch, mode=0o644, kind=tarfile.REGTYPE, size=len(data)
                )
                layout.addfile(member, io.BytesIO(data))
        os.replace(partial, out)

    return BuildResult(
        ref=ref,
        out=out,
        digest=str(manifest_descriptor["digest"]),
        config_digest=str(config_descriptor["digest"]),
        layer_digest=layer_digest,
        diff_id=diff_id,
        size=out.stat().st_size,
        libraries=tuple(rootfs.host_files),
    )


# ---------------------------------------------------------------------------------------------- CLI


def _json_array(flag: str, text: str) -> list[str]:
    try:
        value = json.loads(text)
    except json.JSONDecodeError:
        value = None
    if not isinstance(value, list) or not all(isinstance(item, str) for item in value):
        raise BuildError(f'{flag} must be a JSON array of strings, e.g. \'["/usr/local/bin/hearth","stub"]\'')
    return value


def _key_values(flag: str, items: Sequence[str]) -> dict[str, str]:
    result: dict[str, str] = {}
    for item in items:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise BuildError(f"{flag} {item!r} is not KEY=VALUE")
        result[key] = value
    return result


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="build_oci_image.py",
        description="Build a reproducible OCI image-layout tarball (for `ctr -n k8s.io images import`) "
        "from the PyInstaller onefile dist/hearth, with the host libraries it needs and busybox-static, "
        "without Docker.",
        epilog=f"Needs ldd (libc-bin) and Debian's {BUSYBOX_PACKAGE}: {APT_HINT}. "
        "SOURCE_DATE_EPOCH, when set, becomes every file's mtime and the image's creation time (default 0).",
    )
    parser.add_argument("--binary", required=True, type=Path, help="the frozen executable (dist/hearth)")
    parser.add_argument("--ref", required=True, help="image name, e.g. hearth.dev/hearth:0.1.0")
    parser.add_argument("--out", required=True, type=Path, help="output tarball, e.g. dist/images/hearth.tar")
    parser.add_argument(
        "--entrypoint",
        default=json.dumps(list(DEFAULT_ENTRYPOINT)),
        help='JSON array, e.g. \'["/usr/local/bin/hearth","stub"]\' (default: %(default)s)',
    )
    parser.add_argument(
        "--cmd", help="JSON array of default arguments, e.g. '[\"operator\"]' (default: none)"
    )
    parser.add_argument(
        "--port",
        action="append",
        default=[],
        metavar="PORT/PROTO",
        help="exposed port, e.g. 8000/tcp (repeatable)",
    )
    parser.add_argument(
        "--label", action="append", default=[], metavar="KEY=VALUE", help="image label (repeatable)"
    )
    parser.add_argument(
        "--env",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="extra environment variable (repeatable)",
    )
    parser.add_argument(
        "--symlink",
        action="append",
        default=[],
        metavar="PATH=TARGET",
        help="extra symbolic link in the image, e.g. /usr/local/bin/python3=hearth (repeatable)",
    )
    parser.add_argument("--user", default=DEFAULT_USER, help="container user (default: %(default)s)")
    parser.add_argument(
        "--busybox",
        help=f"static busybox to install as /bin/busybox (default: {' or '.join(BUSYBOX_CANDIDATES)})",
    )
    parser.add_argument(
        "--bare",
        action="store_true",
        help="pack the static --binary alone (no libraries, busybox, /etc or /tmp), e.g. a pause program",
    )
    parser.add_argument(
        "--plain",
        action="store_true",
        help="the --binary is a dynamically linked executable, not a PyInstaller onefile (e.g. "
        "llama-server): pack it with its ldd libraries and no busybox (a shell-less image)",
    )
    parser.add_argument(
        "--binary-path",
        default=BINARY_PATH,
        help="where the binary goes in the image (default: %(default)s)",
    )
    parser.add_argument(
        "--python",
        help="read the onefile archive with PyInstaller's CArchiveReader under this interpreter (e.g. "
        ".venv/bin/python) instead of the built-in reader of the same format",
    )
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        result = build_image(
            binary=args.binary,
            ref=args.ref,
            out=args.out,
            entrypoint=_json_array("--entrypoint", args.entrypoint),
            cmd=_json_array("--cmd", args.cmd) if args.cmd is not None else None,
            ports=args.port,
            labels=_key_values("--label", args.label),
            env=_key_values("--env", args.env),
            user=args.user,
            busybox=args.busybox,
            python=args.python,
            bare=args.bare,
            plain=args.plain,
            binary_path=args.binary_path,
            symlinks=_key_values("--symlink", args.symlink),
        )
    except BuildError as error:
        print(f"build_oci_image: error: {error}", file=sys.stderr)
        return 1
    if "." not in result.ref.split("/", 1)[0] and not result.ref.startswith("localhost"):
        print(
            f"build_oci_image: warning: {result.ref} has no registry host; Kubernetes looks up "
            f"docker.io/library/... for it, so pods will not find the imported image",
            file=sys.stderr,
        )
    print(
        f"{result.ref} {result.digest} {result.size / 1e6:.1f} MB ({result.size} bytes) "
        f"{len(result.libraries)} host libraries -> {result.out}"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
