# A real single-node Slurm cluster for tests (sourced): munged, slurmctld and slurmd from Debian's packages, started in
# the foreground as children of the test script and stopped by PID. Recipe: ../shared/SLURM-LOCAL.md.
#   slurm_cluster_start DIR [CPUS]   config, state and logs under DIR; sets SLURM_CONF; waits for the node to be idle
#   slurm_cluster_stop               stops exactly the daemons it started
#   slurm_cluster_missing            prints why a cluster cannot be started here (empty if it can)
SLURM_CLUSTER_PIDS=()

slurm_cluster_missing() {
  local p
  for p in munged slurmctld slurmd sbatch srun scontrol squeue sinfo; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || { echo "$p is not installed (apt-get install slurm-wlm munge)"; return; }
  done
  [ "$(id -u)" = 0 ] || { echo "starting slurmd needs root"; return; }
  [ -r /etc/munge/munge.key ] || { echo "no /etc/munge/munge.key (reinstall munge)"; return; }
}

slurm_cluster_start() {
  local dir="$1" cpus="${2:-4}" host
  host=$(hostname -s)
  mkdir -p "$dir/state" "$dir/spool" "$dir/log" "$dir/tmp" /run/slurm /run/munge
  chown munge:munge /run/munge 2>/dev/null || true
  cat > "$dir/slurm.conf" <<CONF
ClusterName=s2crop-test
SlurmctldHost=localhost
SlurmUser=root
AuthType=auth/munge
# Requeued jobs wait for the old job credential to expire before they can start again (default 120 s).
AuthInfo=cred_expire=10
MpiDefault=pmix
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SlurmdParameters=config_overrides
ReturnToService=2
MailProg=/bin/true
MinJobAge=3600
KillWait=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
# The MPI plugin makes spmix_appdir_<uid>_<job>.<step> here and refuses to start a step whose folder is left over
# from a killed earlier cluster with the same job ids: a private TmpFS keeps test clusters apart.
TmpFS=$dir/tmp
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
NodeName=$host NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=8000 State=UNKNOWN
PartitionName=debug Nodes=$host Default=YES MaxTime=60 State=UP
CONF
  export SLURM_CONF="$dir/slurm.conf"
  if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    echo "a slurmctld or slurmd is already running on this machine (PIDs $(pgrep -d ' ' -x 'slurmctld|slurmd')):" \
         "stop it first; this test starts its own cluster" >&2
    return 1
  fi
  if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --foreground > "$dir/log/munged.out" 2>&1 &
    SLURM_CLUSTER_PIDS+=($!)
    sleep 0.5
  fi
  /usr/sbin/slurmctld -D -c -i -f "$SLURM_CONF" > "$dir/log/slurmctld.out" 2>&1 &
  SLURM_CLUSTER_PIDS+=($!)
  /usr/sbin/slurmd -D -f "$SLURM_CONF" > "$dir/log/slurmd.out" 2>&1 &
  SLURM_CLUSTER_PIDS+=($!)
  local i
  for i in $(seq 1 100); do
    [ "$(sinfo -h -o %T 2>/dev/null | head -1)" = idle ] && return 0
    sleep 0.2
  done
  echo "the Slurm node did not become idle; logs in $dir/log" >&2
  tail -5 "$dir/log/"*.log >&2 || true
  return 1
}

slurm_cluster_stop() {
  local pid
  for pid in "${SLURM_CLUSTER_PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${SLURM_CLUSTER_PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
  SLURM_CLUSTER_PIDS=()
}
