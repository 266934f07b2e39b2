//! HTTPS with a certificate made by `openssl` for 127.0.0.1, and a client (reqwest with
//! rustls) that trusts only that certificate.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;

use lakecdp_app::{open_catalog, App};
use lakecdp_server::tls::{server_config, TlsError};
use lakecdp_server::ServerConfig;
use tokio_util::sync::CancellationToken;

fn openssl(args: &[&str], dir: &Path) {
    let out = Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .expect("openssl runs");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// A certificate authority and a certificate for 127.0.0.1 it signed: the authority's
/// certificate, the server's certificate and the server's key.
fn certificate(dir: &Path) -> (PathBuf, PathBuf, PathBuf) {
    let curve = [
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:prime256v1",
        "-nodes",
    ];
    let mut ca = vec!["req", "-x509"];
    ca.extend(curve);
    ca.extend(["-days", "1", "-subj", "/CN=lakecdp test authority"]);
    ca.extend(["-keyout", "ca.key", "-out", "ca.pem"]);
    openssl(&ca, dir);
    let mut csr = vec!["req"];
    csr.extend(curve);
    csr.extend([
        "-subj",
        "/CN=127.0.0.1",
        "-keyout",
        "key.pem",
        "-out",
        "server.csr",
    ]);
    openssl(&csr, dir);
    std::fs::write(
        dir.join("server.ext"),
        "subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\nextendedKeyUsage=serverAuth\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-days",
            "1",
            "-extfile",
            "server.ext",
            "-out",
            "cert.pem",
        ],
        dir,
    );
    (
        dir.join("ca.pem"),
        dir.join("cert.pem"),
        dir.join("key.pem"),
    )
}

#[tokio::test]
async fn the_server_speaks_https_with_the_given_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let (ca, cert, key) = certificate(dir.path());
    let catalog = open_catalog(&dir.path().join("catalog.db")).await.unwrap();
    let app = App::new(Arc::clone(&catalog), dir.path());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    let stop = CancellationToken::new();
    let task = tokio::spawn(lakecdp_server::serve(
        app,
        ServerConfig {
            tls: Some(server_config(&cert, &key).unwrap()),
            no_scheduler: true,
            ..ServerConfig::default()
        },
        listener,
        stop.clone(),
    ));

    // a client that has never seen the certificate refuses it
    let untrusting = reqwest::Client::new();
    assert!(untrusting
        .get(format!("https://{address}/healthz"))
        .send()
        .await
        .is_err());
    // plain HTTP is not answered
    assert!(untrusting
        .get(format!("http://{address}/healthz"))
        .send()
        .await
        .is_err());

    let pem = std::fs::read(&ca).unwrap();
    let client = reqwest::Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).unwrap())
        .build()
        .unwrap();
    let r = client
        .get(format!("https://{address}/healthz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.text().await.unwrap(), "ok");
    // authentication is still required over HTTPS
    let r = client
        .get(format!("https://{address}/api/environments"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);

    // a connection that never completes its handshake holds nobody up
    let _idle = tokio::net::TcpStream::connect(address).await.unwrap();
    let r = client
        .get(format!("https://{address}/readyz"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);

    stop.cancel();
    task.await.unwrap().unwrap();
}

#[test]
fn a_bad_certificate_or_key_is_named_without_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let (_, cert, key) = certificate(dir.path());
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a key: very-secret-bytes\n").unwrap();
    let e = server_config(&cert, &garbage).unwrap_err();
    assert!(matches!(e, TlsError::Key { .. }), "{e}");
    assert!(e.to_string().contains("garbage.pem"), "{e}");
    assert!(!e.to_string().contains("very-secret-bytes"), "{e}");
    let e = server_config(&garbage, &key).unwrap_err();
    assert!(matches!(e, TlsError::Certificate { .. }), "{e}");
    let e = server_config(&dir.path().join("missing.pem"), &key).unwrap_err();
    assert!(e.to_string().contains("missing.pem"), "{e}");
    // a key that is not the certificate's
    let other = tempfile::tempdir().unwrap();
    let (_, _, other_key) = certificate(other.path());
    let e = server_config(&cert, &other_key).unwrap_err();
    assert!(matches!(e, TlsError::Config(_)), "{e}");
}
