"""TLS for the simulated HTTPS endpoints: :class:`TLSMaterial` (a self-signed CA and a server
certificate covering every simulated address, made with ``cryptography``)."""
from __future__ import annotations

import datetime as _dt
import ipaddress
import re
import ssl
import threading
from pathlib import Path
from typing import Iterable

LOOPBACK = "127.0.0.1"

__all__ = ["TLSMaterial"]

_DNS_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")


class TLSMaterial:
    """Self-signed CA and a server certificate it signs.

    The server certificate's SANs are IP 127.0.0.1 and DNS ``localhost`` plus every
    simulated address (so verification works whether a client connects to the
    loopback port by name or keeps the simulated host in the URL). ``ca_bundle``
    is the CA PEM path to pass as ``verify=``.
    """

    def __init__(self, directory: Path):
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self._x509, self._hashes, self._ser, self._ec, self._oid = x509, hashes, serialization, ec, NameOID
        self.dir = Path(directory)
        self._lock = threading.Lock()
        self._ca_key = ec.generate_private_key(ec.SECP256R1())
        now = _dt.datetime.now(_dt.timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SMTX simulator"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "SMTX simulator test CA")])
        ski = x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key())
        self._ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._ca_key.public_key()).serial_number(x509.random_serial_number())
            .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=3650))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(ski, critical=False)
            .sign(self._ca_key, hashes.SHA256()))
        self.ca_bundle = str(self.dir / "sim-ca.pem")
        Path(self.ca_bundle).write_bytes(self._ca_cert.public_bytes(serialization.Encoding.PEM))
        self.cert_file = str(self.dir / "sim-server.pem")
        self.key_file = str(self.dir / "sim-server.key")
        self._names: set[str] = set()
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.context.minimum_version = ssl.TLSVersion.TLSv1_2
        self.issue(())

    def issue(self, names: Iterable[str]) -> None:
        """(Re)issue the server certificate to cover ``names`` too; live context reloads."""
        x509, NameOID = self._x509, self._oid
        with self._lock:
            self._names |= {n for n in names if n}
            alt: list = [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
            for n in sorted(self._names):
                try:
                    ip = ipaddress.ip_address(n)
                    if str(ip) != LOOPBACK:
                        alt.append(x509.IPAddress(ip))
                except ValueError:
                    if n != "localhost" and _DNS_NAME.match(n):
                        alt.append(x509.DNSName(n))
            key = self._ec.generate_private_key(self._ec.SECP256R1())
            now = _dt.datetime.now(_dt.timezone.utc)
            cert = (
                x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
                .issuer_name(self._ca_cert.subject).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - _dt.timedelta(days=1)).not_valid_after(now + _dt.timedelta(days=825))
                .add_extension(x509.SubjectAlternativeName(alt), critical=False)
                .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
                .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
                .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                             content_commitment=False, data_encipherment=False,
                                             key_agreement=True, key_cert_sign=False, crl_sign=False,
                                             encipher_only=False, decipher_only=False), critical=True)
                .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
                .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                               critical=False)
                .sign(self._ca_key, self._hashes.SHA256()))
            S = self._ser
            Path(self.key_file).write_bytes(key.private_bytes(S.Encoding.PEM, S.PrivateFormat.PKCS8,
                                                              S.NoEncryption()))
            Path(self.cert_file).write_bytes(cert.public_bytes(S.Encoding.PEM)
                                             + self._ca_cert.public_bytes(S.Encoding.PEM))
            self.context.load_cert_chain(self.cert_file, self.key_file)

    @property
    def names(self) -> set[str]:
        return set(self._names)
