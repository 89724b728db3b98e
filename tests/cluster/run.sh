#!/usr/bin/env bash
# `make test-cluster`: start a throwaway one-node SLURM cluster and PostgreSQL server on loopback, run the cluster
# tests (tests/cluster/) against them, then stop everything this script started, by pid.
#
# Works from a bare Debian/Ubuntu machine as root: slurm-wlm, munge and postgresql are installed with apt-get when
# missing. Services the machine already runs are left alone: everything here has its own config directory, munge
# socket and free ports, and the SLURM commands of the tests reach this cluster through SLURM_CONF.
# Extra arguments go to pytest. KEEP_CLUSTER=1 keeps the throwaway directory (logs, configs) after the run;
# CLUSTER_HOLD=1 starts the servers, writes their settings to <throwaway dir>/env and waits (for debugging).
set -euo pipefail

repo=$(cd "$(dirname "$0")/../.." && pwd)
python=${PYTHON:-$repo/.venv/bin/python}
partition=cpu

if [ "$(id -u)" != 0 ]; then
    echo "make test-cluster starts slurmd, which launches jobs as their users: run it as root (sudo make test-cluster)" >&2
    exit 2
fi

say() { echo "[test-cluster ${SECONDS}s] $*"; }

# ----------------------------------------------------------------------------- packages, only when missing
pg_bindir() {  # the newest PostgreSQL with a server (client packages alone bring a bin/ without initdb)
    local dir
    for dir in $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -rV); do
        [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && { echo "$dir"; return 0; }
    done
    return 0
}
missing=()
for cmd in slurmctld slurmd sbatch; do command -v "$cmd" >/dev/null || { missing+=(slurm-wlm); break; }; done
command -v munged >/dev/null || missing+=(munge)
[ -n "$(pg_bindir)" ] || missing+=(postgresql)
if [ ${#missing[@]} -gt 0 ]; then
    say "installing ${missing[*]} with apt-get"
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -q >/dev/null
    apt-get install -y -q --no-install-recommends "${missing[@]}" >/dev/null
fi
pg_bin=$(pg_bindir)
[ -n "$pg_bin" ] || { echo "no PostgreSQL server under /usr/lib/postgresql/*/bin after installing" >&2; exit 1; }

# ----------------------------------------------------------------------------- bookkeeping: stop what we started
work=$(mktemp -d /tmp/rlrun-cluster.XXXXXX)
chmod 755 "$work"  # the postgres user needs to reach its data directory below
started=()         # "name pid", in start order; stopped in reverse

free_port() { "$python" -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

stop_pid() {  # stop_pid NAME PID SIGNAL: signal it, wait up to 20 s, then SIGKILL
    local name=$1 pid=$2 sig=$3
    kill -0 "$pid" 2>/dev/null || return 0
    kill "-$sig" "$pid" 2>/dev/null || true
    for _ in $(seq 200); do kill -0 "$pid" 2>/dev/null || return 0; sleep 0.1; done
    echo "$name (pid $pid) did not stop on SIG$sig: killing it" >&2
    kill -KILL "$pid" 2>/dev/null || true
}

cleanup() {
    local status=$?
    trap - EXIT INT TERM
    if [ -n "${slurmctld_pid:-}" ] && kill -0 "$slurmctld_pid" 2>/dev/null; then
        # jobs left running by a failed test: cancel them while the cluster is up, so no job step outlives it
        scancel --full --quiet --user="$(id -un)" 2>/dev/null || true
        for _ in $(seq 100); do [ -z "$(squeue -h -t active 2>/dev/null)" ] && break; sleep 0.2; done
    fi
    for ((i = ${#started[@]} - 1; i >= 0; i--)); do
        read -r name pid <<<"${started[$i]}"
        case $name in postgres) stop_pid "$name" "$pid" INT ;; *) stop_pid "$name" "$pid" TERM ;; esac
    done
    if [ $status -ne 0 ]; then
        for log in "$work"/munge/munged.log "$work"/slurm/*.log "$work"/pg/postgres.log; do
            [ -s "$log" ] && { echo "--- last lines of $log"; tail -n 15 "$log"; }
        done >&2
    fi
    if [ "${KEEP_CLUSTER:-0}" = 1 ]; then echo "kept $work"; else rm -rf "$work"; fi
    exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

wait_for() {  # wait_for SECONDS WHAT COMMAND...: poll until COMMAND succeeds
    local seconds=$1 what=$2
    shift 2
    for _ in $(seq $((seconds * 5))); do "$@" >/dev/null 2>&1 && return 0; sleep 0.2; done
    echo "$what did not come up within $seconds s" >&2
    return 1
}

# ----------------------------------------------------------------------------- munge: own key and socket
mkdir -m 755 "$work/munge"  # jobs of any user reach the socket; the key itself is root's alone
dd if=/dev/urandom of="$work/munge/munge.key" bs=1024 count=1 status=none
chmod 400 "$work/munge/munge.key"
socket=$work/munge/munge.socket
munged --foreground --force --socket="$socket" --key-file="$work/munge/munge.key" \
    --pid-file="$work/munge/munged.pid" --log-file="$work/munge/munged.log" \
    --seed-file="$work/munge/munged.seed" 2>>"$work/munge/munged.log" &
started+=("munged $!")
wait_for 10 munged bash -c "munge -n --socket='$socket' | unmunge --socket='$socket'"
say "munged is up"

# ----------------------------------------------------------------------------- SLURM: one node, one partition
mkdir -p "$work/slurm/state" "$work/slurm/spool"
node=$(hostname -s)
cpus=$(nproc)
[ "$cpus" -ge 2 ] || cpus=2  # the tests run two jobs at once; one core oversubscribed is slower, not wrong
memory_mb=$(awk '/MemTotal/ { printf "%d", $2 / 1024 * 0.9 }' /proc/meminfo)
export SLURM_CONF=$work/slurm/slurm.conf
cat >"$SLURM_CONF" <<EOF
ClusterName=rlrun-test
SlurmctldHost=$node(127.0.0.1)
SlurmctldPort=$(free_port)
SlurmdPort=$(free_port)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$work/slurm/state
SlurmdSpoolDir=$work/slurm/spool
SlurmctldPidFile=$work/slurm/slurmctld.pid
SlurmdPidFile=$work/slurm/slurmd.pid
SlurmctldLogFile=$work/slurm/slurmctld.log
SlurmdLogFile=$work/slurm/slurmd.log
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
SlurmdParameters=config_overrides
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
KillWait=10
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$memory_mb State=UNKNOWN
PartitionName=$partition Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
slurmctld -D -i 2>>"$work/slurm/slurmctld.log" &
slurmctld_pid=$!
started+=("slurmctld $slurmctld_pid")
wait_for 30 slurmctld scontrol ping
say "slurmctld is up"
slurmd -D 2>>"$work/slurm/slurmd.log" &
started+=("slurmd $!")
node_idle() { [ "$(sinfo -h -n "$node" -o %t)" = idle ]; }
wait_for 30 "slurmd (node $node idle)" node_idle
say "slurmd is up, node $node idle"

# ----------------------------------------------------------------------------- PostgreSQL: loopback, own data dir
mkdir -p "$work/pg"
password=$("$python" -c 'import secrets; print(secrets.token_hex(12))')
echo "$password" >"$work/pg/password"
chown -R postgres: "$work/pg"
as_postgres=(setpriv --reuid=postgres --regid=postgres --init-groups --)  # it execs: $! below is the server's pid
"${as_postgres[@]}" "$pg_bin/initdb" -D "$work/pg/data" -U rlrun --pwfile="$work/pg/password" --auth-local=trust \
    --auth-host=scram-sha-256 -E UTF8 --no-instructions >"$work/pg/initdb.log"
pg_port=$(free_port)
"${as_postgres[@]}" "$pg_bin/postgres" -D "$work/pg/data" -p "$pg_port" -c listen_addresses=127.0.0.1 \
    -c unix_socket_directories="$work/pg" -c fsync=off -c max_connections=200 >"$work/pg/postgres.log" 2>&1 &
started+=("postgres $!")
wait_for 30 postgres "$pg_bin/pg_isready" -q -h 127.0.0.1 -p "$pg_port"
say "postgres is up"
PGPASSWORD=$password "$pg_bin/psql" -q -h 127.0.0.1 -p "$pg_port" -U rlrun -d postgres \
    -c "CREATE DATABASE rlrun_studies"

# ----------------------------------------------------------------------------- the tests
say "SLURM: node $node ($cpus CPUs, $memory_mb MB), partition $partition; PostgreSQL on 127.0.0.1:$pg_port; in $work"
export RLRUN_TEST_SLURM_PARTITION=$partition
export RLRUN_TEST_POSTGRES_URL="postgresql://rlrun:$password@127.0.0.1:$pg_port/rlrun_studies"
cd "$repo"
if [ "${CLUSTER_HOLD:-0}" = 1 ]; then  # for debugging: keep the servers up until this script is stopped
    env | grep -E '^(SLURM_CONF|RLRUN_TEST_)' | sed 's/^/export /' | tee "$work/env"
    sleep infinity &
    started+=("sleep $!")
    wait $!
fi
"$python" -m pytest -m cluster --durations=0 tests/cluster "$@"
