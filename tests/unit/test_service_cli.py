"""One command line for both services: flags, --version, exit codes, whole-file --config.check."""

from __future__ import annotations

import platform
import socket

import pytest

import exporter.__main__ as exporter_main
import remediator.__main__ as remediator_main
from service.cli import EXIT_FAILURE, EXIT_USAGE, load

SERVICES = [("antmedia-exporter", exporter_main.main), ("antmedia-remediator", remediator_main.main)]
AMS = "ams:\n  - name: main\n    url: http://127.0.0.1:9\n    apps: [WebRTCAppEE]\n"


def write(tmp_path, text: str) -> str:
    path = tmp_path / "antmedia.yml"
    path.write_text(text)
    return str(path)


@pytest.mark.parametrize(("prog", "main"), SERVICES)
def test_version_names_the_command_the_package_version_and_python(prog, main, capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0
    out = capsys.readouterr().out
    assert out.startswith(f"{prog}, version 0.") and "(revision: " in out
    assert f"python version: {platform.python_version()}" in out


@pytest.mark.parametrize(("prog", "main"), SERVICES)
def test_unknown_flag_and_missing_config_flag_exit_2(prog, main):
    for argv in (["--config.file", "x", "--nope"], []):
        with pytest.raises(SystemExit) as info:
            main(argv)
        assert info.value.code == EXIT_USAGE


@pytest.mark.parametrize(("prog", "main"), SERVICES)
def test_config_check_validates_the_remediator_section_on_both(prog, main, tmp_path, capsys):
    path = write(tmp_path, AMS + "remediator:\n  insecure_no_auth: true\n  caps: {window: 3}\n")
    assert main(["--config.file", path, "--config.check"]) == EXIT_USAGE
    assert f"{prog}: configuration error: remediator.caps.window: unknown key" in capsys.readouterr().err


@pytest.mark.parametrize(("prog", "main"), SERVICES)
def test_config_check_validates_the_ams_and_exporter_sections_on_both(prog, main, tmp_path, capsys):
    path = write(tmp_path, AMS + "exporter: {detail_metrics: maybe}\nremediator: {insecure_no_auth: true}\n")
    assert main(["--config.file", path, "--config.check"]) == EXIT_USAGE
    assert "exporter.detail_metrics: expected bool, got str" in capsys.readouterr().err


@pytest.mark.parametrize(("prog", "main"), SERVICES)
def test_config_check_reads_every_secret_of_the_file(prog, main, tmp_path, capsys, monkeypatch):
    monkeypatch.delenv("ANTMEDIA_TEST_HOOK", raising=False)
    path = write(tmp_path, AMS + "remediator: {webhook_token_env: ANTMEDIA_TEST_HOOK}\n")
    assert main(["--config.file", path, "--config.check"]) == EXIT_USAGE
    assert "remediator.webhook_token_env: environment variable ANTMEDIA_TEST_HOOK is not set" in capsys.readouterr().err
    monkeypatch.setenv("ANTMEDIA_TEST_HOOK", "tok")
    assert main(["--config.file", path, "--config.check"]) == 0


def test_exporter_start_does_not_read_the_remediator_secrets(tmp_path, monkeypatch):
    monkeypatch.delenv("ANTMEDIA_TEST_HOOK", raising=False)
    path = write(tmp_path, AMS + "remediator: {webhook_token_env: ANTMEDIA_TEST_HOOK}\n")
    args = exporter_main.parse_args(["--config.file", path])
    config, address, _ = load("antmedia-exporter", args, own=("ams",), listen=lambda c: c.exporter.listen_address)
    assert address == ("0.0.0.0", 15080) and config.remediator.token is None


def test_remediator_without_its_section_is_a_config_error(tmp_path, capsys):
    assert remediator_main.main(["--config.file", write(tmp_path, AMS), "--config.check"]) == EXIT_USAGE
    assert "remediator.webhook_token_file: a webhook token is required" in capsys.readouterr().err


@pytest.mark.parametrize(("prog", "main"), SERVICES)
def test_missing_config_file_exits_2(prog, main, tmp_path, capsys):
    assert main(["--config.file", str(tmp_path / "absent.yml"), "--config.check"]) == EXIT_USAGE
    assert "config file" in capsys.readouterr().err


@pytest.mark.parametrize(("prog", "main"), SERVICES)
def test_address_in_use_is_a_runtime_failure_exit_1(prog, main, tmp_path, capsys):
    path = write(tmp_path, AMS + "remediator: {insecure_no_auth: true, audit_log: audit.jsonl}\n")
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        assert main(["--config.file", path, "--web.listen-address", f"127.0.0.1:{port}"]) == EXIT_FAILURE
    assert "cannot listen on" in capsys.readouterr().err
