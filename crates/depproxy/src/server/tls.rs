//! TLS for a listener, from PEM files: the certificate chain (leaf first) and its private key.
//! HTTP/2 and HTTP/1.1 are offered by ALPN. [`TlsCertificate::reload`] (on SIGHUP) re-reads the
//! files: connections accepted afterwards get the new certificate, those open keep theirs, and a
//! pair that does not load leaves the current one in place.

use std::path::{Path, PathBuf};
use std::sync::{Arc, PoisonError, RwLock};

use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

/// Why a listener's TLS settings cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("{}: {message}", path.display())]
    Pem { path: PathBuf, message: String },
    #[error("TLS configuration: {0}")]
    Config(#[source] rustls::Error),
}

/// A listener's certificate, re-readable from its files.
#[derive(Clone)]
pub struct TlsCertificate {
    cert_pem: PathBuf,
    key_pem: PathBuf,
    current: Arc<CurrentCertificate>,
    acceptor: TlsAcceptor,
}

impl TlsCertificate {
    /// Reads the certificate chain and key; fails when they do not load or do not match.
    pub fn load(cert_pem: &Path, key_pem: &Path) -> Result<TlsCertificate, TlsError> {
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let certified = read_pair(cert_pem, key_pem, &provider)?;
        let current = Arc::new(CurrentCertificate {
            certified: RwLock::new(Arc::new(certified)),
            provider: provider.clone(),
        });
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(TlsError::Config)?
            .with_no_client_auth()
            .with_cert_resolver(current.clone());
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(TlsCertificate {
            cert_pem: cert_pem.to_owned(),
            key_pem: key_pem.to_owned(),
            current,
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The acceptor a listener hands its connections to.
    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }

    /// Re-reads the files; new connections get the new certificate. On an error the current
    /// certificate stays.
    pub fn reload(&self) -> Result<(), TlsError> {
        let certified = read_pair(&self.cert_pem, &self.key_pem, &self.current.provider)?;
        *self.current.certified.write().unwrap_or_else(PoisonError::into_inner) = Arc::new(certified);
        Ok(())
    }

    /// The certificate file (for log lines).
    pub fn cert_path(&self) -> &Path {
        &self.cert_pem
    }
}

impl std::fmt::Debug for TlsCertificate {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsCertificate")
            .field("cert_pem", &self.cert_pem)
            .field("key_pem", &self.key_pem)
            .finish()
    }
}

/// The certificate new handshakes get.
#[derive(Debug)]
struct CurrentCertificate {
    certified: RwLock<Arc<CertifiedKey>>,
    provider: Arc<rustls::crypto::CryptoProvider>,
}

impl ResolvesServerCert for CurrentCertificate {
    fn resolve(&self, _client_hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.certified.read().unwrap_or_else(PoisonError::into_inner).clone())
    }
}

fn read_pair(
    cert_pem: &Path,
    key_pem: &Path,
    provider: &rustls::crypto::CryptoProvider,
) -> Result<CertifiedKey, TlsError> {
    let unreadable = |path: &Path| {
        let path = path.to_owned();
        move |error: rustls::pki_types::pem::Error| TlsError::Pem { path, message: error.to_string() }
    };
    let certificates = CertificateDer::pem_file_iter(cert_pem)
        .map_err(unreadable(cert_pem))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(unreadable(cert_pem))?;
    if certificates.is_empty() {
        return Err(TlsError::Pem {
            path: cert_pem.to_owned(),
            message: "no certificate in the file".into(),
        });
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(unreadable(key_pem))?;
    // Checks that the key is the certificate's.
    CertifiedKey::from_der(certificates, key, provider).map_err(TlsError::Config)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn files_that_are_not_a_certificate_and_key_are_refused_with_their_path() {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("cert.pem");
        let key = dir.path().join("key.pem");
        std::fs::write(&cert, "not a certificate").unwrap();
        std::fs::write(&key, "not a key").unwrap();
        let error = TlsCertificate::load(&cert, &key).unwrap_err().to_string();
        assert!(error.contains("cert.pem") && error.contains("no certificate"), "{error}");
        let missing = TlsCertificate::load(&dir.path().join("none.pem"), &key).unwrap_err().to_string();
        assert!(missing.contains("none.pem"), "{missing}");
    }
}
