"""The stack's generated configs: the shipped examples with only this run's addresses, and valid for each tool."""
import subprocess
import sys

import pytest

from stack.configs import (REPO, alertmanager_config, load_alertmanager_example, prometheus_config,
                           service_config, write_yaml)
from stack.timing import ACCELERATED, PRODUCTION, duration

EXAMPLE = {
    "global": {"resolve_timeout": "5m"},
    "route": {
        "receiver": "humans", "group_by": ["alertname", "ams", "app"], "group_wait": "30s",
        "routes": [{"receiver": "remediator", "matchers": ['remediation="delete_stream"'],
                    "group_by": ["ams", "app", "stream_id"], "group_wait": "10s", "group_interval": "1m",
                    "repeat_interval": "1h", "continue": True}],
    },
    "receivers": [
        {"name": "humans", "webhook_configs": [{"url": "http://pager.example.org/hook"}]},
        {"name": "remediator", "webhook_configs": [{
            "url": "http://remediator.example.org:15081/alerts", "send_resolved": False,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": "/etc/antmedia/token"}}}]},
    ],
    "inhibit_rules": [{"source_matchers": ["alertname=AntMediaApiDown"],
                       "target_matchers": ['remediation="delete_stream"'], "equal": ["ams", "app"]}],
}


def derive() -> dict:
    """The example with this run's remediator, token file and sink."""
    return alertmanager_config(EXAMPLE, "http://127.0.0.1:4000", "/tmp/run/token", "http://127.0.0.1:4001/notify")


def run(argv: list[str]) -> subprocess.CompletedProcess:
    """Run a checker to completion."""
    return subprocess.run(argv, capture_output=True, text=True, timeout=60, stdin=subprocess.DEVNULL, cwd=REPO)


def test_remediator_webhook_points_at_this_run_with_its_token_file():
    webhook = derive()["receivers"][1]["webhook_configs"][0]
    assert webhook["url"] == "http://127.0.0.1:4000/alerts"
    assert webhook["http_config"]["authorization"] == {"type": "Bearer", "credentials_file": "/tmp/run/token"}
    assert webhook["send_resolved"] is False


def test_human_webhook_goes_to_the_local_sink():
    assert derive()["receivers"][0]["webhook_configs"][0]["url"] == "http://127.0.0.1:4001/notify"


def test_routes_timers_and_inhibitions_stay_as_shipped():
    config = derive()
    assert config["route"] == EXAMPLE["route"]
    assert config["inhibit_rules"] == EXAMPLE["inhibit_rules"]
    assert config["global"] == EXAMPLE["global"]


def test_shipped_example_derives_to_a_valid_config(tmp_path):
    config = alertmanager_config(load_alertmanager_example(), "http://127.0.0.1:4000", str(tmp_path / "token"),
                                 "http://127.0.0.1:4001/notify")
    (tmp_path / "token").write_text("secret\n")
    path = write_yaml(tmp_path / "alertmanager.yml", config)
    result = run(["amtool", "check-config", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
    urls = [w["url"] for r in config["receivers"] for w in r.get("webhook_configs", [])]
    assert urls == ["http://127.0.0.1:4000/alerts"]


@pytest.mark.parametrize("timing, replica", [(ACCELERATED, None), (PRODUCTION, "a")], ids=["single", "ha"])
def test_prometheus_config_with_the_shipped_rules_passes_promtool(tmp_path, timing, replica):
    config = prometheus_config(timing, "127.0.0.1:1", "127.0.0.1:2", ["127.0.0.1:3"], replica=replica)
    result = run(["promtool", "check", "config", str(write_yaml(tmp_path / "prometheus.yml", config))])
    assert result.returncode == 0, result.stdout + result.stderr
    # The rules select these jobs (up{job="antmedia"}, up{job="antmedia-remediator"}).
    assert [j["job_name"] for j in config["scrape_configs"]] == ["antmedia", "antmedia-remediator"]


def test_ha_prometheus_labels_its_replica_and_drops_it_from_alerts():
    config = prometheus_config(PRODUCTION, "e:1", "r:2", ["a:3", "b:4"], replica="b", rules=["r.yml"])
    assert config["global"]["external_labels"] == {"replica": "b"}
    assert config["alerting"]["alert_relabel_configs"] == [{"action": "labeldrop", "regex": "replica"}]
    assert config["alerting"]["alertmanagers"][0]["static_configs"][0]["targets"] == ["a:3", "b:4"]
    assert (config["global"]["scrape_interval"], config["global"]["scrape_timeout"]) == ("10s", "8s")


@pytest.mark.parametrize("service", ["exporter", "remediator"])
def test_service_config_passes_the_services_own_check_and_enforces(tmp_path, service):
    token = tmp_path / "token"
    token.write_text("secret\n")
    config = service_config("http://127.0.0.1:5", ["WebRTCAppEE"], ACCELERATED, str(token), "http://127.0.0.1:6",
                            str(tmp_path / "audit.jsonl"), remediator={"caps": {"max_evictions": 100}})
    path = write_yaml(tmp_path / "antmedia.yml", config)
    result = run([sys.executable, "-m", service, f"--config.file={path}", "--config.check"])
    assert result.returncode == 0, result.stdout + result.stderr
    assert config["ams"][0]["heartbeat_seconds"] == 1.0
    assert config["remediator"]["dry_run"] is False


def test_production_service_config_leaves_the_heartbeat_to_the_version():
    config = service_config("http://x", ["A"], PRODUCTION, "/t", "http://y", "/a")
    assert "heartbeat_seconds" not in config["ams"][0]


@pytest.mark.parametrize("seconds, text", [(1.0, "1s"), (0.5, "500ms"), (10, "10s"), (0.05, "50ms")])
def test_durations_are_written_as_prometheus_expects(seconds, text):
    assert duration(seconds) == text
