//! A TLS front for a plain TCP peer (e.g. the fake SMSC), so the daemon's
//! TLS client paths are tested without teaching every fake to speak TLS.
//! The certificate is made by the `openssl` command for `localhost` and
//! `127.0.0.1`; clients must accept it without a CA (`tls_insecure`).

use std::{path::Path, process::Command, sync::Arc};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;

pub struct TlsProxy {
    pub port: u16,
}

impl TlsProxy {
    /// Listens on 127.0.0.1 (ephemeral port), forwarding each TLS
    /// connection's plaintext to 127.0.0.1:`backend`. Runs until the process ends.
    pub fn start(dir: &Path, backend: u16) -> Self {
        let (cert, key) = (dir.join("proxy-cert.pem"), dir.join("proxy-key.pem"));
        let made = Command::new("openssl")
            .args([
                "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
            ])
            .args(["-subj", "/CN=localhost"])
            .args(["-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"])
            .arg("-keyout")
            .arg(&key)
            .arg("-out")
            .arg(&cert)
            .output()
            .expect("tls proxy: the openssl command is needed to make a certificate");
        assert!(made.status.success(), "openssl: {made:?}");
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
        Self { port }
    }
}
