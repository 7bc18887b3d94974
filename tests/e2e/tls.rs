//! TLS listeners: ALPN (h2, http/1.1), TLS 1.2 and 1.3, `min_version`, SNI
//! certificate choice, mTLS with the client identity in plugin metadata,
//! certificate reload (new connections see the new certificate, open ones
//! keep working, a broken PEM keeps the old one), and manifest errors for
//! bad certificate files. Certificates come from rcgen at test time.

use std::{sync::Arc, time::{Duration, Instant}};

use covet_e2e::{
    Host, HostBuilder,
    certs::{Ca, Leaf},
    plugin,
    secure::TlsConn,
};
use rustls::{
    ClientConfig, ProtocolVersion,
    version::{TLS12, TLS13},
};
use serde_json::Value;

const BOTH: &[&rustls::SupportedProtocolVersion] = &[&TLS13, &TLS12];

/// Response headers the headers plugin fills from the TLS metadata.
const TAGS: &str = "{ x-tls-version: \"{tls.version}\", x-tls-alpn: \"{tls.alpn}\", x-tls-sni: \"{tls.sni}\", \
    x-client: \"{tls.client.subject}\", x-client-san: \"{tls.client.san}\", x-client-sha256: \"{tls.client.fingerprint}\" }";

/// A manifest with a plain listener (for readiness) and a TLS one whose
/// `tls:` block is `tls` (YAML flow mapping); `/echo` runs headers → echo.
pub fn manifest(tls: &str, extra: &str) -> String {
    let echo = Value::String(plugin("covet-test-plugin").display().to_string());
    let headers = Value::String(plugin("covet-headers").display().to_string());
    format!(
        "listen:\n  - addr: 127.0.0.1:0\n  - addr: 127.0.0.1:0\n    tls: {tls}\n{extra}\
         plugins:\n  tag:\n    kind: native\n    path: {headers}\n    config: {{ response: {{ set: {TAGS} }} }}\n\
         \x20 echo:\n    kind: native\n    path: {echo}\n    config: {{ label: tls }}\n\
         routes:\n  - path: /echo\n    filters: [tag]\n    handler: echo\n"
    )
}

/// A host with `site.pem`/`site.key` for `localhost` issued by `ca`.
pub fn with_site(builder: HostBuilder, site: &Leaf) -> HostBuilder {
    builder.listeners(2).file("site.pem", site.cert_pem.clone()).file("site.key", site.key_pem.clone())
}

pub const SITE_TLS: &str = "{ cert: site.pem, key: site.key }";

async fn start(builder: HostBuilder) -> Host {
    let host = builder.start();
    host.wait_ready().await;
    host
}

fn tls_addr(host: &Host) -> std::net::SocketAddr {
    host.addrs[1]
}

fn config(ca: &Ca, alpn: &[&[u8]]) -> Arc<ClientConfig> {
    ca.client_config(alpn, BOTH, None)
}

#[tokio::test]
async fn alpn_h2_and_http1_are_negotiated_and_served() {
    let ca = Ca::new("test CA");
    let host = start(with_site(Host::builder(manifest(SITE_TLS, "")), &ca.server(&["localhost"]))).await;
    for (alpn, version) in [(&b"h2"[..], http::Version::HTTP_2), (&b"http/1.1"[..], http::Version::HTTP_11)] {
        let mut conn = TlsConn::connect(tls_addr(&host), "localhost", config(&ca, &[alpn])).await.expect("TLS connect");
        assert_eq!(conn.alpn.as_deref(), Some(alpn));
        let reply = conn.get("/echo").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.version, version);
        assert_eq!(reply.header("x-tls-alpn"), std::str::from_utf8(alpn).ok());
        assert_eq!(reply.header("x-tls-sni"), Some("localhost"));
        assert_eq!(reply.header("x-client"), None, "no client certificate, no tls.client.*");
        assert_eq!(reply.header("alt-svc"), None, "no http3 on this listener");
    }
}

#[tokio::test]
async fn tls12_and_tls13_clients_work_and_min_version_refuses_12() {
    let ca = Ca::new("test CA");
    let site = ca.server(&["localhost"]);
    let host = start(with_site(Host::builder(manifest(SITE_TLS, "")), &site)).await;
    for (only, expected, text) in [(&TLS12, ProtocolVersion::TLSv1_2, "1.2"), (&TLS13, ProtocolVersion::TLSv1_3, "1.3")] {
        let config = ca.client_config(&[b"http/1.1"], &[only], None);
        let mut conn = TlsConn::connect(tls_addr(&host), "localhost", config).await.expect("TLS connect");
        assert_eq!(conn.version, Some(expected));
        let reply = conn.get("/echo").await.unwrap();
        assert_eq!(reply.header("x-tls-version"), Some(text));
    }

    let strict = manifest("{ cert: site.pem, key: site.key, min_version: \"1.3\" }", "");
    let host = start(with_site(Host::builder(strict), &site)).await;
    let old = ca.client_config(&[b"http/1.1"], &[&TLS12], None);
    assert!(TlsConn::connect(tls_addr(&host), "localhost", old).await.is_err(), "a TLS 1.2 client was accepted");
    let new = ca.client_config(&[b"http/1.1"], &[&TLS13], None);
    let mut conn = TlsConn::connect(tls_addr(&host), "localhost", new).await.expect("TLS 1.3 client");
    assert_eq!(conn.get("/echo").await.unwrap().status, 200);
}

#[tokio::test]
async fn sni_picks_the_certificate_for_the_name() {
    let ca = Ca::new("test CA");
    let (site, alpha, beta) = (ca.server(&["localhost"]), ca.server(&["alpha.test"]), ca.server(&["beta.test"]));
    let tls = "{ cert: site.pem, key: site.key, sni: [{ cert: alpha.pem, key: alpha.key }, { cert: beta.pem, key: beta.key, names: [beta.test] }] }";
    let builder = with_site(Host::builder(manifest(tls, "")), &site)
        .file("alpha.pem", alpha.cert_pem.clone())
        .file("alpha.key", alpha.key_pem.clone())
        .file("beta.pem", beta.cert_pem.clone())
        .file("beta.key", beta.key_pem.clone());
    let host = start(builder).await;
    for (name, leaf) in [("alpha.test", &alpha), ("beta.test", &beta), ("localhost", &site)] {
        let conn = TlsConn::connect(tls_addr(&host), name, config(&ca, &[b"h2"])).await.expect("TLS connect");
        assert_eq!(conn.peer.as_ref(), Some(&leaf.der), "wrong certificate for {name}");
    }
    // An unknown name gets the default certificate (which the client then rejects: wrong name).
    let err = TlsConn::connect(tls_addr(&host), "gamma.test", config(&ca, &[b"h2"])).await.err().expect("name mismatch");
    assert!(err.to_string().contains("certificate"), "{err}");
}

#[tokio::test]
async fn mtls_accepts_a_known_client_and_refuses_others() {
    let ca = Ca::new("test CA");
    let clients = Ca::new("client CA");
    let stranger_ca = Ca::new("stranger CA");
    let tls = "{ cert: site.pem, key: site.key, client_ca: clients.pem }";
    let builder = with_site(Host::builder(manifest(tls, "")), &ca.server(&["localhost"])).file("clients.pem", clients.pem());
    let host = start(builder).await;

    let ada = clients.client("ada");
    let good = ca.client_config(&[b"h2"], BOTH, Some(&ada));
    let mut conn = TlsConn::connect(tls_addr(&host), "localhost", good).await.expect("mTLS connect");
    let reply = conn.get("/echo").await.expect("mTLS request");
    assert_eq!(reply.status, 200, "{}", reply.text());
    assert_eq!(reply.header("x-client"), Some("CN=ada"), "the headers plugin saw tls.client.subject");
    assert_eq!(reply.header("x-client-san"), Some("DNS:ada.clients.test"));
    let expected: String = sha256_hex(&ada.der);
    assert_eq!(reply.header("x-client-sha256"), Some(expected.as_str()));

    for (who, config) in [
        ("a client without a certificate", ca.client_config(&[b"h2"], BOTH, None)),
        ("a client of another CA", ca.client_config(&[b"h2"], BOTH, Some(&stranger_ca.client("eve")))),
    ] {
        // TLS 1.3 reports a refused client certificate after the handshake, on first use.
        let outcome = match TlsConn::connect(tls_addr(&host), "localhost", config).await {
            Ok(mut conn) => conn.get("/echo").await.map(|r| r.status),
            Err(e) => Err(e),
        };
        assert!(outcome.is_err(), "{who} was served: {outcome:?}");
    }
}

/// Polls new connections until one sees `leaf`'s certificate.
async fn wait_for_cert(host: &Host, ca: &Ca, leaf: &Leaf) -> bool {
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if let Ok(conn) = TlsConn::connect(tls_addr(host), "localhost", config(ca, &[b"http/1.1"])).await
            && conn.peer.as_ref() == Some(&leaf.der)
        {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    false
}

#[tokio::test]
async fn certificate_reload_reaches_new_connections_and_spares_open_ones() {
    let ca = Ca::new("test CA");
    let (first, second) = (ca.server(&["localhost"]), ca.server(&["localhost"]));
    let host = start(with_site(Host::builder(manifest(SITE_TLS, "")), &first)).await;
    let mut old = TlsConn::connect(tls_addr(&host), "localhost", config(&ca, &[b"http/1.1"])).await.unwrap();
    assert_eq!(old.peer.as_ref(), Some(&first.der));
    assert_eq!(old.get("/echo").await.unwrap().status, 200);

    std::fs::write(host.path("site.key"), &second.key_pem).unwrap();
    std::fs::write(host.path("site.pem"), &second.cert_pem).unwrap();
    assert!(wait_for_cert(&host, &ca, &second).await, "new connections never saw the new certificate; logs:\n{}", host.logs());
    assert_eq!(old.get("/echo").await.expect("the old keep-alive connection still works").status, 200);

    std::fs::write(host.path("site.pem"), "-----BEGIN CERTIFICATE-----\nbroken\n-----END CERTIFICATE-----\n").unwrap();
    let logged = host.log_line(&["TLS certificates not reloaded"]).await;
    assert!(logged.is_some(), "no error for the broken PEM; logs:\n{}", host.logs());
    let conn = TlsConn::connect(tls_addr(&host), "localhost", config(&ca, &[b"http/1.1"])).await.expect("still serving");
    assert_eq!(conn.peer.as_ref(), Some(&second.der), "the last good certificate keeps serving");
}

#[tokio::test]
async fn bad_certificate_files_are_manifest_errors_with_location() {
    let ca = Ca::new("test CA");
    let site = ca.server(&["localhost"]);
    let other = ca.server(&["localhost"]);
    let cases = [
        ("{ cert: missing.pem, key: site.key }", "cannot read certificate file", "listen[1].tls.cert"),
        ("{ cert: site.pem, key: other.key }", "does not fit certificate", "listen[1].tls.key"),
        ("{ cert: site.key, key: site.key }", "no certificate in", "listen[1].tls.cert"),
    ];
    for (tls, message, key) in cases {
        let out = with_site(Host::builder(manifest(tls, "")), &site).file("other.key", other.key_pem.clone()).check(Duration::from_secs(30));
        assert!(!out.status.success(), "covet check accepted {tls}");
        let text = format!("{}{}", out.stdout, out.stderr);
        assert!(text.contains(message) && text.contains(key), "{tls}: {text}");
        assert!(text.contains(":4:"), "no line:column for {tls}: {text}");
    }
    let out = Host::builder(manifest(SITE_TLS, "").replace("    tls: { cert: site.pem, key: site.key }\n", "    http3: true\n"))
        .check(Duration::from_secs(30));
    let text = format!("{}{}", out.stdout, out.stderr);
    assert!(!out.status.success() && text.contains("`http3: true` needs `tls`"), "{text}");
}

fn sha256_hex(der: &[u8]) -> String {
    use sha2::Digest;
    sha2::Sha256::digest(der).iter().map(|b| format!("{b:02x}")).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wasm_outbound_https_verifies_the_server_against_the_webpki_roots() {
    let ca = Ca::new("test CA");
    let target_host = start(with_site(Host::builder(manifest(SITE_TLS, "")), &ca.server(&["localhost"]))).await;
    let target = format!("localhost:{}", tls_addr(&target_host).port());
    let fetch = serde_json::json!({ "probe": "fetch", "url": format!("https://{target}/echo") });
    let caps = serde_json::json!({ "capabilities": { "outbound_http": [target] } });
    let host = crate::wasm::Gateway::new().wasm_with("fetch", "covet_wasm_probe", fetch, caps).route("/fetch", &[], "fetch").start().await;
    let report = host.http1().get("/fetch").await.unwrap().json();
    // The test CA is not a public root: the host's rustls client refuses the server.
    assert_eq!(report["ok"], false, "{report}");
    let error = report["error"].as_str().unwrap_or_default();
    assert!(error.to_lowercase().contains("tls") || error.contains("certificate"), "{error}");
}

#[tokio::test]
async fn tls_listeners_are_served_on_io_uring_when_asked() {
    let ca = Ca::new("test CA");
    let builder = with_site(Host::builder(manifest(SITE_TLS, "io: uring\n")), &ca.server(&["localhost"]));
    let host = start(builder.env_remove("COVET_IO")).await;
    let line = host.log_line(&["io backend: uring ("]).await;
    assert!(line.is_some(), "TLS listeners kept the host off io_uring; logs:\n{}", host.logs());
    assert!(covet_e2e::io_uring_fds(host.pid()) >= 1, "no anon_inode:[io_uring] among the host's fds");
    for alpn in [&b"h2"[..], &b"http/1.1"[..]] {
        let mut conn = TlsConn::connect(tls_addr(&host), "localhost", config(&ca, &[alpn])).await.expect("TLS connect");
        let reply = conn.get("/echo").await.unwrap();
        assert_eq!(reply.status, 200, "{}", reply.text());
        assert_eq!(reply.header("x-tls-alpn"), std::str::from_utf8(alpn).ok());
    }
}
