"""TLS for an HTTPS endpoint (the operator's metrics): a certificate and key from a directory, reloaded
when they change (rotated by cert-manager, say), or a self-signed pair made at start when no directory is
given, as the reference (controller-runtime) does."""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import ipaddress
import logging
import os
import ssl
import tempfile
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from hearth.common import logs

log = logging.getLogger(__name__)

#: How often a certificate directory is checked for a rotated pair.
RELOAD_SECONDS = 60.0
SELF_SIGNED_DAYS = 365


class CertificateError(ValueError):
    """A certificate or key that cannot be used; the message names the file."""


class ServingCertificate:
    """A server-side SSLContext over one certificate/key pair; :meth:`watch` reloads a changed pair, and
    new connections get it (connections already open keep theirs)."""

    def __init__(self, cert_file: Path, key_file: Path, *, self_signed: bool = False) -> None:
        self.cert_file = cert_file
        self.key_file = key_file
        self.self_signed = self_signed
        self.context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.context.set_alpn_protocols(["http/1.1"])  # no HTTP/2, like the reference's default
        self._stamp = self._files_stamp()
        self._load()

    @classmethod
    def from_directory(cls, directory: Path, *, cert_name: str, key_name: str) -> ServingCertificate:
        return cls(directory / cert_name, directory / key_name)

    @classmethod
    def generate(cls, *, hostnames: list[str]) -> ServingCertificate:
        """A fresh self-signed pair in a private temporary directory."""
        directory = Path(tempfile.mkdtemp(prefix="hearth-tls-"))
        cert_file, key_file = directory / "tls.crt", directory / "tls.key"
        cert_pem, key_pem = self_signed_pair(hostnames)
        key_file.touch(mode=0o600)
        key_file.write_bytes(key_pem)
        cert_file.write_bytes(cert_pem)
        return cls(cert_file, key_file, self_signed=True)

    def _files_stamp(self) -> tuple[int, int]:
        try:
            return (self.cert_file.stat().st_mtime_ns, self.key_file.stat().st_mtime_ns)
        except OSError as error:
            raise CertificateError(f"cannot read {error.filename}: {error.strerror}") from None

    def _load(self) -> None:
        try:
            self.context.load_cert_chain(self.cert_file, self.key_file)
        except (ssl.SSLError, OSError) as error:
            raise CertificateError(
                f"cannot use certificate {self.cert_file} with key {self.key_file}: {error}"
            ) from None

    def reload_if_changed(self) -> bool:
        stamp = self._files_stamp()
        if stamp == self._stamp:
            return False
        self._load()
        self._stamp = stamp
        log.info("serving certificate reloaded", extra=logs.fields(certificate=str(self.cert_file)))
        return True

    async def watch(self, interval: float = RELOAD_SECONDS) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                self.reload_if_changed()
            except CertificateError as error:
                # Half-written during a rotation, most likely: keep serving the pair already loaded.
                log.warning("serving certificate not reloaded", extra=logs.fields(error=str(error)))

    def close(self) -> None:
        """Remove a self-signed pair's private directory (a given directory is left alone)."""
        if self.self_signed:
            for file in (self.cert_file, self.key_file):
                with contextlib.suppress(OSError):
                    file.unlink()
            with contextlib.suppress(OSError):
                os.rmdir(self.cert_file.parent)


def self_signed_pair(hostnames: list[str]) -> tuple[bytes, bytes]:
    """(certificate PEM, private key PEM): ECDSA P-256, valid for *hostnames*, localhost and 127.0.0.1."""
    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostnames[0] if hostnames else "hearth")])
    now = datetime.datetime.now(tz=datetime.UTC)
    alternative_names: list[x509.GeneralName] = [
        x509.DNSName(name) for name in dict.fromkeys([*hostnames, "localhost"])
    ]
    alternative_names.append(x509.IPAddress(ipaddress.ip_address("127.0.0.1")))
    certificate = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))  # tolerate small clock skew
        .not_valid_after(now + datetime.timedelta(days=SELF_SIGNED_DAYS))
        .add_extension(x509.SubjectAlternativeName(alternative_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    return certificate.public_bytes(serialization.Encoding.PEM), key_pem
