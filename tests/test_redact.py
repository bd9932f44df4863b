from __future__ import annotations

import logging

import pytest

from clients.redact import MASK, RedactingFilter, Redactor


@pytest.fixture
def r():
    red = Redactor()
    red.add("S3cret!Pass", "tok-123456789")
    return red


def test_secrets_in_text(r):
    assert r.text("login with S3cret!Pass now") == f"login with {MASK} now"


def test_sensitive_keys_in_objects(r):
    got = r.obj({"user": "root", "password": "whatever", "nested": [{"x-smartx-token": "abc"}],
                 "host_passwords": [{"user": "smartx", "password": "c+G6"}], "token": None})
    assert got == {"user": "root", "password": MASK, "nested": [{"x-smartx-token": MASK}],
                   "host_passwords": [{"user": "smartx", "password": MASK}], "token": None}


def test_text_patterns(r):
    text = 'Authorization: abcdef\n{"password": "pw1", "name": "x"} token=zzz Basic dXNlcjpwYXNzd29yZA=='
    out = r.text(text)
    assert "abcdef" not in out and "pw1" not in out and "zzz" not in out and "dXNlcjpw" not in out
    assert '"name": "x"' in out


def test_headers(r):
    assert r.headers({"x-smartx-token": "t", "Cookie": "c", "Accept": "json"}) == {
        "x-smartx-token": MASK, "Cookie": MASK, "Accept": "json"}


def test_logging_filter_redacts_args():
    from clients.redact import REDACTOR

    REDACTOR.add("Very$ecret1")
    rec = logging.LogRecord("x", logging.INFO, __file__, 1, "pw is %s", ("Very$ecret1",), None)
    RedactingFilter().filter(rec)
    assert rec.getMessage() == f"pw is {MASK}"


def test_text_redaction_keeps_json_valid(r):
    import json

    doc = {"host_passwords": [{"user": "root", "password": "x1"}], "token": "abc", "n": 1}
    out = json.loads(r.text(json.dumps(r.obj(doc), indent=2)))
    assert out == {"host_passwords": [{"user": "root", "password": MASK}], "token": MASK, "n": 1}


def test_counts_and_flags_under_password_keys_are_not_secrets(r):
    import json

    doc = {"password_changes": 2, "password_set": True, "password": None, "token": "t0k"}
    assert r.obj(doc) == {"password_changes": 2, "password_set": True, "password": None, "token": MASK}
    assert json.loads(r.text(json.dumps(doc))) == {"password_changes": 2, "password_set": True, "password": None,
                                                   "token": MASK}
