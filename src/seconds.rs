//! Durations in configuration files: a number of seconds (fractions
//! allowed), and for a limit that can be switched off, `0` meaning off.

use std::time::Duration;

use serde::{Deserialize, Deserializer, Serializer};

/// The longest duration a setting takes: a year. Longer values are refused
/// rather than overflow.
const MAX_SECONDS: f64 = 366.0 * 86_400.0;

fn from_seconds<'de, D: Deserializer<'de>>(seconds: f64) -> Result<Duration, D::Error> {
    if !(0.0..=MAX_SECONDS).contains(&seconds) {
        return Err(serde::de::Error::custom(format!("{seconds} s: a duration is 0 to {MAX_SECONDS} seconds")));
    }
    Ok(Duration::from_secs_f64(seconds))
}

/// A [`Duration`] as seconds.
#[cfg(feature = "server")]
pub(crate) mod required {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Duration, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.as_secs_f64())
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Duration, D::Error> {
        from_seconds::<D>(f64::deserialize(deserializer)?)
    }
}

/// An `Option<Duration>` as seconds, `0` standing for `None` (no limit).
pub(crate) mod optional {
    use super::*;

    pub(crate) fn serialize<S: Serializer>(value: &Option<Duration>, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_f64(value.map_or(0.0, |d| d.as_secs_f64()))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<Duration>, D::Error> {
        let duration = from_seconds::<D>(f64::deserialize(deserializer)?)?;
        Ok((!duration.is_zero()).then_some(duration))
    }
}
