#!/usr/bin/env bash
# A single-node Slurm (slurmctld + slurmd + munge, Debian packages) for the
# cluster/slurmcluster tests and the remote-step tests. See
# docs/infrastructure.md §1 for where every setting comes from.
#
#   slurm.sh up     install if missing, configure, start, wait for the node
#                   to be idle, append CAIRN_TEST_SLURM=1 and
#                   CAIRN_TEST_SLURM_PARTITION to $CAIRN_SERVICES_ENV
#   slurm.sh down   stop the three daemons
#
# The node declares more than the machine has (8 CPUs, 16 GiB, 100 GB of
# /tmp, 4 fake GPUs backed by /dev/tty0..3) so that resource flags can be
# tested; the scheduler's batch delays are off so that tests are fast.
# Set CAIRN_SLURM_DIR to keep state elsewhere than /tmp/cairn-slurm.
set -euo pipefail
action=${1:?usage: slurm.sh up|down}
D=${CAIRN_SLURM_DIR:-/tmp/cairn-slurm}
ENV_FILE=${CAIRN_SERVICES_ENV:-/tmp/cairn-services.env}

stop() {
	for f in "$D/slurmd.pid" "$D/slurmctld.pid" /run/munge/munged.pid; do
		if [ -s "$f" ]; then
			pid=$(cat "$f")
			kill "$pid" 2>/dev/null || true
			for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
			rm -f "$f"
		fi
	done
}

case $action in
down)
	stop
	exit 0
	;;
up) ;;
*)
	echo "usage: slurm.sh up|down" >&2
	exit 2
	;;
esac

if [ "$(id -u)" != 0 ]; then
	echo "slurm.sh: needs root (it installs packages and runs the daemons)" >&2
	exit 1
fi
if ! command -v slurmctld >/dev/null || ! command -v slurmd >/dev/null || ! command -v sbatch >/dev/null || ! command -v munged >/dev/null; then
	export DEBIAN_FRONTEND=noninteractive
	# A mirror hiccup should not fail CI: try three times.
	for try in 1 2 3; do
		if apt-get update -qq && apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >/dev/null; then
			break
		fi
		[ "$try" = 3 ] && { echo "slurm.sh: could not install Slurm from Debian's packages" >&2; exit 1; }
		sleep 5
	done
fi

stop # a previous run's daemons, if any
H=$(hostname -s)
mkdir -p "$D"/{state,spool,log} /etc/slurm /run/munge
chown munge:munge /run/munge
if [ ! -s /etc/munge/munge.key ]; then
	mkdir -p /etc/munge
	dd if=/dev/urandom of=/etc/munge/munge.key bs=1024 count=1 status=none
	chown munge:munge /etc/munge/munge.key
	chmod 400 /etc/munge/munge.key
fi
cat > /etc/slurm/slurm.conf <<CONF
# Written by cairn scripts/services.d/slurm.sh; single node, for tests.
ClusterName=cairn
SlurmctldHost=$H
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/slurmctld.pid
SlurmdPidFile=$D/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,sched_min_interval=0
EnforcePartLimits=ALL
ReturnToService=2
MpiDefault=none
MailProg=/bin/true
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.txt
JobAcctGatherType=jobacct_gather/none
MinJobAge=600
DefMemPerCPU=256
KillWait=5
SlurmdParameters=config_overrides
GresTypes=gpu
TmpFS=/tmp
NodeName=$H CPUs=8 RealMemory=16384 TmpDisk=100000 Gres=gpu:4 State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
CONF
printf 'AutoDetect=off\nNodeName=%s Name=gpu File=/dev/tty[0-3]\n' "$H" > /etc/slurm/gres.conf

su -s /bin/sh munge -c /usr/sbin/munged
slurmctld -c
slurmd
for _ in $(seq 300); do
	if sinfo -h -N -o %t 2>/dev/null | grep -qx idle; then
		{
			echo "CAIRN_TEST_SLURM=1"
			echo "CAIRN_TEST_SLURM_PARTITION=debug"
		} >> "$ENV_FILE"
		echo "slurm: node $H idle (logs in $D/log)"
		exit 0
	fi
	sleep 0.2
done
echo "slurm: node did not become idle within 60 s:" >&2
sinfo -N -l >&2 || true
tail -n 30 "$D/log/slurmctld.log" "$D/log/slurmd.log" >&2 || true
exit 1
