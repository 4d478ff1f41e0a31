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

/// How to make a certificate a server can use, told with every refusal.
const MAKE_ONE: &str =
    "make one with `iip cert --name HOST --ip ADDR`, or with openssl as a leaf signed by a separate CA, \
with basicConstraints=CA:FALSE and a subjectAltName naming the server";

/// A TLS setup that could not be built; names the file or setting at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
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
    /// The server's own certificate is one no client accepts for a server:
    /// a CA certificate (what `openssl req -x509` makes by default), one
    /// that names no host in a subjectAltName, one out of its validity.
    #[error("{path}: {why}; {MAKE_ONE}")]
    UnusableServerCertificate {
        /// The certificate file.
        path: String,
        /// What is wrong with it.
        why: String,
    },
}

/// Why `cert` cannot be a server's own certificate, if it cannot: clients
/// (rustls, Go's crypto/tls, browsers) refuse a CA certificate as a
/// server's (`CaUsedAsEndEntity`), match names only in the
/// subjectAltName, and refuse a certificate out of its validity period.
pub fn unusable_as_server_certificate(cert: &CertificateDer<'_>) -> Option<String> {
    use x509_parser::prelude::{FromDer, GeneralName, X509Certificate};
    let Ok((_, parsed)) = X509Certificate::from_der(cert.as_ref()) else {
        return Some("the certificate is not valid DER X.509".into());
    };
    let subject = parsed.subject().to_string();
    if parsed.basic_constraints().ok().flatten().is_some_and(|bc| bc.value.ca) {
        return Some(format!(
            "the certificate of {subject:?} is a CA certificate (basicConstraints CA:TRUE), which clients refuse as a server's own"
        ));
    }
    let names = parsed
        .subject_alternative_name()
        .ok()
        .flatten()
        .map(|san| {
            san.value
                .general_names
                .iter()
                .filter(|n| matches!(n, GeneralName::DNSName(_) | GeneralName::IPAddress(_)))
                .count()
        })
        .unwrap_or(0);
    if names == 0 {
        return Some(format!(
            "the certificate of {subject:?} names no DNS name or IP address in a subjectAltName, and clients match names only there"
        ));
    }
    if !parsed.validity().is_valid() {
        let validity = parsed.validity();
        return Some(format!(
            "the certificate of {subject:?} is valid from {} to {}, not now",
            validity.not_before, validity.not_after
        ));
    }
    None
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
    let chain = load_certs(cert)?;
    if let Some(why) = chain.first().and_then(unusable_as_server_certificate) {
        return Err(TlsError::UnusableServerCertificate { path: cert.display().to_string(), why });
    }
    Ok(Arc::new(builder.with_single_cert(chain, load_key(key)?)?))
}

/// What a client's failed certificate check means, in words: which check
/// failed and what to do about it. `None` for errors that are not about
/// the server's certificate.
pub fn explain_certificate_error(err: &rustls::Error) -> Option<String> {
    use rustls::CertificateError as E;
    let rustls::Error::InvalidCertificate(cert) = err else { return None };
    let text = match cert {
        E::Other(other) if other.to_string().contains("CaUsedAsEndEntity") => {
            "the server presents a CA certificate as its own, which no client accepts; \
             the server needs a leaf certificate (basicConstraints CA:FALSE) signed by that CA"
                .to_string()
        }
        E::UnknownIssuer => "the server's certificate is not signed by a CA this client trusts; \
             give the CA that signed it (--tls-ca FILE)"
            .into(),
        E::NotValidForName | E::NotValidForNameContext { .. } => {
            format!(
                "the server's certificate does not name the host this client asked for ({cert}); \
             connect by a name its subjectAltName holds, or make it name this one"
            )
        }
        E::Expired | E::ExpiredContext { .. } => format!("the server's certificate has expired ({cert})"),
        E::NotValidYet | E::NotValidYetContext { .. } => {
            format!("the server's certificate is not valid yet ({cert}); check both clocks")
        }
        E::BadSignature => "the server's certificate has a signature that does not verify".into(),
        E::Revoked => "the server's certificate is revoked".into(),
        E::BadEncoding => "the server's certificate is not valid X.509".into(),
        other => format!("the server's certificate was refused: {other}"),
    };
    Some(text)
}

/// How a client checks the server's certificate.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
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

/// `config` writing the session keys of its connections to the file the
/// environment variable `SSLKEYLOGFILE` names (nothing while it is unset),
/// in the NSS key log format Wireshark reads, so that a capture can be
/// decrypted. Whoever holds that file can read those connections: for
/// debugging test traffic only. A configuration logs no keys unless made
/// with this.
pub fn server_with_key_log(config: Arc<ServerConfig>) -> Arc<ServerConfig> {
    let mut config = Arc::unwrap_or_clone(config);
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Arc::new(config)
}

/// The client side of [`server_with_key_log`]: `config` writing its
/// session keys to the file `SSLKEYLOGFILE` names.
pub fn client_with_key_log(config: Arc<ClientConfig>) -> Arc<ClientConfig> {
    let mut config = Arc::unwrap_or_clone(config);
    config.key_log = Arc::new(rustls::KeyLogFile::new());
    Arc::new(config)
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
        rustls::crypto::verify_tls12_signature(message, cert, dss, &provider().signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(message, cert, dss, &provider().signature_verification_algorithms)
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
