"""Glob patterns on kola names, with kola's (Go ``filepath.Match``) rules.

``*`` matches any run of characters except ``/``, ``?`` one character except
``/``, ``[a-z]`` / ``[^a-z]`` (also ``[!a-z]``) a class, ``\\x`` a literal ``x``.
Because ``*`` stops at ``/``, ``basic*`` never reaches into subtests
(``basic/ssh-port``); a pattern naming the parent covers its subtests instead.
"""

from __future__ import annotations

import re
from functools import lru_cache


class GlobError(ValueError):
    """A malformed pattern (e.g. an unclosed ``[``)."""


@lru_cache(maxsize=512)
def glob_regex(pattern: str) -> re.Pattern[str]:
    """Compile a kola glob into an anchored regex; raises :class:`GlobError`."""
    out = []
    i, n = 0, len(pattern)
    while i < n:
        c = pattern[i]
        if c == "*":
            out.append("[^/]*")
        elif c == "?":
            out.append("[^/]")
        elif c == "\\":
            if i + 1 >= n:
                raise GlobError(f"malformed pattern {pattern!r}: trailing backslash")
            i += 1
            out.append(re.escape(pattern[i]))
        elif c == "[":
            j = i + 1
            negate = j < n and pattern[j] in "^!"
            if negate:
                j += 1
            body = []
            first = True
            while j < n and (pattern[j] != "]" or first):
                first = False
                ch = pattern[j]
                if ch == "\\" and j + 1 < n:
                    j += 1
                    body.append(re.escape(pattern[j]))
                elif ch == "-" and body and j + 1 < n and pattern[j + 1] != "]":
                    body.append("-")
                else:
                    body.append(re.escape(ch))
                j += 1
            if j >= n or not body:
                raise GlobError(f"malformed pattern {pattern!r}: unclosed or empty '['")
            out.append(("[^" if negate else "[") + "".join(body) + "]")
            i = j
        else:
            out.append(re.escape(c))
        i += 1
    try:
        return re.compile("".join(out) + r"\Z")
    except re.error as exc:  # e.g. a reversed range [z-a]
        raise GlobError(f"malformed pattern {pattern!r}: {exc}") from None


def kola_name_glob_matches(pattern: str, name: str) -> bool:
    """Whether ``pattern`` selects the kola test ``name``.

    True when the pattern equals the name, glob-matches it, or -- for a subtest
    ``parent/child`` -- glob-matches its parent.  Raises :class:`GlobError`.
    """
    regex = glob_regex(pattern)
    if pattern == name or regex.match(name):
        return True
    parent, sep, _ = name.partition("/")
    return bool(sep) and (pattern == parent or regex.match(parent) is not None)
