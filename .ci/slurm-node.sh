#!/usr/bin/env bash
# A single-node SLURM for the cluster tests: munged, slurmctld and slurmd on 127.0.0.1, one
# partition "ci", config and state in DIR (Debian's slurmctld, slurmd, slurm-client, munge).
#   .ci/slurm-node.sh start DIR   prints the SLURM_CONF to use once `sinfo` shows the node idle
#   .ci/slurm-node.sh stop DIR    stops the three daemons started in DIR
set -euo pipefail
action=$1
dir=$(realpath -m "$2")
conf=$dir/slurm.conf
if [ "$action" = stop ]; then
  for pid in slurmd slurmctld munge/munged; do
    [ -f "$dir/$pid.pid" ] && kill "$(cat "$dir/$pid.pid")" 2>/dev/null || true
  done
  exit 0
fi
mkdir -p "$dir"/{munge,spool,state,log}
chmod 700 "$dir/munge"
[ -f "$dir/munge/munge.key" ] || mungekey --create --keyfile "$dir/munge/munge.key"
munged --force --key-file="$dir/munge/munge.key" --socket="$dir/munge/socket" --log-file="$dir/log/munged.log" \
  --pid-file="$dir/munge/munged.pid" --seed-file="$dir/munge/seed"
cat >"$conf" <<CONF
ClusterName=ci
SlurmctldHost=localhost
SlurmctldPort=16817
SlurmdPort=16818
CommunicationParameters=NoCtldInAddrAny,NoInAddrAny
AuthType=auth/munge
AuthInfo=socket=$dir/munge/socket
CredType=cred/munge
SlurmUser=$(id -un)
SlurmdUser=root
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/slurmctld.pid
SlurmdPidFile=$dir/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
ReturnToService=2
MpiDefault=none
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$(nproc) RealMemory=$(( $(free -m | awk '/^Mem:/ {print $2}') / 2 )) State=UNKNOWN
PartitionName=ci Nodes=localhost Default=YES MaxTime=INFINITE State=UP OverSubscribe=YES
CONF
export SLURM_CONF=$conf
slurmctld -c
slurmd
for _ in $(seq 60); do
  # grep without -q reads all of sinfo's answer, so pipefail never sees a SIGPIPE
  if sinfo -h -o %t 2>/dev/null | grep -x idle >/dev/null; then echo "$conf"; exit 0; fi
  sleep 1
done
echo "slurm-node: the node did not come up (logs in $dir/log)" >&2
exit 1
