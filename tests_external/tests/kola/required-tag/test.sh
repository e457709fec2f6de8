#!/bin/bash
## kola:
##   requiredTag: kolapy-required
##   exclusive: false
##   description: Runs only when --tag kolapy-required is given (or its name is typed).
set -euo pipefail
echo "ok required-tag ran as $KOLA_TEST"
