//! The steps of the authentication cases (`[EXT-8]`, `[EXT-9]`,
//! `[RES-10]`), generated for the credentials and the hello timeout the
//! profile declares.

use super::profile::{
    closed_citing, closed_citing_after, echo, echo_on, expect, expect_named_error, open_channel_1, send, sleep,
    TIMEOUT_LATE_MS, TIMEOUT_SLACK_MS,
};
use super::session::{ExpectFrame, Step};
use super::vector::Blob;
use crate::proto::extensions::Credentials;
use crate::wire::answer::ErrorCode;

/// A hello offering `auth` with `scheme` and `credentials` and nothing else.
fn hello_with(scheme: &str, credentials: &str) -> Step {
    let body = serde_json::json!({
        "revision": 1,
        "extensions": { "auth": { "scheme": scheme, "credentials": credentials } },
    });
    send(1, "/sys/hello", 0, Blob::Text(body.to_string()))
}

/// The hello's answer naming `auth` with the identity the credentials proved.
fn accepted_answer() -> Step {
    expect(ExpectFrame {
        status: Some(5),
        channel: Some(0),
        path: Some(Blob::Text("/sys/hello".into())),
        json_keys: Some(vec!["revision".into(), "extensions.auth.identity".into()]),
        ..ExpectFrame::default()
    })
}

/// `scheme` with the case of each ASCII letter changed: `bearer` is `BEARER`,
/// `Bearer` is `bEARER`.
fn other_case(scheme: &str) -> String {
    scheme
        .chars()
        .map(|c| match c {
            'a'..='z' => c.to_ascii_uppercase(),
            'A'..='Z' => c.to_ascii_lowercase(),
            _ => c,
        })
        .collect()
}

/// `[EXT-8]`: the declared credentials (with the scheme's case changed
/// when `recased`: schemes are compared without regard to ASCII case) are
/// accepted, the answer names `auth` with an identity, and the connection
/// is served.
pub(super) fn accepted(credentials: &Credentials, recased: bool) -> Vec<Step> {
    let scheme = match recased {
        true => other_case(&credentials.scheme),
        false => credentials.scheme.clone(),
    };
    let mut steps = vec![hello_with(&scheme, &credentials.credentials), accepted_answer()];
    steps.extend(echo("authenticated"));
    steps
}

/// `[EXT-8]`: credentials other than the declared ones (the declared ones
/// with a byte more) are refused: the hello is answered 112
/// `unauthenticated`, then a close frame cites `[EXT-8]` and the server
/// closes.
pub(super) fn refused(credentials: &Credentials) -> Vec<Step> {
    let wrong = format!("{}-wrong", credentials.credentials);
    let mut steps = vec![hello_with(&credentials.scheme, &wrong), expect_named_error(ErrorCode::Unauthenticated, 0)];
    steps.extend(closed_citing("EXT-8"));
    steps
}

/// `[RES-10]` for a declared pace of `failures` failed checks within
/// `interval` ms: that many hellos with wrong credentials, each on a
/// connection of its own, are refused at once; then two hellos with the
/// declared credentials, sent together on two more connections, wait for
/// the source's turn: the first gets no answer for half the interval and
/// is accepted by the interval and a little after; the second, whose check
/// could not run beside the first, is accepted too.
pub(super) fn failure_pace(credentials: &Credentials, failures: u32, interval: u64) -> Vec<Step> {
    let on = |name: String, step: Step| Step { on: Some(name), ..step };
    let mut steps = Vec::new();
    for i in 0..failures {
        for step in refused(credentials) {
            steps.push(on(format!("failed-{i}"), step));
        }
    }
    let good = || hello_with(&credentials.scheme, &credentials.credentials);
    steps.push(on("paced".into(), good()));
    steps.push(on("beside".into(), good()));
    steps.push(on("paced".into(), Step { expect_silence_ms: Some(interval / 2), ..Step::default() }));
    let answer = Step { within_ms: Some(interval / 2 + TIMEOUT_LATE_MS), ..accepted_answer() };
    steps.push(on("paced".into(), answer));
    steps.push(on("beside".into(), accepted_answer()));
    steps
}

/// `[EXT-9]`: where authentication is required, a hello with the declared
/// credentials is accepted, and then requests are served and channels
/// granted.
pub(super) fn required_accepts(credentials: &Credentials) -> Vec<Step> {
    let mut steps = accepted(credentials, false);
    steps.extend(open_channel_1());
    let (ask, answer) = echo_on(1, "on channel 1");
    steps.extend([ask, expect(answer)]);
    steps
}

/// `[RES-10]` for a declared hello timeout of `n` ms: a connection to the
/// listener that requires authentication that sends nothing has been
/// closed, with a close frame citing `[RES-10]`, by n and a little after
/// it opened.
pub(super) fn hello_timeout(n: u64) -> Vec<Step> {
    closed_citing_after("RES-10", n).to_vec()
}

/// `[RES-10]`: the hello timeout ends once the client has authenticated; a
/// connection authenticated at once is served past n.
pub(super) fn authenticated_not_timed_out(credentials: &Credentials, n: u64) -> Vec<Step> {
    let mut steps = vec![hello_with(&credentials.scheme, &credentials.credentials), accepted_answer()];
    steps.push(sleep(n + TIMEOUT_SLACK_MS));
    steps.extend(echo("still served"));
    steps
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn schemes_change_case_letter_by_letter() {
        assert_eq!(other_case("bearer"), "BEARER");
        assert_eq!(other_case("Bearer-2"), "bEARER-2");
    }
}
