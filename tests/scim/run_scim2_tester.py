#!/usr/bin/env python3
"""Runs scim2-tester (PyPI) against a live SCIM service.

scim2-tester is a library without a command line of its own; this runs its
`check_server` with a bearer token and the server's certificate, prints one
line per check, and exits 0 only if no check failed: 1 if one did (or no
create/read/update/delete check ran), 2 if nothing could be checked at all.
A check the service's ServiceProviderConfig rules out (such as POST
/.search, which Curbside answers 501) is skipped, and skipped is not
failed.

    python run_scim2_tester.py --url https://HOST:PORT/scim/v2 --token TOKEN --cafile cert.pem
"""

import argparse
import ssl
import sys

import httpx2
from scim2_client.engines.httpx2 import SyncSCIMClient
from scim2_tester import Status, check_server

FAILING = {Status.ERROR, Status.CRITICAL}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--url", required=True, help="the SCIM base URL")
    parser.add_argument("--token", required=True, help="the bearer token")
    parser.add_argument("--cafile", required=True, help="the certificate to trust (PEM)")
    args = parser.parse_args()

    http = httpx2.Client(
        base_url=args.url.rstrip("/") + "/",
        headers={"Authorization": f"Bearer {args.token}", "Accept": "application/scim+json"},
        verify=ssl.create_default_context(cafile=args.cafile),
        timeout=30,
    )
    results = check_server(SyncSCIMClient(http), raise_exceptions=False)

    counts: dict[str, int] = {}
    for result in results:
        counts[result.status.name] = counts.get(result.status.name, 0) + 1
        kind = f"[{result.resource_type}] " if result.resource_type else ""
        print(f"{result.status.name:8} {kind}{result.title}: {result.reason or ''}")
        if result.status in FAILING and result.data is not None:
            print(f"         data: {result.data!r}"[:4000])
    print("SUMMARY " + " ".join(f"{k}={v}" for k, v in sorted(counts.items())))
    if not any(result.status == Status.SUCCESS for result in results):
        return 2
    if not any("crud:create" in result.tags for result in results):
        print("FAIL: no create/read/update/delete check ran", file=sys.stderr)
        return 1
    return 1 if any(result.status in FAILING for result in results) else 0


if __name__ == "__main__":
    sys.exit(main())
