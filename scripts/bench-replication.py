#!/usr/bin/env python3
"""Replication benchmark driver (run through scripts/bench-replication.sh).

Two real libvirt hosts on this machine (`sendense lab hosts start`: a "prod"
and a "dr" daemon, each with a storage pool, a NAT network `lan`, and on dr
an isolated network) and one guest on prod booting the lab kernel, with a
small system disk and a data disk made from the standard workload (a 2 GiB
raw image from /work/shared/bench/mkimage.py, seed 20250601: 35% holes, 35%
log text, 30% random, in 1 MiB extents, as qcow2). The guest runs for the
whole benchmark, its own writes are what the syncs carry.

Then `sendense serve` (fresh data directory, SQLite catalog, no demo lab) on
a free port; through the API: add both hosts, discover, manage the VM, map
lan -> lan. Each run starts from the pristine data disk and, in this order:
  full        POST /replication/start, wait for the job: the full sync
  ref-full    `qemu-img convert -O qcow2` of the same data disk to a new file
  incr x R    the guest writes 2% of its data disk in scattered 64 KiB
              blocks (dd on its console), POST /replication/{id}/sync, wait;
              then `qemu-img convert` of the whole disk again (what a tool
              without change tracking copies)
  empty       POST .../sync with nothing written: the fixed cost of a sync
  test        POST .../test-failover, wait (the job ends when the test VM's
              guest prints its boot line); POST .../end-test, wait
  failover    the guest writes 0.2% more, POST .../failover {"confirm": vm},
              wait (pre-sync while the source runs, graceful shutdown, final
              sync, replica on, its guest up: the report's downtime)
  rollback    the replica's guest writes 0.5% of its data disk, POST
              .../rollback {"sync_back": true}, wait (the source's guest up)
  delete      DELETE /replication/{id} (the replica goes)
Then instant recovery, once per data disk size (2 GiB: the workload; 8 GiB:
the workload grown with 6 GiB of holes), of a second running guest on prod:
  backup      POST /backup/start, wait
  instant     POST /restore/instant to dr, poll until `running` (the job
              ends when the instant VM's guest prints its boot line)
  finalize    POST .../finalize, poll until `finalized` (bytes copied onto
              dr while the guest runs / time)
  forget      DELETE .../{id} (the finalized VM stays; removed with virsh)
Times are the job's wall time (started_at to finished_at, the server's
clock), the engine's own duration_ms from the job's `report` log line, and
the client's time from the request to the job's completion. Medians over
--runs (and rounds).
"""
import argparse
import datetime
import http.client
import importlib.util
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time

MiB = 1 << 20
DISK_SIZE = 2 << 30
SEED = 20250601
PASSWORD = "bench-replication-admin-password"
VM = "bench-vm"
REPLICA = f"{VM}-replica"
BLOCK = 64 << 10
INCR_PERCENT = 2.0
FAILOVER_PERCENT = 0.2
REPLICA_PERCENT = 0.5
# Bumped when the workload changes: an older one in --workdir is made again.
WORKLOAD_VERSION = 2
# Bridges of the benchmark's networks (apart from the demo lab's sdp-/sdd-).
NETWORKS = {"prod": [("lan", "sdbp-lan", "10.95.1.1", True)],
            "dr": [("lan", "sdbd-lan", "10.95.2.1", True), ("isolated", "sdbd-iso", "10.95.3.1", False)]}

# (key, target, higher is better, what); ratios in the JSON are "> 1 is better than the target".
TARGETS = {
    "full_sync_vs_qemu_img": (0.8, True, "full sync speed / qemu-img convert speed"),
    "incr_written_vs_changed": (1.1, False, "incremental bytes written / bytes the guest wrote"),
    "sync_fixed_overhead_ms": (150.0, False, "a sync with nothing to copy, engine time"),
    "test_failover_ms": (60000.0, False, "test failover, request to the test VM's guest up"),
    "failover_downtime_ms": (60000.0, False, "live failover downtime, source down to replica guest up"),
    "instant_recovery_ms": (15000.0, False, "instant recovery, request to the guest up (the slower of 2 and 8 GiB)"),
}


def die(msg):
    sys.exit(f"bench-replication: {msg}")


def sh(cmd, capture=False, input=None, check=True):
    r = subprocess.run(cmd, input=input, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        die(f"{' '.join(cmd[:6])}{' ...' if len(cmd) > 6 else ''} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def warm(*paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 * MiB):
                pass


# ---------------------------------------------------------------- workload, hosts, guest

def make_workload(w, tools):
    stamp = os.path.join(w, "workload.json")
    if os.path.exists(stamp):
        wl = json.load(open(stamp))
        if wl.get("version") == WORKLOAD_VERSION and os.path.exists(wl["pristine"]):
            return wl
    print(f"making the workload in {w} ...", file=sys.stderr)
    t0 = time.perf_counter()
    raw = os.path.join(w, "disk.raw")
    if not os.path.exists(raw):  # made under another name first: a disk.raw is complete
        sh([sys.executable, os.path.join(tools, "mkimage.py"), str(SEED), str(DISK_SIZE), raw + ".part"])
        os.rename(raw + ".part", raw)
    pristine = os.path.join(w, "vdb.pristine.qcow2")
    sh(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", raw, pristine])
    wl = {"version": WORKLOAD_VERSION, "raw": raw, "pristine": pristine, "lab": os.path.join(w, "lab"),
          "allocated": os.stat(raw).st_blocks * 512, "seconds": round(time.perf_counter() - t0, 1)}
    json.dump(wl, open(stamp, "w"))
    return wl


def uri(wl, host):
    return f"qemu+unix:///system?socket={wl['lab']}/libvirt/{host}/sock/libvirt-sock"


def images(wl, host):
    return os.path.join(wl["lab"], "libvirt", host, "images")


def virsh(wl, host, *args, check=True, capture=False):
    return sh(["virsh", "-q", "-c", uri(wl, host)] + list(args), check=check, capture=capture)


def start_hosts(exe, wl, w):
    sh([exe, "lab", "hosts", "start", "--dir", wl["lab"]])
    for host, nets in NETWORKS.items():
        virsh(wl, host, "pool-define-as", "images", "dir", "--target", images(wl, host), check=False)
        virsh(wl, host, "pool-start", "images", check=False)
        for name, bridge, ip, nat in nets:
            xml = os.path.join(w, f"net-{host}-{name}.xml")
            fwd = "<forward mode='nat'/>" if nat else ""
            open(xml, "w").write(f"<network><name>{name}</name>{fwd}<bridge name='{bridge}' stp='off' delay='0'/>"
                                 f"<ip address='{ip}' netmask='255.255.255.0'/></network>")
            virsh(wl, host, "net-define", xml, check=False)
            virsh(wl, host, "net-start", name, check=False)


def domain_xml(name, kit, disks, log, uuid="7c2e8d2f-3b66-4d8f-8e6f-1c4d5e6f7a81"):
    devs = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{p}'/><target dev='{t}' bus='virtio'/></disk>"
        for t, p in disks)
    # One UUID for every run: the managed VM is found by it.
    return (f"<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>"
            "<memory unit='MiB'>128</memory><vcpu>1</vcpu>"
            f"<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kit}/vmlinuz</kernel><initrd>{kit}/initrd.cpio.gz</initrd>"
            f"<cmdline>console=ttyS0 panic=-1 loglevel=4 sendense.name={name}</cmdline></os>"
            "<features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>"
            "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
            f"<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devs}"
            "<interface type='network'><source network='lan'/><model type='virtio'/></interface>"
            f"<serial type='pty'><log file='{log}' append='off'/><target port='0'/></serial>"
            "<console type='pty'><target type='serial' port='0'/></console><memballoon model='none'/></devices></domain>")


def wait_for(path, marker, timeout):
    t0 = time.time()
    while time.time() - t0 < timeout:
        try:
            with open(path, "rb") as f:
                for line in f.read().decode("utf-8", "replace").splitlines():
                    if marker in line:
                        return line.strip()
        except FileNotFoundError:
            pass
        time.sleep(0.1)
    die(f"'{marker}' did not appear in {path} within {timeout} s")


class Console:
    """A guest's serial console: one shell line in, CMD-DONE out."""

    def __init__(self, wl, host, vm):
        pty = virsh(wl, host, "ttyconsole", vm, capture=True).stdout.strip()
        self.fd = os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.buf = b""
        self.run("true")

    def run(self, line, timeout=900):
        os.write(self.fd, (line + "\n").encode())
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                self.buf += os.read(self.fd, 65536)
            except BlockingIOError:
                time.sleep(0.05)
            if b"CMD-DONE" in self.buf:
                out, _, self.buf = self.buf.partition(b"CMD-DONE")
                self.buf = self.buf.split(b"\n", 1)[-1]
                return out.decode("utf-8", "replace")
        die(f"the guest did not finish `{line[:80]}` within {timeout} s")

    def close(self):
        os.close(self.fd)


def reset_guest(wl, kit):
    """The guest on prod with the pristine data disk, running; nothing of an older run on dr."""
    for host, vm in (("dr", REPLICA), ("dr", f"{VM}-test"), ("prod", VM)):
        virsh(wl, host, "destroy", vm, check=False)
        virsh(wl, host, "undefine", vm, "--checkpoints-metadata", check=False)
    for d in (REPLICA, f"{VM}-test"):
        shutil.rmtree(os.path.join(images(wl, "dr"), d), ignore_errors=True)
    img = images(wl, "prod")
    vda, vdb = os.path.join(img, f"{VM}-vda.qcow2"), os.path.join(img, f"{VM}-vdb.qcow2")
    for d in (vda, vdb):
        if os.path.exists(d):
            os.remove(d)
    sh(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", vda, "64M"])
    sh(["cp", "--sparse=always", wl["pristine"], vdb])
    log = os.path.join(img, f"{VM}.console.log")
    xml = os.path.join(os.path.dirname(wl["lab"]), "vm.xml")
    open(xml, "w").write(domain_xml(VM, kit, [("vda", vda), ("vdb", vdb)], log))
    virsh(wl, "prod", "define", xml)
    virsh(wl, "prod", "pool-refresh", "images", check=False)
    virsh(wl, "prod", "start", VM)
    wait_for(log, "SENDENSE-GUEST-UP", 180)
    return vdb


def guest_writes(con, percent, seed):
    """The guest writes `percent` of its data disk in 64 KiB blocks spread over it (random data,
    each block aligned, fsynced). Returns (bytes, seconds)."""
    n = round(DISK_SIZE // BLOCK * percent / 100.0)
    stride = DISK_SIZE // BLOCK // n
    first = seed % stride
    t = time.perf_counter()
    con.run(f"i=0; while [ $i -lt {n} ]; do dd if=/dev/urandom of=/dev/vdb bs={BLOCK} seek=$(({first} + i*{stride})) "
            f"count=1 conv=notrunc 2>/dev/null; i=$((i+1)); done; sync")
    return n * BLOCK, time.perf_counter() - t


def qemu_img_copy(src, out):
    """The reference: `qemu-img convert -O qcow2` of the source disk to a new file (timed)."""
    if os.path.exists(out):
        os.remove(out)
    warm(src)
    t = time.perf_counter()
    sh(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "qcow2", src, out])
    secs = time.perf_counter() - t
    os.remove(out)
    return secs


# ---------------------------------------------------------------- API

class Api:
    def __init__(self, port):
        self.port = port
        self.token = None
        self.conn = None

    def call(self, method, path, body=None, want=200):
        headers = {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in (0, 1):
            try:
                if self.conn is None:
                    self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
                self.conn.request(method, "/api/v1" + path, body=data, headers=headers)
                r = self.conn.getresponse()
                raw = r.read()
                break
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt:
                    raise
        if r.status != want:
            die(f"{method} {path} -> {r.status}, expected {want}: {raw[:2000].decode(errors='replace')}")
        return json.loads(raw) if raw else None

    def wait_job(self, job, limit=1800):
        until = time.time() + limit
        while True:
            j = self.call("GET", f"/jobs/{job}")
            s = j["job"]["status"]
            if s == "completed":
                return j
            if s in ("failed", "cancelled"):
                log = "\n  ".join(f"{l['at']} {l['level']}: {l['message']}" for l in j["logs"])
                die(f"job {job} ({j['job'].get('operation')}) {s}: {j['job'].get('error')}\n  {log}")
            if time.time() > until:
                die(f"job {job} did not finish in {limit} s")
            time.sleep(0.02)


def ts(s):
    """An RFC 3339 time of the API (any fraction length) as a datetime."""
    m = re.match(r"(.*T\d\d:\d\d:\d\d)(\.\d+)?(Z|[+-]\d\d:\d\d)$", s)
    if not m:
        die(f"unexpected time {s!r}")
    frac = (m.group(2) or ".0")[:7]
    return datetime.datetime.fromisoformat(m.group(1) + frac + ("+00:00" if m.group(3) == "Z" else m.group(3)))


class Action:
    """A finished replication job: client time, job wall time, the engine's report."""

    def __init__(self, details, client_s):
        job = details["job"]
        self.job = job
        self.client_s = client_s
        self.wall_s = (ts(job["finished_at"]) - ts(job["started_at"])).total_seconds()
        self.queued_s = (ts(job["started_at"]) - ts(job["created_at"])).total_seconds()
        reports = [l["message"][len("report "):] for l in details["logs"] if l["message"].startswith("report ")]
        if not reports:
            die(f"job {job['id']} ({job.get('operation')}) logged no report line")
        self.report = json.loads(reports[-1])
        self.summary = [l["message"] for l in details["logs"] if l["level"] == "info"][-1:]


def act(api, path, body, want=202):
    t = time.perf_counter()
    accepted = api.call("POST", path, body, want=want)
    if not accepted.get("job"):
        die(f"POST {path} ran no job: {accepted}")
    details = api.wait_job(accepted["job"]["id"])
    return accepted, Action(details, time.perf_counter() - t)


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def start_server(exe, w):
    data = os.path.join(w, "data")
    shutil.rmtree(data, ignore_errors=True)
    os.makedirs(data)
    port = free_port()
    env = dict(os.environ, SENDENSE_ADMIN_PASSWORD=PASSWORD, SENDENSE_DEMO_LAB="false",
               SENDENSE_PLATFORM_ROOTS=os.path.join(w, "lab"), RUST_LOG=os.environ.get("RUST_LOG", "info"))
    log = open(os.path.join(w, "server.log"), "w")
    proc = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                             "--web-dir", os.path.join(w, "no-cockpit")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = Api(port)
    until = time.time() + 60
    while True:
        if proc.poll() is not None:
            die(f"the server exited ({proc.returncode}); see {log.name}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/v1/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if time.time() > until:
            proc.kill()
            die(f"the server did not answer in 60 s; see {log.name}")
        time.sleep(0.1)
    api.token = api.call("POST", "/auth/login", {"username": "admin", "password": PASSWORD})["token"]
    return proc, api


def stop_server(proc):
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# ---------------------------------------------------------------- one run

def one_run(api, ids, wl, kit, run, rounds, w):
    src = reset_guest(wl, kit)
    con = Console(wl, "prod", VM)
    ref_out = os.path.join(w, "ref-copy.qcow2")
    res = {"incr": []}

    warm(src)
    started, full = act(api, "/replication/start", {"vm_id": ids["vm"], "target_platform_id": ids["dr"],
                                                     "interval_seconds": 7 * 24 * 3600, "keep_points": 16}, want=201)
    flow = started["flow"]["id"]
    if full.report["kind"] != "full":
        die(f"the first sync was {full.report['kind']}, not full: {full.summary}")
    res["full"] = {"client_s": full.client_s, "wall_s": full.wall_s, "engine_s": full.report["duration_ms"] / 1000,
                   "queued_s": full.queued_s, "read": full.report["bytes_read"], "written": full.report["bytes_written"],
                   "zeroed": full.report["bytes_zeroed"]}
    res["full"]["ref_s"] = qemu_img_copy(src, ref_out)

    for r in range(rounds):
        changed, write_s = guest_writes(con, INCR_PERCENT, 1000 * (run + 1) + r)
        _, inc = act(api, f"/replication/{flow}/sync", {})
        rep = inc.report
        if rep["kind"] != "incremental":
            die(f"round {r + 1}: the sync after the guest's writes was {rep['kind']}, not incremental: {inc.summary} {rep['disks']}")
        vdb = next(d for d in rep["disks"] if d["disk"] == "vdb")
        row = {"changed": changed, "write_s": write_s, "bytes_changed": rep["bytes_changed"], "vdb_changed": vdb["bytes_changed"],
               "read": rep["bytes_read"], "written": rep["bytes_written"] + rep["bytes_zeroed"], "client_s": inc.client_s,
               "wall_s": inc.wall_s, "engine_s": rep["duration_ms"] / 1000}
        row["ref_s"] = qemu_img_copy(src, ref_out)
        res["incr"].append(row)

    _, empty = act(api, f"/replication/{flow}/sync", {})
    res["empty"] = {"engine_s": empty.report["duration_ms"] / 1000, "wall_s": empty.wall_s, "client_s": empty.client_s,
                    "read": empty.report["bytes_read"]}

    _, test = act(api, f"/replication/{flow}/test-failover", {})
    flow_now = api.call("GET", f"/replication/{flow}")["flow"]
    if flow_now["state"] != "testing" or not test.report.get("boot_line"):
        die(f"after the test failover the flow is {flow_now['state']}, the test VM's boot line {test.report.get('boot_line')!r}")
    _, end = act(api, f"/replication/{flow}/end-test", {})
    res["test"] = {"client_s": test.client_s, "wall_s": test.wall_s, "engine_s": test.report["duration_ms"] / 1000,
                   "boot_s": (test.report.get("boot_ms") or 0) / 1000}
    res["end_test"] = {"client_s": end.client_s, "wall_s": end.wall_s, "engine_s": end.report["duration_ms"] / 1000}

    fo_changed, _ = guest_writes(con, FAILOVER_PERCENT, 5000 + run)
    con.close()
    _, fo = act(api, f"/replication/{flow}/failover", {"confirm": VM})
    rep = fo.report
    if not rep.get("boot_line"):
        die(f"the failover did not see the replica's guest come up: {fo.summary}")
    res["failover"] = {k: rep[k] / 1000 for k in ("presync_ms", "power_off_ms", "final_sync_ms", "power_on_ms", "downtime_ms", "duration_ms")}
    res["failover"].update({"client_s": fo.client_s, "wall_s": fo.wall_s, "changed": fo_changed, "boot_s": rep["boot_ms"] / 1000,
                            "presync_read": (rep.get("presync") or {}).get("bytes_read", 0),
                            "final_read": (rep.get("final_sync") or {}).get("bytes_read", 0)})

    rcon = Console(wl, "dr", REPLICA)
    rb_changed, _ = guest_writes(rcon, REPLICA_PERCENT, 7000 + run)
    rcon.close()
    _, rb = act(api, f"/replication/{flow}/rollback", {"confirm": VM, "sync_back": True})
    rep = rb.report
    res["rollback"] = {"client_s": rb.client_s, "wall_s": rb.wall_s, "engine_s": rep["duration_ms"] / 1000,
                       "downtime_s": rep["downtime_ms"] / 1000, "changed": rb_changed,
                       "changed_on_replica": rep["bytes_changed_on_replica"], "written": rep["bytes_written"], "kind": rep.get("kind")}
    api.call("DELETE", f"/replication/{flow}", want=204)
    if os.path.exists(os.path.join(images(wl, "dr"), REPLICA)):
        die("deleting the flow left the replica on the dr host")
    return res


def wait_instant(api, iid, state, limit=900):
    until = time.time() + limit
    while True:
        i = api.call("GET", f"/restore/instant/{iid}")
        if i["state"] == state:
            return i
        if i["state"] == "failed" or time.time() > until:
            die(f"instant recovery {iid} did not become {state}: {i}")
        time.sleep(0.05)


def instant_phase(api, ids, wl, kit, w, gib):
    """A running guest whose data disk is the workload grown to `gib` GiB: backed up, then
    booted on dr from that restore point, finalized while it runs, and removed."""
    name = f"bench-ir{gib}"
    img = images(wl, "prod")
    vda, vdb = os.path.join(img, f"{name}-vda.qcow2"), os.path.join(img, f"{name}-vdb.qcow2")
    for host, vm in (("prod", name), ("dr", f"{name}-instant")):
        virsh(wl, host, "destroy", vm, check=False)
        virsh(wl, host, "undefine", vm, "--checkpoints-metadata", check=False)
    shutil.rmtree(os.path.join(images(wl, "dr"), f"{name}-instant"), ignore_errors=True)
    for d in (vda, vdb):
        if os.path.exists(d):
            os.remove(d)
    sh(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", vda, "64M"])
    sh(["cp", "--sparse=always", wl["pristine"], vdb])
    if gib * (1 << 30) > DISK_SIZE:
        sh(["qemu-img", "resize", "-q", vdb, f"{gib}G"])
    log = os.path.join(img, f"{name}.console.log")
    xml = os.path.join(w, f"{name}.xml")
    open(xml, "w").write(domain_xml(name, kit, [("vda", vda), ("vdb", vdb)], log, uuid=f"7c2e8d2f-3b66-4d8f-8e6f-1c4d5e6f7a{gib:02d}"))
    virsh(wl, "prod", "define", xml)
    virsh(wl, "prod", "start", name)
    wait_for(log, "SENDENSE-GUEST-UP", 180)
    found = api.call("POST", "/discovery/discover-vms", {"platform_id": ids["prod"]})
    vm = next(v for v in found["vms"] if v["vm"]["name"] == name)
    ctx = vm.get("vm_context_id") or api.call("POST", "/discovery/bulk-add", {"platform_id": ids["prod"], "vm_ids": [vm["vm"]["id"]]})["added"][0]["id"]
    t = time.perf_counter()
    job = api.call("POST", "/backup/start", {"vm_ids": [ctx]}, want=202)["jobs"][0]["id"]
    api.wait_job(job)
    backup_s = time.perf_counter() - t
    point = api.call("GET", f"/backup/list?vm={ctx}&limit=1")["items"][0]
    t = time.perf_counter()
    iid = api.call("POST", "/restore/instant", {"backup_id": point["id"], "target_platform_id": ids["dr"],
                                                "name": f"{name}-instant"}, want=202)["id"]
    running = wait_instant(api, iid, "running")
    up_s = time.perf_counter() - t
    t = time.perf_counter()
    api.call("POST", f"/restore/instant/{iid}/finalize", {}, want=202)
    done = wait_instant(api, iid, "finalized")
    fin_s = time.perf_counter() - t
    api.call("DELETE", f"/restore/instant/{iid}", want=204)
    virsh(wl, "dr", "destroy", f"{name}-instant", check=False)
    virsh(wl, "dr", "undefine", f"{name}-instant", check=False)
    shutil.rmtree(os.path.join(images(wl, "dr"), f"{name}-instant"), ignore_errors=True)
    virsh(wl, "prod", "destroy", name, check=False)
    return {"gib": gib, "backup_s": backup_s, "click_to_up_s": up_s, "up_s": (running.get("up_ms") or 0) / 1000,
            "finalize_s": fin_s, "finalize_bytes": done["finalize_total"], "point_bytes": point.get("logical_bytes", 0)}


def med(vals):
    vals = [v for v in vals if v is not None]
    return statistics.median(vals) if vals else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sendense", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--rounds", type=int, default=3, help="incremental syncs per run")
    ap.add_argument("--workdir", default="/var/tmp/sendense-bench-replication")
    ap.add_argument("--tools", default=os.environ.get("SENDENSE_BENCH_TOOLS", "/work/shared/bench"),
                    help="directory of mkimage.py and mutate.py")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--target", action="append", default=[], metavar="KEY=VALUE",
                    help=f"override a target ({', '.join(TARGETS)})")
    ap.add_argument("--keep", action="store_true", help="keep the server's data directory")
    ap.add_argument("--kit", default=os.environ.get("SENDENSE_GUEST_KIT", os.path.expanduser("~/.cache/sendense/guest-kit")))
    a = ap.parse_args()
    targets = {k: v[0] for k, v in TARGETS.items()}
    for t in a.target:
        k, _, v = t.partition("=")
        if k not in targets:
            die(f"--target {t}: unknown key (known: {', '.join(targets)})")
        targets[k] = float(v)
    w = os.path.abspath(a.workdir)
    os.makedirs(w, exist_ok=True)
    wl = make_workload(w, a.tools)
    exe = os.path.abspath(a.sendense)
    start_hosts(exe, wl, w)
    rows = []
    instants = []
    proc = None
    try:
        proc, api = start_server(exe, w)
        prod = api.call("POST", "/platforms", {"kind": "kvm", "address": uri(wl, "prod")}, want=201)
        dr = api.call("POST", "/platforms", {"kind": "kvm", "address": uri(wl, "dr")}, want=201)
        reset_guest(wl, a.kit)
        api.call("POST", "/discovery/discover-vms", {"platform_id": dr["id"]})
        found = api.call("POST", "/discovery/discover-vms", {"platform_id": prod["id"]})
        vm = next(v for v in found["vms"] if v["vm"]["name"] == VM)
        added = api.call("POST", "/discovery/bulk-add", {"platform_id": prod["id"], "vm_ids": [vm["vm"]["id"]]})
        ids = {"vm": added["added"][0]["id"], "prod": prod["id"], "dr": dr["id"]}
        # The failover mapping of the platform pair: lan -> lan.
        api.call("POST", "/networks/bulk-mapping", {"source_platform_id": prod["id"], "target_platform_id": dr["id"],
                                                   "mappings": [{"source_network": "lan", "target_network": "lan"}]},
                 want=200)
        for run in range(a.runs):
            print(f"run {run + 1}/{a.runs} ...", file=sys.stderr)
            rows.append(one_run(api, ids, wl, a.kit, run, a.rounds, w))
        for gib in (2, 8):
            print(f"instant recovery, {gib} GiB data disk ...", file=sys.stderr)
            instants.append(instant_phase(api, ids, wl, a.kit, w, gib))
    finally:
        if proc:
            stop_server(proc)
        sh([exe, "lab", "hosts", "stop", "--dir", wl["lab"]], check=False)
        if not a.keep:
            shutil.rmtree(os.path.join(w, "data"), ignore_errors=True)
        for f in ("ref-copy.qcow2",):
            if os.path.exists(os.path.join(w, f)):
                os.remove(os.path.join(w, f))

    full = {k: med([r["full"][k] for r in rows]) for k in rows[0]["full"]}
    incs = [i for r in rows for i in r["incr"]]
    inc = {k: med([i[k] for i in incs]) for k in incs[0]}
    test = {k: med([r["test"][k] for r in rows]) for k in rows[0]["test"]}
    end = {k: med([r["end_test"][k] for r in rows]) for k in rows[0]["end_test"]}
    fo = {k: med([r["failover"][k] for r in rows]) for k in rows[0]["failover"]}
    empty = {k: med([r["empty"][k] for r in rows]) for k in rows[0]["empty"]}
    rb = {k: med([r["rollback"][k] for r in rows]) for k in rows[0]["rollback"] if k != "kind"}

    # Ratios per sample (a sync and its reference ran back to back, under the
    # same load), then their median: steadier than a ratio of medians on a busy machine.
    per = {
        "full_sync_vs_qemu_img": [r["full"]["ref_s"] / r["full"]["wall_s"] for r in rows],
        "incr_written_vs_changed": [i["written"] / i["changed"] for i in incs],
        "incr_time_vs_recopy": [i["wall_s"] / i["ref_s"] for i in incs],
    }
    m = {k: med(v) for k, v in per.items()}
    m["failover_downtime_ms"] = fo["downtime_ms"] * 1000
    m["test_failover_ms"] = test["client_s"] * 1000
    m["sync_fixed_overhead_ms"] = empty["engine_s"] * 1000
    m["instant_recovery_ms"] = max(i["click_to_up_s"] for i in instants) * 1000

    print()
    print(f"workload: {DISK_SIZE >> 30} GiB data disk (mkimage.py seed {SEED}: 35% holes, 35% text, 30% random; "
          f"{wl['allocated'] / MiB:.0f} MiB allocated) of a running guest (TCG) on a libvirt host, replicated to a second one; "
          f"medians of {a.runs} runs ({a.rounds} incremental rounds each), warm page cache, {os.cpu_count()} cores, "
          f"other builds running on the machine: times are noisy")
    hdr = f"{'measure':<52} {'median':>10} {'unit':<6} {'target':>10} {'vs tgt':>6}  runs"
    print(hdr)
    print("-" * len(hdr))

    def line(label, v, unit, fmt="%.2f", vals=(), key=None):
        t, ratio = "", ""
        if key:
            tgt = targets[key]
            higher = TARGETS[key][1]
            t = f">= {tgt:g}" if higher else f"<= {tgt:g}"
            ratio = f"{(v / tgt if higher else tgt / max(v, 1e-9)):.2f}"
        print(f"{label:<52} {fmt % v:>10} {unit:<6} {t:>10} {ratio:>6}  {' '.join(fmt % x for x in vals)}")

    mb = lambda b: b / 1e6  # noqa: E731
    line("full sync: job wall time", full["wall_s"], "s", vals=[r["full"]["wall_s"] for r in rows])
    line("  engine duration_ms", full["engine_s"], "s", vals=[r["full"]["engine_s"] for r in rows])
    line("  client, request to done", full["client_s"], "s", vals=[r["full"]["client_s"] for r in rows])
    line("  bytes read", mb(full["read"]), "MB", "%.0f", [mb(r["full"]["read"]) for r in rows])
    line("  bytes written (+ zeroed)", mb(full["written"] + full["zeroed"]), "MB", "%.0f",
         [mb(r["full"]["written"] + r["full"]["zeroed"]) for r in rows])
    line("  throughput, bytes read / job wall time", mb(full["read"]) / full["wall_s"], "MB/s", "%.0f",
         [mb(r["full"]["read"]) / r["full"]["wall_s"] for r in rows])
    line("  throughput, bytes read / engine time", mb(full["read"]) / full["engine_s"], "MB/s", "%.0f",
         [mb(r["full"]["read"]) / r["full"]["engine_s"] for r in rows])
    line("reference: qemu-img convert -O qcow2 (same disk)", full["ref_s"], "s", vals=[r["full"]["ref_s"] for r in rows])
    line("full sync speed vs qemu-img convert (median of runs)", m["full_sync_vs_qemu_img"], "x",
         vals=per["full_sync_vs_qemu_img"], key="full_sync_vs_qemu_img")
    line(f"incremental (guest wrote {INCR_PERCENT:g}% in 64 KiB blocks): bytes written", mb(inc["changed"]), "MB", "%.1f",
         [mb(i["changed"]) for i in incs])
    line("  bytes the change tracking listed on the data disk", mb(inc["vdb_changed"]), "MB", "%.1f", [mb(i["vdb_changed"]) for i in incs])
    line("  bytes the change tracking listed", mb(inc["bytes_changed"]), "MB", "%.1f", [mb(i["bytes_changed"]) for i in incs])
    line("  bytes read", mb(inc["read"]), "MB", "%.1f", [mb(i["read"]) for i in incs])
    line("  bytes written (+ zeroed)", mb(inc["written"]), "MB", "%.1f", [mb(i["written"]) for i in incs])
    line("  written / changed", m["incr_written_vs_changed"], "x", vals=per["incr_written_vs_changed"], key="incr_written_vs_changed")
    line("  job wall time", inc["wall_s"], "s", vals=[i["wall_s"] for i in incs])
    line("  engine duration_ms", inc["engine_s"], "s", vals=[i["engine_s"] for i in incs])
    line("  client, request to done", inc["client_s"], "s", vals=[i["client_s"] for i in incs])
    line("reference: full re-copy (qemu-img convert)", inc["ref_s"], "s", vals=[i["ref_s"] for i in incs])
    line("incremental time / full re-copy time (median)", m["incr_time_vs_recopy"], "x", "%.3f",
         vals=per["incr_time_vs_recopy"])
    line("sync with nothing to copy: engine time", empty["engine_s"] * 1000, "ms", "%.0f",
         [r["empty"]["engine_s"] * 1000 for r in rows], key="sync_fixed_overhead_ms")
    line("  job wall time", empty["wall_s"] * 1000, "ms", "%.0f", [r["empty"]["wall_s"] * 1000 for r in rows])
    line("test failover: client, request to the guest up", test["client_s"] * 1000, "ms", "%.0f",
         [r["test"]["client_s"] * 1000 for r in rows], key="test_failover_ms")
    line("  test VM start to its boot line", test["boot_s"] * 1000, "ms", "%.0f", [r["test"]["boot_s"] * 1000 for r in rows])
    line("  job wall time", test["wall_s"] * 1000, "ms", "%.0f", [r["test"]["wall_s"] * 1000 for r in rows])
    line("  engine duration_ms", test["engine_s"] * 1000, "ms", "%.0f", [r["test"]["engine_s"] * 1000 for r in rows])
    line("end test: client, request to done", end["client_s"] * 1000, "ms", "%.0f", [r["end_test"]["client_s"] * 1000 for r in rows])
    line("  job wall time", end["wall_s"] * 1000, "ms", "%.0f", [r["end_test"]["wall_s"] * 1000 for r in rows])
    line("  engine duration_ms", end["engine_s"] * 1000, "ms", "%.0f", [r["end_test"]["engine_s"] * 1000 for r in rows])
    line(f"live failover ({FAILOVER_PERCENT:g}% changed before): downtime", fo["downtime_ms"] * 1000, "ms", "%.0f",
         [r["failover"]["downtime_ms"] * 1000 for r in rows], key="failover_downtime_ms")
    for k, label in (("presync_ms", "pre-sync (source running)"), ("power_off_ms", "source power off"),
                     ("final_sync_ms", "final sync (source off)"), ("power_on_ms", "replica power on"),
                     ("boot_s", "replica on to its guest's boot line"),
                     ("duration_ms", "engine duration_ms"), ("wall_s", "job wall time"), ("client_s", "client, request to done")):
        line(f"  {label}", fo[k] * 1000, "ms", "%.0f", [r["failover"][k] * 1000 for r in rows])
    line("  pre-sync bytes read", mb(fo["presync_read"]), "MB", "%.1f", [mb(r["failover"]["presync_read"]) for r in rows])
    line("  final sync bytes read", mb(fo["final_read"]), "MB", "%.1f", [mb(r["failover"]["final_read"]) for r in rows])
    line(f"rollback, sync back ({REPLICA_PERCENT:g}% on the replica): downtime", rb["downtime_s"] * 1000, "ms", "%.0f",
         [r["rollback"]["downtime_s"] * 1000 for r in rows])
    line("  bytes the replica's failback bitmap listed", mb(rb["changed_on_replica"]), "MB", "%.1f",
         [mb(r["rollback"]["changed_on_replica"]) for r in rows])
    line("  bytes written to the source", mb(rb["written"]), "MB", "%.1f", [mb(r["rollback"]["written"]) for r in rows])
    line("  engine duration_ms", rb["engine_s"] * 1000, "ms", "%.0f", [r["rollback"]["engine_s"] * 1000 for r in rows])
    line("  job wall time", rb["wall_s"] * 1000, "ms", "%.0f", [r["rollback"]["wall_s"] * 1000 for r in rows])
    print(f"rollback kind: {', '.join(sorted({str(r['rollback']['kind']) for r in rows}))}; "
          f"bytes written on the replica before it: {mb(rows[0]['rollback']['changed']):.1f} MB")
    for i in instants:
        g = i["gib"]
        line(f"instant recovery, {g} GiB data disk: request to the guest up", i["click_to_up_s"] * 1000, "ms", "%.0f",
             key="instant_recovery_ms")
        line("  instant VM start to its boot line (server)", i["up_s"] * 1000, "ms", "%.0f")
        line("  finalize: bytes copied onto the host", mb(i["finalize_bytes"]), "MB", "%.0f")
        line("  finalize: time, guest running", i["finalize_s"], "s")
        line("  finalize throughput", mb(i["finalize_bytes"]) / i["finalize_s"], "MB/s", "%.0f")
        line("  backup of the guest before it (reference)", i["backup_s"], "s")
    if len(instants) == 2:
        line("instant recovery time, 8 GiB / 2 GiB", instants[1]["click_to_up_s"] / instants[0]["click_to_up_s"], "x")

    out = {}
    missed = []
    for k, (_, higher, _) in TARGETS.items():
        tgt = targets[k]
        ratio = m[k] / tgt if higher else tgt / max(m[k], 1e-9)
        out[f"{k}_vs_target"] = round(ratio, 2)
        if ratio < 1:
            missed.append(k)
    out.update({
        "full_sync_vs_qemu_img": round(m["full_sync_vs_qemu_img"], 3),
        "incr_written_vs_changed": round(m["incr_written_vs_changed"], 3),
        "incr_time_vs_recopy": round(m["incr_time_vs_recopy"], 4),
        "full_sync_mb_s": round(mb(full["read"]) / full["wall_s"]),
        "full_sync_s": round(full["wall_s"], 2),
        "qemu_img_convert_s": round(full["ref_s"], 2),
        "incr_sync_s": round(inc["wall_s"], 3),
        "incr_recopy_s": round(inc["ref_s"], 2),
        "test_failover_ms": round(test["client_s"] * 1000),
        "sync_fixed_overhead_ms": round(empty["engine_s"] * 1000),
        "end_test_ms": round(end["client_s"] * 1000),
        "failover_downtime_ms": round(fo["downtime_ms"] * 1000),
        "failover_ms": round(fo["duration_ms"] * 1000),
        "rollback_downtime_ms": round(rb["downtime_s"] * 1000),
        "rollback_ms": round(rb["engine_s"] * 1000),
        "instant_recovery_ms": {f"{i['gib']}gib": round(i["click_to_up_s"] * 1000) for i in instants},
        "instant_finalize_mb_s": {f"{i['gib']}gib": round(mb(i["finalize_bytes"]) / i["finalize_s"]) for i in instants},
    })
    out["targets_missed"] = missed
    print(json.dumps(out))
    if a.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
