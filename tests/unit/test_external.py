"""kola external tests without VMs: discovery and naming, metadata, configs, the run protocol."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from kolapy.errors import BadInputError
from kolapy.external import discover
from kolapy.external.config import butane_gaps, load_test_config, machine_ignition
from kolapy.external.guest import SCRIPTS, data_dir, runner_fragment, unit_name
from kolapy.external.items import skip_reasons
from kolapy.external.metadata import KEYS, parse_metadata, read_inline
from kolapy.external.run import ExtResult, parse_status, run_test, verdict
from kolapy.meta import MetadataError, build_meta

REPO = Path(__file__).resolve().parents[2]


def _exe(path: Path, text: str = "#!/bin/sh\ntrue\n") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


# --------------------------------------------------------------------------- naming


def test_names_follow_kola(tmp_path: Path) -> None:
    root = tmp_path / "my-config"
    kola = root / "tests" / "kola"
    _exe(kola / "alone" / "test.sh")                      # ext.my-config.alone
    _exe(kola / "two" / "test.sh")                        # ext.my-config.two.test.sh
    _exe(kola / "two" / "other")                          # ext.my-config.two.other
    _exe(kola / "deep" / "er" / "check")                  # ext.my-config.deep.er.check
    _exe(kola / "top")                                    # ext.my-config.top
    (kola / "alone" / "notes.txt").write_text("not executable")
    _exe(kola / "alone" / "data" / "helper.sh")           # data/ is never a test
    (kola / "noexec").mkdir()
    (kola / "noexec" / "script").write_text("#!/bin/sh\n")  # no x bit: warned, not a test
    names = [t.name for t in discover(root)]
    assert names == sorted([
        "ext.my-config.alone", "ext.my-config.two.test.sh", "ext.my-config.two.other",
        "ext.my-config.deep.er.check", "ext.my-config.top",
    ])


def test_symlinks_followed_and_data_resolved(tmp_path: Path) -> None:
    kola = tmp_path / "proj" / "tests" / "kola"
    shared = kola / "shared-data"
    _exe(shared / "lib.sh")
    (kola / "t").mkdir(parents=True)
    _exe(kola / "real.sh")
    (kola / "t" / "test.sh").symlink_to(kola / "real.sh")
    (kola / "t" / "data").symlink_to(shared)
    (test,) = [t for t in discover(tmp_path / "proj") if t.name == "ext.proj.t"]
    assert test.data == shared.resolve()
    assert test.exe_name == "test.sh"


def test_missing_tests_dir_gives_nothing_and_missing_root_is_bad_input(tmp_path: Path) -> None:
    assert discover(tmp_path) == []
    with pytest.raises(BadInputError, match="does not exist"):
        discover(tmp_path / "nope")


def test_config_fcc_is_refused(tmp_path: Path) -> None:
    kola = tmp_path / "p" / "tests" / "kola" / "x"
    _exe(kola / "test.sh")
    (kola / "config.fcc").write_text("variant: fcos\n")
    with pytest.raises(BadInputError, match=r"config\.fcc"):
        discover(tmp_path / "p")


# --------------------------------------------------------------------------- metadata


def test_inline_json_and_yaml(tmp_path: Path) -> None:
    j = _exe(tmp_path / "j", '#!/bin/sh\n# kola: {"exclusive": false, "tags": "a b"}\n')
    y = _exe(tmp_path / "y", "#!/bin/sh\n## kola:\n##   minMemory: 4096  # comment\n"
                             "##   architectures: '!s390x ppc64le'\nset -e\n## later: x\n")
    assert read_inline(j) == ({"exclusive": False, "tags": "a b"}, "json")
    assert read_inline(y) == ({"minMemory": 4096, "architectures": "!s390x ppc64le"}, "yaml")
    assert read_inline(_exe(tmp_path / "n")) is None


def test_inline_only_in_first_8k(tmp_path: Path) -> None:
    late = _exe(tmp_path / "late", "#!/bin/sh\n" + "#\n" * 5000 + '# kola: {"exclusive": false}\n')
    assert read_inline(late) is None


def test_inline_replaces_kola_json(tmp_path: Path) -> None:
    kola = tmp_path / "p" / "tests" / "kola" / "x"
    _exe(kola / "a", '#!/bin/sh\n# kola: {"description": "inline"}\n')
    _exe(kola / "b")
    (kola / "kola.json").write_text(json.dumps({"description": "from json", "exclusive": False}))
    by = {t.name: t for t in discover(tmp_path / "p")}
    assert by["ext.p.x.a"].meta.values["description"] == "inline"
    assert by["ext.p.x.a"].meta.exclusive is True
    assert by["ext.p.x.b"].meta.values["description"] == "from json"
    assert by["ext.p.x.b"].meta.exclusive is False


def test_every_documented_key_is_known() -> None:
    documented = {"architectures", "platforms", "distros", "tags", "requiredTag",
                  "additionalDisks", "minMemory", "minDisk", "additionalNics",
                  "appendKernelArgs", "appendFirstbootKernelArgs", "exclusive", "timeoutMin",
                  "conflicts", "allowConfigWarnings", "description"}
    assert documented <= KEYS


def test_metadata_translation() -> None:
    meta = parse_metadata({
        "architectures": "!s390x ppc64le", "platforms": "qemu", "distros": "fcos nestos",
        "tags": "one two", "requiredTag": "special", "additionalDisks": ["5G", "1G:serial=x"],
        "minMemory": 4096, "minDisk": 15, "additionalNics": 2,
        "appendKernelArgs": "enforcing=0 quiet", "appendFirstbootKernelArgs": "ip=dhcp",
        "exclusive": False, "timeoutMin": 3, "conflicts": ["ext.x.y"],
        "allowConfigWarnings": True, "description": "d",
    }, "t")
    km = build_meta({"name": "ext.p.t", **meta.values}, "t")
    assert km.exclude_architectures == ("s390x", "ppc64le") and not km.architectures
    assert km.platforms == ("qemu",) and km.distros == ("fcos", "nestos")
    assert km.tags == ("one", "two") and km.required_tag == "special"
    assert [d.size_gib for d in km.additional_disks] == [5.0, 1.0]
    assert km.additional_disks[1].serial == "x"
    assert (km.min_memory, km.min_disk, km.additional_nics) == (4096, 15, 2)
    assert km.append_kargs == ("enforcing=0", "quiet")
    assert km.append_firstboot_kargs == ("ip=dhcp",)
    assert km.exclusive is False and km.conflicts == ("ext.x.y",)
    assert km.timeout == 180.0 and meta.timeout_min == 3
    assert km.has_flag("allow_config_warnings") and km.description == "d"
    assert meta.gaps == ()


def test_default_timeout_and_exclusive() -> None:
    meta = parse_metadata({}, "t")
    assert meta.exclusive is True
    assert meta.values["timeout"] == 600.0 and meta.timeout_min == 0


@pytest.mark.parametrize("raw, message", [
    ({"architecture": "x86_64"}, "unknown kola metadata key 'architecture'"),
    ({"exclusive": "no"}, "'exclusive': expected true or false"),
    ({"minMemory": "4G"}, "'minMemory': expected a non-negative integer"),
    ({"tags": ["a"]}, "'tags': expected a string"),
])
def test_strict_metadata_errors(raw: dict[str, Any], message: str) -> None:
    with pytest.raises(MetadataError, match=message) as exc:
        parse_metadata(raw, "/x/test.sh")
    assert str(exc.value).startswith("/x/test.sh: ")
    assert "\n" not in str(exc.value)


def test_keys_kolapy_lacks_are_gaps_not_errors() -> None:
    meta = parse_metadata({"primaryDisk": "20G:mpath", "injectContainer": True,
                           "noInstanceCreds": True, "additionalDisks": ["5G:bogus"]}, "t")
    text = " | ".join(meta.gaps)
    assert "primaryDisk" in text and "injectContainer" in text and "bogus" in text
    assert "noInstanceCreds" not in text  # cloud-only: a no-op on QEMU, as in kola


def test_needs_internet_is_a_skip_reason(tmp_path: Path) -> None:
    kola = tmp_path / "p" / "tests" / "kola" / "n"
    _exe(kola / "test.sh", "#!/bin/sh\n# kola: {\"tags\": \"needs-internet\"}\n")
    (test,) = discover(tmp_path / "p")
    assert any("needs-internet" in r for r in skip_reasons(test, ()))


# --------------------------------------------------------------------------- configs


def test_butane_gaps_name_the_feature(tmp_path: Path) -> None:
    bu = tmp_path / "config.bu"
    bu.write_text("variant: fcos\nversion: 1.4.0\nstorage:\n  luks:\n    - name: root\n"
                  "      device: /dev/vda\n")
    config, gaps = load_test_config(bu)
    assert config is None and len(gaps) == 1 and "storage.luks" in gaps[0]
    assert butane_gaps("variant: fcos\nversion: 1.4.0\n") == []


def test_butane_unknown_field_is_an_error_naming_it(tmp_path: Path) -> None:
    bu = tmp_path / "config.bu"
    bu.write_text("variant: fcos\nversion: 1.4.0\nstorage:\n  files:\n    - path: /x\n"
                  "      permissions: 420\n")
    with pytest.raises(BadInputError, match=r"storage\.files\[0\]\.permissions") as exc:
        load_test_config(bu)
    assert str(bu) in str(exc.value)


def test_runner_is_merged_and_identical_for_every_test(tmp_path: Path) -> None:
    ign = tmp_path / "config.ign"
    ign.write_text(json.dumps({"ignition": {"version": "3.2.0"},
                               "storage": {"files": [{"path": "/etc/x"}]}}))
    config, _ = load_test_config(ign)
    merged = machine_ignition(config).to_dict()
    paths = {f["path"] for f in merged["storage"]["files"]}
    assert "/etc/x" in paths and "/var/opt/kolapy/ext/start" in paths
    assert merged["ignition"]["version"] == "3.2.0"
    assert machine_ignition(None) == runner_fragment()


def test_unit_and_data_names_match_kola() -> None:
    assert (unit_name(0), data_dir(0)) == ("kola-runext.service", "/var/opt/kola/extdata")
    assert (unit_name(3), data_dir(3)) == ("kola-runext-3.service", "/var/opt/kola/extdata-3")


@pytest.mark.parametrize("name", sorted(SCRIPTS))
def test_guest_scripts_are_valid_sh(name: str, tmp_path: Path) -> None:
    path = tmp_path / name
    path.write_text(SCRIPTS[name])
    proc = subprocess.run(["sh", "-n", str(path)], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize("props, expected", [
    ({"ActiveState": "active", "SubState": "running"}, None),
    ({"ActiveState": "activating", "SubState": "start"}, None),
    ({"ActiveState": "active", "SubState": "exited", "Result": "success",
      "ExecMainCode": "1", "ExecMainStatus": "0"}, (True, "")),
    ({"ActiveState": "failed", "SubState": "failed", "Result": "exit-code",
      "ExecMainCode": "1", "ExecMainStatus": "3"}, (False, "exited with status 3")),
    ({"ActiveState": "failed", "SubState": "failed", "Result": "signal",
      "ExecMainCode": "2", "ExecMainStatus": "9"}, (False, "killed by signal 9 (SIGKILL)")),
])
def test_verdict(props: dict[str, str], expected: Any) -> None:
    assert verdict(props) == expected


def test_parse_status() -> None:
    assert parse_status("reboot mark 1\n") == {"reboot": "mark 1"}
    assert parse_status("ActiveState=active\nSubState=running\n") == {
        "ActiveState": "active", "SubState": "running"}


class FakeGuest:
    """A machine that plays a script of unit states and reboot requests."""

    name = "fake"

    def __init__(self, states: list[str]) -> None:
        self.states = list(states)
        self.boots = 0
        self.commands: list[str] = []

    @property
    def boot_id(self) -> str:
        return f"boot-{self.boots}"

    def copy_to(self, local: Any, remote: str) -> None:
        self.commands.append(f"copy {remote}")

    def succeed(self, cmd: Any, timeout: float | None = None) -> str:
        text = cmd if isinstance(cmd, str) else " ".join(cmd)
        self.commands.append(text)
        if "/status " in text:
            return self.states.pop(0) if len(self.states) > 1 else self.states[0]
        return ""

    def run(self, cmd: Any, timeout: float | None = None) -> Any:
        self.commands.append(cmd if isinstance(cmd, str) else " ".join(cmd))
        return type("R", (), {"stdout": "journal line\n"})()

    def wait_for_reboot(self, old: str) -> None:
        self.boots += 1


RUNNING = "ActiveState=active\nSubState=running\n"
DONE = "ActiveState=active\nSubState=exited\nResult=success\nExecMainStatus=0\n"


def _test(tmp_path: Path) -> Any:
    _exe(tmp_path / "p" / "tests" / "kola" / "r" / "test.sh")
    (test,) = discover(tmp_path / "p")
    return test


def test_reboots_are_followed_with_marks(tmp_path: Path) -> None:
    guest = FakeGuest([RUNNING, "reboot m1", RUNNING, "reboot m2", DONE])
    result = run_test(guest, _test(tmp_path), 0, 600, sleep=lambda s: None)
    assert result.passed and result.marks == ["m1", "m2"]
    assert result.boot_ids == ["boot-0", "boot-1", "boot-2"]
    starts = [c for c in guest.commands if "/start " in c]
    assert starts[0].endswith("kola-runext.service")
    assert starts[1].endswith("kola-runext.service m1") and starts[2].endswith(" m2")
    assert sum("reboot-ack" in c for c in guest.commands) == 2


def test_timeout_stops_the_unit_and_fails(tmp_path: Path) -> None:
    now = [0.0]
    guest = FakeGuest([RUNNING])

    def sleep(s: float) -> None:
        now[0] += s

    result = run_test(guest, _test(tmp_path), 0, 60, clock=lambda: now[0], sleep=sleep)
    assert not result.passed and result.reason == "timed out after 1 min (timeoutMin)"
    assert any("systemctl kill" in c for c in guest.commands)


def test_unproven_reboot_fails(tmp_path: Path) -> None:
    guest = FakeGuest(["reboot m1", DONE])
    guest.wait_for_reboot = lambda old: None  # type: ignore[method-assign]
    result = run_test(guest, _test(tmp_path), 0, 600, sleep=lambda s: None)
    assert not result.passed and "not proven" in result.reason


def test_render_lists_reboots() -> None:
    from kolapy.external.run import render

    text = render(ExtResult(True, marks=["a"], boot_ids=["b0", "b1"], journal="J"))
    assert "reboot 1: mark 'a', boot b0 -> b1" in text and text.endswith("J")


# --------------------------------------------------------------------------- CLI


def _kolapy(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "kolapy.cli", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=300)


def test_list_tests_external(tmp_path: Path) -> None:
    proc = _kolapy("list", "--json", "-E", str(REPO / "tests_external"), cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    tests = {t["name"]: t for t in json.loads(proc.stdout)}
    ext = {n: t for n, t in tests.items() if n.startswith("ext.")}
    assert "external" in ext["ext.tests_external.basic"]["tags"]
    assert ext["ext.tests_external.arch-gated"]["skip"] == "architecture x86_64 not in [s390x]"
    assert ext["ext.tests_external.required-tag"]["skip"] == "requires tag 'kolapy-required'"
    assert ext["ext.tests_external.basic"]["skip"] == ""
    assert f"{len(ext)} listed, {len(ext) - 2} runnable, 2 skipped" in proc.stderr
    tagged = _kolapy("list", "--json", "--tag", "kolapy-required", "-E",
                     str(REPO / "tests_external"), cwd=tmp_path)
    names = [t["name"] for t in json.loads(tagged.stdout) if not t.get("skip")]
    assert "ext.tests_external.required-tag" in names


def test_unknown_key_is_exit_2(tmp_path: Path) -> None:
    _exe(tmp_path / "bad" / "tests" / "kola" / "x" / "test.sh",
         "#!/bin/sh\n## kola:\n##   exclusive: false\n##   colour: blue\n")
    proc = _kolapy("list", "-E", str(tmp_path / "bad"), cwd=tmp_path)
    assert proc.returncode == 2, proc.stdout + proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert "unknown kola metadata key 'colour'" in line and "x/test.sh" in line


REAL_TREES = os.environ.get("KOLAPY_EXTTEST_TREES", "")


@pytest.mark.skipif(not REAL_TREES, reason="needs checkouts of nestos-config / "
                    "fedora-coreos-config: set KOLAPY_EXTTEST_TREES=DIR[:DIR...]")
@pytest.mark.parametrize("tree", REAL_TREES.split(":") if REAL_TREES else [""])
def test_real_trees_list_without_error(tree: str, tmp_path: Path) -> None:
    proc = _kolapy("list", "--json", "-E", tree, cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr[-2000:]
    ext = [t for t in json.loads(proc.stdout) if t["name"].startswith("ext.")]
    on_disk = sum(1 for _ in discover(Path(tree)))
    assert len(ext) == on_disk > 0
    skipped = [t for t in ext if t["skip"]]
    assert f"{len(ext)} listed, {len(ext) - len(skipped)} runnable, {len(skipped)} skipped" \
        in proc.stderr
