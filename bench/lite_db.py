#!/usr/bin/env python3
"""Creates the benchmark's SQLite database at PATH: table kv, keys 1..10,000 (the point select's).

    /usr/bin/python3 bench/lite_db.py PATH

Used by bench/run.sh and bench/ab.sh, so both measure the same table.
"""
import sqlite3
import sys

c = sqlite3.connect(sys.argv[1])
c.execute("CREATE TABLE kv (k INTEGER PRIMARY KEY, v TEXT NOT NULL)")
c.executemany("INSERT INTO kv VALUES (?, ?)", [(i, "value-%d" % i) for i in range(1, 10001)])
c.commit()
