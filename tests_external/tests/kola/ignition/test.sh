#!/bin/bash
# kola: {"description": "config.ign beside the test is merged with the harness's config and applied.", "allowConfigWarnings": true}
set -xeuo pipefail
fatal() { echo "FAIL: $*" >&2; exit 1; }
[ "$(cat /etc/kolapy-ignition-example)" = "written by Ignition" ] || fatal "file from config.ign missing"
id kolaext || fatal "user from config.ign missing"
id -nG kolaext | grep -qw adm || fatal "user kolaext is not in group adm"
systemctl is-active kolapy-ignition-example.service || fatal "unit from config.ign not active"
# the harness's own fragment was merged in, not replaced: we got here over SSH as nest
id nest >/dev/null || fatal "the harness user is missing"
echo "ok ignition"
