#!/bin/bash
# kola: {"architectures": "s390x", "exclusive": false, "description": "Gated to s390x: never runs on x86_64 or aarch64 (and fails if it does)."}
echo "FAIL: ran on $(uname -m) although gated to s390x" >&2
exit 1
