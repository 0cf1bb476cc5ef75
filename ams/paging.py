"""Bounded list paging: pages of offset/size fetched concurrently, and the checks that keep a hostile or
failing AMS from making a list endless, repeated or silently short. No HTTP and no AMS URL here: a
page is fetched by the function it is given."""

from __future__ import annotations

import math
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass

from ams.errors import AmsIncompleteError, AmsLimitError, AmsMalformedError

PLAN_BATCH_PAGES = 64  # pages planned per concurrent batch from /count (then re-planned)
MAX_SUBTRACK_PAGES = 400  # bounds a server that ignores the offset
MAX_NODE_PAGES = 40  # 10,000 nodes at 250 a page: far beyond any cluster
# A list this many records (or this share of /count) shorter than /count said is incomplete, once a second
# /count confirms it. Below it: records that left during the scrape, and MapDB's key-ordered pages, which
# skip one record at a page boundary when an earlier one is deleted mid-scrape.
SHORT_LIST_SLACK = 3
SHORT_LIST_FRACTION = 0.02
# Records a list may run past /count (streams created while it is read) before it is cut off as
# endless: a tenth of the count, and at least one page.
LIST_MARGIN_FRACTION = 0.1


@dataclass(frozen=True, slots=True)
class Page:
    """One list page: parsed items, the raw length (for short-page detection) and the Date."""

    items: list
    raw_length: int
    rejected: int
    server_time: float | None
    first: str | None  # fingerprint() of the page: equal on consecutive pages means the offset is ignored


def fingerprint(data) -> str | None:
    """Fingerprint of a page: its first raw entry."""
    return repr(data[0]) if isinstance(data, list) and data else None


def require_list(path: str, status_code: int, data) -> None:
    """A list endpoint answers a JSON array, [] when empty; no body (HTTP 204) or null is a failed query."""
    if data is None:
        # v2.8.x MongoStore returns null when the query throws, and Jersey sends null as 204
        # (MongoStore.getBroadcastList L414-418, getConferenceRoomList L331-359 @ams-v2.8.2)
        raise AmsIncompleteError(f"GET {path}: HTTP {status_code} with no list (AMS's database query failed)")


def is_short(seen: int, expected: int) -> bool:
    """Markedly fewer records than expected (or none of a non-empty list)."""
    missing = expected - seen
    return missing > max(SHORT_LIST_SLACK, expected * SHORT_LIST_FRACTION) or (seen == 0 and expected > 0)


def _known(total: Future | int | None) -> int | None:
    """A total that may still be on its way (a /count running in the pool)."""
    return total.result() if isinstance(total, Future) else total


class Pager:
    """Pages through lists with offset += len(page) until a short page, later pages concurrently on pool.

    A list that runs past /count plus a margin, or past max_records, is refused (AmsLimitError): a
    server paging forever costs a bounded number of requests, never unbounded memory.
    """

    def __init__(self, pool: ThreadPoolExecutor, max_concurrency: int, max_records: int):
        self._pool = pool
        self._concurrency = max_concurrency
        self._max_records = max_records

    def record_limit(self, total: int | None, size: int) -> int:
        """Raw records one list may return: /count plus a margin, never above max_records."""
        cap = self._max_records
        if total is None:
            return cap
        if total > cap:
            raise AmsLimitError(f"/count says {total} records, above max_records {cap}")
        return min(cap, total + max(size, math.ceil(total * LIST_MARGIN_FRACTION)))

    def pages(self, fetch: Callable[[int, int], Page], size: int, total: Future | int | None) -> list[Page]:
        """Every page of a list; total is /count (or its future, or None when unknown)."""
        first = fetch(0, size)
        total = _known(total)
        limit = self.record_limit(total, size)
        if first.raw_length < size:
            if not (total and total > first.raw_length > 0):
                return [first]
            size = first.raw_length  # the server caps pages below what was asked
        pages, offset, seen = [first], first.raw_length, first.raw_length
        stop = threading.Event()  # set by the first failing page: pages not started yet are not requested

        def guarded(page_offset: int) -> Page:
            """One page of a batch; a repeat of the first page (the offset ignored) stops the rest at once."""
            if stop.is_set():
                raise AmsMalformedError("list paging stopped")
            try:
                page = fetch(page_offset, size)
                if page.raw_length and page.first == first.first:
                    raise AmsMalformedError("list paging does not advance (offset ignored)")
                return page
            except Exception:
                stop.set()
                raise

        while True:
            offsets = self.plan(offset, size, total, limit - seen)
            batch = self._pool.map(guarded, offsets)
            try:
                for page in batch:
                    if page.raw_length and page.first == pages[-1].first:
                        raise AmsMalformedError("list paging does not advance (offset ignored)")
                    pages.append(page)
                    seen += page.raw_length
                    if seen > limit:
                        raise AmsLimitError(f"list goes on past {limit} records (/count {total}, "
                                            f"max_records {self._max_records})")
                    if page.raw_length < size:
                        return pages
            finally:
                batch.close()  # cancels the pages not started yet (an error must not keep fetching)
            offset = offsets[-1] + size
            if total is not None and offset >= total:
                total = None if offset > total else total

    def plan(self, offset: int, size: int, total: int | None, room: int) -> Sequence[int]:
        """Offsets for the next concurrent batch: up to the known total, else max_concurrency pages;
        never more than one page past the records still allowed (room)."""
        if total is not None and offset < total:
            # Bounded batches: a bogus /count must not plan millions of requests at once.
            count = min(-(-(total - offset) // size), PLAN_BATCH_PAGES)
        elif total is not None:
            count = 1  # one page to confirm nothing was added since /count
        else:
            count = self._concurrency
        count = max(1, min(count, room // size + 1))
        return [offset + i * size for i in range(count)]
