"""--web.config.file: TLS and basic auth in the Prometheus exporter-toolkit format (the file node_exporter reads).

Supported: tls_server_config (cert_file, key_file, client_ca_file, client_auth_type, min_version,
max_version) and basic_auth_users (bcrypt hashes). Any other key, including toolkit keys this
server cannot honour (cipher_suites, curve_preferences, http_server_config, ...), is refused by name.
"""

from __future__ import annotations

import os
import re
import ssl
from pathlib import Path
from typing import Annotated, Literal

import msgspec

from service.config import ConfigError, convert, load_document

__all__ = ["TlsServerConfig", "WebConfig", "load_web_config"]

NonEmpty = Annotated[str, msgspec.Meta(min_length=1)]
TlsVersion = Literal["TLS10", "TLS11", "TLS12", "TLS13"]
# Go's tls.ClientAuthType names. RequestClientCert and RequireAnyClientCert accept a certificate
# without verifying it, which Python's ssl module cannot do; they would give no assurance anyway.
ClientAuth = Literal["NoClientCert", "VerifyClientCertIfGiven", "RequireAndVerifyClientCert"]
_VERSIONS = {"TLS10": ssl.TLSVersion.TLSv1, "TLS11": ssl.TLSVersion.TLSv1_1,
             "TLS12": ssl.TLSVersion.TLSv1_2, "TLS13": ssl.TLSVersion.TLSv1_3}
_BCRYPT = re.compile(r"^\$2[aby]\$\d\d\$[./A-Za-z0-9]{53}$")


class _Record(msgspec.Struct, frozen=True, kw_only=True, forbid_unknown_fields=True):
    """Immutable; a key it does not know is an error."""


class TlsServerConfig(_Record):
    """`tls_server_config:`; relative paths are relative to the web config file."""

    cert_file: NonEmpty
    key_file: NonEmpty
    client_ca_file: NonEmpty | None = None
    client_auth_type: ClientAuth | None = None  # default: RequireAndVerifyClientCert with a CA, else NoClientCert
    min_version: TlsVersion = "TLS12"
    max_version: TlsVersion = "TLS13"


class WebConfig(_Record):
    """The web config file; empty means plain HTTP without auth."""

    tls_server_config: TlsServerConfig | None = None
    basic_auth_users: dict[NonEmpty, NonEmpty] = {}
    path: str | None = None

    def tls_context(self) -> ssl.SSLContext | None:
        """The server-side TLS context, or None for plain HTTP."""
        return None if self.tls_server_config is None else _context(self.tls_server_config, "tls_server_config")

    @property
    def summary(self) -> str:
        """'https, client certificates required, basic auth (2 users)'."""
        tls = self.tls_server_config
        parts = ["http" if tls is None else "https"]
        if tls is not None and tls.client_ca_file:
            parts.append("client certificates " + ("required" if tls.client_auth_type == "RequireAndVerifyClientCert"
                                                    else "verified if given"))
        if self.basic_auth_users:
            parts.append(f"basic auth ({len(self.basic_auth_users)} users)")
        return ", ".join(parts)


def load_web_config(path: str | os.PathLike | None) -> WebConfig:
    """Read and check the file (certificates loaded, hashes checked); None means no file."""
    if path is None:
        return WebConfig()
    base = Path(path).resolve().parent
    written = convert(load_document(path), WebConfig, "")
    if written.path is not None:
        raise ConfigError("path: unknown key")
    tls = written.tls_server_config
    if tls is not None:
        tls = _resolve(tls, base)
        _context(tls, "tls_server_config")  # loads the files now, so a bad one stops the start
    for user, hashed in written.basic_auth_users.items():
        if not _BCRYPT.match(hashed):
            raise ConfigError(f"basic_auth_users.{user}: expected a bcrypt hash ($2b$...), "
                              "e.g. from `htpasswd -nBC 10 USER` or Python's bcrypt.hashpw")
    return msgspec.structs.replace(written, tls_server_config=tls, path=str(path))


def _resolve(tls: TlsServerConfig, base: Path) -> TlsServerConfig:
    """Paths relative to the web config file; the client auth default of exporter-toolkit."""
    files = {key: str(base / getattr(tls, key)) for key in ("cert_file", "key_file", "client_ca_file")
             if getattr(tls, key) is not None}
    auth = tls.client_auth_type or ("RequireAndVerifyClientCert" if tls.client_ca_file else "NoClientCert")
    if auth != "NoClientCert" and not tls.client_ca_file:
        raise ConfigError(f"tls_server_config.client_auth_type: {auth} needs client_ca_file")
    if auth == "NoClientCert" and tls.client_ca_file:
        raise ConfigError("tls_server_config.client_ca_file: set, but client_auth_type is NoClientCert")
    if _VERSIONS[tls.min_version] > _VERSIONS[tls.max_version]:
        raise ConfigError("tls_server_config.min_version: above max_version")
    return msgspec.structs.replace(tls, client_auth_type=auth, **files)


def _context(tls: TlsServerConfig, where: str) -> ssl.SSLContext:
    """An SSLContext from the (resolved) settings; a file that does not load is reported by its key."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.minimum_version = _VERSIONS[tls.min_version]
    context.maximum_version = _VERSIONS[tls.max_version]
    try:
        context.load_cert_chain(tls.cert_file, tls.key_file)
    except (OSError, ssl.SSLError) as exc:
        raise ConfigError(f"{where}.cert_file/key_file: cannot load {tls.cert_file} and {tls.key_file}: "
                          f"{getattr(exc, 'strerror', None) or exc}") from None
    if tls.client_ca_file:
        try:
            context.load_verify_locations(cafile=tls.client_ca_file)
        except (OSError, ssl.SSLError) as exc:
            raise ConfigError(f"{where}.client_ca_file: cannot load {tls.client_ca_file}: "
                              f"{getattr(exc, 'strerror', None) or exc}") from None
        context.verify_mode = (ssl.CERT_REQUIRED if tls.client_auth_type == "RequireAndVerifyClientCert"
                               else ssl.CERT_OPTIONAL)
    return context
