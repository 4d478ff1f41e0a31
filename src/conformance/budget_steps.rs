//! The steps of the budget and handler-limit cases (`[RES-2]`, `[RES-3]`,
//! `[RES-4]`, `[RES-11]`), generated for what the profile declares. They park
//! requests in `/sleep` (the profile's `extensions=metadata` route), whose
//! body names the milliseconds to wait in decimal, zero-padded to the size
//! the case needs.

use super::profile::{echo, echo_on, expect, expect_named_error, frame_status, open_channel_1, send};
use super::session::{CloseExpect, ExpectFrame, Step};
use super::vector::Blob;
use crate::wire::answer::ErrorCode;
#[cfg(test)]
use crate::wire::frame::DEFAULT_MAX_DATA;

/// The size of each frame of the chunked request the refusal case sends.
const CHUNK: usize = 1 << 20;

/// How large the parked requests are: each a whole frame, well under the
/// frame limit, so that no parked request is itself chunked ([RES-2]
/// refuses chunked requests only).
const PARKED: usize = 2 << 20;

/// How much of the budget the refusal case leaves free beside what it
/// parks, and how large its chunked request is: twice as large.
const LEFT_FREE: usize = 2 * CHUNK;
const REFUSED_LEN: usize = 4 * CHUNK;

/// The body of a `/sleep` of `ms` milliseconds that is `len` bytes long:
/// zeros, then the digits.
fn sleep_body(len: usize, ms: u64) -> Blob {
    let digits = ms.to_string();
    Blob::Concat(vec![Blob::Fill { fill: b'0', count: len - digits.len() }, Blob::Text(digits)])
}

/// The sizes of whole-frame requests that hold `total` bytes together.
fn parked_sizes(total: usize) -> Vec<usize> {
    let mut sizes = vec![PARKED; total / PARKED];
    if total % PARKED > 0 {
        sizes.push(total % PARKED);
    }
    sizes
}

/// The sizes of whole-frame requests that reach a budget of `n` with the
/// last one and not before: the others hold at most `n` less 1 MiB
/// (room for what the server counts beside bodies), the last brings the
/// total to `n` and 64 KiB.
fn reaching_sizes(n: usize) -> Vec<usize> {
    let mut sizes = vec![PARKED; (n - (1 << 20)) / PARKED];
    let held: usize = sizes.iter().sum();
    sizes.push(n + (64 << 10) - held);
    sizes
}

/// `/sleep` requests of `ms` on channel 0, one whole frame each of the
/// `sizes` given, and their answers in order.
fn parked(sizes: &[usize], ms: u64) -> (Vec<Step>, Vec<ExpectFrame>) {
    let asks = sizes.iter().map(|&len| send(1, "/sleep", 0, sleep_body(len, ms))).collect();
    let answers = sizes
        .iter()
        .map(|&len| ExpectFrame {
            status: Some(5),
            channel: Some(0),
            path: Some(Blob::Text("/sleep".into())),
            data: Some(sleep_body(len, ms)),
            ..ExpectFrame::default()
        })
        .collect();
    (asks, answers)
}

/// `[RES-3]` for a declared budget of `n` bytes: `/sleep` requests of
/// 1.5 s whose bodies reach `n` with the last one hold the budget in
/// handlers, so the server stops reading. An `/echo` on channel 1 after
/// them gets no answer for a second; once the sleeps' answers are being
/// written, reading resumes and the echo is answered among them (in
/// which order depends on when the budget has room again).
pub(super) fn paused_at_budget(n: usize) -> Vec<Step> {
    let (asks, mut answers) = parked(&reaching_sizes(n), 1500);
    let (ask, answer) = echo_on(1, "behind the budget");
    answers.push(answer);
    let mut steps = open_channel_1().to_vec();
    steps.extend(asks);
    steps.push(ask);
    steps.push(Step { expect_silence_ms: Some(1000), ..Step::default() });
    steps.push(Step { expect_unordered: Some(answers), ..Step::default() });
    steps
}

/// `[RES-11]` for a declared budget of `n` bytes: with reading paused on
/// `/sleep` requests of 20 s that hold the budget, the client ends its
/// stream. The server still sees it leave: it cancels the waiting
/// handlers and closes at once, not after the sleeps.
pub(super) fn leaving_while_paused(n: usize) -> Vec<Step> {
    let (mut steps, _) = parked(&reaching_sizes(n), 20_000);
    steps.push(Step { expect_silence_ms: Some(300), ..Step::default() });
    steps.push(Step { end_stream: Some(true), expect_close: Some(CloseExpect::Clean), ..Step::default() });
    steps
}

/// `[RES-2]` for a declared budget of `n` bytes: `/sleep` requests of 1.5
/// s hold all but 2 MiB of it, and reading goes on. A chunked `/echo` of
/// 4 MiB on channel 1 would take the total past the budget as it grows:
/// it is refused, answered 110 at its last frame, before the sleeps'
/// answers; then channel 1 is served again.
pub(super) fn chunked_past_budget(n: usize) -> Vec<Step> {
    let (asks, answers) = parked(&parked_sizes(n - LEFT_FREE), 1500);
    let mut steps = open_channel_1().to_vec();
    steps.extend(asks);
    let frames = REFUSED_LEN / CHUNK;
    for i in 0..frames {
        let fill = b'a' + i as u8;
        steps.push(send(frame_status(frames, i), "/echo", 1, Blob::Fill { fill, count: CHUNK }));
    }
    steps.push(expect_named_error(ErrorCode::RequestTooLarge, 1));
    steps.extend(answers.into_iter().map(expect));
    let (ask, answer) = echo_on(1, "next");
    steps.extend([ask, expect(answer)]);
    steps.extend(echo("channel 0 too"));
    steps
}

/// How long [`server_full`] gives the server to read the one frame that
/// takes its total past the budget: everything before it was read, as
/// each connection's echo on channel 1 showed.
const SETTLE_MS: u64 = 300;

/// `[RES-3]` for a declared handler limit of `n`: `n` `/sleep` requests of
/// 1.2 s on channel 0 have `n` handlers running, so the server reads no
/// further: an `/echo` on channel 1 after them gets no answer for a
/// second. Once handlers finish, reading resumes and the echo is answered
/// among the sleeps' answers.
pub(super) fn handler_limit(n: usize) -> Vec<Step> {
    let (ask, answer) = parked(&[16], 1200);
    let mut steps = open_channel_1().to_vec();
    steps.extend(ask.into_iter().map(|step| Step { repeat: Some(n), ..step }));
    let (echo_ask, echo_answer) = echo_on(1, "behind the handler limit");
    steps.push(echo_ask);
    steps.push(Step { expect_silence_ms: Some(1000), ..Step::default() });
    let mut expected = vec![answer[0].clone(); n];
    expected.push(echo_answer);
    steps.push(Step { expect_unordered: Some(expected), ..Step::default() });
    steps
}

/// `[RES-4]` for a declared server-wide budget of `s` bytes and budget of
/// `c` per connection. Connection `h` holds a little: a `/sleep` of 60 s.
/// Connections `c1`, `c2`, … each park `/sleep` requests of 10 s under
/// their own budget until together they hold `s` less 1 MiB, each then
/// answering an `/echo` on its channel 1 to show it read them all; the
/// last then sends one more frame of 2 MiB, which takes the total past
/// `s`. Then the case's own connection, which holds nothing, is still
/// served, one frame at a time, and a chunked request on it is refused
/// with 110 ([RES-2]); on `h`, which holds bytes, a short `/sleep` and
/// then an `/echo` on channel 1 get no answer for a second. Once the 10 s
/// sleeps are answered the server has room again, and `h`, whose own
/// sleep still runs, reads and answers its echo.
pub(super) fn server_full(s: usize, c: usize) -> Vec<Step> {
    const MS: u64 = 10_000;
    let shares = server_shares(s, c);
    let holder = || Some("h".to_string());
    let on = |i: usize| Some(format!("c{}", i + 1));
    let (hold, _) = parked(&[16], 60_000);
    let (sync, synced) = echo_on(1, "h holds a little");
    let held = open_channel_1().into_iter().chain(hold).chain([sync, expect(synced)]);
    let mut steps: Vec<Step> = held.map(|step| Step { on: holder(), ..step }).collect();
    let mut answers = Vec::new();
    for (i, sizes) in shares.iter().enumerate() {
        let (mut asks, expected) = parked(sizes, MS);
        // The last connection's last frame takes the total past the budget.
        let crossing = (i + 1 == shares.len()).then(|| asks.pop()).flatten();
        let (sync, synced) = echo_on(1, &format!("c{} read it all", i + 1));
        let connection = open_channel_1().into_iter().chain(asks).chain([sync, expect(synced)]).chain(crossing);
        steps.extend(connection.map(|step| Step { on: on(i), ..step }));
        answers.push(expected);
    }
    steps.push(Step { sleep_ms: Some(SETTLE_MS), ..Step::default() });
    steps.extend(echo("one frame at a time"));
    for i in 0..2 {
        let fill = b'a' + i as u8;
        steps.push(send(frame_status(2, i), "/echo", 0, Blob::Fill { fill, count: 1024 }));
    }
    steps.push(expect_named_error(ErrorCode::RequestTooLarge, 0));
    // A connection whose read was already waiting when the total reached
    // the budget may take that frame: a sleep on channel 0 of `h`, behind
    // its long one and so not answered in the case, is that frame.
    let (nudge, _) = parked(&[16], 0);
    steps.extend(nudge.into_iter().map(|step| Step { on: holder(), ..step }));
    let (ask, answer) = echo_on(1, "behind the server's budget");
    steps.push(Step { on: holder(), ..ask });
    steps.push(Step { on: holder(), expect_silence_ms: Some(1000), ..Step::default() });
    // The sleeps end MS after they were parked: a slow server may take
    // most of that to read them, a fast one is answering by the end of
    // this pause, well within a step's wait after it.
    steps.push(Step { sleep_ms: Some(MS - SETTLE_MS - 1000 - 3000), ..Step::default() });
    for (i, expected) in answers.into_iter().enumerate() {
        steps.push(Step { on: on(i), expect_unordered: Some(expected), ..Step::default() });
    }
    steps.push(Step { on: holder(), ..expect(answer) });
    steps
}

/// The sizes each connection of [`server_full`] parks: every share under
/// the connection budget `c` by 2 MiB, together `s` and 1 MiB, and the
/// last share ending in a frame of 2 MiB that crosses `s` (before it the
/// total is `s` less 1 MiB, room for what the server counts beside bodies).
fn server_shares(s: usize, c: usize) -> Vec<Vec<usize>> {
    let share = c - LEFT_FREE;
    let total = s + (1 << 20);
    let n = total.div_ceil(share);
    let mut amounts = vec![share; n];
    let last = total - share * (n - 1);
    // The last share is at least two frames; what it lacks, the first gives.
    let floor = 2 * PARKED;
    if n > 1 && last < floor {
        amounts[0] -= floor - last;
        amounts[n - 1] = floor;
    } else {
        amounts[n - 1] = last;
    }
    let mut shares: Vec<Vec<usize>> = amounts.iter().map(|&a| parked_sizes(a)).collect();
    if let Some(final_share) = shares.last_mut() {
        // End on a whole frame of PARKED bytes.
        let amount: usize = final_share.iter().sum();
        *final_share = parked_sizes(amount - PARKED);
        final_share.push(PARKED);
    }
    shares
}

/// How many connections [`server_full`] opens beside the case's own.
pub(super) fn server_full_connections(s: usize, c: usize) -> usize {
    server_shares(s, c).len() + 1
}

/// The least budget a profile may declare: the refusal case leaves 2 MiB
/// of it free and still parks a request larger than that.
pub const MIN_DECLARED_BUDGET: usize = 8 << 20;
/// The largest: a case sends a request of the whole budget.
pub const MAX_DECLARED_BUDGET: usize = 256 << 20;
/// The largest server-wide budget a profile may declare: the case parks
/// it all.
pub const MAX_DECLARED_SERVER_BUDGET: usize = 1 << 30;
/// The largest handler limit a profile may declare: the case runs that
/// many handlers at once.
pub const MAX_DECLARED_IN_FLIGHT: usize = 4096;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parked_requests_reach_the_budget_with_the_last() {
        for n in [MIN_DECLARED_BUDGET, 40 << 20, (40 << 20) + 12_345, MAX_DECLARED_BUDGET] {
            let sizes = reaching_sizes(n);
            let before: usize = sizes[..sizes.len() - 1].iter().sum();
            assert!(before <= n - (1 << 20) && before + sizes[sizes.len() - 1] >= n, "{n}: {sizes:?}");
            assert!(sizes.iter().all(|&s| s >= 4 && s <= DEFAULT_MAX_DATA as usize), "{n}: {sizes:?}");
            assert_eq!(parked_sizes(n - LEFT_FREE).iter().sum::<usize>(), n - LEFT_FREE);
        }
    }

    #[test]
    fn server_shares_cross_the_budget_with_the_last_frame() {
        for (s, c) in [(256 << 20, 40 << 20), (8 << 20, 8 << 20), (9 << 20, 8 << 20), ((64 << 20) + 7, 10 << 20)] {
            let shares = server_shares(s, c);
            let total: usize = shares.iter().flatten().sum();
            let last = shares.last().and_then(|share| share.last()).copied().unwrap_or_default();
            assert_eq!(total, s + (1 << 20), "{s}, {c}: {shares:?}");
            assert!(total - last <= s - (1 << 20), "{s}, {c}: crossed before the last frame");
            for share in &shares {
                assert!(share.iter().sum::<usize>() <= c - LEFT_FREE, "{s}, {c}: a share past its connection's budget");
                assert!(share.iter().all(|&f| (4..=PARKED).contains(&f)), "{s}, {c}: {share:?}");
            }
        }
    }
}
