"""TLS for the simulated HTTPS endpoints: :class:`TLSMaterial`.

One fixed simulator CA (an Ed25519 key derived from a constant seed) signs one server certificate per simulated
``(address, port)``. Everything is derived from seeds, as the SSH host keys are: the leaf key from
``(cluster, address, port, generation)``, the serial numbers from the same, fixed validity dates, and Ed25519
signatures (deterministic, unlike ECDSA's). So the certificate bytes -- and their SHA-256 fingerprint -- are the
same in every simulator of the same plan, and a suite that pinned them in one run finds them again in the next.
:meth:`TLSMaterial.rotate` gives an address a new certificate (as after a reinstall), to test a changed pin.

Certificates are made on the first connection to an endpoint (a few milliseconds each), not at start.
"""
from __future__ import annotations

import datetime as _dt
import hashlib
import ipaddress
import re
import ssl
import threading
from pathlib import Path

LOOPBACK = "127.0.0.1"

__all__ = ["TLSMaterial", "fingerprint"]

_DNS_NAME = re.compile(r"^(?=.{1,253}$)([A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$")
_P256_ORDER = 0xFFFFFFFF00000000FFFFFFFFFFFFFFFFBCE6FAADA7179E84F3B9CAC2FC632551
NOT_BEFORE = _dt.datetime(2024, 1, 1, tzinfo=_dt.timezone.utc)
NOT_AFTER = _dt.datetime(2049, 12, 31, tzinfo=_dt.timezone.utc)      # before 2050: UTCTime, as most real certs


def _seed(*parts: object) -> bytes:
    return hashlib.sha256("|".join(str(p) for p in parts).encode()).digest()


def fingerprint(der: bytes) -> str:
    """SHA-256 of a DER certificate as ``AB:CD:…`` (what ``openssl x509 -fingerprint -sha256`` prints)."""
    return ":".join(f"{b:02X}" for b in hashlib.sha256(der).digest())


class TLSMaterial:
    """The simulator CA and one certificate per simulated ``(address, port)``.

    ``ca_bundle`` is the CA PEM path (``--ca-bundle`` for the suite; ``verify=`` for httpx). Each leaf names its
    address (IP or DNS SAN) plus ``127.0.0.1`` and ``localhost``, so verification with that CA works whether a
    client connects to the loopback port or keeps the simulated host in the URL. ``seed`` (the plan's cluster
    name) keeps two simulated clusters that share addresses apart; the CA is the same for every simulator.
    """

    def __init__(self, directory: Path, seed: str = ""):
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.asymmetric import ed25519
        from cryptography.x509.oid import NameOID

        self.dir = Path(directory)
        self.seed = seed
        self._lock = threading.Lock()
        self._contexts: dict[tuple[str, int, int], ssl.SSLContext] = {}     # (address, port, generation)
        self._pems: dict[tuple[str, int, int], bytes] = {}
        self.generations: dict[str, int] = {}           # address -> times rotated (absent: 0)
        self._ca_key = ed25519.Ed25519PrivateKey.from_private_bytes(_seed("smtx-sim tls ca"))
        name = x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "SMTX simulator"),
                          x509.NameAttribute(NameOID.COMMON_NAME, "SMTX simulator test CA")])
        self._ca_cert = (
            x509.CertificateBuilder().subject_name(name).issuer_name(name)
            .public_key(self._ca_key.public_key())
            .serial_number(int.from_bytes(_seed("smtx-sim tls ca serial")[:16], "big") >> 1)
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._ca_key.public_key()), critical=False)
            .sign(self._ca_key, None))
        self._ca_pem = self._ca_cert.public_bytes(serialization.Encoding.PEM)
        self.dir.mkdir(parents=True, exist_ok=True)
        self.ca_bundle = str(self.dir / "sim-ca.pem")
        Path(self.ca_bundle).write_bytes(self._ca_pem)

    # ---- per endpoint
    def context_for(self, address: str, port: int = 443, *, ahead: int = 0) -> ssl.SSLContext:
        """The server SSLContext of one endpoint (made on first use, cached). ``ahead=1``: the certificate the
        endpoint would have after one more :meth:`rotate` (fault rule ``tls: rotated``)."""
        with self._lock:
            key = (address, int(port), self.generations.get(address, 0) + ahead)
            ctx = self._contexts.get(key)
            if ctx is None:
                ctx = self._contexts[key] = self._make_context(*key)
            return ctx

    def certificate_pem(self, address: str, port: int = 443, *, ahead: int = 0) -> bytes:
        """The PEM certificate ``address:port`` presents now (``ahead``: see :meth:`context_for`)."""
        self.context_for(address, port, ahead=ahead)
        with self._lock:
            return self._pems[(address, int(port), self.generations.get(address, 0) + ahead)]

    def fingerprint(self, address: str, port: int = 443, *, ahead: int = 0) -> str:
        return fingerprint(ssl.PEM_cert_to_DER_cert(self.certificate_pem(address, port, ahead=ahead).decode()))

    def rotate(self, address: str) -> int:
        """A new certificate for every port of ``address`` (new connections see it); returns its generation."""
        with self._lock:
            gen = self.generations[address] = self.generations.get(address, 0) + 1
            return gen

    def set_generations(self, generations: dict[str, int]) -> None:
        """Restore what :attr:`generations` said (a snapshot)."""
        with self._lock:
            self.generations = {str(a): int(g) for a, g in (generations or {}).items() if int(g) > 0}
            self._contexts.clear()
            self._pems.clear()

    def set_seed(self, seed: str) -> None:
        with self._lock:
            if seed != self.seed:
                self.seed = seed
                self._contexts.clear()
                self._pems.clear()

    # ---- making one
    def _make_context(self, address: str, port: int, gen: int) -> ssl.SSLContext:
        from cryptography.hazmat.primitives import serialization as S

        key, cert = self._leaf(address, port, gen)
        pem = cert.public_bytes(S.Encoding.PEM)
        safe = re.sub(r"[^A-Za-z0-9._-]", "_", address)
        path = self.dir / f"sim-server-{safe}-{port}-{gen}.pem"
        path.write_bytes(pem + self._ca_pem + key.private_bytes(S.Encoding.PEM, S.PrivateFormat.PKCS8,
                                                                 S.NoEncryption()))
        ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ctx.minimum_version = ssl.TLSVersion.TLSv1_2
        ctx.load_cert_chain(str(path))
        self._pems[(address, port, gen)] = pem
        return ctx

    def _leaf(self, address: str, port: int, gen: int):
        from cryptography import x509
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

        seed = _seed("smtx-sim tls leaf", self.seed, address, port, gen)
        key = ec.derive_private_key(int.from_bytes(seed, "big") % (_P256_ORDER - 1) + 1, ec.SECP256R1())
        alt: list = [x509.IPAddress(ipaddress.ip_address(LOOPBACK)), x509.DNSName("localhost")]
        try:
            ip = ipaddress.ip_address(address)
            if str(ip) != LOOPBACK:
                alt.append(x509.IPAddress(ip))
        except ValueError:
            if address != "localhost" and _DNS_NAME.match(address):
                alt.append(x509.DNSName(address))
        cn = address if len(address) <= 64 else "localhost"
        cert = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
            .issuer_name(self._ca_cert.subject).public_key(key.public_key())
            .serial_number(int.from_bytes(_seed("smtx-sim tls serial", self.seed, address, port, gen)[:16],
                                          "big") >> 1)
            .not_valid_before(NOT_BEFORE).not_valid_after(NOT_AFTER)
            .add_extension(x509.SubjectAlternativeName(alt), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False,
                                         content_commitment=False, data_encipherment=False,
                                         key_agreement=True, key_cert_sign=False, crl_sign=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._ca_key.public_key()),
                           critical=False)
            .sign(self._ca_key, None))
        return key, cert
