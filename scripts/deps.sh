#!/bin/sh
# Installs what couchjobs needs to build and test, from Debian's packages.
# Installs nothing when everything is already there. Needs root (or sudo).
set -eu

PKGS="build-essential cmake pkg-config liblmdb-dev libjansson-dev libpq-dev libmicrohttpd-dev tzdata libsqlite3-dev"
if [ "${1:-}" = "--test" ]; then
	# chromium: the dashboard's browser test (test/ui), which node runs
	# python3-prometheus-client: its parser reads /metrics in test/server
	PKGS="$PKGS clang libclang-rt-14-dev postgresql curl python3 python3-prometheus-client chromium"
	# Debian's node and npm, unless a node is already there (NodeSource's
	# package, for one, holds both and conflicts with Debian's npm)
	command -v node >/dev/null 2>&1 || PKGS="$PKGS nodejs"
	command -v npm >/dev/null 2>&1 || PKGS="$PKGS npm"
fi

missing=""
for p in $PKGS; do
	dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" ||
		missing="$missing $p"
done
[ -z "$missing" ] && exit 0

SUDO=""
if [ "$(id -u)" != 0 ]; then
	command -v sudo >/dev/null 2>&1 || {
		echo "deps: need root to install:$missing" >&2
		exit 1
	}
	SUDO=sudo
fi
echo "deps: installing$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing >/dev/null
