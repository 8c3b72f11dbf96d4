"""Child process: a what-if for engine fix 3 (BENCHMARKS.md): blobs streamed through the registry's
`/v2` upload API instead of ECR's base64 layer-upload API, then the engine's own promotion (which
then finds every blob present and only puts manifests). Prints one JSON line.

    python -m bench.v2_copy_child SOURCE DIGEST TARGET TAG BLOB_DIGEST:SIZE...

A prototype to size the fix, not engine code: no retries, no fallback to the layer-upload API.
"""

from __future__ import annotations

import http.client
import json
import sys
import time
import urllib.parse
from concurrent.futures import ThreadPoolExecutor

from bench.promote_child import peak_rss_bytes
from promoter.aws.registry import EcrRegistry, make_ecr_client
from promoter.model.plan import Action, SourceImage
from promoter.workflows.promote import BLOB_COPY_CONCURRENCY, Promoter

CHUNK_BYTES = 1024 * 1024


def copy_blob_v2(endpoint: str, token: str, source: str, target: str, digest: str, size: int) -> int:
    """GET the blob from the source, stream it as the body of a monolithic upload into the target."""
    url = urllib.parse.urlsplit(endpoint)
    auth = {"Authorization": f"Basic {token}"}
    down = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    up = http.client.HTTPConnection(url.hostname, url.port, timeout=300)
    try:
        down.request("GET", f"/v2/{source}/blobs/{digest}", headers=auth)
        body = down.getresponse()
        if body.status == 307:  # ECR serves blobs from a pre-signed URL on another host: no credentials
            body.read()
            down.close()
            signed = urllib.parse.urlsplit(body.getheader("Location") or "")
            down = http.client.HTTPConnection(signed.hostname, signed.port, timeout=300)
            down.request("GET", f"{signed.path}?{signed.query}")
            body = down.getresponse()
        if body.status != 200:
            raise RuntimeError(f"GET {digest}: {body.status}")
        up.request("POST", f"/v2/{target}/blobs/uploads/", headers={**auth, "Content-Length": "0"})
        opened = up.getresponse()
        opened.read()
        location = urllib.parse.urlsplit(opened.getheader("Location") or "")
        query = f"{location.query}&" if location.query else ""
        up.putrequest("PUT", f"{location.path}?{query}digest={urllib.parse.quote(digest)}")
        for key, value in {
            **auth,
            "Content-Length": str(size),
            "Content-Type": "application/octet-stream",
        }.items():
            up.putheader(key, value)
        up.endheaders()
        sent = 0
        while chunk := body.read(CHUNK_BYTES):
            up.send(chunk)
            sent += len(chunk)
        done = up.getresponse()
        done.read()
        if done.status != 201:
            raise RuntimeError(f"PUT {digest}: {done.status}")
        return sent
    finally:
        down.close()
        up.close()


def main(argv: list[str]) -> int:
    source, digest, target, tag, *blobs = argv
    client = make_ecr_client()
    promoter = Promoter(EcrRegistry(client))
    after_imports = peak_rss_bytes()
    started = time.perf_counter()
    auth = client.get_authorization_token()["authorizationData"][0]
    endpoint, token = auth["proxyEndpoint"].rstrip("/"), auth["authorizationToken"]
    pairs = [(d, int(s)) for d, s in (b.rsplit(":", 1) for b in blobs)]
    with ThreadPoolExecutor(BLOB_COPY_CONCURRENCY) as pool:
        sent = sum(pool.map(lambda p: copy_blob_v2(endpoint, token, source, target, *p), pairs))
    blobs_seconds = time.perf_counter() - started
    result = promoter.promote(Action("bench", SourceImage(source, "bench", digest), target, tag))
    out = {
        "outcome": result.outcome,
        "stats": result.to_dict()["stats"],
        "bytes_sent": sent,
        "blobs_seconds": blobs_seconds,
        "seconds": time.perf_counter() - started,
        "peak_rss_after_imports": after_imports,
        "peak_rss": peak_rss_bytes(),
    }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
