//! `iip cert`: a development CA and the certificates a server (and, for
//! mutual TLS, a client) needs, made with rcgen, so that TLS works without
//! a tutorial. The server's is a leaf (basicConstraints CA:FALSE) naming
//! every host given in its subjectAltName, signed by a CA of its own: what
//! clients require of a server's certificate.

use std::path::{Path, PathBuf};

use super::CliError;

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair, KeyUsagePurpose,
    SanType,
};

/// What `iip cert` makes.
#[derive(Debug, Clone)]
pub struct CertRequest {
    /// The folder the files go to (created if missing).
    pub dir: PathBuf,
    /// DNS names the server's certificate holds.
    pub names: Vec<String>,
    /// IP addresses the server's certificate holds.
    pub ips: Vec<std::net::IpAddr>,
    /// Also a client certificate, with this common name, for mutual TLS.
    pub client: Option<String>,
    /// How many days the certificates are valid.
    pub days: u32,
}

/// The files written, in the order they were written.
pub fn make(request: &CertRequest) -> Result<Vec<PathBuf>, String> {
    if request.names.is_empty() && request.ips.is_empty() {
        return Err("give the server's names: --name HOST and/or --ip ADDR".into());
    }
    std::fs::create_dir_all(&request.dir).map_err(|e| format!("{}: {e}", request.dir.display()))?;
    let failed = |what: &str, e: rcgen::Error| format!("cannot make the {what}: {e}");
    let now = time::OffsetDateTime::now_utc();
    let valid = |params: &mut CertificateParams| {
        params.not_before = now - time::Duration::hours(1);
        params.not_after = now + time::Duration::days(i64::from(request.days));
    };

    let ca_key = KeyPair::generate().map_err(|e| failed("CA key", e))?;
    let mut ca = CertificateParams::default();
    ca.distinguished_name.push(DnType::CommonName, "iip development CA");
    ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    ca.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign, KeyUsagePurpose::DigitalSignature];
    valid(&mut ca);
    let ca_cert = ca.self_signed(&ca_key).map_err(|e| failed("CA certificate", e))?;
    let issuer = Issuer::new(ca, &ca_key);

    let mut written = Vec::new();
    let mut write = |name: &str, text: String, private: bool| -> Result<(), String> {
        let path = request.dir.join(name);
        write_file(&path, text.as_bytes(), private)?;
        written.push(path);
        Ok(())
    };
    write("ca.pem", ca_cert.pem(), false)?;
    write("ca-key.pem", ca_key.serialize_pem(), true)?;

    let server_key = KeyPair::generate().map_err(|e| failed("server key", e))?;
    let mut server = CertificateParams::default();
    let first = request.names.first().cloned().unwrap_or_else(|| request.ips[0].to_string());
    server.distinguished_name.push(DnType::CommonName, first);
    server.is_ca = IsCa::ExplicitNoCa;
    server.subject_alt_names = request
        .names
        .iter()
        .map(|n| n.clone().try_into().map(SanType::DnsName).map_err(|e| format!("--name {n}: {e}")))
        .chain(request.ips.iter().map(|ip| Ok(SanType::IpAddress(*ip))))
        .collect::<Result<_, _>>()?;
    server.key_usages = vec![KeyUsagePurpose::DigitalSignature, KeyUsagePurpose::KeyEncipherment];
    server.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    valid(&mut server);
    let server_cert = server.signed_by(&server_key, &issuer).map_err(|e| failed("server certificate", e))?;
    write("server.pem", server_cert.pem(), false)?;
    write("server-key.pem", server_key.serialize_pem(), true)?;

    if let Some(common_name) = &request.client {
        let client_key = KeyPair::generate().map_err(|e| failed("client key", e))?;
        let mut client = CertificateParams::default();
        client.distinguished_name.push(DnType::CommonName, common_name.clone());
        client.is_ca = IsCa::ExplicitNoCa;
        client.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        client.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        valid(&mut client);
        let client_cert = client.signed_by(&client_key, &issuer).map_err(|e| failed("client certificate", e))?;
        write("client.pem", client_cert.pem(), false)?;
        write("client-key.pem", client_key.serialize_pem(), true)?;
    }
    Ok(written)
}

/// Writes `bytes` to `path`; a private key readable by its owner alone.
fn write_file(path: &Path, bytes: &[u8], private: bool) -> Result<(), String> {
    use std::io::Write;
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if private { 0o600 } else { 0o644 });
    }
    let mut file = options.open(path).map_err(|e| format!("{}: {e}", path.display()))?;
    #[cfg(unix)]
    if private {
        // A file that existed keeps its mode on open: set it.
        use std::os::unix::fs::PermissionsExt;
        file.set_permissions(std::fs::Permissions::from_mode(0o600)).map_err(|e| format!("{}: {e}", path.display()))?;
    }
    file.write_all(bytes).map_err(|e| format!("{}: {e}", path.display()))
}

/// The arguments of `iip cert`.
#[derive(clap::Args)]
pub(crate) struct CertArgs {
    /// A DNS name the server's certificate holds (repeatable).
    #[arg(long = "name")]
    names: Vec<String>,
    /// An IP address the server's certificate holds (repeatable).
    #[arg(long = "ip")]
    ips: Vec<std::net::IpAddr>,
    /// Also make a client certificate with this common name (mutual TLS).
    #[arg(long)]
    client: Option<String>,
    /// The folder for ca.pem, server.pem, server-key.pem (and client.pem,
    /// client-key.pem); ca-key.pem stays beside them to make more.
    #[arg(long, default_value = "certs")]
    out: std::path::PathBuf,
    /// How many days the certificates are valid.
    #[arg(long, default_value_t = 365)]
    days: u32,
}

impl CertArgs {
    pub(super) async fn run(self) -> Result<(), CliError> {
        let CertArgs { names, ips, client, out, days } = self;
        let request = CertRequest { dir: out.clone(), names, ips, client, days };
        for path in make(&request)? {
            println!("{}", path.display());
        }
        let dir = out.display();
        say!(
            "iip: serve with --tls-cert {dir}/server.pem --tls-key {dir}/server-key.pem; \
                 clients trust it with --tls --tls-ca {dir}/ca.pem"
        );
        Ok(())
    }
}
