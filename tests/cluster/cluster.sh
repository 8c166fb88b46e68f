# shellcheck shell=bash
# A real three-node Slurm cluster on one machine (sourced), for tests of multi-node behaviour: each node is a Linux
# network namespace with its own address, hostname, slurmd and node-local /tmp; the filesystem (checkout, binary,
# DIR, munge's socket) is shared between the nodes like a cluster's parallel file system. Style and recipe of
# ../slurm_cluster.sh and ../../../shared/SLURM-LOCAL.md; daemons run in the foreground as children and are stopped
# by PID.
#
#   cluster_start DIR [CPUS]  config, state, logs and the nodes' /tmp under DIR (not under /tmp); CPUS per node
#                             (default 2); sets SLURM_CONF; waits until all nodes are idle
#   cluster_stop              stops exactly what cluster_start started and removes the namespaces, veths, bridge and
#                             DIR's spool/state; safe after a partial start and from an EXIT trap; idempotent
#   cluster_missing           prints why the cluster cannot be started here (empty if it can)
#   cluster_on NODE CMD...    runs CMD inside node NODE (its network, hostname and /tmp), e.g. cluster_on node2 ls /tmp
#   cluster_kill_node NODE    SIGKILL to every process of NODE (its slurmd, slurmstepds and job tasks): a node loss
#   cluster_restart_node NODE NODE back in service (a new slurmd); waits until it is idle
#
# Layout (every object it creates is named s2c*; nothing else on the host is touched):
#   bridge s2cbr0 10.77.0.1/24 in the host namespace; slurmctld runs there (SlurmctldHost=<host>(10.77.0.1)), so the
#   host is the "login node": sbatch/srun/sinfo work from the test script as they are.
#   namespaces s2c-node1..3, veth s2cvN <-> eth0 in the namespace, 10.77.0.11..13/24, lo up; slurmd as NodeName nodeN
#   inside `unshare --uts --mount` (hostname nodeN, DIR/nodes/nodeN/tmp bind-mounted on /tmp, DIR/hosts on
#   /etc/hosts so node names resolve on the nodes).
S2C_CLUSTER_NODES=3
S2C_CLUSTER_NET=10.77.0
S2C_CLUSTER_BRIDGE=s2cbr0
S2C_CLUSTER_PIDS=()     # every daemon started, in start order
S2C_CLUSTER_MUNGED=""   # 1 if cluster_start started munged (else it reused a running one)
S2C_CLUSTER_DIR=""

cluster_missing() {
  local p
  for p in munged slurmctld slurmd sbatch srun scontrol squeue sinfo ip unshare nsenter; do
    command -v "$p" >/dev/null 2>&1 || [ -x "/usr/sbin/$p" ] || { echo "$p is not installed (apt-get install slurm-wlm munge iproute2 util-linux)"; return; }
  done
  [ "$(id -u)" = 0 ] || { echo "network namespaces and slurmd need root"; return; }
  [ -r /etc/munge/munge.key ] || { echo "no /etc/munge/munge.key (reinstall munge)"; return; }
  ip netns add s2c-probe$$ 2>/dev/null || { echo "cannot create network namespaces here (ip netns add failed)"; return; }
  ip netns del s2c-probe$$ 2>/dev/null || true
}

# cluster_on NODE CMD...: CMD in NODE's network namespace, hostname and mount namespace (/tmp, /etc/hosts), found via
# that node's slurmd.
cluster_on() {
  local node="$1"; shift
  local pid
  pid=$(cat "$S2C_CLUSTER_DIR/run/slurmd-$node.pid" 2>/dev/null) || { echo "cluster_on: no slurmd for $node" >&2; return 1; }
  nsenter -t "$pid" -n -u -m -- "$@"
}

# Removes the s2c network objects (namespaces, veths, bridge) that exist, killing whatever still runs inside the
# namespaces first (slurmstepd, job tasks: all of them ours, started through our slurmd).
_s2c_net_down() {
  local i ns pid
  for i in $(seq 1 "$S2C_CLUSTER_NODES"); do
    ns=s2c-node$i
    if ip netns list 2>/dev/null | grep -qw "$ns"; then
      for pid in $(ip netns pids "$ns" 2>/dev/null); do kill -9 "$pid" 2>/dev/null || true; done
      ip netns del "$ns" 2>/dev/null || true
    fi
    ip link del "s2cv$i" 2>/dev/null || true   # normally gone with its peer in the namespace
  done
  ip link del "$S2C_CLUSTER_BRIDGE" 2>/dev/null || true
}

_s2c_net_up() {
  local i n ns
  ip link add "$S2C_CLUSTER_BRIDGE" type bridge || return 1
  ip addr add "$S2C_CLUSTER_NET.1/24" dev "$S2C_CLUSTER_BRIDGE" || return 1
  ip link set "$S2C_CLUSTER_BRIDGE" up || return 1
  for i in $(seq 1 "$S2C_CLUSTER_NODES"); do
    ns=s2c-node$i
    ip netns add "$ns" || return 1
    ip link add "s2cv$i" type veth peer name eth0 netns "$ns" || return 1
    ip link set "s2cv$i" master "$S2C_CLUSTER_BRIDGE" up || return 1
    ip -n "$ns" addr add "$S2C_CLUSTER_NET.$((10 + i))/24" dev eth0 || return 1
    ip -n "$ns" link set lo up || return 1
    ip -n "$ns" link set eth0 up || return 1
  done
  # The bridge forwards at once (STP off); wait for every port to forward and every node's eth0 to be up (no ping
  # here: iputils is not installed on the CI machine).
  local ok
  for i in $(seq 1 50); do
    ok=1
    for n in $(seq 1 "$S2C_CLUSTER_NODES"); do
      [ "$(cat "/sys/class/net/s2cv$n/brport/state" 2>/dev/null)" = 3 ] || ok=0
      ip -n "s2c-node$n" -o link show eth0 2>/dev/null | grep -q 'LOWER_UP' || ok=0
    done
    [ "$ok" = 1 ] && return 0
    sleep 0.1
  done
  echo "cluster: the links of $S2C_CLUSTER_BRIDGE did not come up" >&2
  return 1
}

# _s2c_start_slurmd NODE: NODE's slurmd in its namespace, hostname and /tmp (a child of this shell; PID remembered).
_s2c_start_slurmd() {
  local node="$1" dir="$S2C_CLUSTER_DIR"
  # nsenter and unshare exec (no fork), sh execs slurmd: $! is slurmd itself. slurmd finds its NodeName from the
  # hostname (this Slurm is not built with --enable-multiple-slurmd, so `slurmd -N` is not available). Not
  # `ip netns exec`: it mounts a fresh /sys without /sys/fs/cgroup, and slurmd then fails ("Unable to initialize
  # cgroup plugin") even with proctrack/linuxproc and task/none.
  nsenter --net="/run/netns/s2c-$node" unshare --uts --mount --propagation private \
    sh -c 'hostname "$1" && mount --bind "$2" /tmp && mount --bind "$3" /etc/hosts && exec /usr/sbin/slurmd -D -f "$4"' \
    sh "$node" "$dir/nodes/$node/tmp" "$dir/hosts" "$SLURM_CONF" >> "$dir/log/slurmd-$node.out" 2>&1 &
  S2C_CLUSTER_PIDS+=($!)
}

# cluster_restart_node NODE: NODE back after cluster_kill_node (a new slurmd; ReturnToService=2 puts the node back in
# service when it registers); waits until it is idle.
cluster_restart_node() {
  local i
  _s2c_start_slurmd "$1"
  for i in $(seq 1 150); do
    [ "$(sinfo -h -n "$1" -o %T 2>/dev/null)" = idle ] && return 0
    sleep 0.2
  done
  echo "cluster_restart_node: $1 is $(sinfo -h -n "$1" -o %T) after 30 s" >&2
  return 1
}

cluster_start() {
  local dir="$1" cpus="${2:-2}" host i node
  case "$(realpath -m "$dir")/" in
    /tmp/*) echo "cluster_start: DIR must not be under /tmp (each node mounts its own /tmp over it)" >&2; return 1 ;;
  esac
  if pgrep -x slurmctld >/dev/null || pgrep -x slurmd >/dev/null; then
    echo "cluster_start: a slurmctld or slurmd is already running (PIDs $(pgrep -d ' ' -x 'slurmctld|slurmd')):" \
         "stop it first; this starts its own cluster" >&2
    return 1
  fi
  if [ -n "$S2C_CLUSTER_DIR" ]; then echo "cluster_start: a cluster is already started (cluster_stop first)" >&2; return 1; fi
  mkdir -p "$dir"
  dir=$(realpath "$dir")
  S2C_CLUSTER_DIR="$dir"
  host=$(hostname -s)
  # Leftovers of a killed earlier run (the names are ours): no daemon is running (checked above), so remove them.
  if ip netns list 2>/dev/null | grep -q '^s2c-node' || ip link show "$S2C_CLUSTER_BRIDGE" >/dev/null 2>&1; then
    echo "cluster_start: removing s2c namespaces/links left over from an earlier run" >&2
    _s2c_net_down
  fi
  rm -rf "$dir/state" "$dir/spool" "$dir/nodes" "$dir/run"
  mkdir -p "$dir/state" "$dir/log" "$dir/run" /run/munge
  chown munge:munge /run/munge 2>/dev/null || true
  {
    echo "127.0.0.1 localhost"
    echo "$S2C_CLUSTER_NET.1 $host"
    for i in $(seq 1 "$S2C_CLUSTER_NODES"); do echo "$S2C_CLUSTER_NET.$((10 + i)) node$i"; done
  } > "$dir/hosts"
  {
    cat <<CONF
ClusterName=s2c-cluster
SlurmctldHost=$host($S2C_CLUSTER_NET.1)
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
# A node whose slurmd stops answering is DOWN after 10 s (default 300 s): node-loss tests see Slurm react promptly.
SlurmdTimeout=10
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool/%n
# Node-local: every node has its own /tmp (DIR/nodes/NODE/tmp), so the MPI plugin's spmix_appdir_* folders of the
# nodes of one step do not collide, and a fresh cluster never finds one left over.
TmpFS=/tmp
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd-%n.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd-%n.log
CONF
    for i in $(seq 1 "$S2C_CLUSTER_NODES"); do
      echo "NodeName=node$i NodeAddr=$S2C_CLUSTER_NET.$((10 + i)) CPUs=$cpus RealMemory=8000 State=UNKNOWN"
    done
    echo "PartitionName=debug Nodes=node[1-$S2C_CLUSTER_NODES] Default=YES MaxTime=60 State=UP"
  } > "$dir/slurm.conf"
  export SLURM_CONF="$dir/slurm.conf"

  _s2c_net_up || { echo "cluster_start: could not set up the network (bridge, namespaces, veths)" >&2; return 1; }

  if ! pgrep -x munged >/dev/null; then
    runuser -u munge -- /usr/sbin/munged --foreground > "$dir/log/munged.out" 2>&1 &
    S2C_CLUSTER_PIDS+=($!)
    S2C_CLUSTER_MUNGED=1
    for i in $(seq 1 50); do [ -S /run/munge/munge.socket.2 ] && break; sleep 0.1; done
  fi
  /usr/sbin/slurmctld -D -c -i -f "$SLURM_CONF" > "$dir/log/slurmctld.out" 2>&1 &
  S2C_CLUSTER_PIDS+=($!)
  for i in $(seq 1 "$S2C_CLUSTER_NODES"); do
    node=node$i
    mkdir -p "$dir/spool/$node" "$dir/nodes/$node/tmp"
    chmod 1777 "$dir/nodes/$node/tmp"
    _s2c_start_slurmd "$node"
  done
  local states
  for i in $(seq 1 150); do
    states=$(sinfo -h -N -o '%N %T' 2>/dev/null | sort -u)
    [ "$(grep -c ' idle$' <<< "$states")" = "$S2C_CLUSTER_NODES" ] && return 0
    sleep 0.2
  done
  echo "cluster_start: the nodes did not all become idle within 30 s:" >&2
  echo "$states" >&2
  tail -n 5 "$dir/log/"*.log "$dir/log/"*.out >&2 || true
  return 1
}

# cluster_kill_node NODE: the node fails: SIGKILL to every process in its namespace (slurmd, slurmstepd, job tasks).
cluster_kill_node() {
  local pids
  pids=$(ip netns pids "s2c-$1" 2>/dev/null | tr '\n' ' ')
  [ -n "$pids" ] || { echo "cluster_kill_node: nothing runs on $1" >&2; return 1; }
  # shellcheck disable=SC2086
  kill -9 $pids 2>/dev/null || true
}

cluster_stop() {
  local pid i
  [ -n "$S2C_CLUSTER_DIR" ] || return 0   # nothing started (or a refused start: leave the other cluster alone)
  # Jobs first, so no slurmstepd is left waiting for a slurmd that is gone.
  if [ -n "${SLURM_CONF:-}" ] && [ -f "$SLURM_CONF" ]; then
    timeout 5 scancel --full --quiet --partition=debug >/dev/null 2>&1 || true
  fi
  # slurmds (and munged, slurmctld) by PID, newest first; then anything still inside the namespaces.
  for ((i = ${#S2C_CLUSTER_PIDS[@]} - 1; i >= 0; i--)); do kill "${S2C_CLUSTER_PIDS[$i]}" 2>/dev/null || true; done
  for pid in "${S2C_CLUSTER_PIDS[@]}"; do
    for i in $(seq 1 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -9 "$pid" 2>/dev/null || true
    wait "$pid" 2>/dev/null || true
  done
  # runuser forwards the TERM to munged and exits; munged may linger a moment as a zombie (no init reaps here):
  # wait until it is gone, or the next helper would take it for a running munged.
  if [ -n "$S2C_CLUSTER_MUNGED" ]; then
    for i in $(seq 1 50); do pgrep -x munged >/dev/null || break; sleep 0.1; done
  fi
  _s2c_net_down
  rm -rf "$S2C_CLUSTER_DIR/state" "$S2C_CLUSTER_DIR/spool" "$S2C_CLUSTER_DIR/nodes" "$S2C_CLUSTER_DIR/run"
  S2C_CLUSTER_PIDS=()
  S2C_CLUSTER_MUNGED=""
  S2C_CLUSTER_DIR=""
  unset SLURM_CONF
}
