"""A throwaway Kubernetes control plane for integration tests: etcd + kube-apiserver (+ optionally
kube-controller-manager for garbage collection and Deployments), no nodes, all on 127.0.0.1.

Binaries: etcd from Debian's etcd-server package; the rest from testing/cluster/build-components.sh.
Authentication is a static bearer token bound to system:masters; the apiserver signs its own serving cert.
Everything lives in one temporary directory that is removed on stop; processes are stopped by PID.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
BUILD_SCRIPT = REPO / "testing" / "cluster" / "build-components.sh"
TOKEN = "hearth-test-admin-token"


class ControlPlaneError(RuntimeError):
    """The control plane could not be started; the message carries the component's log tail."""


def bin_dir() -> Path:
    result = subprocess.run(
        ["bash", str(BUILD_SCRIPT), "--print-bindir"], capture_output=True, text=True, check=True
    )
    return Path(result.stdout.strip())


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclasses.dataclass
class ControlPlane:
    """A running control plane and how to talk to it."""

    root: Path
    bin_dir: Path
    server: str
    kubeconfig: Path
    processes: dict[str, subprocess.Popen[bytes]] = dataclasses.field(default_factory=dict)

    def kubectl(
        self, *args: str, stdin: str | None = None, check: bool = True, timeout: float = 60
    ) -> subprocess.CompletedProcess[str]:
        """Run the version-matched kubectl against this control plane."""
        result = subprocess.run(
            [str(self.bin_dir / "kubectl"), f"--kubeconfig={self.kubeconfig}", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result

    def apply_crds(self, yaml_text: str, *names: str, timeout: float = 60) -> None:
        """Apply CRDs and wait until each is Established (polling: `kubectl wait` fails on a CRD that has
        no status conditions yet)."""
        self.kubectl("apply", "--server-side", "--force-conflicts", "-f", "-", stdin=yaml_text)
        deadline = time.monotonic() + timeout
        for name in names:
            jsonpath = '{.status.conditions[?(@.type=="Established")].status}'
            while (
                self.kubectl("get", "crd", name, "-o", f"jsonpath={jsonpath}", check=False).stdout != "True"
            ):
                if time.monotonic() > deadline:
                    raise AssertionError(f"CRD {name} not Established after {timeout}s")
                time.sleep(0.2)

    def log_tail(self, name: str, lines: int = 40) -> str:
        path = self.root / f"{name}.log"
        if not path.exists():
            return ""
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        for name in reversed(list(self.processes)):
            _stop(self.processes.pop(name))


def _stop(process: subprocess.Popen[bytes], grace: float = 10) -> None:
    if process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        process.kill()  # this PID only: never by name
        process.wait()


def _spawn(plane: ControlPlane, name: str, command: Sequence[str]) -> None:
    log = (plane.root / f"{name}.log").open("wb")
    plane.processes[name] = subprocess.Popen(
        list(command), stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True
    )


def _wait_until(plane: ControlPlane, name: str, check: Callable[[], bool], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        process = plane.processes[name]
        if process.poll() is not None:
            raise ControlPlaneError(f"{name} exited with {process.returncode}:\n{plane.log_tail(name)}")
        if check():
            return
        time.sleep(0.2)
    raise ControlPlaneError(f"{name} not ready after {timeout:.0f}s:\n{plane.log_tail(name)}")


def _write_kubeconfig(path: Path, server: str, token: str) -> None:
    path.write_text(
        f"""apiVersion: v1
kind: Config
clusters:
- name: test
  cluster:
    server: {server}
    insecure-skip-tls-verify: true
users:
- name: admin
  user:
    token: {token}
contexts:
- name: test
  context: {{cluster: test, user: admin, namespace: default}}
current-context: test
"""
    )


def start(*, controller_manager: bool = False, root: Path | None = None) -> ControlPlane:
    """Start etcd and kube-apiserver (and kube-controller-manager if asked); raises ControlPlaneError."""
    binaries = bin_dir()
    needed = ["kube-apiserver", "kubectl"] + (["kube-controller-manager"] if controller_manager else [])
    missing = [name for name in needed if not (binaries / name).is_file()]
    if missing:
        raise ControlPlaneError(
            f"missing {', '.join(missing)} in {binaries}: "
            f"run testing/cluster/build-components.sh {' '.join(needed)}"
        )
    etcd = shutil.which("etcd")
    if etcd is None:
        raise ControlPlaneError("etcd is not installed: apt-get install etcd-server")
    # /dev/shm keeps etcd's fsyncs cheap; nothing here needs to survive the test session.
    base = root or Path(
        tempfile.mkdtemp(prefix="hearth-cp-", dir="/dev/shm" if Path("/dev/shm").is_dir() else None)
    )
    plane = ControlPlane(root=base, bin_dir=binaries, server="", kubeconfig=base / "kubeconfig")
    try:
        _start_components(plane, etcd=etcd, controller_manager=controller_manager)
    except BaseException:
        plane.stop()
        raise
    return plane


def _start_components(plane: ControlPlane, *, etcd: str, controller_manager: bool) -> None:
    root = plane.root
    etcd_port, peer_port, api_port = free_port(), free_port(), free_port()
    _spawn(
        plane,
        "etcd",
        [
            etcd,
            "--name=test",
            f"--data-dir={root / 'etcd'}",
            f"--listen-client-urls=http://127.0.0.1:{etcd_port}",
            f"--advertise-client-urls=http://127.0.0.1:{etcd_port}",
            f"--listen-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-advertise-peer-urls=http://127.0.0.1:{peer_port}",
            f"--initial-cluster=test=http://127.0.0.1:{peer_port}",
        ],
    )
    _wait_until(plane, "etcd", lambda: _port_open(etcd_port), timeout=30)

    subprocess.run(
        ["openssl", "genrsa", "-out", str(root / "sa.key"), "2048"], check=True, capture_output=True
    )
    subprocess.run(
        ["openssl", "rsa", "-in", str(root / "sa.key"), "-pubout", "-out", str(root / "sa.pub")],
        check=True,
        capture_output=True,
    )
    (root / "tokens.csv").write_text(f'{TOKEN},hearth-admin,hearth-admin,"system:masters"\n')
    plane.server = f"https://127.0.0.1:{api_port}"
    _write_kubeconfig(plane.kubeconfig, plane.server, TOKEN)
    _spawn(
        plane,
        "kube-apiserver",
        [
            str(plane.bin_dir / "kube-apiserver"),
            f"--etcd-servers=http://127.0.0.1:{etcd_port}",
            "--bind-address=127.0.0.1",
            f"--secure-port={api_port}",
            "--advertise-address=127.0.0.1",
            f"--cert-dir={root / 'certs'}",
            f"--token-auth-file={root / 'tokens.csv'}",
            "--authorization-mode=RBAC",
            "--service-account-issuer=https://kubernetes.default.svc",
            f"--service-account-key-file={root / 'sa.pub'}",
            f"--service-account-signing-key-file={root / 'sa.key'}",
            "--service-cluster-ip-range=10.96.0.0/12",
            "--profiling=false",
            "--endpoint-reconciler-type=none",
        ],
    )
    _wait_until(plane, "kube-apiserver", lambda: _ready(plane), timeout=120)
    if controller_manager:
        manager_port = free_port()
        _spawn(
            plane,
            "kube-controller-manager",
            [
                str(plane.bin_dir / "kube-controller-manager"),
                f"--kubeconfig={plane.kubeconfig}",
                f"--authentication-kubeconfig={plane.kubeconfig}",
                f"--authorization-kubeconfig={plane.kubeconfig}",
                "--leader-elect=false",
                "--bind-address=127.0.0.1",
                f"--secure-port={manager_port}",
                f"--service-account-private-key-file={root / 'sa.key'}",
                "--controllers=*,-serviceaccount-token",
                "--concurrent-gc-syncs=5",
            ],
        )
        _wait_until(plane, "kube-controller-manager", lambda: _healthy(manager_port), timeout=60)


def _port_open(port: int) -> bool:
    with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), timeout=0.5):
        return True
    return False


def _ready(plane: ControlPlane) -> bool:
    result = plane.kubectl("get", "--raw", "/readyz", check=False, timeout=10)
    return result.returncode == 0 and result.stdout.strip() == "ok"


def _healthy(port: int) -> bool:
    # /healthz is always allowed on the controller-manager's secure port; its cert is self-signed.
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        contextlib.suppress(OSError),
        urllib.request.urlopen(f"https://127.0.0.1:{port}/healthz", context=context, timeout=2) as response,
    ):
        return bool(response.status == 200)
    return False


@contextlib.contextmanager
def running(*, controller_manager: bool = False) -> Iterator[ControlPlane]:
    plane = start(controller_manager=controller_manager)
    try:
        yield plane
    finally:
        plane.stop()
        if os.environ.get("HEARTH_KEEP_CONTROLPLANE") != "1":
            shutil.rmtree(plane.root, ignore_errors=True)
