#!/bin/bash
## kola:
##   exclusive: false
##   conflicts: [ext.tests_external.nonexclusive.one]
##   description: A non-exclusive test that conflicts with another one gets a machine of
##     its own (here a clone restored from the shared machine's saved template).
set -xeuo pipefail
if grep -s ext.tests_external.nonexclusive.one /var/tmp/kolapy-nonexclusive-runs; then
    echo "FAIL: ran on the same machine as the test it conflicts with" >&2; exit 1
fi
echo ok conflicting
