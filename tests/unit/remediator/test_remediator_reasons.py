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
