"""A Python filter: tenant check and audit trail (docs/python.md).

- `on_request`: a request without the tenant header (`x-tenant` unless the
  config says otherwise) is refused with 400 and a JSON body; otherwise
  the tenant goes into `request.metadata["audit.tenant"]`, where later
  plugins read it (the native `headers` filter renders `{audit.tenant}`,
  the users app echoes it) and the request id into the upstream header
  `x-audit-id`.
- `on_response`: adds `x-audit: <tenant> <status>` to every response.

```yaml
plugins:
  audit:
    kind: python
    filter: ../python-plugins/filters/audit.py
    config: { header: x-tenant, tenants: [acme, globex] }   # optional; no list = any tenant
```
"""

from covet import JSONResponse, Request, Response

HEADER = "x-tenant"
TENANTS: "set[str] | None" = None


def init(config: dict | None) -> None:
    """Reads the manifest's config once, at load."""
    global HEADER, TENANTS
    config = config or {}
    HEADER = str(config.get("header", HEADER)).lower()
    if "tenants" in config:
        TENANTS = {str(t) for t in config["tenants"]}


def on_request(request: Request) -> Response | None:
    tenant = request.headers.get(HEADER)
    if not tenant:
        return JSONResponse({"error": "missing_tenant", "header": HEADER}, status_code=400)
    if TENANTS is not None and tenant not in TENANTS:
        return JSONResponse({"error": "unknown_tenant", "tenant": tenant}, status_code=403)
    request.metadata["audit.tenant"] = tenant
    request.headers["x-audit-id"] = request.id
    return None


def on_response(request: Request, response: Response) -> None:
    tenant = request.metadata.get("audit.tenant", "-")
    response.headers["x-audit"] = f"{tenant} {response.status_code}"
