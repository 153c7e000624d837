#!/usr/bin/python3
"""A Python process racing a get-or-load (tests/mixed_cluster_test.py), as
tests/testing/cache_worker does in C++: prints "ready", waits for the key
"go" of namespace "barrier" (a watch), then get-or-loads KEY of NS; the
loader prints "loading <pid>", takes 300 ms and returns "value-<pid>".
Prints "got <value>".   cache_racer.py SOCKET NS KEY"""
import os
import sys
import threading
import time

from cluster2 import cache


def main():
    address, ns, key = sys.argv[1:4]
    go = threading.Event()
    barrier = cache.use("barrier", address=address)
    barrier.watch("go", lambda value, key: value is not None and go.set())
    print("ready", flush=True)
    if not go.wait(30):
        print("error no go", flush=True)
        return 1

    def load():
        print(f"loading {os.getpid()}", flush=True)
        time.sleep(0.3)
        return f"value-{os.getpid()}"

    value = cache.use(ns, address=address).get(key, load, wait=30)
    print(f"got {value}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
