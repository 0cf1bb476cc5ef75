"""Conference steps and checks shared by the demo, the end-to-end tests and the benchmark."""
from __future__ import annotations

import time

from stack import api
from stack.waiting import wait_for


def is_removed(sim, app: str, stream_id: str) -> bool:
    """A ghost is removed once no room lists it and its record is gone or finished: the eviction's last write.

    Not merely "no longer reads live": from 2.13 a stale record reads terminated_unexpectedly before any
    write, and a participant rejoining then could meet the eviction's last write (see docs/design.md).
    """
    lifecycle = sim.lifecycle(app, stream_id)
    if lifecycle.unlisted_at is None:
        return False
    record = sim.broadcast(app, stream_id)
    return record is None or record.get("status") == "finished"


def wait_removed(sim, app: str, stream_ids, timeout: float) -> None:
    """Wait until every given ghost is removed."""
    pending = list(stream_ids)
    wait_for(lambda: all(is_removed(sim, app, s) for s in pending), timeout,
             f"ghosts not removed: {[s for s in pending if not is_removed(sim, app, s)]}")


def room_members_seen(prometheus_url: str, room: str) -> int:
    """How many members of room Prometheus currently has from the exporter."""
    value = api.scalar(prometheus_url, f'count(antmedia_room_member{{room="{room}"}} == 1)')
    return int(value or 0)


def wait_members_seen(prometheus_url: str, room: str, count: int, timeout: float = 20.0) -> None:
    """Wait until Prometheus has scraped count members of room."""
    wait_for(lambda: room_members_seen(prometheus_url, room) >= count, timeout,
             f"Prometheus does not see {count} members in room {room}")


def flap(sim, app: str, stream_id: str, seconds: float) -> bool:
    """A network hiccup: the heartbeat stops for seconds, then resumes on the same session."""
    sim.drop(app, stream_id)
    time.sleep(seconds)
    return sim.resume(app, stream_id)


def ghost_alert_state(alertmanager_url: str, stream_id: str) -> str | None:
    """active / suppressed / None for the stream's AntMediaGhostStream alert in Alertmanager."""
    alerts = api.alertmanager_alerts(alertmanager_url, 'alertname="AntMediaGhostStream"',
                                     f'stream_id="{stream_id}"')
    return alerts[0]["status"]["state"] if alerts else None


def start_populated(options, app: str, live: int, rooms: int):
    """Start a Stack whose app already carries live participants spread over rooms.

    Healthy background participants keep a test's few ghosts a small share of the
    app's live streams, as on a real server (the remediator's blast-radius guard).
    """
    from stack.runner import Stack
    stack = Stack(options)
    stack.__enter__()
    try:
        if live:
            stack.sim.populate(app, live=live, rooms=rooms)
    except BaseException:
        stack.stop()
        raise
    return stack
