//! Where a client connects: TCP or a Unix domain socket, optionally inside
//! TLS, named as on the command line (`host:port` or `unix:/path`).

#[cfg(feature = "tls")]
use std::fmt;
#[cfg(feature = "tls")]
use std::sync::Arc;

#[cfg(feature = "tls")]
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite};

use super::{Client, ClientConfig, ClientError};

/// A byte stream of any transport.
pub trait Transport: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Transport for T {}

/// A connected stream of any transport.
pub type BoxStream = Box<dyn Transport>;

/// TLS settings of an endpoint.
#[cfg(feature = "tls")]
#[derive(Clone)]
pub struct TlsTarget {
    /// The rustls client configuration (trust, client certificate).
    pub config: Arc<crate::tls::ClientConfig>,
    /// The name the server's certificate must carry.
    pub server_name: ServerName<'static>,
}

/// TLS settings of an endpoint: none exist without the `tls` feature.
#[cfg(not(feature = "tls"))]
#[derive(Clone, Debug)]
#[non_exhaustive]
pub enum TlsTarget {}

#[cfg(feature = "tls")]
impl fmt::Debug for TlsTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TlsTarget").field("server_name", &self.server_name).finish_non_exhaustive()
    }
}

/// A server to connect to.
#[derive(Debug, Clone)]
pub struct Endpoint {
    /// `host:port`, or `unix:/path` for a Unix domain socket.
    pub addr: String,
    /// TLS inside the transport, if any.
    pub tls: Option<TlsTarget>,
    /// Credentials offered in the hello (`[EXT-8]`), if any.
    pub credentials: Option<crate::proto::extensions::Credentials>,
}

impl Endpoint {
    /// A plain endpoint: `host:port` or `unix:/path`.
    pub fn new(addr: impl Into<String>) -> Endpoint {
        Endpoint { addr: addr.into(), tls: None, credentials: None }
    }

    /// The same endpoint inside TLS.
    #[cfg(feature = "tls")]
    pub fn with_tls(mut self, config: Arc<crate::tls::ClientConfig>, server_name: ServerName<'static>) -> Endpoint {
        self.tls = Some(TlsTarget { config, server_name });
        self
    }

    /// The same endpoint, offering `credentials` in its hello (`[EXT-8]`).
    pub fn with_credentials(mut self, credentials: crate::proto::extensions::Credentials) -> Endpoint {
        self.credentials = Some(credentials);
        self
    }

    /// Opens the transport (and runs the TLS handshake); errors name the
    /// address and what failed.
    pub async fn connect_stream(&self) -> Result<BoxStream, ClientError> {
        let failed = |e: std::io::Error| ClientError::Connect(format!("{}: {e}", self.addr));
        let stream: BoxStream = match self.addr.strip_prefix("unix:") {
            #[cfg(unix)]
            Some(path) => Box::new(tokio::net::UnixStream::connect(path).await.map_err(failed)?),
            #[cfg(not(unix))]
            Some(_) => return Err(ClientError::Connect(format!("{}: Unix sockets need a Unix system", self.addr))),
            None => {
                let tcp = tokio::net::TcpStream::connect(self.addr.as_str()).await.map_err(failed)?;
                let _ = tcp.set_nodelay(true);
                Box::new(tcp)
            }
        };
        let Some(tls) = &self.tls else { return Ok(stream) };
        #[cfg(not(feature = "tls"))]
        match *tls {}
        #[cfg(feature = "tls")]
        self.tls_handshake(tls, stream).await
    }

    #[cfg(feature = "tls")]
    async fn tls_handshake(&self, tls: &TlsTarget, stream: BoxStream) -> Result<BoxStream, ClientError> {
        let connector = tokio_rustls::TlsConnector::from(tls.config.clone());
        let stream = connector
            .connect(tls.server_name.clone(), stream)
            .await
            .map_err(|e| ClientError::Tls(format!("TLS handshake with {} failed: {}", self.addr, tls_cause(&e))))?;
        Ok(Box::new(stream))
    }

    /// Connects a client and says hello with this endpoint's credentials
    /// (unless `config`'s extensions are off).
    pub async fn connect(&self, config: ClientConfig) -> Result<Client, ClientError> {
        let client = if self.tls.is_none() && !self.addr.starts_with("unix:") {
            // A TCP stream split without a lock.
            Client::connect_tcp(self.addr.as_str(), config).await.map_err(|err| match err {
                ClientError::Connect(why) => ClientError::Connect(format!("{}: {why}", self.addr)),
                other => other,
            })?
        } else {
            Client::over(self.connect_stream().await?, config)
        };
        client.hello(self.credentials.as_ref()).await?;
        Ok(client)
    }
}

/// The most specific description of a failed handshake: rustls's own error
/// when there is one (certificate expired, unknown issuer, name mismatch,
/// a peer that does not speak TLS), otherwise the I/O error.
#[cfg(feature = "tls")]
fn tls_cause(err: &std::io::Error) -> String {
    match err.get_ref().and_then(|inner| inner.downcast_ref::<tokio_rustls::rustls::Error>()) {
        Some(tokio_rustls::rustls::Error::InvalidMessage(m)) => {
            format!("the server's answer is not TLS ({m:?}); does it serve plain IIP?")
        }
        Some(tls) => crate::tls::explain_certificate_error(tls).unwrap_or_else(|| tls.to_string()),
        None if err.kind() == std::io::ErrorKind::UnexpectedEof => {
            "the server closed the connection during the handshake; does it serve plain IIP?".into()
        }
        None => err.to_string(),
    }
}
