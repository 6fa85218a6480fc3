#!/usr/bin/env bash
# A throwaway PostgreSQL cluster for the PostgreSQL pass of the tests (and for trying feedmail
# on PostgreSQL by hand). It runs initdb + pg_ctl in a temporary directory on 127.0.0.1 as an
# unprivileged user (the `postgres` user when started as root), and removes it all on exit.
#
#   bash scripts/test-pg.sh                      start a cluster, print its URL, stop it on Ctrl-C
#   bash scripts/test-pg.sh CMD ARGS...          run CMD with FEEDMAIL_TEST_DATABASE_URL set, then stop it
#   bash scripts/test-pg.sh --install            only install PostgreSQL when it is missing (for CI)
#   bash scripts/test-pg.sh --if-available CMD   the same as CMD, but when FEEDMAIL_TEST_DATABASE_URL is not set and
#                                                PostgreSQL is not installed, say how to enable the pass and exit 0
#
# FEEDMAIL_TEST_DATABASE_URL already set: no cluster is started, CMD runs against that URL (an
# admin URL: the tests create and drop one database per data directory in it).
# PostgreSQL missing and we are root (or have passwordless sudo): Debian's `postgresql` is
# installed with apt-get (not with --if-available, which never installs anything).
# FEEDMAIL_TEST_PG_PORT picks the port (default: a free one).
set -euo pipefail
cd "$(dirname "$0")/.."

say() { echo "test-pg: $*" >&2; }
fail() { echo "test-pg: $*" >&2; exit 1; }

if_available=false
install_only=false
if [ "${1:-}" = "--if-available" ]; then if_available=true; shift; fi
if [ "${1:-}" = "--install" ]; then install_only=true; shift; fi

run_cmd() {
  if [ $# -eq 0 ]; then
    say "PostgreSQL is ready: FEEDMAIL_TEST_DATABASE_URL=$FEEDMAIL_TEST_DATABASE_URL"
    echo "$FEEDMAIL_TEST_DATABASE_URL"
    say "press Ctrl-C to stop it and remove its files"
    # In the background and waited for, so a TERM (not only a Ctrl-C) stops the cluster at once.
    while true; do sleep 3600 & wait $!; done
  fi
  "$@"
}

if [ -n "${FEEDMAIL_TEST_DATABASE_URL:-}" ] && ! $install_only; then
  say "using FEEDMAIL_TEST_DATABASE_URL (no cluster started)"
  run_cmd "$@"
  exit $?
fi

find_bindir() {
  local d
  for d in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
    [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ] && { echo "$d"; return 0; }
  done
  if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then dirname "$(command -v initdb)"; return 0; fi
  if command -v pg_config >/dev/null 2>&1 && [ -x "$(pg_config --bindir)/initdb" ]; then pg_config --bindir; return 0; fi
  return 1
}

as_root=()
[ "$(id -u)" -eq 0 ] || { command -v sudo >/dev/null 2>&1 && sudo -n true >/dev/null 2>&1 && as_root=(sudo -n); } || true

bindir=$(find_bindir || true)
if [ -z "$bindir" ]; then
  how="install PostgreSQL (Debian: 'apt-get install postgresql'; any PostgreSQL 13 or newer with initdb and pg_ctl works) or set FEEDMAIL_TEST_DATABASE_URL to the admin URL of a throwaway server, then run 'npm run test:pg'"
  if $if_available; then
    say "PostgreSQL pass SKIPPED: no PostgreSQL here (no initdb found). To run it, $how"
    exit 0
  fi
  command -v apt-get >/dev/null 2>&1 || fail "no PostgreSQL and no apt-get here; $how"
  if [ "$(id -u)" -ne 0 ] && [ ${#as_root[@]} -eq 0 ]; then fail "no PostgreSQL here; installing it needs root: run 'sudo apt-get install postgresql' once, then again"; fi
  say "installing Debian's postgresql with apt-get (once; later runs find it)"
  export DEBIAN_FRONTEND=noninteractive
  ${as_root[@]+"${as_root[@]}"} apt-get update -q || fail "apt-get update failed; install postgresql yourself"
  ${as_root[@]+"${as_root[@]}"} apt-get install -y -q --no-install-recommends postgresql || fail "apt-get install postgresql failed; install it yourself"
  bindir=$(find_bindir) || fail "postgresql was installed but no initdb was found under /usr/lib/postgresql/*/bin"
fi

if $install_only; then say "PostgreSQL is installed ($bindir)"; exit 0; fi

# initdb refuses to run as root: run the cluster as `postgres` (created by Debian's package) or as ourselves.
as_owner=()
if [ "$(id -u)" -eq 0 ]; then
  id postgres >/dev/null 2>&1 || fail "running as root and there is no 'postgres' user to run the cluster as; run as an unprivileged user instead"
  as_owner=(runuser -u postgres --)
fi

port=${FEEDMAIL_TEST_PG_PORT:-$(node -e "const s=require('net').createServer().listen(0,'127.0.0.1',()=>{console.log(s.address().port);s.close()})")}
dir=$(mktemp -d /tmp/feedmail-pg-XXXXXX)
chmod 755 "$dir"
[ ${#as_owner[@]} -eq 0 ] || chown postgres: "$dir"

stop() {
  ${as_owner[@]+"${as_owner[@]}"} "$bindir/pg_ctl" -D "$dir/data" -m immediate stop >/dev/null 2>&1 || true
  rm -rf "$dir"
}
trap stop EXIT
trap 'exit 130' INT TERM

say "starting a throwaway cluster ($("$bindir/postgres" --version)) in $dir on 127.0.0.1:$port, fsync=${FEEDMAIL_TEST_PG_FSYNC:-off}"
${as_owner[@]+"${as_owner[@]}"} "$bindir/initdb" -D "$dir/data" --username=postgres --auth=trust --encoding=UTF8 --locale=C.UTF-8 >"$dir/initdb.log" 2>&1 \
  || ${as_owner[@]+"${as_owner[@]}"} "$bindir/initdb" -D "$dir/data" --username=postgres --auth=trust --encoding=UTF8 --locale=C >"$dir/initdb.log" 2>&1 \
  || { cat "$dir/initdb.log" >&2; fail "initdb failed"; }
# A cluster for tests only: nothing here needs to survive a crash of the machine, so no fsync
# (synchronous_commit stays on, as feedmail expects and `feedmail doctor` checks).
# FEEDMAIL_TEST_PG_FSYNC=on keeps fsync (benchmarks: durable commits, as SQLite's synchronous=FULL).
fsync=${FEEDMAIL_TEST_PG_FSYNC:-off}
${as_owner[@]+"${as_owner[@]}"} "$bindir/pg_ctl" -D "$dir/data" -l "$dir/server.log" -w -t 60 \
  -o "-c listen_addresses=127.0.0.1 -c port=$port -c unix_socket_directories=$dir -c max_connections=400 -c fsync=$fsync -c full_page_writes=$fsync -c shared_buffers=64MB" start >/dev/null \
  || { cat "$dir/server.log" >&2; fail "the cluster did not start"; }

export FEEDMAIL_TEST_DATABASE_URL="postgres://postgres@127.0.0.1:$port/postgres"
set +e
run_cmd "$@"
code=$?
set -e
exit $code
