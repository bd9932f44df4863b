"""The simulated hosts' shell: a lexer, a parser and an executor for the POSIX-shell subset the
suite sends (see :mod:`mocks.ssh`). Commands are looked up through ``SshService._lookup``.

The lexer is hand-written, not :mod:`shlex`: the expander needs to know which part of a word was
single-quoted, double-quoted or bare (``$x`` in '…', ``~``, ``VAR=``), and shlex drops quoting,
treats newlines as blanks and splits ``2>&1`` into three tokens.
"""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .session import Invocation, _Session
from .streams import InStream, OutStream, _BufIn, _BufOut, _FileOut, _NullOut

if TYPE_CHECKING:              # pragma: no cover
    from .server import SshService


class _Exit(Exception):
    def __init__(self, status: int):
        self.status = status


class _SyntaxError(Exception):
    pass


Seg = tuple[str, str]                           # (text, "sq" | "dq" | "raw")
Token = tuple[str, Any]                         # ("w", [Seg, ...]) or ("op", operator)
_OPS = ("2>&1", "1>&2", ">&2", "2>>", "2>", "&&", "||", ">>", ";", "|", "&", ">", "<")
_REDIRS = {"2>&1", "1>&2", ">&2", "2>>", "2>", ">>", ">", "<"}
_DUPS = ("2>&1", "1>&2", ">&2")                 # redirections without a target word
_VAR = re.compile(r"\$(?:\{([A-Za-z_][A-Za-z0-9_]*)\}|([A-Za-z_][A-Za-z0-9_]*)|([?$#0-9]))")
_ASSIGN = re.compile(r"^([A-Za-z_][A-Za-z0-9_]*)=")
_DQ_ESCAPES = '$`"\\\n'                         # what a backslash escapes inside "…"


# =========================================================================== lexer
class _Lexer:
    """Script -> tokens. A word is a list of segments, each tagged with its quoting."""

    def __init__(self, script: str):
        self.s, self.i, self.n = script, 0, len(script)
        self.toks: list[Token] = []
        self.word: list[Seg] | None = None

    def run(self) -> list[Token]:
        while self.i < self.n:
            c = self.s[self.i]
            if c in self._BLANKS:
                self._BLANKS[c](self)
            elif self.word is None and self._operator_or_comment():
                continue
            elif self.word is not None and c in ";|&<>":
                self._flush()                          # an operator ends the word; lexed next round
            else:
                self._WORD_CHARS.get(c, _Lexer._raw)(self)
        self._flush()
        return self.toks

    # ---- words
    def _add(self, text: str, kind: str) -> None:
        if self.word is None:
            self.word = []
        if kind == "raw" and self.word and self.word[-1][1] == "raw":
            self.word[-1] = (self.word[-1][0] + text, "raw")
        else:
            self.word.append((text, kind))

    def _flush(self) -> None:
        if self.word is not None:
            self.toks.append(("w", self.word))
            self.word = None

    # ---- between words
    def _blank(self) -> None:
        self._flush()
        self.i += 1

    def _newline(self) -> None:
        self._flush()
        self.toks.append(("op", "\n"))
        self.i += 1

    def _operator_or_comment(self) -> bool:
        if self.s[self.i] == "#":
            j = self.s.find("\n", self.i)
            self.i = self.n if j < 0 else j
            return True
        op = next((o for o in _OPS if self.s.startswith(o, self.i)), None)
        if op is None:
            return False
        self.toks.append(("op", op))
        self.i += len(op)
        return True

    # ---- word characters
    def _single(self) -> None:
        j = self.s.find("'", self.i + 1)
        if j < 0:
            raise _SyntaxError("unexpected EOF while looking for matching `''")
        self._add(self.s[self.i + 1:j], "sq")
        self.i = j + 1

    def _double(self) -> None:
        s, n = self.s, self.n
        j, buf = self.i + 1, []
        while j < n and s[j] != '"':
            if s[j] == "\\" and j + 1 < n and s[j + 1] in _DQ_ESCAPES:
                if s[j + 1] != "\n":                   # backslash-newline: line continuation
                    buf.append("\\$" if s[j + 1] == "$" else s[j + 1])     # \$ stays literal for the expander
                j += 2
                continue
            buf.append(s[j])
            j += 1
        if j >= n:
            raise _SyntaxError('unexpected EOF while looking for matching `"\'')
        self._add("".join(buf), "dq")
        self.i = j + 1

    def _backslash(self) -> None:
        if self.i + 1 < self.n and self.s[self.i + 1] != "\n":
            self._add(self.s[self.i + 1], "sq")
        self.i += 2

    def _raw(self) -> None:
        self._add(self.s[self.i], "raw")
        self.i += 1

    _BLANKS = {" ": _blank, "\t": _blank, "\n": _newline}
    _WORD_CHARS = {"'": _single, '"': _double, "\\": _backslash}


def _lex(script: str) -> list[Token]:
    return _Lexer(script).run()


# =========================================================================== parser
@dataclass
class _Simple:
    assigns: list[tuple[str, list[Seg]]] = field(default_factory=list)
    words: list[list[Seg]] = field(default_factory=list)
    redirs: list[tuple[str, list[Seg] | None]] = field(default_factory=list)


Pipeline = list[_Simple]
AndOr = list[tuple["str | None", Pipeline]]     # [(connector "&&"/"||"/None, pipeline)]


def _unexpected(tok: str) -> _SyntaxError:
    return _SyntaxError(f"syntax error near unexpected token `{tok}'")


class _Parser:
    """Tokens -> [(and_or, background)]."""

    def __init__(self, toks: list[Token]):
        self.toks, self.i = toks, 0
        self.out: list[tuple[AndOr, bool]] = []
        self.and_or: AndOr = []
        self.pipeline: Pipeline = []
        self.cur: _Simple | None = None
        self.connector: str | None = None

    def run(self) -> list[tuple[AndOr, bool]]:
        while self.i < len(self.toks):
            kind, val = self.toks[self.i]
            self.i += 1
            if kind == "w":
                self._word(val)
            elif val in _REDIRS:
                self._redir(val)
            else:
                self._OPERATORS.get(val, _Parser._stray)(self, val)
        if self.cur is not None:
            self._end_command("newline")
        if self.pipeline:
            self.and_or.append((self.connector, self.pipeline))
        elif self.connector is not None:
            raise _unexpected("newline")
        if self.and_or:
            self.out.append((self.and_or, False))
        return self.out

    def _current(self) -> _Simple:
        if self.cur is None:
            self.cur = _Simple()
        return self.cur

    def _end_command(self, tok: str) -> None:
        cur = self.cur
        if cur is None or (not cur.words and not cur.assigns and not cur.redirs):
            raise _unexpected(tok)
        self.pipeline.append(cur)
        self.cur = None

    def _word(self, val: list[Seg]) -> None:
        cur = self._current()
        text = "".join(t for t, _ in val)
        m = _ASSIGN.match(text) if val[0][1] == "raw" else None
        if m and not cur.words and "=" in val[0][0]:
            name = m.group(1)
            first = (val[0][0][len(name) + 1:], "raw")
            cur.assigns.append((name, [first] + list(val[1:])))
        else:
            cur.words.append(val)

    def _redir(self, op: str) -> None:
        cur = self._current()
        if op in _DUPS:
            cur.redirs.append((op, None))
            return
        if self.i >= len(self.toks) or self.toks[self.i][0] != "w":
            raise _unexpected("newline" if self.i >= len(self.toks) else self.toks[self.i][1])
        cur.redirs.append((op, self.toks[self.i][1]))
        self.i += 1

    def _pipe(self, op: str) -> None:
        self._end_command(op)

    def _connect(self, op: str) -> None:                 # && ||
        self._end_command(op)
        self.and_or.append((self.connector, self.pipeline))
        self.pipeline, self.connector = [], op

    def _terminate(self, op: str) -> None:               # ; & newline
        if self.cur is None:
            if op == "\n":                     # blank line, or a line break after &&, || or |
                return
            raise _unexpected(op)
        self._end_command(op)
        self.and_or.append((self.connector, self.pipeline))
        self.out.append((self.and_or, op == "&"))
        self.and_or, self.pipeline, self.connector = [], [], None

    def _stray(self, op: str) -> None:
        raise _unexpected(op)

    _OPERATORS = {"|": _pipe, "&&": _connect, "||": _connect, ";": _terminate, "&": _terminate, "\n": _terminate}


def _parse(toks: list[Token]) -> list[tuple[AndOr, bool]]:
    """-> [(and_or, background)], and_or = [(connector, pipeline)], pipeline = [_Simple]."""
    return _Parser(toks).run()


# =========================================================================== executor
class _Shell:
    """Runs command lines for one user in one session."""

    def __init__(self, service: SshService, session: _Session, user: str, cwd: str | None = None,
                 env: dict[str, str] | None = None, positional: list[str] | None = None):
        self.service, self.session, self.user = service, session, user
        home = service.home(user)
        self.cwd = cwd or home
        self.env = {"HOME": home, "USER": user, "LOGNAME": user, "SHELL": "/bin/bash",
                    "PATH": "/usr/local/bin:/usr/bin:/usr/local/sbin:/usr/sbin"} | dict(env or {})
        self.positional = positional or ["sh"]
        self.status = 0

    def child(self, user: str, cwd: str | None = None, positional: list[str] | None = None) -> _Shell:
        env = None if user != self.user else {k: v for k, v in self.env.items()}
        return _Shell(self.service, self.session, user, cwd or self.cwd, env, positional)

    # ---- expansion
    def _expand(self, word: list[Seg], extra: dict[str, str] | None = None) -> str:
        env = self.env if not extra else self.env | extra
        parts = []
        for k, (text, kind) in enumerate(word):
            if kind == "sq":
                parts.append(text)
                continue
            if "$(" in text or "`" in text:
                raise _SyntaxError("command substitution is not supported by the simulator")
            if kind == "raw" and k == 0 and (text == "~" or text.startswith("~/")):
                text = self.service.home(self.user) + text[1:]

            def sub(m: re.Match) -> str:
                name = m.group(1) or m.group(2) or m.group(3)
                if name == "?":
                    return str(self.status)
                if name == "$":
                    return str(os.getpid())
                if name == "#":
                    return str(max(0, len(self.positional) - 1))
                if name.isdigit():
                    i = int(name)
                    return self.positional[i] if i < len(self.positional) else ""
                return env.get(name, "")

            parts.append(_VAR.sub(sub, text).replace("\\$", "$"))
        return "".join(parts)

    # ---- execution
    def run_script(self, script: str, stdin: InStream, out: OutStream, err: OutStream) -> int:
        try:
            parsed = _parse(_lex(script))
        except _SyntaxError as exc:
            err.write(f"sh: {exc}\n")
            return 2
        try:
            for and_or, background in parsed:
                if background:
                    self._and_or(and_or, _BufIn(b""), out, err)
                    self.status = 0
                else:
                    self.status = self._and_or(and_or, stdin, out, err)
        except _Exit as e:
            self.status = e.status
        except _SyntaxError as exc:
            err.write(f"sh: {exc}\n")
            self.status = 2
        return self.status

    def _and_or(self, and_or, stdin: InStream, out: OutStream, err: OutStream) -> int:
        status = 0
        for connector, pipeline in and_or:
            if connector == "&&" and status != 0:
                continue
            if connector == "||" and status == 0:
                continue
            status = self._pipeline(pipeline, stdin, out, err)
            self.status = status
        return status

    def _pipeline(self, cmds: list[_Simple], stdin: InStream, out: OutStream, err: OutStream) -> int:
        src = stdin
        status = 0
        for k, cmd in enumerate(cmds):
            last = k == len(cmds) - 1
            sink: OutStream = out if last else _BufOut()
            status = self._simple(cmd, src, sink, err)
            if not last:
                src = _BufIn(bytes(sink.buf))          # type: ignore[attr-defined]
        return status

    def _simple(self, cmd: _Simple, stdin: InStream, out: OutStream, err: OutStream) -> int:
        assigns = {name: self._expand(w) for name, w in cmd.assigns}
        argv = [self._expand(w, assigns) for w in cmd.words]
        fs = self.service.fs
        for op, target in cmd.redirs:                         # left to right, as sh does
            if op == "2>&1":
                err = out
                continue
            if op in ("1>&2", ">&2"):
                out = err
                continue
            path = fs.norm(self._expand(target), self.cwd)
            if op == "<":
                if not fs.is_file(path):
                    err.write(f"sh: {self._expand(target)}: No such file or directory\n")
                    return 1
                if not fs.can_read(self.user, path):
                    err.write(f"sh: {self._expand(target)}: Permission denied\n")
                    return 1
                stdin = _BufIn(fs.read(path))
                continue
            sink = self._open_out(path, self._expand(target), append=op.endswith(">>"), err=err)
            if sink is None:
                return 1
            if op.startswith("2"):
                err = sink
            else:
                out = sink
        if not argv:
            self.env.update(assigns)
            return 0
        env = self.env | assigns
        return self.exec_argv(argv, stdin, out, err, env=env)

    def _open_out(self, path: str, shown: str, *, append: bool, err: OutStream) -> OutStream | None:
        fs = self.service.fs
        if path == "/dev/null":
            return _NullOut()
        if fs.is_dir(path):
            err.write(f"sh: {shown}: Is a directory\n")
            return None
        if not fs.is_dir(posixpath.dirname(path)):
            err.write(f"sh: {shown}: No such file or directory\n")
            return None
        if not fs.can_write(self.user, path):
            err.write(f"sh: {shown}: Permission denied\n")
            return None
        if not append or not fs.is_file(path):
            existed = fs.stat(path)
            fs.write(path, b"", owner=existed.owner if existed else self.user)
        return _FileOut(fs, path)

    def exec_argv(self, argv: list[str], stdin: InStream, out: OutStream, err: OutStream,
                  env: dict[str, str] | None = None) -> int:
        name = argv[0]
        handler = self.service._lookup(name)
        if handler is None:
            if "/" in name:
                err.write(f"sh: {name}: No such file or directory\n")
            else:
                err.write(f"sh: {name}: command not found\n")
            return 127
        inv = Invocation(self.service, self.session, self, list(argv), self.user, self.cwd,
                         dict(env if env is not None else self.env), stdin, out, err)
        status = handler(inv)
        return 0 if status is None else int(status)
