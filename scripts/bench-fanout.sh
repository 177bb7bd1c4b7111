#!/usr/bin/env bash
# Fan-out benchmark: one task = K remote commands per host over one connection per host, to N loopback
# sshd hosts, run by Tao and by its peers on the same hosts in the same invocation:
#   tao        `tao ssh-fanout` (one OpenSSH master per host, native multiplexing, all hosts at once)
#   fab-loop   Fabric 3, a Python loop over hosts (one Connection each, K runs)
#   fab-group  Fabric 3 ThreadingGroup (K group runs)
#   ansible    ansible-playbook, forks=N, pipelining on, ControlMaster/ControlPersist, no fact gathering
#   ssh-cm     OpenSSH ControlMaster driven from a shell, hosts in parallel with xargs -P N
# Prints wall time and the peak total memory (RSS) of each tool's processes (everything carrying the
# tool's marker in its environment, so daemonized ssh masters count too), and Tao's ratios.
#
# Key exchange: Fabric/paramiko cannot do OpenSSH's post-quantum hybrid (sntrup761x25519), which costs
# about 4x the CPU of curve25519 per handshake; so every OpenSSH-based tool here (tao, ansible, ssh-cm)
# uses BENCH_KEX (default curve25519-sha256) too, and all tools do the same cryptographic work.
# BENCH_KEX=default keeps ssh's own defaults for them.
#
# Needs root (starts sshd instances on 127.0.0.x as the `tao-deploy` user). Peers come from PyPI into a
# venv (BENCH_VENV, default /tmp/tao-bench-venv). Only 127.0.0.x addresses are used.
# Each tool runs BENCH_REPEAT times (default 3), interleaved with the others so background load hits all
# alike; the best wall time is reported, with the largest memory peak seen.
#   BENCH_NS="1 8 32" BENCH_K=5 BENCH_DOCKER=1 BENCH_PROFILE=debug|release scripts/bench-fanout.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT=$PWD
NS=${BENCH_NS:-"1 8 32"}
K=${BENCH_K:-5}
PORT=${BENCH_PORT:-2299}
VENV=${BENCH_VENV:-/tmp/tao-bench-venv}
PROFILE=${BENCH_PROFILE:-debug}
KEX=${BENCH_KEX:-curve25519-sha256}
REPEAT=${BENCH_REPEAT:-3}
DOCKER_NS=${BENCH_DOCKER_NS:-32}
[ "${BENCH_DOCKER:-1}" = 1 ] || DOCKER_NS=""
[ "$(id -u)" -eq 0 ] || { echo "run as root: the benchmark starts sshd instances" >&2; exit 1; }

say() { printf '\n==> %s\n' "$*" >&2; }

missing=()
[ -x /usr/sbin/sshd ] || missing+=(openssh-server)
command -v ssh >/dev/null || missing+=(openssh-client)
[ -x /bin/busybox ] || missing+=(busybox-static)
python3 -c 'import venv, ensurepip' 2>/dev/null || missing+=(python3-venv)
if [ ${#missing[@]} -gt 0 ]; then
  say "installing ${missing[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
if [ ! -x "$VENV/bin/fab" ] || [ ! -x "$VENV/bin/ansible-playbook" ]; then
  say "installing Fabric 3 and ansible-core into $VENV"
  python3 -m venv "$VENV"
  "$VENV/bin/pip" install -q 'fabric>=3,<4' ansible-core
fi
say "building tao ($PROFILE)"
if [ "$PROFILE" = release ]; then cargo build --release --quiet; else cargo build --quiet; fi
TAO="${CARGO_TARGET_DIR:-$ROOT/target}/$PROFILE/tao"

# The deploy user: plain /bin/sh, docker group, unlocked for key logins (same as the test harness).
mkdir -p /run/sshd
id -u tao-deploy >/dev/null 2>&1 || useradd --create-home --shell /bin/sh --groups docker tao-deploy
usermod -p '*' -aG docker -s /bin/sh tao-deploy

WORK=$(mktemp -d /tmp/tao-bench.XXXXXX)
chmod 755 "$WORK"
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  docker ps -aq --filter label=tao-bench | xargs -r docker rm -f >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

ssh-keygen -q -t ed25519 -N '' -f "$WORK/id" -C tao-bench
cp "$WORK/id.pub" "$WORK/authorized_keys"; chmod 644 "$WORK/authorized_keys"
MAX=0; for n in $NS $DOCKER_NS; do [ "$n" -gt "$MAX" ] && MAX=$n; done
say "starting $MAX sshd hosts on 127.0.0.10.. port $PORT"
: > "$WORK/known_hosts"
for i in $(seq 0 $((MAX - 1))); do
  addr=127.0.0.$((10 + i))
  ssh-keygen -q -t ed25519 -N '' -f "$WORK/host_$i"
  echo "[$addr]:$PORT $(cut -d' ' -f1,2 "$WORK/host_$i.pub")" >> "$WORK/known_hosts"
  cat > "$WORK/sshd_$i.conf" <<EOF
ListenAddress $addr:$PORT
HostKey $WORK/host_$i
PidFile $WORK/sshd_$i.pid
AuthorizedKeysFile $WORK/authorized_keys
StrictModes no
UsePAM no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin no
AllowUsers tao-deploy
MaxSessions 200
MaxStartups 200:30:400
LogLevel ERROR
EOF
  /usr/sbin/sshd -D -e -f "$WORK/sshd_$i.conf" 2>>"$WORK/sshd.err" &
  PIDS+=($!)
done
for i in $(seq 0 $((MAX - 1))); do
  for _ in $(seq 1 200); do (exec 3<>"/dev/tcp/127.0.0.$((10 + i))/$PORT") 2>/dev/null && break; sleep 0.05; done
done

say "building the docker variant's image (FROM scratch, busybox)"
mkdir -p "$WORK/img" && cp /bin/busybox "$WORK/img/busybox"
printf 'FROM scratch\nCOPY busybox /bin/busybox\nRUN ["/bin/busybox","--install","-s","/bin"]\nSTOPSIGNAL SIGKILL\n' > "$WORK/img/Dockerfile"
docker build -q -t tao-bench/busybox:1 "$WORK/img" >/dev/null

export TAO WORK PORT K NS DOCKER_NS KEX REPEAT
"$VENV/bin/python" - <<'PYTHON'
import os, subprocess, sys, threading, time

TAO, WORK, PORT, K = os.environ["TAO"], os.environ["WORK"], int(os.environ["PORT"]), int(os.environ["K"])
NS = [int(n) for n in os.environ["NS"].split()]
DOCKER_NS = [int(n) for n in os.environ["DOCKER_NS"].split()]
PY = sys.executable
REPEAT = int(os.environ["REPEAT"])
KEY, KH = f"{WORK}/id", f"{WORK}/known_hosts"
KEX = os.environ["KEX"]
KEX_OPTS = [] if KEX == "default" else ["-o", f"KexAlgorithms={KEX}"]
SSH_OPTS = KEX_OPTS + ["-o", "BatchMode=yes", "-o", "StrictHostKeyChecking=yes", "-o", f"UserKnownHostsFile={KH}",
            "-o", "IdentitiesOnly=yes", "-i", KEY, "-p", str(PORT)]

# Remote commands. Each host's container name comes from the address it was reached on.
# (No braces: Ansible would read them as Jinja.)
NAME = 'set -- $SSH_CONNECTION; n=bench-$3'
SSH_CMDS = [f"echo step-{i} >/dev/null" for i in range(K)]
DOCKER_CMDS = [
    f'{NAME}; docker rm -f $n >/dev/null 2>&1; true',                                   # stop
    f'{NAME}; docker run -d --name $n --label tao-bench --network none tao-bench/busybox:1 sleep 600',  # run
    f'{NAME}; docker inspect $n >/dev/null',                                            # inspect
    f'{NAME}; docker exec $n true',                                                     # health
    f'{NAME}; docker rm -f $n >/dev/null',                                              # clean
][:K]

def hosts(n):
    return [f"127.0.0.{10 + i}" for i in range(n)]

def tagged(tag):
    """Pids of processes carrying the tool's marker in their environment (daemonized ones too)."""
    pids = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/environ", "rb") as f:
                if tag in f.read().split(b"\0"):
                    pids.append(int(pid))
        except OSError:
            pass
    return pids

def tree_rss_kb(tag):
    total = 0
    for pid in tagged(tag):
        try:
            with open(f"/proc/{pid}/status") as f:
                for line in f:
                    if line.startswith("VmRSS:"):
                        total += int(line.split()[1])
        except OSError:
            pass
    return total

def measure(name, argv, files=None):
    tag = f"TAO_BENCH_TAG={name}-{time.monotonic_ns()}".encode()
    env = dict(os.environ, TAO_BENCH_TAG=tag.decode().split("=", 1)[1])
    peak, done = [0], threading.Event()
    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], tree_rss_kb(tag))
            time.sleep(0.1)
    t = threading.Thread(target=sample); t.start()
    start = time.monotonic()
    p = subprocess.run(argv, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    wall = time.monotonic() - start
    done.set(); t.join()
    # Daemonized ssh masters (ControlPersist) may outlive the tool: stop exactly those, by pid.
    for pid in tagged(tag):
        try:
            os.kill(pid, 15)
        except OSError:
            pass
    if p.returncode != 0:
        print(f"  {name} FAILED ({p.returncode}): {p.stderr[-600:]}", file=sys.stderr)
        return None, peak[0]
    return wall, peak[0]

def tao(hs, cmds):
    argv = [TAO, "ssh-fanout", "--parallel", str(len(hs)), "--identity", KEY, "--known-hosts", KH,
            "--control-dir", f"{WORK}/tao-ctl"] + ([] if KEX == "default" else ["--ssh-kex", KEX])
    for h in hs: argv += ["--host", f"tao-deploy@{h}:{PORT}"]
    for c in cmds: argv += ["--cmd", c]
    return argv

FAB_COMMON = f"""
import sys
from fabric import Connection, ThreadingGroup
hosts, cmds = {{hosts!r}}, {{cmds!r}}
kw = dict(user="tao-deploy", port={PORT}, connect_kwargs={{{{"key_filename": "{KEY}", "look_for_keys": False, "allow_agent": False}}}})
"""

def fab_loop(hs, cmds):
    code = FAB_COMMON.format(hosts=hs, cmds=cmds) + f"""
for h in hosts:
    c = Connection(h, **kw)
    c.client.load_host_keys("{KH}")
    for cmd in cmds:
        c.run(cmd, hide=True)
    c.close()
"""
    return [PY, "-c", code]

def fab_group(hs, cmds):
    code = FAB_COMMON.format(hosts=hs, cmds=cmds) + f"""
g = ThreadingGroup(*hosts, **kw)
for c in g:
    c.client.load_host_keys("{KH}")
for cmd in cmds:
    g.run(cmd, hide=True)
g.close()
"""
    return [PY, "-c", code]

def ansible(hs, cmds, n):
    d = f"{WORK}/ansible-{n}-{len(cmds)}-{abs(hash(tuple(cmds)))}"
    os.makedirs(d, exist_ok=True)
    with open(f"{d}/inventory", "w") as f:
        f.write("[bench]\n")
        for h in hs:
            f.write(f"{h} ansible_port={PORT} ansible_user=tao-deploy ansible_ssh_private_key_file={KEY} ansible_python_interpreter=/usr/bin/python3\n")
    with open(f"{d}/ansible.cfg", "w") as f:
        f.write(f"""[defaults]
forks = {n}
host_key_checking = True
gathering = explicit
interpreter_python = /usr/bin/python3
stdout_callback = minimal
[ssh_connection]
pipelining = True
ssh_args = -o ControlMaster=auto -o ControlPersist=60s -o UserKnownHostsFile={KH} -o IdentitiesOnly=yes {" ".join(KEX_OPTS)}
control_path_dir = {d}/cp
""")
    with open(f"{d}/play.yml", "w") as f:
        f.write("- hosts: bench\n  gather_facts: false\n  tasks:\n")
        for i, c in enumerate(cmds):
            f.write(f"    - name: step {i}\n      ansible.builtin.shell: {c!r}\n")
    return ["env", f"ANSIBLE_CONFIG={d}/ansible.cfg", os.path.dirname(PY) + "/ansible-playbook", "-i", f"{d}/inventory", f"{d}/play.yml"]

def ssh_cm(hs, cmds):
    script = f"{WORK}/cm-host.sh"
    opts = " ".join(SSH_OPTS)
    body = "#!/bin/sh\nset -e\nh=$1\nS={WORK}/cm-$h\nssh {opts} -o ControlMaster=yes -o ControlPath=$S -o ControlPersist=60 -fN tao-deploy@$h\n".format(WORK=WORK, opts=opts)
    for c in cmds:
        q = "'" + c.replace("'", "'\\''") + "'"
        body += f"ssh {opts} -o ControlPath=$S tao-deploy@$h {q}\n"
    body += f"ssh -o ControlPath=$S -O exit tao-deploy@$h 2>/dev/null\n"
    with open(script, "w") as f:
        f.write(body)
    os.chmod(script, 0o755)
    return ["sh", "-c", f"printf '%s\\n' {' '.join(hs)} | xargs -P {len(hs)} -n 1 {script}"]

def run_suite(label, ns, cmds):
    rows = []
    for n in ns:
        hs = hosts(n)
        tools = [("tao", tao(hs, cmds)), ("fab-loop", fab_loop(hs, cmds)), ("fab-group", fab_group(hs, cmds)),
                 ("ansible", ansible(hs, cmds, n)), ("ssh-cm", ssh_cm(hs, cmds))]
        results = {name: (None, 0) for name, _ in tools}
        for r in range(REPEAT):
            for name, argv in tools:
                w, m = measure(name, argv)
                print(f"  {label} N={n:<3} {name:<10} {('%.2f s' % w) if w else 'failed':>9}  {m / 1024:8.1f} MiB", file=sys.stderr)
                best, peak = results[name]
                if w and (best is None or w < best):
                    best = w
                results[name] = (best, max(peak, m))
        rows.append((n, results))
    print(f"\n{label}: K={len(cmds)} commands per host, key exchange {KEX}; wall time and peak memory of each tool's processes")
    print(f"{'N':>3}  " + "  ".join(f"{t:>20}" for t in ["tao", "fab-loop", "fab-group", "ansible", "ssh-cm"]))
    for n, r in rows:
        cells = []
        for t in ["tao", "fab-loop", "fab-group", "ansible", "ssh-cm"]:
            w, m = r[t]
            cells.append(f"{(('%.2fs' % w) if w else 'fail'):>8} {m / 1024:7.1f}MiB")
        print(f"{n:>3}  " + "  ".join(f"{c:>20}" for c in cells))
    print(f"\nratios (peer time / tao time; peer memory / tao memory):")
    for n, r in rows:
        tw, tm = r["tao"]
        if not tw:
            continue
        parts = []
        for t in ["fab-loop", "fab-group", "ansible", "ssh-cm"]:
            w, m = r[t]
            if w:
                parts.append(f"{t} {w / tw:5.1f}x time {m / max(tm, 1):5.1f}x mem")
        print(f"  N={n:<3} " + "; ".join(parts))

run_suite("ssh commands", NS, SSH_CMDS)
if DOCKER_NS:
    run_suite("real docker (rm, run, inspect, exec, rm)", DOCKER_NS, DOCKER_CMDS)
PYTHON
