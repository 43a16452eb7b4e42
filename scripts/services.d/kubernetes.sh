#!/usr/bin/env bash
# A Kubernetes control plane on loopback for the cluster/k8scluster tests:
# Debian's etcd, and kube-apiserver, kube-controller-manager (the job
# controller only) and kube-scheduler built from Kubernetes' sources through
# the Go module proxy. See docs/infrastructure.md §3 for where every setting
# comes from.
#
#   kubernetes.sh up      build the three binaries if they are not cached,
#                         install etcd if missing, start everything, create
#                         the test Node and ServiceAccount default/default,
#                         write a kubeconfig and append the CAIRN_TEST_K8S_*
#                         lines below to $CAIRN_SERVICES_ENV
#   kubernetes.sh down    stop them and remove their state
#   kubernetes.sh build   only build (or find) the cached binaries
#
# No kubelet runs (these machines have no container runtime): the Node
# objects are API objects only, and the tests run a node agent that plays
# the kubelet for the pods bound to them (cluster/k8scluster/internal/nodeagent).
#
# Binaries are built into $CAIRN_SERVICES_CACHE/bin (default
# ~/.cache/cairn-services/bin), named with their version, from a build
# module in $CAIRN_SERVICES_CACHE/k8sbuild-VERSION that requires
# k8s.io/kubernetes and pins its 33 staging modules (it is not part of
# cairn's go.mod). A cold build takes 10-15 minutes of CPU on 2 cores; a
# second run on the same machine starts at once.
# Ports (127.0.0.1 only): CAIRN_K8S_PORT (API server, default 6443),
# CAIRN_K8S_ETCD_PORT (default 23790, its peer port +1); the controller
# manager and scheduler serve health on 10257 and 10259. The nodes (two, 32
# CPUs, 64 GiB, 4 nvidia.com/gpu each) exist as API objects only. State lives in
# CAIRN_K8S_DIR (default /tmp/cairn-k8s).
#
# Environment written (tests skip with a message when it is absent):
#   CAIRN_TEST_K8S_KUBECONFIG   a kubeconfig for the cluster (static token)
#   CAIRN_TEST_K8S_NODES        the test Nodes' names, comma-separated
set -euo pipefail
action=${1:?usage: kubernetes.sh up|down|build}
ENV_FILE=${CAIRN_SERVICES_ENV:-/tmp/cairn-services.env}
CACHE=${CAIRN_SERVICES_CACHE:-$HOME/.cache/cairn-services}
D=${CAIRN_K8S_DIR:-/tmp/cairn-k8s}
PORT=${CAIRN_K8S_PORT:-6443}
ETCD_PORT=${CAIRN_K8S_ETCD_PORT:-23790}
ETCD_PEER_PORT=$((ETCD_PORT + 1))
K8S_VERSION=v1.37.2
STAGING_VERSION=v0.37.2 # k8s.io/api, client-go, ... for $K8S_VERSION
COMPONENTS=(kube-apiserver kube-controller-manager kube-scheduler)
TOKEN=cairn-test-token
NODES=(cairn-node-0 cairn-node-1)

stop() {
	# Reverse order of start: the API server's clients first, etcd last.
	for name in cairn-nodeagent kube-scheduler kube-controller-manager kube-apiserver etcd; do
		f=$D/$name.pid
		if [ -s "$f" ]; then
			pid=$(cat "$f")
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			kill -9 "$pid" 2>/dev/null || true
			rm -f "$f"
		fi
	done
}

# build: builds the three binaries into $CACHE/bin/NAME-$K8S_VERSION unless
# they are all there. They are built in one `go build`, which shares the
# compiled packages between them.
build() {
	local missing=0 c
	for c in "${COMPONENTS[@]}"; do
		[ -x "$CACHE/bin/$c-$K8S_VERSION" ] || missing=1
	done
	[ $missing = 1 ] || return 0
	local t0 mod tmp
	t0=$(date +%s)
	mod=$CACHE/k8sbuild-$K8S_VERSION
	mkdir -p "$mod" "$CACHE/bin"
	cd "$mod"
	# GOFLAGS from the caller (-mod=mod in CI) is cairn's, not this module's.
	unset GOFLAGS
	if [ ! -s go.sum ]; then
		go mod download -json "k8s.io/kubernetes@$K8S_VERSION" >/dev/null
		local kmod
		kmod=$(go env GOMODCACHE)/cache/download/k8s.io/kubernetes/@v/$K8S_VERSION.mod
		{
			printf 'module cairn.test/k8sbuild\n\ngo 1.26.0\n\nrequire k8s.io/kubernetes %s\n\nreplace (\n' "$K8S_VERSION"
			# Kubernetes' go.mod points its staging modules at ./staging/...,
			# which a module consumer does not have: pin them to the
			# published versions instead.
			grep -oE 'k8s.io/[a-z0-9-]+ => ./staging' "$kmod" | sort -u |
				awk -v v="$STAGING_VERSION" '{print "\t"$1" => "$1" "v}'
			echo ')'
		} >go.mod
		{
			printf '//go:build tools\n\n// Package tools pins the Kubernetes commands this module builds.\npackage tools\n\nimport (\n'
			for c in "${COMPONENTS[@]}"; do printf '\t_ "k8s.io/kubernetes/cmd/%s"\n' "$c"; done
			echo ')'
		} >tools.go
		go mod tidy
	fi
	tmp=$(mktemp -d)
	# The version the binaries report, as Kubernetes' own build stamps it.
	local v=k8s.io/component-base/version
	local minor=${K8S_VERSION#v1.}
	minor=${minor%%.*}
	local ldflags="-s -w -X $v.gitVersion=$K8S_VERSION -X $v.gitMajor=1 -X $v.gitMinor=$minor -X $v.gitTreeState=clean"
	local pkgs=()
	for c in "${COMPONENTS[@]}"; do pkgs+=("k8s.io/kubernetes/cmd/$c"); done
	CGO_ENABLED=0 go build -ldflags "$ldflags" -o "$tmp/" "${pkgs[@]}"
	for c in "${COMPONENTS[@]}"; do mv "$tmp/$c" "$CACHE/bin/$c-$K8S_VERSION"; done
	rm -rf "$tmp"
	echo "kubernetes: built ${COMPONENTS[*]} $K8S_VERSION in $(($(date +%s) - t0))s" >&2
}

case $action in
down)
	stop
	rm -rf "$D"
	exit 0
	;;
build)
	(build)
	exit 0
	;;
up) ;;
*)
	echo "usage: kubernetes.sh up|down|build" >&2
	exit 2
	;;
esac

if ! command -v etcd >/dev/null; then
	if [ "$(id -u)" != 0 ]; then
		echo "kubernetes.sh: etcd is missing; install Debian's etcd-server (needs root)" >&2
		exit 1
	fi
	export DEBIAN_FRONTEND=noninteractive
	for try in 1 2 3; do
		if apt-get update -qq && apt-get install -y -qq --no-install-recommends etcd-server >/dev/null; then
			break
		fi
		[ "$try" = 3 ] && { echo "kubernetes.sh: could not install etcd-server" >&2; exit 1; }
		sleep 5
	done
fi

t0=$(date +%s)
(build)
bin() { echo "$CACHE/bin/$1-$K8S_VERSION"; }
echo "kubernetes: binaries ready in $(($(date +%s) - t0))s ($CACHE/bin)"

# The node agent that plays the kubelet is cairn's own test infrastructure:
# built from this checkout (seconds once the modules are downloaded).
REPO=$(cd "$(dirname "$0")/../.." && pwd)
stop # a previous run's processes, if any
rm -rf "$D"
mkdir -p "$D"/{log,certs,etcd,agent}
(cd "$REPO" && go build -o "$D/cairn-nodeagent" ./cluster/k8scluster/internal/cmd/cairn-nodeagent)

# wait_for NAME CMD...: until CMD succeeds, for at most 60 s, while the
# process NAME (its pid file in $D) lives.
wait_for() {
	local name=$1
	shift
	for _ in $(seq 600); do
		if "$@" >/dev/null 2>&1; then return 0; fi
		if ! kill -0 "$(cat "$D/$name.pid")" 2>/dev/null; then
			echo "kubernetes: $name exited:" >&2
			tail -n 50 "$D/log/$name.log" >&2
			return 1
		fi
		sleep 0.1
	done
	echo "kubernetes: $name not ready after 60s:" >&2
	tail -n 50 "$D/log/$name.log" >&2
	return 1
}
start() { # start NAME CMD...: in the background, logging to $D/log/NAME.log
	local name=$1
	shift
	"$@" >"$D/log/$name.log" 2>&1 &
	echo $! >"$D/$name.pid"
}

start etcd etcd --name cairn-k8s --data-dir "$D/etcd" \
	--listen-client-urls "http://127.0.0.1:$ETCD_PORT" --advertise-client-urls "http://127.0.0.1:$ETCD_PORT" \
	--listen-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" --initial-advertise-peer-urls "http://127.0.0.1:$ETCD_PEER_PORT" \
	--initial-cluster "cairn-k8s=http://127.0.0.1:$ETCD_PEER_PORT" --logger zap --log-level warn
wait_for etcd curl -sf "http://127.0.0.1:$ETCD_PORT/health"

openssl genrsa -out "$D/certs/sa.key" 2048 2>/dev/null
openssl rsa -in "$D/certs/sa.key" -pubout -out "$D/certs/sa.pub" 2>/dev/null
# A static token: anonymous access is not allowed with AlwaysAllow.
echo "$TOKEN,cairn-test,1,\"system:masters\"" >"$D/certs/tokens.csv"
start kube-apiserver "$(bin kube-apiserver)" --etcd-servers="http://127.0.0.1:$ETCD_PORT" \
	--bind-address=127.0.0.1 --secure-port="$PORT" --cert-dir="$D/certs" \
	--service-account-issuer=https://kubernetes.default.svc --service-account-key-file="$D/certs/sa.pub" \
	--service-account-signing-key-file="$D/certs/sa.key" --service-cluster-ip-range=10.96.0.0/24 \
	--authorization-mode=AlwaysAllow --token-auth-file="$D/certs/tokens.csv" \
	--kubelet-preferred-address-types=InternalIP --max-requests-inflight=800
wait_for kube-apiserver curl -skf -H "Authorization: Bearer $TOKEN" "https://127.0.0.1:$PORT/readyz"

KC=$D/kubeconfig
cat >"$KC" <<KUBECONFIG
apiVersion: v1
kind: Config
clusters:
- name: cairn-test
  cluster:
    server: https://127.0.0.1:$PORT
    certificate-authority: $D/certs/apiserver.crt
users:
- name: cairn-test
  user:
    token: $TOKEN
contexts:
- name: cairn-test
  context: {cluster: cairn-test, user: cairn-test, namespace: default}
current-context: cairn-test
KUBECONFIG

# The job controller, the garbage collector (pods of deleted Jobs) and the
# TTL controller (finished Jobs); nothing else of the controller manager.
start kube-controller-manager "$(bin kube-controller-manager)" --kubeconfig="$KC" \
	--authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" --leader-elect=false \
	--bind-address=127.0.0.1 --use-service-account-credentials=false \
	--controllers=job-controller,garbage-collector-controller,ttl-after-finished-controller \
	--kube-api-qps=200 --kube-api-burst=400 --concurrent-job-syncs=10
start kube-scheduler "$(bin kube-scheduler)" --kubeconfig="$KC" \
	--authentication-kubeconfig="$KC" --authorization-kubeconfig="$KC" --leader-elect=false \
	--bind-address=127.0.0.1
wait_for kube-controller-manager curl -skf "https://127.0.0.1:10257/healthz"
wait_for kube-scheduler curl -skf "https://127.0.0.1:10259/healthz"

# No serviceaccount controller runs: the job controller's pods need the
# namespace's default ServiceAccount to exist.
api() { curl -skf -H "Authorization: Bearer $TOKEN" -H 'Content-Type: application/json' "$@"; }
api -X POST "https://127.0.0.1:$PORT/api/v1/namespaces/default/serviceaccounts" \
	-d '{"apiVersion":"v1","kind":"ServiceAccount","metadata":{"name":"default"}}' >/dev/null

# The node agent registers the Nodes (capacity, Ready, untainted) and plays
# their kubelet; see cluster/k8scluster/internal/nodeagent.
nodes=$(IFS=,; echo "${NODES[*]}")
start cairn-nodeagent "$D/cairn-nodeagent" -kubeconfig "$KC" -nodes "$nodes" -dir "$D/agent" \
	-cpu 32 -memory 64Gi -ephemeral-storage 100Gi -gpus 4
for n in "${NODES[@]}"; do
	wait_for cairn-nodeagent sh -c "curl -skf -H 'Authorization: Bearer $TOKEN' https://127.0.0.1:$PORT/api/v1/nodes/$n | grep -q '\"type\": \"Ready\"'"
done

cat >>"$ENV_FILE" <<ENV
CAIRN_TEST_K8S_KUBECONFIG=$KC
CAIRN_TEST_K8S_NODES=$nodes
ENV
echo "kubernetes: API server on https://127.0.0.1:$PORT, nodes $nodes ($(($(date +%s) - t0))s); kubeconfig $KC"
