"""Metric families for the collector and a fast text-format (0.0.4) renderer, byte-identical to generate_latest.

Per-stream families hold ~150k samples at 10k broadcasts. Building a Sample and a label dict per
sample, then re-escaping and re-sorting every label in generate_latest, costs about ten times the
AMS fetch itself. So a family is either rows of escaped label values rendered from one precompiled
template (RowFamily: per-app families), or lines rendered beforehand (TextFamily: per-stream
families, see stream_text). Samples are materialised only for generic consumers (tests,
generate_latest).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import islice

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.parser import text_string_to_metric_families
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHUNK_ROWS = 4096  # lines rendered per chunk: bounds the memory of a 200k-line family
Row = tuple[tuple[str, ...], float]
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_UNESCAPE_RE = re.compile(r"\\(.)")
_UNESCAPES = {"\\": "\\", "n": "\n", '"': '"'}


def escape(value: str) -> str:
    """Escape a label value the way the text format requires (backslash, newline, double quote)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


_WORD_TEXTS: dict[str, str] = {}


def escape_word(value: str) -> str:
    """escape() for the few distinct values of enum-like labels (status, type, origin), remembered."""
    text = _WORD_TEXTS.get(value)
    if text is None:
        text = escape(value)
        if len(_WORD_TEXTS) < 4096:  # bounded: hostile data must not grow it forever
            _WORD_TEXTS[value] = text
    return text


def unescape(value: str) -> str:
    """Inverse of escape()."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(0)), value) if "\\" in value else value


class _Family(Metric):
    """What both kinds of family share: the sample name, the HELP/TYPE head, samples made on demand."""

    def __init__(self, name: str, documentation: str, typ: str):
        super().__init__(name, documentation, typ)
        self.sample_name = f"{name}_total" if typ == "counter" else name

    def head(self) -> str:
        """The HELP and TYPE lines."""
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.sample_name} {help_text}\n# TYPE {self.sample_name} {self.type}\n"

    @property
    def samples(self) -> list[Sample]:
        """Samples for generic consumers (tests, generate_latest); the fast renderer never asks."""
        return self._samples()

    @samples.setter
    def samples(self, value) -> None:
        """Metric.__init__ assigns []; each kind keeps its own storage."""

    def _samples(self) -> list[Sample]:
        """Each kind builds them from its storage."""
        raise NotImplementedError


class RowFamily(_Family):
    """A gauge or counter family stored as (escaped label values, value) rows.

    Rows are either appended with add() or produced on demand by `source` (a callable returning a
    fresh iterable), so a large family never holds all its rows in memory at once.
    """

    def __init__(self, name: str, documentation: str, label_names: Sequence[str], typ: str = "gauge",
                 source: Callable[[], Iterable[Row]] | None = None):
        super().__init__(name, documentation, typ)
        self.label_names = tuple(label_names)
        self._source = source
        self._rows: list[Row] = []

    @property
    def rows(self) -> Iterable[Row]:
        """The rows (a fresh iterable on each access when a source was given)."""
        return self._source() if self._source is not None else self._rows

    def _samples(self) -> list[Sample]:
        """Samples with unescaped label values."""
        names, sample_name = self.label_names, self.sample_name
        return [Sample(sample_name, {k: unescape(v) for k, v in zip(names, values)}, value)
                for values, value in self.rows]

    def add(self, values: tuple[str, ...], value: float) -> None:
        """Append one sample; values are raw label values in label_names order (escaped here)."""
        self._rows.append((tuple(escape(v) for v in values), value))


class TextFamily(_Family):
    """A gauge or counter family whose sample lines come already rendered, in str or UTF-8 pieces.

    The per-stream families are rendered page by page while AMS is still answering; that text is
    their only rendering. Its samples are parsed back from it by prometheus_client's own parser.
    """

    def __init__(self, name: str, documentation: str, text: Callable[[], Iterable[str | bytes]],
                 typ: str = "gauge"):
        super().__init__(name, documentation, typ)
        self.text = text

    def _samples(self) -> list[Sample]:
        """The rendered lines parsed back into Samples."""
        text = "".join(piece.decode() if type(piece) is bytes else piece for piece in self.text())
        parsed = list(text_string_to_metric_families(self.head() + text))
        return [Sample(s.name, s.labels, s.value) for family in parsed for s in family.samples]


class _One:
    """A one-metric collector, to hand a foreign family to generate_latest."""

    def __init__(self, metric: Metric):
        self._metric = metric

    def collect(self) -> list[Metric]:
        """The one metric."""
        return [self._metric]


class _Renderer:
    """Per-scrape cache of number formatting."""

    def __init__(self):
        self.numbers: dict[float, str] = {}

    def number(self, value: float) -> str:
        """floatToGoString, remembered (most values repeat: 1, counts); zeros are not, as 0 == -0.0."""
        text = floatToGoString(value)
        if value:
            self.numbers[value] = text
        return text

    def family(self, family: RowFamily) -> Iterator[str]:
        """One RowFamily in text format, in chunks of CHUNK_ROWS lines; labels sorted like generate_latest."""
        name, head = family.sample_name, family.head()
        numbers, number = self.numbers, self.number
        labels = _label_formatter(family.label_names)
        rows = iter(family.rows)
        while True:
            chunk = list(islice(rows, CHUNK_ROWS))
            if not family.label_names:
                lines = [f"{name} {numbers.get(v) or number(v)}\n" for _, v in chunk]
            else:
                lines = [f"{name}{{{labels(k)}}} {numbers.get(v) or number(v)}\n" for k, v in chunk]
            yield head + "".join(lines)
            if len(chunk) < CHUNK_ROWS:
                return
            head = ""


@lru_cache(maxsize=256)
def _label_formatter(label_names: tuple[str, ...]) -> Callable[[tuple[str, ...]], str]:
    """A compiled function: escaped label values (label_names order) -> 'a="..",b=".."' sorted by name.

    Generated from the (validated) label names once per label set: an f-string with fixed indexes
    formats about three times faster than str.format with a sorted template.
    """
    for label in label_names:
        if not _LABEL_NAME_RE.fullmatch(label):
            raise ValueError(f"invalid label name {label!r}")
    order = sorted(range(len(label_names)), key=label_names.__getitem__)
    body = ",".join(f'{label_names[i]}="{{v[{i}]}}"' for i in order)
    return eval(f"lambda v: f'{body}'")  # noqa: S307 - source built from validated label names only


def render(metrics: Iterable[Metric]) -> Iterator[bytes]:
    """Text exposition, one chunk per family, so a large scrape never sits in memory twice."""
    renderer = _Renderer()
    for metric in metrics:
        if isinstance(metric, TextFamily):
            yield metric.head().encode()
            yield from (piece if type(piece) is bytes else piece.encode() for piece in metric.text() if piece)
        elif isinstance(metric, RowFamily):
            for text in renderer.family(metric):
                yield text.encode()
        else:
            yield generate_latest(_One(metric))


def render_bytes(metrics: Iterable[Metric]) -> bytes:
    """The whole exposition as one bytes object."""
    return b"".join(render(metrics))
