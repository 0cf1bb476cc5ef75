"""Small clients for the HTTP APIs the stack reads: Prometheus, Alertmanager, /metrics, the audit log."""
from __future__ import annotations

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import httpx
from prometheus_client.parser import text_string_to_metric_families

TIMEOUT = 5.0


class ApiError(RuntimeError):
    """An API answered with an error."""


def query(prometheus_url: str, expr: str) -> list[dict]:
    """Instant PromQL query: the result vector (raises ApiError on a query error)."""
    response = httpx.get(f"{prometheus_url}/api/v1/query", params={"query": expr}, timeout=TIMEOUT)
    body = response.json()
    if body.get("status") != "success":
        raise ApiError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]["result"]


def query_range(prometheus_url: str, expr: str, start: float, end: float, step: float) -> dict:
    """Range PromQL query: the data object (resultType, result)."""
    params = {"query": expr, "start": start, "end": end, "step": step}
    response = httpx.get(f"{prometheus_url}/api/v1/query_range", params=params, timeout=TIMEOUT)
    body = response.json()
    if body.get("status") != "success":
        raise ApiError(f"{expr}: {body.get('errorType')}: {body.get('error')}")
    return body["data"]


def scalar(prometheus_url: str, expr: str) -> float | None:
    """The value of a one-element instant vector, or None when empty."""
    result = query(prometheus_url, expr)
    return float(result[0]["value"][1]) if result else None


def alertmanager_alerts(alertmanager_url: str, *matchers: str, active_only: bool = False) -> list[dict]:
    """Alerts in Alertmanager (API v2), optionally filtered by matchers such as alertname="X"."""
    params: list[tuple[str, str]] = [("filter", m) for m in matchers]
    if active_only:
        params += [("active", "true"), ("silenced", "false"), ("inhibited", "false")]
    response = httpx.get(f"{alertmanager_url}/api/v2/alerts", params=params, timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


def create_silence(alertmanager_url: str, matchers: dict[str, str], seconds: float,
                   comment: str, created_by: str = "sre") -> str:
    """Create a silence with equality matchers, as `amtool silence add` does; returns its id."""
    now = datetime.now(timezone.utc)
    body = {
        "matchers": [{"name": k, "value": v, "isRegex": False, "isEqual": True} for k, v in matchers.items()],
        "startsAt": now.isoformat(), "endsAt": (now + timedelta(seconds=seconds)).isoformat(),
        "createdBy": created_by, "comment": comment,
    }
    response = httpx.post(f"{alertmanager_url}/api/v2/silences", json=body, timeout=TIMEOUT)
    if response.status_code != 200:
        raise ApiError(f"silence refused: HTTP {response.status_code} {response.text}")
    return response.json()["silenceID"]


def expire_silence(alertmanager_url: str, silence_id: str) -> None:
    """Expire a silence now."""
    response = httpx.delete(f"{alertmanager_url}/api/v2/silence/{silence_id}", timeout=TIMEOUT)
    response.raise_for_status()


def silences(alertmanager_url: str) -> list[dict]:
    """All silences an Alertmanager knows (active, pending, expired)."""
    response = httpx.get(f"{alertmanager_url}/api/v2/silences", timeout=TIMEOUT)
    response.raise_for_status()
    return response.json()


def parse_metrics(text: str) -> dict[tuple[str, tuple], float]:
    """Exposition text -> {(sample name, sorted label pairs): value}."""
    samples: dict[tuple[str, tuple], float] = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def scrape(base_url: str) -> dict[tuple[str, tuple], float]:
    """GET /metrics of a service, parsed."""
    response = httpx.get(f"{base_url}/metrics", timeout=TIMEOUT)
    response.raise_for_status()
    return parse_metrics(response.text)


def metric_sum(samples: dict[tuple[str, tuple], float], name: str, **labels: str) -> float:
    """Sum of the samples of name whose labels include the given ones."""
    wanted = set(labels.items())
    return sum(v for (n, pairs), v in samples.items() if n == name and wanted <= set(pairs))


def read_audit(path: Path) -> list[dict]:
    """Every complete JSON line of the remediator's audit log (a partial last line is skipped)."""
    try:
        text = Path(path).read_text(errors="replace")
    except FileNotFoundError:
        return []
    records = []
    for line in text.splitlines():
        try:
            record = json.loads(line)
        except ValueError:
            continue
        if isinstance(record, dict):
            records.append(record)
    return records
