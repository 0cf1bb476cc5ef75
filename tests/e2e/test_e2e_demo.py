"""`make demo` (python -m demo) tells the whole story and ends clean."""
import re
import time

import pytest

from demo import __main__ as demo

pytestmark = pytest.mark.e2e
STEPS = ("JOIN", "LEAVE", "DROP", "FLAP", "ALERT", "DECISION", "GONE", "REJOIN OK", "REJOINED", "RESOLVED")


def test_demo_shows_drop_alert_decision_removal_and_rejoin_then_a_clean_summary(capsys, monkeypatch):
    monkeypatch.delenv("KEEP", raising=False)
    started = time.monotonic()
    assert demo.main([]) == 0
    assert time.monotonic() - started < 120
    out = capsys.readouterr().out
    labels = {line[12:22].strip() for line in out.splitlines() if line.startswith("  +")}
    assert set(STEPS) <= labels
    assert re.search(r"DECISION +\S+ +(AntMediaGhost(Candidate|Stream): )?evicted \(ok\)", out)
    removed = re.search(r"^Ghosts removed: (\d+) of (\d+)$", out, re.M)
    assert removed and removed.group(1) == removed.group(2) != "0"
    assert "Streams wrongly touched: 0" in out
