//! The steps of the timeout cases (`[RES-5]`, `[RES-6]`), generated for
//! the idle and frame read timeouts the profile declares.

use super::profile::{closed_citing_after, echo, expect, send, sleep, TIMEOUT_SLACK_MS};
use super::session::{ExpectFrame, ExpectMessage, Step};
use super::vector::Blob;
use crate::wire::frame::DEFAULT_MAX_DATA;

/// `[RES-5]` for a declared idle timeout of `n` ms: a request 0.75 n after
/// the first, and one 0.5 n after that, are served (each restarted the
/// idle clock, so the connection, older than n by then, is not closed);
/// then, with nothing more sent, the server has closed with a close frame
/// citing `[RES-5]` by n and a little after the last answer.
pub(super) fn idle_timeout(n: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    steps.extend(echo("first"));
    steps.push(sleep(n * 3 / 4));
    steps.extend(echo("second"));
    steps.push(sleep(n / 2));
    steps.extend(echo("third"));
    steps.extend(closed_citing_after("RES-5", n));
    steps
}

/// `[RES-5]` for a declared idle timeout of `n` ms: a request whose
/// handler takes 1.2 n (`/sleep`) keeps the connection busy, not idle; it
/// is answered, and a request after it is served too.
pub(super) fn busy_not_idle(n: u64) -> Vec<Step> {
    let ms = (n * 6 / 5).to_string();
    let answer = ExpectFrame { status: Some(5), data: Some(Blob::Text(ms.clone())), ..ExpectFrame::default() };
    let mut steps = vec![send(1, "/sleep", 0, Blob::Text(ms)), sleep(n * 6 / 5 + TIMEOUT_SLACK_MS), expect(answer)];
    steps.extend(echo("after"));
    steps
}

/// `[RES-6]` for a declared frame read timeout of `n` ms: a request is
/// served, and then come the first three bytes of a frame and nothing
/// more; the server closes with a close frame citing `[RES-6]` n after
/// them, not at its idle timeout, which began with the request.
pub(super) fn frame_timeout(n: u64) -> Vec<Step> {
    let mut steps = Vec::new();
    steps.extend(echo("before"));
    steps.push(Step { send_raw: Some(Blob::Hex { hex: "01 2f 65".into() }), ..Step::default() });
    steps.extend(closed_citing_after("RES-6", n));
    steps
}

/// `[RES-5]` for a declared idle timeout of `n` ms: an answer the client
/// does not read is in flight too. An `/echo` of 16 MiB, whose answer is
/// more than the sockets between the two take, is left unread for 1.2 n;
/// then it is read whole, and a request after it is served.
pub(super) fn answer_unread_not_idle(n: u64) -> Vec<Step> {
    let body = Blob::Fill { fill: b'u', count: DEFAULT_MAX_DATA as usize };
    let answer =
        ExpectMessage { channel: 0, path: Some(Blob::Text("/echo".into())), body: body.clone(), min_frames: None };
    let mut steps = vec![send(1, "/echo", 0, body), sleep(n * 6 / 5 + TIMEOUT_SLACK_MS)];
    steps.push(Step { expect_message: Some(answer), ..Step::default() });
    steps.extend(echo("after"));
    steps
}
