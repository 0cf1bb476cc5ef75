"""The table of every outcome and reason (remediator/decisions.py) is what the metrics are made of and what
docs/metrics.md explains: a reason added to the table without its line there fails here."""
import re
from pathlib import Path

from remediator.decisions import DECISIONS, UNMAPPED_DECISIONS

DOC = Path(__file__).resolve().parents[3] / "docs" / "metrics.md"


def test_every_outcome_and_reason_of_the_table_is_explained_in_the_metrics_doc():
    text = DOC.read_text()
    named = set(re.findall(r"`([a-z_]+)`", text)) | {w for span in re.findall(r"`([a-z_|]+)`", text)
                                                    for w in span.split("|")}
    missing = sorted({word for pair in (*DECISIONS, *UNMAPPED_DECISIONS) for word in pair} - named)
    assert missing == []


def test_a_node_back_from_a_stand_still_counts_as_writing_only_from_its_return():
    from remediator.guards import NODE_HEARTBEAT_SECONDS, NodeWatch

    now = [0.0]
    watch = NodeWatch(lambda: now[0])
    for step in range(5):  # writing every 5 s
        watch.saw("b", 1000 * step)
        now[0] += 5.0
    assert watch.writing_for("b") >= 15.0
    for _ in range(4):  # its database lost: the registry heartbeat stands still
        watch.saw("b", 4000)
        now[0] += 5.0
    assert watch.writing_for("b") == 0.0
    watch.saw("b", 99_000)  # back
    now[0] += 1.0
    assert 0.0 < watch.writing_for("b") <= 1.0 < NODE_HEARTBEAT_SECONDS
