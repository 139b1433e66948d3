#!/usr/bin/python3
"""Under journald (JOURNAL_STREAM naming our stdout/stderr) bindsd prefixes syslog priorities and
drops timestamps; otherwise lines keep their timestamps.

usage: journal_test.py BINDSD BINDS_CLI
"""
import os
import re
import signal
import subprocess
import sys

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_common import TempDir, can_connect, make_config, wait_exit  # noqa: E402

BINDSD, CLI = sys.argv[1], sys.argv[2]
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\d[ T]\d\d:\d\d:\d\d")
PREFIXED = re.compile(r"^<[0-7]>")


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("ok:", msg)


def stream_id(fd):
    st = os.fstat(fd)
    return f"{st.st_dev}:{st.st_ino}"


def run_daemon(tmp, journal_stream):
    """Starts bindsd at debug level with stdout on a pipe, has a client connect (a debug line) and
    name an unknown bind (a warning), sends SIGHUP with a broken config (an error) then SIGTERM;
    returns its lines.
    journal_stream: None (unset), "pipe" (names the stdout pipe, as systemd does) or a literal value."""
    config, sock_path = make_config(tmp)
    r, w = os.pipe()
    env = dict(os.environ)
    env.pop("JOURNAL_STREAM", None)
    if journal_stream == "pipe":
        env["JOURNAL_STREAM"] = stream_id(w)
    elif journal_stream is not None:
        env["JOURNAL_STREAM"] = journal_stream
    proc = subprocess.Popen([BINDSD, "--config", config, "--log-level", "debug"], env=env, stdout=w,
                            stderr=subprocess.DEVNULL)
    os.close(w)
    out = os.fdopen(r)
    lines = []
    try:
        for line in out:
            lines.append(line.rstrip("\n"))
            if "bindsd ready" in line:
                break
        check(can_connect(sock_path), "bindsd came up")
        subprocess.run([CLI, "--socket", sock_path, "ping"], check=True, stdout=subprocess.DEVNULL)
        subprocess.run([CLI, "--socket", sock_path, "query", "--bind", "nope", "SELECT 1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        with open(config, "a") as f:
            f.write("bogus_key: 1\n")
        proc.send_signal(signal.SIGHUP)
        for line in out:
            lines.append(line.rstrip("\n"))
            if "reload failed" in line:
                break
        proc.send_signal(signal.SIGTERM)
        lines += [x.rstrip("\n") for x in out]
        check(wait_exit(proc) == 0, "bindsd exits 0")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        out.close()
    print("\n".join("    " + x for x in lines))
    return lines


with TempDir() as tmp:
    print("--- JOURNAL_STREAM names stdout")
    lines = run_daemon(tmp, "pipe")
    check(len(lines) >= 4, f"{len(lines)} log lines")
    check(all(PREFIXED.match(x) for x in lines), "every line starts with <N>")
    check(not any(TIMESTAMP.search(x) for x in lines), "no timestamps")
    check(any(x.startswith("<6>bindsd ready") for x in lines), "info is <6>")
    check(any(x.startswith("<4>") and "UNKNOWN_BIND" in x for x in lines), "warning is <4>")
    check(any(x.startswith("<3>reload failed") for x in lines), "error is <3>")
    check(any(re.match(r"<7>client #\d+: handshake done", x) for x in lines), "debug is <7>")
    check(not any(x[3:].startswith(("info ", "warning ", "debug ")) for x in lines), "no level names after the prefix")

with TempDir() as tmp:
    print("--- JOURNAL_STREAM unset")
    lines = run_daemon(tmp, None)
    check(all(TIMESTAMP.match(x) for x in lines), "every line starts with a timestamp")
    check(not any(PREFIXED.match(x) for x in lines), "no <N> prefixes")

with TempDir() as tmp:
    print("--- JOURNAL_STREAM inherited but naming another stream")
    lines = run_daemon(tmp, "1:1")
    check(all(TIMESTAMP.match(x) for x in lines), "timestamps, since stdout is not the journal")

with TempDir() as tmp:
    print("--- errors")
    # Errors that happen before logging is set up go to stderr, also prefixed (<3> = error).
    bad = os.path.join(tmp, "bad.yaml")
    with open(bad, "w") as f:
        f.write("binds: {}\n")
    r, w = os.pipe()
    env = dict(os.environ, JOURNAL_STREAM=stream_id(w))
    rc = subprocess.run([BINDSD, "--config", bad], env=env, stdout=subprocess.DEVNULL, stderr=w).returncode
    os.close(w)
    err = os.fdopen(r).read()
    check(rc == 1 and err.startswith("<3>bindsd: invalid configuration"), f"config error on stderr is <3>: {err.strip()!r}")
    # A start-up failure is logged as critical (<2>).
    config, sock_path = make_config(tmp)
    os.mkdir(sock_path)  # the listener cannot take a path that is a directory
    r, w = os.pipe()
    env = dict(os.environ, JOURNAL_STREAM=stream_id(w))
    rc = subprocess.run([BINDSD, "--config", config], env=env, stdout=w,
                        stderr=subprocess.DEVNULL, timeout=15).returncode
    os.close(w)
    out = os.fdopen(r).read().splitlines()
    print("\n".join("    " + x for x in out))
    check(rc == 1 and any(x.startswith("<2>bindsd: listen.unix") for x in out), "critical is <2>")
    check(all(PREFIXED.match(x) for x in out), "every line prefixed")
print("all passed")
