//! The direct path of a connection: a whole request whose handler answers
//! at once is written straight into the write buffer in the turn it
//! arrived in, while the core's [`Direct`](crate::proto::server::Direct)
//! guard holds its place.

use bytes::Bytes;
use futures::future::BoxFuture;
use futures::stream::FuturesUnordered;
use tokio::io::AsyncWrite;

use super::counts::count_in;
use super::start::{request_from, start_handler, Started};
use super::{Connection, Done};
use crate::proto::server::DirectAnswer;
use crate::server::handler::{HandlerError, RequestMeta};
use crate::server::tally::Found;
use crate::wire::answer::ErrorAnswer;
use crate::wire::frame::{split_route, Frame};

impl<W: AsyncWrite + Unpin> Connection<W> {
    /// Runs the handler of `frame` (of `bytes` bytes on the wire) when the
    /// core lets it through directly: an answer ready at once is written
    /// straight out; a handler that waits first gives the request its
    /// place in its channel's order. Gives the frame back, untouched and
    /// not received, when it is not direct.
    #[inline(always)]
    pub(super) fn on_direct_frame(&mut self, frame: Frame, bytes: u64) -> Result<(), Frame> {
        let Some(mut direct) = self.core.direct(&frame) else { return Err(frame) };
        let (channel, seq, highest) = (direct.channel(), direct.seq(), direct.highest_channel_id());
        count_in(&mut self.channel_counts, &mut self.connection_count, (channel, highest), |c| {
            c.frame_received(bytes);
            c.whole_received += 1;
        });
        let (route, query) = split_route(frame.path);
        // The body follows the metadata block, if one is in force ([EXT-18]);
        // the two share the frame's bytes, held while the handler waits.
        let held = frame.data.len();
        let (metadata, body) = direct.split_body(frame.data);
        let Some(Found { name, route: found, tally }) = self.tallies.find(&self.shared.routes, &route) else {
            let answered = direct.answer(&route, ErrorAnswer::no_handler().to_body(), self.writer.direct_buffer());
            self.direct_answered(channel, answered);
            return Ok(());
        };
        let meta = metadata.and_then(RequestMeta::arrived);
        let request = request_from(&self.peer, &self.identity, channel, route, query, body, meta);
        match start_handler(&self.shared, found, tally, request, seq, (1, bytes), &mut self.clock) {
            // The answer's frames carry the route's name as the server
            // holds it: the request's own went to the handler.
            Started::Answered(answer) => {
                let answered = direct.answer(name, answer, self.writer.direct_buffer());
                self.direct_answered(channel, answered);
            }
            Started::Waiting(work) => {
                direct.defer(name.clone(), held);
                self.handlers.push(work);
            }
            Started::Offloaded(work) => {
                direct.defer(name.clone(), held);
                offload(&mut self.handlers, work, channel, seq);
            }
        }
        Ok(())
    }

    /// Counts a direct answer written straight into the writer's buffer.
    #[inline(always)]
    fn direct_answered(&mut self, channel: u32, answered: DirectAnswer) {
        if let DirectAnswer::Written { frames, bytes } = answered {
            self.writer.appended(frames, bytes);
            self.count(channel, |c| c.message_sent(frames, bytes as u64));
        }
    }
}

/// Runs a slow route's handler on a task of its own, which another worker
/// may take; its answer comes back with the other handlers' in `handlers`.
pub(super) fn offload(
    handlers: &mut FuturesUnordered<BoxFuture<'static, Done>>,
    work: BoxFuture<'static, Done>,
    channel: u32,
    seq: u64,
) {
    // Cancelled with the connection, like a handler polled here.
    let task = tokio_util::task::AbortOnDropHandle::new(tokio::spawn(work));
    handlers.push(Box::pin(async move {
        task.await.unwrap_or_else(|_| {
            let answer: Bytes = HandlerError::crashed("handler task cancelled").to_answer().to_body();
            Done::answer(channel, seq, answer)
        })
    }));
}
