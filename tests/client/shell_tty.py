#!/usr/bin/python3
"""The interactive `binds` shell in a real terminal (tmux), against a real bindsd and real
PostgreSQL, MariaDB and SQLite (URLs from scripts/testdb.sh's environment).

usage: shell_tty.py BINDSD BINDS_CLI

Everything waits by polling tmux capture-pane until the expected text shows (generous deadlines
for a loaded machine, and the sanitizer build); there is no fixed sleep to wait for output.
"""
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time

sys.dont_write_bytecode = True  # keep the source tree clean

BINDSD, CLI = sys.argv[1], sys.argv[2]
PG_URL = os.environ.get("BINDS_TEST_PG_URL", "")
MYSQL_URL = os.environ.get("BINDS_TEST_MYSQL_URL", "")
TIMEOUT = float(os.environ.get("BINDS_TTY_TIMEOUT", "60"))
failures = []


def check(cond, msg, screen=None):
    if cond:
        print("ok:", msg)
        return
    failures.append(msg)
    print("FAIL:", msg)
    if screen is not None:
        print("---- screen ----\n" + screen + "\n----------------")


class Tmux:
    """One tmux server of our own (-L name, its own socket), one session running the shell."""

    def __init__(self, tmp, name):
        self.sock = os.path.join(tmp, f"tmux-{name}")

    def tmux(self, *args, check=True):
        return subprocess.run(["tmux", "-S", self.sock, *args], check=check, capture_output=True, text=True)

    def start(self, command, env):
        # -u: UTF-8 whatever the locale; a wide window so tables do not wrap.
        exports = " ".join(f"{k}={v!r}" for k, v in env.items())
        self.tmux("-u", "-f", "/dev/null", "new-session", "-d", "-x", "160", "-y", "50",
                  f"env {exports} {command}; echo SHELL-EXITED=$?; sleep 600")
        self.tmux("set-option", "-g", "history-limit", "5000")

    def keys(self, *keys):
        self.tmux("send-keys", *keys)

    def line(self, text):
        # -l: literal text (no key-name lookup), then Enter as a key. tmux reads an argument that
        # ends in ';' as a command separator, so a final ';' goes as its byte value.
        body, semicolon = (text[:-1], True) if text.endswith(";") else (text, False)
        if body:
            self.tmux("send-keys", "-l", body)
        if semicolon:
            self.tmux("send-keys", "-H", "3b")
        self.tmux("send-keys", "Enter")

    def screen(self):
        return self.tmux("capture-pane", "-p", "-J", "-S", "-5000").stdout

    def wait_for(self, pattern, what, after=0):
        """Polls the pane until `pattern` (a regex) matches the text from offset `after`; returns
        the match end offset in the full capture. Records a failure on timeout."""
        end = time.monotonic() + TIMEOUT
        delay = 0.02
        while True:
            text = self.screen()
            m = re.search(pattern, text[after:], re.M)
            if m:
                print("ok:", what)
                return after + m.end()
            if time.monotonic() > end:
                check(False, f"{what} (waited {TIMEOUT:.0f}s for /{pattern}/)", text)
                return len(text)
            time.sleep(delay)
            delay = min(delay * 2, 0.5)

    def kill(self):
        self.tmux("kill-server", check=False)


def sanitizer_env(tmp, name):
    """LANG unset on purpose (the shell must not depend on the locale); under the sanitizer build,
    reports go to files (the terminal is the test's screen) that main() looks for."""
    env = {"LANG": ""}
    for k in ("ASAN_OPTIONS", "UBSAN_OPTIONS"):
        env[k] = os.environ.get(k, "") + f":log_path={tmp}/sanitizer-{name}"
    return env


def start_daemon(tmp):
    sock = os.path.join(tmp, "bindsd.sock")
    cfg = os.path.join(tmp, "binds.yaml")
    with open(cfg, "w") as f:
        f.write(f"listen:\n  unix: {sock}\ndefault: lite\nbinds:\n  lite: sqlite:///{tmp}/lite.db\n")
        if PG_URL:
            f.write(f'  pg: "{PG_URL}"\n')
        if MYSQL_URL:
            f.write(f'  my: "{MYSQL_URL}"\n')
    log = open(os.path.join(tmp, "bindsd.log"), "w")
    proc = subprocess.Popen([BINDSD, "--config", cfg], stdout=log, stderr=subprocess.STDOUT)
    end = time.monotonic() + TIMEOUT
    while subprocess.run([CLI, "--socket", sock, "ping"], capture_output=True).returncode != 0:
        if proc.poll() is not None or time.monotonic() > end:
            raise SystemExit("bindsd did not start:\n" + open(os.path.join(tmp, "bindsd.log")).read())
        time.sleep(0.05)
    return proc, sock


def interrupt_a_running_statement(t, pos):
    """Ctrl-C during a 120 s statement gives the prompt back at once, and the shell goes on."""
    start = time.monotonic()
    t.line("SELECT pg_sleep(120);")
    pos = t.wait_for(r"pg_sleep\(120\);\n", "a long statement is running", pos)
    # Ctrl-C until the shell says so: the first may land before the statement's read begins.
    end = time.monotonic() + TIMEOUT
    while "interrupted by Ctrl-C" not in t.screen()[pos:] and time.monotonic() < end:
        t.keys("C-c")
        time.sleep(1)
    pos = t.wait_for(r"interrupted by Ctrl-C: the connection to bindsd was closed", "Ctrl-C interrupts a statement", pos)
    t.line("SELECT 'after the interrupt' AS v;")
    pos = t.wait_for(r" after the interrupt\n\(1 row\)", "the shell reconnects for the next statement", pos)
    check(time.monotonic() - start < 100, f"no wait for the 120 s statement ({time.monotonic() - start:.1f} s)")
    return pos


def session_one(tmp, sock, env):
    t = Tmux(tmp, "one")
    t.start(f"{CLI} --socket {sock}", env)
    try:
        pos = t.wait_for(r"^lite=> *$", "the prompt shows the default bind")
        t.line("CREATE TABLE IF NOT EXISTS items (id INTEGER PRIMARY KEY, name TEXT);")
        pos = t.wait_for(r"rows? affected\n", "a statement on one line runs", pos)

        # Multi-line: continuation prompt until ';', and a ';' inside a string does not end it.
        t.line("INSERT INTO items (name)")
        pos = t.wait_for(r"^lite-> *$", "continuation prompt after an unended line", pos)
        t.line("VALUES ('semi;colon'), (NULL),")
        pos = t.wait_for(r"^lite-> *$", "still continuing after a ';' inside a string", pos)
        t.line("('NULL');")
        pos = t.wait_for(r"3 rows affected", "the three-line INSERT ran as one statement", pos)

        t.line("SELECT id, name FROM items ORDER BY id;")
        pos = t.wait_for(r" 1  \| semi;colon\n 2  \| *\n 3  \| NULL\n\(3 rows\)",
                         "NULL shows empty, the text 'NULL' as NULL", pos)
        t.line("\\pset null (null)")
        pos = t.wait_for(r'Null display is "\(null\)"\.', "\\pset null answers", pos)
        t.line("SELECT name FROM items WHERE name IS NULL;")
        pos = t.wait_for(r" \(null\)\n\(1 row\)", "\\pset null text shows for NULL", pos)

        t.line("\\x")
        pos = t.wait_for(r"Expanded display is on\.", "\\x turns expanded output on", pos)
        t.line("SELECT id, name FROM items WHERE id = 1;")
        pos = t.wait_for(r"-\[ RECORD 1 \]-*\nid +\| 1\nname +\| semi;colon", "expanded record layout", pos)
        t.line("\\x off")
        pos = t.wait_for(r"Expanded display is off\.", "\\x off", pos)

        t.line("\\timing on")
        pos = t.wait_for(r"Timing is on\.", "\\timing on", pos)
        t.line("SELECT 42 AS answer;")
        pos = t.wait_for(r" 42\n\(1 row\)\nTime: \d+\.\d{3} ms", "timing printed after the result", pos)
        t.line("\\timing off")
        pos = t.wait_for(r"Timing is off\.", "\\timing off", pos)

        # Errors: printed with the details the one-shot CLI gives; the shell goes on.
        t.line("SELEC nope;")
        pos = t.wait_for(r"binds: SQL_ERROR: .*syntax error.*\(bind lite\)", "a failing statement prints its error", pos)
        t.line("SELECT 'still alive' AS s;")
        pos = t.wait_for(r" still alive\n\(1 row\)", "the shell continues after an error", pos)
        t.line("\\frobnicate")
        pos = t.wait_for(r"invalid command \\frobnicate; try \\\? for help", "unknown meta-command", pos)
        t.line("\\c nowhere")
        pos = t.wait_for(r'unknown bind "nowhere" .*still on "lite"\n^lite=> *$', "\\c to an unknown bind keeps the old", pos)
        t.line("\\c")
        pos = t.wait_for(r"\\c needs one bind key", "\\c without a bind", pos)
        t.line("\\d no_such_table")
        pos = t.wait_for(r'did not find a table named "no_such_table"', "\\d of a missing table", pos)
        t.line("\\?")
        pos = t.wait_for(r"\\pset null TEXT", "\\? prints the help", pos)

        # \dt and \d on each backend.
        t.line("\\dt")
        pos = t.wait_for(r" items \| table", "\\dt on SQLite", pos)
        t.line("\\d items")
        pos = t.wait_for(r'Table "items"\n column \| type +\| nullable \| default\n-+\+.*\n id +\| INTEGER',
                         "\\d on SQLite", pos)
        for key, url, int_type in (("pg", PG_URL, "integer"), ("my", MYSQL_URL, r"int\(11\)")):
            if not url:
                check(os.environ.get("BINDS_ALLOW_NO_DB") == "1", f"{key}: database URL set (run via scripts/test.sh)")
                continue
            table = f"tty_{key}_{os.getpid()}"
            t.line(f"\\c {key}")
            pos = t.wait_for(rf'You are now on bind "{key}" \(.*\)\.\n^{key}=> *$', f"\\c {key} switches and the prompt follows", pos)
            t.line(f"CREATE TABLE {table} (id INTEGER NOT NULL,")
            pos = t.wait_for(rf"^{key}-> *$", f"{key}: continuation prompt", pos)
            t.line("note TEXT);")
            pos = t.wait_for(r"rows? affected", f"{key}: CREATE TABLE over two lines", pos)
            t.line("\\dt")
            pos = t.wait_for(rf" {table} +\| (base table|table)", f"\\dt on {key}", pos)
            t.line(f"\\d {table}")
            pos = t.wait_for(rf'Table "{table}"\n.*\n.*\n id +\| {int_type} +\| NO ', f"\\d on {key}", pos)
            if key == "pg":
                pos = interrupt_a_running_statement(t, pos)
            t.line(f"DROP TABLE {table};")
            pos = t.wait_for(r"rows? affected", f"{key}: DROP TABLE", pos)
        t.line("\\c lite")
        pos = t.wait_for(r"^lite=> *$", "back on lite", pos)

        # Ctrl-C drops the line being typed (and a half-entered statement), and does not exit.
        t.line("SELECT 'half")
        pos = t.wait_for(r"^lite-> *$", "inside an open string", pos)
        t.keys("-l", "typed but dropped")
        pos = t.wait_for(r"typed but dropped", "text typed", pos)
        t.keys("C-c")
        pos = t.wait_for(r"\^C\n^lite=> *$", "Ctrl-C clears the input and gives a fresh prompt", pos)
        t.line("SELECT 'after ctrl-c' AS v;")
        pos = t.wait_for(r" after ctrl-c\n\(1 row\)", "the shell still runs statements after Ctrl-C", pos)

        t.line("SELECT 'remember me' AS hist;")
        pos = t.wait_for(r" remember me\n\(1 row\)", "a statement for the history", pos)
        t.keys("C-d")
        pos = t.wait_for(r"SHELL-EXITED=0", "Ctrl-D exits with status 0", pos)
    finally:
        t.kill()


def session_two(tmp, sock, env):
    """History persisted: the up arrow recalls the last line of the first session."""
    t = Tmux(tmp, "two")
    t.start(f"{CLI} --socket {sock}", env)
    try:
        t.wait_for(r"^lite=> *$", "second session starts")
        t.keys("Up")
        # From the start: the recalled text fills the prompt line that was already matched.
        pos = t.wait_for(r"^lite=> SELECT 'remember me' AS hist; *$", "up arrow recalls the previous session's line")
        t.keys("Enter")
        pos = t.wait_for(r" remember me\n\(1 row\)", "the recalled line runs", pos)
        t.keys("Up")
        t.keys("Up")
        pos = t.wait_for(r"^lite=> SELECT 'after ctrl-c' AS v; *$", "older history entries are there too", pos)
        t.keys("C-u")
        t.line("\\q")
        pos = t.wait_for(r"SHELL-EXITED=0", "\\q exits with status 0", pos)
    finally:
        t.kill()


def no_home(tmp, sock):
    """HOME unset and no $BINDS_HISTFILE: no history file, no crash. An unwritable one: a warning."""
    t = Tmux(tmp, "nohome")
    t.start(f"env -u HOME {CLI} --socket {sock}", sanitizer_env(tmp, "nohome"))
    try:
        pos = t.wait_for(r"^lite=> *$", "shell starts without HOME")
        t.line("SELECT 1 AS one;")
        pos = t.wait_for(r" 1\n\(1 row\)", "runs without HOME", pos)
        t.line("\\q")
        pos = t.wait_for(r"SHELL-EXITED=0", "exits 0 without HOME", pos)
    finally:
        t.kill()
    t = Tmux(tmp, "rohist")
    t.start(f"{CLI} --socket {sock}", dict(sanitizer_env(tmp, "rohist"), BINDS_HISTFILE="/proc/binds-no-such-dir/hist"))
    try:
        pos = t.wait_for(r"^lite=> *$", "shell starts with an unwritable history file")
        t.line("SELECT 2 AS two;")
        pos = t.wait_for(r"cannot write the history file /proc/binds-no-such-dir/hist", "a warning names the file", pos)
        pos = t.wait_for(r" 2\n\(1 row\)", "runs with an unwritable history file", pos)
        t.line("\\q")
        pos = t.wait_for(r"SHELL-EXITED=0", "exits 0 with an unwritable history file", pos)
    finally:
        t.kill()


def main():
    if not shutil.which("tmux"):
        raise SystemExit("tmux is not installed (scripts/install-deps.sh --test installs it)")
    tmp = tempfile.mkdtemp(prefix="binds-tty-")
    proc, sock = start_daemon(tmp)
    try:
        hist = os.path.join(tmp, "history")
        env = dict(sanitizer_env(tmp, "tty"), BINDS_HISTFILE=hist)
        session_one(tmp, sock, env)
        check(os.path.exists(hist) and "remember" in open(hist, errors="replace").read(),
              "history file written to $BINDS_HISTFILE")
        session_two(tmp, sock, env)
        no_home(tmp, sock)
        reports = [f for f in os.listdir(tmp) if f.startswith("sanitizer-")]
        for f in reports:
            print(open(os.path.join(tmp, f), errors="replace").read())
        check(not reports, f"no sanitizer report from the shell sessions ({reports})")
    finally:
        proc.terminate()
        proc.wait(timeout=30)
        daemon_log = open(os.path.join(tmp, "bindsd.log"), errors="replace").read()
        check(not re.search(r"ERROR: AddressSanitizer|ERROR: LeakSanitizer|runtime error:", daemon_log),
              "no sanitizer report in bindsd's log")
        if not failures:
            shutil.rmtree(tmp, ignore_errors=True)
        else:
            print("kept", tmp)
    if failures:
        print(f"{len(failures)} FAILED:", *failures, sep="\n  ")
        sys.exit(1)
    print("all passed")


main()
