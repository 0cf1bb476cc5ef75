"""The parsed request handed to REST handlers."""
import json
from dataclasses import dataclass, field

from .nodes import Node
from .world import AppState, World


class BadBody(ValueError):
    """The request body is not the JSON the endpoint consumes (Jackson gives 400)."""


@dataclass
class Request:
    """What a handler sees: the world, the app, the simulated now, query, body and the serving node."""

    world: World
    now: float
    query: dict = field(default_factory=dict)
    body: bytes = b""
    app: AppState | None = None
    node: Node | None = None
    db_failed: bool = False  # a db_error fault: the store's query for this request throws

    def json(self, default=None):
        """The body parsed as JSON; `default` for an empty body; BadBody otherwise."""
        if not self.body.strip():
            return default
        try:
            return json.loads(self.body)
        except ValueError as exc:
            raise BadBody(f"body is not JSON: {exc}") from exc

    def flag(self, name: str, default: bool) -> bool:
        """A boolean query parameter as JAX-RS parses it ('true' case-insensitive)."""
        value = self.query.get(name)
        if value is None or value == "":
            return default
        return value.strip().lower() == "true"
