"""`kolapy list`: the kola tests the built-in suites provide, after selection."""

from __future__ import annotations

import contextlib
import io
import json
from collections.abc import Sequence
from typing import Any

from kolapy.errors import BadInputError

LIST_KEYS = (
    "name",
    "description",
    "tags",
    "architectures",
    "platforms",
    "distros",
    "required_tag",
    "timeout",
    "exclusive",
)


class _Collect:
    """A throwaway pytest plugin that keeps the selected items' kola metadata."""

    def __init__(self) -> None:
        self.metas: list[Any] = []
        self.error: str | None = None
        self.skips: dict[str, str] = {}
        self.deselected: list[tuple[str, str]] = []
        self.deselected_metas: list[Any] = []

    def pytest_deselected(self, items: Sequence[Any]) -> None:
        from kolapy.meta import meta_from_item

        for item in items:
            meta = meta_from_item(item)
            if meta is not None:
                self.deselected_metas.append(meta)

    def pytest_collection_finish(self, session: Any) -> None:
        from kolapy.meta import meta_from_item
        from kolapy.plugin import SESSION

        for item in session.items:
            meta = meta_from_item(item)
            if meta is not None:
                self.metas.append(meta)
                skip = item.get_closest_marker("skip")
                if skip is not None:
                    self.skips[meta.name] = str(skip.kwargs.get("reason", ""))
        ks = session.config.stash.get(SESSION, None)
        if ks is not None:
            self.deselected = [(n, r) for n, r in ks.deselected_reasons if r != "pattern"]


def list_tests(
    patterns: Sequence[str] = (), extra_args: Sequence[str] = (), *,
    with_skipped: bool = False,
) -> list[dict[str, Any]]:
    """Describe every selected kola test once (subtests listed under their parent).

    Each entry's ``skip`` says why the test would be SKIP ("" when it runs).
    ``with_skipped`` also lists the tests the run's arch/platform/distro/tags
    rule out (named by the patterns), with that reason as ``skip``.
    """
    import pytest

    args = ["--collect-only", "-q", "-p", "no:cacheprovider", "--pyargs", "kolapy.suites"]
    args += [f"--kola-pattern={p}" for p in patterns] + list(extra_args)
    plugin = _Collect()
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        rc = pytest.main(args, plugins=[plugin])
    if rc == 2 or "kolapy: error:" in out.getvalue() + err.getvalue():
        message = _first_error(out.getvalue() + err.getvalue())
        raise BadInputError(message)
    tests: dict[str, dict[str, Any]] = {}
    for meta in plugin.metas:
        entry = tests.get(meta.name)
        if entry is None:
            entry = tests[meta.name] = _describe(meta)
        if getattr(meta, "subtest", None):
            entry["subtests"].append(meta.subtest)
        entry["skip"] = plugin.skips.get(meta.name, "")
    listed = list(tests.values())
    if with_skipped:
        why = dict(plugin.deselected)
        for meta in plugin.deselected_metas:
            if meta.name not in tests and meta.name in why:
                tests[meta.name] = {**_describe(meta), "skip": why[meta.name]}
                listed.append(tests[meta.name])
    return listed


def closing_note(tests: Sequence[dict[str, Any]], prefix: str = "") -> str:
    """``N listed, R runnable, S skipped`` and the skip reasons with their counts,
    over the tests whose names start with ``prefix``."""
    from collections import Counter

    tests = [t for t in tests if str(t["name"]).startswith(prefix)]
    what = f"{prefix}* tests: " if prefix else ""
    skipped = [t for t in tests if t.get("skip")]
    lines = [f"kolapy: {what}{len(tests)} listed, {len(tests) - len(skipped)} runnable, "
             f"{len(skipped)} skipped"]
    reasons: Counter[str] = Counter()
    for t in skipped:
        for reason in str(t["skip"]).split("; "):
            reasons[reason] += 1
    lines += [f"  {n:4d}  {reason}" for reason, n in reasons.most_common()]
    return "\n".join(lines)


def _first_error(text: str) -> str:
    for line in text.splitlines():
        if "kolapy: error:" in line:
            return line.split("kolapy: error:", 1)[1].strip().rstrip("!").strip()
    return text.strip().splitlines()[-1] if text.strip() else "collection failed"


def _describe(meta: Any) -> dict[str, Any]:
    def neg(pos: Sequence[str], excl: Sequence[str]) -> list[str]:
        return [*pos, *(f"!{x}" for x in excl)]

    return {
        "name": meta.name,
        "description": meta.description,
        "tags": list(meta.tags),
        "architectures": neg(meta.architectures, meta.exclude_architectures),
        "platforms": neg(meta.platforms, meta.exclude_platforms),
        "distros": neg(meta.distros, meta.exclude_distros),
        "required_tag": meta.required_tag,
        "timeout": meta.timeout,
        "exclusive": meta.exclusive,
        "subtests": [],
    }


def print_tests(tests: list[dict[str, Any]], *, as_json: bool) -> None:
    """Print the list as JSON or as a table (rich, plain when not a terminal)."""
    from rich.console import Console
    from rich.table import Table

    if as_json:
        print(json.dumps(tests, indent=2))
        return
    if any(t.get("skip") for t in tests):
        table = Table("name", "tags", "arch", "skip", "description", box=None)
        for t in tests:
            table.add_row(t["name"], " ".join(t["tags"]), " ".join(t["architectures"]) or "all",
                          t.get("skip", ""), t["description"])
        Console().print(table)
        return

    table = Table("name", "tags", "arch", "description", box=None)
    for t in tests:
        table.add_row(
            t["name"], " ".join(t["tags"]), " ".join(t["architectures"]) or "all", t["description"]
        )
    Console().print(table)
