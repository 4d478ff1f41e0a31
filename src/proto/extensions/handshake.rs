//! Which requests a server admits around the hello (`[EXT-1]`, `[EXT-2]`,
//! `[EXT-4]`, `[EXT-9]`), sans I/O. The server core asks [`Handshake::admit`]
//! for every complete request, `/sys/new_channel` included, before acting on it.

use super::{HELLO, MAX_HELLO_BODY};

/// How a server treats credentials (`[EXT-8]`, `[EXT-9]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
#[non_exhaustive]
pub enum AuthPolicy {
    /// No authenticator: credentials are ignored and `auth` is not agreed. The default.
    #[default]
    Off,
    /// Credentials offered are checked (failure closes the connection);
    /// a client that offers none is served unauthenticated.
    Optional,
    /// Nothing but a hello with valid credentials is served: every other
    /// request before it is answered 112 and the connection closes.
    Required,
}

/// What to do with a complete request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Admission {
    /// The connection's hello: answer it (running the authenticator), and
    /// call [`Handshake::completed`] once the answer is given.
    Hello,
    /// Serve it as usual.
    Proceed,
    /// A hello that is not the first request: answer 102, change nothing (`[EXT-2]`).
    LateHello,
    /// Authentication is required and has not happened: answer 112, then
    /// close the connection (`[EXT-9]`).
    Unauthenticated,
    /// A request that arrived while the hello was unanswered: a protocol
    /// error, the connection closes (`[EXT-4]`).
    HelloPending,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// No request yet.
    Fresh,
    /// The hello is being answered.
    Pending,
    /// The hello's answer is made and not yet sent (`[EXT-4]`): still
    /// pending; whether the client authenticated.
    Answered { authenticated: bool },
    /// Past the hello (or plain IIP/1); whether the client authenticated.
    Done { authenticated: bool },
}

/// The hello state of one server connection.
#[derive(Debug, Clone)]
pub struct Handshake {
    enabled: bool,
    policy: AuthPolicy,
    state: State,
}

impl Handshake {
    /// A connection that has received nothing yet. With `enabled` false
    /// every request proceeds and `/sys/hello` is an unknown system route.
    pub fn new(enabled: bool, policy: AuthPolicy) -> Handshake {
        let policy = if enabled { policy } else { AuthPolicy::Off };
        Handshake { enabled, policy, state: State::Fresh }
    }

    /// Whether nothing but a hello with accepted credentials is served
    /// (`[EXT-9]`).
    pub fn requires_authentication(&self) -> bool {
        self.enabled && self.policy == AuthPolicy::Required
    }

    /// The reaction to a complete request for `route` on `channel`.
    pub fn admit(&mut self, channel: u32, route: &[u8]) -> Admission {
        if !self.enabled {
            return Admission::Proceed;
        }
        let hello = route == HELLO;
        match self.state {
            State::Pending | State::Answered { .. } => Admission::HelloPending,
            State::Fresh if hello && channel == 0 => {
                self.state = State::Pending;
                Admission::Hello
            }
            State::Fresh | State::Done { .. } if hello => Admission::LateHello,
            State::Fresh => {
                self.state = State::Done { authenticated: false };
                self.gate()
            }
            State::Done { .. } => self.gate(),
        }
    }

    /// Whether [`Handshake::admit`] would say [`Admission::Proceed`] to
    /// any route other than `/sys/hello`, as things stand and without
    /// changing them: false while the first request has not come yet
    /// (which decides the state) and while the hello is pending.
    pub fn proceeds(&self) -> bool {
        !self.enabled || (matches!(self.state, State::Done { .. }) && self.gate() == Admission::Proceed)
    }

    /// Whether a message for `route` on `channel` is refused at its first
    /// frame, before anything of it is held: authentication is required,
    /// the client has not authenticated, and the message is not the
    /// connection's hello (`[EXT-9]`, `[RES-10]`). A refused message is
    /// answered 112 and the connection closes.
    pub fn refuses_start(&self, channel: u32, route: &[u8]) -> bool {
        if !self.requires_authentication() {
            return false;
        }
        match self.state {
            State::Fresh => !(channel == 0 && route == HELLO),
            // A message started while the hello is answered breaks [EXT-4]
            // when it completes.
            State::Pending | State::Answered { .. } => false,
            State::Done { authenticated } => !authenticated,
        }
    }

    /// The largest body a message for `route` may have before the
    /// connection's own message limit applies: [`MAX_HELLO_BODY`] for a
    /// hello (`[RES-10]`), none for any other route.
    pub fn body_limit(&self, route: &[u8]) -> Option<usize> {
        (self.enabled && route == HELLO).then_some(MAX_HELLO_BODY)
    }

    fn gate(&self) -> Admission {
        match (self.policy, self.state) {
            (AuthPolicy::Required, State::Done { authenticated: false }) => Admission::Unauthenticated,
            _ => Admission::Proceed,
        }
    }

    /// The hello's answer is made; `authenticated` if the authenticator
    /// accepted the client's credentials. The hello stays pending until
    /// [`Handshake::sent`]: a request before that breaks `[EXT-4]`.
    pub fn completed(&mut self, authenticated: bool) {
        self.state = State::Answered { authenticated };
    }

    /// The hello's answer was handed to the transport with nothing of the
    /// client's left unread: requests are admitted from now on (as far as
    /// authentication allows). Nothing changes before an answer is made.
    pub fn sent(&mut self) {
        if let State::Answered { authenticated } = self.state {
            self.state = State::Done { authenticated };
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn proceeds_agrees_with_admit_and_changes_nothing() {
        for (enabled, policy) in [(false, AuthPolicy::Required), (true, AuthPolicy::Off), (true, AuthPolicy::Required)]
        {
            let mut h = Handshake::new(enabled, policy);
            // Fresh: the first request decides, so never "proceeds" unless disabled.
            assert_eq!(h.proceeds(), !enabled);
            assert_eq!(
                h.admit(0, b"/a"),
                if !enabled || policy == AuthPolicy::Off { Admission::Proceed } else { Admission::Unauthenticated }
            );
            let state = h.state;
            let proceeds = h.proceeds();
            assert_eq!(proceeds, h.admit(1, b"/b") == Admission::Proceed);
            assert_eq!(h.state, state, "asking changes nothing");
        }
        let mut h = Handshake::new(true, AuthPolicy::Required);
        assert_eq!(h.admit(0, HELLO), Admission::Hello);
        assert!(!h.proceeds(), "the hello is pending");
        h.completed(true);
        h.sent();
        assert!(h.proceeds());
        assert_eq!(h.admit(0, b"/a"), Admission::Proceed);
    }

    #[test]
    fn without_credentials_only_the_hello_may_start() {
        let mut h = Handshake::new(true, AuthPolicy::Required);
        assert!(h.refuses_start(0, b"/echo"));
        assert!(h.refuses_start(0, b"/sys/new_channel"));
        assert!(h.refuses_start(1, HELLO), "a hello on another channel");
        assert!(!h.refuses_start(0, HELLO));
        assert_eq!(h.body_limit(HELLO), Some(MAX_HELLO_BODY));
        assert_eq!(h.body_limit(b"/echo"), None);
        assert_eq!(h.admit(0, HELLO), Admission::Hello);
        h.completed(false);
        h.sent();
        assert!(h.refuses_start(0, b"/echo"));
        h.completed(true);
        h.sent();
        assert!(!h.refuses_start(0, b"/echo"));
        for policy in [AuthPolicy::Off, AuthPolicy::Optional] {
            assert!(!Handshake::new(true, policy).refuses_start(0, b"/echo"));
        }
        assert_eq!(Handshake::new(false, AuthPolicy::Off).body_limit(HELLO), None);
    }

    #[test]
    fn the_first_hello_is_answered_and_later_ones_are_not() {
        let mut h = Handshake::new(true, AuthPolicy::Off);
        assert_eq!(h.admit(0, HELLO), Admission::Hello);
        assert_eq!(h.admit(0, b"/echo"), Admission::HelloPending);
        h.completed(false);
        h.sent();
        assert_eq!(h.admit(0, b"/echo"), Admission::Proceed);
        assert_eq!(h.admit(0, HELLO), Admission::LateHello);
    }

    #[test]
    fn without_a_hello_a_connection_is_plain_unless_authentication_is_required() {
        let mut plain = Handshake::new(true, AuthPolicy::Optional);
        assert_eq!(plain.admit(0, b"/sys/new_channel"), Admission::Proceed);
        assert_eq!(plain.admit(0, HELLO), Admission::LateHello);
        let mut strict = Handshake::new(true, AuthPolicy::Required);
        assert_eq!(strict.admit(0, b"/sys/new_channel"), Admission::Unauthenticated);
        let mut failed = Handshake::new(true, AuthPolicy::Required);
        assert_eq!(failed.admit(0, HELLO), Admission::Hello);
        failed.completed(false);
        failed.sent();
        assert_eq!(failed.admit(0, b"/echo"), Admission::Unauthenticated);
        let mut off = Handshake::new(false, AuthPolicy::Required);
        assert_eq!(off.admit(0, HELLO), Admission::Proceed, "an unknown system route to the shell");
        assert_eq!(off.admit(0, b"/echo"), Admission::Proceed);
    }
}
