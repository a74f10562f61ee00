#!/usr/bin/env bash
# A one-node Slurm cluster on localhost, for the Slurm executor's tests (and to try it by hand).
# Installs Debian's slurm-wlm and munge when missing (needs root and the Debian registry), writes
# a slurm.conf for this machine, and starts munged, slurmctld and slurmd. Idempotent: when the node
# already answers with this configuration, it returns at once. Loopback only; no accounting
# database (so `sacct` has nothing; `squeue` and `scontrol show job` do). Two callers at once (two
# tests, or `make test` beside a test run) are serialised by a lock: one sets the cluster up, the
# other then finds it up.
set -euo pipefail

exec 9>"${TMPDIR:-/tmp}/oodpipe-slurm_local.lock"
flock 9

node_up() {
    command -v sinfo >/dev/null 2>&1 || return 1
    local state
    state=$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null | head -1) || return 1
    [[ "$state" =~ ^(idle|mixed|allocated|completing)$ ]]
}

conf_wanted() {
    local cpus memory
    cpus=$(nproc)
    memory=$(( $(awk '/MemTotal/ {print $2}' /proc/meminfo) / 1024 - 1024 ))
    cat <<CONF
# Written by oodpipe's scripts/slurm_local.sh: one node, this machine, loopback only.
ClusterName=oodpipe-local
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
ReturnToService=2
MinJobAge=3600
SlurmctldPidFile=/run/slurmctld.pid
SlurmdPidFile=/run/slurmd.pid
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldLogFile=/var/log/slurm/slurmctld.log
SlurmdLogFile=/var/log/slurm/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory State=UNKNOWN
PartitionName=debug Nodes=localhost Default=YES MaxTime=INFINITE State=UP
CONF
}

if node_up && [[ "$(conf_wanted)" == "$(cat /etc/slurm/slurm.conf 2>/dev/null)" ]]; then
    exit 0
fi

if ! command -v slurmctld >/dev/null 2>&1 || ! command -v munged >/dev/null 2>&1; then
    if [[ $(id -u) -ne 0 ]]; then
        echo "slurm_local.sh: Slurm is not installed and installing it needs root (apt-get install slurm-wlm munge)" >&2
        exit 1
    fi
    echo "installing slurm-wlm and munge (apt-get)..." >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get install -y -q slurm-wlm munge >/dev/null 2>&1 || { apt-get update -q >/dev/null && apt-get install -y -q slurm-wlm munge >/dev/null; }
fi

# munge: a key, then the daemon (as root it needs --force).
mkdir -p /etc/munge /var/lib/munge /var/log/munge /run/munge
if [[ ! -s /etc/munge/munge.key ]]; then
    dd if=/dev/urandom of=/etc/munge/munge.key bs=1k count=1 status=none
fi
chmod 0400 /etc/munge/munge.key
if ! pgrep -x munged >/dev/null; then
    munged --force 2>/dev/null 9>&-
fi

mkdir -p /etc/slurm /var/spool/slurmctld /var/spool/slurmd /var/log/slurm
if [[ "$(conf_wanted)" != "$(cat /etc/slurm/slurm.conf 2>/dev/null)" ]]; then
    conf_wanted > /etc/slurm/slurm.conf
    # A changed configuration needs the daemons restarted.
    pkill -x slurmctld || true
    pkill -x slurmd || true
    # (pgrep matches a process name of at most 15 characters: one name a call.)
    for _ in $(seq 1 50); do pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null || break; sleep 0.1; done
fi
# The daemons must not hold the lock: they outlive this script.
pgrep -x slurmctld >/dev/null || slurmctld 9>&-
pgrep -x slurmd >/dev/null || slurmd -N localhost 9>&-

for _ in $(seq 1 100); do
    if node_up; then
        exit 0
    fi
    state=$(timeout 5 sinfo -h -n localhost -o %T 2>/dev/null | head -1 || true)
    if [[ "$state" == down* || "$state" == drain* ]]; then
        scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true
    fi
    sleep 0.2
done
echo "slurm_local.sh: the node did not come up; see /var/log/slurm/slurmctld.log and slurmd.log" >&2
sinfo >&2 || true
exit 1
