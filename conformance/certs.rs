//! Certificates made for a test run with rcgen: a CA, server certificates
//! it signs (valid or expired), and client certificates for mutual TLS.
//! Nothing secret is committed; every run makes its own.

#![allow(dead_code)]

use std::path::{Path, PathBuf};

use rcgen::{
    date_time_ymd, BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa, KeyPair,
};

/// A CA and the files of what it signed, in a folder of their own.
pub struct TestPki {
    pub dir: PathBuf,
    ca: CertifiedIssuer<'static, KeyPair>,
}

impl TestPki {
    /// A new CA named `name`, writing its files under the system's temp folder.
    pub fn new(name: &str) -> TestPki {
        let dir = std::env::temp_dir().join(format!("iip-pki-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp folder");
        let mut params = CertificateParams::new(Vec::<String>::new()).expect("CA params");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, format!("iip test CA {name}"));
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().expect("CA key")).expect("CA certificate");
        std::fs::write(dir.join("ca.pem"), ca.pem()).expect("write ca.pem");
        TestPki { dir, ca }
    }

    /// The CA certificate file.
    pub fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// A certificate for `names` (DNS names or IP addresses) signed by this
    /// CA, for a server or a client; `expired` puts its validity in the
    /// past. Returns the certificate and key files.
    pub fn issue(&self, file: &str, names: &[&str], client: bool, expired: bool) -> (PathBuf, PathBuf) {
        let mut params =
            CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>()).expect("leaf params");
        params.distinguished_name.push(DnType::CommonName, names.first().copied().unwrap_or(file));
        params.extended_key_usages =
            vec![if client { ExtendedKeyUsagePurpose::ClientAuth } else { ExtendedKeyUsagePurpose::ServerAuth }];
        if expired {
            params.not_before = date_time_ymd(2001, 1, 1);
            params.not_after = date_time_ymd(2002, 1, 1);
        }
        let key = KeyPair::generate().expect("leaf key");
        let cert = params.signed_by(&key, &self.ca).expect("leaf certificate");
        let (cert_path, key_path) = (self.dir.join(format!("{file}.pem")), self.dir.join(format!("{file}-key.pem")));
        std::fs::write(&cert_path, cert.pem()).expect("write certificate");
        std::fs::write(&key_path, key.serialize_pem()).expect("write key");
        (cert_path, key_path)
    }
}

/// A server configuration for `localhost` and 127.0.0.1 signed by `pki`.
pub fn localhost_server(pki: &TestPki) -> std::sync::Arc<iip::tls::ServerConfig> {
    let (cert, key) = pki.issue("server", &["localhost", "127.0.0.1"], false, false);
    iip::tls::server_config(&cert, &key, None).expect("server TLS config")
}

/// A client configuration trusting `pki`'s CA.
pub fn trusting_client(ca: &Path) -> std::sync::Arc<iip::tls::ClientConfig> {
    iip::tls::client_config(iip::tls::ServerTrust::CaFile(ca), None).expect("client TLS config")
}
