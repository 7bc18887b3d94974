#!/usr/bin/env python3
"""Keys and tokens for examples/gateway.yaml: an Ed25519 signing key, its JWK
set (what the demo identity provider serves), and EdDSA JWTs signed with it.
Standard library plus the `openssl` command (3.0 or later); auth-jwt takes
only asymmetric keys from a fetched JWK set, so the HS256 tokens of
examples/make_token.py do not fit here.

usage: token.py keygen DIR            # DIR/signing.pem (private) and DIR/jwks.json (public)
       token.py mint KEY [--sub SUB] [--aud AUD] [--iss ISS] [--ttl SECONDS] [--kid KID]
"""
import argparse
import base64
import json
import os
import subprocess
import tempfile
import time

KID = "gateway-demo"


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def openssl(*args) -> bytes:
    return subprocess.run(["openssl", *args], capture_output=True, check=True).stdout


def keygen(directory: str, kid: str) -> None:
    os.makedirs(directory, exist_ok=True)
    key = os.path.join(directory, "signing.pem")
    openssl("genpkey", "-algorithm", "ed25519", "-out", key)
    os.chmod(key, 0o600)
    public = openssl("pkey", "-in", key, "-pubout", "-outform", "DER")[-32:]  # the raw key ends the SPKI
    jwk = {"kty": "OKP", "crv": "Ed25519", "x": b64(public), "kid": kid, "alg": "EdDSA", "use": "sig"}
    with open(os.path.join(directory, "jwks.json"), "w") as f:
        json.dump({"keys": [jwk]}, f, indent=2)


def mint(key: str, a: argparse.Namespace) -> str:
    now = int(time.time())
    header = {"alg": "EdDSA", "typ": "JWT", "kid": a.kid}
    claims = {"sub": a.sub, "aud": a.aud, "iss": a.iss, "iat": now, "exp": now + a.ttl}
    signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
    with tempfile.NamedTemporaryFile() as message:  # Ed25519 signs in one shot: openssl wants a file
        message.write(signing_input.encode())
        message.flush()
        signature = openssl("pkeyutl", "-sign", "-inkey", key, "-rawin", "-in", message.name)
    return signing_input + "." + b64(signature)


def main() -> None:
    p = argparse.ArgumentParser()
    sub = p.add_subparsers(dest="command", required=True)
    k = sub.add_parser("keygen")
    k.add_argument("dir")
    k.add_argument("--kid", default=KID)
    m = sub.add_parser("mint")
    m.add_argument("key")
    m.add_argument("--sub", default="demo-user")
    m.add_argument("--aud", default="gateway-demo")
    m.add_argument("--iss", default="https://id.gateway.example")
    m.add_argument("--ttl", type=int, default=3600)
    m.add_argument("--kid", default=KID)
    a = p.parse_args()
    if a.command == "keygen":
        keygen(a.dir, a.kid)
    else:
        print(mint(a.key, a))


if __name__ == "__main__":
    main()
