#!/bin/bash
## kola:
##   description: config.bu beside the test is translated and applied at first boot.
set -xeuo pipefail
fatal() { echo "FAIL: $*" >&2; exit 1; }
[ "$(cat /etc/kolapy-butane-example)" = "written by Butane" ] || fatal "file from config.bu missing"
[ "$(stat -c %a /etc/kolapy-butane-example)" = 644 ] || fatal "mode of the file is not 0644"
[ "$(readlink /etc/kolapy-butane-link)" = /etc/kolapy-butane-example ] || fatal "link missing"
systemctl is-enabled kolapy-butane-example.service || fatal "unit from config.bu not enabled"
[ "$(cat /var/lib/kolapy-butane/unit-ran)" = unit-ran ] || fatal "unit from config.bu did not run"
echo "ok butane"
