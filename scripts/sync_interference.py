#!/usr/bin/env python3
"""How long a WAL-like fdatasync takes while another file is written.

One thread does what the WAL's I/O thread does at a modest rate (a 4 KiB
write + fdatasync, then a 0.5 ms pause, in a loop); meanwhile the main
thread writes a 64 MiB "object" in one of three ways:

  nosync  buffered writes only (what object_store's local store did)
  fsync   buffered writes, then one fsync (the crate's `with_fsync`)
  paced   256 KiB chunks, each chunk's writeback started as it is written
          and the previous one awaited (sync_file_range), then fsync:
          what objects/src/local.rs does

It prints, per mode, how long the object took and every WAL sync over
2 ms while it was written, with its start relative to the object's start.

Usage: scripts/sync_interference.py [DIR] [ROUNDS]
DIR must be on the disk to measure (default: the current directory).
"""

import ctypes
import os
import sys
import threading
import time

LIBC = ctypes.CDLL("libc.so.6", use_errno=True)
LIBC.sync_file_range.argtypes = [ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint]
WAIT_BEFORE, WRITE, WAIT_AFTER = 1, 2, 4
OBJECT_BYTES = 64 << 20
CHUNK = 256 << 10


def wal_loop(path, stop, samples):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    block = b"w" * 4096
    offset = 0
    while not stop.is_set():
        start = time.perf_counter()
        os.pwrite(fd, block, offset)
        os.fdatasync(fd)
        samples.append((start, time.perf_counter() - start))
        offset += len(block)
        time.sleep(0.0005)
    os.close(fd)


def write_object(path, mode):
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_TRUNC)
    data = os.urandom(CHUNK)
    previous = None
    for offset in range(0, OBJECT_BYTES, CHUNK):
        os.pwrite(fd, data, offset)
        if mode == "paced":
            LIBC.sync_file_range(fd, offset, CHUNK, WRITE)
            if previous is not None:
                LIBC.sync_file_range(fd, previous, CHUNK, WAIT_BEFORE | WRITE | WAIT_AFTER)
            previous = offset
    if mode != "nosync":
        os.fsync(fd)
    os.close(fd)


def measure(directory, mode):
    wal, obj = os.path.join(directory, "interference.wal"), os.path.join(directory, "interference.obj")
    stop, samples = threading.Event(), []
    thread = threading.Thread(target=wal_loop, args=(wal, stop, samples))
    thread.start()
    time.sleep(0.3)
    started = time.perf_counter()
    write_object(obj, mode)
    took = time.perf_counter() - started
    time.sleep(0.3)
    stop.set()
    thread.join()
    # Deleted after the measurement: freeing 64 MiB (with `discard`
    # mounts, a discard of it) stalls syncs too, but is not what is measured.
    os.unlink(obj)
    os.unlink(wal)
    slow = [(at - started, d) for at, d in samples if at >= started and d > 0.002]
    during = [d for at, d in samples if started <= at <= started + took]
    print(f"{mode:7s} object {took * 1e3:6.1f} ms, {len(during)} WAL syncs meanwhile, "
          f"longest {max(during, default=0) * 1e3:.2f} ms")
    for at, d in slow:
        print(f"          sync at {at * 1e3:7.1f} ms took {d * 1e3:.2f} ms")


def main():
    directory = sys.argv[1] if len(sys.argv) > 1 else "."
    rounds = int(sys.argv[2]) if len(sys.argv) > 2 else 2
    for _ in range(rounds):
        for mode in ("nosync", "fsync", "paced"):
            measure(directory, mode)


if __name__ == "__main__":
    main()
