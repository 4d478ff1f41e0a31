//! The hello offer and answer (`[EXT-1]`–`[EXT-3]`) and the server's choice.
//!
//! Both are JSON objects; members of the `extensions` object name the
//! extensions. Unknown members are ignored on both sides (`[EXT-3]`), so a
//! later revision can add extensions without breaking this one.

use serde::{Deserialize, Serialize};

use super::body::Codec;
use super::REVISION;

/// An extension that takes no parameters: written `{}`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Empty {}

/// The body of `/sys/hello` (`[EXT-1]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloRequest {
    /// The highest protocol revision the client speaks ([`REVISION`]).
    pub revision: u32,
    /// What the client offers.
    #[serde(default)]
    pub extensions: Offer,
}

impl HelloRequest {
    /// Reads a hello's body (`[EXT-1]`): a JSON object with an integer
    /// `revision` of at least 1 and, optionally, an `extensions` object
    /// (absent: nothing offered) whose known members have the types of
    /// chapter 14. `None` for anything else: such a hello is answered 102.
    pub fn parse(body: &[u8]) -> Option<HelloRequest> {
        serde_json::from_slice::<HelloRequest>(body).ok().filter(|hello| hello.revision >= 1)
    }
}

/// The extensions a client offers; an absent member is not offered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Offer {
    /// Liveness: the client will ping (`[EXT-6]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<Empty>,
    /// Credentials for the server's authenticator (`[EXT-8]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<Credentials>,
    /// The client wants the server's limits (`[EXT-10]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Empty>,
    /// Codecs the client can compress with, and its smallest body worth it (`[EXT-11]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionOffer>,
    /// The client obeys a going-away frame (`[EXT-16]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub going_away: Option<Empty>,
    /// The client would put a metadata block before its request bodies (`[EXT-17]`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<Empty>,
}

/// Credentials offered in a hello (`[EXT-8]`).
#[derive(Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Credentials {
    /// How to read `credentials`, e.g. `bearer`.
    pub scheme: String,
    /// The secret itself.
    pub credentials: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never print a secret into a log.
        f.debug_struct("Credentials").field("scheme", &self.scheme).finish_non_exhaustive()
    }
}

/// A compression offer (`[EXT-11]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionOffer {
    /// Codec names, the client's preference first (`lz4`, `zstd`).
    pub codecs: Vec<String>,
    /// Bodies shorter than this are never compressed.
    #[serde(default)]
    pub min_size: u64,
}

/// The answer to `/sys/hello` (`[EXT-2]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HelloAnswer {
    /// The revision both speak: the lower of the two.
    pub revision: u32,
    /// What the server accepted; only these are in force (`[EXT-3]`).
    #[serde(default)]
    pub extensions: Agreed,
}

/// The extensions in force, with the server's parameters.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Agreed {
    /// Liveness, with the server's idle timeout.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ping: Option<PingAgreed>,
    /// Who the client was authenticated as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub auth: Option<AuthAgreed>,
    /// The server's limits.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<Limits>,
    /// The codec and threshold in force.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<CompressionAgreed>,
    /// The server may send a going-away frame.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub going_away: Option<Empty>,
    /// Every request body starts with a metadata block, at most this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub metadata: Option<super::metadata::MetadataAgreed>,
}

/// The `ping` member of an answer (`[EXT-6]`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PingAgreed {
    /// The server's idle timeout in milliseconds, `null` if it has none:
    /// a client that wants an idle connection kept pings more often.
    pub idle_timeout_ms: Option<u64>,
}

/// The `auth` member of an answer (`[EXT-8]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AuthAgreed {
    /// The identity the authenticator gave the client.
    pub identity: String,
}

/// The server's limits (`[EXT-10]`); `null` where it has none.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Limits {
    /// Most channels on the connection, channel 0 included (`[CHAN-9]`).
    pub max_channels: u32,
    /// Largest request body in bytes (`[MSG-8]`), after decompression.
    pub max_message: u64,
    /// Most requests in handlers at once on the connection.
    pub max_in_flight: u64,
    /// Most requests in handlers at once on one channel.
    pub max_in_flight_per_channel: u64,
    /// Largest frame data in bytes (`[LIMIT-1]`).
    pub max_frame_data: u32,
    /// Longest path in bytes (`[LIMIT-1]`).
    pub max_path: u32,
    /// The idle timeout in milliseconds.
    pub idle_timeout_ms: Option<u64>,
}

/// The `compression` member of an answer (`[EXT-11]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct CompressionAgreed {
    /// The codec's name.
    pub codec: String,
    /// Bodies shorter than this are never compressed, by either side.
    pub min_size: u64,
}

/// What a server accepts; each extension switchable. The default accepts
/// every extension but authentication, compresses with any codec built in
/// (the `compression` feature) from 1 KiB up, and advertises no limits
/// (the shell fills them in).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerExtensions {
    /// Answer hellos at all; when false `/sys/hello` gets 102 like any
    /// unknown system route, and nothing else is accepted. Default true.
    pub enabled: bool,
    /// Accept `ping`. Default true.
    pub ping: bool,
    /// The limits to advertise; `None` declines `limits`. Default `None`.
    pub limits: Option<Limits>,
    /// Codecs accepted, none to decline compression. Default every codec built in.
    pub codecs: Vec<Codec>,
    /// The server's smallest body worth compressing; the agreed threshold
    /// is the larger of this and the client's. Default 1,024 bytes.
    pub min_compress: u64,
    /// Accept `going_away`. Default true.
    pub going_away: bool,
    /// The idle timeout to tell pinging clients. Default `None`.
    pub idle_timeout_ms: Option<u64>,
    /// The largest metadata block taken (`[EXT-17]`); `None` declines
    /// `metadata`. Default [`DEFAULT_MAX_SIZE`](super::metadata::DEFAULT_MAX_SIZE), 8,192 bytes.
    pub metadata: Option<u16>,
}

impl Default for ServerExtensions {
    fn default() -> Self {
        ServerExtensions {
            enabled: true,
            ping: true,
            limits: None,
            codecs: Codec::built_in().to_vec(),
            min_compress: 1024,
            going_away: true,
            idle_timeout_ms: None,
            metadata: Some(super::metadata::DEFAULT_MAX_SIZE),
        }
    }
}

impl ServerExtensions {
    /// None of the extensions: the server behaves as a plain IIP/1 server.
    pub fn off() -> ServerExtensions {
        ServerExtensions { enabled: false, ..ServerExtensions::default() }
    }

    /// The answer to `offer`, authentication aside (the shell runs the
    /// authenticator and fills in `auth`): the lower revision, and each
    /// offered extension this server accepts (`[EXT-2]`, `[EXT-11]`).
    pub fn agree(&self, offer: &HelloRequest) -> HelloAnswer {
        let wanted = &offer.extensions;
        let compression = wanted.compression.as_ref().and_then(|c| {
            let codec = c.codecs.iter().filter_map(|name| Codec::from_name(name)).find(|k| self.codecs.contains(k))?;
            Some(CompressionAgreed { codec: codec.name().to_string(), min_size: c.min_size.max(self.min_compress) })
        });
        HelloAnswer {
            revision: offer.revision.min(REVISION),
            extensions: Agreed {
                ping: (self.ping && wanted.ping.is_some())
                    .then_some(PingAgreed { idle_timeout_ms: self.idle_timeout_ms }),
                auth: None,
                limits: self.limits.filter(|_| wanted.limits.is_some()),
                compression,
                going_away: (self.going_away && wanted.going_away.is_some()).then_some(Empty {}),
                metadata: self
                    .metadata
                    .filter(|_| wanted.metadata.is_some())
                    .map(|max_size| super::metadata::MetadataAgreed { max_size }),
            },
        }
    }
}

impl Agreed {
    /// The body codec in force, if compression was agreed with a codec
    /// built in; `max_message` bounds what a compressed body may inflate to.
    pub fn body_codec(&self, max_message: usize) -> Option<super::BodyCodec> {
        let agreed = self.compression.as_ref()?;
        let codec = Codec::from_name(&agreed.codec)?;
        Some(super::BodyCodec::new(codec, usize::try_from(agreed.min_size).unwrap_or(usize::MAX), max_message))
    }

    /// The largest metadata block the server takes, if `metadata` is in
    /// force (`[EXT-17]`).
    pub fn metadata_max(&self) -> Option<usize> {
        self.metadata.map(|m| usize::from(m.max_size))
    }

    /// The names of the extensions in force, in the spec's order.
    pub fn names(&self) -> Vec<&'static str> {
        let mut names = Vec::new();
        let present = [
            ("ping", self.ping.is_some()),
            ("auth", self.auth.is_some()),
            ("limits", self.limits.is_some()),
            ("compression", self.compression.is_some()),
            ("going_away", self.going_away.is_some()),
            ("metadata", self.metadata.is_some()),
        ];
        names.extend(present.iter().filter(|(_, on)| *on).map(|(name, _)| *name));
        names
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_members_are_ignored_and_only_offered_extensions_are_agreed() {
        let offer: HelloRequest = serde_json::from_str(
            r#"{"revision":7,"extensions":{"ping":{},"teleport":{"x":1},"compression":{"codecs":["brotli","zstd","lz4"],"min_size":10}}}"#,
        )
        .unwrap();
        let server = ServerExtensions { idle_timeout_ms: Some(60_000), ..ServerExtensions::default() };
        let answer = server.agree(&offer);
        assert_eq!(answer.revision, REVISION);
        assert_eq!(answer.extensions.ping, Some(PingAgreed { idle_timeout_ms: Some(60_000) }));
        assert_eq!(answer.extensions.going_away, None, "not offered");
        assert_eq!(answer.extensions.limits, None, "not offered");
        if cfg!(feature = "compression") {
            let agreed = answer.extensions.compression.clone().unwrap();
            assert_eq!((agreed.codec.as_str(), agreed.min_size), ("zstd", 1024), "first known codec, larger threshold");
        } else {
            assert_eq!(answer.extensions.compression, None);
        }
        let text = serde_json::to_string(&answer).unwrap();
        assert!(!text.contains("going_away") && !text.contains("auth"), "{text}");
    }

    #[test]
    fn a_server_with_nothing_switched_on_agrees_to_nothing() {
        let offer = HelloRequest {
            revision: 1,
            extensions: Offer {
                ping: Some(Empty {}),
                limits: Some(Empty {}),
                going_away: Some(Empty {}),
                compression: Some(CompressionOffer { codecs: vec!["lz4".into()], min_size: 0 }),
                auth: None,
                metadata: Some(Empty {}),
            },
        };
        let server = ServerExtensions {
            ping: false,
            going_away: false,
            codecs: vec![],
            metadata: None,
            ..ServerExtensions::default()
        };
        assert!(server.agree(&offer).extensions.names().is_empty());
    }

    #[test]
    fn credentials_never_print_their_secret() {
        let c = Credentials { scheme: "bearer".into(), credentials: "hunter2".into() };
        assert!(!format!("{c:?}").contains("hunter2"));
    }
}
