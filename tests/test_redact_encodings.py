"""Issue 11 item 9: a secret is masked in every encoding it can take in our outputs, and the key pattern
does not stop at a space inside a quoted value."""
from __future__ import annotations

import base64
import html
import json
import pprint
from urllib.parse import quote, quote_plus

import pytest

from clients.redact import MASK, Redactor

NASTY = 'P@ss w\\rd"\'%&<>中文'
PASSWORDS = [NASTY, "a b\\c'd", 'x"y z%41', "中文密码 x\\1", "Sp ace&amp;<tag>"]


@pytest.fixture(params=PASSWORDS)
def pw(request):
    return request.param


def red(*secrets):
    r = Redactor()
    r.add(*secrets)
    return r


def forms(s: str) -> dict[str, str]:
    b = s.encode("utf-8")
    return {
        "raw": s,
        "repr": repr(s),
        "repr in a dict": repr({"password": s, "n": 1}),
        "repr in a double-quoted context": repr("it's " + s),
        "ascii": ascii(s),
        "bytes repr": repr(b),
        "json": json.dumps(s),
        "json ascii": json.dumps({"pw": s}),
        "json unicode": json.dumps({"pw": s}, ensure_ascii=False),
        "json of json": json.dumps(json.dumps({"pw": s})),
        "repr of json": repr(json.dumps({"pw": s})),
        "quote": quote(s),
        "quote safe=''": quote(s, safe=""),
        "quote_plus": "a=1&password=" + quote_plus(s) + "&b=2",
        "html": html.escape(s),
        "html noquote": html.escape(s, quote=False),
        "html of repr": html.escape(repr({"p": s})),
        "html of json": html.escape(json.dumps({"p": s}, ensure_ascii=False)),
        "base64": base64.b64encode(b).decode(),
        "base64 urlsafe": base64.urlsafe_b64encode(b).decode(),
        "basic auth": "Basic " + base64.b64encode(b"root:" + b).decode(),
        "basic auth 2": "auth=" + base64.b64encode(b"admin:" + b).decode(),
        "basic auth 3": "x " + base64.b64encode(b"smartx:" + b).decode() + " y",
    }


def test_every_encoding_is_masked(pw):
    r = red(pw)
    for name, text in forms(pw).items():
        out = r.text(text)
        assert MASK in out, name
        for leak_name, leak in forms(pw).items():
            if leak_name in ("raw", "repr", "json", "quote", "html", "base64") and len(leak) > 6:
                inner = leak.strip("'\"") if leak_name in ("repr", "json") else leak
                assert inner not in out, (name, leak_name, out)


def test_pprint_split_repr_is_masked(pw):
    """pytest -vv -l prints locals with pprint, which splits a long string after a space and reprs each piece
    on its own (so the two pieces may even use different quote kinds)."""
    head, tail = pw.split(" ", 1)
    text = repr("long text before " + head + " ") + "\n         " + repr(tail + " and after")
    out = red(pw).text(text)
    assert MASK in out and repr(tail)[1:-1] not in out and "before " + repr(head)[1:-1] not in out, out
    long = pprint.pformat({"body": "x" * 70 + " " + pw + " y" * 40})
    assert red(pw).text(long).count(MASK) == 1


def test_json_stays_valid_after_masking(pw):
    doc = {"note": f"login with {pw} failed", "nested": json.dumps({"p": pw}), "n": 2}
    text = json.dumps(doc, ensure_ascii=False, indent=2)
    out = json.loads(red(pw).text(text))
    assert out["n"] == 2 and MASK in out["note"] and pw not in json.dumps(out, ensure_ascii=False)


@pytest.mark.parametrize("text, kept", [
    ('{"password": "a b c", "user": "root"}', '"user": "root"'),
    ("{'password': 'a b\\' c', 'user': 'root'}", "'user': 'root'"),
    ('"{\\"password\\": \\"a b\\\\\\" c\\", \\"user\\": \\"root\\"}"', '\\"user\\": \\"root\\"'),
    ("password='with space' next=1", "next=1"),
])
def test_key_pattern_runs_to_the_closing_quote(text, kept):
    out = Redactor().text(text)
    assert "a b" not in out and "with space" not in out and " c" not in out.replace(kept, ""), out
    assert kept in out and MASK in out


def test_unregistered_counts_and_short_values_are_kept():
    r = red(NASTY)
    assert r.text('"password_changes": 0, "name": "root"') == '"password_changes": 0, "name": "root"'
    assert r.text("nothing secret here: abc def") == "nothing secret here: abc def"
