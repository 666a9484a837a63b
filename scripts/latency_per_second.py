#!/usr/bin/env python3
"""Per-second server-side latency of a running Strata node, from its /metrics.

Every second it scrapes /metrics (signed with an admin credential) and prints,
for that second: HTTP POST requests and the bucket bound their p99 falls in,
WAL fdatasyncs and their p99 bucket, and GET requests with their p50 bucket.
Histograms count since start, so each line is the difference of two scrapes.

Without --url it follows the node a `strata-loadtest --spawn` or `compare`
run started (the newest `strata-loadtest-*` directory under the temporary
directory, its server found by its listening port), across the runs of one
invocation; it stops on Ctrl-C.

    python3 scripts/latency_per_second.py [--url http://127.0.0.1:8080 --credentials <data-dir>/admin-credentials]
"""
import argparse
import glob
import hashlib
import hmac
import os
import re
import subprocess
import sys
import tempfile
import time
import urllib.request


def credentials(path):
    values = dict(line.split("=", 1) for line in open(path).read().split() if "=" in line)
    return values["access_key"], values["secret_key"]


def spawned():
    """(url, credentials file) of the newest node a load test started."""
    dirs = glob.glob(os.path.join(tempfile.gettempdir(), "strata-loadtest-*", "data", "admin-credentials"))
    if not dirs:
        return None
    creds = max(dirs, key=os.path.getmtime)
    out = subprocess.run(["ss", "-ltnpH"], capture_output=True, text=True).stdout
    for line in out.splitlines():
        m = re.search(r"127\.0\.0\.1:(\d+)", line)
        if '"strata"' in line and m:
            url = f"http://127.0.0.1:{m.group(1)}"
            try:
                urllib.request.urlopen(url + "/healthz", timeout=0.5)
                return url, creds
            except Exception:
                continue
    return None


def scrape(url, creds):
    access_key, secret_key = credentials(creds)
    date = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    signature = hmac.new(secret_key.encode(), date.encode(), hashlib.sha1).hexdigest()
    request = urllib.request.Request(url + "/metrics", headers={
        "x-mq-date-time": date,
        "authorization": f"MQv2-HMAC-SHA1 Credential={access_key}, SignedHeaders=x-mq-date-time, Signature={signature}",
    })
    return urllib.request.urlopen(request, timeout=2).read().decode()


def buckets(text, family, label_filter=""):
    """Cumulative bucket counts by `le`, summed over the series that match."""
    out = {}
    for line in text.splitlines():
        if line.startswith(family + "_bucket") and label_filter in line:
            le = re.search(r'le="([^"]+)"', line).group(1)
            out[le] = out.get(le, 0) + float(line.rsplit(" ", 1)[1])
    return out


def quantile_bound(before, after, q):
    """(count, bucket bound holding quantile q) of the observations between two scrapes."""
    diff = {le: after[le] - before.get(le, 0) for le in after}
    total = diff.get("+Inf", 0)
    if total <= 0:
        return 0, "-"
    for le in sorted(diff, key=lambda k: float("inf") if k == "+Inf" else float(k)):
        if diff[le] >= q * total:
            return int(total), le
    return int(total), "+Inf"


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--url")
    parser.add_argument("--credentials")
    args = parser.parse_args()
    if bool(args.url) != bool(args.credentials):
        sys.exit("--url and --credentials go together")
    previous = None
    while True:
        target = (args.url, args.credentials) if args.url else spawned()
        try:
            text = scrape(*target) if target else None
        except Exception:
            text = None
        if text is None:
            previous = None
            time.sleep(0.5)
            continue
        now = (
            buckets(text, "strata_http_request_duration_seconds", 'method="POST"'),
            buckets(text, "strata_wal_sync_seconds"),
            buckets(text, "strata_http_request_duration_seconds", 'method="GET"'),
        )
        if previous:
            post = quantile_bound(previous[0], now[0], 0.99)
            sync = quantile_bound(previous[1], now[1], 0.99)
            get = quantile_bound(previous[2], now[2], 0.5)
            print(f"{time.strftime('%H:%M:%S')} POST {post[0]} p99<={post[1]}s"
                  f"  fdatasync {sync[0]} p99<={sync[1]}s  GET {get[0]} p50<={get[1]}s", flush=True)
        previous = now
        time.sleep(1)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt:
        pass
