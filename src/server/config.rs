//! [`ServerConfig`] from a TOML file, with environment overrides (feature
//! `config`).
//!
//! A file names only what it changes; durations are seconds, `0` switching
//! an optional limit off:
//!
//! ```toml
//! max_connections = 20000
//! handler_timeout = 5
//! grace = 10
//!
//! [core]
//! max_channels = 64
//! max_message = 1048576
//!
//! [timeouts]
//! idle = 120
//! ```
//!
//! An environment variable `IIP_SERVER_<KEY>` overrides a key, `__`
//! separating a table from its key: `IIP_SERVER_MAX_CONNECTIONS=500`,
//! `IIP_SERVER_CORE__MAX_CHANNELS=16`, `IIP_SERVER_TIMEOUTS__IDLE=0`.

use std::path::{Path, PathBuf};

use super::ServerConfig;

/// The prefix of the environment variables that override settings.
pub const ENV_PREFIX: &str = "IIP_SERVER_";

/// Why a configuration could not be loaded; each names the file or the
/// variable at fault.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read the configuration file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The file is not a valid configuration: bad TOML, an unknown key, a
    /// value of the wrong type or out of range.
    #[error("{origin}: {message}")]
    Invalid {
        /// The file, or "configuration" for text.
        origin: String,
        /// What is wrong, with the key.
        message: String,
    },
    /// An `IIP_SERVER_…` variable names no setting or holds a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        message: String,
    },
}

impl ServerConfig {
    /// Reads a configuration from TOML text; keys not given keep their
    /// defaults, unknown keys are refused.
    pub fn from_toml(text: &str) -> Result<ServerConfig, ConfigError> {
        parse(text, "configuration")
    }

    /// Reads a configuration file (TOML).
    pub fn from_file(path: impl AsRef<Path>) -> Result<ServerConfig, ConfigError> {
        let path = path.as_ref();
        let text =
            std::fs::read_to_string(path).map_err(|source| ConfigError::Read { path: path.to_path_buf(), source })?;
        parse(&text, &path.display().to_string())
    }

    /// This configuration as TOML, every key written out.
    pub fn to_toml(&self) -> String {
        toml::to_string(self).unwrap_or_else(|e| format!("# cannot write the configuration: {e}\n"))
    }

    /// This configuration with the process's `IIP_SERVER_…` variables
    /// applied (see the module documentation).
    pub fn with_env(self) -> Result<ServerConfig, ConfigError> {
        self.with_vars(std::env::vars_os().filter_map(|(k, v)| Some((k.into_string().ok()?, v.into_string().ok()?))))
    }

    /// This configuration with the given `IIP_SERVER_…` variables applied;
    /// other variables are ignored.
    pub fn with_vars(self, vars: impl IntoIterator<Item = (String, String)>) -> Result<ServerConfig, ConfigError> {
        let mut table = toml::Table::try_from(self)
            .map_err(|e| ConfigError::Invalid { origin: "configuration".into(), message: e.to_string() })?;
        let mut applied = Vec::new();
        for (var, raw) in vars {
            let Some(key) = var.strip_prefix(ENV_PREFIX) else { continue };
            let env_error = |message: String| ConfigError::Env { var: var.clone(), message };
            let path: Vec<String> = key.to_ascii_lowercase().split("__").map(str::to_string).collect();
            let slot = lookup(&mut table, &path).ok_or_else(|| env_error("names no setting".into()))?;
            *slot = value_of(&raw);
            applied.push(var);
        }
        toml::Value::Table(table).try_into().map_err(|e: toml::de::Error| ConfigError::Env {
            var: applied.join(", "),
            message: e.message().to_string(),
        })
    }
}

fn parse(text: &str, origin: &str) -> Result<ServerConfig, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Invalid { origin: origin.to_string(), message: e.to_string() })
}

/// The value at `path` in `table`, if every step names an existing key.
fn lookup<'t>(table: &'t mut toml::Table, path: &[String]) -> Option<&'t mut toml::Value> {
    let (last, tables) = path.split_last()?;
    let mut table = table;
    for step in tables {
        table = table.get_mut(step)?.as_table_mut()?;
    }
    table.get_mut(last).filter(|value| !value.is_table())
}

/// An environment value as TOML: a number or boolean when it reads as one,
/// else a string.
fn value_of(raw: &str) -> toml::Value {
    match toml::from_str::<toml::Table>(&format!("v = {raw}")) {
        Ok(mut parsed) => parsed.remove("v").unwrap_or_else(|| toml::Value::String(raw.to_string())),
        Err(_) => toml::Value::String(raw.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_file_changes_only_what_it_names() {
        let config = ServerConfig::from_toml(
            "max_connections = 7\nhandler_timeout = 1.5\n[core]\nmax_channels = 16\n[timeouts]\nidle = 0\n",
        )
        .unwrap();
        let default = ServerConfig::default();
        assert_eq!(config.max_connections, 7);
        assert_eq!(config.handler_timeout, Some(Duration::from_millis(1500)));
        assert_eq!(config.core.max_channels, 16);
        assert_eq!(config.timeouts.idle, None);
        assert_eq!(config.timeouts.frame, default.timeouts.frame);
        assert_eq!(config.core.max_message, default.core.max_message);
        assert_eq!(config.grace, default.grace);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_refused_by_name() {
        let err = ServerConfig::from_toml("max_conections = 7").unwrap_err().to_string();
        assert!(err.contains("max_conections"), "{err}");
        let err = ServerConfig::from_toml("grace = -1").unwrap_err().to_string();
        assert!(err.contains("-1"), "{err}");
        let err = ServerConfig::from_toml("[core]\nmax_channels = \"many\"").unwrap_err().to_string();
        assert!(err.contains("max_channels"), "{err}");
    }

    #[test]
    fn the_environment_overrides_the_file() {
        let vars = [
            ("IIP_SERVER_MAX_CONNECTIONS", "500"),
            ("IIP_SERVER_CORE__MAX_CHANNELS", "16"),
            ("IIP_SERVER_TIMEOUTS__WRITE", "2.5"),
            ("IIP_CONFORMANCE_TARGET", "ignored"),
        ]
        .map(|(k, v)| (k.to_string(), v.to_string()));
        let config = ServerConfig::from_toml("max_connections = 7").unwrap().with_vars(vars).unwrap();
        assert_eq!(config.max_connections, 500);
        assert_eq!(config.core.max_channels, 16);
        assert_eq!(config.timeouts.write, Some(Duration::from_millis(2500)));
    }

    #[test]
    fn a_bad_variable_is_named() {
        let vars = [("IIP_SERVER_MAX_CHANNELS".to_string(), "16".to_string())];
        let err = ServerConfig::default().with_vars(vars).unwrap_err().to_string();
        assert!(err.contains("IIP_SERVER_MAX_CHANNELS") && err.contains("names no setting"), "{err}");
        let vars = [("IIP_SERVER_MAX_CONNECTIONS".to_string(), "lots".to_string())];
        let err = ServerConfig::default().with_vars(vars).unwrap_err().to_string();
        assert!(err.contains("IIP_SERVER_MAX_CONNECTIONS"), "{err}");
    }

    #[test]
    fn written_configuration_reads_back_the_same() {
        let config =
            ServerConfig { max_connections: 3, handler_timeout: Some(Duration::from_secs(2)), ..Default::default() };
        assert_eq!(ServerConfig::from_toml(&config.to_toml()).unwrap(), config);
    }
}
