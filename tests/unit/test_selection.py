"""Selection with kola's semantics: globs, tags, required tags, platform filters, denylist."""

from __future__ import annotations

import datetime as dt

import pytest

from kolapy.denylist import DenyEntry
from kolapy.errors import BadInputError
from kolapy.meta import KolaMeta
from kolapy.names import GlobError, kola_name_glob_matches
from kolapy.selection import SelectionContext, select

X86 = SelectionContext(arch="x86_64")

METAS = [
    KolaMeta("basic", subtest="ssh-port"),
    KolaMeta("basic", subtest="dbus"),
    KolaMeta("basic.uefi", firmwares=("uefi",)),
    KolaMeta("podman.base", tags=("container",)),
    KolaMeta("podman.workflow", tags=("container", "slow")),
    KolaMeta("isula.base", required_tag="isula"),
    KolaMeta("ostree.arm", architectures=("aarch64",)),
    KolaMeta("ostree.not-arm", exclude_architectures=("aarch64",)),
    KolaMeta("fcos.only", distros=("fcos",)),
    KolaMeta("aws.only", platforms=("aws",)),
    KolaMeta("indep", tags=("platform-independent",)),
]


def names(metas) -> list[str]:
    return [m.full_name for m in metas]


@pytest.mark.parametrize(
    ("pattern", "name", "expected"),
    [
        ("basic", "basic", True),
        ("basic", "basic.uefi", False),
        ("basic", "basic/ssh-port", True),
        ("basic*", "basic.uefi", True),
        ("basic*", "basic/ssh-port", True),  # via its parent 'basic'
        ("basic/ssh-*", "basic/ssh-port", True),
        ("basic/ssh-*", "basic/dbus", False),
        ("podman.*", "podman.base", True),
        ("podman.*", "podmanx", False),
        ("*", "a/b", True),
        ("b?sic", "basic", True),
        ("[bc]asic", "casic", True),
        ("[^b]asic", "basic", False),
        ("[!b]asic", "casic", True),
        ("Basic", "basic", False),  # case-sensitive
        ("p[1]", "p[1]", True),  # exact name always matches
    ],
)
def test_kola_name_glob_matches(pattern: str, name: str, expected: bool) -> None:
    assert kola_name_glob_matches(pattern, name) is expected


def test_star_does_not_cross_slash() -> None:
    assert not kola_name_glob_matches("*port", "basic/ssh-port")
    assert kola_name_glob_matches("*/*port", "basic/ssh-port")


def test_malformed_glob() -> None:
    with pytest.raises(GlobError):
        kola_name_glob_matches("basic[", "basic")
    with pytest.raises(BadInputError, match="invalid test pattern"):
        select(METAS, ["basic["], X86)


def test_no_patterns_selects_all_but_required_tag_and_filters() -> None:
    sel = select(METAS, [], X86)
    assert names(sel.selected) == [
        "basic/ssh-port",
        "basic/dbus",
        "podman.base",
        "podman.workflow",
        "ostree.not-arm",
        "indep",
    ]
    reasons = {m.full_name: r for m, r in sel.deselected}
    assert reasons["isula.base"] == "requires tag 'isula'"
    assert reasons["ostree.arm"] == "architecture x86_64 not in [aarch64]"
    assert reasons["basic.uefi"] == "firmware bios not in [uefi]"
    assert reasons["fcos.only"] == "distro nestos not in [fcos]"
    assert reasons["aws.only"] == "platform qemu not in [aws]"


def test_star_pattern_is_like_no_pattern() -> None:
    assert names(select(METAS, ["*"], X86).selected) == names(select(METAS, [], X86).selected)


def test_pattern_selects_exact_name_and_its_subtests() -> None:
    assert names(select(METAS, ["basic"], X86).selected) == ["basic/ssh-port", "basic/dbus"]
    assert names(select(METAS, ["basic/dbus"], X86).selected) == ["basic/dbus"]
    reasons = dict((m.full_name, r) for m, r in select(METAS, ["basic"], X86).deselected)
    assert reasons["podman.base"] == "pattern"


def test_unmatched_pattern_is_bad_input() -> None:
    with pytest.raises(BadInputError, match="no test matches pattern 'nope'") as info:
        select(METAS, ["basic", "nope"], X86)
    assert info.value.exit_code == 2


def test_pattern_matching_only_filtered_tests_is_not_an_error() -> None:
    # kola checks patterns against all tests before filtering
    sel = select(METAS, ["ostree.arm"], X86)
    assert sel.selected == []
    assert names(m for m, _ in sel.deselected if _ != "pattern") == ["ostree.arm"]


def test_positive_tag_without_pattern_restricts() -> None:
    sel = select(METAS, [], SelectionContext("x86_64", tags=("container",)))
    assert names(sel.selected) == ["podman.base", "podman.workflow"]
    assert dict((m.full_name, r) for m, r in sel.deselected)["basic/dbus"] == "tag filter"


def test_positive_tag_with_pattern_adds() -> None:
    sel = select(METAS, ["basic"], SelectionContext("x86_64", tags=("slow",)))
    assert names(sel.selected) == ["basic/ssh-port", "basic/dbus", "podman.workflow"]


def test_negative_tag_excludes() -> None:
    sel = select(METAS, ["podman.*"], SelectionContext("x86_64", tags=("!slow",)))
    assert names(sel.selected) == ["podman.base"]
    assert dict((m.full_name, r) for m, r in sel.deselected)["podman.workflow"] == (
        "excluded by tag '!slow'"
    )


def test_required_tag_given_by_tag() -> None:
    sel = select(METAS, [], SelectionContext("x86_64", tags=("isula",)))
    assert names(sel.selected) == ["isula.base"]


def test_required_tag_named_by_pattern_runs() -> None:
    # NestOS kola: a typed pattern naming the test is enough
    assert names(select(METAS, ["isula.base"], X86).selected) == ["isula.base"]
    assert names(select(METAS, ["isula.*"], X86).selected) == ["isula.base"]


def test_arch_filters() -> None:
    arm = SelectionContext(arch="aarch64")
    sel = select(METAS, ["ostree.*"], arm)
    assert names(sel.selected) == ["ostree.arm"]
    assert dict((m.full_name, r) for m, r in sel.deselected)["ostree.not-arm"] == (
        "architecture aarch64 excluded"
    )
    # Go-style alias in the context
    assert names(select(METAS, ["ostree.*"], SelectionContext("arm64")).selected) == ["ostree.arm"]


def test_firmware_and_platform_filters() -> None:
    uefi = SelectionContext("x86_64", firmware="uefi")
    assert "basic.uefi" in names(select(METAS, [], uefi).selected)
    aws = SelectionContext("x86_64", platform="aws")
    sel = select(METAS, [], aws)
    assert "aws.only" in names(sel.selected)
    assert "basic.uefi" in names(sel.selected)  # firmware only filters on qemu
    assert dict((m.full_name, r) for m, r in sel.deselected)["indep"] == (
        "platform aws not in [qemu]"
    )


def test_denylist_skip_and_warn() -> None:
    deny = [
        DenyEntry("podman.base", tracker="https://bugs/1"),
        DenyEntry("podman.workflow", tracker="https://bugs/2", warn=True),
        DenyEntry("basic/dbus", tracker="https://bugs/3"),
    ]
    sel = select(METAS, [], X86, denylist=deny)
    assert [(m.full_name, e.tracker) for m, e in sel.denied] == [
        ("basic/dbus", "https://bugs/3"),
        ("podman.base", "https://bugs/1"),
    ]
    assert [(m.full_name, e.tracker) for m, e in sel.warn_only] == [
        ("podman.workflow", "https://bugs/2")
    ]
    assert "podman.workflow" in sel.selected_names
    assert "podman.base" not in sel.selected_names


def test_denylist_snooze_and_arch_scope() -> None:
    deny = [DenyEntry("podman.base", snooze=dt.date(2026, 6, 1), arches=("x86_64",))]
    before = select(METAS, [], X86, denylist=deny, today=dt.date(2026, 5, 31))
    assert [m.full_name for m, _ in before.denied] == ["podman.base"]
    after = select(METAS, [], X86, denylist=deny, today=dt.date(2026, 6, 1))
    assert after.denied == []
    assert "podman.base" in after.selected_names
    arm = select(METAS, ["podman.*"], SelectionContext("aarch64"), deny, dt.date(2026, 1, 1))
    assert arm.denied == []
