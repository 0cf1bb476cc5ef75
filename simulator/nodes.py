"""AMS nodes: address, clock, liveness, registry heartbeat and (cluster, 2.14+) per-node read cache."""
import ipaddress
import math

STANDALONE_ADDRESS = "127.0.0.1"


class Node:
    """One AMS server process; its clock reads the simulator clock plus `offset` seconds."""

    __slots__ = ("address", "node_id", "offset", "alive", "started_at", "died_at", "cache", "db", "db_lost_at",
                 "paused")

    def __init__(self, address: str, node_id: str, offset: float, now: float):
        self.address = address
        self.node_id = node_id
        self.offset = float(offset)
        self.alive = True
        self.started_at = now
        self.died_at: float | None = None
        self.cache: dict[tuple[str, str], tuple[dict, float]] = {}
        self.db = True  # reaches the shared database
        self.db_lost_at: float | None = None
        self.paused: dict = {}  # record -> its stats writer while the database is away (the cadence goes on)

    def registry_ms(self, now: float, period: float) -> int:
        """lastUpdateTime: the last registry heartbeat, written with this node's clock every `period`.

        The heartbeat is a database write (ClusterNode L56-63 @ams-v2.8.2, L59-65 @ams-v3.0.3): it stops when the
        node dies or loses its database, and resumes on the same timer phase once the database is back."""
        stops = [t for t in (None if self.alive else self.died_at, None if self.db else self.db_lost_at)
                 if t is not None]
        end = min(stops) if stops else now
        tick = self.started_at + math.floor((end - self.started_at) / period) * period
        return int((tick + self.offset) * 1000)

    def describe(self) -> dict:
        """JSON view for the control API."""
        return {"address": self.address, "id": self.node_id, "clock_offset_seconds": self.offset,
                "alive": self.alive, "database": self.db}


def is_loopback(address: str) -> bool:
    """True for an IPv4/IPv6 loopback address (127.0.0.0/8, ::1): one the simulator can bind a listener to."""
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def parse_nodes(spec, now: float) -> list[Node]:
    """None: one standalone node; an int: that many nodes 10.0.0.1..; else addresses or {address, clock_offset_seconds}."""
    if spec is None:
        return [Node(STANDALONE_ADDRESS, "standalone", 0.0, now)]
    if isinstance(spec, bool) or (isinstance(spec, int) and spec < 1):
        raise ValueError("nodes must be a positive count or a list of addresses")
    if isinstance(spec, int):
        spec = [f"10.0.0.{i + 1}" for i in range(spec)]
    elif isinstance(spec, str):
        spec = [part.strip() for part in spec.split(",") if part.strip()]
    nodes = [_node(item, i, now) for i, item in enumerate(spec)]
    addresses = [n.address for n in nodes]
    if not nodes or len(set(addresses)) != len(addresses):
        raise ValueError(f"node addresses must be present and distinct: {addresses}")
    return nodes


def _node(item, index: int, now: float) -> Node:
    """One node from an address or a {address, clock_offset_seconds} mapping."""
    if isinstance(item, str):
        item = {"address": item}
    address = item.get("address") if isinstance(item, dict) else None
    if not isinstance(address, str) or not address or "/" in address:
        raise ValueError(f"invalid node: {item!r}")
    return Node(address, f"node-{index + 1}", float(item.get("clock_offset_seconds", 0.0)), now)
