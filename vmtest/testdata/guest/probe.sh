#!/bin/sh
# Runs before secretd at boot and records what it finds, so the runner can check that no
# generation existed until secretd made one.
mkdir -p /run/vmtest
generations=0
if [ -d /run/secrets.d ]; then
	generations=$(find /run/secrets.d -mindepth 1 -maxdepth 1 | wc -l)
fi
secrets=absent
if [ -e /run/secrets ] || [ -L /run/secrets ]; then
	secrets=present
fi
echo "generations=$generations secrets=$secrets" >/run/vmtest/probe
