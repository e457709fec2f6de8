#!/bin/bash
# kola: {"exclusive": false, "description": "data/ beside the test is copied to the machine as $KOLA_EXT_DATA."}
set -xeuo pipefail
test -d "$KOLA_EXT_DATA" || { echo "FAIL: KOLA_EXT_DATA=$KOLA_EXT_DATA is not a directory" >&2; exit 1; }
# shellcheck disable=SC1091
. "$KOLA_EXT_DATA/lib.sh"
[ "$(cat "$KOLA_EXT_DATA/nested/greeting.txt")" = "hello from data/" ] || fatal "greeting differs"
[ -x "$KOLA_EXT_DATA/nested/tool.sh" ] || fatal "the executable bit of data files was lost"
[ "$("$KOLA_EXT_DATA/nested/tool.sh")" = tool-ran ] || fatal "tool.sh did not run"
ok "data dir present"
