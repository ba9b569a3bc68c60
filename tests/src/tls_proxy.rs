//! A TLS front for a plain TCP peer (e.g. the fake SMSC, the webhook
//! receiver), so the daemon's TLS client paths are tested without teaching
//! every fake to speak TLS. The `openssl` command makes a throw-away CA
//! (`TlsProxy::ca`, for clients configured to trust it) and a certificate it
//! signs for `localhost` and `127.0.0.1`; other clients must accept it
//! without a CA (`tls_insecure`).

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

use crate::{MustReachEnd, peers::openssl};

pub struct TlsProxy {
    pub port: u16,
    /// The PEM certificate of the CA that signed the proxy's certificate.
    pub ca: PathBuf,
}

/// Makes a P-256 key `key` and a one-day certificate `cert` in `dir` for
/// `subject`, with `extra` arguments of `openssl req` (extensions, the CA
/// that signs it; self-signed without one).
pub fn make_cert(
    end: &MustReachEnd,
    dir: &Path,
    subject: &str,
    extra: &[&str],
    key: &str,
    cert: &str,
) {
    let made = openssl(end)
        .args(["req", "-x509", "-nodes", "-days", "1", "-newkey", "ec"])
        .args(["-pkeyopt", "ec_paramgen_curve:prime256v1", "-subj", subject])
        .args(["-keyout", key, "-out", cert])
        .args(extra)
        .current_dir(dir)
        .output()
        .expect("tls proxy: openssl runs");
    assert!(made.status.success(), "openssl: {made:?}");
}

/// Makes a P-256 key `key` and a one-day server certificate `cert` in
/// `dir` for `subject` and the subject alternative names `san` (e.g.
/// `IP:127.0.0.1`), signed by the CA `ca` (its key `ca_key`) in `dir`.
pub fn make_server_cert(
    end: &MustReachEnd,
    dir: &Path,
    subject: &str,
    san: &str,
    signer: (&str, &str),
    key: &str,
    cert: &str,
) {
    let san = format!("subjectAltName={san}");
    make_signed_cert(end, dir, subject, &san, "serverAuth", signer, key, cert);
}

/// Makes a P-256 key `key` and a one-day client certificate `cert` in
/// `dir` for `subject`, signed by the CA `ca` (its key `ca_key`) in `dir`.
pub fn make_client_cert(
    end: &MustReachEnd,
    dir: &Path,
    subject: &str,
    signer: (&str, &str),
    key: &str,
    cert: &str,
) {
    let san = "subjectAltName=DNS:sluice-node";
    make_signed_cert(end, dir, subject, san, "clientAuth", signer, key, cert);
}

/// A certificate for `usage` (`serverAuth`, `clientAuth`) with extension
/// `san`, signed by `ca`.
#[allow(clippy::too_many_arguments)]
fn make_signed_cert(
    end: &MustReachEnd,
    dir: &Path,
    subject: &str,
    san: &str,
    usage: &str,
    (ca, ca_key): (&str, &str),
    key: &str,
    cert: &str,
) {
    let usage = format!("extendedKeyUsage={usage}");
    make_cert(
        end,
        dir,
        subject,
        &[
            "-addext",
            san,
            "-addext",
            "basicConstraints=critical,CA:FALSE",
            "-addext",
            &usage,
            "-CA",
            ca,
            "-CAkey",
            ca_key,
        ],
        key,
        cert,
    );
}

/// Makes a throw-away CA (`{prefix}ca.pem`, `{prefix}ca-key.pem`) in `dir`
/// and a certificate it signs for `localhost` and `127.0.0.1`
/// (`{prefix}cert.pem`, `{prefix}key.pem`).
pub fn make_ca_and_localhost_cert(end: &MustReachEnd, dir: &Path, prefix: &str) {
    let [ca, ca_key, key, cert] =
        ["ca.pem", "ca-key.pem", "key.pem", "cert.pem"].map(|name| format!("{prefix}{name}"));
    make_cert(end, dir, "/CN=sluice-test-ca", &[], &ca_key, &ca);
    make_server_cert(
        end,
        dir,
        "/CN=localhost",
        "DNS:localhost,IP:127.0.0.1",
        (&ca, &ca_key),
        &key,
        &cert,
    );
}

impl TlsProxy {
    /// Listens on 127.0.0.1 (ephemeral port), forwarding each TLS
    /// connection's plaintext to 127.0.0.1:`backend`. Runs until the process ends.
    pub fn start(end: &MustReachEnd, dir: &Path, backend: u16) -> Self {
        make_ca_and_localhost_cert(end, dir, "proxy-");
        let (cert, key) = (dir.join("proxy-cert.pem"), dir.join("proxy-key.pem"));
        let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert)
            .expect("tls proxy: certificate")
            .collect::<Result<_, _>>()
            .expect("tls proxy: certificate");
        let key = PrivateKeyDer::from_pem_file(&key).expect("tls proxy: key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(
            rustls::crypto::ring::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .expect("tls proxy: protocol versions")
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .expect("tls proxy: server config");
        let acceptor = TlsAcceptor::from(Arc::new(config));
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("tls proxy: bind");
        listener
            .set_nonblocking(true)
            .expect("tls proxy: nonblocking");
        let port = listener.local_addr().expect("tls proxy: address").port();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .expect("tls proxy: runtime");
            runtime.block_on(async move {
                let listener = TcpListener::from_std(listener).expect("tls proxy: listener");
                while let Ok((client, _)) = listener.accept().await {
                    let acceptor = acceptor.clone();
                    tokio::spawn(async move {
                        let Ok(mut tls) = acceptor.accept(client).await else {
                            return;
                        };
                        let Ok(mut plain) = TcpStream::connect(("127.0.0.1", backend)).await else {
                            return;
                        };
                        let _ = tokio::io::copy_bidirectional(&mut tls, &mut plain).await;
                    });
                }
            });
        });
        Self {
            port,
            ca: dir.join("proxy-ca.pem"),
        }
    }
}
