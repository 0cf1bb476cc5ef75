"""Config: YAML + env -> frozen dataclasses; every error names its key path."""

from __future__ import annotations

import dataclasses
import textwrap

import pytest

from service.config import AmsServer, ConfigError, load_config, load_document, parse_ams


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
    with pytest.raises(dataclasses.FrozenInstanceError):
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


def test_remediator_section_is_left_to_its_owner(tmp_path):
    path = write(tmp_path, """
        ams: [{name: a, url: 'http://h', apps: [x]}]
        remediator: {dry_run: true, anything: [1, 2]}
    """)
    document = load_document(path)
    assert document["remediator"] == {"dry_run": True, "anything": [1, 2]}
    assert parse_ams(document["ams"], base_dir=tmp_path, env={})[0].name == "a"
    assert load_config(path, env={}).remediator == {"dry_run": True, "anything": [1, 2]}
