#!/usr/bin/env python3
"""bench/daemon_soak.py: the tick loop of bench/daemon_soak.sh (see bench/README.md, Daemon soak).

Watches a running `cascade run` through its /status endpoint. Each time a scheduled run
completes: checks the queues are empty (`cascade queues --json`), compares the warehouse with
the simulator's truth (bench/soak_compare.py), checks no scheduled run started meanwhile (the
comparison saw a quiescent warehouse), then advances the simulator one tick so the next
scheduled run has new data. Every SAMPLE seconds it records the daemon's RSS and open file
descriptors from /proc, and the sizes of the database file and its WAL. Stops after the run of the last tick due within DURATION has been
compared, or at the hard deadline. Writes what it saw as JSON (--out); the shell script adds
the SIGTERM figures and the verdict. Standard library only.
"""
import argparse
import json
import os
import subprocess
import sys
import time
import urllib.error
import urllib.request
from datetime import datetime, timezone

HERE = os.path.dirname(os.path.abspath(__file__))


def log(msg):
    print(f"daemon_soak: {msg}", file=sys.stderr, flush=True)


def http(method, url, timeout=10.0):
    req = urllib.request.Request(url, method=method, data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=timeout) as r:
        return r.status, r.read()


def parse_time(s):
    return datetime.strptime(s, "%Y-%m-%dT%H:%M:%S.%fZ").replace(tzinfo=timezone.utc).timestamp()


def proc_sample(pid):
    """(RSS in MB, open file descriptors) of pid, or None when it is gone."""
    try:
        rss_kb = None
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    rss_kb = int(line.split()[1])
                    break
        fds = len(os.listdir(f"/proc/{pid}/fd"))
    except (FileNotFoundError, ProcessLookupError):
        return None
    return (rss_kb or 0) / 1024.0, fds


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--status", required=True, help="the daemon's base URL, http://127.0.0.1:PORT")
    ap.add_argument("--sim", required=True, help="the simulator's base URL")
    ap.add_argument("--db", required=True, help="the daemon's SQLite file")
    ap.add_argument("--pipeline", required=True)
    ap.add_argument("--cascade", required=True, help="the cascade binary (for `queues --json`)")
    ap.add_argument("--pid", required=True, type=int, help="the daemon's pid")
    ap.add_argument("--duration", required=True, type=float, help="seconds of ticks to watch")
    ap.add_argument("--period", type=float, default=60.0, help="the schedule's period, seconds")
    ap.add_argument("--margin", type=float, default=300.0,
                    help="seconds allowed past --duration for the last tick's run and comparison")
    ap.add_argument("--sample", type=float, default=10.0, help="seconds between RSS/fd samples")
    ap.add_argument("--work", required=True, help="directory for per-tick files")
    ap.add_argument("--out", required=True)
    a = ap.parse_args()

    t0 = time.time()
    hard_end = t0 + a.duration + a.margin
    expected = int(a.duration // a.period) + 1  # fires at 0, P, 2P, ... <= duration
    seen = {}          # run_id -> run entry from /status
    scheduled = []     # scheduled runs in the order they completed
    idle_runs = []     # queue drains between ticks (retries coming due)
    ticks = []         # one record per compared tick
    samples = []       # [seconds since start, RSS MB, fds, database MB, WAL MB]
    problems = []
    anchor = None
    last_sample = 0.0
    status = None
    status_errors = 0

    def get_status():
        nonlocal status_errors
        try:
            _, body = http("GET", a.status + "/status", timeout=10)
            return json.loads(body)
        except (OSError, ValueError) as e:
            status_errors += 1
            log(f"/status failed: {e}")
            return None

    def schedule_of(st):
        s = [x for x in st.get("schedules", []) if x.get("stage") == "branches"]
        return s[0] if s else {}

    def sample(now, force=False):
        nonlocal last_sample
        if not force and now - last_sample < a.sample:
            return True
        last_sample = now
        s = proc_sample(a.pid)
        if s is None:
            return False
        sizes = []
        for path in (a.db, a.db + "-wal"):
            try:
                sizes.append(round(os.path.getsize(path) / 1048576.0, 2))
            except OSError:
                sizes.append(0.0)
        samples.append([round(now - t0, 1), round(s[0], 2), s[1]] + sizes)
        return True

    def compare(run, slot):
        """The warehouse against the truth after the run of `slot`; then one tick forward."""
        before = get_status()
        qfile = os.path.join(a.work, f"queues-{slot}.json")
        with open(qfile, "w") as q:
            subprocess.run([a.cascade, "queues", a.pipeline, "--json"], stdout=q, check=True,
                           timeout=60)
        c0 = time.time()
        out = subprocess.run([sys.executable, os.path.join(HERE, "soak_compare.py"), a.db, a.sim,
                              "--queues", qfile, "--timeout", "60"],
                             capture_output=True, text=True, timeout=120)
        compare_seconds = time.time() - c0
        try:
            res = json.loads(out.stdout)
        except ValueError:
            res = {"difference": None, "ok": False, "error": out.stderr[-2000:]}
        after = get_status()
        quiescent = (before is not None and after is not None
                     and schedule_of(before).get("fired") == schedule_of(after).get("fired"))
        # Advance only after the comparison, and before the next tick fires.
        advanced = False
        for _ in range(100):
            try:
                http("POST", a.sim + "/admin/advance?ticks=1", timeout=60)
                advanced = True
                break
            except urllib.error.HTTPError as e:
                if e.code != 503:
                    raise
                time.sleep(0.2)
        sch = schedule_of(after or before or {})
        started = parse_time(run["started"])
        rec = {
            "tick": slot,
            "run_id": run["run_id"],
            "started": run["started"],
            "late_seconds": round(started - (anchor + slot * a.period), 3),
            "seconds": run["seconds"],
            "outcome": run["outcome"],
            "records": run["records"],
            "new": run["new"], "changed": run["changed"], "gone": run["gone"],
            "dead_lettered": run["dead_lettered"],
            "sim_tick": res.get("tick"),
            "difference": res.get("difference"),
            "compare_ok": bool(res.get("ok")),
            "queues_drained": res.get("queues_drained"),
            "integrity_check": res.get("integrity_check"),
            "rows": {t: v["actual"] for t, v in res.get("tables", {}).items()},
            "compare_seconds": round(compare_seconds, 2),
            "quiescent": quiescent,
            "advanced": advanced,
            "advanced_at_seconds_after_fire": round(time.time() - (anchor + slot * a.period), 2),
            "fired": sch.get("fired"), "coalesced": sch.get("coalesced"),
            "missed": sch.get("missed"),
        }
        if not res.get("ok"):
            rec["compare_detail"] = {t: v for t, v in res.get("tables", {}).items()
                                     if v.get("difference") or v.get("duplicate_keys")}
            if "error" in res:
                rec["compare_detail"]["error"] = res["error"]
            problems.append(f"tick {slot}: warehouse differs from the truth: {out.stderr.strip()}")
        if rec["sim_tick"] != slot:
            problems.append(f"tick {slot}: the simulator was at tick {rec['sim_tick']}")
        if not quiescent:
            problems.append(f"tick {slot}: a scheduled run started during the comparison")
        ticks.append(rec)
        log(f"tick {slot}: run {run['run_id']} {run['outcome']} in {run['seconds']:.2f}s, "
            f"{run['records']} records (+{run['new']} ~{run['changed']} -{run['gone']}), "
            f"sim tick {rec['sim_tick']}, difference {rec['difference']}, "
            f"fired {rec['fired']} coalesced {rec['coalesced']} missed {rec['missed']}")

    done = False
    while not done and time.time() < hard_end:
        now = time.time()
        if not sample(now):
            problems.append(f"the daemon (pid {a.pid}) exited during the soak")
            break
        status = get_status()
        if status is not None:
            for run in status.get("runs", []):
                if run["run_id"] in seen:
                    continue
                seen[run["run_id"]] = run
                if not run.get("roots"):
                    idle_runs.append(run)
                    continue
                started = parse_time(run["started"])
                if anchor is None:
                    anchor = started
                slot = int(round((started - anchor) / a.period))
                run = dict(run, slot=slot)
                scheduled.append(run)
                if run["outcome"] != "completed":
                    problems.append(f"tick {slot}: run {run['run_id']} ended {run['outcome']}")
                if slot < expected:
                    compare(run, slot)
                if slot >= expected - 1:
                    done = True
        if not done:
            time.sleep(1.0)
    if not done:
        problems.append(f"out of time: the run of tick {expected - 1} was not seen by the deadline")
    final_status = get_status() or status or {}
    sample(time.time(), force=True)

    by_slot = {}
    for r in scheduled:
        by_slot.setdefault(r["slot"], []).append(r["run_id"])
    doubled = {str(k): v for k, v in by_slot.items() if len(v) > 1}
    missed_slots = [k for k in range(expected) if k not in by_slot]
    sch = schedule_of(final_status)
    result = {
        "period_seconds": a.period,
        "watched_seconds": round(time.time() - t0, 1),
        "ticks_expected": expected,
        "ticks_fired": len(scheduled),
        "ticks_compared": len(ticks),
        "doubled": doubled,
        "missed": missed_slots,
        "schedule": {k: sch.get(k) for k in ("fired", "coalesced", "missed", "last_fire",
                                             "next_fire")},
        "idle_runs": len(idle_runs),
        "status_errors": status_errors,
        "ticks": ticks,
        "samples": samples,
        "problems": problems,
    }
    with open(a.out, "w") as f:
        json.dump(result, f, indent=1)
    return 0


if __name__ == "__main__":
    sys.exit(main())
