#!/usr/bin/env bash
# Regenerates test/cluster/fixtures/ketama-libmemcached.json from the system
# libmemcached (Debian: apt-get install -y libmemcached-dev).
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
root="$(cd "$here/../.." && pwd)"
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

cc -std=gnu11 -O2 -Wall -Wextra -Werror -o "$tmp/gen-table" "$here/gen-table.c" \
  $(pkg-config --cflags --libs libmemcached)
"$tmp/gen-table" > "$tmp/table.json"
mv "$tmp/table.json" "$root/test/cluster/fixtures/ketama-libmemcached.json"
echo "wrote test/cluster/fixtures/ketama-libmemcached.json"
