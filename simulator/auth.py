"""The app REST filter chain: JWT filter, then IP filter; both must pass (docs/ams.md, "Application REST")."""
import ipaddress
import warnings

import jwt

from .reply import Reply, forbidden
from .versions import AmsVersion

NOT_ALLOWED_IP = "Not allowed IP"
INVALID_JWT = "Invalid App JWT Token"
INVALID_SERVER_JWT = "Invalid Server JWT Token"
NOT_AUTHENTICATED = "Not authenticated user"
# Management paths AuthenticationFilter lets through without credentials (docs/ams.md, "Management REST").
OPEN_MANAGEMENT_PATHS = ("liveness", "authentication-status", "first-login-status")
_BEARER = "bearer"


class AppAuth:
    """remoteAllowedCIDR (None disables the IP filter) and jwtSecretKey (None disables the JWT filter)."""

    def __init__(self, version: AmsVersion, jwt_secret: str | None, allowed_cidrs):
        self.version = version
        self.jwt_secret = jwt_secret
        self.networks = None if allowed_cidrs is None else _parse_cidrs(allowed_cidrs)

    def check(self, remote_addr: str, authorization: str | None) -> Reply | None:
        """None when the request passes; the 403 error page otherwise."""
        if self.jwt_secret is not None and not self.token_valid(authorization):
            return forbidden(INVALID_JWT)
        if self.networks is not None and not self.ip_allowed(remote_addr):
            return forbidden(NOT_ALLOWED_IP)
        return None

    def ip_allowed(self, remote_addr: str) -> bool:
        """request.getRemoteAddr() inside one of the allowed CIDRs."""
        try:
            addr = ipaddress.ip_address(remote_addr)
        except ValueError:
            return False
        return any(addr in net for net in self.networks)

    def token_valid(self, header: str | None) -> bool:
        """HS256 with the raw secret; raw value before 2.12; from 2.12 a case-insensitive "Bearer" prefix is cut
        and the rest trimmed, no space needed (JWTFilter L54-57, prefix "Bearer" L36 @ams-v3.0.3)."""
        if not header:
            return False
        token = header
        if self.version.bearer_prefix and token.lower().startswith(_BEARER):
            token = token[len(_BEARER):].strip()
        return hs256_valid(token, self.jwt_secret)


class ServerAuth:
    """Management API: a server JWT in `ProxyAuthorization` when a secret is set; open otherwise (a logged-in panel)."""

    def __init__(self, jwt_secret: str | None):
        self.jwt_secret = jwt_secret

    def check(self, sub_path: str, header: str | None) -> Reply | None:
        """None when the request passes; the 403 error page otherwise."""
        if self.jwt_secret is None or sub_path in OPEN_MANAGEMENT_PATHS:
            return None
        if not header:
            return forbidden(NOT_AUTHENTICATED)
        return None if hs256_valid(header.strip(), self.jwt_secret) else forbidden(INVALID_SERVER_JWT)


def hs256_valid(token: str, secret: str) -> bool:
    """An HS256 JWT signed with the raw UTF-8 secret; no claims required, `exp` enforced if present."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # short demo secrets are fine for a simulator
        try:
            jwt.decode(token, secret, algorithms=["HS256"], options={"verify_aud": False, "verify_iss": False})
        except jwt.PyJWTError:
            return False
    return True


def _parse_cidrs(cidrs) -> list:
    """Comma-separated string or iterable of CIDRs/addresses; ValueError names a bad one."""
    if isinstance(cidrs, str):
        cidrs = cidrs.split(",")
    networks = []
    for text in cidrs:
        text = text.strip()
        if text:
            try:
                networks.append(ipaddress.ip_network(text, strict=False))
            except ValueError as exc:
                raise ValueError(f"not a CIDR: {text!r}") from exc
    return networks
