"""Config: YAML + env -> frozen records; every error names its key path."""

from __future__ import annotations

import textwrap

import pytest

from service.config import AmsServer, ConfigError, check_url, load_config, load_document, parse_document


def write(tmp_path, text: str):
    path = tmp_path / "config.yml"
    path.write_text(textwrap.dedent(text))
    return path


def error_of(tmp_path, text: str, env=None) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(write(tmp_path, text), env=env or {})
    return str(info.value)


def test_minimal_config_gets_defaults(tmp_path):
    config = load_config(write(tmp_path, """
        ams:
          - name: main
            url: http://127.0.0.1:5080/
            apps: [WebRTCAppEE]
    """), env={})
    server = config.ams[0]
    assert server == AmsServer(name="main", url="http://127.0.0.1:5080", apps=("WebRTCAppEE",))
    assert (server.timeout_seconds, server.page_size, server.max_concurrency, server.stale_heartbeats) == (5.0, 250, 4, 2)
    assert server.timeout_seconds < 10  # below Prometheus' default scrape timeout
    assert config.exporter.listen_address == "0.0.0.0:15080"


def test_config_is_frozen(tmp_path):
    config = load_config(write(tmp_path, "ams: [{name: a, url: 'http://h', apps: [x]}]"), env={})
    with pytest.raises(AttributeError):
        config.ams[0].url = "http://elsewhere"


def test_secret_file_loses_exactly_one_trailing_newline(tmp_path):
    (tmp_path / "secret").write_text("s3cret\n\n")
    config = load_config(write(tmp_path, """
        ams: [{name: a, url: 'http://h', apps: [x], jwt_secret_file: secret}]
    """), env={})
    assert config.ams[0].jwt_secret == "s3cret\n"
    assert "s3cret" not in repr(config)


def test_token_comes_from_the_named_environment_variable(tmp_path):
    config = load_config(write(tmp_path, """
        ams: [{name: a, url: 'http://h', apps: [x], jwt_token_env: AMS_TOKEN}]
    """), env={"AMS_TOKEN": "tok\n"})
    assert config.ams[0].jwt_token == "tok"
    assert config.ams[0].jwt_secret is None


@pytest.mark.parametrize(
    ("text", "path"),
    [
        ("ams: [{name: a, url: 'http://h', apps: [x], appz: [y]}]", "ams[0].appz"),
        ("ams: [{name: a, url: 'http://h', apps: []}]", "ams[0].apps"),
        ("ams: [{name: a, url: 'http://h', apps: ['../x']}]", "ams[0].apps[0]"),
        ("ams: [{name: 'a b', url: 'http://h', apps: [x]}]", "ams[0].name"),
        ("ams: [{name: a, url: 'ftp://h', apps: [x]}]", "ams[0].url"),
        ("ams: [{name: a, url: 'http://h:99999', apps: [x]}]", "ams[0].url"),
        ("ams: [{name: a, url: 'http://h', apps: [x], page_size: 500}]", "ams[0].page_size"),
        ("ams: [{name: a, url: 'http://h', apps: [x], timeout_seconds: true}]", "ams[0].timeout_seconds"),
        ("ams: [{name: a, url: 'http://h', apps: [x], stale_heartbeats: 0}]", "ams[0].stale_heartbeats"),
        ("ams: [{name: a, url: 'http://h', apps: [x], max_concurrency: 2.5}]", "ams[0].max_concurrency"),
        ("ams: [{name: a, url: 'http://h', apps: [x], jwt_secret: inline}]", "ams[0].jwt_secret"),
        ("ams: [{name: a, url: 'http://h', apps: [x], jwt_secret_file: missing}]", "ams[0].jwt_secret_file"),
        ("ams: [{name: a, url: 'http://h', apps: [x], jwt_token_env: UNSET}]", "ams[0].jwt_token_env"),
        ("ams: [{name: a, url: 'http://h', apps: [x], jwt_token_env: A, jwt_secret_env: B}]", "ams[0].jwt_token_env"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}, {name: a, url: 'http://g', apps: [x]}]", "ams[1].name"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}]\nexporter: {listen_address: nope}", "exporter.listen_address"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}]\nexporter: {verbose: 1}", "exporter.verbose"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}]\ngrafana: {}", "grafana"),
        ("ams: {name: a}", "ams"),
        ("exporter: {}", "ams"),
        ("ams: []", "ams"),
        ("ams: [{name: a, url: 'http://h', apps: [x, x]}]", "ams[0].apps"),
        ("ams: [{name: a, url: 'http://h', apps: [x], reconnect_grace_seconds: -1}]", "ams[0].reconnect_grace_seconds"),
        ("ams: [{name: a, url: 'http://h', apps: [x], ca_file: missing.pem}]", "ams[0].ca_file"),
        ("ams: [{name: a, url: 'http://h', apps: [x], server_jwt_secret_env: A, server_jwt_secret_file: b}]",
         "ams[0].server_jwt_secret_env"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}]\nexporter: {log_level: loud}", "exporter.log_level"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}]\nremediator: {insecure_no_auth: true, caps: {window: 3}}",
         "remediator.caps.window"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}]\nremediator: {insecure_no_auth: true, shutdown_timeout_seconds: -1}",
         "remediator.shutdown_timeout_seconds"),
        ("ams: [{name: a, url: 'http://h', apps: [x]}]\nremediator: {dry_run: false}", "remediator.webhook_token_file"),
    ],
)
def test_bad_value_is_reported_by_key_path(tmp_path, text, path):
    assert error_of(tmp_path, text).startswith(f"{path}:")


def test_empty_secret_file_is_an_error(tmp_path):
    (tmp_path / "secret").write_text("\n")
    message = error_of(tmp_path, "ams: [{name: a, url: 'http://h', apps: [x], jwt_secret_file: secret}]")
    assert message.startswith("ams[0].jwt_secret_file:") and "empty" in message


def test_duplicate_yaml_key_is_an_error(tmp_path):
    assert "duplicate key 'url'" in error_of(tmp_path, "ams: [{name: a, url: 'http://h', url: 'http://g', apps: [x]}]")


def test_broken_yaml_and_missing_file_are_config_errors(tmp_path):
    assert "invalid YAML" in error_of(tmp_path, "ams: [")
    with pytest.raises(ConfigError):
        load_config(tmp_path / "absent.yml")


def test_remediator_section_is_validated_with_the_rest_of_the_file(tmp_path):
    path = write(tmp_path, """
        ams: [{name: a, url: 'http://h', apps: [x]}]
        remediator: {dry_run: true, anything: [1, 2]}
    """)
    assert error_of(tmp_path, path.read_text()) == "remediator.anything: unknown key"
    assert load_document(path)["remediator"] == {"dry_run": True, "anything": [1, 2]}


def test_file_without_remediator_section_is_valid_for_the_exporter(tmp_path):
    config = load_config(write(tmp_path, "ams: [{name: a, url: 'http://h', apps: [x]}]"), env={})
    assert config.remediator is None and config.exporter.detail_metrics is False


def test_every_key_can_be_given(tmp_path):
    for name in ("jwt", "server", "hook"):
        (tmp_path / name).write_text(f"{name}-secret\r\n")
    (tmp_path / "ca.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    config = load_config(write(tmp_path, """
        ams:
          - {name: a, url: 'https://h:8443/ams/', apps: [x, y], jwt_secret_file: jwt, server_jwt_secret_file: server,
             jwt_ttl_seconds: 30, heartbeat_seconds: 1, stale_heartbeats: 3, reconnect_grace_seconds: 2.5,
             timeout_seconds: 2, page_size: 100, max_concurrency: 8, ca_file: ca.pem, tls_insecure_skip_verify: false}
        exporter: {listen_address: '127.0.0.1:9000', log_level: debug, detail_metrics: true}
        remediator:
          dry_run: false
          webhook_token_file: hook
          listen_address: ':15081'
          log_level: warning
          alertmanager_url: http://am:9093/prefix
          alertmanager_timeout_seconds: 1
          audit_log: audit.jsonl
          max_body_bytes: 1000
          non_zombi_action: delete
          kill_switch_file: stop
          allow: {apps: [x], rooms: [r], streams: [s]}
          deny: {streams: [t]}
          caps: {window_seconds: 60, max_evictions: null, max_evictions_per_app: 3}
          blast_radius: {enabled: false, window_seconds: 30, max_share: 1, min_count: 2, live_count_ttl_seconds: 5}
          dedup_max_entries: 10
          concurrency: 2
          shutdown_timeout_seconds: 3
    """), env={})
    server, remediator = config.ams[0], config.remediator
    assert (server.url, server.jwt_secret, server.server_jwt_secret) == ("https://h:8443/ams", "jwt-secret", "server-secret")
    assert (server.reconnect_grace_seconds, server.ca_file) == (2.5, str(tmp_path / "ca.pem"))
    assert config.exporter.detail_metrics is True
    assert (remediator.token, remediator.alertmanager_url, remediator.shutdown_timeout_seconds) == (
        "hook-secret", "http://am:9093/prefix", 3.0)
    assert remediator.audit_log == str(tmp_path / "audit.jsonl") and remediator.caps.max_evictions is None
    assert not any(value in repr(config) for value in ("jwt-secret", "server-secret", "hook-secret"))


def test_defaults_of_the_remediator_section(tmp_path):
    config = load_config(write(tmp_path, """
        ams: [{name: a, url: 'http://h', apps: [x]}]
        remediator: {insecure_no_auth: true}
    """), env={})
    remediator = config.remediator
    assert (remediator.dry_run, remediator.listen_address, remediator.shutdown_timeout_seconds) == (True, "0.0.0.0:15081", 10.0)
    assert (remediator.caps.max_evictions, remediator.blast_radius.max_share, remediator.concurrency) == (50, 0.25, 4)
    assert config.ams[0].reconnect_grace_seconds == 10.0


@pytest.mark.parametrize("ending", ["\n", "\r\n", ""])
def test_secret_loses_exactly_one_line_ending_from_a_file_or_the_environment(tmp_path, ending):
    (tmp_path / "secret").write_bytes(f"s3cret {ending}".encode())
    doc = {"ams": [{"name": "a", "url": "http://h", "apps": ["x"], "jwt_secret_file": "secret",
                    "server_jwt_secret_env": "SERVER"}]}
    server = parse_document(doc, base_dir=tmp_path, env={"SERVER": f" t0k\t{ending}{ending}"}).ams[0]
    assert server.jwt_secret == "s3cret "
    assert server.server_jwt_secret == f" t0k\t{ending}"


@pytest.mark.parametrize("key", ["jwt_secret", "jwt_token", "server_jwt_secret"])
def test_inline_secret_is_refused(tmp_path, key):
    message = error_of(tmp_path, f"ams: [{{name: a, url: 'http://h', apps: [x], {key}: inline}}]")
    assert message.startswith(f"ams[0].{key}: secrets are not accepted inline")


def test_inline_webhook_token_is_refused(tmp_path):
    message = error_of(tmp_path, "ams: [{name: a, url: 'http://h', apps: [x]}]\nremediator: {token: inline}")
    assert message.startswith("remediator.token: secrets are not accepted inline")


@pytest.mark.parametrize("url", [
    "http://h?x=1", "http://h/#top", "http://h?", "ftp://h", "http://", "http://user:pw@h", "h:5080", "http://h:x",
])
def test_one_url_rule_for_every_url(tmp_path, url):
    with pytest.raises(ConfigError, match=r"^where:"):
        check_url(url, "where")
    ams = error_of(tmp_path, f"ams: [{{name: a, url: '{url}', apps: [x]}}]")
    assert ams.startswith("ams[0].url:")
    remediator = error_of(tmp_path, "ams: [{name: a, url: 'http://h', apps: [x]}]\n"
                                    f"remediator: {{insecure_no_auth: true, alertmanager_url: '{url}'}}")
    assert remediator.startswith("remediator.alertmanager_url:")


def test_secrets_of_sections_not_read_are_still_checked(tmp_path):
    text = "ams: [{name: a, url: 'http://h', apps: [x]}]\nremediator: {webhook_token_env: UNSET}"
    config = load_config(write(tmp_path, text), env={}, read_secrets=("ams",))
    assert config.remediator.token is None
    assert error_of(tmp_path, text).startswith("remediator.webhook_token_env: environment variable UNSET")
    both = "ams: [{name: a, url: 'http://h', apps: [x]}]\nremediator: {webhook_token_env: A, webhook_token_file: b}"
    with pytest.raises(ConfigError, match=r"^remediator\.webhook_token_env: only one of"):
        load_config(write(tmp_path, both), env={}, read_secrets=("ams",))


@pytest.mark.parametrize(("text", "message"), [
    ("ams: [{name: a, url: 'http://h', apps: [x], page_size: 500}]", "ams[0].page_size: expected int <= 250"),
    ("ams: [{name: a, url: 'http://h', apps: [x], timeout_seconds: .nan}]", "ams[0].timeout_seconds: expected float >= 0.05"),
    ("ams: [{name: a, url: 'http://h', apps: [x]}]\nexporter: {detail_metrics: 1}",
     "exporter.detail_metrics: expected bool, got int"),
    ("ams: [{url: 'http://h', apps: [x]}]", "ams[0].name: required"),
    ("[1]", "(top level): expected object, got array"),
    ("{1: 2}", "(top level): expected str (as a mapping key)"),
])
def test_message_translates_the_schema_error(tmp_path, text, message):
    assert error_of(tmp_path, text) == message


@pytest.mark.parametrize("template", ["http://{ip}:5080", "https://{ip}:5443/", "http://{ip}"])
def test_node_url_is_a_url_template_with_ip_as_its_host(template):
    config = parse_document({"ams": [{"name": "main", "url": "http://lb:5080", "apps": ["A"], "node_url": template}]})
    assert config.ams[0].node_url == template.rstrip("/")
    assert config.ams[0].node_base("10.1.2.3") == template.rstrip("/").replace("{ip}", "10.1.2.3")
    assert config.ams[0].node_base("fd00::1").startswith(template.split("{ip}")[0] + "[fd00::1]")


@pytest.mark.parametrize("template", ["http://node:5080", "http://{ip}{ip}:5080", "http://x{ip}:5080",
                                      "http://{ip}:5080/{app}", "ftp://{ip}", "http://user@{ip}:5080"])
def test_a_node_url_that_is_no_template_of_one_host_is_refused_by_name(template):
    with pytest.raises(ConfigError, match=r"ams\[0\]\.node_url"):
        parse_document({"ams": [{"name": "main", "url": "http://lb:5080", "apps": ["A"], "node_url": template}]})
