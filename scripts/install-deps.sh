#!/usr/bin/env bash
# Installs the Debian packages the tests and benchmarks use. Safe to re-run.
#   ninja-build  the benchmark compares cairn with ninja (bench tests skip it
#                when it is missing, so a failed install is not fatal)
#   tmux         the live view is tested in a real terminal (cli/live_test.go)
#   chromium     the HTML run report is rendered headless (cli/report_test.go)
#   etcd-server  the storage of the Kubernetes test control plane
#                (scripts/services.d/kubernetes.sh)
# Tests that need one of them skip, saying so, when it is missing.
set -uo pipefail
need=()
command -v ninja >/dev/null || need+=(ninja-build)
command -v make >/dev/null || need+=(make)
command -v tmux >/dev/null || need+=(tmux)
command -v chromium >/dev/null || need+=(chromium)
command -v etcd >/dev/null || need+=(etcd-server)
if [ ${#need[@]} -gt 0 ]; then
	export DEBIAN_FRONTEND=noninteractive
	for try in 1 2 3; do
		if apt-get update -qq && apt-get install -y -qq "${need[@]}"; then
			break
		fi
		if [ "$try" = 3 ]; then
			echo "warning: could not install ${need[*]}; the tests and benchmarks that need them will skip" >&2
		else
			sleep 5
		fi
	done
fi
exit 0
