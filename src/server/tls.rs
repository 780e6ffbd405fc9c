//! TLS from `[server] tls_cert` / `tls_key` (PEM) with rustls, as pgwire negotiates it
//! (the client's SSLRequest is answered `S` when a certificate is configured).

use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls::ServerConfig;

use crate::config::{Config, ConfigError};

/// The acceptor for the configured certificate, or `None` when TLS is not configured.
/// A missing or unreadable file is a config error naming the key (the server refuses to
/// start rather than silently serve plaintext).
pub fn acceptor(config: &Config) -> Result<Option<TlsAcceptor>, ConfigError> {
    let (Some(cert), Some(key)) = (&config.server.tls_cert, &config.server.tls_key) else {
        return Ok(None);
    };
    let cert_path = config.resolve(&cert.to_string_lossy());
    let key_path = config.resolve(&key.to_string_lossy());
    let invalid = |key: &str, message: String| ConfigError::Invalid {
        key: key.to_string(),
        message,
    };
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(|it| it.collect::<Result<_, _>>())
        .map_err(|e| {
            invalid(
                "server.tls_cert",
                format!(
                    "cannot read a PEM certificate chain from {}: {e}",
                    cert_path.display()
                ),
            )
        })?;
    if certs.is_empty() {
        return Err(invalid(
            "server.tls_cert",
            format!("{} holds no certificate", cert_path.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(&key_path).map_err(|e| {
        invalid(
            "server.tls_key",
            format!(
                "cannot read a PEM private key from {}: {e}",
                key_path.display()
            ),
        )
    })?;
    let provider = Arc::new(tokio_rustls::rustls::crypto::ring::default_provider());
    let server = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("server.tls_cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(certs, key)
        .map_err(|e| {
            invalid(
                "server.tls_key",
                format!("the key does not fit the certificate: {e}"),
            )
        })?;
    Ok(Some(TlsAcceptor::from(Arc::new(server))))
}
