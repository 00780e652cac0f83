#!/bin/sh
# An early-boot consumer: it reads the secret at start and fails when it is not there yet.
# It records the SHA-256 of what it read for the runner to compare.
set -eu
mkdir -p /run/vmtest-early
sum=$(sha256sum <"$1")
echo "${sum%% *}" >/run/vmtest-early/seen
