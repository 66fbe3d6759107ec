#!/usr/bin/env python3
"""Runs the workspace's test binaries in lanes side by side (scripts/test.sh).

`cargo test` runs one test binary after another; on the 2-core machines most
of a binary's time is waiting (guests booting under TCG, Chromium, object
store round trips), so the run took ~50 min warm. This builds every test
binary with `cargo test --no-run`, then runs them in lanes side by side:

- lab (slot 0), and with `--lab-lanes 2` a second lab lane (slot 1):
  binaries that start libvirt daemons (the demo lab's hosts, or the tests'
  own scratch hosts) or QEMU guests, one after another in each lane. The
  lanes run in lab slots 0 and 1 (SENDENSE_LAB_SLOT, see
  backend/src/lab/slot.rs): each slot's demo lab and the tests' own fixed
  networks have bridges and subnets of their own, and the guests' tap
  devices are named by Sendense, not vnetN by each daemon. Two labs in one
  slot would collide ("Network is already in use"), so each binary of lab
  lane N holds that slot's lock while it runs: /tmp/sendense-lab.lock for
  slot 0 (the lock developers take around a lab test run by hand:
  `flock /tmp/sendense-lab.lock cargo test …`), /tmp/sendense-lab-1.lock
  for slot 1 (`SENDENSE_LAB_SLOT=1 flock /tmp/sendense-lab-1.lock …`). The
  lanes take the lab binaries from one queue, the longest of the last run
  first, each lane the next one when its binary ends: the longest go first
  onto the lane with less work, and a lane slowed down (a lock held by a
  developer's own lab run, a loaded machine) takes fewer;
- free: all the others, one after another;
- alone: the tests whose measurements a busy machine would spoil (the e2e
  WebSocket latency in `protect`, Lighthouse's scores), after the lanes, in
  slot 0.

A binary's lane comes from its source (see LAB_MARKERS); a test that starts
a lab without naming one of them would race another lab: name it in
ALONE or add the marker. Each binary runs in its package's directory as
`cargo test` runs it; its whole output is printed when it ends, under the
`Running` line `cargo test` prints, so logs do not interleave. The exit
status is non-zero when any binary failed; every binary runs regardless.

Arguments after `--` go to every test binary (e.g. `-- --test-threads 1`).
Options before it: `--list` prints the lanes and runs nothing;
`--lab-only` runs the lab lanes only (no free or alone lane);
`--lab-lanes N` runs the lab binaries in N lanes (1 or 2; default 1 until
a whole run passes with 2). Measured on the 2-core machine: a run of the 46
lab binaries in 2 lanes beside other helpers' work (load 7-13) took 52 min
(41 min one after another in the last full run) and 7 failed on timeouts (6
passed when run again); on the quiet machine 4 backend lab binaries took
2.1 min in 2 lanes against 3.5 min in 1, 4 e2e lab binaries 2.7 min in 2
lanes against 3.7 min of their serial times (each binary 0-60 % slower
beside the other lane);
`--only A,B` runs only the binaries named (a test file's name, e.g.
`lab_guests`, or a key of target/test-times.json; `doc-tests`).
"""

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
CARGO_ARGS = ["--locked", "--workspace", "--exclude", "sendense-frontend"]
# Source text that means the binary starts libvirt, the lab or QEMU guests.
LAB_MARKERS = re.compile(r"libvirt|start_with_lab|lab_in\(|sendense::lab|kvm::|support::kvm|qemu-system")
# Binaries run after both lanes, one at a time (measured against targets).
ALONE = {("e2e", "protect"), ("e2e", "lighthouse")}
TIMES = os.path.join(ROOT, "target", "test-times.json")
# Lab lane N's binaries each hold lab slot N's lock while they run (the
# alone ones slot 0's): the same locks developers take around a lab test run
# by hand (`flock /tmp/sendense-lab.lock cargo test …` in slot 0), so the two
# never overlap.
LAB_LOCKS = ["/tmp/sendense-lab.lock", "/tmp/sendense-lab-1.lock"]
# A binary with no recorded time counts as this many seconds when the lab
# binaries are shared out.
UNKNOWN_SECONDS = 60.0

print_lock = threading.Lock()
running = {}
running_lock = threading.Lock()
stopping = threading.Event()


def say(text):
    with print_lock:
        sys.stdout.write(text)
        sys.stdout.flush()


def build():
    """Builds every test binary; returns [(package, kind, name, src, exe, cwd)]."""
    cmd = ["cargo", "test", *CARGO_ARGS, "--no-run", "--message-format=json-render-diagnostics"]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True)
    found = []
    for line in proc.stdout:
        try:
            msg = json.loads(line)
        except json.JSONDecodeError:
            continue
        if msg.get("reason") != "compiler-artifact" or not msg.get("profile", {}).get("test"):
            continue
        exe = msg.get("executable")
        if not exe:
            continue
        target = msg["target"]
        pkg = msg["package_id"]
        manifest = msg.get("manifest_path") or ""
        name = target["name"]
        found.append(dict(package=pkg_name(pkg, manifest), kind=target["kind"][0], name=name,
                          src=target["src_path"], exe=exe, cwd=os.path.dirname(manifest)))
    if proc.wait() != 0:
        sys.exit(f"run-tests: `{' '.join(cmd)}` failed ({proc.returncode})")
    return found


def pkg_name(package_id, manifest):
    # A path package's id is `path+file:///…/dir#name@version` or `name version (path+…)`.
    m = re.search(r"#([A-Za-z0-9_-]+)@", package_id)
    if m:
        return m.group(1)
    m = re.search(r"#([A-Za-z0-9_-]+)$", package_id.split("@")[0])
    return m.group(1) if m else os.path.basename(os.path.dirname(manifest))


def lane_of(t):
    if (t["package"], t["name"]) in ALONE:
        return "alone"
    try:
        text = open(t["src"], encoding="utf-8", errors="replace").read()
    except OSError:
        text = ""
    if t["kind"] == "test" and LAB_MARKERS.search(text):
        return "lab"
    return "free"


def label(t):
    rel = os.path.relpath(t["src"], t["cwd"]) if t["cwd"] else t["src"]
    if t["kind"] == "test":
        return f"{rel} ({os.path.relpath(t['exe'], ROOT)})"
    return f"unittests {rel} ({os.path.relpath(t['exe'], ROOT)})"


def run_one(job, results):
    if stopping.is_set():
        return
    key, cmd, cwd, title, env = job
    say(f"     Starting {title}\n")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True, env=env)
    with running_lock:
        running[key] = proc
    out, _ = proc.communicate()
    with running_lock:
        running.pop(key, None)
    took = time.monotonic() - start
    results[key] = (proc.returncode, took)
    say(f"     Running {title}\n{out.decode('utf-8', 'replace')}\n"
        f"     Finished {key} in {took:.1f} s ({'ok' if proc.returncode == 0 else f'FAILED, exit {proc.returncode}'})\n\n")


def run_lane(jobs, results):
    for job in jobs:
        run_one(job, results)


def stop(signum, _frame):
    stopping.set()
    with running_lock:
        for proc in running.values():
            try:
                os.killpg(proc.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
    sys.exit(128 + signum)


def option(name, default=None):
    """The value after `name` among the options (before `--`), or default."""
    opts = sys.argv[1:sys.argv.index("--") if "--" in sys.argv else None]
    if name not in opts:
        return default
    i = opts.index(name)
    if i + 1 >= len(opts):
        sys.exit(f"run-tests: {name} needs a value")
    return opts[i + 1]


def flag(name):
    return name in sys.argv[1:sys.argv.index("--") if "--" in sys.argv else None]


def slot_env(slot):
    env = dict(os.environ)
    env["SENDENSE_LAB_SLOT"] = str(slot)
    return env


def share_out(jobs, n, before):
    """What n lab lanes taking from one queue (the longest first) would run
    if every binary took its recorded time: [[job]] and each lane's seconds."""
    lanes = [[] for _ in range(n)]
    work = [0.0] * n
    for job in jobs:
        i = min(range(n), key=lambda k: (work[k], k))
        lanes[i].append(job)
        work[i] += before.get(job[0], UNKNOWN_SECONDS)
    return lanes, work


queue_lock = threading.Lock()
# The keys of the lab binaries each lab lane ran: {slot: [key]}.
lab_ran = {}


def run_lab_lane(queue, slot, results):
    """Lab lane `slot`: the next binary of the shared queue until it is empty,
    each holding the slot's lock, with SENDENSE_LAB_SLOT set."""
    env = slot_env(slot)
    while not stopping.is_set():
        with queue_lock:
            if not queue:
                return
            key, cmd, cwd, title = queue.pop(0)
            lab_ran.setdefault(slot, []).append(key)
        run_one((key, ["flock", LAB_LOCKS[slot], *cmd], cwd, f"{title} [lab slot {slot}]", env), results)


def main():
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    lab_lanes = option("--lab-lanes", "1")
    if lab_lanes not in ("1", "2"):
        sys.exit(f"run-tests: --lab-lanes takes 1 or 2 (lab slots 0 and 1), not '{lab_lanes}'")
    lab_lanes = int(lab_lanes)
    lab_only = flag("--lab-only")
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    targets = build()
    try:
        before = json.load(open(TIMES))
    except (OSError, ValueError):
        before = {}
    only = option("--only")
    only = set(only.split(",")) if only is not None else None
    by_kind = {"lab": [], "free": [], "alone": []}
    for t in targets:
        key = f"{t['package']}/{t['kind']}/{t['name']}"
        if only is not None and t["name"] not in only and key not in only:
            continue
        by_kind[lane_of(t)].append((key, [t["exe"], *extra], t["cwd"] or ROOT, label(t)))
    # Doc tests compile as they run: one job in the free lane.
    if only is None or "doc-tests" in only:
        by_kind["free"].append(("doc-tests", ["cargo", "test", *CARGO_ARGS, "--doc", "--", *extra], ROOT, "Doc-tests (cargo test --doc)"))
    # The lab lanes' queue: the longest first (times of the last run).
    lab_queue = sorted(by_kind["lab"], key=lambda j: -before.get(j[0], 1e9))
    shared, work = share_out(lab_queue, lab_lanes, before)
    lanes = {f"lab{slot}": jobs for slot, jobs in enumerate(shared)}
    free_env = dict(os.environ)
    free_env.pop("SENDENSE_LAB_SLOT", None)
    lanes["free"] = [(*j, free_env) for j in by_kind["free"]]
    lanes["alone"] = [(k, ["flock", LAB_LOCKS[0], *cmd], cwd, title, slot_env(0)) for k, cmd, cwd, title in by_kind["alone"]]
    if lab_only:
        lanes["free"], lanes["alone"] = [], []
    # The longest first in the free and alone lanes (times of the last run).
    for n in ("free", "alone"):
        lanes[n].sort(key=lambda j: -before.get(j[0], 1e9))
    counts = ", ".join(f"{k} {len(v)}" for k, v in lanes.items())
    expected = ", ".join(f"lab{i} {w / 60:.1f}" for i, w in enumerate(work))
    say(f"run-tests: {len(targets)} test binaries in lanes: {counts} "
        f"(lab lanes at the last run's times: {expected} min; they share one queue)\n\n")
    if flag("--list"):
        for n, jobs in lanes.items():
            say(f"{n}: " + " ".join(j[0].split("/")[-1] for j in jobs) + "\n")
        return 0
    results = {}
    start = time.monotonic()
    threads = [threading.Thread(target=run_lab_lane, args=(lab_queue, slot, results)) for slot in range(lab_lanes)]
    threads.append(threading.Thread(target=run_lane, args=(lanes["free"], results)))
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    side_by_side = time.monotonic() - start
    run_lane(lanes["alone"], results)
    total = time.monotonic() - start
    lane_sum = {n: sum(results.get(j[0], (0, 0))[1] for j in lanes[n]) for n in ("free", "alone")}
    for slot in range(lab_lanes):
        lane_sum[f"lab{slot}"] = sum(results.get(k, (0, 0))[1] for k in lab_ran.get(slot, []))
    before.update({k: round(v[1], 1) for k, v in results.items()})
    os.makedirs(os.path.dirname(TIMES), exist_ok=True)
    with open(TIMES, "w") as f:
        json.dump(before, f, indent=1, sort_keys=True)
    failed = sorted(k for k, (rc, _) in results.items() if rc != 0)
    sums = ", ".join(f"{n} {lane_sum[n] / 60:.1f}" for n in [*(f"lab{i}" for i in range(lab_lanes)), "free"])
    say(f"run-tests: {len(results)} binaries in {total / 60:.1f} min "
        f"(lanes side by side {side_by_side / 60:.1f} min: {sums}; alone {lane_sum['alone'] / 60:.1f})\n")
    if failed:
        say("run-tests: FAILED: " + " ".join(failed) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
