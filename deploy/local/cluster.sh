#!/usr/bin/env bash
# cluster.sh runs a three-server OpsConductor controller cluster on 127.0.0.1
# for development, the end-to-end tests (test/e2e) and the failover benchmark
# (bench/failover). It only starts, stops and inspects processes; it never
# builds the binary and never touches a cluster's data except to create it.
#
#   cluster.sh up DIR        start every node that is not running (so also restarts crashed
#                            ones), wait up to 30 s for a leader all three agree on and for
#                            it to be ready, and (once per DIR) create an admin API token
#   cluster.sh down DIR      SIGTERM every node, SIGKILL any still running after 15 s
#   cluster.sh status DIR    one line per node: pid, alive, raft state, term, applied index, leader
#   cluster.sh start N DIR   (re)start node N (1-3) if it is not running; wait until it serves /health
#   cluster.sh kill N DIR    kill -9 node N, as a crash would; wait until it is gone
#   cluster.sh purge DIR     down, then drop the cluster's history database and remove DIR
#
# Environment:
#   OPSCONDUCTOR_BIN            the controller binary (default: bin/opsconductor in the
#                               repository, built by `make build`)
#   BASE_PORT                   first of the nine ports (default 3010): node N listens on
#                               BASE_PORT+10(N-1) (HTTP), +1 (agents), +2 (Raft). The first
#                               `up` records it in DIR/base-port; later commands use that.
#   OPSCONDUCTOR_SERVER_FLAGS   extra `opsconductor server` flags, split on spaces, read on
#                               every start (e.g. "--log-format text --log-level debug")
#   OPSCONDUCTOR_HISTORY_DSN    PostgreSQL server for the shared history store (default the
#                               local test database, postgres://postgres@127.0.0.1:5432/test).
#                               The first `up` creates a fresh database on that server for
#                               DIR (so separate runs never collide) and records its URL in
#                               DIR/history-dsn; the three nodes share it.
#
# Layout of DIR: tls/ (the shared cluster CA), keyring.key (the shared
# key-encryption keys), admin-password (the first admin's password), token
# (an API token with the admin role, for tools: OPSCONDUCTOR_TOKEN), cli/
# (the stored login used to create that token), nodeN/ (data), nodeN.log
# (appended across restarts), nodeN.pid, base-port, history-dsn. The
# secrets are mode 0600.
#
# Output is for people, with one exception that programs read: `kill`
# prints "sent SIGKILL to nodeN (pid P) at SECONDS.MICROS" (test/e2e and
# bench/failover time failover from it; keep the format).
set -euo pipefail

SCRIPT_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
REPO_ROOT="$(cd "$SCRIPT_DIR/../.." && pwd)"
readonly SCRIPT_DIR REPO_ROOT
readonly NODES=(1 2 3)
readonly UP_TIMEOUT=30   # seconds for `up` to see one leader agreed by all nodes, and again for it to be ready
readonly START_TIMEOUT=30
readonly STOP_TIMEOUT=15

BIN="${OPSCONDUCTOR_BIN:-$REPO_ROOT/bin/opsconductor}"
DIR=""
BASE=""
LEADER="" # node number, set by wait_leader

usage() {
	cat >&2 <<'EOF'
usage: cluster.sh up|down|status|purge DIR
       cluster.sh start|kill N DIR      (N is 1, 2 or 3)
EOF
	exit 2
}

die() {
	echo "cluster.sh: $*" >&2
	exit 1
}

log() {
	echo "cluster.sh: $*"
}

http_port() { echo $((BASE + 10 * ($1 - 1))); }
agent_port() { echo $((BASE + 10 * ($1 - 1) + 1)); }
raft_port() { echo $((BASE + 10 * ($1 - 1) + 2)); }

pid_file() { echo "$DIR/node$1.pid"; }
log_file() { echo "$DIR/node$1.log"; }

# use_dir sets DIR to an absolute path. create=1 makes it.
use_dir() {
	local dir=$1 create=$2
	if [[ $create == 1 ]]; then
		mkdir -p "$dir"
	elif [[ ! -d $dir ]]; then
		die "$dir: no such directory (start a cluster there with: cluster.sh up $dir)"
	fi
	DIR="$(cd "$dir" && pwd)"
}

# resolve_base_port fixes the ports for DIR. The first `up` records them,
# because each node's Raft configuration stores its peers' addresses: the
# same data started on other ports would be unable to find its peers.
resolve_base_port() {
	local file="$DIR/base-port" saved=""
	if [[ -f $file ]]; then
		saved="$(<"$file")"
	fi
	if [[ -n $saved ]]; then
		if [[ -n ${BASE_PORT:-} && $BASE_PORT != "$saved" ]]; then
			die "$DIR was created with BASE_PORT=$saved and its Raft configuration holds those addresses; unset BASE_PORT or use a new directory"
		fi
		BASE=$saved
		return
	fi
	BASE="${BASE_PORT:-3010}"
	if ! [[ $BASE =~ ^[0-9]+$ ]] || ((BASE < 1024 || BASE > 65535 - 22)); then
		die "BASE_PORT=$BASE: want a number from 1024 to $((65535 - 22))"
	fi
}

record_base_port() {
	[[ -f "$DIR/base-port" ]] || echo "$BASE" >"$DIR/base-port"
}

readonly DEFAULT_HISTORY_DSN="postgres://postgres@127.0.0.1:5432/test?sslmode=disable"

# history_db_name names DIR's database after the directory and a hash of
# its full path: readable in psql, unique per cluster directory.
history_db_name() {
	local base hash
	base="$(basename "$DIR" | tr -c 'a-zA-Z0-9_\n' '_' | tr 'A-Z' 'a-z' | cut -c1-30)"
	hash="$(printf '%s' "$DIR" | cksum | cut -d' ' -f1)"
	echo "oc_${base}_${hash}"
}

# with_db replaces the database (path) of a postgres:// URL.
with_db() {
	local url=$1 db=$2 rest query=""
	if [[ $url == *\?* ]]; then
		query="?${url#*\?}"
		url="${url%%\?*}"
	fi
	rest="${url#*://}"
	echo "${url%%://*}://${rest%%/*}/$db$query"
}

# resolve_history_dsn sets HISTORY_DSN for DIR, creating its database on
# first use. create=0 only reads what `up` recorded.
HISTORY_DSN=""
resolve_history_dsn() {
	local create=$1 file="$DIR/history-dsn" admin db
	if [[ -f $file ]]; then
		HISTORY_DSN="$(<"$file")"
		return
	fi
	[[ $create == 1 ]] || return 0
	command -v psql >/dev/null || die "psql not found: install the PostgreSQL client (apt-get install postgresql-client)"
	admin="${OPSCONDUCTOR_HISTORY_DSN:-$DEFAULT_HISTORY_DSN}"
	db="$(history_db_name)"
	log "creating history database $db on $(with_db "$admin" "" | sed 's#//[^@/]*@#//#')"
	if ! psql "$admin" -v ON_ERROR_STOP=1 -qtAc "SELECT 1 FROM pg_database WHERE datname = '$db'" | grep -q 1; then
		psql "$admin" -v ON_ERROR_STOP=1 -qc "CREATE DATABASE \"$db\"" >/dev/null ||
			die "cannot create database $db via OPSCONDUCTOR_HISTORY_DSN (is PostgreSQL running?)"
	fi
	HISTORY_DSN="$(with_db "$admin" "$db")"
	echo "$HISTORY_DSN" >"$file"
}

require_bin() {
	if [[ ! -x $BIN ]]; then
		die "controller binary $BIN not found or not executable: run \`make build\` in $REPO_ROOT first, or point OPSCONDUCTOR_BIN at a built opsconductor"
	fi
}

# node_pid prints the recorded pid of node $1 (nothing if none).
node_pid() {
	local f
	f="$(pid_file "$1")"
	if [[ -f $f ]]; then
		cat "$f"
	fi
}

# node_running succeeds when node $1's recorded pid is a live opsconductor
# server on this node's data dir. Matching the command line guards against
# a recycled pid; a zombie counts as dead.
node_running() {
	local pid stat args
	pid="$(node_pid "$1")"
	[[ -n $pid ]] || return 1
	stat="$(ps -o stat= -p "$pid" 2>/dev/null)" || return 1
	[[ -n $stat && $stat != Z* ]] || return 1
	args="$(ps -ww -o args= -p "$pid" 2>/dev/null)" || return 1
	[[ $args == *"--data-dir $DIR/node$1 "* ]]
}

# health prints node $1's /health document, or fails.
health() {
	curl -fsS --max-time 2 "http://127.0.0.1:$(http_port "$1")/health" 2>/dev/null
}

# field prints a top-level scalar of the raft section. The keys read here
# (state, leader_id, term, applied_index) occur once in /health, so a flat
# match is enough and the script needs no JSON tool.
field() {
	local key=$1 doc=$2
	sed -n 's/.*"'"$key"'":"\{0,1\}\([^",}]*\).*/\1/p' <<<"$doc"
}

tail_logs() {
	local n
	for n in "$@"; do
		echo "----- last lines of $(log_file "$n") -----" >&2
		tail -n 25 "$(log_file "$n")" >&2 2>/dev/null || echo "(no log)" >&2
	done
}

start_node() {
	local n=$1 m pid
	if node_running "$n"; then
		log "node$n already running (pid $(node_pid "$n"))"
		return
	fi
	local -a extra=()
	read -r -a extra <<<"${OPSCONDUCTOR_SERVER_FLAGS:-}"
	local -a args=(
		server
		--node-id "node$n"
		--data-dir "$DIR/node$n"
		--http-addr "127.0.0.1:$(http_port "$n")"
		--agent-addr "127.0.0.1:$(agent_port "$n")"
		--raft-addr "127.0.0.1:$(raft_port "$n")"
		--bootstrap-expect 3
	)
	for m in "${NODES[@]}"; do
		[[ $m == "$n" ]] || args+=(--retry-join "127.0.0.1:$(raft_port "$m")")
	done
	args+=(
		--tls-ca-cert "$DIR/tls/cluster-ca.pem"
		--tls-ca-key "$DIR/tls/cluster-ca-key.pem"
		--keyring-file "$DIR/keyring.key"
		--bootstrap-admin-password-file "$DIR/admin-password"
		--rate-write inf --rate-read inf --rate-operator inf
		--history "$HISTORY_DSN"
		${extra[@]+"${extra[@]}"}
	)
	mkdir -p "$DIR/node$n"
	echo "===== cluster.sh: starting node$n at $(date -u +%Y-%m-%dT%H:%M:%SZ) =====" >>"$(log_file "$n")"
	# setsid puts the server in its own session so that a Ctrl-C meant for
	# the caller (the benchmark, a test) does not reach it: the caller stops
	# the cluster itself with `down`. stdin/stdout/stderr are redirected so
	# that the server holds none of the caller's pipes open.
	if command -v setsid >/dev/null; then
		setsid "$BIN" "${args[@]}" </dev/null >>"$(log_file "$n")" 2>&1 &
	else
		"$BIN" "${args[@]}" </dev/null >>"$(log_file "$n")" 2>&1 &
	fi
	pid=$!
	echo "$pid" >"$(pid_file "$n")"
	log "started node$n (pid $pid): http 127.0.0.1:$(http_port "$n"), raft 127.0.0.1:$(raft_port "$n"), log $(log_file "$n")"
}

# wait_http waits until node $1 serves /health, failing early if it exits.
wait_http() {
	local n=$1 deadline=$((SECONDS + START_TIMEOUT))
	log "waiting up to ${START_TIMEOUT}s for node$n to answer /health on 127.0.0.1:$(http_port "$n")"
	until health "$n" >/dev/null; do
		if ! node_running "$n"; then
			tail_logs "$n"
			die "node$n exited during startup"
		fi
		if ((SECONDS >= deadline)); then
			tail_logs "$n"
			die "node$n did not answer /health within ${START_TIMEOUT}s"
		fi
		sleep 0.2
	done
}

# wait_leader waits until every node answers /health, all name the same
# leader and that leader says it leads. It prints what it is waiting for
# each time that changes.
wait_leader() {
	local deadline=$((SECONDS + UP_TIMEOUT)) n doc state leader agreed seen last=""
	log "waiting up to ${UP_TIMEOUT}s for a leader that all three nodes agree on"
	while :; do
		seen="" agreed=1
		local first=""
		for n in "${NODES[@]}"; do
			if ! node_running "$n"; then
				tail_logs "$n"
				die "node$n exited while waiting for a leader (the end of its log is above)"
			fi
			if doc="$(health "$n")"; then
				state="$(field state "$doc")"
				leader="$(field leader_id "$doc")"
			else
				state="unreachable" leader=""
			fi
			seen+=" node$n=$state(leader=${leader:-none})"
			if [[ -z $leader ]]; then
				agreed=0
			elif [[ -z $first ]]; then
				first=$leader
			elif [[ $leader != "$first" ]]; then
				agreed=0
			fi
			if [[ $leader == "node$n" && $state != leader ]]; then
				agreed=0
			fi
		done
		if [[ $seen != "$last" ]]; then
			log "  now:$seen"
			last=$seen
		fi
		if ((agreed)); then
			log "leader is $first"
			LEADER=${first#node}
			return
		fi
		if ((SECONDS >= deadline)); then
			tail_logs "${NODES[@]}"
			die "no leader agreed by all nodes within ${UP_TIMEOUT}s (last seen:$seen)"
		fi
		sleep 0.2
	done
}

# wait_ready waits until the leader answers /health/ready: the first admin
# and a signing key exist and the history store is reachable.
wait_ready() {
	local deadline=$((SECONDS + UP_TIMEOUT)) url="http://127.0.0.1:$(http_port "$LEADER")/health/ready"
	log "waiting up to ${UP_TIMEOUT}s for node$LEADER to be ready"
	until curl -fsS --max-time 2 "$url" >/dev/null 2>&1; do
		if ((SECONDS >= deadline)); then
			curl -sS --max-time 2 "$url" >&2 || true
			tail_logs "$LEADER"
			die "node$LEADER did not become ready within ${UP_TIMEOUT}s"
		fi
		sleep 0.2
	done
}

# create_secrets makes the cluster's shared keyring and its first admin's
# password, once per DIR. The password is random and passes the policy
# (long, not common, without the username).
create_secrets() {
	if [[ ! -f "$DIR/keyring.key" ]]; then
		log "creating the shared keyring $DIR/keyring.key"
		"$BIN" operator keyring init --file "$DIR/keyring.key" >/dev/null
	fi
	if [[ ! -s "$DIR/admin-password" ]]; then
		log "choosing the first admin's password (in $DIR/admin-password)"
		(
			umask 077
			printf 'oc-%s\n' "$(head -c 18 /dev/urandom | od -An -tx1 | tr -d ' \n')" >"$DIR/admin-password"
		)
	fi
}

# oc runs the CLI with the stored login kept in DIR/cli, so that the
# caller's own logins and OPSCONDUCTOR_TOKEN play no part.
oc() {
	OPSCONDUCTOR_CONFIG_DIR="$DIR/cli" OPSCONDUCTOR_TOKEN="" OPSCONDUCTOR_ADDR="" "$BIN" "$@"
}

# create_token logs in as admin and creates the API token tools use
# (DIR/token), once per DIR. An API token works on every node and does not
# expire, so it outlives failovers and long benchmark runs.
create_token() {
	[[ -s "$DIR/token" ]] && return
	local addr token
	addr="http://127.0.0.1:$(http_port "$LEADER")"
	log "logging in as admin and creating an API token for tools (in $DIR/token)"
	oc login --address "$addr" --username admin --password-stdin <"$DIR/admin-password" >/dev/null ||
		die "cannot log in as admin with $DIR/admin-password (was the cluster bootstrapped with another password?)"
	token="$(oc token create --address "$addr" --name cluster.sh --role admin \
		--description "created by deploy/local/cluster.sh for tools and tests" 2>/dev/null)" ||
		die "cannot create an API token"
	oc logout --address "$addr" >/dev/null || true
	(
		umask 077
		printf '%s\n' "$token" >"$DIR/token"
	)
}

cmd_up() {
	resolve_base_port
	record_base_port
	if [[ ! -f "$DIR/tls/cluster-ca.pem" || ! -f "$DIR/tls/cluster-ca-key.pem" ]]; then
		log "creating the cluster CA in $DIR/tls"
		mkdir -p "$DIR/tls"
		"$BIN" operator tls init --dir "$DIR/tls"
	fi
	create_secrets
	resolve_history_dsn 1
	local n
	for n in "${NODES[@]}"; do
		start_node "$n"
	done
	wait_leader
	wait_ready
	create_token
	cmd_status
	log "authenticate tools with: export OPSCONDUCTOR_TOKEN=\$(cat $DIR/token)"
}

cmd_start() {
	local n=$1
	resolve_base_port
	record_base_port
	[[ -f "$DIR/tls/cluster-ca.pem" ]] || die "$DIR/tls has no cluster CA: create the cluster with \`cluster.sh up $DIR\` first"
	[[ -f "$DIR/keyring.key" ]] || die "$DIR has no keyring.key: create the cluster with \`cluster.sh up $DIR\` first"
	resolve_history_dsn 0
	[[ -n $HISTORY_DSN ]] || die "$DIR has no history database: create the cluster with \`cluster.sh up $DIR\` first"
	start_node "$n"
	wait_http "$n"
}

cmd_kill() {
	local n=$1 pid deadline
	resolve_base_port
	if ! node_running "$n"; then
		log "node$n is not running"
		return
	fi
	pid="$(node_pid "$n")"
	# The moment of the kill, to the microsecond where bash 5 has it:
	# bench/failover and test/e2e time failover from this line.
	local at="${EPOCHREALTIME:-}"
	kill -9 "$pid"
	log "sent SIGKILL to node$n (pid $pid)${at:+ at $at}"
	deadline=$((SECONDS + 5))
	while node_running "$n"; do
		((SECONDS < deadline)) || die "node$n (pid $pid) still alive 5s after SIGKILL"
		sleep 0.05
	done
}

cmd_down() {
	resolve_base_port
	local n pid deadline
	local -a stopping=()
	for n in "${NODES[@]}"; do
		if node_running "$n"; then
			pid="$(node_pid "$n")"
			log "stopping node$n (SIGTERM to pid $pid)"
			kill -TERM "$pid" 2>/dev/null || true
			stopping+=("$n")
		else
			log "node$n is not running"
		fi
	done
	# The nodes shut down concurrently, so one deadline bounds each of them.
	deadline=$((SECONDS + STOP_TIMEOUT))
	for n in ${stopping[@]+"${stopping[@]}"}; do
		while node_running "$n" && ((SECONDS < deadline)); do
			sleep 0.1
		done
		if node_running "$n"; then
			pid="$(node_pid "$n")"
			log "node$n (pid $pid) still running after ${STOP_TIMEOUT}s: SIGKILL"
			kill -9 "$pid" 2>/dev/null || true
		else
			log "node$n stopped"
		fi
	done
	for n in "${NODES[@]}"; do
		rm -f "$(pid_file "$n")"
	done
}

cmd_purge() {
	cmd_down
	resolve_history_dsn 0
	if [[ -n $HISTORY_DSN ]]; then
		local db admin
		db="$(history_db_name)"
		admin="$(with_db "$HISTORY_DSN" postgres)"
		log "dropping history database $db"
		psql "$admin" -v ON_ERROR_STOP=1 -qc "DROP DATABASE IF EXISTS \"$db\" WITH (FORCE)" >/dev/null ||
			log "could not drop $db; drop it by hand"
	fi
	log "removing $DIR"
	rm -rf "$DIR"
}

cmd_status() {
	resolve_base_port
	local n pid alive doc
	printf '%-6s %-8s %-6s %-10s %-6s %-8s %s\n' NODE PID ALIVE STATE TERM APPLIED LEADER
	for n in "${NODES[@]}"; do
		pid="$(node_pid "$n")"
		alive=no
		if node_running "$n"; then
			alive=yes
		fi
		if [[ $alive == yes ]] && doc="$(health "$n")"; then
			printf '%-6s %-8s %-6s %-10s %-6s %-8s %s\n' "node$n" "$pid" "$alive" \
				"$(field state "$doc")" "$(field term "$doc")" "$(field applied_index "$doc")" "$(field leader_id "$doc")"
		else
			printf '%-6s %-8s %-6s %-10s %-6s %-8s %s\n' "node$n" "${pid:--}" "$alive" - - - -
		fi
	done
}

main() {
	(($# >= 1)) || usage
	local cmd=$1 create=0
	shift
	# Only the commands that start servers may create DIR; the others
	# report a mistyped DIR instead of acting on an empty one.
	if [[ $cmd == up || $cmd == start ]]; then
		require_bin
		create=1
	fi
	case $cmd in
	up | down | status | purge)
		(($# == 1)) || usage
		use_dir "$1" "$create"
		"cmd_$cmd"
		;;
	start | kill)
		(($# == 2)) || usage
		[[ $1 =~ ^[123]$ ]] || die "node number $1: want 1, 2 or 3"
		use_dir "$2" "$create"
		"cmd_$cmd" "$1"
		;;
	*) usage ;;
	esac
}

main "$@"
