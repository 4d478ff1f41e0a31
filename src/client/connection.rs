//! The client connection task: owns the sans-IO [`ClientConnection`], reads
//! server frames, and routes each response to the caller waiting for it.

use std::collections::HashMap;

use bytes::{Bytes, BytesMut};
use futures::StreamExt;
use tokio::net::TcpStream;
use tokio::sync::{mpsc, oneshot};
use tokio_util::codec::FramedRead;

use crate::codec::{CodecError, FrameCodec};
use crate::frame::FrameLimits;
use crate::proto::client::{ClientConnection, ClientEvent, RequestError, RequestId};
use crate::writer::spawn_writer;

use super::ClientError;

/// Where a response goes.
pub(crate) enum Reply {
    /// The whole body, once complete.
    Whole(oneshot::Sender<Result<Bytes, ClientError>>),
    /// Each frame's data as it arrives.
    Stream(mpsc::UnboundedSender<Result<Bytes, ClientError>>),
}

impl Reply {
    fn fail(self, err: ClientError) {
        match self {
            Reply::Whole(tx) => drop(tx.send(Err(err))),
            Reply::Stream(tx) => drop(tx.send(Err(err))),
        }
    }
}

/// What callers ask the connection task to do.
pub(crate) enum Command {
    Call { channel: u32, path: Bytes, body: Bytes, reply: Reply },
    Open { via: u32, reply: oneshot::Sender<Result<u32, ClientError>> },
    Delete { channel: u32, reply: oneshot::Sender<Result<(), ClientError>> },
}

struct Waiter {
    reply: Reply,
    body: BytesMut,
}

fn refused(err: RequestError) -> ClientError {
    match err {
        RequestError::Closed => ClientError::Closed("connection closed".into()),
        other => ClientError::Refused(other),
    }
}

/// Runs one client connection until it closes; every caller still waiting
/// then gets [`ClientError::Closed`] (`[CLOSE-5]`).
pub(crate) async fn run(stream: TcpStream, limits: FrameLimits, mut commands: mpsc::UnboundedReceiver<Command>) {
    let _ = stream.set_nodelay(true);
    let (read_half, write_half) = stream.into_split();
    let mut reader = FramedRead::new(read_half, FrameCodec::new(limits));
    let (sink, writer) = spawn_writer(write_half, limits);
    let mut core = ClientConnection::new(limits);
    let mut calls: HashMap<RequestId, Waiter> = HashMap::new();
    let mut opens: HashMap<RequestId, oneshot::Sender<Result<u32, ClientError>>> = HashMap::new();
    let reason: String = loop {
        tokio::select! {
            command = commands.recv() => match command {
                Some(Command::Call { channel, path, body, reply }) => match core.request(channel, path, body) {
                    Ok(id) => { calls.insert(id, Waiter { reply, body: BytesMut::new() }); }
                    Err(err) => reply.fail(refused(err)),
                },
                Some(Command::Open { via, reply }) => match core.open_channel(via) {
                    Ok(id) => { opens.insert(id, reply); }
                    Err(err) => drop(reply.send(Err(refused(err)))),
                },
                Some(Command::Delete { channel, reply }) => {
                    let _ = reply.send(core.delete_channel(channel).map_err(refused));
                }
                None => break "client dropped".to_string(),
            },
            frame = reader.next() => match frame {
                Some(Ok(frame)) => match core.receive(frame) {
                    Ok(Some(ClientEvent::Response { id, data, complete })) => deliver(&mut calls, id, data, complete),
                    Ok(Some(ClientEvent::ChannelOpened { id, channel })) => {
                        if let Some(tx) = opens.remove(&id) { let _ = tx.send(Ok(channel)); }
                    }
                    Ok(Some(ClientEvent::ChannelRefused { id, code, message })) => {
                        if let Some(tx) = opens.remove(&id) { let _ = tx.send(Err(ClientError::Server { code, message })); }
                    }
                    Ok(Some(ClientEvent::PeerClosed { reason })) => {
                        break format!("server closed the connection: {}", String::from_utf8_lossy(&reason));
                    }
                    Ok(None) => {}
                    Err(err) => break err.to_string(),
                },
                Some(Err(CodecError::Decode(err))) => break err.to_string(),
                Some(Err(err)) => break err.to_string(),
                None => break "server closed the connection".to_string(),
            },
        }
        let mut batch = Vec::new();
        core.drain_transmit(&mut batch);
        if sink.send(batch).await.is_err() {
            break "write failed".to_string();
        }
    };
    for id in core.close() {
        if let Some(waiter) = calls.remove(&id) {
            waiter.reply.fail(ClientError::Closed(reason.clone()));
        }
        if let Some(tx) = opens.remove(&id) {
            let _ = tx.send(Err(ClientError::Closed(reason.clone())));
        }
    }
    // Commands that were queued but never sent fail too.
    commands.close();
    while let Ok(command) = commands.try_recv() {
        match command {
            Command::Call { reply, .. } => reply.fail(ClientError::Closed(reason.clone())),
            Command::Open { reply, .. } => drop(reply.send(Err(ClientError::Closed(reason.clone())))),
            Command::Delete { reply, .. } => drop(reply.send(Err(ClientError::Closed(reason.clone())))),
        }
    }
    drop(sink);
    let _ = writer.await;
}

fn deliver(calls: &mut HashMap<RequestId, Waiter>, id: RequestId, data: Bytes, complete: bool) {
    // A caller that gave up (timeout, cancel) has no waiter: the answer is
    // consumed and dropped, and the next caller still gets its own.
    let Some(waiter) = calls.get_mut(&id) else { return };
    match &waiter.reply {
        Reply::Stream(tx) => {
            let _ = tx.send(Ok(data));
            if complete {
                calls.remove(&id);
            }
        }
        Reply::Whole(_) => {
            if complete {
                let Some(waiter) = calls.remove(&id) else { return };
                let body = if waiter.body.is_empty() {
                    data
                } else {
                    let mut body = waiter.body;
                    body.extend_from_slice(&data);
                    body.freeze()
                };
                if let Reply::Whole(tx) = waiter.reply {
                    let _ = tx.send(Ok(body));
                }
            } else {
                waiter.body.extend_from_slice(&data);
            }
        }
    }
}
