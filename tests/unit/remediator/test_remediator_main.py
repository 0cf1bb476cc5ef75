"""antmedia-remediator command line: --config.check, refusal without a token, serving."""
import threading

import httpx

from remediator.__main__ import main, make_server
from remediator.app import close_deps
from service.config import load_config

AMS = "ams:\n  - name: main\n    url: http://127.0.0.1:9\n    apps: [WebRTCAppEE]\n"


def _config(tmp_path, remediator: str) -> str:
    path = tmp_path / "config.yml"
    path.write_text(AMS + "remediator:\n" + remediator)
    return str(path)


def test_config_check_accepts_a_valid_file(tmp_path, capsys):
    (tmp_path / "token").write_text("t0ken\n")
    assert main(["--config.file", _config(tmp_path, "  webhook_token_file: token\n"), "--config.check"]) == 0
    out = capsys.readouterr().out
    assert "config OK" in out and "dry-run" in out and "t0ken" not in out


def test_refuses_to_start_without_a_token(tmp_path, capsys):
    assert main(["--config.file", _config(tmp_path, "  dry_run: true\n")]) == 2
    assert "webhook token is required" in capsys.readouterr().err


def test_bad_key_is_reported_by_path(tmp_path, capsys):
    assert main(["--config.file", _config(tmp_path, "  insecure_no_auth: true\n  cap: {}\n"), "--config.check"]) == 2
    assert "remediator.cap: unknown key" in capsys.readouterr().err


def test_bad_listen_address_flag_is_refused(tmp_path, capsys):
    config = _config(tmp_path, "  insecure_no_auth: true\n")
    assert main(["--config.file", config, "--web.listen-address", "nowhere", "--config.check"]) == 2


def test_server_serves_health_readiness_metrics_and_the_webhook(tmp_path):
    config = _config(tmp_path, "  webhook_token_env: HOOK\n  audit_log: audit.jsonl\n")
    settings = load_config(config, env={"HOOK": "tok"})
    server, deps, _ = make_server(settings, "127.0.0.1", 0)
    thread = threading.Thread(target=server.serve, daemon=True)
    thread.start()
    try:
        base = f"http://127.0.0.1:{server.port}"
        assert httpx.get(f"{base}/-/healthy", timeout=5).status_code == 200
        assert httpx.get(f"{base}/-/ready", timeout=5).status_code == 200
        metrics = httpx.get(f"{base}/metrics", timeout=5).text
        assert "antmedia_remediator_build_info{" in metrics and "process_cpu_seconds_total" in metrics
        assert "antmedia_remediator_dry_run 1.0" in httpx.get(f"{base}/metrics", timeout=5).text
        assert httpx.post(f"{base}/alerts", json={}, timeout=5).status_code == 401
        answer = httpx.post(f"{base}/alerts", json={"alerts": []}, headers={"Authorization": "Bearer tok"}, timeout=5)
        assert answer.status_code == 200 and answer.json()["outcomes"] == []
        deps.drain.start()
        assert httpx.get(f"{base}/-/ready", timeout=5).status_code == 503
    finally:
        server.stop()
        thread.join(timeout=5)
        close_deps(deps)
