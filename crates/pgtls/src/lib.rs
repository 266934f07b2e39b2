//! PostgreSQL connections over TLS, for both PostgreSQL clients of lakecdp (the catalog
//! and the export target): one [`PgTls`] per connection setting, made from its
//! [`SslMode`] and CA file, hands tokio-postgres a rustls connector (ring provider).
//!
//! What each mode guarantees:
//!
//! - `disable`: plain TCP, never TLS.
//! - `prefer`: TLS when the server offers it, otherwise plain TCP; the certificate is
//!   not checked.
//! - `require`: TLS or no connection; the certificate is not checked, so a listener
//!   learns nothing but a man in the middle can still pose as the server.
//! - `verify-full`: TLS or no connection; the server's certificate must chain to the CA
//!   file (`sslrootcert`) and name the host connected to (DNS name or IP address).
//!
//! When the server's certificate allows it, SCRAM sign-ins over TLS bind the TLS channel
//! (`tls-server-end-point`), so a relayed sign-in fails.
#![warn(missing_docs)]

use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use lakecdp_core::SslMode;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::{ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
use tokio_postgres_rustls::MakeRustlsConnect;

pub use tokio_postgres_rustls::MakeRustlsConnect as Connector;

/// Why a TLS setting cannot be used.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// `verify-full` was asked for without a CA file.
    #[error("`sslmode` `verify-full` needs `sslrootcert`: the PEM file of the certificate authority that signed the server's certificate")]
    RootCertMissing,
    /// The CA file cannot be read or holds no certificate.
    #[error("`sslrootcert` {path}: {message} (give a PEM file with the certificate authority's certificate)")]
    RootCert {
        /// The file.
        path: String,
        /// What is wrong.
        message: String,
    },
    /// rustls refused the configuration.
    #[error("TLS cannot be set up: {0}")]
    Setup(String),
}

/// The TLS side of one PostgreSQL connection setting.
#[derive(Clone)]
pub struct PgTls {
    mode: SslMode,
    root_cert: Option<PathBuf>,
    connector: MakeRustlsConnect,
}

impl fmt::Debug for PgTls {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PgTls")
            .field("mode", &self.mode)
            .field("root_cert", &self.root_cert)
            .finish()
    }
}

impl PgTls {
    /// The TLS setting of `mode`; `root_cert` is the CA file, required by `verify-full`
    /// and used by no other mode. Reads the CA file now, so a bad one is reported when
    /// the setting is made, not at the first connection.
    pub fn new(mode: SslMode, root_cert: Option<&Path>) -> Result<Self, Error> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| Error::Setup(e.to_string()))?;
        let config = match mode {
            SslMode::VerifyFull => {
                let path = root_cert.ok_or(Error::RootCertMissing)?;
                builder
                    .with_root_certificates(roots(path)?)
                    .with_no_client_auth()
            }
            SslMode::Disable | SslMode::Prefer | SslMode::Require => builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
                .with_no_client_auth(),
        };
        Ok(Self {
            mode,
            root_cert: root_cert.map(Path::to_path_buf),
            connector: MakeRustlsConnect::new(config),
        })
    }

    /// Plain TCP.
    pub fn disabled() -> Result<Self, Error> {
        Self::new(SslMode::Disable, None)
    }

    /// The mode.
    pub fn mode(&self) -> SslMode {
        self.mode
    }

    /// Set `config`'s own `sslmode` to match (tokio-postgres knows disable, prefer and
    /// require; the certificate checks of `verify-full` are the connector's).
    pub fn apply(&self, config: &mut tokio_postgres::Config) {
        use tokio_postgres::config::SslMode as Pg;
        config.ssl_mode(match self.mode {
            SslMode::Disable => Pg::Disable,
            SslMode::Prefer => Pg::Prefer,
            SslMode::Require | SslMode::VerifyFull => Pg::Require,
        });
    }

    /// The connector to pass to `tokio_postgres::Config::connect`.
    pub fn connector(&self) -> MakeRustlsConnect {
        self.connector.clone()
    }

    /// How the connection is secured, in words, for checks and logs.
    pub fn describe(&self) -> &'static str {
        match self.mode {
            SslMode::Disable => "plain TCP, no TLS",
            SslMode::Prefer => "TLS if the server offers it, certificate not checked",
            SslMode::Require => "TLS, certificate not checked",
            SslMode::VerifyFull => "TLS, certificate and host name verified",
        }
    }
}

fn roots(path: &Path) -> Result<RootCertStore, Error> {
    let bad = |message: String| Error::RootCert {
        path: path.display().to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| bad(e.to_string()))?;
    if certs.is_empty() {
        return Err(bad("no certificate found".into()));
    }
    let mut store = RootCertStore::empty();
    for cert in certs {
        store
            .add(cert)
            .map_err(|e| bad(format!("not a usable CA certificate: {e}")))?;
    }
    Ok(store)
}

/// `require` and `prefer`: any certificate is taken (as libpq does), but the handshake's
/// signatures are still checked, so the session is encrypted to the key of the
/// certificate presented.
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn verify_full_needs_a_readable_ca_file() {
        let err = PgTls::new(SslMode::VerifyFull, None).unwrap_err();
        assert!(err.to_string().contains("sslrootcert"), "{err}");
        let dir = std::env::temp_dir().join(format!("lakecdp-pgtls-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let empty = dir.join("empty.pem");
        std::fs::write(&empty, "not a certificate\n").unwrap();
        let err = PgTls::new(SslMode::VerifyFull, Some(&empty)).unwrap_err();
        assert!(err.to_string().contains("no certificate found"), "{err}");
        let err = PgTls::new(SslMode::VerifyFull, Some(&dir.join("missing.pem"))).unwrap_err();
        assert!(err.to_string().contains("missing.pem"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
        assert_eq!(PgTls::disabled().unwrap().mode(), SslMode::Disable);
        assert!(PgTls::new(SslMode::Require, None).is_ok());
    }
}
