# Sourced by the tests: helpers like fedora-coreos-config's commonlib.sh.
fatal() { echo "FAIL: $*" >&2; exit 1; }
ok() { echo "ok $*"; }
