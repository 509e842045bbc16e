#!/usr/bin/env bash
# pg.sh starts and stops a throwaway PostgreSQL server for tests.
#
#   scripts/pg.sh start DIR   initialise a cluster in DIR (unless one is there),
#                             start it on a free port of 127.0.0.1 and create the
#                             database durable_test; print the line
#                               export TEST_DATABASE_URL=postgres://...
#                             so that a caller can run
#                               eval "$(scripts/pg.sh start /tmp/durable-pg)"
#   scripts/pg.sh stop DIR    stop the server started in DIR, if it runs.
#
# The server accepts TCP connections on 127.0.0.1 only, keeps its Unix socket in
# DIR, trusts every local connection and is tuned for tests, not for data that
# matters: fsync is off unless PG_FSYNC=on is set (set it when benchmarking
# commit latency). Running start on a running server prints its URL again.
#
# As root the server runs as the user postgres (via runuser), and DIR is handed
# to that user; otherwise it runs as the calling user. When no PostgreSQL server
# binaries are installed and the script runs as root, it installs them with
# apt-get. Everything but the export line goes to stderr.
set -euo pipefail

DBNAME=durable_test
SUPERUSER=postgres

die() { echo "pg.sh: $*" >&2; exit 1; }
say() { echo "pg.sh: $*" >&2; }

usage() {
	echo "usage: $0 start|stop DIR" >&2
	exit 2
}

is_root() { [ "$(id -u)" -eq 0 ]; }

# as_server runs a command as the user that owns the cluster.
as_server() {
	if is_root; then
		runuser -u postgres -- "$@"
	else
		"$@"
	fi
}

# find_bindir prints the directory holding initdb and pg_ctl, newest version first.
find_bindir() {
	local d
	# Debian keeps each major version in /usr/lib/postgresql/<version>/bin.
	for d in $(printf '%s\n' /usr/lib/postgresql/*/bin | sort -t/ -k5,5 -V -r); do
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	done
	if command -v pg_config >/dev/null 2>&1; then
		d=$(pg_config --bindir)
		if [ -x "$d/initdb" ] && [ -x "$d/pg_ctl" ]; then
			echo "$d"
			return 0
		fi
	fi
	if command -v initdb >/dev/null 2>&1 && command -v pg_ctl >/dev/null 2>&1; then
		dirname "$(command -v initdb)"
		return 0
	fi
	return 1
}

bindir() {
	local d
	if d=$(find_bindir); then
		echo "$d"
		return 0
	fi
	is_root || die "no PostgreSQL server binaries (initdb, pg_ctl) found; install PostgreSQL or run as root to have them installed"
	say "installing PostgreSQL with apt-get"
	export DEBIAN_FRONTEND=noninteractive
	apt-get update >&2
	apt-get install -y --no-install-recommends postgresql >&2
	d=$(find_bindir) || die "PostgreSQL was installed but initdb was not found"
	echo "$d"
}

# free_port prints a TCP port of 127.0.0.1 that nothing listens on.
free_port() {
	if command -v python3 >/dev/null 2>&1; then
		python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1]); s.close()' && return 0
	fi
	local p _
	for _ in $(seq 1 100); do
		p=$((20000 + RANDOM % 40000))
		if ! (exec 3<>"/dev/tcp/127.0.0.1/$p") 2>/dev/null; then
			echo "$p"
			return 0
		fi
	done
	die "found no free port"
}

# running_port prints the port of the server running on data directory $1.
running_port() {
	sed -n 4p "$1/postmaster.pid"
}

print_url() {
	echo "export TEST_DATABASE_URL=postgres://$SUPERUSER@127.0.0.1:$1/$DBNAME"
}

start() {
	local dir=$1 bin data sockdir port opts attempt
	bin=$(bindir)
	if is_root && ! id postgres >/dev/null 2>&1; then
		useradd --system --no-create-home --shell /usr/sbin/nologin postgres
	fi

	mkdir -p "$dir"
	dir=$(cd "$dir" && pwd)
	data=$dir/data
	if [ ! -f "$data/PG_VERSION" ] && [ -n "$(ls -A "$dir")" ]; then
		die "$dir is neither empty nor a cluster made by this script; pick another directory"
	fi
	if is_root; then
		chown postgres: "$dir"
		runuser -u postgres -- test -w "$dir" ||
			die "the user postgres cannot write to $dir; pick a directory whose parents it can enter, such as one under /tmp"
	fi

	if [ -f "$data/postmaster.pid" ] && as_server "$bin/pg_ctl" -D "$data" status >/dev/null 2>&1; then
		say "server already running in $dir"
		print_url "$(running_port "$data")"
		return 0
	fi

	if [ ! -f "$data/PG_VERSION" ]; then
		as_server "$bin/initdb" -D "$data" -U "$SUPERUSER" --auth=trust \
			--encoding=UTF8 --no-locale --no-sync >"$dir/initdb.log" 2>&1 ||
			{ cat "$dir/initdb.log" >&2; die "initdb failed"; }
	fi

	# A Unix socket path must fit in 107 bytes; without one, TCP still works.
	sockdir=$dir
	if [ $((${#dir} + 20)) -gt 107 ]; then
		say "$dir is too long for a Unix socket; listening on TCP only"
		sockdir=
	fi

	for attempt in 1 2 3; do
		port=$(free_port)
		opts="-c listen_addresses=127.0.0.1 -c port=$port"
		opts="$opts -c unix_socket_directories='$sockdir'"
		opts="$opts -c fsync=${PG_FSYNC:-off} -c full_page_writes=${PG_FSYNC:-off}"
		opts="$opts -c max_connections=200"
		if as_server "$bin/pg_ctl" -D "$data" -l "$dir/postgres.log" -w -t 60 \
			-o "$opts" start >&2; then
			break
		fi
		# Another process may have taken the port between the check and the start.
		[ "$attempt" -lt 3 ] || { tail -n 20 "$dir/postgres.log" >&2; die "the server did not start"; }
		say "start failed on port $port; trying another"
	done

	if [ "$(as_server "$bin/psql" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" -d postgres -XAtq \
		-c "SELECT 1 FROM pg_database WHERE datname = '$DBNAME'")" != 1 ]; then
		as_server "$bin/createdb" -h 127.0.0.1 -p "$port" -U "$SUPERUSER" "$DBNAME" >&2
	fi
	print_url "$port"
}

stop() {
	local dir=$1 bin data
	data=$dir/data
	if [ ! -f "$data/postmaster.pid" ]; then
		say "no server running in $dir"
		return 0
	fi
	bin=$(find_bindir) || die "no PostgreSQL server binaries found"
	as_server "$bin/pg_ctl" -D "$data" -m fast -w -t 60 stop >&2
}

[ $# -eq 2 ] || usage
case $1 in
start) start "$2" ;;
stop) stop "$2" ;;
*) usage ;;
esac
