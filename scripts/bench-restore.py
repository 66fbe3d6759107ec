#!/usr/bin/env python3
"""Restore benchmark driver (run through scripts/bench-restore.sh).

Workload (made once, kept in --workdir, about 100 s): a 2 GiB disk with a
GPT (sfdisk) and one ext4 partition built by `mkfs.ext4 -d` from a tree
holding
  many/     10,000 small text files (0.2-4 KiB)
  big/      a.bin and b.bin, 256 MiB of incompressible bytes each
  logs/     app.log, 64 MiB of log lines
with its directories indexed by `e2fsck -D` (htree, as a guest kernel
leaves a directory this large), converted to qcow2; the raw image is kept
for restic.

Two real libvirt hosts on this machine (`sendense lab hosts start --dir
WORKDIR/lab`: a "prod" and a "dr" daemon, each given a directory storage
pool `default`); the VM (shut off, no NIC) is defined on prod with a copy of
the qcow2 in prod's pool. Then `sendense serve` (fresh data directory,
SQLite catalog, no demo lab) on a free port; through the API: add both hosts
by their URIs, discover, manage the VM, back it up (full). Each run, in
this order:
  open       POST /restore/mount (client wall time; the answer's open_ms too)
  list-1st   GET .../files?path=/vda-p1/many&limit=1000 on the fresh session
  list-all   the 10 pages of 1,000 entries, one after the other
  file       GET .../download of big/a.bin (256 MiB)
  tar-big    GET .../download of big/ (tar of 2 x 256 MiB)
  tar-many   GET .../download of many/ (tar of 10,000 small files)
  restore    POST /restore/start onto the DR host (qcow2, the KVM native
             format; then raw: a volume of dr's pool `default`), from the
             request to the job's completion
  restic     `restic restore latest` of the same raw image
Each HTTP response is read to its end. Medians over --runs; the first run
also checks what came back (sizes, SHA-256, tar entries, qemu-img compare).
The hosts are stopped at the end (their guests too), also on failure.
"""
import argparse
import hashlib
import http.client
import io
import json
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tarfile
import time
import urllib.parse

MiB = 1 << 20
DISK_SIZE = 2 << 30
MANY = 10_000
BIG = 256 * MiB
LOG = 64 * MiB
PAGE_MAX = 1000
PASSWORD = "bench-restore-admin-password"
VM = "bench-vm"
# One UUID for every run: the managed VM is found by it.
VM_UUID = "6b1f7c1e-2a55-4c7e-9d5e-0b3c4d5e6f70"
# The target dev of the VM's disk: restored disks are volumes `<name>-vda.<ext>`.
DISK_DEV = "vda"
# The storage pool made on each host (a restore's default pool is `default`).
POOL = "default"
HOSTS = ("prod", "dr")
# Bumped when the workload changes: an older one in --workdir is made again.
WORKLOAD_VERSION = 3

TARGETS = {
    "open_ms": 1000.0,        # opening a session on a 2 GiB disk < 1 s
    "list_all_ms": 500.0,     # listing the 10,000-entry directory < 500 ms
    "file_mb_s": 200.0,       # download >= 200 MB/s from a local repository
    "tar_big_mb_s": 200.0,
}


def sh(cmd, env=None, cwd=None, capture=False, input=None, check=True):
    r = subprocess.run(cmd, env=env, cwd=cwd, input=input, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        sys.exit(f"bench-restore: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def tool(name):
    for d in ("", "/usr/sbin/", "/sbin/"):
        p = shutil.which(d + name) if not d else (d + name if os.path.exists(d + name) else None)
        if p:
            return p
    sys.exit(f"bench-restore: {name} not found")


def warm(*paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 * MiB):
                pass


def warm_tree(d):
    for dp, _, files in os.walk(d):
        for f in files:
            warm(os.path.join(dp, f))


# ---------------------------------------------------------------- workload

def make_tree(tree):
    rng = random.Random(20240601)
    words = ("backup restore chunk index volume snapshot ext4 inode extent journal block "
             "server agent replica cluster node disk qcow2 bitmap pack manifest").split()
    many = os.path.join(tree, "many")
    os.makedirs(many)
    for i in range(MANY):
        n = rng.randint(200, 4096)
        text = []
        size = 0
        while size < n:
            line = f"{i:05d} " + " ".join(rng.choice(words) for _ in range(8)) + f" {rng.getrandbits(32):08x}\n"
            text.append(line)
            size += len(line)
        with open(os.path.join(many, f"file-{i:05d}.txt"), "w") as f:
            f.write("".join(text)[:n])
    big = os.path.join(tree, "big")
    os.makedirs(big)
    hashes = {}
    for name, seed in (("a.bin", 1), ("b.bin", 2)):
        r = random.Random(seed)
        h = hashlib.sha256()
        with open(os.path.join(big, name), "wb") as f:
            for _ in range(BIG // MiB):
                block = r.randbytes(MiB)
                h.update(block)
                f.write(block)
        hashes[f"big/{name}"] = h.hexdigest()
    logs = os.path.join(tree, "logs")
    os.makedirs(logs)
    with open(os.path.join(logs, "app.log"), "w") as f:
        t = 1_700_000_000
        written = 0
        lines = []
        while written < LOG:
            t += rng.randint(0, 3)
            line = (f"{time.strftime('%Y-%m-%dT%H:%M:%S', time.gmtime(t))} node-{rng.randint(0, 23):02d} "
                    f"app[{rng.randint(100, 9999)}]: {rng.choice(words)} {rng.choice(words)} took {rng.randint(1, 999)}ms\n")
            lines.append(line)
            written += len(line)
            if len(lines) >= 4096:
                f.write("".join(lines))
                lines = []
        f.write("".join(lines))
    return hashes


def make_workload(w):
    stamp = os.path.join(w, "workload.json")
    if os.path.exists(stamp):
        wl = json.load(open(stamp))
        if wl.get("version") == WORKLOAD_VERSION and os.path.exists(wl["raw"]) and os.path.exists(wl["qcow2"]):
            return wl
    print(f"making the workload in {w} ...", file=sys.stderr)
    t0 = time.perf_counter()
    # "hosts": the KVM host directories of workload version 2.
    for d in ("tree", "hosts"):
        shutil.rmtree(os.path.join(w, d), ignore_errors=True)
    tree = os.path.join(w, "tree")
    hashes = make_tree(tree)
    raw = os.path.join(w, "disk.raw")
    with open(raw, "wb") as f:
        f.truncate(DISK_SIZE)
    sh([tool("sfdisk"), "-q", raw], input="label: gpt\nstart=2048, type=L, name=root\n")
    layout = json.loads(sh([tool("sfdisk"), "--json", raw], capture=True).stdout)["partitiontable"]
    part = layout["partitions"][0]
    sector = layout.get("sectorsize", 512)
    start, size = part["start"] * sector, part["size"] * sector
    part_img = os.path.join(w, "part.raw")
    with open(part_img, "wb") as f:
        f.truncate(size)
    sh([tool("mkfs.ext4"), "-q", "-F", "-t", "ext4", "-L", "benchroot", "-E",
        "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0", "-d", tree, part_img])
    # `mkfs -d` writes linear directories; a guest's kernel indexes a
    # directory (htree) once it outgrows a block. `e2fsck -D` does the same.
    r = subprocess.run([tool("e2fsck"), "-fyD", part_img], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if r.returncode not in (0, 1):
        sys.exit(f"bench-restore: e2fsck -fyD failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    sh(["dd", f"if={part_img}", f"of={raw}", "bs=4M", f"seek={start}", "oflag=seek_bytes", "conv=notrunc,sparse", "status=none"])
    os.remove(part_img)
    shutil.rmtree(tree)
    # The pristine disk: each bench copies it into prod's pool (a backup
    # leaves checkpoint bitmaps in the disk it reads).
    disk = os.path.join(w, "disk.qcow2")
    sh(["qemu-img", "convert", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", raw, disk])
    wl = {"version": WORKLOAD_VERSION, "raw": raw, "qcow2": disk, "hashes": hashes, "part_start": start, "part_size": size,
          "allocated": os.stat(raw).st_blocks * 512, "seconds": round(time.perf_counter() - t0, 1)}
    json.dump(wl, open(stamp, "w"))
    return wl


# ---------------------------------------------------------------- libvirt hosts

def uri(lab, host):
    return f"qemu+unix:///system?socket={lab}/libvirt/{host}/sock/libvirt-sock"


def images(lab, host):
    """The host's storage pool directory (its pool `default`)."""
    return os.path.join(lab, "libvirt", host, "images")


def virsh(lab, host, *args, check=True, capture=False):
    return sh(["virsh", "-q", "-c", uri(lab, host)] + list(args), check=check, capture=capture)


def start_hosts(exe, lab):
    """Starts the prod and dr libvirt daemons, each with an active dir pool `default` on its images directory."""
    sh([exe, "lab", "hosts", "start", "--dir", lab])
    for host in HOSTS:
        # Both fail harmlessly when a run before this one made them.
        virsh(lab, host, "pool-define-as", POOL, "dir", "--target", images(lab, host), check=False)
        virsh(lab, host, "pool-start", POOL, check=False)
        virsh(lab, host, "pool-refresh", POOL)  # fails when the pool is not active


def stop_hosts(exe, lab):
    """Stops both daemons (their guests are destroyed first)."""
    sh([exe, "lab", "hosts", "stop", "--dir", lab], check=False)


def domain_xml(name, disk, uuid=VM_UUID):
    """A shut-off BIOS VM with one virtio qcow2 disk and no NIC (reads take a file path)."""
    return (f"<domain type='qemu'><name>{name}</name><uuid>{uuid}</uuid>"
            "<memory unit='MiB'>1024</memory><vcpu>2</vcpu>"
            "<os><type arch='x86_64' machine='pc'>hvm</type><boot dev='hd'/></os>"
            "<features><acpi/></features>"
            "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
            "<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>"
            f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{disk}'/>"
            f"<target dev='{DISK_DEV}' bus='virtio'/></disk>"
            "<memballoon model='none'/></devices></domain>")


def remove_vm(lab, host, name):
    """Removes a VM (and the volumes of its disks) if the host has it."""
    virsh(lab, host, "destroy", name, check=False)
    virsh(lab, host, "undefine", name, "--checkpoints-metadata", "--remove-all-storage", check=False)


def define_vm(lab, w, pristine):
    """The VM on prod (shut off) with a fresh copy of the workload's disk in prod's pool; nothing
    of an older bench on dr. Returns the disk's path."""
    for name in virsh(lab, "dr", "list", "--all", "--name", capture=True).stdout.split():
        if name.startswith("restored-"):
            remove_vm(lab, "dr", name)
    for f in os.listdir(images(lab, "dr")):
        if f.startswith("restored-"):
            os.remove(os.path.join(images(lab, "dr"), f))
    virsh(lab, "dr", "pool-refresh", POOL)
    virsh(lab, "prod", "destroy", VM, check=False)
    virsh(lab, "prod", "undefine", VM, "--checkpoints-metadata", check=False)
    disk = os.path.join(images(lab, "prod"), f"{VM}-{DISK_DEV}.qcow2")
    if os.path.exists(disk):
        os.remove(disk)
    sh(["cp", "--sparse=always", pristine, disk])
    virsh(lab, "prod", "pool-refresh", POOL)
    xml = os.path.join(w, "vm.xml")
    with open(xml, "w") as f:
        f.write(domain_xml(VM, disk))
    virsh(lab, "prod", "define", xml)
    return disk


# ---------------------------------------------------------------- API

class Api:
    def __init__(self, port):
        self.port = port
        self.token = None
        self.conn = None

    def _conn(self):
        if self.conn is None:
            self.conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=600)
        return self.conn

    def request(self, method, path, body=None):
        """Sends a request and returns the open response (read it to the end)."""
        headers = {}
        if self.token:
            headers["authorization"] = f"Bearer {self.token}"
        data = None
        if body is not None:
            data = json.dumps(body).encode()
            headers["content-type"] = "application/json"
        for attempt in (0, 1):
            try:
                c = self._conn()
                c.request(method, "/api/v1" + path, body=data, headers=headers)
                return c.getresponse()
            except (ConnectionError, http.client.HTTPException, OSError):
                self.conn = None
                if attempt:
                    raise

    def call(self, method, path, body=None, want=200):
        r = self.request(method, path, body)
        raw = r.read()
        if r.status != want:
            sys.exit(f"bench-restore: {method} {path} -> {r.status}, expected {want}: {raw[:2000].decode(errors='replace')}")
        return json.loads(raw) if raw else None

    def stream(self, path, sink=None):
        """GETs path and reads the body to its end; returns (bytes, seconds)."""
        t = time.perf_counter()
        r = self.request("GET", path)
        if r.status != 200:
            sys.exit(f"bench-restore: GET {path} -> {r.status}: {r.read()[:2000].decode(errors='replace')}")
        n = 0
        buf = bytearray(4 * MiB)
        view = memoryview(buf)
        while True:
            k = r.readinto(view)
            if not k:
                break
            n += k
            if sink:
                sink(view[:k])
        return n, time.perf_counter() - t

    def wait_job(self, job, limit=1800):
        until = time.time() + limit
        while True:
            j = self.call("GET", f"/jobs/{job}")
            s = j["job"]["status"]
            if s == "completed":
                return j
            if s in ("failed", "cancelled"):
                sys.exit(f"bench-restore: job {job} {s}: {j['job'].get('error')}")
            if time.time() > until:
                sys.exit(f"bench-restore: job {job} did not finish in {limit} s")
            time.sleep(0.05)


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
               RUST_LOG=os.environ.get("RUST_LOG", "info"))
    log = open(os.path.join(w, "server.log"), "w")
    proc = subprocess.Popen([exe, "serve", "--listen", f"127.0.0.1:{port}", "--data-dir", data,
                             "--web-dir", os.path.join(w, "no-cockpit")], env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    api = Api(port)
    until = time.time() + 60
    while True:
        if proc.poll() is not None:
            sys.exit(f"bench-restore: the server exited ({proc.returncode}); see {log.name}")
        try:
            c = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            c.request("GET", "/api/v1/health")
            if c.getresponse().status == 200:
                break
        except OSError:
            pass
        if time.time() > until:
            proc.kill()
            sys.exit(f"bench-restore: the server did not answer in 60 s; see {log.name}")
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


def q(path):
    return urllib.parse.quote(path, safe="/")


# ---------------------------------------------------------------- runs

def file_restore_run(api, backup, wl, check):
    res = {}
    t = time.perf_counter()
    m = api.call("POST", "/restore/mount", {"backup_id": backup}, want=201)
    res["open_ms"] = (time.perf_counter() - t) * 1000
    res["open_server_ms"] = m["open_ms"]
    vols = [v for v in m["volumes"] if v["filesystem"] == "ext4" and v["browsable"]]
    if len(vols) != 1:
        sys.exit(f"bench-restore: expected one browsable ext4 volume, got {m['volumes']}")
    vol = vols[0]["id"]
    base = f"/restore/{m['id']}"
    many = f"/{vol}/many"

    t = time.perf_counter()
    first = api.call("GET", f"{base}/files?path={q(many)}&limit={PAGE_MAX}")
    res["list_first_ms"] = (time.perf_counter() - t) * 1000
    names = []
    t = time.perf_counter()
    offset = 0
    while True:
        page = api.call("GET", f"{base}/files?path={q(many)}&offset={offset}&limit={PAGE_MAX}")
        names.extend(e["name"] for e in page["entries"])
        offset += len(page["entries"])
        if not page["entries"] or offset >= page["total"]:
            break
    res["list_all_ms"] = (time.perf_counter() - t) * 1000
    res["list_pages"] = -(-offset // PAGE_MAX)
    if first["total"] != MANY or len(names) != MANY or len(set(names)) != MANY or names != sorted(names):
        sys.exit(f"bench-restore: listing {many}: total {first['total']}, {len(names)} names ({len(set(names))} distinct)")

    big_a = f"{base}/download?path={q(f'/{vol}/big/a.bin')}"
    n, s = api.stream(big_a)
    res["file_mb_s"] = n / s / 1e6
    if n != BIG:
        sys.exit(f"bench-restore: big/a.bin came back with {n} bytes")
    if check:
        # Again, untimed: hashing on the client would slow the timed download.
        h = hashlib.sha256()
        api.stream(big_a, sink=h.update)
        if h.hexdigest() != wl["hashes"]["big/a.bin"]:
            sys.exit("bench-restore: big/a.bin came back with another SHA-256")

    n, s = api.stream(f"{base}/download?path={q(f'/{vol}/big')}")
    res["tar_big_mb_s"] = n / s / 1e6
    if n < 2 * BIG:
        sys.exit(f"bench-restore: the tar of big/ has {n} bytes")

    n, s = api.stream(f"{base}/download?path={q(many)}")
    if check:
        # Again, untimed, kept in memory (about 30 MB) to count its entries.
        chunks = []
        api.stream(f"{base}/download?path={q(many)}", sink=lambda b: chunks.append(bytes(b)))
        with tarfile.open(fileobj=io.BytesIO(b"".join(chunks)), mode="r|") as tf:
            files = sum(1 for e in tf if e.isfile())
        if files != MANY:
            sys.exit(f"bench-restore: the tar of many/ holds {files} files")
    res["tar_many_s"] = s
    res["tar_many_files_s"] = MANY / s
    res["tar_many_mb_s"] = n / s / 1e6
    api.call("DELETE", base, want=204)
    return res


def vm_restore_run(api, backup, dr_id, wl, lab, fmt, run, check):
    name = f"restored-{fmt}-{run}"
    # The restored disk: volume `<name>-<dev>.<ext>` of dr's default pool.
    vol = f"{name}-{DISK_DEV}.{'vhd' if fmt == 'vpc' else fmt}"
    remove_vm(lab, "dr", name)
    virsh(lab, "dr", "vol-delete", "--pool", POOL, vol, check=False)
    t = time.perf_counter()
    queued = api.call("POST", "/restore/start", {"backup_id": backup, "target_platform_id": dr_id, "name": name,
                                                 "disk_format": fmt, "power_on": False}, want=202)
    job = queued["jobs"][0]["id"] if "jobs" in queued else queued["id"]
    j = api.wait_job(job)
    secs = time.perf_counter() - t
    if check:
        r = virsh(lab, "dr", "vol-path", "--pool", POOL, vol, check=False, capture=True)
        disk = r.stdout.strip() if r.returncode == 0 else ""
        if not disk or not os.path.exists(disk):
            sys.exit(f"bench-restore: the restored VM {name} has no volume {vol} in pool {POOL} on dr: {r.stderr.strip()}")
        r = subprocess.run(["qemu-img", "compare", "-q", "-U", "-f", fmt, "-F", "raw", disk, wl["raw"]])
        if r.returncode != 0:
            sys.exit(f"bench-restore: the restored {fmt} disk differs from the image")
    remove_vm(lab, "dr", name)
    return secs, j


def restic_env(w):
    return dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_REPOSITORY=os.path.join(w, "restic-repo"),
                RESTIC_CACHE_DIR=os.path.join(w, "restic-cache"))


def restic_backup(w, wl):
    env = restic_env(w)
    shutil.rmtree(env["RESTIC_REPOSITORY"], ignore_errors=True)
    shutil.rmtree(env["RESTIC_CACHE_DIR"], ignore_errors=True)
    sh(["restic", "init"], env=env)
    t = time.perf_counter()
    sh(["restic", "backup", "--quiet", "disk.raw"], env=env, cwd=os.path.dirname(wl["raw"]))
    return time.perf_counter() - t


def restic_restore(w, wl, check):
    env = restic_env(w)
    target = os.path.join(w, "restic-out")
    shutil.rmtree(target, ignore_errors=True)
    t = time.perf_counter()
    sh(["restic", "restore", "--quiet", "latest", "--target", target], env=env)
    secs = time.perf_counter() - t
    if check and subprocess.run(["cmp", "-s", os.path.join(target, "disk.raw"), wl["raw"]]).returncode != 0:
        sys.exit("bench-restore: restic restored another image")
    shutil.rmtree(target)
    return secs


def med(rows, k):
    v = [r[k] for r in rows if k in r]
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sendense", required=True)
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--workdir", default="/var/tmp/sendense-bench-restore")
    ap.add_argument("--formats", default="qcow2,raw", help="full VM restore disk formats (the first is compared with restic)")
    ap.add_argument("--check", action="store_true", help="exit 1 when a target is missed")
    ap.add_argument("--keep", action="store_true", help="keep the server's data directory and the restic repository")
    a = ap.parse_args()
    w = os.path.abspath(a.workdir)
    os.makedirs(w, exist_ok=True)
    wl = make_workload(w)
    formats = a.formats.split(",")
    exe = os.path.abspath(a.sendense)
    lab = os.path.join(w, "lab")

    proc = None
    try:
        start_hosts(exe, lab)
        disk = define_vm(lab, w, wl["qcow2"])
        proc, api = start_server(exe, w)
        prod = api.call("POST", "/platforms", {"kind": "kvm", "address": uri(lab, "prod")}, want=201)
        dr = api.call("POST", "/platforms", {"kind": "kvm", "address": uri(lab, "dr")}, want=201)
        found = api.call("POST", "/discovery/discover-vms", {"platform_id": prod["id"]})
        vm = next(v for v in found["vms"] if v["vm"]["name"] == VM)
        added = api.call("POST", "/discovery/bulk-add", {"platform_id": prod["id"], "vm_ids": [vm["vm"]["id"]]})
        ctx = added["added"][0]["id"]
        warm(disk)
        t = time.perf_counter()
        queued = api.call("POST", "/backup/start", {"vm_ids": [ctx], "backup_type": "full"}, want=202)
        api.wait_job(queued["jobs"][0]["id"])
        backup_s = time.perf_counter() - t
        backup = api.call("GET", f"/backup/list?vm={ctx}")["items"][0]["id"]
        repo_dir = os.path.join(w, "data", "repos", "local")
        restic_backup_s = restic_backup(w, wl)

        rows = []
        for run in range(a.runs):
            print(f"run {run + 1}/{a.runs} ...", file=sys.stderr)
            check = run == 0
            warm_tree(repo_dir)
            r = file_restore_run(api, backup, wl, check)
            for fmt in formats:
                warm_tree(repo_dir)
                secs, _ = vm_restore_run(api, backup, dr["id"], wl, lab, fmt, run, check)
                r[f"restore_{fmt}_s"] = secs
            warm(wl["raw"])
            warm_tree(restic_env(w)["RESTIC_REPOSITORY"])
            r["restic_s"] = restic_restore(w, wl, check)
            rows.append(r)
    finally:
        if proc:
            stop_server(proc)
        stop_hosts(exe, lab)
        if not a.keep:
            shutil.rmtree(os.path.join(w, "data"), ignore_errors=True)
            shutil.rmtree(restic_env(w)["RESTIC_REPOSITORY"], ignore_errors=True)
            shutil.rmtree(restic_env(w)["RESTIC_CACHE_DIR"], ignore_errors=True)

    m = {k: med(rows, k) for k in rows[0]}
    gib = DISK_SIZE / (1 << 30)
    print()
    print(f"workload: {gib:.0f} GiB disk (GPT, ext4: {MANY} files in one directory, 2 x {BIG // MiB} MiB random, "
          f"{LOG // MiB} MiB log; {wl['allocated'] / MiB:.0f} MiB allocated); medians of {a.runs} runs, warm page cache, "
          f"{os.cpu_count()} cores; full backup through the API {backup_s:.1f} s ({DISK_SIZE / backup_s / 1e6:.0f} MB/s of disk), "
          f"restic backup {restic_backup_s:.1f} s")
    hdr = f"{'measure':<44} {'median':>10} {'unit':<8} {'target':>12} {'ratio':>6}  {'runs'}"
    print(hdr)
    print("-" * len(hdr))

    def line(label, key, unit, target=None, higher=False, fmt="%.1f"):
        v = m.get(key)
        vals = " ".join(fmt % r[key] for r in rows)
        if target is None:
            t, ratio = "", ""
        elif higher:
            t, ratio = f">= {target:g}", f"{v / target:.2f}"
        else:
            t, ratio = f"< {target:g}", f"{target / v:.2f}"
        print(f"{label:<44} {fmt % v:>10} {unit:<8} {t:>12} {ratio:>6}  {vals}")

    line("open session (POST /restore/mount)", "open_ms", "ms", TARGETS["open_ms"])
    line("  of which the server (open_ms)", "open_server_ms", "ms", fmt="%.0f")
    line(f"list {MANY} entries, first page of {PAGE_MAX}", "list_first_ms", "ms")
    line(f"list {MANY} entries, all {m['list_pages']:.0f} pages", "list_all_ms", "ms", TARGETS["list_all_ms"])
    line(f"download big/a.bin ({BIG // MiB} MiB)", "file_mb_s", "MB/s", TARGETS["file_mb_s"], higher=True, fmt="%.0f")
    line(f"download big/ as tar ({2 * BIG // MiB} MiB)", "tar_big_mb_s", "MB/s", TARGETS["tar_big_mb_s"], higher=True, fmt="%.0f")
    line(f"download many/ as tar ({MANY} files)", "tar_many_files_s", "files/s", fmt="%.0f")
    line("  same, seconds", "tar_many_s", "s", fmt="%.2f")
    for fmt in formats:
        m[f"restore_{fmt}_mb_s"] = DISK_SIZE / m[f"restore_{fmt}_s"] / 1e6
        line(f"full VM restore as {fmt} (API, request to done)", f"restore_{fmt}_s", "s", fmt="%.2f")
    line("restic restore of the raw image", "restic_s", "s", fmt="%.2f")
    ref = formats[0]
    ratio_restic = m["restic_s"] / m[f"restore_{ref}_s"]
    print(f"full VM restore ({ref}) {m[f'restore_{ref}_mb_s']:.0f} MB/s vs restic {DISK_SIZE / m['restic_s'] / 1e6:.0f} MB/s "
          f"of disk: {ratio_restic:.2f}x (target >= 1)")

    ratios = {
        "open_vs_target": round(TARGETS["open_ms"] / m["open_ms"], 2),
        "list_all_vs_target": round(TARGETS["list_all_ms"] / m["list_all_ms"], 2),
        "file_download_vs_target": round(m["file_mb_s"] / TARGETS["file_mb_s"], 2),
        "tar_download_vs_target": round(m["tar_big_mb_s"] / TARGETS["tar_big_mb_s"], 2),
        f"vm_restore_{ref}_vs_restic": round(ratio_restic, 2),
    }
    for fmt in formats[1:]:
        ratios[f"vm_restore_{fmt}_vs_restic"] = round(m["restic_s"] / m[f"restore_{fmt}_s"], 2)
    ratios.update({
        "open_ms": round(m["open_ms"], 1),
        "list_first_ms": round(m["list_first_ms"], 1),
        "list_all_ms": round(m["list_all_ms"], 1),
        "file_mb_s": round(m["file_mb_s"]),
        "tar_big_mb_s": round(m["tar_big_mb_s"]),
        "tar_many_files_s": round(m["tar_many_files_s"]),
        f"vm_restore_{ref}_mb_s": round(m[f"restore_{ref}_mb_s"]),
        "restic_restore_mb_s": round(DISK_SIZE / m["restic_s"] / 1e6),
    })
    missed = [k for k in ("open_vs_target", "list_all_vs_target", "file_download_vs_target", "tar_download_vs_target",
                          f"vm_restore_{ref}_vs_restic") if ratios[k] < 1]
    ratios["targets_missed"] = missed
    print(json.dumps(ratios))
    if a.check and missed:
        sys.exit(1)


if __name__ == "__main__":
    main()
