#!/usr/bin/env python3
"""Engine benchmark driver (run through scripts/bench-engine.sh).

One workload, three tools. For every run (fresh repositories each time):
  full        back up base image (as src/disk.raw)
  inc-ranges  back up the mutated image with its changed ranges (Sendense only:
              restic and borg have no such input, they re-read everything)
  inc-full    back up the mutated image re-reading everything
  restore     restore the latest snapshot (the mutated image) and compare
  verify      re-read and re-hash everything stored (restic check --read-data,
              borg check --verify-data)
  gc          drop the full backup (keep the last), then give its space back
              (restic prune, borg compact); timed is the space-giving step
With --inc-only, only full and the incrementals (the ratio the issue asks
for, in a fraction of the time). The machine's load average is printed
before and after the timed runs (a shared machine skews every number).
Bytes added by the incremental = repository growth. Medians over --runs.
"""
import argparse
import json
import re
import os
import shutil
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def sh(cmd, env=None, cwd=None, capture=False):
    r = subprocess.run(cmd, env=env, cwd=cwd, stdout=subprocess.PIPE if capture else subprocess.DEVNULL,
                       stderr=subprocess.PIPE, text=True)
    if r.returncode != 0:
        sys.exit(f"bench: {' '.join(cmd)} failed ({r.returncode}): {r.stderr.strip()[-2000:]}")
    return r


def timed(cmd, **kw):
    # Dirty pages of what came before (image copies, the other tool's run)
    # are flushed first: neither tool is timed while the disk catches up.
    os.sync()
    t = time.perf_counter()
    r = sh(cmd, **kw)
    return time.perf_counter() - t, r


def du(path):
    total = 0
    for dp, _, files in os.walk(path):
        for f in files:
            try:
                total += os.lstat(os.path.join(dp, f)).st_size
            except FileNotFoundError:
                pass
    return total


def allocated(path):
    return os.stat(path).st_blocks * 512


def same(a, b):
    r = subprocess.run(["cmp", "-s", a, b])
    return r.returncode == 0


def warm(*paths):
    for p in paths:
        with open(p, "rb") as f:
            while f.read(8 << 20):
                pass


def put_image(src, dst):
    if os.path.exists(dst):
        os.remove(dst)
    sh(["cp", "--sparse=always", src, dst])
    warm(dst)


def run_sendense(exe, w, base, mut, ranges, tag, inc_only=False):
    res = {}
    src = os.path.join(w, "src", "disk.raw")
    out = os.path.join(w, "out.raw")
    for variant in ("ranges", "full"):
        repo = os.path.join(w, f"sd-repo-{variant}")
        shutil.rmtree(repo, ignore_errors=True)
        sh([exe, "repo", "init", repo])
        put_image(base, src)
        t, r = timed([exe, "image", "backup", "--repo", repo, "--id", "vm", src, "--no-progress", "--stats"], capture=True)
        stats = json.loads(r.stderr.strip().splitlines()[-1])
        res.setdefault("full", []).append(t)
        res.setdefault("rss_full", []).append(stats["peak_rss_bytes"])
        size_full = du(repo)
        res.setdefault("repo_full", []).append(size_full)
        put_image(mut, src)
        args = [exe, "image", "backup", "--repo", repo, "--id", "vm", src, "--no-progress", "--stats"]
        if variant == "ranges":
            args += ["--changed-ranges", ranges]
        t, r = timed(args, capture=True)
        res.setdefault("inc_" + variant, []).append(t)
        res.setdefault("added_" + variant, []).append(du(repo) - size_full)
        res.setdefault("repo_after_inc", []).append(du(repo))
        if variant == "ranges" and not inc_only:
            if os.path.exists(out):
                os.remove(out)
            t, r = timed([exe, "image", "restore", "--repo", repo, "--id", "vm", out, "--no-progress", "--stats"], capture=True)
            res.setdefault("restore", []).append(t)
            res.setdefault("rss_restore", []).append(json.loads(r.stderr.strip().splitlines()[-2])["peak_rss_bytes"])
            res["restore_ok"] = same(out, mut)
            res["restore_allocated"] = allocated(out)
            os.remove(out)
            t, _ = timed([exe, "repo", "verify", repo])
            res.setdefault("verify", []).append(t)
            sh([exe, "repo", "prune", repo, "--keep-last", "1"])
            before = du(repo)
            t, r = timed([exe, "repo", "gc", repo, "--grace-seconds", "0"], capture=True)
            res.setdefault("gc", []).append(t)
            res.setdefault("reclaimed", []).append(before - du(repo))
            res.setdefault("repo_after_gc", []).append(du(repo))
            left = re.search(r"(\d+) unreferenced bytes inside used packs", r.stdout)
            res.setdefault("unreferenced_left", []).append(int(left.group(1)) if left else 0)
    return res


def run_restic(w, base, mut, inc_only=False):
    res = {}
    repo = os.path.join(w, "restic-repo")
    shutil.rmtree(repo, ignore_errors=True)
    env = dict(os.environ, RESTIC_PASSWORD="bench", RESTIC_REPOSITORY=repo, RESTIC_CACHE_DIR=os.path.join(w, "restic-cache"))
    src_dir = os.path.join(w, "src")
    sh(["restic", "init"], env=env)
    put_image(base, os.path.join(src_dir, "disk.raw"))
    t, _ = timed(["restic", "backup", "--quiet", "disk.raw"], env=env, cwd=src_dir)
    res["full"] = [t]
    size_full = du(repo)
    res["repo_full"] = [size_full]
    put_image(mut, os.path.join(src_dir, "disk.raw"))
    t, _ = timed(["restic", "backup", "--quiet", "disk.raw"], env=env, cwd=src_dir)
    res["inc_full"] = [t]
    res["added_full"] = [du(repo) - size_full]
    res["repo_after_inc"] = [du(repo)]
    if inc_only:
        return res
    target = os.path.join(w, "restic-out")
    shutil.rmtree(target, ignore_errors=True)
    t, _ = timed(["restic", "restore", "--quiet", "latest", "--target", target], env=env)
    res["restore"] = [t]
    res["restore_ok"] = same(os.path.join(target, "disk.raw"), mut)
    res["restore_allocated"] = allocated(os.path.join(target, "disk.raw"))
    shutil.rmtree(target)
    t, _ = timed(["restic", "check", "--read-data"], env=env)
    res["verify"] = [t]
    sh(["restic", "forget", "--keep-last", "1"], env=env)
    before = du(repo)
    t, _ = timed(["restic", "prune"], env=env)
    res["gc"] = [t]
    res["reclaimed"] = [before - du(repo)]
    res["repo_after_gc"] = [du(repo)]
    return res


def run_borg(w, base, mut, inc_only=False):
    res = {}
    repo = os.path.join(w, "borg-repo")
    shutil.rmtree(repo, ignore_errors=True)
    env = dict(os.environ, BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK="yes", BORG_BASE_DIR=os.path.join(w, "borg-base"))
    src_dir = os.path.join(w, "src")
    sh(["borg", "init", "--encryption=none", repo], env=env)
    put_image(base, os.path.join(src_dir, "disk.raw"))
    t, _ = timed(["borg", "create", f"{repo}::full", "disk.raw"], env=env, cwd=src_dir)
    res["full"] = [t]
    size_full = du(repo)
    res["repo_full"] = [size_full]
    put_image(mut, os.path.join(src_dir, "disk.raw"))
    t, _ = timed(["borg", "create", f"{repo}::inc", "disk.raw"], env=env, cwd=src_dir)
    res["inc_full"] = [t]
    res["added_full"] = [du(repo) - size_full]
    res["repo_after_inc"] = [du(repo)]
    if inc_only:
        return res
    target = os.path.join(w, "borg-out")
    shutil.rmtree(target, ignore_errors=True)
    os.makedirs(target)
    t, _ = timed(["borg", "extract", "--sparse", f"{repo}::inc"], env=env, cwd=target)
    res["restore"] = [t]
    res["restore_ok"] = same(os.path.join(target, "disk.raw"), mut)
    res["restore_allocated"] = allocated(os.path.join(target, "disk.raw"))
    shutil.rmtree(target)
    t, _ = timed(["borg", "check", "--verify-data", repo], env=env)
    res["verify"] = [t]
    sh(["borg", "delete", f"{repo}::full"], env=env)
    before = du(repo)
    t, _ = timed(["borg", "compact", repo], env=env)
    res["gc"] = [t]
    res["reclaimed"] = [before - du(repo)]
    res["repo_after_gc"] = [du(repo)]
    return res


def merge(acc, res):
    for k, v in res.items():
        if isinstance(v, list):
            acc.setdefault(k, []).extend(v)
        else:
            acc[k] = v if k not in acc else (acc[k] and v) if isinstance(v, bool) else v


def med(acc, k):
    v = acc.get(k)
    return statistics.median(v) if v else None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sendense", required=True)
    ap.add_argument("--size", default="2G")
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--workdir", default="/var/tmp/sendense-bench")
    ap.add_argument("--bench-dir", default=os.environ.get("SENDENSE_BENCH_DIR", os.path.join(HERE, "..", "..", "shared", "bench")))
    ap.add_argument("--tools", default="sendense,restic,borg")
    ap.add_argument("--changed", "--change", default="2", help="percent of the image the mutation rewrites (64 KiB scattered writes)")
    ap.add_argument("--write", default="64K", help="size of each scattered write: mutate.py writes 64K blocks only")
    ap.add_argument("--inc-only", action="store_true", help="time full and incremental backups only (no restore, verify, gc)")
    ap.add_argument("--with-8g", action="store_true", help="also measure Sendense peak RSS on an 8 GiB image")
    ap.add_argument("--repo", default="local", choices=("local",), help="s3|azure: bench-engine-object.py")
    a = ap.parse_args()
    if a.write.upper() not in ("64K", "64KIB", str(64 << 10)):
        ap.error(f"--write {a.write}: the mutation (mutate.py) writes 64K blocks only")
    w = a.workdir
    os.makedirs(os.path.join(w, "src"), exist_ok=True)
    # The 2 % workload keeps its old file names.
    pct = "" if a.changed == "2" else f"-{a.changed}pct"
    base, mut, ranges = (os.path.join(w, f) for f in (f"base-{a.size}.raw", f"mut-{a.size}{pct}.raw", f"changed-{a.size}{pct}.json"))
    if not os.path.exists(mut):
        print(f"making the {a.size} workload in {w} ...", file=sys.stderr)
        if not os.path.exists(base):
            sh([sys.executable, os.path.join(a.bench_dir, "mkimage.py"), "1", a.size, base])
        sh(["cp", "--sparse=always", base, mut])
        sh([sys.executable, os.path.join(a.bench_dir, "mutate.py"), mut, a.changed, "42", ranges])
    changed = sum(l for _, l in json.load(open(ranges)))
    size = os.path.getsize(base)
    warm(base, mut)
    limits = json.loads(sh([a.sendense, "image", "limits", base], capture=True).stdout)
    tools = a.tools.split(",")
    acc = {t: {} for t in tools}
    load_before = os.getloadavg()
    for run in range(a.runs):
        print(f"run {run + 1}/{a.runs} ...", file=sys.stderr)
        if "sendense" in tools:
            merge(acc["sendense"], run_sendense(a.sendense, w, base, mut, ranges, run, a.inc_only))
        if "restic" in tools:
            merge(acc["restic"], run_restic(w, base, mut, a.inc_only))
        if "borg" in tools:
            merge(acc["borg"], run_borg(w, base, mut, a.inc_only))
    load_after = os.getloadavg()

    # The repositories of the last run are not needed any more: free their
    # space before the 8 GiB measurement (a shared disk may be tight).
    for d in ("sd-repo-ranges", "sd-repo-full", "restic-repo", "restic-cache", "borg-repo", "borg-base", "src"):
        shutil.rmtree(os.path.join(w, d), ignore_errors=True)

    mib = 1 << 20
    print()
    print(f"workload: {size / mib:.0f} MiB image, {changed} bytes changed ({changed / size * 100:.2f} %), "
          f"{len(json.load(open(ranges)))} ranges; medians of {a.runs} runs, warm page cache, {os.cpu_count()} cores")
    print(f"load average (1, 5, 15 min): before {' '.join(f'{x:.2f}' for x in load_before)}, "
          f"after {' '.join(f'{x:.2f}' for x in load_after)}")
    print(f"limits: read {limits['read_mb_s']:.0f} MB/s, BLAKE3 {limits['blake3_mb_s']:.0f} MB/s/thread, "
          f"zstd -1 {limits['zstd1_mb_s']:.0f} MB/s/thread (ratio {limits['zstd1_ratio']:.2f} on non-zero chunks)")
    hdr = f"{'tool':<9} {'full s':>7} {'MB/s':>6} {'inc+ranges s':>12} {'inc (re-read) s':>15} {'restore s':>9} " \
          f"{'added MB':>9} {'x changed':>9} {'repo MB':>8} {'restore ok':>10} {'sparse MB':>9}"
    print(hdr)
    print("-" * len(hdr))
    rows = {}
    for t in tools:
        r = acc[t]
        full, incr, incf, rest = med(r, "full"), med(r, "inc_ranges"), med(r, "inc_full"), med(r, "restore")
        added = med(r, "added_ranges") if t == "sendense" else med(r, "added_full")
        repo = med(r, "repo_full")
        rows[t] = dict(full=full, inc_ranges=incr, inc_full=incf, restore=rest, added=added, repo=repo)
        f = lambda x, fmt: (fmt % x) if x is not None else "-"
        print(f"{t:<9} {f(full, '%7.2f')} {f(size / full / 1e6 if full else None, '%6.0f')} {f(incr, '%12.2f')} "
              f"{f(incf, '%15.2f')} {f(rest, '%9.2f')} {f(added / 1e6 if added is not None else None, '%9.1f')} "
              f"{f(added / changed if added is not None else None, '%9.2f')} {f(repo / 1e6 if repo else None, '%8.0f')} "
              f"{str(r.get('restore_ok', '-')):>10} {f(r['restore_allocated'] / 1e6 if 'restore_allocated' in r else None, '%9.0f')}")
    print()
    hdr2 = f"{'tool':<9} {'verify s':>9} {'verify MB/s':>11} {'gc s':>7} {'reclaimed MB':>12} {'repo after MB':>13}"
    print(hdr2)
    print("-" * len(hdr2))
    for t in tools:
        r = acc[t]
        v, g, rec = med(r, "verify"), med(r, "gc"), med(r, "reclaimed")
        rows[t].update(verify=v, gc=g)
        f = lambda x, fmt: (fmt % x) if x is not None else "-"
        print(f"{t:<9} {f(v, '%9.2f')} {f(med(r, 'repo_after_inc') / v / 1e6 if v else None, '%11.0f')} {f(g, '%7.2f')} "
              f"{f(rec / 1e6 if rec is not None else None, '%12.1f')} "
              f"{f(med(r, 'repo_after_gc') / 1e6 if med(r, 'repo_after_gc') is not None else None, '%13.0f')}")
    if "sendense" in tools:
        s = acc["sendense"]
        line = f"sendense: incremental without ranges added {med(s, 'added_full') / 1e6:.1f} MB; peak RSS full backup {max(s['rss_full']) / mib:.0f} MiB"
        if "rss_restore" in s:
            line += (f", restore {max(s['rss_restore']) / mib:.0f} MiB; "
                     f"GC left {med(s, 'unreferenced_left') / 1e6:.1f} MB unreferenced in packs under the repack threshold")
        print(line)
        runs = lambda xs: " ".join(f"{x:.3f}" for x in xs)
        print(f"sendense incremental with changed ranges, every run (s): {runs(s['inc_ranges'])}")
        for other in ("restic", "borg"):
            if other in acc and acc[other].get("inc_full"):
                o = acc[other]["inc_full"]
                print(f"{other} incremental, every run (s): {runs(o)}; median ratio {statistics.median(o) / med(s, 'inc_ranges'):.1f}x")
    if a.with_8g:
        big = os.path.join(w, "base-8G.raw")
        if not os.path.exists(big):
            print("making the 8 GiB image ...", file=sys.stderr)
            sh([sys.executable, os.path.join(a.bench_dir, "mkimage.py"), "2", "8G", big])
        repo = os.path.join(w, "sd-repo-8g")
        out = os.path.join(w, "out-8g.raw")
        shutil.rmtree(repo, ignore_errors=True)
        try:
            sh([a.sendense, "repo", "init", repo])
            t, r = timed([a.sendense, "image", "backup", "--repo", repo, "--id", "big", big, "--no-progress", "--stats"], capture=True)
            rss8 = json.loads(r.stderr.strip().splitlines()[-1])["peak_rss_bytes"]
            t2, r2 = timed([a.sendense, "image", "restore", "--repo", repo, "--id", "big", out, "--no-progress", "--stats"], capture=True)
            rss8r = json.loads(r2.stderr.strip().splitlines()[-2])["peak_rss_bytes"]
            print(f"sendense 8 GiB: full backup {t:.2f} s, peak RSS {rss8 / mib:.0f} MiB; restore {t2:.2f} s, peak RSS {rss8r / mib:.0f} MiB")
        except SystemExit as e:
            # Still print the ratios below: the 2 GiB results stand on their own.
            print(f"sendense 8 GiB: not measured: {e}")
        finally:
            if os.path.exists(out):
                os.remove(out)
            shutil.rmtree(repo, ignore_errors=True)
    ratios = {}
    if "sendense" in tools:
        s = rows["sendense"]
        for other in ("restic", "borg"):
            if other in rows:
                o = rows[other]
                ratios[f"full_speedup_vs_{other}"] = round(o["full"] / s["full"], 2)
                ratios[f"inc_ranges_speedup_vs_{other}_inc"] = round(o["inc_full"] / s["inc_ranges"], 2)
                ratios[f"inc_reread_speedup_vs_{other}_inc"] = round(o["inc_full"] / s["inc_full"], 2)
                if o.get("restore") and s.get("restore"):
                    ratios[f"restore_speedup_vs_{other}"] = round(o["restore"] / s["restore"], 2)
                ratios[f"repo_size_ratio_vs_{other}"] = round(s["repo"] / o["repo"], 3)
                if o.get("verify") and s.get("verify"):
                    ratios[f"verify_speedup_vs_{other}"] = round(o["verify"] / s["verify"], 2)
                if o.get("gc") and s.get("gc"):
                    ratios[f"gc_speedup_vs_{other}"] = round(o["gc"] / s["gc"], 2)
                ratios[f"{other}_added_over_changed"] = round(o["added"] / changed, 2)
        ratios["sendense_added_over_changed"] = round(s["added"] / changed, 3)
        ratios["sendense_full_mb_s"] = round(size / s["full"] / 1e6)
        ratios["read_limit_mb_s"] = round(limits["read_mb_s"])
        ratios["blake3_mb_s"] = round(limits["blake3_mb_s"])
        ratios["zstd1_mb_s"] = round(limits["zstd1_mb_s"])
    print(json.dumps(ratios))


if __name__ == "__main__":
    main()
