#!/bin/sh
# Entry point of the agent image: on the first start (no identity in the
# data directory yet) enrol with a join token, then run the agent. Later
# starts, and restarts of the container, only run it: the identity in the
# volume is all `opsconductor-agent run` needs.
#
# Enrolment, first start only:
#   OPSCONDUCTOR_AGENT_CONTROLLER   agent listeners host:3001, comma-separated
#                                   (also read by `run` afterwards)
#   OPSCONDUCTOR_JOIN_TOKEN         the join token (ocj_…), or
#   OPSCONDUCTOR_JOIN_TOKEN_FILE    a file holding it
#   OPSCONDUCTOR_JOIN_CA_PIN        the controller CA's pin (sha256:…), or
#   OPSCONDUCTOR_JOIN_CA_PIN_FILE   a file holding it
#   OPSCONDUCTOR_JOIN_NAME          the agent's name (default: the hostname)
#   OPSCONDUCTOR_JOIN_TAGS          tags as k=v,k2=v2
# Every run: OPSCONDUCTOR_AGENT_* settings (see `opsconductor-agent run
# --help`); arguments given to the container are added to `run`.
set -eu

data="${OPSCONDUCTOR_AGENT_DATA_DIR:-/var/lib/opsconductor-agent}"

# from_file prints the variable named $1, or else the first line of the
# file that $1_FILE names (compose and Kubernetes hand secrets over as files).
from_file() {
	eval "value=\${$1:-} file=\${$1_FILE:-}"
	if [ -z "$value" ] && [ -n "$file" ]; then
		value="$(head -n 1 "$file")"
	fi
	printf '%s' "$value"
}

# agent.json is written last by join: its presence means a complete enrolment.
if [ ! -f "$data/agent.json" ]; then
	token="$(from_file OPSCONDUCTOR_JOIN_TOKEN)"
	pin="$(from_file OPSCONDUCTOR_JOIN_CA_PIN)"
	missing=""
	[ -n "${OPSCONDUCTOR_AGENT_CONTROLLER:-}" ] || missing="$missing OPSCONDUCTOR_AGENT_CONTROLLER"
	[ -n "$token" ] || missing="$missing OPSCONDUCTOR_JOIN_TOKEN(_FILE)"
	[ -n "$pin" ] || missing="$missing OPSCONDUCTOR_JOIN_CA_PIN(_FILE)"
	if [ -n "$missing" ]; then
		echo "agent-entrypoint: $data holds no enrolment; to enrol on this start set:$missing" >&2
		exit 1
	fi
	# The token goes through the environment, not the command line, which
	# every process on the host can read.
	OPSCONDUCTOR_JOIN_TOKEN="$token" opsconductor-agent join \
		--controller "$OPSCONDUCTOR_AGENT_CONTROLLER" --ca-pin "$pin" --data-dir "$data" \
		${OPSCONDUCTOR_JOIN_NAME:+--name "$OPSCONDUCTOR_JOIN_NAME"} \
		${OPSCONDUCTOR_JOIN_TAGS:+--tags "$OPSCONDUCTOR_JOIN_TAGS"}
fi

exec opsconductor-agent run --data-dir "$data" "$@"
