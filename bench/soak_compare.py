#!/usr/bin/env python3
"""bench/soak_compare.py: the soak's verdict. Compares cascade's SQLite warehouse with the
simulator's ground truth (GET /admin/truth) and checks the database is sound.

The rule is the integration tests' (tests/integration/sync_test.cpp):
  - branches and salespersons: exact (no row missing, none extra, every column equal);
  - sales: every sale the cascade can reach (its employee is a current salesperson) is present
    with equal columns and the employee's current branch_id; extra sales are allowed only for
    employees who are no longer current salespersons (their sales happened, the API just stops
    serving them).
Also: PRAGMA integrity_check is "ok", no key appears twice in a warehouse table, and (with
--queues, the output of `cascade queues --json`) every queue and dead-letter queue is empty.

Prints one JSON object on stdout (per-table counts of missing / extra / differing rows and the
checks) and a short human summary on stderr. Exit 0 when the difference is zero and every check
passes, 1 otherwise, 2 on bad usage or an unreachable simulator. Standard library only.
"""
import argparse
import json
import sqlite3
import sys
import urllib.request

# Warehouse table -> its key columns (the pipeline's `key:` of each stage).
KEYS = {
    "branches": ("branch_id",),
    "salespersons": ("employee_id", "branch_id"),
    "sales": ("sale_id", "employee_id"),
}
EXAMPLES = 3  # rows of each kind of difference shown, so a failure says what went wrong
# Fields only the truth carries (sim/truth.h), never served, so never in the warehouse tables.
TRUTH_ONLY = {"branch_history", "branch_at_sale"}


def expected_from(truth):
    """What the warehouse must hold, derived from the truth alone: table -> key -> columns."""
    branches, salespersons, sales = {}, {}, {}
    for b in truth["branches"]:
        row = {k: v for k, v in b.items() if k != "id"}
        row["branch_id"] = b["id"]
        branches[(b["id"],)] = row
    branch_of = {}  # current salesperson id -> branch id
    for e in truth["employees"]:
        if e["occupation"] != "salesperson":
            continue
        row = {k: v for k, v in e.items() if k != "id" and k not in TRUTH_ONLY}
        row["employee_id"] = e["id"]
        branch_of[e["id"]] = e["branch_id"]
        salespersons[(e["id"], e["branch_id"])] = row
    for s in truth["sales"]:
        branch = branch_of.get(s["employee_id"])
        if branch is None:
            continue  # not reachable through the cascade
        row = {k: v for k, v in s.items() if k != "id" and k not in TRUTH_ONLY}
        row["sale_id"] = s["id"]
        row["branch_id"] = branch
        sales[(s["id"], s["employee_id"])] = row
    return {"branches": branches, "salespersons": salespersons, "sales": sales}, set(branch_of)


def warehouse(db, table):
    """key -> row dict, and the number of rows whose key was already seen."""
    # Rows the API no longer lists stay, marked deleted: only the listed ones are compared.
    has_deleted = any(r[1] == "_deleted_at" for r in db.execute(f'PRAGMA table_info("{table}")'))
    where = " WHERE _deleted_at IS NULL" if has_deleted else ""
    cur = db.execute(f'SELECT * FROM "{table}"{where}')
    cols = [d[0] for d in cur.description]
    idx = [cols.index(k) for k in KEYS[table]]
    rows, dups = {}, 0
    for r in cur:
        key = tuple(r[i] for i in idx)
        if key in rows:
            dups += 1
        rows[key] = dict(zip(cols, r))
    return rows, dups


def same(want, got):
    # == equates 3 and 3.0, and a SQLite REAL and a JSON number parse to the same double; a
    # string where a number belongs, or NULL, is a real difference.
    return want == got


def compare(table, expected, actual, allowed_extra):
    out = {"expected": len(expected), "actual": len(actual), "missing": 0, "extra": 0,
           "extra_allowed": 0, "differing": 0, "examples": []}
    for key, row in expected.items():
        got = actual.get(key)
        if got is None:
            out["missing"] += 1
            if len(out["examples"]) < EXAMPLES:
                out["examples"].append({"missing": list(key)})
            continue
        for col, want in row.items():
            if col not in got or not same(want, got[col]):
                out["differing"] += 1
                if len(out["examples"]) < EXAMPLES:
                    out["examples"].append({"differs": list(key), "column": col, "expected": want,
                                            "got": got.get(col, "(no column)")})
                break
    for key, got in actual.items():
        if key in expected:
            continue
        if allowed_extra(got):
            out["extra_allowed"] += 1
        else:
            out["extra"] += 1
            if len(out["examples"]) < EXAMPLES:
                out["examples"].append({"extra": list(key)})
    out["difference"] = out["missing"] + out["extra"] + out["differing"]
    return out


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("db", help="the SQLite warehouse file")
    ap.add_argument("url", help="the simulator, e.g. http://127.0.0.1:8080")
    ap.add_argument("--queues", help="output of `cascade queues --json` to check drained")
    ap.add_argument("--timeout", type=float, default=600, help="seconds for the truth download")
    a = ap.parse_args()

    try:
        with urllib.request.urlopen(a.url.rstrip("/") + "/admin/truth", timeout=a.timeout) as r:
            truth = json.load(r)
    except (OSError, ValueError) as e:
        print(f"soak_compare: cannot read the truth from {a.url}: {e}", file=sys.stderr)
        return 2
    expected, current = expected_from(truth)
    tick = truth.get("tick")
    del truth  # ~1M sales: keep one copy in memory, not two

    db = sqlite3.connect(f"file:{a.db}?mode=ro", uri=True)
    result = {"tick": tick, "tables": {}}
    total = 0
    for table in ("branches", "salespersons", "sales"):
        actual, dups = warehouse(db, table)
        if table == "sales":
            allowed = lambda row: row.get("employee_id") not in current  # noqa: E731
        else:
            allowed = lambda row: False  # noqa: E731
        t = compare(table, expected[table], actual, allowed)
        t["duplicate_keys"] = dups
        result["tables"][table] = t
        total += t["difference"] + dups
        del actual
    integrity = [r[0] for r in db.execute("PRAGMA integrity_check")]
    result["integrity_check"] = integrity[0] if integrity == ["ok"] else integrity[:5]
    db.close()

    checks_ok = result["integrity_check"] == "ok"
    if a.queues:
        with open(a.queues, encoding="utf-8") as f:
            queues = json.load(f)
        left = {q["stage"]: {k: q[k] for k in ("depth", "in_flight", "dlq_depth")}
                for q in queues if q["depth"] or q["in_flight"] or q["dlq_depth"]}
        result["queues_drained"] = not left
        if left:
            result["queues_left"] = left
        checks_ok = checks_ok and not left
    result["difference"] = total
    result["ok"] = total == 0 and checks_ok
    print(json.dumps(result, sort_keys=True))

    for table, t in result["tables"].items():
        print(f"soak_compare: {table:13} expected {t['expected']:>9}  warehouse {t['actual']:>9}  "
              f"missing {t['missing']}  extra {t['extra']} (+{t['extra_allowed']} allowed)  "
              f"differing {t['differing']}  duplicate keys {t['duplicate_keys']}", file=sys.stderr)
        for ex in t["examples"]:
            print(f"soak_compare:   {table}: {json.dumps(ex)}", file=sys.stderr)
    print(f"soak_compare: tick {tick}, difference {total}, integrity_check "
          f"{result['integrity_check']}, queues drained {result.get('queues_drained', 'unchecked')}"
          f" -> {'OK' if result['ok'] else 'FAIL'}", file=sys.stderr)
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
