"""HTTP replies of the simulated AMS: JSON bodies, AMS Result objects, Tomcat error pages."""
from dataclasses import dataclass

_REASONS = {200: "OK", 204: "No Content", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
            405: "Method Not Allowed", 500: "Internal Server Error", 502: "Bad Gateway",
            503: "Service Unavailable", 504: "Gateway Timeout"}


@dataclass
class Reply:
    """Status plus either a JSON-able body, raw bytes, or nothing (empty body)."""

    status: int = 200
    body: object = None
    raw: bytes | None = None
    content_type: str | None = "application/json"
    has_json: bool = True


def ok(body) -> Reply:
    """200 with a JSON body."""
    return Reply(200, body)


def result(success: bool, message: str | None = None, data_id: str | None = None,
           error_id: int = 0, status: int = 200) -> Reply:
    """AMS Result {success,message,dataId,errorId}; AMS answers 200 even when success is false."""
    return Reply(status, {"success": success, "message": message, "dataId": data_id, "errorId": error_id})


def empty(status: int) -> Reply:
    """A reply with no body (e.g. 404 for an unknown broadcast)."""
    return Reply(status, None, b"", None, has_json=False)


def reason(status: int) -> str:
    """The HTTP reason phrase."""
    return _REASONS.get(status, "Error")


def error_page(status: int, message: str, description: str = "") -> Reply:
    """Tomcat's HTML error page, as `sendError` produces (not JSON)."""
    title = f"HTTP Status {status} – {reason(status)}"
    html = (f"<!doctype html><html lang=\"en\"><head><title>{title}</title></head><body>"
            f"<h1>{title}</h1><hr class=\"line\" /><p><b>Type</b> Status Report</p>"
            f"<p><b>Message</b> {message}</p><p><b>Description</b> {description}</p>"
            f"<hr class=\"line\" /><h3>Apache Tomcat</h3></body></html>")
    return Reply(status, None, html.encode("utf-8"), "text/html;charset=utf-8", has_json=False)


def forbidden(message: str) -> Reply:
    """403 from the IP or JWT filter."""
    return error_page(403, message, "The server understood the request but refuses to authorize it.")


def not_found_page() -> Reply:
    """Tomcat's 404 page for a path no servlet serves."""
    return error_page(404, "Not Found", "The origin server did not find a current representation "
                      "for the target resource or is not willing to disclose that one exists.")
