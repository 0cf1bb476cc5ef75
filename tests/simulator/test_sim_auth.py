"""REST auth: JWT filter AND IP filter, 403 HTML pages (docs/ams.md, "Authentication")."""
import time

import jwt
import pytest

APP = "WebRTCAppEE"
SECRET = "a-test-secret-of-32-bytes-length!"


def token(secret=SECRET, **claims) -> str:
    """An HS256 token."""
    return jwt.encode(claims or {"sub": "exporter"}, secret, algorithm="HS256")


def test_no_filters_when_disabled(make_sim, client):
    sim = make_sim(allowed_cidrs=None)
    assert client(sim).get("/count").status_code == 200


def test_ip_outside_remote_allowed_cidr_is_403_not_allowed_ip(make_sim, client):
    sim = make_sim(allowed_cidrs=("10.0.0.0/8",))
    r = client(sim).get("/count")
    assert r.status_code == 403 and r.headers["content-type"].startswith("text/html")
    assert "Not allowed IP" in r.text


def test_default_cidr_allows_localhost(make_sim, client):
    assert client(make_sim()).get("/count").status_code == 200


@pytest.mark.parametrize("ams_version, header, allowed", [
    ("2.8.2", None, False),
    ("2.8.2", "raw", True),
    ("2.8.2", "Bearer ", False),       # v2.8.2 verifies the whole header value
    ("2.12.0", "raw", True),
    ("2.12.0", "Bearer ", True),
    ("3.0.0", "bearer ", True),        # prefix is case-insensitive
    ("3.0.0", "BEARER ", True),
    ("3.0.0", "Bearer ", True),
    ("2.11.0", "Bearer ", False),
])
def test_jwt_header_forms_per_version(make_sim, client, ams_version, header, allowed):
    sim = make_sim(ams_version, jwt_secret=SECRET)
    headers = {} if header is None else {"Authorization": token() if header == "raw" else header + token()}
    r = client(sim).get("/count", headers=headers)
    assert r.status_code == (200 if allowed else 403)
    if not allowed:
        assert "Invalid App JWT Token" in r.text and r.headers["content-type"].startswith("text/html")


def test_wrong_secret_expired_and_non_hs256_tokens_are_rejected(make_sim, client):
    sim = make_sim("3.0.0", jwt_secret=SECRET)
    c = client(sim)
    expired = token(exp=int(time.time()) - 60)
    for bad in (token("other-secret-other-secret-other!!"), expired, "not.a.jwt",
                jwt.encode({"a": 1}, SECRET * 2, algorithm="HS512")):
        assert c.get("/count", headers={"Authorization": bad}).status_code == 403
    assert c.get("/count", headers={"Authorization": token(exp=int(time.time()) + 60)}).status_code == 200


def test_both_filters_must_pass(make_sim, client):
    sim = make_sim("3.0.0", jwt_secret=SECRET, allowed_cidrs=("10.0.0.0/8",))
    r = client(sim).get("/count", headers={"Authorization": "Bearer " + token()})
    assert r.status_code == 403 and "Not allowed IP" in r.text


def test_jwt_filter_runs_before_ip_filter(make_sim, client):
    sim = make_sim("3.0.0", jwt_secret=SECRET, allowed_cidrs=("10.0.0.0/8",))
    assert "Invalid App JWT Token" in client(sim).get("/count").text


def test_auth_guards_writes_too(make_sim, client):
    sim = make_sim("2.8.2", jwt_secret=SECRET)
    sim.add_records(APP, 1, prefix="x")
    assert client(sim).delete("/x-0000000").status_code == 403
    assert sim.broadcast(APP, "x-0000000") is not None


def test_bad_cidr_is_a_clear_error():
    from simulator import Simulator
    with pytest.raises(ValueError, match="not a CIDR"):
        Simulator(allowed_cidrs=("300.1.1.1/8",))


@pytest.mark.parametrize("content, expected", [("s3cret\n", "s3cret"), ("s3cret\r\n", "s3cret"), ("s3cret", "s3cret"),
                                               ("s3cret\n\n", "s3cret\n"), (" s3cret \t\n", " s3cret \t")])
def test_secret_file_loses_exactly_one_trailing_newline(tmp_path, content, expected):
    from simulator.__main__ import read_secret
    path = tmp_path / "secret"
    path.write_bytes(content.encode())
    assert read_secret(str(path)) == expected


def test_empty_secret_file_is_an_error(tmp_path):
    from simulator.__main__ import read_secret
    (tmp_path / "secret").write_text("\n")
    with pytest.raises(ValueError, match="empty secret"):
        read_secret(str(tmp_path / "secret"))
