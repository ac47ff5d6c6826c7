"""Where the API server is and how to authenticate to it: in-cluster credentials or a kubeconfig.

In a pod (the gateway, the operator) and with the plain kubeconfigs Hearth's own tools write (a server, a
CA, a bearer token or a client certificate) this reads the few fields itself. Every other kubeconfig
(exec plugins, auth providers, basic auth, token files, several files merged through KUBECONFIG) is read
by ``kubernetes_asyncio``'s loader, whose result is translated here, so those keep working as before. The
library is imported only then: with the generated client it always imports, it adds about 38 MiB to a
process (more than a gateway's whole idle memory without it; bench/gateway.py prints that figure).
"""

from __future__ import annotations

import base64
import dataclasses
import datetime
import os
import ssl
import tempfile
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

#: Where Kubernetes mounts a pod's ServiceAccount credentials.
SERVICE_ACCOUNT_DIR = Path("/var/run/secrets/kubernetes.io/serviceaccount")
#: As kubernetes_asyncio (and client-go) do: a bound ServiceAccount token is rotated on disk by the kubelet,
#: so the file is read again once the token in hand is this old.
TOKEN_REFRESH = datetime.timedelta(minutes=1)
#: The kubeconfig user fields read here; a user with any of these others needs the library's loader.
_DELEGATED_USER_FIELDS = ("auth-provider", "exec", "tokenFile", "username", "password")


class KubeConfigError(Exception):
    """No usable in-cluster credentials or kubeconfig."""


@dataclasses.dataclass
class Connection:
    """One API server: its base URL, the TLS settings to reach it and the Authorization header to send."""

    host: str
    ssl: ssl.SSLContext
    #: The value of the Authorization header (or None: none is sent), asked before every request because
    #: tokens rotate.
    authorization: Callable[[], Awaitable[str | None]]
    server_hostname: str | None = None
    proxy: str | None = None
    proxy_headers: dict[str, str] | None = None


def in_cluster_available() -> bool:
    """Whether this process runs in a pod with a ServiceAccount token mounted."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST")) and (SERVICE_ACCOUNT_DIR / "token").exists()


def in_cluster(directory: Path = SERVICE_ACCOUNT_DIR) -> Connection:
    """The pod's ServiceAccount credentials and the API server's Service address from the environment."""
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT")
    if host is None or port is None:
        raise KubeConfigError("Service host/port is not set.")
    if not host or not port:
        raise KubeConfigError("Service host/port is set but empty.")
    token = _TokenFile(directory / "token")
    ca = directory / "ca.crt"
    if not ca.is_file():
        raise KubeConfigError("Service certification file does not exists.")
    if not ca.read_text():
        raise KubeConfigError("Cert file exists but empty.")
    return Connection(
        host=f"https://{_join_host_port(host, port)}",
        ssl=_ssl_context(ca_file=str(ca)),
        authorization=token.authorization,
    )


async def from_kubeconfig(path: str | None = None, context: str | None = None) -> Connection:
    """The cluster and user of *context* (default: the current context) in the kubeconfig at *path*
    (default: ``$KUBECONFIG``, else ``~/.kube/config``)."""
    paths = path if path is not None else os.environ.get("KUBECONFIG", "~/.kube/config")
    plain = _plain(paths, context)
    if plain is None:
        return await _from_library(paths, context)
    cluster, user, base = plain
    host = str(cluster["server"]).rstrip("/")
    ca_file = ca_data = cert_file = key_file = None
    if host.startswith("https"):
        ca_file, ca_data = _file_or_data(cluster, "certificate-authority", base)
        cert_file, cert_data = _file_or_data(user, "client-certificate", base)
        key_file, key_data = _file_or_data(user, "client-key", base)
    else:
        cert_data = key_data = None
    context_ssl = _ssl_context(
        ca_file=ca_file,
        ca_data=ca_data,
        cert=(cert_file, cert_data),
        key=(key_file, key_data),
        verify=not cluster.get("insecure-skip-tls-verify", False),
    )
    token = user.get("token")
    header = f"Bearer {token}" if token else None

    async def authorization() -> str | None:
        return header

    return Connection(
        host=host,
        ssl=context_ssl,
        authorization=authorization,
        server_hostname=cluster.get("tls-server-name"),
        proxy=cluster.get("proxy-url"),
    )


class _TokenFile:
    """A ServiceAccount token, read again from its file once it is :data:`TOKEN_REFRESH` old."""

    def __init__(self, path: Path) -> None:
        self._path = path
        if not path.is_file():
            raise KubeConfigError("Service token file does not exist.")
        self._header = ""
        self._expires = datetime.datetime.min
        self._read()

    def _read(self) -> None:
        content = self._path.read_text()
        if not content:
            raise KubeConfigError("Token file exists but empty.")
        self._header = f"Bearer {content}"
        self._expires = datetime.datetime.now() + TOKEN_REFRESH

    async def authorization(self) -> str | None:
        if self._expires <= datetime.datetime.now():
            self._read()
        return self._header


def _join_host_port(host: str, port: str) -> str:
    """As Go's net.JoinHostPort: an IPv6 address (or one with a zone) in brackets."""
    return f"[{host}]:{port}" if ":" in host or "%" in host else f"{host}:{port}"


def _plain(paths: str, context: str | None) -> tuple[dict[str, Any], dict[str, Any], str] | None:
    """The cluster, user and base directory of *context* when the kubeconfig is one file of the plain shape
    read here; None when the library's loader must read it (including every malformed one, so its errors
    are the ones reported)."""
    found = _single_file(paths)
    if found is None:
        return None
    path, config = found
    name = context if context is not None else config.get("current-context")
    chosen = _named(config.get("contexts"), name, "context") or {}
    cluster = _named(config.get("clusters"), chosen.get("cluster"), "cluster")
    user = _named(config.get("users"), chosen.get("user"), "user")
    if cluster is None or user is None or not isinstance(cluster.get("server"), str):
        return None
    if any(field in user for field in _DELEGATED_USER_FIELDS):
        return None
    return cluster, user, os.path.abspath(os.path.dirname(path))


def _single_file(paths: str) -> tuple[str, dict[str, Any]] | None:
    """The path and content of the kubeconfig when *paths* names exactly one existing file (KUBECONFIG may
    list several, to be merged)."""
    existing = [os.path.expanduser(p) for p in paths.split(":") if p]
    existing = [p for p in existing if os.path.exists(p)]
    if len(existing) != 1:
        return None
    import yaml  # only a kubeconfig needs it; a pod's credentials are two plain files

    try:
        with open(existing[0]) as file:
            config = yaml.safe_load(file)
    except (OSError, yaml.YAMLError):
        return None
    return (existing[0], config) if isinstance(config, dict) else None


def _named(entries: object, name: object, field: str) -> dict[str, Any] | None:
    """The *field* mapping of the first entry called *name* (the library's rule for duplicates too)."""
    if not isinstance(entries, list) or not isinstance(name, str):
        return None
    for entry in entries:
        if isinstance(entry, dict) and entry.get("name") == name:
            value = entry.get(field)
            return value if isinstance(value, dict) else None
    return None


def _file_or_data(section: dict[str, Any], key: str, base: str) -> tuple[str | None, bytes | None]:
    """``<key>-data`` (base64, preferred) or the file ``<key>`` (relative to the kubeconfig's directory)."""
    data = section.get(f"{key}-data")
    if data:
        return None, base64.standard_b64decode(data)
    if section.get(key):
        return os.path.normpath(os.path.join(base, str(section[key]))), None
    return None, None


def _ssl_context(
    *,
    ca_file: str | None = None,
    ca_data: bytes | None = None,
    cert: tuple[str | None, bytes | None] = (None, None),
    key: tuple[str | None, bytes | None] = (None, None),
    verify: bool = True,
    strict: bool = True,
) -> ssl.SSLContext:
    """The TLS context kubernetes_asyncio builds from the same settings."""
    context = ssl.create_default_context(
        cafile=ca_file, cadata=ca_data.decode() if ca_data is not None else None
    )
    cert_file, cert_data = cert
    key_file, key_data = key
    with tempfile.TemporaryDirectory(prefix="hearth-kube-") as scratch:
        # The ssl module loads a certificate and key only from files.
        if cert_data is not None:
            cert_file = os.path.join(scratch, "cert")
            Path(cert_file).write_bytes(cert_data)
        if key_data is not None:
            key_file = os.path.join(scratch, "key")
            Path(key_file).write_bytes(key_data)
        if cert_file:
            context.load_cert_chain(cert_file, keyfile=key_file)
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    if not strict:
        context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    return context


async def _from_library(paths: str, context: str | None) -> Connection:
    """A kubeconfig read by kubernetes_asyncio (exec plugins, auth providers, merged files...)."""
    from kubernetes_asyncio.client import configuration as library_configuration
    from kubernetes_asyncio.config import kube_config

    configuration: Any = library_configuration.Configuration()
    await kube_config.load_kube_config(config_file=paths, context=context, client_configuration=configuration)

    async def authorization() -> str | None:
        # The library's refresh hook (an exec plugin's expiring token) runs inside this call.
        if "BearerToken" not in configuration.api_key:
            return None
        value = await configuration.get_api_key_with_prefix("BearerToken")
        return str(value) if value else None

    return Connection(
        host=str(configuration.host),
        ssl=_ssl_context(
            ca_file=configuration.ssl_ca_cert,
            cert=(configuration.cert_file, None),
            key=(configuration.key_file, None),
            verify=bool(configuration.verify_ssl),
            strict=not configuration.disable_strict_ssl_verification,
        ),
        authorization=authorization,
        server_hostname=configuration.tls_server_name,
        proxy=configuration.proxy,
        proxy_headers=configuration.proxy_headers,
    )
