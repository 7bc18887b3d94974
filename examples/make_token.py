#!/usr/bin/env python3
"""Mint an HS256 JWT with the standard library only (for the demo and benchmarks).

usage: make_token.py [--secret S] [--sub SUB] [--aud AUD] [--iss ISS] [--ttl SECONDS] [--kid KID]
The secret defaults to $DEMO_JWT_SECRET (what scripts/demo.sh exports).
"""
import argparse, base64, hashlib, hmac, json, os, time


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--secret", default=os.environ.get("DEMO_JWT_SECRET", "change-me-demo-secret-0123456789"))
    p.add_argument("--sub", default="demo-user")
    p.add_argument("--aud", default="demo")
    p.add_argument("--iss", default="covet-demo")
    p.add_argument("--ttl", type=int, default=3600)
    p.add_argument("--kid", default="demo-hs")
    a = p.parse_args()
    header = {"alg": "HS256", "typ": "JWT", "kid": a.kid}
    now = int(time.time())
    claims = {"sub": a.sub, "aud": a.aud, "iss": a.iss, "iat": now, "exp": now + a.ttl}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    sig = hmac.new(a.secret.encode(), signing_input.encode(), hashlib.sha256).digest()
    print(signing_input + "." + b64(sig))


if __name__ == "__main__":
    main()
