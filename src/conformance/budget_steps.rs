//! The steps of the connection-budget cases (`[RES-2]`, `[RES-3]`,
//! `[RES-11]`), generated for the budget the profile declares. They park
//! requests in `/sleep` (the profile's `extensions=metadata` route), whose
//! body names the milliseconds to wait in decimal, zero-padded to the size
//! the case needs.

use super::profile::{echo, expect, expect_named_error, send};
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

/// The status of frame `i` of a request of `frames` frames ([MSG-1]).
fn frame_status(frames: usize, i: usize) -> u8 {
    match (frames, i) {
        (1, _) => 1,
        (_, 0) => 0,
        _ if i + 1 == frames => 3,
        _ => 2,
    }
}

/// `/sys/new_channel` on channel 0, granted channel 1.
fn open_channel_1() -> [Step; 2] {
    let mut grant = toml::Table::new();
    grant.insert("code".into(), toml::Value::Integer(0));
    grant.insert("channel_id".into(), toml::Value::Integer(1));
    [
        send(1, "/sys/new_channel", 0, Blob::Text("{}".into())),
        expect(ExpectFrame { status: Some(5), channel: Some(0), json: Some(grant), ..ExpectFrame::default() }),
    ]
}

/// `/echo` of `text` on `channel`, and its answer.
fn echo_on(channel: u32, text: &str) -> (Step, ExpectFrame) {
    let answer = ExpectFrame {
        status: Some(5),
        channel: Some(channel),
        data: Some(Blob::Text(text.into())),
        ..ExpectFrame::default()
    };
    (send(1, "/echo", channel, Blob::Text(text.into())), answer)
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

/// The least budget a profile may declare: the refusal case leaves 2 MiB
/// of it free and still parks a request larger than that.
pub const MIN_DECLARED_BUDGET: usize = 8 << 20;
/// The largest: a case sends a request of the whole budget.
pub const MAX_DECLARED_BUDGET: usize = 256 << 20;

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
}
