#!/usr/bin/env bash
# Builds a current memcached from Debian's source package in the `trixie` suite, for running the
# test suite against a newer server than bookworm's 1.6.18:
#
#   MEMCACHED_BIN="$(scripts/memcached-source.sh | tail -n 1)" npm test
#
# It adds a temporary deb-src entry for trixie (removed again on exit), downloads the source
# package with `apt-get source --download-only`, and builds the upstream (orig) tarball with
# `./configure --enable-tls && make` — not the Debian packaging. The binary is cached in
# .cache/memcached-<version>/memcached (git-ignored); when one is there, the script only prints its
# path. The last line of stdout is always the binary's path; progress goes to stderr.
#
# Needs root for apt-get (only when nothing is cached). Any cached build counts (the newest one), whatever
# suite it came from. Environment:
#   MEMCACHED_SUITE   Debian suite to take the source from (default: trixie)
#   MEMCACHED_REBUILD=1  ignore the cache and build again
set -euo pipefail

root="$(cd "$(dirname "$0")/.." && pwd)"
cache="$root/.cache"
suite="${MEMCACHED_SUITE:-trixie}"
log() { printf '%s\n' "memcached-source: $*" >&2; }

# A binary built before (newest version first) is the answer, unless a rebuild is asked for.
if [[ "${MEMCACHED_REBUILD:-0}" != 1 ]]; then
  cached="$(ls -1d "$cache"/memcached-*/ 2>/dev/null | sort -V -r | while read -r d; do
    if [[ -x "$d/memcached" ]]; then printf '%s\n' "${d%/}/memcached"; break; fi
  done || true)"
  if [[ -n "$cached" ]]; then
    log "cached: $("$cached" -V)"
    printf '%s\n' "$cached"
    exit 0
  fi
fi

if [[ "$(id -u)" != 0 ]]; then
  log "needs root (apt-get) to fetch the $suite source package; or set MEMCACHED_BIN to a memcached you built"
  exit 1
fi
export DEBIAN_FRONTEND=noninteractive

list="/etc/apt/sources.list.d/effect-memcache-$suite-src.list"
work="$(mkdir -p "$cache" && mktemp -d "$cache/build.XXXXXX")"
cleanup() {
  rm -f "$list"
  rm -rf "$work"
}
trap cleanup EXIT

# Only this one entry is read (and updated), so nothing else changes on the machine and the update is
# quick; List-Cleanup=0 keeps the other suites' lists.
echo "deb-src http://deb.debian.org/debian $suite main" >"$list"
apt_opts=(-o "Dir::Etc::SourceList=$list" -o "Dir::Etc::SourceParts=-" -o "APT::Get::List-Cleanup=0")
# The download goes into our private (0700) work dir, which apt's _apt user cannot write.
fetch_opts=(-o "APT::Sandbox::User=root")

need=()
command -v dpkg-source >/dev/null || need+=(dpkg-dev)
command -v cc >/dev/null || need+=(build-essential)
command -v make >/dev/null || need+=(make)
dpkg -s libevent-dev >/dev/null 2>&1 || need+=(libevent-dev)
dpkg -s libssl-dev >/dev/null 2>&1 || need+=(libssl-dev)
if ((${#need[@]})); then
  log "installing ${need[*]}"
  apt-get install -y --no-install-recommends "${need[@]}" >&2 || {
    apt-get update >&2
    apt-get install -y --no-install-recommends "${need[@]}" >&2
  }
fi

log "apt-get update ($suite deb-src)"
apt-get "${apt_opts[@]}" update >&2

cd "$work"
log "apt-get source --download-only memcached/$suite"
apt-get "${apt_opts[@]}" "${fetch_opts[@]}" source --download-only "memcached/$suite" >&2

shopt -s nullglob
origs=(memcached_*.orig.tar.*)
[[ ${#origs[@]} -ge 1 ]] || { log "no orig tarball among: $(ls)"; exit 1; }
orig="${origs[0]}"
version="${orig#memcached_}"
version="${version%.orig.tar.*}"
log "building memcached $version from $orig"

mkdir src
tar -xf "$orig" -C src --strip-components=1
cd src
start=$SECONDS
./configure --enable-tls >configure.log 2>&1 || { tail -n 40 configure.log >&2; exit 1; }
make -j"$(nproc 2>/dev/null || echo 2)" memcached >make.log 2>&1 || { tail -n 40 make.log >&2; exit 1; }
log "built in $((SECONDS - start)) s"

# TLS must be in: `-Z` enables it, and the help lists the ssl_* options.
# (The help is read whole first: `memcached -h | grep -q` fails under pipefail when grep stops early.)
help="$(./memcached -h)"
grep -q -- '-Z, --enable-ssl' <<<"$help" || { log "the build has no TLS (-Z)"; exit 1; }
grep -q 'ssl_chain_cert' <<<"$help" || { log "the build has no ssl_* options"; exit 1; }
[[ "$(./memcached -V)" == "memcached $version" ]] || log "note: -V says '$(./memcached -V)'"
# And it serves TLS: a self-signed certificate, `-Z`, and `version` through openssl s_client.
if command -v openssl >/dev/null; then
  openssl req -x509 -newkey rsa:2048 -nodes -keyout tls-key.pem -out tls-cert.pem -days 1 -subj /CN=localhost >/dev/null 2>&1
  port=$((20000 + RANDOM % 30000))
  ./memcached -u root -l 127.0.0.1 -p "$port" -U 0 -Z -o ssl_chain_cert=tls-cert.pem,ssl_key=tls-key.pem >tls.log 2>&1 &
  mc_pid=$!
  reply=""
  for _ in $(seq 1 30); do
    reply="$( (printf 'version\r\n'; sleep 0.3) | timeout 5 openssl s_client -connect "127.0.0.1:$port" -quiet 2>/dev/null | tr -d '\r' || true)"
    [[ -n "$reply" ]] && break
    sleep 0.1
  done
  kill "$mc_pid" 2>/dev/null || true
  wait "$mc_pid" 2>/dev/null || true
  [[ "$reply" == "VERSION $version" ]] || { log "TLS check failed: got '$reply' ($(cat tls.log))"; exit 1; }
  log "TLS check: 'version' over TLS answered '$reply'"
else
  log "openssl not installed: TLS (-Z) checked in the help text only"
fi

dest="$cache/memcached-$version"
rm -rf "$dest.tmp"
mkdir -p "$dest.tmp"
cp memcached "$dest.tmp/memcached"
# Keep the sources beside the binary: the meta protocol code (proto_text.c) and its tests
# (t/metaget.t) are the reference for src/memory/MemoryEngine.ts.
tar -cf - --exclude='*.o' --exclude=memcached --exclude=memcached-debug --exclude='tls-*' --exclude=tls.log . | (mkdir "$dest.tmp/src" && tar -xf - -C "$dest.tmp/src")
rm -rf "$dest"
mv "$dest.tmp" "$dest"
log "$("$dest/memcached" -V), TLS enabled"
printf '%s\n' "$dest/memcached"
