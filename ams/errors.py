"""Typed errors raised by the AMS client and the model parsers."""

from __future__ import annotations


class AmsError(Exception):
    """AMS answered, but not with what was asked for (4xx other than 403, bad shape)."""

    reason = "error"


class AmsMalformedError(AmsError):
    """AMS answered with JSON that does not parse or has the wrong shape."""

    reason = "malformed"


class AmsAuthError(AmsError):
    """AMS refused the request (403: IP filter, JWT filter, app still starting)."""

    reason = "auth"


class AmsUnavailableError(AmsError):
    """AMS could not be reached in time: transport error, timeout or 5xx; retrying can help."""

    reason = "unavailable"


class AmsUnreachableError(AmsUnavailableError):
    """No connection to the host at all (refused, or not accepted in time): what AMS's own isHostRunning
    calls a host that is not running (RestProxyFilter @2.8.2, a TCP connect)."""

    reason = "unavailable"


class AmsIncompleteError(AmsUnavailableError):
    """AMS answered a list, but not all of it: HTTP 204 (v2.8.x MongoDB returns null when its query throws)
    or markedly fewer records than /count said. A failed collection, never a smaller world; retrying can help."""

    reason = "incomplete"


class AmsLimitError(AmsError):
    """AMS answered more than a configured limit allows (records per list, bytes per answer); not read on."""

    reason = "limit"


class AmsDeadlineError(AmsUnavailableError):
    """The caller's overall time budget ran out before AMS answered (not a sign that AMS is down)."""

    reason = "unavailable"
