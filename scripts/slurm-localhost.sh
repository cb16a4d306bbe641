#!/usr/bin/env bash
# A single-node SLURM on this machine, for the tests and the benchmark of `weakbeam ... --slurm`.
#   scripts/slurm-localhost.sh start    configure (once) and start munged, slurmctld, slurmd; wait
#                                       until the node is idle. Does nothing if already up.
#   scripts/slurm-localhost.sh stop     stop the three daemons this script started.
#   scripts/slurm-localhost.sh status   exit 0 if the controller answers and the node is usable.
# Needs root and Debian's slurm-wlm + munge (scripts/setup.sh --test installs them). Writes
# /etc/slurm/slurm.conf (only if absent or written by this script: a site's own config is never
# replaced): one node (this host, at 127.0.0.1, 2 CPUs, its real memory), one partition `debug`,
# jobs of root allowed, no cgroups or accounting (containers have neither). Everything listens
# and talks on loopback only.
set -euo pipefail
CONF=/etc/slurm/slurm.conf
MARK="# written by napari-weakbeam scripts/slurm-localhost.sh"
STATE=/var/lib/slurm-localhost
LOGS=/var/log/slurm-localhost
NODE=$(hostname -s)
CPUS=${SLURM_LOCALHOST_CPUS:-2}

die() { echo "slurm-localhost: $*" >&2; exit 1; }

pid_alive() { [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null; }

node_state() { sinfo -h -N -n "$NODE" -o %T 2>/dev/null | head -1; }

write_config() {
  if [ -f "$CONF" ] && ! grep -qF "$MARK" "$CONF"; then
    die "$CONF exists and was not written by this script; not replacing a site's SLURM configuration"
  fi
  local mem
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')
  [ -n "$mem" ] || die "slurmd -C did not report this machine's memory"
  mkdir -p /etc/slurm "$STATE/ctld" "$STATE/d" "$LOGS"
  cat > "$CONF.tmp" <<EOF
$MARK
ClusterName=localhost
SlurmctldHost=$NODE(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
StateSaveLocation=$STATE/ctld
SlurmdSpoolDir=$STATE/d
SlurmctldPidFile=$STATE/slurmctld.pid
SlurmdPidFile=$STATE/slurmd.pid
SlurmctldLogFile=$LOGS/slurmctld.log
SlurmdLogFile=$LOGS/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
MpiDefault=none
SwitchType=switch/none
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
DefMemPerCPU=1024
ReturnToService=2
DisableRootJobs=NO
SlurmctldTimeout=30
SlurmdTimeout=30
InactiveLimit=0
KillWait=5
MinJobAge=30
NodeName=$NODE NodeAddr=127.0.0.1 NodeHostname=$NODE CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$NODE Default=YES MaxTime=INFINITE State=UP
EOF
  if ! cmp -s "$CONF.tmp" "$CONF" 2>/dev/null; then mv "$CONF.tmp" "$CONF"; else rm -f "$CONF.tmp"; fi
}

start_munge() {
  local key=/etc/munge/munge.key
  if [ ! -s "$key" ]; then
    mkdir -p /etc/munge
    dd if=/dev/urandom of="$key" bs=1 count=1024 status=none
  fi
  chown munge:munge /etc/munge "$key"; chmod 700 /etc/munge; chmod 400 "$key"
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  if ! munge -n 2>/dev/null | unmunge >/dev/null 2>&1; then
    runuser -u munge -- /usr/sbin/munged --force
    for _ in $(seq 50); do munge -n 2>/dev/null | unmunge >/dev/null 2>&1 && return 0; sleep 0.1; done
    die "munged did not start (see /var/log/munge/munged.log)"
  fi
}

start() {
  command -v slurmctld >/dev/null && command -v munged >/dev/null \
    || die "slurm-wlm and munge are not installed (apt-get install slurm-wlm munge, or scripts/setup.sh --test)"
  [ "$(id -u)" = 0 ] || die "starting SLURM daemons needs root"
  write_config
  start_munge
  # -c: forget the jobs of an earlier run; -i: ignore a changed node list in the saved state.
  pid_alive "$STATE/slurmctld.pid" || slurmctld -c -i
  pid_alive "$STATE/slurmd.pid" || slurmd -N "$NODE"
  local state=""
  for _ in $(seq 150); do
    state=$(node_state)
    case "$state" in
      idle|mixed|allocated) return 0 ;;
      down*|drain*|fail*) scontrol update NodeName="$NODE" State=RESUME 2>/dev/null || true ;;
    esac
    sleep 0.2
  done
  die "node $NODE is '${state:-not reported}' after 30 s (see $LOGS/slurmctld.log and $LOGS/slurmd.log)"
}

stop_daemons() {  # pidfiles: SIGTERM to all, then wait up to 10 s for them to end
  local pids="" pid
  for f in "$@"; do pid_alive "$f" && pids="$pids $(cat "$f")"; done
  [ -n "$pids" ] || return 0
  kill $pids 2>/dev/null || true
  for _ in $(seq 100); do
    kill -0 $pids 2>/dev/null || return 0
    sleep 0.1
  done
  kill -9 $pids 2>/dev/null || true
}

stop() {
  # Cancel the jobs first: their processes would outlive slurmd.
  local jobs
  jobs=$(squeue -h -o %i 2>/dev/null || true)
  if [ -n "$jobs" ]; then
    scancel --full $jobs 2>/dev/null || true
    for _ in $(seq 100); do [ -z "$(squeue -h -o %i 2>/dev/null)" ] && break; sleep 0.1; done
  fi
  stop_daemons "$STATE/slurmd.pid" "$STATE/slurmctld.pid" /run/munge/munged.pid
}

status() {
  pid_alive "$STATE/slurmctld.pid" && pid_alive "$STATE/slurmd.pid" || return 1
  case "$(node_state)" in idle|mixed|allocated) return 0 ;; *) return 1 ;; esac
}

case "${1:-}" in
  start) status || start ;;
  stop) stop ;;
  status) status ;;
  *) echo "usage: $0 start|stop|status" >&2; exit 2 ;;
esac
