#!/usr/bin/env python3
"""Runs the workspace's test binaries in two lanes at once (scripts/test.sh).

`cargo test` runs one test binary after another; on the 2-core machines most
of a binary's time is waiting (guests booting under TCG, Chromium, object
store round trips), so the run took ~50 min warm. This builds every test
binary with `cargo test --no-run`, then runs them in two lanes side by side:

- lab: binaries that start libvirt daemons (the demo lab's hosts, or the
  tests' own scratch hosts) or QEMU guests, one after another: the lab's
  networks have fixed bridge names and subnets, and every libvirt daemon
  names its guests' tap devices vnet0, vnet1, ... on its own, so two
  daemons' guests collide in the one network namespace ("Unable to create
  tap device vnet6: Device or resource busy" when a lab and a scratch host
  ran side by side);
- free: all the others, one after another;
- alone: the tests whose measurements a busy machine would spoil (the e2e
  WebSocket latency in `protect`, Lighthouse's scores), after both lanes.

A binary's lane comes from its source (see LAB_MARKERS); a test that starts
a lab without naming one of them would race another lab: name it in
ALONE or add the marker. Each binary runs in its package's directory as
`cargo test` runs it; its whole output is printed when it ends, under the
`Running` line `cargo test` prints, so logs do not interleave. The exit
status is non-zero when any binary failed; every binary runs regardless.

Arguments after `--` go to every test binary (e.g. `-- --test-threads 1`);
`--list` prints the lanes and runs nothing.
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
# The lab lane's binaries (and the alone ones) each hold this lock while they
# run: the same lock developers take around a lab test run by hand
# (`flock /tmp/sendense-lab.lock cargo test …`), so the two never overlap.
LAB_LOCK = "/tmp/sendense-lab.lock"

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
    key, cmd, cwd, title = job
    say(f"     Starting {title}\n")
    start = time.monotonic()
    proc = subprocess.Popen(cmd, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                            start_new_session=True)
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


def main():
    extra = sys.argv[sys.argv.index("--") + 1:] if "--" in sys.argv else []
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    targets = build()
    try:
        before = json.load(open(TIMES))
    except (OSError, ValueError):
        before = {}
    lanes = {"lab": [], "free": [], "alone": []}
    for t in targets:
        key = f"{t['package']}/{t['kind']}/{t['name']}"
        lane = lane_of(t)
        cmd = [t["exe"], *extra]
        if lane != "free":
            cmd = ["flock", LAB_LOCK, *cmd]
        lanes[lane].append((key, cmd, t["cwd"] or ROOT, label(t)))
    # Doc tests compile as they run: one job in the free lane.
    lanes["free"].append(("doc-tests", ["cargo", "test", *CARGO_ARGS, "--doc", "--", *extra], ROOT, "Doc-tests (cargo test --doc)"))
    # The longest first in each lane (times of the last run).
    for jobs in lanes.values():
        jobs.sort(key=lambda j: -before.get(j[0], 1e9))
    counts = ", ".join(f"{k} {len(v)}" for k, v in lanes.items())
    say(f"run-tests: {len(targets)} test binaries in lanes: {counts}\n\n")
    if "--list" in sys.argv[1:sys.argv.index("--") if "--" in sys.argv else None]:
        for n, jobs in lanes.items():
            say(f"{n}: " + " ".join(j[0].split("/")[-1] for j in jobs) + "\n")
        return 0
    results = {}
    start = time.monotonic()
    threads = [threading.Thread(target=run_lane, args=(lanes[n], results)) for n in ("lab", "free")]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    side_by_side = time.monotonic() - start
    run_lane(lanes["alone"], results)
    total = time.monotonic() - start
    lane_sum = {n: sum(results.get(j[0], (0, 0))[1] for j in lanes[n]) for n in lanes}
    before.update({k: round(v[1], 1) for k, v in results.items()})
    os.makedirs(os.path.dirname(TIMES), exist_ok=True)
    with open(TIMES, "w") as f:
        json.dump(before, f, indent=1, sort_keys=True)
    failed = sorted(k for k, (rc, _) in results.items() if rc != 0)
    say(f"run-tests: {len(results)} binaries in {total / 60:.1f} min "
        f"(lanes side by side {side_by_side / 60:.1f} min: lab {lane_sum['lab'] / 60:.1f}, free {lane_sum['free'] / 60:.1f}; "
        f"alone {lane_sum['alone'] / 60:.1f})\n")
    if failed:
        say("run-tests: FAILED: " + " ".join(failed) + "\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
