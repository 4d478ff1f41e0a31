//! TLS for IIP (spec §1: IIP runs over TCP, optionally inside TLS), with
//! rustls and its `ring` crypto provider, which builds from crates.io alone.
//!
//! These helpers build the rustls configurations the server and client take
//! from PEM files, as `iip serve --tls-cert/--tls-key/--tls-client-ca` and
//! `iip call --tls --tls-ca/--insecure` do. Anything rustls accepts can be
//! given to [`crate::server::Server::serve_tls`] and
//! [`crate::client::Client::connect_tls`] directly instead.

use std::path::Path;
use std::sync::Arc;

use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio_rustls::rustls;
use tokio_rustls::rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use tokio_rustls::rustls::{DigitallySignedStruct, SignatureScheme};

pub use tokio_rustls::rustls::{ClientConfig, ServerConfig};
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// A TLS setup that could not be built; names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A PEM file could not be read or held nothing usable.
    #[error("{path}: {detail}")]
    Pem {
        /// The file.
        path: String,
        /// What was wrong.
        detail: String,
    },
    /// rustls refused the configuration (e.g. a key that does not match
    /// the certificate).
    #[error("TLS configuration refused: {0}")]
    Config(#[from] rustls::Error),
    /// A client verifier could not be built from the CA file.
    #[error("client CA: {0}")]
    ClientCa(String),
    /// Not a DNS name or IP address usable as a TLS server name.
    #[error("invalid TLS server name {0:?}")]
    ServerName(String),
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Every certificate of a PEM file.
pub fn load_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let pem_error = |detail: String| TlsError::Pem { path: path.display().to_string(), detail };
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| pem_error(e.to_string()))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(e.to_string()))?;
    if certs.is_empty() {
        return Err(pem_error("no certificate in the file".into()));
    }
    Ok(certs)
}

/// The first private key of a PEM file (PKCS#8, PKCS#1 or SEC1).
pub fn load_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    PrivateKeyDer::from_pem_file(path)
        .map_err(|e| TlsError::Pem { path: path.display().to_string(), detail: e.to_string() })
}

/// A root store holding every certificate of a PEM file.
fn roots(path: &Path) -> Result<rustls::RootCertStore, TlsError> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in load_certs(path)? {
        roots.add(cert).map_err(|e| TlsError::Pem { path: path.display().to_string(), detail: e.to_string() })?;
    }
    Ok(roots)
}

/// A server configuration from a certificate chain and key (PEM files);
/// with `client_ca`, clients must present a certificate signed by it
/// (mutual TLS).
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, TlsError> {
    let builder = ServerConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match client_ca {
        None => builder.with_no_client_auth(),
        Some(ca) => {
            let verifier =
                rustls::server::WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider())
                    .build()
                    .map_err(|e| TlsError::ClientCa(e.to_string()))?;
            builder.with_client_cert_verifier(verifier)
        }
    };
    Ok(Arc::new(builder.with_single_cert(load_certs(cert)?, load_key(key)?)?))
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Default)]
pub enum ServerTrust<'a> {
    /// The CA certificates of a PEM file.
    CaFile(&'a Path),
    /// Accept any certificate: no protection against a man in the middle.
    /// For tests and for servers with self-signed certificates only.
    #[default]
    Insecure,
}

/// A client configuration; with `identity` (certificate chain and key
/// files), the client presents a certificate (mutual TLS).
pub fn client_config(trust: ServerTrust<'_>, identity: Option<(&Path, &Path)>) -> Result<Arc<ClientConfig>, TlsError> {
    let builder = ClientConfig::builder_with_provider(provider()).with_safe_default_protocol_versions()?;
    let builder = match trust {
        ServerTrust::CaFile(ca) => builder.with_root_certificates(roots(ca)?),
        ServerTrust::Insecure => builder.dangerous().with_custom_certificate_verifier(Arc::new(AcceptAnyCertificate)),
    };
    let config = match identity {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => builder.with_client_auth_cert(load_certs(cert)?, load_key(key)?)?,
    };
    Ok(Arc::new(config))
}

/// The TLS server name of `host` (a DNS name or an IP address).
pub fn server_name(host: &str) -> Result<ServerName<'static>, TlsError> {
    ServerName::try_from(host.to_string()).map_err(|_| TlsError::ServerName(host.to_string()))
}

/// The host part of `host:port` or `[v6]:port`, as a server name would use it.
pub fn host_of(addr: &str) -> &str {
    let host = addr.rsplit_once(':').map_or(addr, |(host, _)| host);
    host.trim_start_matches('[').trim_end_matches(']')
}

/// The verifier behind [`ServerTrust::Insecure`]: checks signatures, not
/// who signed the certificate.
#[derive(Debug)]
struct AcceptAnyCertificate;

impl ServerCertVerifier for AcceptAnyCertificate {
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
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls12_signature(message, cert, dss, &algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        let algorithms = provider().signature_verification_algorithms;
        rustls::crypto::verify_tls13_signature(message, cert, dss, &algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        provider().signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hosts_of_addresses() {
        assert_eq!(host_of("example.com:9090"), "example.com");
        assert_eq!(host_of("[::1]:9090"), "::1");
        assert_eq!(host_of("127.0.0.1:1"), "127.0.0.1");
        assert!(server_name("localhost").is_ok());
        assert!(server_name("::1").is_ok());
        assert!(matches!(server_name("not a name"), Err(TlsError::ServerName(_))));
    }

    #[test]
    fn missing_and_empty_pem_files_name_the_file() {
        let err = load_certs(Path::new("/nonexistent/cert.pem")).unwrap_err();
        assert!(err.to_string().starts_with("/nonexistent/cert.pem:"), "{err}");
        let empty = std::env::temp_dir().join(format!("iip-empty-{}.pem", std::process::id()));
        std::fs::write(&empty, "").unwrap();
        let err = load_certs(&empty).unwrap_err();
        assert!(err.to_string().contains("no certificate"), "{err}");
        let _ = std::fs::remove_file(empty);
    }
}
