#!/usr/bin/env bash
# The workflow on a real SLURM through snakemake-executor-plugin-slurm, on a one-node cluster
# bound to loopback (Debian 12, root, no systemd). Used by .ci/run; runnable by hand:
#
#   bash .ci/slurm.sh up [--accounting]  # apt install slurm-wlm + munge, configure, start daemons
#   bash .ci/slurm.sh check              # the checks below, against a running cluster
#   bash .ci/slurm.sh down               # stop the daemons this script started (by pid file)
#   bash .ci/slurm.sh ci                 # up, check, down (down also on failure or Ctrl-C)
#
# check: one snapshot of the workflow, config/test.yaml with one model (every rule runs),
# each run in a fresh copy of the snapshot:
#   1. a local run (--cores 2): the reference;
#   2. the SLURM run, --profile profiles/slurm plus the CI overrides in .ci/slurm-profile:
#      SIGINT once its first job runs (none of its jobs may stay queued or running), then
#      the rerun completes; every job must be a SLURM job that COMPLETED and whose log names
#      its rule and outputs, and every target must come from one; the Parquet outputs must
#      be byte-identical to the local run's (the other files under results/ are compared and
#      reported);
#   3. failure: a model whose declared n_layers is wrong fails inside its SLURM job; the run
#      must exit non-zero, name the rule and show the job's message;
#   4. per-job overhead (submit -> start, start-up inside the job, status polling), measured.
#
# snakemake comes from PATH's python (CI: the activated .venv). Daemon state, logs and the
# run copies live under $SLURM_CI_DIR (default: massact-slurm-ci in $TMPDIR or /tmp).
# slurm.conf must be at /etc/slurm/slurm.conf: the jobstep plugin drops SLURM_CONF before its
# inner srun. Without accounting, sacct cannot answer, so the CI profile polls with squeue
# (MinJobAge=300 ≥ 3 × init seconds).
set -euo pipefail
# the daemons and runuser live in sbin, which a non-login shell may not have on PATH
export PATH="$PATH:/usr/local/sbin:/usr/sbin:/sbin"

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
D=${SLURM_CI_DIR:-${TMPDIR:-/tmp}/massact-slurm-ci}
PART=${SLURM_CI_PARTITION:-debug}
CLUSTER=${SLURM_CI_CLUSTER:-ci}
ACCOUNT=${SLURM_CI_ACCOUNT:-ci}
DBPASS=${SLURM_CI_DBPASS:-slurmci}
PY=${PYTHON:-python}
# seconds per snakemake run; each is stopped with SIGINT (then SIGKILL 60 s later)
RUN_LIMIT=${SLURM_CI_RUN_LIMIT:-600}
# the workflow as a user's checkout has it (tests/conftest.py copies the same)
WORKFLOW_FILES=(Snakefile rules scripts config schemas envs report profiles src tests/data)

log() { printf '[slurm-ci %(%H:%M:%S)T] %s\n' -1 "$*"; }
die() { log "FAIL: $*"; exit 1; }

wait_for() {  # wait_for <seconds> <cmd...>
  local n=$(( $1 * 4 )); shift
  for _ in $(seq "$n"); do "$@" >/dev/null 2>&1 && return 0; sleep 0.25; done
  echo "timeout waiting for: $*" >&2; return 1
}

stop_pidfile() {  # SIGTERM the pid in a pid file, wait, SIGKILL if needed
  local f=$1 pid
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid"
    for _ in $(seq 40); do kill -0 "$pid" 2>/dev/null || break; sleep 0.25; done
    if kill -0 "$pid" 2>/dev/null; then kill -KILL "$pid"; fi
  fi
  rm -f "$f"
}

# ------------------------------------------------------------------------------ up / down
up() {
  local accounting=0
  [ "${1:-}" = "--accounting" ] && accounting=1
  local t0=$SECONDS

  log "apt install"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -q >/dev/null
  local pkgs=(slurm-wlm munge)
  [ $accounting = 1 ] && pkgs+=(slurmdbd mariadb-server)
  apt-get install -y -q --no-install-recommends "${pkgs[@]}" >/dev/null

  if [ -s "$D/run/slurmctld.pid" ] && kill -0 "$(cat "$D/run/slurmctld.pid")" 2>/dev/null; then
    die "SLURM of $D is already up (stop it with: $0 down)"
  fi
  rm -rf "$D"/{spool,log}   # a fresh cluster: no jobs or job ids from an earlier one
  mkdir -p "$D"/{etc,log,run,spool/ctld,spool/d}

  log "munge"
  if [ ! -s /etc/munge/munge.key ]; then   # Debian's postinst normally creates it
    mungekey --create --force
  fi
  chown munge:munge /etc/munge/munge.key; chmod 0400 /etc/munge/munge.key
  install -d -o munge -g munge -m 0755 /run/munge
  if ! { [ -s /run/munge/munged.pid ] && kill -0 "$(cat /run/munge/munged.pid)" 2>/dev/null; }; then
    runuser -u munge -- /usr/sbin/munged          # daemonizes, writes /run/munge/munged.pid
    wait_for 10 test -s /run/munge/munged.pid
    cp /run/munge/munged.pid "$D/run/munged.pid" # ours to stop; a munged already running is not
  fi
  munge -n | unmunge >/dev/null

  local node ncpu mem
  node=$(hostname -s)
  ncpu=$(nproc)
  mem=$(slurmd -C | sed -n 's/.*RealMemory=\([0-9]*\).*/\1/p')

  local acct_lines="AccountingStorageType=accounting_storage/none"
  if [ $accounting = 1 ]; then
    acct_lines="AccountingStorageType=accounting_storage/slurmdbd
AccountingStorageHost=localhost
AccountingStoragePort=6819"
  fi

  log "slurm.conf (node=$node cpus=$ncpu mem=${mem}MB accounting=$accounting)"
  cat > "$D/etc/slurm.conf" <<EOF
ClusterName=$CLUSTER
SlurmctldHost=$node(127.0.0.1)
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
SlurmctldPort=6817
SlurmdPort=6818
# bind slurmctld/slurmd to 127.0.0.1 instead of 0.0.0.0
CommunicationParameters=NoInAddrAny,NoCtldInAddrAny
StateSaveLocation=$D/spool/ctld
SlurmdSpoolDir=$D/spool/d
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
# no cgroups in a container/VM sandbox
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/linux
MpiDefault=none
MailProg=/bin/true
ReturnToService=2
SchedulerType=sched/backfill
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
# squeue keeps finished jobs this long; snakemake's squeue status mode needs >= 3*init-seconds
MinJobAge=300
$acct_lines
# one line per finished job (submit, start, end, state): the overhead measurement reads it
JobCompType=jobcomp/filetxt
JobCompLoc=$D/log/jobcomp.log
NodeName=$node NodeAddr=127.0.0.1 CPUs=$ncpu RealMemory=$mem State=UNKNOWN
PartitionName=$PART Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  # The snakemake slurm-jobstep plugin strips SLURM_CONF from the env of the inner
  # `srun`, so the config MUST be reachable at the compiled-in default path.
  mkdir -p /etc/slurm
  if [ -e /etc/slurm/slurm.conf ] && [ ! -L /etc/slurm/slurm.conf ]; then
    die "/etc/slurm/slurm.conf exists and is not ours; not touching it"
  fi
  ln -sfn "$D/etc/slurm.conf" /etc/slurm/slurm.conf

  if [ $accounting = 1 ]; then
    log "mariadb"
    mkdir -p "$D/mysql/data" "$D/mysql/run"
    chown -R mysql:mysql "$D/mysql"
    cat > "$D/mysql/my.cnf" <<EOF
[mysqld]
user=mysql
datadir=$D/mysql/data
socket=$D/mysql/run/mysqld.sock
pid-file=$D/mysql/run/mysqld.pid
log-error=$D/mysql/mariadb.err
bind-address=127.0.0.1
port=3306
skip-name-resolve
innodb_buffer_pool_size=256M
innodb_lock_wait_timeout=900
EOF
    if [ ! -d "$D/mysql/data/mysql" ]; then
      mariadb-install-db --defaults-file="$D/mysql/my.cnf" --user=mysql \
        --auth-root-authentication-method=socket >"$D/log/mariadb-install.log" 2>&1
    fi
    nohup mariadbd --defaults-file="$D/mysql/my.cnf" >"$D/log/mariadbd.out" 2>&1 </dev/null &
    wait_for 60 test -S "$D/mysql/run/mysqld.sock"
    wait_for 30 mariadb --socket="$D/mysql/run/mysqld.sock" -u root -e 'SELECT 1'
    cp "$D/mysql/run/mysqld.pid" "$D/run/mariadbd.pid"
    mariadb --socket="$D/mysql/run/mysqld.sock" -u root -e "
      CREATE USER IF NOT EXISTS 'slurm'@'127.0.0.1' IDENTIFIED BY '$DBPASS';
      GRANT ALL ON slurm_acct_db.* TO 'slurm'@'127.0.0.1'; FLUSH PRIVILEGES;"

    log "slurmdbd"
    cat > "$D/etc/slurmdbd.conf" <<EOF
AuthType=auth/munge
DbdHost=localhost
DbdAddr=127.0.0.1
DbdPort=6819
SlurmUser=root
DebugLevel=info
LogFile=$D/log/slurmdbd.log
PidFile=$D/run/slurmdbd.pid
StorageType=accounting_storage/mysql
StorageHost=127.0.0.1
StoragePort=3306
StorageUser=slurm
StoragePass=$DBPASS
StorageLoc=slurm_acct_db
EOF
    chmod 600 "$D/etc/slurmdbd.conf"
    ln -sfn "$D/etc/slurmdbd.conf" /etc/slurm/slurmdbd.conf
    slurmdbd                                        # daemonizes, writes its pid file
    wait_for 60 sacctmgr -n list cluster
  fi

  log "slurmctld + slurmd"
  slurmctld          # daemonizes; `slurmctld -D` stays in the foreground
  wait_for 60 bash -c 'scontrol ping | grep -q UP'
  slurmd
  wait_for 60 bash -c "sinfo -h -N -o %T | grep -qx idle"

  if [ $accounting = 1 ]; then
    wait_for 60 bash -c "sacctmgr -n -P list cluster format=cluster | grep -qx $CLUSTER"
    sacctmgr -i add account "$ACCOUNT" Cluster="$CLUSTER" Description=ci Organization=ci >/dev/null || true
    sacctmgr -i add user root Account="$ACCOUNT" >/dev/null || true
  fi
  sinfo
  log "up in $(( SECONDS - t0 )) s"
}

down() {
  stop_pidfile "$D/run/slurmd.pid"
  stop_pidfile "$D/run/slurmctld.pid"
  stop_pidfile "$D/run/slurmdbd.pid"
  stop_pidfile "$D/run/mariadbd.pid"
  stop_pidfile "$D/run/munged.pid"   # only when `up` started it
  for f in /etc/slurm/slurm.conf /etc/slurm/slurmdbd.conf; do
    if [ -L "$f" ] && [[ "$(readlink "$f")" == "$D"/* ]]; then rm -f "$f"; fi
  done
  log "down"
}

# ---------------------------------------------------------------------------------- check
# one model of config/test.yaml, every rule of the workflow (about 35 jobs): a CI-sized study
MODELS=${SLURM_CI_MODELS:-random-llama}
SLURM_ARGS=(--profile profiles/slurm --profile "$ROOT/.ci/slurm-profile")

snapshot() {  # snapshot <dest>: the workflow as a checkout has it, taken once per check
  mkdir -p "$1"
  (cd "$ROOT" && tar -cf - --exclude=__pycache__ "${WORKFLOW_FILES[@]}") | tar -xf - -C "$1"
}

copy_workflow() {  # copy_workflow <dest>: a fresh copy of the snapshot (same code every run)
  mkdir -p "$1"
  cp -a "$SNAP/." "$1/"
}

smk() {  # smk <dir> <logfile> <snakemake args...>: bounded, in the foreground (SIGINT reaches it)
  local dir=$1 out=$2; shift 2
  (cd "$dir" && timeout -s INT --kill-after=60 "$RUN_LIMIT" "$PY" -m snakemake "$@") >"$out" 2>&1
}

check() {
  sinfo -h -o %a 2>/dev/null | grep -qx up || die "no SLURM partition is up (run: $0 up)"
  [ "$(readlink -f /etc/slurm/slurm.conf)" = "$D/etc/slurm.conf" ] \
    || die "/etc/slurm/slurm.conf is not the one of $D (run: $0 up)"
  "$PY" -c "import snakemake_executor_plugin_slurm" \
    || die "snakemake-executor-plugin-slurm is not installed for $PY (python -m pip install -r requirements-slurm.txt)"
  local W="$D/check" t0 rc
  rm -rf "$W"; mkdir -p "$W"
  SNAP="$W/workflow"; snapshot "$SNAP"
  local run; run="run=[$(echo "$MODELS" | tr ' ' ',')]"
  local CFG=(--configfile config/test.yaml --config "$run")
  log "snakemake $("$PY" -m snakemake --version), plugin $("$PY" -c 'from importlib.metadata import version as v; print(v("snakemake-executor-plugin-slurm"))'); config/test.yaml with $run; copies under $W"

  # 1. the reference: a local run
  copy_workflow "$W/local"
  t0=$SECONDS
  smk "$W/local" "$W/local.log" --cores 2 "${CFG[@]}" \
    || { tail -40 "$W/local.log"; die "local run failed"; }
  echo $(( SECONDS - t0 )) >"$W/local.seconds"
  log "local run: $(cat "$W/local.seconds") s, $(grep -c '^Finished jobid' "$W/local.log") jobs"

  # 2. SLURM: Ctrl-C once a job runs, nothing left queued, then the rerun completes
  copy_workflow "$W/slurm"
  t0=$SECONDS
  helper interrupt "$W/slurm" "$W/slurm-interrupted.log" "$RUN_LIMIT" "$PY" "${SLURM_ARGS[@]}" "${CFG[@]}"
  no_jobs_left "$W/slurm-interrupted.log"
  smk "$W/slurm" "$W/slurm.log" "${SLURM_ARGS[@]}" "${CFG[@]}" \
    || { tail -60 "$W/slurm.log"; die "the SLURM run (after Ctrl-C) failed"; }
  echo $(( SECONDS - t0 )) >"$W/slurm.seconds"
  log "SLURM run: $(cat "$W/slurm.seconds") s including the interrupted start"
  helper verify "$W/slurm" "$D/log/jobcomp.log" "$W/slurm-interrupted.log" "$W/slurm.log"
  helper same-bytes "$W/local" "$W/slurm"

  # 3. a job that fails inside SLURM: a model whose declared n_layers is wrong
  copy_workflow "$W/fail"
  cat >"$W/fail/config/bad-layers.yaml" <<'EOF'
# a random tiny gpt2 has 4 layers; only materialize_model, inside its job, can tell
run: [random-gpt2-badlayers]
models:
  random-gpt2-badlayers: {source: random, arch: gpt2, size: tiny, seed: 0, n_layers: 99}
EOF
  rc=0
  smk "$W/fail" "$W/fail.log" "${SLURM_ARGS[@]}" --configfile config/test.yaml config/bad-layers.yaml \
    || rc=$?
  [ "$rc" != 0 ] || die "the failing run exited 0"
  { [ "$rc" != 124 ] && [ "$rc" != 137 ]; } || die "the failing run hung (stopped by timeout)"
  grep -q "Error in rule materialize_model" "$W/fail.log" \
    || { tail -40 "$W/fail.log"; die "the failing run does not name rule materialize_model"; }
  grep -q "declares n_layers: 99" "$W/fail.log" \
    || { tail -40 "$W/fail.log"; die "the failing run does not show the job's error message"; }
  log "failure: exit $rc, 'Error in rule materialize_model', SLURM job(s) \
$(grep -o 'SLURM-job .[0-9]*. failed' "$W/fail.log" | tr -dc '0-9 ' | xargs), message: \
$(grep -m1 -o "model 'random-gpt2-badlayers': the config declares n_layers: 99[^;]*" "$W/fail.log")"
  no_jobs_left "$W/fail.log"

  # 4. overhead, from the SLURM run
  helper overhead "$W" "$D/log/slurmctld.log"
  log "check passed"
}

run_uuid() { sed -n 's/.*SLURM run ID: \([A-Za-z0-9_-]*\).*/\1/p' "$1" | head -1; }

no_jobs_left() {  # no job of the run logged in $1 is pending or running
  local id left
  id=$(run_uuid "$1")
  [ -n "$id" ] || die "no SLURM run ID in $1"
  left=$(squeue -h --name "$id" -t PENDING,RUNNING,CONFIGURING,COMPLETING,SUSPENDED -o '%i:%T')
  [ -z "$left" ] || die "jobs of run $id still queued or running: $left"
  log "no job of run ${id:0:8}… left in squeue (its jobs: \
$(squeue -h --name "$id" -t all -o '%i:%T' | sort -n | tr '\n' ' '))"
}

helper() {  # the checks that parse logs, in Python
  "$PY" - "$@" <<'EOF'
import hashlib, re, signal, statistics, subprocess, sys, time
from datetime import datetime
from pathlib import Path


def fail(msg):
    sys.exit(f"[slurm-ci] FAIL: {msg}")


def say(msg):
    print(f"[slurm-ci] {msg}", flush=True)


def parse_log(path):
    """A snakemake log's jobs: jobid -> rule, outputs, benchmark, SLURM id and log, times."""
    lines, jobs, stamp = Path(path).read_text().splitlines(), {}, None
    for i, line in enumerate(lines):
        m = re.match(r"^\[(\w{3} \w{3} +\d+ \d\d:\d\d:\d\d \d{4})\]$", line)
        if m:
            stamp = datetime.strptime(m[1], "%a %b %d %H:%M:%S %Y").timestamp()
            continue
        m = re.match(r"^(local)?rule (\w+):$", line)
        if m:
            body = {}
            for b in lines[i + 1:]:
                if not b.startswith("    "):
                    break
                k, _, v = b.strip().partition(": ")
                body[k] = v
            split = lambda k: body[k].split(", ") if body.get(k) else []
            jobs[int(body["jobid"])] = dict(
                rule=m[2], local=bool(m[1]), inputs=split("input"), outputs=split("output"),
                benchmark=body.get("benchmark"), start=stamp, end=None, sid=None, slurm_log=None)
            continue
        m = re.match(r"^Finished jobid: (\d+)", line)
        if m and int(m[1]) in jobs:
            jobs[int(m[1])]["end"] = stamp
        m = re.match(r"^Job (\d+) has been submitted with SLURM jobid (\S+) \(log: (.*)\)\.$", line)
        if m and int(m[1]) in jobs:
            jobs[int(m[1])].update(sid=m[2], slurm_log=Path(m[3]))
    return jobs


def jobcomp(path):
    rec = {}
    for line in Path(path).read_text().splitlines():
        f = dict(kv.split("=", 1) for kv in line.split() if "=" in kv)
        rec[f["JobId"]] = f
    return rec


def verify(wd, comp, *logs):
    """Every finished job is a SLURM job that COMPLETED, ran this rule and made these outputs;
    the last run has no unfinished job; every target was made so."""
    wd, comp, made, sids = Path(wd).resolve(), jobcomp(comp), set(), []
    for k, log in enumerate(logs):
        jobs, last = parse_log(log), k == len(logs) - 1
        local = sorted(j["rule"] for j in jobs.values() if j["local"])
        if local not in ([], ["all"]):
            fail(f"{log}: jobs run outside SLURM: {local}")
        for jid, j in sorted(jobs.items()):
            if j["local"]:
                continue
            if j["end"] is None:
                if last:
                    fail(f"{log}: job {jid} ({j['rule']}) did not finish")
                continue
            sid, slog = j["sid"], j["slurm_log"]
            if sid is None:
                fail(f"{log}: job {jid} ({j['rule']}) finished without a SLURM job id")
            if slog.name != f"{sid}.log" or not slog.is_file():
                fail(f"the SLURM log {slog} of job {jid} ({j['rule']}) is missing")
            text = slog.read_text()
            if f"rule {j['rule']}:" not in text or "Finished jobid: 0" not in text:
                fail(f"SLURM job {sid}'s log does not show rule {j['rule']} finishing")
            for o in j["outputs"]:
                if o not in text:
                    fail(f"SLURM job {sid}'s log does not name output {o}")
                if not (wd / o).exists():
                    fail(f"output {o} of SLURM job {sid} does not exist")
            rec = comp.get(sid, {})
            if rec.get("JobState") != "COMPLETED" or Path(rec.get("WorkDir", "/")).resolve() != wd:
                fail(f"SLURM job {sid} ({j['rule']}) did not COMPLETE in {wd}: {rec}")
            made.update(j["outputs"])
            sids.append(int(sid))
        if last:
            alls = [j for j in jobs.values() if j["rule"] == "all"]
            if not alls:
                fail(f"{log}: no target rule all")
            targets = alls[0]["inputs"]
    missing = [t for t in targets if t not in made]
    if missing:
        fail(f"targets not made by a SLURM job: {missing}")
    say(f"{len(sids)} jobs ran as SLURM jobs that COMPLETED (ids {min(sids)}..{max(sids)}), each "
        f"log naming its rule and outputs; all {len(targets)} targets made by them")


def same_bytes(a, b):
    """Parquet outputs byte-identical; every other file under results/ reported."""
    a, b = Path(a), Path(b)
    def files(root):
        skip = ("results/logs/", "results/benchmarks/")
        return {str(p.relative_to(root)): p for p in sorted((root / "results").rglob("*"))
                if p.is_file() and not str(p.relative_to(root)).startswith(skip)}
    fa, fb = files(a), files(b)
    if fa.keys() != fb.keys():
        fail(f"different outputs: {sorted(fa.keys() ^ fb.keys())}")
    h = lambda p: hashlib.sha256(p.read_bytes()).hexdigest()
    diff = [k for k in fa if h(fa[k]) != h(fb[k])]
    kinds = {}
    for k in fa:
        n = kinds.setdefault(Path(k).suffix or "(none)", [0, 0])  # [identical, all]
        n[0] += k not in diff
        n[1] += 1
    say(f"{b.name} vs {a.name}: {len(fa)} files under results/ (logs, benchmarks aside): " +
        ", ".join(f"{s} {same}/{n} identical" for s, (same, n) in sorted(kinds.items())))
    if diff:
        say(f"differ: {diff}")
    bad = [k for k in diff if k.endswith(".parquet")]
    if bad:
        fail(f"Parquet outputs differ: {bad}")


def interrupt(wd, logfile, limit, py, *args):
    """Start the SLURM run, SIGINT it once one of its jobs runs, wait for it to exit."""
    with open(logfile, "w") as out:
        # SIGINT as from a terminal, even where this script runs as a background job
        # (which starts its children with SIGINT ignored)
        p = subprocess.Popen([py, "-m", "snakemake", *args], cwd=wd, stdout=out,
                             stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                             preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        t0, running = time.time(), None
        while p.poll() is None and time.time() - t0 < float(limit):
            m = re.search(r"SLURM run ID: (\S+)", Path(logfile).read_text())
            if m:
                running = subprocess.run(
                    ["squeue", "-h", "--name", m[1], "-t", "RUNNING", "-o", "%i"],
                    capture_output=True, text=True).stdout.split()
                if running:
                    break
            time.sleep(0.5)
        if p.poll() is not None or not running:
            p.kill()
            fail(f"no SLURM job ran within {limit} s (snakemake exit {p.poll()})")
        t1 = time.time()
        p.send_signal(signal.SIGINT)
        try:
            rc = p.wait(timeout=120)
        except subprocess.TimeoutExpired:
            p.kill()
            fail("snakemake did not exit within 120 s of SIGINT")
    submitted = re.findall(r"submitted with SLURM jobid (\d+)", Path(logfile).read_text())
    say(f"SIGINT {t1 - t0:.0f} s after start (SLURM jobs {' '.join(submitted)} submitted, "
        f"{' '.join(running)} running); snakemake exited {rc} {time.time() - t1:.1f} s later")
    if rc == 0:
        fail("snakemake exited 0 after SIGINT")


def overhead(W, ctld):
    """Per-job overhead of the SLURM run: slurmctld's times (ms), benchmarks, snakemake's log."""
    W = Path(W)
    ev, cpus = {}, {}
    for line in Path(ctld).read_text().splitlines():
        m = re.match(r"^\[([\d\-T:.]+)\] (.*)$", line)
        if not m:
            continue
        t, msg = datetime.fromisoformat(m[1]).timestamp(), m[2]
        for key, pat in (("submit", r"_slurm_rpc_submit_batch_job: JobId=(\d+) "),
                         ("start", r"(?:sched: Allocate|_start_job: Started) JobId=(\d+) "),
                         ("end", r"_job_complete: JobId=(\d+) done"),
                         ("end", r"REQUEST_KILL_JOB JobId=(\d+) ")):
            mm = re.search(pat, msg)
            if mm:
                ev.setdefault(mm[1], {}).setdefault(key, t)
        mm = re.search(r"Allocate JobId=(\d+) .*#CPUs=(\d+)", msg)
        if mm:
            cpus[mm[1]] = int(mm[2])
    node_cpus = int(subprocess.run(["sinfo", "-h", "-o", "%c"], capture_output=True,
                                   text=True).stdout.split()[0])

    def busy(sid):  # CPUs allocated, or wanted by jobs queued ahead, when sid was submitted
        t = ev[sid]["submit"]
        return sum(cpus.get(i, 1) for i, e in ev.items() if i != sid and (
            e.get("start", 1e20) <= t < e.get("end", 1e20)
            or (int(i) < int(sid)
                and e.get("submit", 1e20) <= t < e.get("start", e.get("end", 1e20)))))

    free, contended, inside, notice, seen, body = [], [], [], [], [], []
    for log in ("slurm-interrupted.log", "slurm.log"):
        for j in parse_log(W / log).values():
            if j["local"] or j["end"] is None or j["sid"] not in ev:
                continue
            sid, e = j["sid"], ev[j["sid"]]
            b = float((W / "slurm" / j["benchmark"]).read_text().splitlines()[-1].split("\t")[0])
            fits = busy(sid) + cpus.get(sid, 1) <= node_cpus
            (free if fits else contended).append(e["start"] - e["submit"])
            inside.append(e["end"] - e["start"] - b)
            notice.append(max(0.0, j["end"] - e["end"]))
            seen.append(j["end"] - j["start"])
            body.append(b)
    local = [j["end"] - j["start"] for j in parse_log(W / "local.log").values()
             if j["rule"] != "all" and j["end"] is not None]

    def q(xs):
        if not xs:
            return "-"
        xs = sorted(xs)
        return (f"median {statistics.median(xs):5.1f} s, mean {statistics.mean(xs):5.1f}, "
                f"min {xs[0]:5.1f}, max {xs[-1]:5.1f}  (n={len(xs)})")
    lt, st = (int((W / f).read_text()) for f in ("local.seconds", "slurm.seconds"))
    say(f"per-job overhead of the SLURM run ({node_cpus}-CPU node):")
    print(f"  submit -> start, CPUs free                {q(free)}")
    print(f"  submit -> start, queued behind jobs       {q(contended)}")
    print(f"  start -> end, less the rule body          {q(inside)}")
    print(f"  the rule body (benchmark)                 {q(body)}")
    print(f"  end -> snakemake notices (status polls)   {q(notice)}  (1 s resolution)")
    print(f"  a job as snakemake sees it, SLURM         {q(seen)}")
    print(f"  a job as snakemake sees it, local         {q(local)}")
    print(f"  whole run: local {lt} s, SLURM {st} s (incl. the interrupted start)")


{"verify": verify, "same-bytes": same_bytes, "interrupt": interrupt,
 "overhead": overhead}[sys.argv[1]](*sys.argv[2:])
EOF
}

ci() {
  trap 'rc=$?; trap - EXIT INT TERM; down || true; exit $rc' EXIT
  trap 'exit 130' INT TERM
  up "$@"
  check
}

case "${1:-}" in
  up) shift; up "$@";;
  down) down;;
  check) check;;
  ci) shift; ci "$@";;
  *) echo "usage: $0 up [--accounting] | check | down | ci [--accounting]" >&2; exit 2;;
esac
