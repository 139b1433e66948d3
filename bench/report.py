#!/usr/bin/env python3
"""Turns bench/run.sh's raw results (one JSON line per measurement) into the markdown report.

    python3 bench/report.py RESULTS.jsonl [--rounds N --duration S --warmup S --commit C ...]

Each line carries "case" (pg1, pg16, ...), "contender" (direct, pgbouncer, bindsd), "round" and the
load generator's own fields (qps, p50_us, ...); run.sh adds proxy_cpu_us (utime+stime of PgBouncer
or bindsd over the run), machine_cpu_us and machine_busy (every process's CPU from /proc/stat, and
the busy share of the cores in thousandths) and, for bindsd's stream, proxy_hwm_kb. Every figure in
the table is the median over rounds.
"""
import argparse
import datetime
import json
import statistics

CONTENDERS = ("direct", "pgbouncer", "bindsd")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("results")
    ap.add_argument("--rounds", default="?")
    ap.add_argument("--duration", default="?")
    ap.add_argument("--warmup", default="?")
    ap.add_argument("--total-s", type=int)
    ap.add_argument("--build-s", type=int)
    ap.add_argument("--commit", default="unknown")
    ap.add_argument("--cores", default="?")
    ap.add_argument("--date", default=datetime.datetime.now().strftime("%Y-%m-%d %H:%M"))
    args = ap.parse_args()

    runs = [json.loads(line) for line in open(args.results) if line.strip()]

    def values(case, contender, key):
        return [r[key] for r in sorted(runs, key=lambda r: r["round"])
                if r["case"] == case and r["contender"] == contender and key in r and not r.get("failed")]

    def median(case, contender, key):
        v = values(case, contender, key)
        return statistics.median(v) if v else None

    def fmt(v, unit):
        if v is None:
            return "—"
        if unit == "qps":
            return f"{v:,.0f}"
        if unit == "µs":
            return f"{v:,.0f}" if v >= 100 else f"{v:.1f}"
        if unit == "s":
            return f"{v:.2f}"
        return f"{v:,.1f}"

    def ratio(a, b):
        return "—" if a is None or b is None or b == 0 else f"{a / b:.2f}×"

    rows, spread = [], []

    def row(title, unit, case, key, contenders=CONTENDERS, direct_from=None):
        d = p = None
        if direct_from:
            d = median(*direct_from, key)
        elif "direct" in contenders:
            d = median(case, "direct", key)
        if "pgbouncer" in contenders:
            p = median(case, "pgbouncer", key)
        b = median(case, "bindsd", key)
        rows.append(f"| {title} ({unit}) | {fmt(d, unit)} | {fmt(p, unit)} | {fmt(b, unit)} "
                    f"| {ratio(b, p)} | {ratio(b, d)} |")
        cells = []
        for c in contenders:
            v = values(case, c, key)
            if v:
                cells.append(f"{c} " + " / ".join(fmt(x, unit) for x in v))
        spread.append(f"- {title} ({unit}): " + "; ".join(cells))

    row("PG `SELECT 1`, 1 client, p50 latency", "µs", "pg1", "p50_us")
    row("PG `SELECT 1`, 1 client, throughput", "qps", "pg1", "qps")
    row("PG `SELECT 1`, 16 clients, throughput", "qps", "pg16", "qps")
    row("PG `SELECT 1`, 16 clients, p99 latency", "µs", "pg16", "p99_us")
    row("PG `SELECT 1`, 200 clients, throughput", "qps", "pg200", "qps")
    row("PG `SELECT 1`, 200 clients, p99 latency", "µs", "pg200", "p99_us")
    row("PG pipelined, 10 conns × 32 in flight", "qps", "pipe10x32", "qps")
    row("PG pipelined, 1 conn × 64 in flight", "qps", "pipe1x64", "qps", ("direct", "bindsd"))
    row("MariaDB `SELECT 1`, 16 clients", "qps", "my16", "qps", ("direct", "bindsd"))
    row("SQLite point select, 16 clients [direct = PG direct `SELECT 1`, 16 clients]", "qps", "lite16", "qps",
        ("bindsd",), direct_from=("pg16", "direct"))
    row("1,000,000-row stream, per stream", "s", "stream", "seconds_per_stream", ("direct", "bindsd"))

    def cpu_per_query(contender):
        per = [r["proxy_cpu_us"] / r["total_queries"] for r in runs
               if r["case"] == "pg16" and r["contender"] == contender and r.get("total_queries")
               and "proxy_cpu_us" in r]
        return statistics.median(per) if per else None

    cpu_p, cpu_b = cpu_per_query("pgbouncer"), cpu_per_query("bindsd")
    cpu_s = cpu_per_query("bindsd-seen")

    # The same PostgreSQL through the pgseen bind (reset: seen): reset only after changes bindsd
    # sees, which is closer to what PgBouncer's transaction pooling does (it resets nothing).
    seen_rows = []
    for title, case in (("PG `SELECT 1`, 16 clients, throughput", "pg16"),
                        ("PG `SELECT 1`, 200 clients, throughput", "pg200")):
        v = values(case, "bindsd-seen", "qps")
        if not v:
            continue
        b, sb, p = median(case, "bindsd", "qps"), statistics.median(v), median(case, "pgbouncer", "qps")
        seen_rows.append(f"| {title} (qps) | {fmt(p, 'qps')} | {fmt(b, 'qps')} | {fmt(sb, 'qps')} "
                         f"| {ratio(sb, p)} | {ratio(sb, b)} |")
        spread.append(f"- {title}, bindsd `reset: seen` (qps): " + " / ".join(fmt(x, "qps") for x in v))
    hwm = median("stream", "bindsd", "proxy_hwm_kb")
    idle = next((r for r in runs if r["case"] == "idle" and not r.get("failed")), None)
    bad = [f'{r["case"]}/{r["contender"]} round {r["round"]}: exit {r.get("rc")}, errors {r.get("errors", "?")}, '
           f'dead connections {r.get("dead_conns", "?")}'
           for r in runs if r.get("rc") or r.get("failed")]

    head = (f"{args.date} · commit {args.commit} · {args.cores} cores · {args.rounds} round(s) of "
            f"{args.warmup} s warm-up + {args.duration} s per measurement · medians over rounds")
    if args.total_s is not None:
        head += f" · whole run {args.total_s // 60} min {args.total_s % 60} s"
        if args.build_s is not None:
            head += f" (of which install + build {args.build_s} s)"
    out = [head, "",
           "| workload | direct | PgBouncer | bindsd | bindsd/PgBouncer | bindsd/direct |",
           "|---|---:|---:|---:|---:|---:|", *rows, "",
           "Ratios are bindsd's figure over the other's: above 1 is better for bindsd in qps rows, "
           "worse in µs and s rows.", ""]
    fmt_cpu = lambda v: "—" if v is None else f"{v:.1f} µs"
    line = (f"**Proxy CPU per query** (PG `SELECT 1`, 16 clients; utime+stime of the proxy process from "
            f"/proc/PID/stat across the load generator's run ÷ queries it completed): PgBouncer {fmt_cpu(cpu_p)}, "
            f"bindsd {fmt_cpu(cpu_b)}")
    if cpu_p and cpu_b:
        line += f" ({cpu_b / cpu_p:.1f}× PgBouncer)"
    if cpu_s is not None:
        line += f"; bindsd with `reset: seen` {fmt_cpu(cpu_s)}"
        if cpu_p:
            line += f" ({cpu_s / cpu_p:.1f}× PgBouncer)"
    out += [line, ""]
    if seen_rows:
        out += ["**bindsd with `reset: seen`** (bind pgseen: the same database, reset only after changes bindsd "
                "sees; PgBouncer's transaction pooling resets nothing):", "",
                "| workload | PgBouncer | bindsd (auto) | bindsd (seen) | seen/PgBouncer | seen/auto |",
                "|---|---:|---:|---:|---:|---:|", *seen_rows, ""]
    # Every workload's cost in bindsd, so that a change that slows one backend shows even where the
    # qps ratio hides it in noise (a page given back and faulted in again per request did once).
    per_request = []
    for case, label in (("pg1", "PG 1 client"), ("pg16", "PG 16"), ("pg200", "PG 200"),
                        ("pipe10x32", "PG pipelined 10×32"), ("my16", "MariaDB 16"), ("lite16", "SQLite 16")):
        rs = [r for r in runs if r["case"] == case and r["contender"] == "bindsd" and r.get("total_queries")
              and "proxy_cpu_us" in r]
        if not rs:
            continue
        cpu = statistics.median(r["proxy_cpu_us"] / r["total_queries"] for r in rs)
        flt = [r["proxy_minflt"] / r["total_queries"] for r in rs if "proxy_minflt" in r]
        per_request.append(f"{label} {cpu:.1f} µs" + (f" / {statistics.median(flt):.2f}" if flt else ""))
    if per_request:
        out += ["**bindsd per request, by workload** (CPU µs / minor page faults, medians over rounds): "
                + "; ".join(per_request), ""]
    # The whole machine's CPU per query (every process and the kernel): the load generator and the
    # databases share the cores with the proxy, so this, not the proxy's own share, bounds the qps.
    machine = []
    for case, label in (("pg16", "PG 16"), ("pg200", "PG 200"), ("my16", "MariaDB 16"), ("lite16", "SQLite 16")):
        parts = []
        for contender, name in (("direct", "direct"), ("pgbouncer", "PgBouncer"), ("bindsd", "bindsd"),
                                ("bindsd-seen", "bindsd seen")):
            rs = [r for r in runs if r["case"] == case and r["contender"] == contender and r.get("total_queries")
                  and "machine_cpu_us" in r]
            if not rs:
                continue
            cpu = statistics.median(r["machine_cpu_us"] / r["total_queries"] for r in rs)
            busy = statistics.median(r["machine_busy"] / 10 for r in rs)
            parts.append(f"{name} {cpu:.1f} µs ({busy:.0f}% busy)")
        if parts:
            machine.append(f"{label}: " + ", ".join(parts))
    if machine:
        out += ["**Whole machine per query** (all processes and the kernel, from /proc/stat across the run ÷ "
                "queries; in brackets how busy the cores were): "
                + "; ".join(machine), ""]
    if hwm is not None:
        out += [f"**bindsd peak RSS during the 1,000,000-row stream** (VmHWM, reset just before it): "
                f"{hwm / 1024:.1f} MiB", ""]
    if idle and "rss_holding_kb" in idle:
        out += [f"**Idle clients** ({idle['conns']:,} native-protocol connections over the Unix socket, HELLO "
                f"done, then idle): bindsd RSS {idle['rss_before_kb'] / 1024:.1f} MiB before → "
                f"{idle['rss_holding_kb'] / 1024:.1f} MiB holding them "
                f"({idle['rss_per_client_bytes'] / 1024:.1f} KiB per client) → "
                f"{idle['rss_after_kb'] / 1024:.1f} MiB after closing them (opening them took "
                f"{idle['connect_s']:.1f} s)", ""]
    out += ["Per-round figures (in round order; each round ran the contenders in a rotated order):", "", *spread]
    if bad:
        out += ["", "Runs with errors or a non-zero exit (their figures, if any, are in the medians): "
                + "; ".join(bad)]
    print("\n".join(out))


if __name__ == "__main__":
    main()
