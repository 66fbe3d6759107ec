#!/usr/bin/env python3
"""Benchmark backups of a running guest on a real libvirt host.

One libvirt host (`sendense lab hosts start`), one guest booting the lab
kernel with a small system disk and a data disk made from the standard
workload (../shared/bench/mkimage.py, default 2 GiB). Measured, in one run:

  full         `sendense vm backup` of the running guest (checkpoint + pull
               backup, read over NBD) vs `qemu-img convert` of the same qcow2
               to raw (the reference: a plain sequential read of the image)
  incremental  after the guest itself writes N scattered 64 KiB blocks on the
               data disk: bytes the incremental read vs bytes the guest wrote,
               and its time
  restore      `sendense vm restore` of the newest restore point onto the host
               with power on: seconds from start to the guest's boot line

Prints a table, then one JSON line of ratios. Needs root, libvirt and the
guest kit (scripts/bench-libvirt.sh installs and makes them).
"""
import argparse
import json
import os
import shutil
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
MiB = 1 << 20


def sh(cmd, capture=False, check=True):
    r = subprocess.run(cmd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if check and r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def timed(cmd, **kw):
    t = time.perf_counter()
    r = sh(cmd, **kw)
    return time.perf_counter() - t, r


def domain_xml(name, kit, disks, log):
    devs = "".join(
        f"<disk type='file' device='disk'><driver name='qemu' type='qcow2'/><source file='{p}'/><target dev='{t}' bus='virtio'/></disk>"
        for t, p in disks)
    return (f"<domain type='qemu'><name>{name}</name><memory unit='MiB'>128</memory><vcpu>1</vcpu>"
            f"<os><type arch='x86_64' machine='pc'>hvm</type><kernel>{kit}/vmlinuz</kernel><initrd>{kit}/initrd.cpio.gz</initrd>"
            f"<cmdline>console=ttyS0 panic=-1 loglevel=4 sendense.name={name}</cmdline></os>"
            "<features><acpi/><tcg><tb-cache unit='MiB'>32</tb-cache></tcg></features>"
            "<on_poweroff>destroy</on_poweroff><on_reboot>restart</on_reboot><on_crash>destroy</on_crash>"
            f"<devices><emulator>/usr/bin/qemu-system-x86_64</emulator>{devs}"
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
    sys.exit(f"bench: '{marker}' did not appear in {path} within {timeout} s")


class Console:
    """The guest's serial console: one shell line in, CMD-DONE out."""

    def __init__(self, pty):
        self.fd = os.open(pty, os.O_RDWR | os.O_NOCTTY | os.O_NONBLOCK)
        self.buf = b""

    def run(self, line, timeout=600):
        os.write(self.fd, (line + "\n").encode())
        t0 = time.time()
        while time.time() - t0 < timeout:
            try:
                self.buf += os.read(self.fd, 65536)
            except BlockingIOError:
                time.sleep(0.05)
            if b"CMD-DONE" in self.buf:
                out, _, self.buf = self.buf.partition(b"CMD-DONE")
                return out.decode("utf-8", "replace")
        sys.exit(f"bench: the guest did not finish `{line}` within {timeout} s")

    def close(self):
        os.close(self.fd)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sendense", required=True)
    ap.add_argument("--size", default="2G")
    ap.add_argument("--blocks", type=int, default=512, help="64 KiB blocks the guest writes before the incremental")
    ap.add_argument("--workdir", default="/tmp/sendense-bench-libvirt")
    ap.add_argument("--bench-dir", default=os.environ.get("SENDENSE_BENCH_DIR", os.path.join(HERE, "..", "..", "shared", "bench")))
    ap.add_argument("--kit", default=os.environ.get("SENDENSE_GUEST_KIT", os.path.expanduser("~/.cache/sendense/guest-kit")))
    a = ap.parse_args()
    w = a.workdir
    exe = a.sendense
    os.makedirs(w, exist_ok=True)
    hosts = os.path.join(w, "lab")
    uri = f"qemu+unix:///system?socket={hosts}/libvirt/prod/sock/libvirt-sock"
    virsh = ["virsh", "-q", "-c", uri]
    sh([exe, "lab", "hosts", "start", "--dir", hosts])
    try:
        images = os.path.join(hosts, "libvirt", "prod", "images")
        base = os.path.join(w, f"base-{a.size}.raw")
        if not os.path.exists(base):
            print(f"making the {a.size} workload image ...", file=sys.stderr)
            sh([sys.executable, os.path.join(a.bench_dir, "mkimage.py"), "1", a.size, base])
        vda, vdb = os.path.join(images, "bench-vda.qcow2"), os.path.join(images, "bench-vdb.qcow2")
        for d in (vda, vdb):
            if os.path.exists(d):
                os.remove(d)
        sh(["qemu-img", "create", "-q", "-f", "qcow2", "-o", "compat=1.1", vda, "64M"])
        sh(["qemu-img", "convert", "-q", "-f", "raw", "-O", "qcow2", "-o", "compat=1.1", base, vdb])
        sh(virsh + ["destroy", "bench"], check=False)
        sh(virsh + ["undefine", "bench", "--checkpoints-metadata"], check=False)
        log = os.path.join(images, "bench.console.log")
        xml = os.path.join(w, "bench.xml")
        with open(xml, "w") as f:
            f.write(domain_xml("bench", a.kit, [("vda", vda), ("vdb", vdb)], log))
        sh(virsh + ["define", xml])
        t0 = time.perf_counter()
        sh(virsh + ["start", "bench"])
        wait_for(log, "SENDENSE-GUEST-UP", 120)
        boot = time.perf_counter() - t0
        pty = sh(virsh + ["ttyconsole", "bench"], capture=True).stdout.strip()
        con = Console(pty)
        con.run("true")

        allocated = int(json.loads(sh(["qemu-img", "info", "-U", "--output=json", vdb], capture=True).stdout)["actual-size"])
        out = os.path.join(w, "convert.raw")
        t_conv, _ = timed(["qemu-img", "convert", "-U", "-f", "qcow2", "-O", "raw", vdb, out])
        os.remove(out)

        repo = os.path.join(w, "repo")
        shutil.rmtree(repo, ignore_errors=True)
        sh([exe, "repo", "init", repo])
        t_full, r = timed([exe, "vm", "backup", "--host", uri, "--vm", "bench", "--repo", repo, "--no-progress", "--json"], capture=True)
        full = json.loads(r.stdout.strip().splitlines()[-1])

        n = a.blocks
        stride = max(1, (int(a.size.rstrip("G")) << 30) // (64 << 10) // n) if a.size.endswith("G") else 3
        t_w = time.perf_counter()
        con.run(f"i=0; while [ $i -lt {n} ]; do dd if=/dev/urandom of=/dev/vdb bs=65536 seek=$((i*{stride})) count=1 conv=notrunc 2>/dev/null; i=$((i+1)); done; sync")
        t_write = time.perf_counter() - t_w
        wrote = n * 65536
        t_inc, r = timed([exe, "vm", "backup", "--host", uri, "--vm", "bench", "--repo", repo, "--no-progress", "--json"], capture=True)
        inc = json.loads(r.stdout.strip().splitlines()[-1])
        con.close()

        sh(virsh + ["destroy", "bench"], check=False)
        sh(virsh + ["pool-define-as", "images", "dir", "--target", images], check=False)
        sh(virsh + ["pool-start", "images"], check=False)
        sh(virsh + ["destroy", "bench-restored"], check=False)
        sh(virsh + ["undefine", "bench-restored", "--remove-all-storage"], check=False)
        rlog = os.path.join(images, "bench-restored.console.log")
        if os.path.exists(rlog):
            os.remove(rlog)
        t_r = time.perf_counter()
        sh([exe, "vm", "restore", "--repo", repo, "--vm", "bench", "--to", uri, "--as", "bench-restored", "--power-on", "--no-progress"])
        wait_for(rlog, "SENDENSE-GUEST-UP", 180)
        t_restore_boot = time.perf_counter() - t_r

        print(f"{'step':<28} {'seconds':>8} {'MB/s':>8} {'bytes read':>12}")
        print("-" * 60)
        print(f"{'guest boot (virsh start)':<28} {boot:8.2f}")
        print(f"{'qemu-img convert (ref)':<28} {t_conv:8.2f} {allocated / t_conv / 1e6:8.0f} {allocated:12d}")
        print(f"{'sendense full (running)':<28} {t_full:8.2f} {allocated / t_full / 1e6:8.0f} {full['bytes_read']:12d}")
        print(f"{'guest writes':<28} {t_write:8.2f} {'':>8} {wrote:12d}")
        print(f"{'sendense incremental':<28} {t_inc:8.2f} {'':>8} {inc['bytes_read']:12d}")
        print(f"{'restore to boot line':<28} {t_restore_boot:8.2f}")
        ratios = {
            "full_throughput_vs_qemu_img_convert": round(t_conv / t_full, 2),
            "incremental_read_over_guest_written": round(inc["bytes_read"] / wrote, 3),
            "incremental_s": round(t_inc, 2),
            "restore_to_boot_s": round(t_restore_boot, 2),
            "disk_allocated_bytes": allocated,
        }
        print(json.dumps(ratios))
    finally:
        sh([exe, "lab", "hosts", "stop", "--dir", hosts], check=False)


if __name__ == "__main__":
    main()
