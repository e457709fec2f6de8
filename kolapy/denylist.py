"""kola's ``kola-denylist.yaml``: skip (or only warn about) known-broken tests.

The file is a YAML list of entries::

    - pattern: ostree.upgrade-*        # glob on kola names (as in kola)
      tracker: https://tracker/issue/42
      arches: [aarch64]                # optional scopes: the entry applies only there
      platforms: [qemu]
      streams: [stable]
      osversion: [nestos-22.03]
      snooze: 2026-12-31               # optional: skip only until this date
      warn: true                       # optional: run, but failure becomes WARN

Semantics, as kola's ``ParseDenyListYaml``/``filterDenylistedTests``:

* Scopes: an entry with ``arches``/``platforms`` applies only when the run's arch /
  platform is listed.  ``streams``/``osversion`` likewise; when the run's stream
  (osversion) is unknown, entries scoped to streams (osversions) do NOT apply
  (coreos-assembler's current behaviour; it prints a warning in that case).
* No ``snooze``: ``warn: false`` skips the test; ``warn: true`` runs it and turns
  a failure into WARN.
* ``snooze: D``: before day D the test is skipped (even with ``warn: true``).
  From day D on the snooze has expired: ``warn: true`` then turns failure into
  WARN, otherwise the entry has no effect.  (kola compares ``now > D 00:00 UTC``,
  so the snooze is over on day D itself; dates are taken in UTC.)
* The special pattern ``skip-console-warnings`` names no test: it makes the
  console badness checks warn instead of fail (:func:`skip_console_warnings`).
* A skip entry beats a warn entry when both match.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import yaml

from kolapy.errors import BadInputError
from kolapy.names import GlobError, kola_name_glob_matches

SKIP_CONSOLE_WARNINGS = "skip-console-warnings"
_KEYS = frozenset(
    {"pattern", "tracker", "streams", "arches", "platforms", "snooze", "warn", "osversion"}
)
_ARCH_ALIASES = {"amd64": "x86_64", "arm64": "aarch64"}


class DenyEffect(StrEnum):
    """What a matching entry does to a test today."""

    SKIP = "skip"
    WARN = "warn"


@dataclass(frozen=True)
class DenyEntry:
    """One entry of ``kola-denylist.yaml``."""

    pattern: str
    tracker: str = ""
    streams: tuple[str, ...] = ()
    arches: tuple[str, ...] = ()
    platforms: tuple[str, ...] = ()
    snooze: dt.date | None = None
    warn: bool = False
    osversion: tuple[str, ...] = ()

    def applies_to(
        self, arch: str, platform: str, stream: str | None = None, osversion: str | None = None
    ) -> bool:
        """Whether the entry's scopes (arches, platforms, streams, osversion) include this run."""
        if self.arches and _arch(arch) not in {_arch(a) for a in self.arches}:
            return False
        if self.platforms and platform not in self.platforms:
            return False
        if self.streams and (stream is None or stream not in self.streams):
            return False
        return not (self.osversion and (osversion is None or osversion not in self.osversion))

    def effect(self, today: dt.date | None = None) -> DenyEffect | None:
        """SKIP, WARN or None (an expired snooze without ``warn``) on ``today``."""
        day = today or _utc_today()
        if self.snooze is not None and day < self.snooze:
            return DenyEffect.SKIP
        if self.warn:
            return DenyEffect.WARN
        return None if self.snooze is not None else DenyEffect.SKIP

    def reason(self) -> str:
        """A one-line reason for reports: ``denylisted (tracker)``."""
        text = f"denylisted by pattern {self.pattern!r}"
        if self.snooze is not None:
            text += f", snoozed until {self.snooze.isoformat()}"
        if self.tracker:
            text += f": {self.tracker}"
        return text


def _utc_today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def _arch(name: str) -> str:
    return _ARCH_ALIASES.get(name, name)


def _str_list(value: Any, key: str, where: str) -> tuple[str, ...]:
    if value is None:
        return ()
    if isinstance(value, str):
        return (value,)
    if isinstance(value, list) and all(isinstance(v, str | int | float) for v in value):
        return tuple(str(v) for v in value)
    raise BadInputError(f"{where}: {key} must be a list of strings, got {value!r}")


def _snooze(value: Any, where: str) -> dt.date | None:
    if value is None or value == "":
        return None
    if isinstance(value, dt.datetime):
        return value.date()
    if isinstance(value, dt.date):  # YAML turns an unquoted 2026-01-31 into a date
        return value
    if isinstance(value, str):
        try:
            return dt.date.fromisoformat(value.strip())
        except ValueError:
            pass
    raise BadInputError(f"{where}: snooze must be a date YYYY-MM-DD, got {value!r}")


def parse_denylist(text: str, source: str = "<denylist>") -> list[DenyEntry]:
    """Parse denylist YAML text; errors name ``source`` and the entry."""
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise BadInputError(f"{source}: not valid YAML: {exc}") from None
    if data is None:
        return []
    if not isinstance(data, list):
        raise BadInputError(f"{source}: expected a list of entries, got {type(data).__name__}")
    entries = []
    for index, obj in enumerate(data, 1):
        where = f"{source}: entry {index}"
        if not isinstance(obj, dict):
            raise BadInputError(f"{where}: expected a mapping, got {obj!r}")
        unknown = sorted(set(map(str, obj)) - _KEYS)
        if unknown:
            raise BadInputError(
                f"{where}: unknown key(s) {', '.join(unknown)} (known: {', '.join(sorted(_KEYS))})"
            )
        pattern = obj.get("pattern")
        if not isinstance(pattern, str) or not pattern:
            raise BadInputError(f"{where}: pattern must be a non-empty string")
        where = f"{source}: entry {index} ({pattern})"
        warn = obj.get("warn", False)
        if not isinstance(warn, bool):
            raise BadInputError(f"{where}: warn must be true or false, got {warn!r}")
        tracker = obj.get("tracker") or ""
        if not isinstance(tracker, str):
            raise BadInputError(f"{where}: tracker must be a string, got {tracker!r}")
        if pattern != SKIP_CONSOLE_WARNINGS:
            try:
                kola_name_glob_matches(pattern, "")
            except GlobError as exc:
                raise BadInputError(f"{where}: {exc}") from None
        entries.append(
            DenyEntry(
                pattern=pattern,
                tracker=tracker,
                streams=_str_list(obj.get("streams"), "streams", where),
                arches=_str_list(obj.get("arches"), "arches", where),
                platforms=_str_list(obj.get("platforms"), "platforms", where),
                snooze=_snooze(obj.get("snooze"), where),
                warn=warn,
                osversion=_str_list(obj.get("osversion"), "osversion", where),
            )
        )
    return entries


def load_denylist(path: str | Path) -> list[DenyEntry]:
    """Read a ``kola-denylist.yaml``; a missing or invalid file is a BadInputError naming it."""
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise BadInputError(f"denylist {p}: cannot read: {exc.strerror or exc}") from None
    return parse_denylist(text, source=f"denylist {p}")


def run_denylist(path: str | Path | None, patterns: Sequence[str] = ()) -> list[DenyEntry] | None:
    """A run's denylist: the entries of ``path`` plus one skip entry per ``--denylist-test``
    pattern (kola's option; its tracker names it); None when there is neither."""
    entries = load_denylist(path) if path else []
    entries += [DenyEntry(pattern=p, tracker="--denylist-test") for p in patterns]
    return entries or None


def match(
    entries: Sequence[DenyEntry],
    name: str,
    arch: str,
    platform: str,
    stream: str | None = None,
    osversion: str | None = None,
    today: dt.date | None = None,
) -> DenyEntry | None:
    """The entry that acts on test ``name`` today, or None.

    Only entries with an effect count (see :meth:`DenyEntry.effect`); a SKIP entry
    wins over a WARN one.  ``name`` may be ``parent/child``: a pattern matching the
    parent covers its subtests.
    """
    found: DenyEntry | None = None
    for entry in entries:
        if entry.pattern == SKIP_CONSOLE_WARNINGS:
            continue
        if not entry.applies_to(arch, platform, stream, osversion):
            continue
        effect = entry.effect(today)
        if effect is None or not kola_name_glob_matches(entry.pattern, name):
            continue
        if effect is DenyEffect.SKIP:
            return entry
        found = found or entry
    return found


def skip_console_warnings(
    entries: Sequence[DenyEntry],
    arch: str,
    platform: str,
    stream: str | None = None,
    osversion: str | None = None,
) -> bool:
    """Whether a ``skip-console-warnings`` entry applies: badness then only warns."""
    return any(
        e.pattern == SKIP_CONSOLE_WARNINGS and e.applies_to(arch, platform, stream, osversion)
        for e in entries
    )
