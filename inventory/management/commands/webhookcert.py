"""`manage.py webhookcert`: the self-signed path to TLS for the admission webhook, for clusters
without cert-manager (and for the lab).

Makes (or reuses) a small CA and issues a serving certificate for the webhook Service's DNS names
(and IPs, for a server on 127.0.0.1), writes `ca.crt`, `ca.key`, `tls.crt` and `tls.key` into
`--out`, and prints the two commands that install them: the Secret the webhook Deployment
mounts, and the caBundle the API server checks the webhook with. Re-running it renews the serving
certificate under the same CA, so the caBundle does not change; `--new-ca` starts over.
ECDSA P-256 keys: what Go's TLS (the API server) and Python's both speak, and small.
"""

from __future__ import annotations

import base64
import datetime
import ipaddress
import os
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from django.core.management.base import BaseCommand, CommandError, CommandParser

DEFAULT_NAMES = ("nicportal-webhook.nicportal.svc", "nicportal-webhook.nicportal.svc.cluster.local")


def _name(common_name: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])


def make_ca(*, days: int = 3650) -> tuple[bytes, bytes]:
    """A self-signed CA certificate and its key (PEM)."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name("NICPortal admission webhook CA"))
        .issuer_name(_name("NICPortal admission webhook CA"))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True,
                key_cert_sign=True,
                crl_sign=True,
                content_commitment=False,
                key_encipherment=False,
                data_encipherment=False,
                key_agreement=False,
                encipher_only=False,
                decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def make_serving(
    ca_pem: bytes, ca_key_pem: bytes, *, names: list[str], ips: list[str], days: int = 365
) -> tuple[bytes, bytes]:
    """A serving certificate for `names` and `ips`, signed by the CA (PEM cert and key)."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    ca_key = serialization.load_pem_private_key(ca_key_pem, password=None)
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    alt_names: list[x509.GeneralName] = [x509.DNSName(n) for n in names]
    alt_names += [x509.IPAddress(ipaddress.ip_address(i)) for i in ips]
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0] if names else ips[0]))
        .issuer_name(ca.subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=days))
        .add_extension(x509.SubjectAlternativeName(alt_names), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.public_key()),
            critical=False,
        )
        .sign(ca_key, hashes.SHA256())
    )
    return cert.public_bytes(serialization.Encoding.PEM), _key_pem(key)


def _key_pem(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def _write(path: Path, data: bytes, *, secret: bool) -> None:
    # Keys are created 0600 from the start, never world-readable for an instant.
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600 if secret else 0o644)
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)


class Command(BaseCommand):
    help = "Make a CA and a serving certificate for the admission webhook (self-signed path)."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--out", default="var/webhook-tls", help="Directory for the files.")
        parser.add_argument(
            "--dns",
            action="append",
            default=[],
            metavar="NAME",
            help="DNS name of the webhook (repeatable; default: the nicportal-webhook Service).",
        )
        parser.add_argument(
            "--ip", action="append", default=[], metavar="ADDRESS", help="IP SAN (repeatable)."
        )
        parser.add_argument("--days", type=int, default=365, help="Serving certificate lifetime.")
        parser.add_argument("--new-ca", action="store_true", help="Replace an existing CA.")

    def handle(self, *args: Any, **options: Any) -> None:
        out = Path(options["out"])
        names = options["dns"] or ([] if options["ip"] else list(DEFAULT_NAMES))
        try:
            for address in options["ip"]:
                ipaddress.ip_address(address)
        except ValueError as exc:
            raise CommandError(f"--ip: {exc}") from None
        if options["days"] < 1:
            raise CommandError("--days must be at least 1")
        out.mkdir(parents=True, exist_ok=True)
        ca_path, ca_key_path = out / "ca.crt", out / "ca.key"
        if options["new_ca"] or not (ca_path.exists() and ca_key_path.exists()):
            ca_pem, ca_key_pem = make_ca()
            _write(ca_path, ca_pem, secret=False)
            _write(ca_key_path, ca_key_pem, secret=True)
            self.stdout.write(f"new CA in {ca_path}")
        else:
            ca_pem, ca_key_pem = ca_path.read_bytes(), ca_key_path.read_bytes()
            self.stdout.write(f"reusing the CA in {ca_path}")
        cert_pem, key_pem = make_serving(
            ca_pem, ca_key_pem, names=names, ips=options["ip"], days=options["days"]
        )
        _write(out / "tls.crt", cert_pem, secret=False)
        _write(out / "tls.key", key_pem, secret=True)
        bundle = base64.b64encode(ca_pem).decode()
        self.stdout.write(f"serving certificate for {', '.join(names + options['ip'])}")
        self.stdout.write("install with:")
        self.stdout.write(
            f"  kubectl -n nicportal create secret tls nicportal-webhook-tls "
            f"--cert={out}/tls.crt --key={out}/tls.key --dry-run=client -o yaml "
            "| kubectl apply -f -"
        )
        self.stdout.write(
            "  kubectl patch validatingwebhookconfiguration nicportal --type=json -p "
            f'\'[{{"op":"add","path":"/webhooks/0/clientConfig/caBundle","value":"{bundle}"}},'
            f'{{"op":"add","path":"/webhooks/1/clientConfig/caBundle","value":"{bundle}"}}]\''
        )
        self.stdout.write(f"caBundle: {bundle}")
