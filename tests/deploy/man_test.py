#!/usr/bin/python3
"""The man pages render without warnings and document what the code accepts.

usage: man_test.py BINDSD BINDS_CLI SOURCE_DIR

The lists come from the programs themselves: bindsd's and binds's --help text, and every
binds.yaml key the config parser accepts, found by asking `bindsd --check-config` about an
unknown key at each level (its error lists the allowed keys). A key or option added to the code
and not to the page fails here.
"""
import json
import os
import re
import subprocess
import sys
import tempfile

PROBE = "zz_probe"


def fail(msg):
    print("FAIL: " + msg, file=sys.stderr)
    sys.exit(1)


def render(page):
    """Plain text of a page, and groff's warnings (-ww: all of them)."""
    r = subprocess.run(["groff", "-man", "-Tutf8", "-ww", "-P-cbou", page],
                       capture_output=True, text=True, env=dict(os.environ, LC_ALL="C.UTF-8"))
    if r.returncode != 0:
        fail(f"groff {page}: exit {r.returncode}: {r.stderr}")
    return r.stdout, r.stderr


def check_renders(page):
    text, warnings = render(page)
    if warnings.strip():
        fail(f"groff warns about {page}:\n{warnings}")
    r = subprocess.run(["man", "--warnings", "-l", page], capture_output=True, text=True,
                       env=dict(os.environ, MANPAGER="cat", PAGER="cat", MANWIDTH="80", LC_ALL="C.UTF-8"))
    if r.returncode != 0 or r.stderr.strip():
        fail(f"man --warnings -l {page}: exit {r.returncode}: {r.stderr}")
    r = subprocess.run(["lexgrog", page], capture_output=True, text=True)
    if r.returncode != 0 or ' - ' not in r.stdout:
        fail(f"lexgrog finds no NAME section in {page}: {r.stdout}{r.stderr}")
    return text


def roff_text(line):
    """The words a man(7) font macro line prints: .BI a b -> "ab", .B a b -> "a b"."""
    m = re.match(r"^\.(B|I|SM|SB|BI|IB|BR|RB|IR|RI|SS)(?:\s+(.*))?$", line)
    if not m:
        return line
    args = [a[1:-1] if a.startswith('"') else a for a in re.findall(r'"[^"]*"|\S+', m.group(2) or "")]
    text = " ".join(args) if m.group(1) in ("B", "I", "SM", "SB", "SS") else "".join(args)
    return re.sub(r"\\f[BIRP]|\\&|\\c$", "", text).replace("\\-", "-").replace("\\e", "\\")


def terms(source):
    """The first word of each .TP paragraph's tag and of each .SS heading of a page's source."""
    out = set()
    lines = open(source).read().splitlines()
    for i, line in enumerate(lines):
        term = None
        if line.startswith(".SS "):
            term = roff_text(line)
        elif line.strip() == ".TP" and i + 1 < len(lines):
            term = roff_text(lines[i + 1])
        if term and term.split():
            out.add(term.split()[0].rstrip(","))
    return out


def help_text(exe):
    r = subprocess.run([exe, "--help"], capture_output=True, text=True)
    if r.returncode != 0 or not r.stdout.startswith("usage:"):
        fail(f"{exe} --help: exit {r.returncode}: {r.stdout}{r.stderr}")
    return r.stdout


def check_config(bindsd, tmp, cfg):
    path = os.path.join(tmp, "probe.yaml")
    with open(path, "w") as f:
        json.dump(cfg, f)  # JSON is YAML
    r = subprocess.run([bindsd, "--check-config", path], capture_output=True, text=True)
    return r.returncode, r.stderr


def set_at(cfg, path, value):
    node = cfg
    for k in path[:-1]:
        if not isinstance(node.get(k), dict):
            node[k] = {}
        node = node[k]
    old = node.get(path[-1])
    node[path[-1]] = dict(old, **value) if isinstance(old, dict) else value


def config_keys(bindsd, tmp):
    """Every key path the parser accepts, a bind's name written as KEY."""
    base = {"listen": {"unix": os.path.join(tmp, "s.sock")}, "binds": {"main": {"url": "sqlite://"}}}
    rc, err = check_config(bindsd, tmp, base)
    if rc != 0:
        fail(f"the probe's base config is refused: {err}")
    keys = []

    def probe(path, shown):
        cfg = json.loads(json.dumps(base))
        set_at(cfg, path, {PROBE: 1}) if path else cfg.update({PROBE: 1})
        rc, err = check_config(bindsd, tmp, cfg)
        where = ".".join(path + [PROBE])
        m = re.search(re.escape(where) + r": unknown key \(allowed: ([^)]*)\)", err)
        if m:
            for k in m.group(1).split(", "):
                keys.append(".".join(shown + [k]))
                probe(path + [k], shown + [k])
        elif rc != 0 and where in err and path:
            # A map whose keys are names the user chooses (binds): look inside an existing entry.
            node = base
            for k in path:
                node = node.get(k) if isinstance(node, dict) else None
            if isinstance(node, dict) and node:
                name = next(iter(node))
                keys.append(".".join(shown + ["KEY"]))
                probe(path + [name], shown + ["KEY"])

    probe([], [])
    return keys


def main():
    bindsd, binds_cli, src = sys.argv[1:4]
    man = os.path.join(src, "deploy", "man")
    pages = {p: check_renders(os.path.join(man, p)) for p in ("bindsd.8", "binds.1", "binds.yaml.5")}
    tags = {p: terms(os.path.join(man, p)) for p in pages}
    print("ok: the three pages render without warnings and have a NAME line")

    # Option lines of bindsd's usage text start with the option: "  --config PATH  ...".
    opts = re.findall(r"^\s+(--[a-z][a-z-]*)", help_text(bindsd), re.M)
    if len(opts) < 5:
        fail(f"found only {opts} in bindsd --help")
    documented = tags["bindsd.8"]
    missing = [o for o in opts if o not in documented]
    if missing:
        fail(f"bindsd(8) has no OPTIONS entry for {missing} (bindsd --help has them)")
    print(f"ok: bindsd(8) documents all {len(opts)} options of bindsd --help: {' '.join(opts)}")

    usage = help_text(binds_cli)
    text = pages["binds.1"]
    opts = set(re.findall(r"(--[a-z][a-z-]*)", usage))
    commands = set()
    # "  pause KEY | resume KEY       hold new requests...": the synopsis is the text before the
    # first run of spaces; its lower-case words outside [...] are command names.
    for line in usage.split("commands:\n", 1)[-1].splitlines():
        if not line.startswith(" "):
            break
        if re.match(r"^  [a-z]", line):
            synopsis = re.sub(r"\[[^]]*\]", " ", re.split(r"\s{2,}", line.strip(), maxsplit=1)[0])
            commands.update(w for w in re.split(r"[\s|]+", synopsis) if re.fullmatch(r"[a-z]+", w))
    missing = sorted({o for o in opts if not re.search(r"(^|[\s\[(])" + re.escape(o) + r"\b", text, re.M)})
    missing += sorted(c for c in commands if c not in tags["binds.1"])
    if missing or len(commands) < 5 or len(opts) < 3:
        fail(f"binds(1) lacks {missing} (commands found in binds --help: {sorted(commands)})")
    print(f"ok: binds(1) documents the {len(opts)} options and {len(commands)} commands of binds --help:",
          " ".join(sorted(opts) + sorted(commands)))

    with tempfile.TemporaryDirectory() as tmp:
        keys = config_keys(bindsd, tmp)
    if len(keys) < 10 or "binds.KEY.pool.max" not in keys:
        fail(f"the config probe found only {keys}")
    documented = tags["binds.yaml.5"]
    missing = [k for k in keys if k not in documented]
    if missing:
        fail(f"binds.yaml(5) has no entry for {missing} (the config parser accepts them)")
    print(f"ok: binds.yaml(5) documents all {len(keys)} keys the parser accepts:", " ".join(keys))


main()
