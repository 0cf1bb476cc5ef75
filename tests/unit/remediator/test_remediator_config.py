"""The remediator section of the shared config file."""
import pytest

from service.config import ConfigError, load_config, parse_remediator

ENV = {"HOOK_TOKEN": "from-env"}


def test_defaults_are_dry_run_with_caps_and_blast_radius_on():
    config = parse_remediator({"webhook_token_env": "HOOK_TOKEN"}, environ=ENV)
    assert config.dry_run is True and config.token == "from-env"
    assert config.caps.max_evictions and config.blast_radius.enabled
    assert config.non_zombi_action == "finish" and config.audit_log == "-"


def test_token_is_required_unless_insecure_no_auth():
    with pytest.raises(ConfigError, match=r"^remediator\.webhook_token_file: a webhook token is required"):
        parse_remediator({"dry_run": False}, environ={})
    assert parse_remediator({"insecure_no_auth": True}, environ={}).token is None


def test_token_file_loses_one_trailing_newline(tmp_path):
    (tmp_path / "token").write_text("abc\n")
    config = parse_remediator({"webhook_token_file": "token"}, environ={}, base_dir=tmp_path)
    assert config.token == "abc"


@pytest.mark.parametrize("section, path", [
    ({"dry_rn": True}, "remediator.dry_rn"),
    ({"dry_run": "yes"}, "remediator.dry_run"),
    ({"caps": {"max_evictions": 0}}, "remediator.caps.max_evictions"),
    ({"caps": {"window": 3}}, "remediator.caps.window"),
    ({"blast_radius": {"max_share": 1.5}}, "remediator.blast_radius.max_share"),
    ({"allow": {"apps": "WebRTCAppEE"}}, "remediator.allow.apps"),
    ({"deny": {"streams": [""]}}, r"remediator.deny.streams\[0\]"),
    ({"non_zombi_action": "wipe"}, "remediator.non_zombi_action"),
    ({"alertmanager_url": "ftp://x"}, "remediator.alertmanager_url"),
    ({"listen_address": "nope"}, "remediator.listen_address"),
    ({"max_body_bytes": True}, "remediator.max_body_bytes"),
    ({"webhook_token_env": "MISSING"}, "remediator.webhook_token_env"),
])
def test_errors_name_the_bad_key_path(section, path):
    section = {"webhook_token_env": "HOOK_TOKEN", **section}
    with pytest.raises(ConfigError, match=f"^{path}:"):
        parse_remediator(section, environ=ENV)


def test_shared_file_loads_ams_and_remediator_sections(tmp_path):
    (tmp_path / "hook").write_text("tok\n")
    (tmp_path / "config.yml").write_text(
        "ams:\n  - name: main\n    url: http://127.0.0.1:5080\n    apps: [WebRTCAppEE]\n"
        "remediator:\n  dry_run: false\n  webhook_token_file: hook\n"
        "  allow: {apps: [WebRTCAppEE]}\n  caps: {max_evictions: 5}\n")
    settings = load_config(tmp_path / "config.yml", env={})
    assert settings.ams[0].name == "main" and settings.remediator.token == "tok"
    assert settings.remediator.dry_run is False and settings.remediator.caps.max_evictions == 5


def test_token_never_appears_in_the_config_repr():
    config = parse_remediator({"webhook_token_env": "HOOK_TOKEN"}, environ=ENV)
    assert "from-env" not in repr(config)


def test_token_from_the_environment_loses_one_trailing_newline():
    assert parse_remediator({"webhook_token_env": "HOOK"}, environ={"HOOK": "tok\n"}).token == "tok"


def test_shutdown_timeout_defaults_to_ten_seconds():
    assert parse_remediator({"insecure_no_auth": True}, environ={}).shutdown_timeout_seconds == 10.0
