#!/usr/bin/python3
"""bindsd speaks the sd_notify protocol to a socket of our own, as systemd would have it.

usage: notify_test.py BINDSD BINDS_CLI
"""
import os
import re
import signal
import socket
import struct
import subprocess
import sys
import time

sys.dont_write_bytecode = True  # keep the source tree clean
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from deploy_common import TempDir, can_connect, deadline, make_config, wait_exit  # noqa: E402

BINDSD, CLI = sys.argv[1], sys.argv[2]
STATUS_PREFIX_RE = re.compile(r"^STATUS=\d+ binds?, \d+ clients?, ")
STATUS_RE = re.compile(r"^STATUS=(\d+) binds?, (\d+) clients?, (\d+\.\d) queries/s \((\d+) queries, (\d+) errors since start\)$")


class NotifySocket:
    """A datagram socket that records (time, sender pid, assignments) like systemd's notify socket."""

    def __init__(self, address):
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        # The kernel attaches the sender's credentials; systemd uses them for NotifyAccess=main.
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_PASSCRED, 1)
        self.sock.bind(address)
        self.messages = []

    def receive(self, timeout):
        self.sock.settimeout(max(timeout, 0.001))
        try:
            data, anc, _, _ = self.sock.recvmsg(4096, socket.CMSG_SPACE(12))
        except socket.timeout:
            return None
        pid = None
        for level, kind, payload in anc:
            if level == socket.SOL_SOCKET and kind == socket.SCM_CREDENTIALS:
                pid = struct.unpack("iII", payload[:12])[0]
        msg = (time.monotonic(), pid, data.decode().split("\n"))
        self.messages.append(msg)
        return msg

    def wait_for(self, pred, seconds, what):
        left = deadline(seconds)
        for m in self.messages:
            if pred(m[2]):
                return m
        while left() > 0:
            m = self.receive(left())
            if m and pred(m[2]):
                return m
        raise AssertionError(f"no {what} within {seconds}s; got {[m[2] for m in self.messages]}")

    def heartbeats_after(self, start, seconds):
        """The heartbeat STATUS lines received from message `start` on, waiting for at least one."""
        left = deadline(seconds)
        while True:
            lines = [x for m in self.messages[start:] for x in m[2] if STATUS_PREFIX_RE.match(x)]
            if lines:
                return lines
            if left() <= 0:
                raise AssertionError(f"no heartbeat STATUS within {seconds}s")
            self.receive(left())

    def drain(self, seconds):
        left = deadline(seconds)
        while left() > 0:
            self.receive(left())

    def close(self):
        self.sock.close()


def check(cond, msg):
    if not cond:
        raise AssertionError(msg)
    print("ok:", msg)


def full_lifecycle(tmp):
    """Abstract socket, watchdog armed: READY, STATUS, WATCHDOG, STOPPING, exit 0."""
    config, sock_path = make_config(tmp)
    name = f"binds-notify-test-{os.getpid()}"
    ns = NotifySocket("\0" + name)
    env = dict(os.environ, NOTIFY_SOCKET="@" + name, WATCHDOG_USEC="200000")
    env.pop("WATCHDOG_PID", None)
    log = open(os.path.join(tmp, "bindsd.log"), "w")
    proc = subprocess.Popen([BINDSD, "--config", config], env=env, stdout=log, stderr=subprocess.STDOUT)
    try:
        ready = ns.wait_for(lambda a: "READY=1" in a, 15, "READY=1")
        # Listeners open before READY=1, so a client can connect the moment it arrives.
        check(can_connect(sock_path), "the Unix listener accepts connections when READY=1 arrives")
        check(ready[1] == proc.pid, f"READY=1 sent by bindsd's own pid ({ready[1]} == {proc.pid})")
        check(all("READY=1" not in m[2] for m in ns.messages[:ns.messages.index(ready)]), "READY=1 is the first READY")

        for sql in ("CREATE TABLE t (x INTEGER)", "INSERT INTO t VALUES (1)", "SELECT * FROM t"):
            subprocess.run([CLI, "--socket", sock_path, "query", sql], check=True, stdout=subprocess.DEVNULL)

        def counted(a):
            return any((m := STATUS_RE.match(x)) and int(m.group(4)) >= 3 for x in a)
        ns.wait_for(counted, 5, "STATUS counting the 3 queries")
        ns.drain(0.5)
        statuses = [x for m in ns.messages for x in m[2] if x.startswith("STATUS=")]
        check(len(statuses) >= 2, f"{len(statuses)} STATUS lines, e.g. {statuses[-1]!r}")
        check(all(STATUS_RE.match(s) for s in statuses), "every STATUS line has binds, clients and queries/s")
        check(STATUS_RE.match(statuses[0]).group(1) == "2", "STATUS reports the 2 binds")

        pings = [m[0] for m in ns.messages if "WATCHDOG=1" in m[2]]
        span = pings[-1] - pings[0] if len(pings) > 1 else 0
        check(len(pings) >= 10, f"{len(pings)} WATCHDOG=1 pings over {span:.1f}s (every ~0.1s)")
        gaps = [b - a for a, b in zip(pings, pings[1:])]
        # Half of WATCHDOG_USEC; a gap near the full 0.2 s would already risk a watchdog kill.
        check(sorted(gaps)[len(gaps) // 2] < 0.15, f"median ping gap {sorted(gaps)[len(gaps) // 2]:.3f}s")
        check(max(gaps) < 0.4, f"longest ping gap {max(gaps):.3f}s")
        check(all(m[1] == proc.pid for m in ns.messages), "every message comes from bindsd's pid")

        proc.send_signal(signal.SIGTERM)
        stop = ns.wait_for(lambda a: "STOPPING=1" in a, 10, "STOPPING=1")
        check(True, f"STOPPING=1 on SIGTERM ({stop[2]})")
        rc = wait_exit(proc)
        check(rc == 0, f"bindsd exits 0 after SIGTERM (got {rc})")
        ns.drain(0.2)
        after = [m for m in ns.messages if m[0] > stop[0]]
        # At most one ping may race the stop from the timer's own strand.
        check(sum("WATCHDOG=1" in m[2] for m in after) <= 1, "the heartbeat stops with STOPPING=1")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        log.close()
        ns.close()
    with open(os.path.join(tmp, "bindsd.log")) as f:
        sys.stdout.write(f.read())


def path_socket_no_watchdog(tmp):
    """Filesystem socket; WATCHDOG_PID names another process, so no pings; SIGHUP is survived."""
    config, sock_path = make_config(tmp)
    path = os.path.join(tmp, "notify.sock")
    ns = NotifySocket(path)
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000", WATCHDOG_PID="1")
    proc = subprocess.Popen([BINDSD, "--config", config], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        ns.wait_for(lambda a: "READY=1" in a, 15, "READY=1")
        check(True, "READY=1 over a filesystem NOTIFY_SOCKET")
        # ExecReload sends SIGHUP: RELOADING=1 (with MONOTONIC_USEC), then READY=1 once the new
        # configuration serves.
        first = len(ns.messages)
        proc.send_signal(signal.SIGHUP)
        reloading = ns.wait_for(lambda a: "RELOADING=1" in a, 10, "RELOADING=1")
        check(any(x.startswith("MONOTONIC_USEC=") for x in reloading[2]), "RELOADING=1 carries MONOTONIC_USEC")
        later = ns.messages[ns.messages.index(reloading) + 1:]
        ready_again = next((m for m in later if "READY=1" in m[2]), None) or ns.wait_for(
            lambda a: "READY=1" in a, 10, "READY=1 after the reload")
        check(ready_again is not None, "READY=1 after RELOADING=1")
        check(proc.poll() is None and can_connect(sock_path), "bindsd serves after SIGHUP")
        # A broken file: the running config stays, and STATUS says why.
        with open(config, "a") as f:
            f.write("bogus_key: 1\n")
        proc.send_signal(signal.SIGHUP)
        failed = ns.wait_for(lambda a: any(x.startswith("STATUS=reload failed") for x in a), 10,
                             "STATUS=reload failed")
        check(any("bogus_key" in x for x in failed[2]), f"the failed-reload STATUS names the key ({failed[2]})")
        check(proc.poll() is None and can_connect(sock_path), "bindsd keeps serving after a bad reload")
        # The heartbeat (every 2 s) must not overwrite it: STATUS keeps saying so until a reload works.
        lines = ns.heartbeats_after(len(ns.messages), 6)
        check(all("last reload FAILED" in x and "bogus_key" in x for x in lines),
              f"heartbeat STATUS keeps the failed reload ({lines[-1]})")
        with open(config) as f:
            fixed = f.read().replace("bogus_key: 1\n", "")
        with open(config, "w") as f:
            f.write(fixed)
        proc.send_signal(signal.SIGHUP)
        ns.wait_for(lambda a: any(x.startswith("STATUS=reloaded") for x in a), 10, "STATUS=reloaded")
        lines = ns.heartbeats_after(len(ns.messages), 6)
        check(not any("FAILED" in x for x in lines), f"a good reload clears it ({lines[-1]})")
        del first
        check(not any("WATCHDOG=1" in m[2] for m in ns.messages), "no pings when WATCHDOG_PID is another process")
        proc.send_signal(signal.SIGINT)
        ns.wait_for(lambda a: "STOPPING=1" in a, 10, "STOPPING=1")
        check(wait_exit(proc) == 0, "STOPPING=1 on SIGINT, exit 0")
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        ns.close()


def startup_failure(tmp):
    """A start-up error reaches systemd as a STATUS line, never READY=1."""
    config, sock_path = make_config(tmp)
    path = os.path.join(tmp, "notify.sock")
    ns = NotifySocket(path)
    env = dict(os.environ, NOTIFY_SOCKET=path)
    blocker = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    blocker.bind(sock_path)
    blocker.listen()
    try:
        rc = subprocess.run([BINDSD, "--config", config], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL, timeout=15).returncode
        ns.drain(0.2)
        check(rc == 1, f"bindsd exits 1 when its socket is taken (got {rc})")
        lines = [x for m in ns.messages for x in m[2]]
        check("READY=1" not in lines, "no READY=1 on a failed start")
        check(any(x.startswith("STATUS=start-up failed:") for x in lines), f"failure STATUS: {lines}")
    finally:
        blocker.close()
        ns.close()


for case in (full_lifecycle, path_socket_no_watchdog, startup_failure):
    print(f"--- {case.__name__}")
    with TempDir() as tmp:
        case(tmp)
print("all passed")
