#!/usr/bin/env bash
# Object stores on loopback for the store/s3store and store/gcsstore tests
# and the end-to-end tests in internal/e2e (see
# docs/infrastructure.md §2 for where every setting comes from):
#
#   versitygw v1.8.0, posix backend   S3 with If-None-Match/If-Match on PUT
#                                     and If-Match on DELETE
#   fake-gcs-server v1.56.1           GCS JSON API; honours ifGenerationMatch
#                                     on uploads only (not on deletes)
#
#   objectstores.sh up     build the two servers if they are not cached,
#                          start them, wait until they answer, create the
#                          test buckets and append the CAIRN_TEST_* lines
#                          below to $CAIRN_SERVICES_ENV
#   objectstores.sh down   stop them and remove their data
#
# Binaries are built with `go install` (about 2.5-3.5 min each, cold) into
# $CAIRN_SERVICES_CACHE/bin (default ~/.cache/cairn-services/bin), named
# with their version, so a second run on the same machine starts at once.
# Ports: CAIRN_S3_PORT (default 7070) and CAIRN_GCS_PORT (default 4443), on
# 127.0.0.1 only. State lives in CAIRN_OBJECTSTORES_DIR (default
# /tmp/cairn-objectstores).
#
# Environment written (tests skip with a message when it is absent):
#   CAIRN_TEST_S3_SERVER             http://127.0.0.1:7070
#   CAIRN_TEST_S3_SERVER_BUCKET      cairn-test
#   CAIRN_TEST_S3_SERVER_ACCESS_KEY  / CAIRN_TEST_S3_SERVER_SECRET_KEY
#   CAIRN_TEST_GCS_EMULATOR          127.0.0.1:4443 (a STORAGE_EMULATOR_HOST)
#   CAIRN_TEST_GCS_EMULATOR_BUCKET   cairn-test
set -euo pipefail
action=${1:?usage: objectstores.sh up|down}
ENV_FILE=${CAIRN_SERVICES_ENV:-/tmp/cairn-services.env}
CACHE=${CAIRN_SERVICES_CACHE:-$HOME/.cache/cairn-services}
D=${CAIRN_OBJECTSTORES_DIR:-/tmp/cairn-objectstores}
S3_PORT=${CAIRN_S3_PORT:-7070}
GCS_PORT=${CAIRN_GCS_PORT:-4443}
VERSITYGW=github.com/versity/versitygw/cmd/versitygw@v1.8.0
FAKEGCS=github.com/fsouza/fake-gcs-server@v1.56.1
BUCKET=cairn-test
ACCESS_KEY=cairntest
SECRET_KEY=cairntestsecret

stop() {
	for f in "$D/versitygw.pid" "$D/fake-gcs-server.pid"; do
		if [ -s "$f" ]; then
			pid=$(cat "$f")
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
			rm -f "$f"
		fi
	done
}

case $action in
down)
	stop
	rm -rf "$D"
	exit 0
	;;
up) ;;
*)
	echo "usage: objectstores.sh up|down" >&2
	exit 2
	;;
esac

# build PKG@VERSION: prints the path of the cached binary, building it first
# if needed. The version is part of the name, so bumping it rebuilds.
build() {
	local pkg=$1 name ver bin
	name=$(basename "${pkg%@*}")
	ver=${pkg#*@}
	bin="$CACHE/bin/$name-$ver"
	if [ ! -x "$bin" ]; then
		local tmp
		tmp=$(mktemp -d)
		# A module-less install: GOFLAGS from the caller (-mod=mod in CI)
		# does not apply to `go install pkg@version`.
		env -u GOFLAGS GOBIN="$tmp" go install "$pkg" >&2
		mkdir -p "$CACHE/bin"
		mv "$tmp/$name" "$bin"
		rm -rf "$tmp"
	fi
	echo "$bin"
}

t0=$(date +%s)
# Both builds at once: much of their time is module download.
build "$VERSITYGW" >"$D.vgw.out" 2>"$D.vgw.err" &
vgw_build=$!
build "$FAKEGCS" >"$D.gcs.out" 2>"$D.gcs.err" &
gcs_build=$!
ok=1
wait $vgw_build || { echo "objectstores: building versitygw failed:" >&2; cat "$D.vgw.err" >&2; ok=0; }
wait $gcs_build || { echo "objectstores: building fake-gcs-server failed:" >&2; cat "$D.gcs.err" >&2; ok=0; }
[ $ok = 1 ] || exit 1
vgw_bin=$(cat "$D.vgw.out")
gcs_bin=$(cat "$D.gcs.out")
rm -f "$D".{vgw,gcs}.{out,err}
echo "objectstores: binaries ready in $(( $(date +%s) - t0 ))s ($CACHE/bin)"

stop # a previous run's servers, if any
rm -rf "$D"
mkdir -p "$D/s3" "$D/log"

# The posix backend keeps metadata in xattrs: $D must be on a file system
# that has them (ext4, xfs, tmpfs).
"$vgw_bin" --access "$ACCESS_KEY" --secret "$SECRET_KEY" --region us-east-1 \
	--port "127.0.0.1:$S3_PORT" --quiet posix "$D/s3" >"$D/log/versitygw.log" 2>&1 &
echo $! >"$D/versitygw.pid"
"$gcs_bin" -scheme http -host 127.0.0.1 -port "$GCS_PORT" -backend memory \
	-public-host "127.0.0.1:$GCS_PORT" -external-url "http://127.0.0.1:$GCS_PORT" \
	-log-level warn >"$D/log/fake-gcs-server.log" 2>&1 &
echo $! >"$D/fake-gcs-server.pid"

# wait_for NAME PIDFILE CMD...: until CMD succeeds, for at most 30 s.
wait_for() {
	local name=$1 pidfile=$2
	shift 2
	for _ in $(seq 300); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		if ! kill -0 "$(cat "$pidfile")" 2>/dev/null; then
			echo "objectstores: $name exited:" >&2
			cat "$D/log/$name.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "objectstores: $name not ready after 30s:" >&2
	cat "$D/log/$name.log" >&2
	return 1
}
# versitygw wants x-amz-content-sha256, which curl does not send by itself:
# the SHA-256 of the empty body of these requests.
s3=(curl -sf --aws-sigv4 "aws:amz:us-east-1:s3" --user "$ACCESS_KEY:$SECRET_KEY"
	-H "x-amz-content-sha256: e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
wait_for versitygw "$D/versitygw.pid" "${s3[@]}" "http://127.0.0.1:$S3_PORT/"
wait_for fake-gcs-server "$D/fake-gcs-server.pid" curl -sf "http://127.0.0.1:$GCS_PORT/storage/v1/b"

"${s3[@]}" -X PUT "http://127.0.0.1:$S3_PORT/$BUCKET" >/dev/null
curl -sf -X POST -H 'Content-Type: application/json' -d "{\"name\":\"$BUCKET\"}" \
	"http://127.0.0.1:$GCS_PORT/storage/v1/b?project=cairn-test" >/dev/null

cat >>"$ENV_FILE" <<EOF
CAIRN_TEST_S3_SERVER=http://127.0.0.1:$S3_PORT
CAIRN_TEST_S3_SERVER_BUCKET=$BUCKET
CAIRN_TEST_S3_SERVER_ACCESS_KEY=$ACCESS_KEY
CAIRN_TEST_S3_SERVER_SECRET_KEY=$SECRET_KEY
CAIRN_TEST_GCS_EMULATOR=127.0.0.1:$GCS_PORT
CAIRN_TEST_GCS_EMULATOR_BUCKET=$BUCKET
EOF
echo "objectstores: versitygw on 127.0.0.1:$S3_PORT, fake-gcs-server on 127.0.0.1:$GCS_PORT ($(( $(date +%s) - t0 ))s)"
