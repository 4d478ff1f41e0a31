//! What a server connection runs over: TCP, a Unix domain socket, TLS over
//! either, or any byte stream a caller accepted. A listener yields streams
//! and who is at the other end; a stream splits into a read half and a write
//! half (lock-free for TCP and Unix sockets).

use std::fmt;
use std::future::Future;
use std::io;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncWrite};

/// Who is at the other end of a connection. Every request's
/// [`Request::peer`](super::Request::peer) is a clone of its connection's,
/// so no variant allocates when cloned: a path or a name is shared.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Peer {
    /// A TCP peer (also under TLS).
    Tcp(SocketAddr),
    /// A Unix domain socket peer, with its path when it has one.
    Unix(Option<Arc<Path>>),
    /// A stream handed to [`super::Server::serve_connection`], named by its
    /// caller (`Peer::Named("pipe-3".into())`).
    Named(Arc<str>),
}

impl Peer {
    /// The socket address of a TCP peer.
    pub fn socket_addr(&self) -> Option<SocketAddr> {
        match self {
            Peer::Tcp(addr) => Some(*addr),
            _ => None,
        }
    }
}

impl fmt::Display for Peer {
    /// `ip:port` (`[v6]:port` for IPv6), `unix:PATH`, or the caller's name.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Peer::Tcp(addr) => write!(f, "{addr}"),
            Peer::Unix(Some(path)) => write!(f, "unix:{}", path.display()),
            Peer::Unix(None) => f.write_str("unix:"),
            Peer::Named(name) => f.write_str(name),
        }
    }
}

impl From<SocketAddr> for Peer {
    fn from(addr: SocketAddr) -> Peer {
        Peer::Tcp(addr)
    }
}

/// A byte stream that splits into halves owned by two tasks.
pub trait IntoHalves: AsyncRead + AsyncWrite + Unpin + Send + 'static {
    /// The read half.
    type Read: AsyncRead + Unpin + Send + 'static;
    /// The write half.
    type Write: AsyncWrite + Unpin + Send + 'static;
    /// Splits the stream.
    fn into_halves(self) -> (Self::Read, Self::Write);
}

impl IntoHalves for tokio::net::TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        let _ = self.set_nodelay(true);
        self.into_split()
    }
}

#[cfg(unix)]
impl IntoHalves for tokio::net::UnixStream {
    type Read = tokio::net::unix::OwnedReadHalf;
    type Write = tokio::net::unix::OwnedWriteHalf;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

#[cfg(feature = "tls")]
impl<S: IntoHalves> IntoHalves for tokio_rustls::server::TlsStream<S> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
    }
}

/// Any stream, split with [`tokio::io::split`].
#[derive(Debug)]
pub struct AnyStream<S>(pub S);

impl<S: AsyncRead + AsyncWrite + Unpin + Send + 'static> IntoHalves for AnyStream<S> {
    type Read = tokio::io::ReadHalf<S>;
    type Write = tokio::io::WriteHalf<S>;
    fn into_halves(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self.0)
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for AnyStream<S> {
    fn poll_read(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &mut tokio::io::ReadBuf<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for AnyStream<S> {
    fn poll_write(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
        buf: &[u8],
    ) -> std::task::Poll<io::Result<usize>> {
        std::pin::Pin::new(&mut self.0).poll_write(cx, buf)
    }

    fn poll_flush(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_flush(cx)
    }

    fn poll_shutdown(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<io::Result<()>> {
        std::pin::Pin::new(&mut self.0).poll_shutdown(cx)
    }
}

/// A source of connections.
pub trait Listen: Send {
    /// The streams it yields.
    type Io: IntoHalves;
    /// The next connection and its peer.
    fn accept(&self) -> impl Future<Output = io::Result<(Self::Io, Peer)>> + Send;
}

impl Listen for tokio::net::TcpListener {
    type Io = tokio::net::TcpStream;
    async fn accept(&self) -> io::Result<(Self::Io, Peer)> {
        let (stream, addr) = tokio::net::TcpListener::accept(self).await?;
        Ok((stream, Peer::Tcp(addr)))
    }
}

#[cfg(unix)]
impl Listen for tokio::net::UnixListener {
    type Io = tokio::net::UnixStream;
    async fn accept(&self) -> io::Result<(Self::Io, Peer)> {
        let (stream, addr) = tokio::net::UnixListener::accept(self).await?;
        Ok((stream, Peer::Unix(addr.as_pathname().map(Arc::from))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_clone_shares_its_path_or_name() {
        let named = Peer::Named("pipe-3".into());
        let unix = Peer::Unix(Some(Arc::from(Path::new("/run/iip.sock"))));
        for peer in [named, unix] {
            let copy = peer.clone();
            let shared = match (&peer, &copy) {
                (Peer::Named(a), Peer::Named(b)) => Arc::ptr_eq(a, b),
                (Peer::Unix(Some(a)), Peer::Unix(Some(b))) => Arc::ptr_eq(a, b),
                _ => false,
            };
            assert!(shared, "{peer} was copied, not shared");
        }
        assert_eq!(Peer::Unix(Some(Arc::from(Path::new("/run/iip.sock")))).to_string(), "unix:/run/iip.sock");
        assert_eq!(Peer::Named("pipe-3".into()).to_string(), "pipe-3");
    }
}
