#!/usr/bin/env bash
# Starts or stops every service the tests use: each scripts/services.d/NAME.sh
# takes "up" or "down". Developers can run it by hand:
#   scripts/services.sh up      # start everything; prints the env to export
#   scripts/services.sh down
# "up" writes the environment the tests need to $CAIRN_SERVICES_ENV
# (default /tmp/cairn-services.env); source it before `go test`.
set -euo pipefail
cd "$(dirname "$0")"
action=${1:?usage: services.sh up|down}
export CAIRN_SERVICES_ENV=${CAIRN_SERVICES_ENV:-/tmp/cairn-services.env}
shopt -s nullglob
scripts=(services.d/*.sh)
case $action in
up)
	: > "$CAIRN_SERVICES_ENV"
	for s in "${scripts[@]}"; do
		echo "services: $s up"
		bash "$s" up
	done
	echo "services: environment in $CAIRN_SERVICES_ENV:"
	cat "$CAIRN_SERVICES_ENV"
	;;
down)
	for ((i=${#scripts[@]}-1; i>=0; i--)); do
		bash "${scripts[i]}" down || echo "services: ${scripts[i]} down failed" >&2
	done
	;;
*)
	echo "usage: services.sh up|down" >&2
	exit 2
	;;
esac
