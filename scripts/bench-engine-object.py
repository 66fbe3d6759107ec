#!/usr/bin/env python3
"""Engine benchmark on an object store (run through scripts/bench-engine.sh --repo s3|azure).

The server (moto for S3, Azurite for Azure) is started by bench-engine.sh on
a loopback port and killed when it exits. Per run, fresh buckets/containers:
  full     back up the base image (as src/disk.raw)
  inc      back up the mutated image (Sendense with its changed ranges;
           restic re-reads everything: it has no such input)
  restore  restore the latest snapshot and compare it with the mutated image
Sendense writes an encrypted repository (restic always encrypts). Requests are
counted per bucket in moto's access log (one line per request) and, for
Sendense, also by its own counters (--stats). Stored bytes: the bucket's
object sizes (S3), the growth of Azurite's data directory (Azure). Peak RSS
of every command from wait4. Medians of --runs.
"""
import argparse
import base64
import datetime
import hashlib
import hmac
import importlib.util
import json
import os
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
_spec = importlib.util.spec_from_file_location("bench_engine", os.path.join(HERE, "bench-engine.py"))
be = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(be)

AZ_ACCOUNT = "devstoreaccount1"
AZ_KEY = "Eby8vdM02xNOcqFlqUwJPLlmEtlCDXJ1OUzFT50uSRZ6IFsuFq2UVErCz4I6tq/K1SZFPTOtr/KBHBeksoGMGw=="
ACCESS_KEY, SECRET_KEY = "benchkey", "benchsecret"  # moto without auth takes any key
MIB = 1 << 20


def run_rss(cmd, env=None, cwd=None):
    """Like run, with the peak RSS of the process (wait4's ru_maxrss).

    Dirty pages left by what came before (the bench's own image copies)
    are flushed first, so neither tool is timed while the disk still
    writes the other's or the bench's data."""
    os.sync()
    t = time.perf_counter()
    p = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # Drain the pipes on threads, reap with wait4 for the rusage.
    bufs = {"out": "", "err": ""}

    def drain(name, f):
        bufs[name] = f.read()
    ts = [threading.Thread(target=drain, args=("out", p.stdout)), threading.Thread(target=drain, args=("err", p.stderr))]
    for th in ts:
        th.start()
    _, status, ru = os.wait4(p.pid, 0)
    took = time.perf_counter() - t
    for th in ts:
        th.join()
    p.returncode = os.waitstatus_to_exitcode(status)
    if p.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({p.returncode}): {bufs['err'].strip()[-2000:]}")
    return took, ru.ru_maxrss * 1024, bufs["out"], bufs["err"]


class MotoLog:
    """Requests per bucket from moto's werkzeug access log."""

    def __init__(self, path):
        self.path = path

    def lines(self):
        with open(self.path, errors="replace") as f:
            text = re.sub(r"\x1b\[[0-9;]*m", "", f.read())
        return [l for l in text.splitlines() if '"' in l and " HTTP/1." in l]

    def mark(self):
        return len(self.lines())

    def count(self, since, bucket):
        n = {}
        for l in self.lines()[since:]:
            req = l.split('"')[1]
            parts = req.split(" ")
            if len(parts) < 2:
                continue
            method, path = parts[0], parts[1]
            if path == f"/{bucket}" or path.startswith(f"/{bucket}/") or path.startswith(f"/{bucket}?"):
                n[method] = n.get(method, 0) + 1
        return n


class S3:
    def __init__(self, endpoint, log):
        import boto3  # moto's venv (bench-engine.sh runs this script with its python)
        self.endpoint = endpoint
        self.log = MotoLog(log)
        self.c = boto3.client("s3", endpoint_url=endpoint, region_name="us-east-1",
                              aws_access_key_id=ACCESS_KEY, aws_secret_access_key=SECRET_KEY)

    def make(self, bucket):
        self.c.create_bucket(Bucket=bucket)

    def size(self, bucket):
        total = 0
        for page in self.c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            total += sum(o["Size"] for o in page.get("Contents", []))
        return total

    def drop(self, bucket):
        for page in self.c.get_paginator("list_objects_v2").paginate(Bucket=bucket):
            keys = [{"Key": o["Key"]} for o in page.get("Contents", [])]
            if keys:
                self.c.delete_objects(Bucket=bucket, Delete={"Objects": keys})
        self.c.delete_bucket(Bucket=bucket)

    def spec(self, bucket):
        return {"kind": "s3", "endpoint": self.endpoint, "region": "us-east-1", "bucket": bucket, "prefix": "",
                "access_key_id": ACCESS_KEY, "secret_access_key": SECRET_KEY}


class Azure:
    def __init__(self, endpoint, data_dir):
        self.endpoint = endpoint  # http://127.0.0.1:PORT/devstoreaccount1
        self.data = data_dir
        self.log = None

    def _request(self, method, path, query):
        date = datetime.datetime.now(datetime.timezone.utc).strftime("%a, %d %b %Y %H:%M:%S GMT")
        version = "2021-08-06"
        params = sorted((k.lower(), v) for k, v in (p.split("=", 1) for p in query.split("&") if p))
        ctype = "application/octet-stream"
        # VERB, the eleven standard headers (only Content-Type set), the
        # x-ms-* headers, the resource (account twice: path-style URL).
        standard = ["", "", "", "", ctype, "", "", "", "", "", ""]
        to_sign = "\n".join([method, *standard]) + f"\nx-ms-date:{date}\nx-ms-version:{version}\n/{AZ_ACCOUNT}/{AZ_ACCOUNT}{path}"
        for k, v in params:
            to_sign += f"\n{k}:{v}"
        sig = base64.b64encode(hmac.new(base64.b64decode(AZ_KEY), to_sign.encode(), hashlib.sha256).digest()).decode()
        req = urllib.request.Request(f"{self.endpoint}{path}?{query}", method=method, data=b"" if method == "PUT" else None,
                                     headers={"x-ms-date": date, "x-ms-version": version, "Content-Type": ctype,
                                              "Authorization": f"SharedKey {AZ_ACCOUNT}:{sig}"})
        with urllib.request.urlopen(req) as r:
            return r.status

    def make(self, container):
        self._request("PUT", f"/{container}", "restype=container")

    def size(self, _container):
        return be.du(self.data)

    def drop(self, container):
        self._request("DELETE", f"/{container}", "restype=container")

    def spec(self, container):
        return {"kind": "azure", "account": AZ_ACCOUNT, "container": container, "prefix": "",
                "access_key": AZ_KEY, "sas": None, "endpoint": self.endpoint}


def write_spec(path, spec):
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(spec, f)
    os.chmod(path, 0o600)


def counts(store, since, bucket):
    return store.log.count(since, bucket) if store.log else {}


def run_sendense(exe, store, w, base, mut, ranges, bucket):
    res = {}
    src = os.path.join(w, "src", "disk.raw")
    out = os.path.join(w, "out.raw")
    spec, key = os.path.join(w, "sd-spec.json"), os.path.join(w, "sd-key")
    store.make(bucket)
    write_spec(spec, store.spec(bucket))
    if os.path.exists(key):
        os.remove(key)
    base_size = store.size(bucket)
    be.sh([exe, "repo", "init", "--spec-file", spec, "--encrypt", key])
    repo = ["--spec-file", spec, "--key", key]
    be.put_image(base, src)
    for phase, image, extra in (("full", base, []), ("inc", mut, ["--changed-ranges", ranges])):
        be.put_image(image, src)
        before, mark = store.size(bucket), store.log.mark() if store.log else 0
        t, rss, _, err = run_rss([exe, "image", "backup", *repo, "--id", "vm", src, "--no-progress", "--stats", *extra])
        stats = json.loads(err.strip().splitlines()[-1])
        res[phase] = t
        res[f"rss_{phase}"] = rss
        res[f"req_{phase}"] = counts(store, mark, bucket)  # before the size's own listing
        res[f"added_{phase}"] = store.size(bucket) - before
        res[f"own_req_{phase}"] = stats.get("object_store_requests", {})
    if os.path.exists(out):
        os.remove(out)
    mark = store.log.mark() if store.log else 0
    t, rss, _, err = run_rss([exe, "image", "restore", *repo, "--id", "vm", out, "--no-progress", "--stats"])
    stats = json.loads(err.strip().splitlines()[-2])
    res["restore"], res["rss_restore"] = t, rss
    res["req_restore"] = counts(store, mark, bucket)
    res["own_req_restore"] = stats.get("object_store_requests", {})
    res["restore_ok"] = be.same(out, mut)
    os.remove(out)
    res["stored"] = store.size(bucket) - base_size
    return res


def run_restic(store, w, base, mut, bucket):
    res = {}
    store.make(bucket)
    if isinstance(store, S3):
        repo = f"s3:{store.endpoint}/{bucket}"
        env = dict(os.environ, AWS_ACCESS_KEY_ID=ACCESS_KEY, AWS_SECRET_ACCESS_KEY=SECRET_KEY)
    else:
        sys.exit("bench: restic 0.14 cannot reach Azurite (its azure backend wants https://ACCOUNT.blob.SUFFIX)")
    env.update(RESTIC_PASSWORD="bench", RESTIC_REPOSITORY=repo, RESTIC_CACHE_DIR=os.path.join(w, "restic-cache"))
    shutil.rmtree(env["RESTIC_CACHE_DIR"], ignore_errors=True)
    base_size = store.size(bucket)
    be.sh(["restic", "init"], env=env)
    src_dir = os.path.join(w, "src")
    for phase, image in (("full", base), ("inc", mut)):
        be.put_image(image, os.path.join(src_dir, "disk.raw"))
        before, mark = store.size(bucket), store.log.mark() if store.log else 0
        t, rss, _, _ = run_rss(["restic", "backup", "--quiet", "disk.raw"], env=env, cwd=src_dir)
        res[phase], res[f"rss_{phase}"] = t, rss
        res[f"req_{phase}"] = counts(store, mark, bucket)
        res[f"added_{phase}"] = store.size(bucket) - before
    target = os.path.join(w, "restic-out")
    shutil.rmtree(target, ignore_errors=True)
    mark = store.log.mark() if store.log else 0
    t, rss, _, _ = run_rss(["restic", "restore", "--quiet", "latest", "--target", target], env=env)
    res["restore"], res["rss_restore"] = t, rss
    res["req_restore"] = counts(store, mark, bucket)
    res["restore_ok"] = be.same(os.path.join(target, "disk.raw"), mut)
    shutil.rmtree(target)
    res["stored"] = store.size(bucket) - base_size
    return res


def fmt_req(n):
    if not n:
        return "-"
    return f"{sum(n.values())} (" + " ".join(f"{k.upper()} {v}" for k, v in sorted(n.items()) if v) + ")"


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sendense", required=True)
    ap.add_argument("--repo", choices=("s3", "azure"), required=True)
    ap.add_argument("--endpoint", required=True)
    ap.add_argument("--server-log", help="moto's access log (S3)")
    ap.add_argument("--server-data", help="Azurite's data directory (Azure)")
    ap.add_argument("--size", default="2G")
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--workdir", default="/var/tmp/sendense-bench")
    ap.add_argument("--bench-dir", default=os.environ.get("SENDENSE_BENCH_DIR", os.path.join(HERE, "..", "..", "shared", "bench")))
    ap.add_argument("--tools", help="default: sendense,restic on s3; sendense on azure (restic 0.14's azure "
                                    "backend builds https://ACCOUNT.blob.SUFFIX URLs: it cannot reach Azurite)")
    a = ap.parse_args()
    a.tools = a.tools or ("sendense,restic" if a.repo == "s3" else "sendense")
    w = a.workdir
    os.makedirs(os.path.join(w, "src"), exist_ok=True)
    base, mut, ranges = (os.path.join(w, f) for f in (f"base-{a.size}.raw", f"mut-{a.size}.raw", f"changed-{a.size}.json"))
    if not os.path.exists(mut):
        print(f"making the {a.size} workload in {w} ...", file=sys.stderr)
        be.sh([sys.executable, os.path.join(a.bench_dir, "mkimage.py"), "1", a.size, base])
        be.sh(["cp", "--sparse=always", base, mut])
        be.sh([sys.executable, os.path.join(a.bench_dir, "mutate.py"), mut, "2", "42", ranges])
    changed = sum(l for _, l in json.load(open(ranges)))
    size = os.path.getsize(base)
    be.warm(base, mut)
    store = S3(a.endpoint, a.server_log) if a.repo == "s3" else Azure(a.endpoint, a.server_data)
    tools = a.tools.split(",")
    acc = {t: [] for t in tools}
    for r in range(a.runs):
        print(f"run {r + 1}/{a.runs} ...", file=sys.stderr)
        for t in tools:
            bucket = f"bench-{t}-{r}-{os.getpid()}"
            try:
                res = run_sendense(a.sendense, store, w, base, mut, ranges, bucket) if t == "sendense" \
                    else run_restic(store, w, base, mut, bucket)
                acc[t].append(res)
            finally:
                if a.repo == "s3":
                    try:
                        store.drop(bucket)
                    except Exception as e:  # the numbers stand; say it
                        print(f"bench: dropping {bucket}: {e}", file=sys.stderr)

    def med(t, k):
        return statistics.median(x[k] for x in acc[t])

    def last(t, k):
        return acc[t][-1].get(k)

    print()
    print(f"object store: {a.repo} at {a.endpoint} ({'moto' if a.repo == 's3' else 'Azurite'}, loopback); "
          f"workload {size / MIB:.0f} MiB image, {changed} bytes changed ({changed / size * 100:.2f} %); "
          f"medians of {a.runs} run(s), {os.cpu_count()} cores")
    hdr = (f"{'tool':<9} {'full s':>7} {'MB/s':>5} {'inc s':>6} {'restore s':>9} {'MB/s':>5} {'inc added MB':>12} "
           f"{'x changed':>9} {'stored MB':>9} {'restore ok':>10} {'RSS full/inc/restore MiB':>24}")
    print(hdr)
    print("-" * len(hdr))
    for t in tools:
        full, inc, rest = med(t, "full"), med(t, "inc"), med(t, "restore")
        added, stored = med(t, "added_inc"), med(t, "stored")
        rss = "/".join(f"{max(x[f'rss_{p}'] for x in acc[t]) / MIB:.0f}" for p in ("full", "inc", "restore"))
        print(f"{t:<9} {full:7.2f} {size / full / 1e6:5.0f} {inc:6.2f} {rest:9.2f} {size / rest / 1e6:5.0f} "
              f"{added / 1e6:12.1f} {added / changed:9.2f} {stored / 1e6:9.0f} "
              f"{str(all(x['restore_ok'] for x in acc[t])):>10} {rss:>24}")
    print()
    src = "moto's access log, per bucket" if a.repo == "s3" else "Sendense's own counters (Azurite logs no requests)"
    print(f"requests per phase (last run; {src}):")
    for t in tools:
        for p in ("full", "inc", "restore"):
            n = last(t, f"req_{p}") or (last(t, f"own_req_{p}") if t == "sendense" else None)
            own = last(t, f"own_req_{p}") if t == "sendense" and a.repo == "s3" else None
            extra = f"   [Sendense counted {fmt_req(own)}]" if own else ""
            print(f"  {t:<9} {p:<8} {fmt_req(n)}{extra}")
    ratios = {}
    if "sendense" in tools and "restic" in tools:
        ratios = {
            "full_speedup_vs_restic": round(med("restic", "full") / med("sendense", "full"), 2),
            "inc_speedup_vs_restic": round(med("restic", "inc") / med("sendense", "inc"), 2),
            "restore_speedup_vs_restic": round(med("restic", "restore") / med("sendense", "restore"), 2),
            "restic_added_over_changed": round(med("restic", "added_inc") / changed, 2),
        }
    if "sendense" in tools:
        ratios["sendense_added_over_changed"] = round(med("sendense", "added_inc") / changed, 3)
        ratios["sendense_restore_mib_s"] = round(size / med("sendense", "restore") / MIB)
    print()
    print(f"targets: full >= 2x restic, restore >= 1.5x restic, incremental stores <= 2x the changed bytes")
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
