//! TLS on the API and tracking listeners, where configured: rustls with a
//! certificate that is read again on SIGHUP, so a renewed certificate is
//! taken without a restart. A certificate that cannot be read at start
//! stops the start; one that cannot be read on SIGHUP is logged and the old
//! one kept.

use std::{
    path::{Path, PathBuf},
    sync::{Arc, RwLock},
};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject},
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use tokio::signal::unix::Signal;
use tokio_rustls::TlsAcceptor;
use tokio_util::sync::CancellationToken;

use crate::BoxError;

/// Where a listener's certificate and key are read from.
#[derive(Debug)]
struct CertFiles {
    /// The configuration keys' stem, for messages (`api.tls`, `email.bounce_tls`).
    listener: &'static str,
    cert_file: PathBuf,
    key_file: PathBuf,
    provider: Arc<CryptoProvider>,
}

impl CertFiles {
    /// The certificate and key as they are now; an error names the keys.
    fn read(&self) -> Result<CertifiedKey, String> {
        certified_key(&self.provider, &self.cert_file, &self.key_file).map_err(|e| {
            let at = self.listener;
            format!("{at}_cert_file/{at}_key_file: {e}")
        })
    }
}

/// A listener's certificate and key, from their PEM files.
#[derive(Debug)]
pub struct ReloadingCert {
    files: CertFiles,
    current: RwLock<Arc<CertifiedKey>>,
}

impl ReloadingCert {
    /// Reads the files; an error names the listener's configuration keys.
    pub fn load(
        listener: &'static str,
        cert_file: &Path,
        key_file: &Path,
    ) -> Result<Arc<Self>, String> {
        let files = CertFiles {
            listener,
            cert_file: cert_file.to_owned(),
            key_file: key_file.to_owned(),
            provider: Arc::new(rustls::crypto::ring::default_provider()),
        };
        let key = files.read()?;
        Ok(Arc::new(Self {
            files,
            current: RwLock::new(Arc::new(key)),
        }))
    }

    /// Reads the files again; on failure the certificate in use stays.
    pub fn reload(&self) -> Result<(), String> {
        let key = self.files.read()?;
        *self
            .current
            .write()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = Arc::new(key);
        Ok(())
    }

    /// An acceptor that always presents the certificate last read.
    pub fn acceptor(self: &Arc<Self>) -> Result<TlsAcceptor, String> {
        let mut config = ServerConfig::builder_with_provider(self.files.provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("{}: TLS: {e}", self.files.listener))?
            .with_no_client_auth()
            .with_cert_resolver(self.clone());
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsAcceptor::from(Arc::new(config)))
    }
}

impl ResolvesServerCert for ReloadingCert {
    fn resolve(&self, _: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(
            self.current
                .read()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .clone(),
        )
    }
}

fn certified_key(
    provider: &CryptoProvider,
    cert_file: &Path,
    key_file: &Path,
) -> Result<CertifiedKey, BoxError> {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert_file)
        .map_err(|e| format!("{}: {e}", cert_file.display()))?
        .collect::<Result<_, _>>()
        .map_err(|e| format!("{}: {e}", cert_file.display()))?;
    if chain.is_empty() {
        return Err(format!("{}: no certificate in it", cert_file.display()).into());
    }
    let key = PrivateKeyDer::from_pem_file(key_file)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    let signing = provider
        .key_provider
        .load_private_key(key)
        .map_err(|e| format!("{}: {e}", key_file.display()))?;
    let certified = CertifiedKey::new(chain, signing);
    certified.keys_match().map_err(|e| {
        format!(
            "the key in {} does not match the certificate: {e}",
            key_file.display()
        )
    })?;
    Ok(certified)
}

/// SIGHUP, taken from the start so that it never ends the daemon (its
/// default action) but reloads certificates.
pub fn hangups() -> std::io::Result<Signal> {
    tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
}

/// Reads every listener's certificate again on each SIGHUP until `shutdown`.
pub async fn reload_on_hangup(
    certs: Vec<Arc<ReloadingCert>>,
    mut hangups: Signal,
    shutdown: CancellationToken,
) {
    loop {
        tokio::select! {
            () = shutdown.cancelled() => return,
            got = hangups.recv() => if got.is_none() { return },
        }
        if certs.is_empty() {
            tracing::info!("SIGHUP: no TLS certificate to reload");
        }
        for cert in &certs {
            match cert.reload() {
                Ok(()) => {
                    tracing::info!(listener = cert.files.listener, "TLS certificate reloaded")
                }
                Err(e) => {
                    tracing::error!(error = %e, "TLS certificate not reloaded; the old one stays")
                }
            }
        }
    }
}
