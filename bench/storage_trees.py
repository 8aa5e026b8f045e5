"""Hashing an object-store tree vs. the same tree on local disk, as ratios measured in the same run.

A tree of N 640x480 JPEGs (made from the sample photos) is hashed by curate.dedupe.hashing.hash_files from a local
folder (baseline) and from s3:// on a local S3 server (moto's server mode on 127.0.0.1: no network, but
every object still goes through HTTP, botocore and s3fs), cold (no cache) and warm (local cache hit by
ETag: only the listing is redone). One worker; the local page cache is warm for the baseline.

Usage: python bench/storage_trees.py [--images 200] [--workers 1]
"""

from __future__ import annotations

import argparse
import os
import socket
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=200)
    ap.add_argument("--workers", type=int, default=1)
    args = ap.parse_args()
    from dedupe import make_jpegs  # bench/dedupe.py
    from moto.server import ThreadedMotoServer

    tmp = Path(tempfile.mkdtemp())
    os.environ.update(CURATE_CACHE_DIR=str(tmp / "cache"), AWS_ACCESS_KEY_ID="x", AWS_SECRET_ACCESS_KEY="x",
                      AWS_DEFAULT_REGION="us-east-1")
    port = _port()
    os.environ["AWS_ENDPOINT_URL"] = f"http://127.0.0.1:{port}"
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    import logging

    logging.getLogger("werkzeug").setLevel(logging.ERROR)
    try:
        import s3fs

        from curate.dedupe.hashing import hash_files

        root = tmp / "tree"
        for i, lab in enumerate(("a", "b", "c", "d")):
            (root / "train" / lab).mkdir(parents=True)
            make_jpegs(root / "train" / lab, (640, 480), args.images // 4 + (i < args.images % 4))
        fs = s3fs.S3FileSystem()
        fs.mkdir("bench")
        fs.put(str(root) + "/", "bench/tree/", recursive=True)
        url = "s3://bench/tree"

        def timed(where) -> tuple[float, object]:
            t = time.perf_counter()
            df = hash_files(where, workers=args.workers, quiet=True)
            return time.perf_counter() - t, df

        hash_files(root, workers=args.workers, quiet=True)  # warm the page cache, then time without cache
        import shutil

        shutil.rmtree(root / ".curate", ignore_errors=True)
        local, a = timed(root)
        cold, b = timed(url)
        warm, c = timed(url)
        assert a.drop(columns=[]).equals(b) and b.equals(c), "s3 hashes differ from local"
        n = len(a)
        print(f"{n} JPEGs 640x480, {args.workers} worker(s); hashes identical local/s3")
        print(f"local (baseline)     {local:6.2f} s  {n / local:7.1f} img/s  1.00x")
        print(f"s3 cold (moto)       {cold:6.2f} s  {n / cold:7.1f} img/s  {local / cold:.2f}x")
        print(f"s3 warm (ETag cache) {warm:6.2f} s  {n / warm:7.1f} img/s  {local / warm:.2f}x")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
