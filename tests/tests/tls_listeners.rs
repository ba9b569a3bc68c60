//! The API and tracking listeners over TLS where configured: a client that
//! trusts the CA is served, and after the certificate files are replaced a
//! SIGHUP makes new connections get the new certificate, without a restart.

#![allow(clippy::unwrap_used)]

use std::{path::Path, sync::Arc};

use rustls::pki_types::{CertificateDer, ServerName, pem::PemObject};
use sluice_e2e::{
    Daemon, MustReachEnd, must_reach_end,
    tls_proxy::{make_cert, make_server_cert},
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio_rustls::TlsConnector;

/// A CA, and a certificate it signs for 127.0.0.1 named `name`, written
/// where the daemon reads its certificate (`server-cert.pem`, `server-key.pem`).
fn issue(end: &MustReachEnd, dir: &Path, name: &str) {
    make_server_cert(
        end,
        dir,
        &format!("/CN={name}"),
        "IP:127.0.0.1",
        ("ca.pem", "ca-key.pem"),
        "server-key.pem",
        "server-cert.pem",
    );
}

/// A TLS client that trusts the CA in `ca` alone.
fn trusting(ca: &Path) -> TlsConnector {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots)
    .with_no_client_auth();
    TlsConnector::from(Arc::new(config))
}

/// `GET path` over TLS trusting `ca`: the status line and the name in the
/// certificate the server showed.
async fn get(addr: &str, path: &str, ca: &Path) -> (String, String) {
    let tcp = tokio::net::TcpStream::connect(addr).await.unwrap();
    let name = ServerName::try_from("127.0.0.1").unwrap();
    let mut tls = trusting(ca).connect(name, tcp).await.unwrap();
    let shown = tls.get_ref().1.peer_certificates().unwrap()[0].to_vec();
    let request = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n");
    tls.write_all(request.as_bytes()).await.unwrap();
    let mut answer = Vec::new();
    let _ = tls.read_to_end(&mut answer).await;
    let answer = String::from_utf8_lossy(&answer);
    let status = answer.lines().next().unwrap_or_default().to_owned();
    let name = ["first", "second"]
        .into_iter()
        .find(|n| shown.windows(n.len()).any(|w| w == n.as_bytes()))
        .unwrap_or("unknown")
        .to_owned();
    (status, name)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn api_and_tracking_speak_tls_and_take_a_new_certificate_on_sighup() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    make_cert(
        &end,
        certs,
        "/CN=sluice-test-ca",
        &[],
        "ca-key.pem",
        "ca.pem",
    );
    issue(&end, certs, "first");
    let (cert, key) = (certs.join("server-cert.pem"), certs.join("server-key.pem"));
    let files = format!(
        "tls_cert_file = \"{}\"\ntls_key_file = \"{}\"\n",
        cert.display(),
        key.display()
    );
    let daemon = Daemon::start(dir.path(), &format!("[api]\n{files}\n[tracking]\n{files}"));
    let ca = certs.join("ca.pem");
    assert_eq!(
        get(&daemon.api, "/healthz", &ca).await,
        ("HTTP/1.1 200 OK".to_owned(), "first".to_owned())
    );
    let (status, shown) = get(&daemon.tracking, "/no-such-link", &ca).await;
    assert!(status.starts_with("HTTP/1.1 "), "{status}");
    assert_eq!(shown, "first");

    issue(&end, certs, "second");
    daemon.hangup();
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
    while get(&daemon.api, "/healthz", &ca).await.1 != "second" {
        assert!(std::time::Instant::now() < deadline, "{}", daemon.log());
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(get(&daemon.tracking, "/x", &ca).await.1, "second");
    assert!(
        daemon.log().contains("TLS certificate reloaded"),
        "{}",
        daemon.log()
    );
    end.reached();
}

#[test]
fn a_certificate_that_cannot_be_read_stops_the_start_naming_the_key() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nope.pem");
    let config = dir.path().join("sluice.toml");
    std::fs::write(
        &config,
        format!(
            "[listen]\napi = \"127.0.0.1:0\"\ntracking = \"127.0.0.1:0\"\nbounce = \"127.0.0.1:0\"\n\
             [api]\ntls_cert_file = \"{0}\"\ntls_key_file = \"{0}\"\n[tracking]\ntls_cert_file = \"{0}\"\n",
            missing.display()
        ),
    )
    .unwrap();
    let out = std::process::Command::new(sluice_e2e::sluice_bin())
        .args(["check-config"])
        .arg(&config)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(err.contains("api.tls_cert_file: cannot read"), "{err}");
    assert!(
        err.contains("tracking.tls_cert_file and tracking.tls_key_file go together"),
        "{err}"
    );
}

/// Reads one SMTP reply (its last line) from `io`.
async fn reply<R: tokio::io::AsyncBufRead + Unpin>(io: &mut R) -> String {
    use tokio::io::AsyncBufReadExt;
    let mut all = String::new();
    loop {
        let mut line = String::new();
        io.read_line(&mut line).await.unwrap();
        all.push_str(&line);
        if line.len() < 4 || line.as_bytes()[3] != b'-' {
            return all;
        }
    }
}

/// The bounce listener offers STARTTLS with its certificate, carries the
/// session on over TLS (no second STARTTLS offered), and refuses commands
/// sent in the same packet as STARTTLS (they would pass as encrypted).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_bounce_listener_offers_starttls_and_refuses_injected_commands() {
    let end = must_reach_end();
    let dir = tempfile::tempdir().unwrap();
    let certs = dir.path();
    make_cert(
        &end,
        certs,
        "/CN=sluice-test-ca",
        &[],
        "ca-key.pem",
        "ca.pem",
    );
    issue(&end, certs, "first");
    let daemon = Daemon::start(
        dir.path(),
        &format!(
            "[email]\nbounce_tls_cert_file = \"{}\"\nbounce_tls_key_file = \"{}\"\n",
            certs.join("server-cert.pem").display(),
            certs.join("server-key.pem").display()
        ),
    );

    // Commands after STARTTLS in the same packet: refused in the clear.
    let mut sneaky = tokio::io::BufReader::new(
        tokio::net::TcpStream::connect(&daemon.bounce)
            .await
            .unwrap(),
    );
    assert!(reply(&mut sneaky).await.starts_with("220 "));
    sneaky
        .get_mut()
        .write_all(b"STARTTLS\r\nMAIL FROM:<>\r\n")
        .await
        .unwrap();
    assert!(reply(&mut sneaky).await.starts_with("554 "));

    let mut plain = tokio::io::BufReader::new(
        tokio::net::TcpStream::connect(&daemon.bounce)
            .await
            .unwrap(),
    );
    assert!(reply(&mut plain).await.starts_with("220 "));
    plain
        .get_mut()
        .write_all(b"EHLO mx.example\r\n")
        .await
        .unwrap();
    let offer = reply(&mut plain).await;
    assert!(offer.contains("250-STARTTLS"), "{offer}");
    plain.get_mut().write_all(b"STARTTLS\r\n").await.unwrap();
    assert!(reply(&mut plain).await.starts_with("220 "));

    let tls = trusting(&certs.join("ca.pem"))
        .connect(
            ServerName::try_from("127.0.0.1").unwrap(),
            plain.into_inner(),
        )
        .await
        .unwrap();
    let mut secure = tokio::io::BufReader::new(tls);
    secure
        .get_mut()
        .write_all(b"EHLO mx.example\r\n")
        .await
        .unwrap();
    let offer = reply(&mut secure).await;
    assert!(
        offer.starts_with("250-") && !offer.contains("STARTTLS"),
        "{offer}"
    );
    secure
        .get_mut()
        .write_all(b"MAIL FROM:<>\r\nRCPT TO:<b+x@bounces.example.com>\r\n")
        .await
        .unwrap();
    assert!(reply(&mut secure).await.starts_with("250 "));
    assert!(reply(&mut secure).await.starts_with("250 "));
    secure.get_mut().write_all(b"QUIT\r\n").await.unwrap();
    assert!(reply(&mut secure).await.starts_with("221 "));
    end.reached();
}

/// SIGHUP never ends the daemon (its default action), TLS or not.
#[test]
fn sighup_without_tls_leaves_the_daemon_serving() {
    let dir = tempfile::tempdir().unwrap();
    let mut daemon = Daemon::start(dir.path(), "");
    daemon.hangup();
    sluice_e2e::wait_until(
        "log line about SIGHUP",
        std::time::Duration::from_secs(10),
        || {
            daemon
                .log()
                .contains("SIGHUP: no TLS certificate to reload")
        },
    );
    assert_eq!(daemon.get("/healthz").status, 200);
    assert!(daemon.terminate(), "still running, exits cleanly");
}
