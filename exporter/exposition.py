"""Metric families as rows, and their text exposition (format 0.0.4), byte-identical to generate_latest.

The exporter's only fast path. At 10,000 broadcasts the default exposition holds about 42,000
per-stream samples; prometheus_client's generate_latest builds a Sample and a label dict for each,
then re-escapes and re-sorts every label, which took longer than fetching the data from AMS
(bench/RESULTS.md, "Exporter scrape"). A RowFamily keeps (escaped label values, value) rows and is
rendered from one precompiled template per label set. It is still a prometheus_client Metric
(samples on demand) and a property test pins its rendering to generate_latest's, byte for byte.
"""

from __future__ import annotations

import re
from math import copysign
from collections.abc import Callable, Iterable, Iterator, Sequence
from functools import lru_cache
from itertools import islice

from prometheus_client import generate_latest
from prometheus_client.metrics_core import Metric
from prometheus_client.samples import Sample
from prometheus_client.utils import floatToGoString

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
CHUNK_ROWS = 4096  # lines rendered per chunk: bounds the memory of a large family's text
Row = tuple[tuple[str, ...], float]
_LABEL_NAME_RE = re.compile(r"[a-zA-Z_][a-zA-Z0-9_]*")
_UNESCAPE_RE = re.compile(r"\\(.)")
_UNESCAPES = {"\\": "\\", "n": "\n", '"': '"'}


def escape(value: str) -> str:
    """Escape a label value the way the text format requires (backslash, newline, double quote)."""
    if "\\" in value or "\n" in value or '"' in value:
        return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")
    return value


def unescape(value: str) -> str:
    """Inverse of escape()."""
    return _UNESCAPE_RE.sub(lambda m: _UNESCAPES.get(m.group(1), m.group(0)), value) if "\\" in value else value


class RowFamily(Metric):
    """A gauge or counter family stored as (escaped label values, value) rows, in label_names order.

    One convention: label values are escaped by the caller, with escape(), before they reach a
    RowFamily, whether through rows= or add(). A stream's key is escaped once and shared by every
    family that names the stream; nothing here escapes again.
    """

    def __init__(self, name: str, documentation: str, label_names: Sequence[str], typ: str = "gauge",
                 rows: Iterable[Row] = ()):
        super().__init__(name, documentation, typ)
        self.sample_name = f"{name}_total" if typ == "counter" else name
        self.label_names = tuple(label_names)
        self.rows: list[Row] = list(rows)  # label values already escaped

    def add(self, values: tuple[str, ...], value: float) -> None:
        """Append one sample; values are escaped label values (escape()) in label_names order."""
        self.rows.append((values, value))

    def head(self) -> str:
        """The HELP and TYPE lines."""
        help_text = self.documentation.replace("\\", r"\\").replace("\n", r"\n")
        return f"# HELP {self.sample_name} {help_text}\n# TYPE {self.sample_name} {self.type}\n"

    @property
    def samples(self) -> list[Sample]:
        """Samples with unescaped label values, for generic consumers (tests, generate_latest)."""
        names, sample_name = self.label_names, self.sample_name
        return [Sample(sample_name, {k: unescape(v) for k, v in zip(names, values)}, value)
                for values, value in self.rows]

    @samples.setter
    def samples(self, value) -> None:
        """Metric.__init__ assigns []; the rows are the storage."""


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
        """floatToGoString, remembered (most values repeat: 1, counts); zeros by sign, as 0 == -0.0."""
        if not value:  # every publisher's main-track flag: the commonest value of a scrape
            return "-0.0" if copysign(1.0, value) < 0 else "0.0"
        text = self.numbers[value] = floatToGoString(value)
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
    """Text exposition, one chunk per family (or per CHUNK_ROWS lines), so a scrape never sits in memory twice."""
    renderer = _Renderer()
    for metric in metrics:
        if isinstance(metric, RowFamily):
            for text in renderer.family(metric):
                yield text.encode()
        else:
            yield generate_latest(_One(metric))


def render_bytes(metrics: Iterable[Metric]) -> bytes:
    """The whole exposition as one bytes object."""
    return b"".join(render(metrics))
