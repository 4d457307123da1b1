#!/bin/sh
# Installs the OpsConductor agent on this Linux host. A controller serves
# this script at /install/agent.sh with its own address filled in:
#
#   curl -fsSL https://CONTROLLER/install/agent.sh | sudo sh -s -- --token ocj_… --ca-pin sha256:…
#
# It downloads this host's agent binary from that controller, checks it
# against the release's SHA-256, installs it as /usr/local/bin/opsconductor-agent,
# enrols the host with the join token (`opsconductor-agent join`), writes
# the systemd unit and starts the agent. Run it again to upgrade: a host
# that is already enrolled keeps its identity and needs no token.
#
# Options:
#   --token T          join token (ocj_…); or set OPSCONDUCTOR_JOIN_TOKEN
#   --ca-pin P         pin of the controller's agent CA (sha256:…), shown with the token
#   --controller H:P   agent listener(s) to enrol with, comma-separated
#                      (default: the agent port of the controller serving this script)
#   --name N           agent name (default: the host name)
#   --tags k=v,…       tags for the agent
#   --url URL          controller to download from (default: the one that served this script)
#   --force            enrol again even if this host already is
#
# Environment:
#   OPSCONDUCTOR_INSTALL_ROOT  install under this directory instead of / (image
#                              builds, tests); the service is then not started
set -eu

# Filled in by the controller that serves the script.
url=@@URL@@
controller=@@CONTROLLER@@

token=${OPSCONDUCTOR_JOIN_TOKEN:-}
pin=
name=
tags=
force=
root=${OPSCONDUCTOR_INSTALL_ROOT:-}
# Fixed by the unit below: it runs the binary from here with this data dir.
bin_path=/usr/local/bin/opsconductor-agent
data_dir=/var/lib/opsconductor-agent
unit_path=/etc/systemd/system/opsconductor-agent.service

say() { printf 'opsconductor-agent install: %s\n' "$*"; }
die() {
	printf 'opsconductor-agent install: error: %s\n' "$*" >&2
	exit 1
}
usage() {
	cat <<EOF
Installs the OpsConductor agent from $url and enrols this host.

  curl -fsSL $url/install/agent.sh | sudo sh -s -- --token ocj_… --ca-pin sha256:…

  --token T          join token (ocj_…); or set OPSCONDUCTOR_JOIN_TOKEN
  --ca-pin P         pin of the controller's agent CA (sha256:…), shown with the token
  --controller H:P   agent listener(s) to enrol with (default: $controller)
  --name N           agent name (default: the host name)
  --tags k=v,…       tags for the agent
  --url URL          controller to download from (default: $url)
  --force            enrol again even if this host already is

OPSCONDUCTOR_INSTALL_ROOT=DIR installs under DIR instead of / and does not start the service.
EOF
}

while [ $# -gt 0 ]; do
	opt=$1
	case $opt in
	--*=*)
		val=${opt#*=}
		opt=${opt%%=*}
		shift
		set -- "$opt" "$val" "$@"
		continue
		;;
	--force)
		force=1
		shift
		continue
		;;
	-h | --help)
		usage
		exit 0
		;;
	--token | --ca-pin | --controller | --name | --tags | --url)
		[ $# -ge 2 ] || die "$opt needs a value"
		;;
	*) die "unknown option $opt (options: --token, --ca-pin, --controller, --name, --tags, --url, --force)" ;;
	esac
	case $opt in
	--token) token=$2 ;;
	--ca-pin) pin=$2 ;;
	--controller) controller=$2 ;;
	--name) name=$2 ;;
	--tags) tags=$2 ;;
	--url) url=${2%/} ;;
	esac
	shift 2
done

case $url in
http://?* | https://?*) ;;
*) die "--url $url: must be the controller's http:// or https:// address" ;;
esac
[ -n "$controller" ] || die "--controller is empty: give the controller's agent address as host:port"

if [ -z "$root" ] && [ "$(id -u)" != 0 ]; then
	die "run as root (curl … | sudo sh -s -- …): it installs $bin_path and $unit_path"
fi

kernel=$(uname -s)
[ "$kernel" = Linux ] || die "this script installs the agent on Linux with systemd; this host runs $kernel"
machine=$(uname -m)
case $machine in
x86_64 | amd64) arch=amd64 ;;
aarch64 | arm64) arch=arm64 ;;
*) die "unsupported CPU architecture $machine: agents are released for x86_64 (amd64) and aarch64 (arm64)" ;;
esac

enrolled=
if [ -f "$root$data_dir/agent.json" ] && [ -z "$force" ]; then
	enrolled=1
else
	[ -n "$token" ] || die "--token is required: create a join token in the UI or with 'opsconductor agent join-token create'"
	[ -n "$pin" ] || die "--ca-pin is required: it is shown with the join token (sha256:…)"
	case $pin in
	sha256:*) ;;
	*) die "--ca-pin $pin: must look like sha256:<64 hex digits>, as shown with the join token" ;;
	esac
fi

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
trap 'exit 1' HUP INT TERM

# fetch URL FILE: downloads with curl or wget; on an HTTP error it shows
# the controller's own message, which names what to fix.
fetch() {
	if command -v curl >/dev/null 2>&1; then
		code=$(curl -sSL --retry 3 -o "$2" -w '%{http_code}' "$1") || die "download $1 failed"
		[ "$code" = 200 ] || die "download $1: HTTP $code: $(problem "$2")"
	elif command -v wget >/dev/null 2>&1; then
		wget -q --tries=3 --content-on-error -O "$2" "$1" || die "download $1 failed: $(problem "$2")"
	else
		die "neither curl nor wget is installed"
	fi
}

# problem FILE: the message of the controller's JSON error envelope.
problem() {
	msg=$(sed -n 's/.*"message":"\([^"]*\)".*/\1/p' "$1" 2>/dev/null)
	[ -n "$msg" ] && printf '%s' "$msg" || head -c 300 "$1" 2>/dev/null || true
}

sha256() {
	if command -v sha256sum >/dev/null 2>&1; then
		sha256sum "$1" | cut -d' ' -f1
	elif command -v shasum >/dev/null 2>&1; then
		shasum -a 256 "$1" | cut -d' ' -f1
	else
		die "neither sha256sum nor shasum is installed: cannot verify the download"
	fi
}

src=$url/install/agent/linux/$arch
say "downloading the linux/$arch agent from $src"
fetch "$src" "$tmp/opsconductor-agent"
fetch "$src/sha256" "$tmp/sha256"
want=$(cut -d' ' -f1 "$tmp/sha256")
case $want in
*[!0-9a-f]* | '') die "$src/sha256 did not answer a SHA-256 checksum" ;;
esac
[ ${#want} -eq 64 ] || die "$src/sha256 did not answer a SHA-256 checksum"
got=$(sha256 "$tmp/opsconductor-agent")
[ "$got" = "$want" ] || die "checksum mismatch: the release lists $want, the download is $got; nothing was installed"
say "checksum verified (sha256 $got)"

mkdir -p "$root${bin_path%/*}"
# Copy next to the target, then rename: a running agent keeps its old
# binary until restarted, and no half-written file is ever executed.
cp "$tmp/opsconductor-agent" "$root$bin_path.new"
chmod 0755 "$root$bin_path.new"
mv -f "$root$bin_path.new" "$root$bin_path"
say "installed $root$bin_path: $("$root$bin_path" version)"

if [ -n "$enrolled" ]; then
	say "already enrolled ($root$data_dir holds its identity): keeping it (--force enrols again)"
else
	say "enrolling with $controller"
	set -- join --controller "$controller" --ca-pin "$pin" --data-dir "$root$data_dir"
	[ -z "$name" ] || set -- "$@" --name "$name"
	[ -z "$tags" ] || set -- "$@" --tags "$tags"
	[ -z "$force" ] || set -- "$@" --force
	# The token travels in the environment, out of the process list.
	OPSCONDUCTOR_JOIN_TOKEN=$token "$root$bin_path" "$@" || die "enrolment failed (see above); nothing else was changed"
fi

mkdir -p "$root${unit_path%/*}"
cat >"$tmp/unit" <<'OPSCONDUCTOR_UNIT'
@@UNIT@@
OPSCONDUCTOR_UNIT
cp "$tmp/unit" "$root$unit_path.new"
chmod 0644 "$root$unit_path.new"
mv -f "$root$unit_path.new" "$root$unit_path"
say "wrote $root$unit_path"

start="systemctl daemon-reload && systemctl enable opsconductor-agent && systemctl restart opsconductor-agent"
if [ -n "$root" ]; then
	say "installed under $root: not starting the service; on the running system: $start"
elif ! command -v systemctl >/dev/null 2>&1 || [ ! -d /run/systemd/system ]; then
	say "systemd is not running on this host: not starting the service; start the agent with: $bin_path run --data-dir $data_dir (or, under systemd: $start)"
else
	systemctl daemon-reload
	systemctl enable opsconductor-agent
	# restart, not start: a re-run must replace a running older agent.
	systemctl restart opsconductor-agent
	say "the agent is running: systemctl status opsconductor-agent"
fi
