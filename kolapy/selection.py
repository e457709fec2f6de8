"""Which tests run: kola's name patterns, tags, required tags, platform filters, denylist.

Semantics follow kola's ``filterTests`` (mantle/kola/harness.go; the NestOS fork
for required tags):

* Patterns are globs on kola names (:mod:`kolapy.names`).  No pattern, or a
  pattern list containing ``*``, means "all tests" (kola's default ``*``).
  A typed pattern that matches no test at all is a :class:`BadInputError`
  (exit 2), checked before any other filter, as kola does.
* ``--tag T`` / ``--tag '!T'``: a test carrying a ``!``-tag is dropped.  With
  typed patterns a test runs when it matches by name OR carries a positive tag
  (tags add tests).  With no typed pattern, positive tags restrict the run to
  tests carrying one of them.  A test's ``required_tag`` counts as one of its
  tags for this.
* ``required_tag``: such a test runs only when ``--tag`` names that tag, or when
  a typed pattern names the test (NestOS kola: ``kola run isula.base`` works;
  ``kola run`` alone does not pick it up).
* Architecture, platform, distro and (on qemu) firmware allow/deny lists.
  The ``platform-independent`` tag pins a test to platform ``qemu``.
* Denylist entries (:mod:`kolapy.denylist`) then skip tests, or mark them
  warn-only (they run; a failure is reported as WARN).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass, field

from kolapy.denylist import DenyEffect, DenyEntry
from kolapy.denylist import match as deny_match
from kolapy.errors import BadInputError
from kolapy.meta import KolaMeta, full_name
from kolapy.names import GlobError, kola_name_glob_matches

__all__ = [
    "Selection",
    "SelectionContext",
    "kola_name_glob_matches",
    "select",
]

PLATFORM_INDEPENDENT_TAG = "platform-independent"
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


@dataclass(frozen=True)
class SelectionContext:
    """The run's facts that tests are filtered on."""

    arch: str
    platform: str = "qemu"
    distro: str = "nestos"
    firmware: str = "bios"
    tags: tuple[str, ...] = ()
    """``--tag`` values; a leading ``!`` excludes."""
    stream: str | None = None
    """For stream-scoped denylist entries."""
    osversion: str | None = None
    """For osversion-scoped denylist entries (NestOS)."""


@dataclass
class Selection:
    """The outcome of :func:`select`; lists keep the input order.

    ``selected`` holds every test that runs, including the ``warn_only`` ones.
    ``denied`` tests do not run; report them as SKIP with the entry's tracker.
    """

    selected: list[KolaMeta] = field(default_factory=list)
    deselected: list[tuple[KolaMeta, str]] = field(default_factory=list)
    denied: list[tuple[KolaMeta, DenyEntry]] = field(default_factory=list)
    warn_only: list[tuple[KolaMeta, DenyEntry]] = field(default_factory=list)

    @property
    def selected_names(self) -> list[str]:
        """Full kola names of the selected tests."""
        return [full_name(m) for m in self.selected]


def _glob(pattern: str, name: str) -> bool:
    try:
        return kola_name_glob_matches(pattern, name)
    except GlobError as exc:
        raise BadInputError(f"invalid test pattern: {exc}") from None


def _is_allowed(item: str, include: Sequence[str], exclude: Sequence[str]) -> tuple[bool, bool]:
    """kola's isAllowed: (allowed, excluded) for an allow-list and a deny-list."""
    excluded = item in exclude
    allowed = (not include or item in include) and not excluded
    return allowed, excluded


def _norm_arch(arch: str) -> str:
    return _ARCH_ALIASES.get(arch, arch)


def _fmt(values: Sequence[str]) -> str:
    return "[" + ", ".join(values) + "]"


def _platform_reason(meta: KolaMeta, ctx: SelectionContext) -> str | None:
    """Why the run's arch/platform/distro/firmware rules the test out, or None."""
    platforms = meta.platforms
    if PLATFORM_INDEPENDENT_TAG in meta.tags:
        platforms = ("qemu",)
    allowed, excluded = _is_allowed(ctx.platform, platforms, meta.exclude_platforms)
    if excluded:
        return f"platform {ctx.platform} excluded"
    if not allowed:
        return f"platform {ctx.platform} not in {_fmt(platforms)}"
    arch = _norm_arch(ctx.arch)
    allowed, excluded = _is_allowed(arch, meta.architectures, meta.exclude_architectures)
    if excluded:
        return f"architecture {arch} excluded"
    if not allowed:
        return f"architecture {arch} not in {_fmt(meta.architectures)}"
    allowed, excluded = _is_allowed(ctx.distro, meta.distros, meta.exclude_distros)
    if excluded:
        return f"distro {ctx.distro} excluded"
    if not allowed:
        return f"distro {ctx.distro} not in {_fmt(meta.distros)}"
    if ctx.platform == "qemu":
        allowed, excluded = _is_allowed(ctx.firmware, meta.firmwares, meta.exclude_firmwares)
        if excluded:
            return f"firmware {ctx.firmware} excluded"
        if not allowed:
            return f"firmware {ctx.firmware} not in {_fmt(meta.firmwares)}"
    return None


def _filter_reason(
    meta: KolaMeta,
    patterns: Sequence[str],
    typed: bool,
    positive: Sequence[str],
    negative: Sequence[str],
    ctx: SelectionContext,
) -> str | None:
    """Why ``meta`` is not selected, or None when it is (kola's filterTests)."""
    name = full_name(meta)
    name_match = any(_glob(p, name) for p in patterns)
    tag_match = any(t in meta.tags or t == meta.required_tag for t in positive)
    # The conditions are all "deselect if"; their order only picks the reason shown,
    # so the one the user most likely cares about comes first.
    if typed:
        if not name_match and not tag_match:
            return "pattern"
    elif positive and not tag_match:
        return "tag filter"
    bad_tag = next((t for t in negative if t in meta.tags), None)
    if bad_tag is not None:
        return f"excluded by tag '!{bad_tag}'"
    if meta.required_tag and meta.required_tag not in positive and not (typed and name_match):
        return f"requires tag '{meta.required_tag}'"
    return _platform_reason(meta, ctx)


def select(
    metas: Sequence[KolaMeta],
    patterns: Sequence[str],
    ctx: SelectionContext,
    denylist: Sequence[DenyEntry] | None = None,
    today: dt.date | None = None,
) -> Selection:
    """Apply patterns, tags, platform filters and the denylist to ``metas``.

    Raises :class:`BadInputError` for a typed pattern that matches no test, or a
    malformed pattern.
    """
    patterns = list(patterns) or ["*"]
    typed = "*" not in patterns  # kola: the default '*' means "the user typed nothing"
    names = [full_name(m) for m in metas]
    for pattern in patterns:
        if not any(_glob(pattern, n) for n in names) and (typed or names):
            raise BadInputError(f"no test matches pattern {pattern!r}")
    positive = [t for t in ctx.tags if not t.startswith("!")]
    negative = [t[1:] for t in ctx.tags if t.startswith("!")]

    result = Selection()
    for meta, name in zip(metas, names, strict=True):
        reason = _filter_reason(meta, patterns, typed, positive, negative, ctx)
        if reason is not None:
            result.deselected.append((meta, reason))
            continue
        entry = None
        if denylist:
            entry = deny_match(
                denylist, name, ctx.arch, ctx.platform, ctx.stream, ctx.osversion, today
            )
        if entry is not None and entry.effect(today) is DenyEffect.SKIP:
            result.denied.append((meta, entry))
            continue
        if entry is not None:
            result.warn_only.append((meta, entry))
        result.selected.append(meta)
    return result
