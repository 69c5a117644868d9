"""A throwaway certificate authority for loopback federation.

`TestCA(dir)` writes `ca.pem` (the root, EC P-256, valid for a day) and `issue(name)` writes
`<name>.crt.pem` / `<name>.key.pem`: a leaf signed by that root with subjectAltName
IP:127.0.0.1 and DNS:localhost, so a server named `127.0.0.1:<port>` (an IP-literal server name:
no SNI, no well-known or SRV lookup) presents a certificate that verifies against `ca.pem`.
Both Synapse (`federation_custom_ca_list`) and Trellis (`federation.extra_ca_file`) are given
`ca.pem` as an extra trust root, and keep verifying certificates.
"""

from __future__ import annotations

import datetime
import ipaddress
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID


@dataclass(frozen=True)
class Cert:
    cert: Path  # PEM certificate (leaf only)
    key: Path  # PEM private key (PKCS#8, unencrypted)
    chain: Path  # PEM leaf followed by the CA certificate


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.ORGANIZATION_NAME, "Trellis complement tests"),
                      x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def _write_key(key: ec.EllipticCurvePrivateKey, path: Path) -> None:
    path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                       serialization.NoEncryption()))
    path.chmod(0o600)


class TestCA:
    __test__ = False  # not a pytest test class

    def __init__(self, directory: Path) -> None:
        self.dir = Path(directory)
        self.dir.mkdir(parents=True, exist_ok=True)
        now = datetime.datetime.now(datetime.timezone.utc)
        self._not_before = now - datetime.timedelta(hours=1)
        self._not_after = now + datetime.timedelta(days=1)
        self._key = ec.generate_private_key(ec.SECP256R1())
        name = _name("Trellis complement test CA")
        self._cert = (
            x509.CertificateBuilder()
            .subject_name(name).issuer_name(name)
            .public_key(self._key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before).not_valid_after(self._not_after)
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_cert_sign=True, crl_sign=True,
                                         content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False,
                                         encipher_only=False, decipher_only=False), critical=True)
            .add_extension(x509.SubjectKeyIdentifier.from_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        self.ca_pem = self.dir / "ca.pem"
        self.ca_pem.write_bytes(self._cert.public_bytes(serialization.Encoding.PEM))
        _write_key(self._key, self.dir / "ca.key.pem")

    def issue(self, name: str) -> Cert:
        """A server certificate for 127.0.0.1 / localhost, written next to ca.pem."""
        key = ec.generate_private_key(ec.SECP256R1())
        cert = (
            x509.CertificateBuilder()
            .subject_name(_name(f"{name} (127.0.0.1)"))
            .issuer_name(self._cert.subject)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(self._not_before).not_valid_after(self._not_after)
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                        x509.DNSName("localhost")]), critical=False)
            .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=True, key_encipherment=False, key_cert_sign=False,
                                         crl_sign=False, content_commitment=False, data_encipherment=False,
                                         key_agreement=True, encipher_only=False, decipher_only=False),
                           critical=True)
            .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH, ExtendedKeyUsageOID.CLIENT_AUTH]),
                           critical=False)
            .add_extension(x509.AuthorityKeyIdentifier.from_issuer_public_key(self._key.public_key()), critical=False)
            .sign(self._key, hashes.SHA256())
        )
        leaf = cert.public_bytes(serialization.Encoding.PEM)
        out = Cert(cert=self.dir / f"{name}.crt.pem", key=self.dir / f"{name}.key.pem",
                   chain=self.dir / f"{name}.chain.pem")
        out.cert.write_bytes(leaf)
        out.chain.write_bytes(leaf + self._cert.public_bytes(serialization.Encoding.PEM))
        _write_key(key, out.key)
        return out
