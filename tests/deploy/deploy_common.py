"""Shared helpers for the deploy tests: a throw-away bindsd config and process handling."""
import os
import socket
import subprocess
import tempfile
import time


def make_config(tmp):
    """A config with two SQLite binds and only a Unix socket listener, all inside tmp."""
    sock = os.path.join(tmp, "bindsd.sock")
    path = os.path.join(tmp, "binds.yaml")
    with open(path, "w") as f:
        f.write(f"""listen:
  unix: {sock}
default: main
binds:
  main: sqlite:///main.db
  other: sqlite:///other.db
""")
    return path, sock


def can_connect(sock_path):
    s = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    try:
        s.connect(sock_path)
        return True
    except OSError:
        return False
    finally:
        s.close()


def wait_exit(proc, timeout=15):
    try:
        return proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError(f"bindsd did not exit within {timeout}s")


class TempDir:
    def __enter__(self):
        self.td = tempfile.TemporaryDirectory(prefix="binds-deploy-")
        return self.td.name

    def __exit__(self, *exc):
        self.td.cleanup()


def deadline(seconds):
    end = time.monotonic() + seconds
    return lambda: max(0.0, end - time.monotonic())
