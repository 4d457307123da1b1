#!/bin/sh
# Regenerates common-passwords.txt.gz from the "passwords" frequency list in
# zxcvbn 4.4.2 (MIT, Dan Wheeler and Dropbox, Inc.), fetched with npm and
# checked against a pinned checksum, then run through gen.go. See README.md.
#
# Usage: sh gen.sh   (or: go generate ./controller/identity/password)
set -eu
cd "$(dirname "$0")"
want=0b3ebb60ec2df2340e1b8b70e4cb2657a3ceb192781d299310e7aceaa606cd22
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
(cd "$tmp" && npm pack --silent zxcvbn@4.4.2 >/dev/null)
got=$(sha256sum "$tmp/zxcvbn-4.4.2.tgz" | cut -d' ' -f1)
if [ "$got" != "$want" ]; then
  echo "gen.sh: zxcvbn-4.4.2.tgz has sha256 $got, want $want" >&2
  exit 1
fi
tar xzf "$tmp/zxcvbn-4.4.2.tgz" -C "$tmp" package/src/frequency_lists.coffee
go run gen.go -src "$tmp/package/src/frequency_lists.coffee" -out common-passwords.txt.gz
