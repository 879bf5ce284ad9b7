//! Configuration from environment variables.
//!
//! - `HOST` (default `0.0.0.0`): the address to bind when no socket is passed in.
//! - `PORT` (default `{{ cookiecutter.port }}`): the port to bind when no socket is passed in.
//! - `SHUTDOWN_TIMEOUT_SECS` (default `5`): how long in-flight requests may take to
//!   finish after SIGTERM; keep it below the container runtime's kill grace period.
//! - `RUST_LOG` (default `info`): the log filter, e.g. `debug` or `info,actix_server=warn`.
//!
//! An empty variable counts as unset. A socket passed in by `systemfd`/`listenfd`
//! takes precedence over `HOST` and `PORT`.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::num::NonZeroU16;
use std::str::FromStr;
use std::time::Duration;

/// The port the service listens on when `PORT` is unset.
pub const DEFAULT_PORT: u16 = {{ cookiecutter.port }};
/// Every interface, so the service is reachable from outside its container.
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Below the 10 s that Docker and Kubernetes wait before they kill the process.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// How long workers may finish in-flight requests after a stop signal.
    pub shutdown_timeout: Duration,
    /// An `env_logger` filter (the syntax of `RUST_LOG`).
    pub log_filter: String,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST,
            port: DEFAULT_PORT,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
        }
    }
}

/// A variable that is set but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    pub value: String,
    pub expected: &'static str,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}={:?} is invalid: expected {}",
            self.variable, self.value, self.expected
        )
    }
}

impl std::error::Error for ConfigError {}

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| {
            std::env::var_os(name).map(|value| value.to_string_lossy().into_owned())
        })
    }

    /// Reads configuration through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, ConfigError> {
        let get = |name: &str| lookup(name).filter(|value| !value.trim().is_empty());
        let defaults = Self::default();
        Ok(Self {
            host: parse(get("HOST"), "HOST", "an IP address such as 0.0.0.0 or ::")?
                .unwrap_or(defaults.host),
            port: parse(get("PORT"), "PORT", "a port number from 1 to 65535")?
                .map_or(defaults.port, NonZeroU16::get),
            shutdown_timeout: parse(
                get("SHUTDOWN_TIMEOUT_SECS"),
                "SHUTDOWN_TIMEOUT_SECS",
                "a whole number of seconds",
            )?
            .map_or(defaults.shutdown_timeout, Duration::from_secs),
            log_filter: get("RUST_LOG").unwrap_or(defaults.log_filter),
        })
    }

    /// Where to bind when no socket is passed in.
    pub fn bind_address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }
}

fn parse<T: FromStr>(
    value: Option<String>,
    variable: &'static str,
    expected: &'static str,
) -> Result<Option<T>, ConfigError> {
    value
        .map(|value| {
            value.trim().parse().map_err(|_| ConfigError {
                variable,
                value,
                expected,
            })
        })
        .transpose()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(vars: &[(&str, &str)]) -> Result<Config, ConfigError> {
        Config::from_lookup(|name| {
            vars.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| (*value).to_owned())
        })
    }

    #[test]
    fn defaults_apply_when_nothing_is_set() {
        let config = config(&[]).unwrap();
        assert_eq!(config, Config::default());
        assert_eq!(
            config.bind_address().to_string(),
            format!("0.0.0.0:{DEFAULT_PORT}")
        );
        assert!(config.shutdown_timeout < Duration::from_secs(10));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let empty = [
            ("HOST", ""),
            ("PORT", " "),
            ("SHUTDOWN_TIMEOUT_SECS", ""),
            ("RUST_LOG", ""),
        ];
        assert_eq!(config(&empty).unwrap(), Config::default());
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("HOST", "127.0.0.1"),
            ("PORT", "8080"),
            ("SHUTDOWN_TIMEOUT_SECS", "2"),
            ("RUST_LOG", "debug"),
        ])
        .unwrap();
        assert_eq!(config.bind_address().to_string(), "127.0.0.1:8080");
        assert_eq!(config.shutdown_timeout, Duration::from_secs(2));
        assert_eq!(config.log_filter, "debug");
    }

    #[test]
    fn ipv6_hosts_are_accepted() {
        let config = config(&[("HOST", "::"), ("PORT", "8080")]).unwrap();
        assert_eq!(config.bind_address().to_string(), "[::]:8080");
    }

    #[test]
    fn bad_values_name_the_variable_and_the_rule() {
        let cases = [
            ("PORT", "http", "a port number from 1 to 65535"),
            ("PORT", "0", "a port number from 1 to 65535"),
            ("PORT", "65536", "a port number from 1 to 65535"),
            ("HOST", "localhost", "an IP address such as 0.0.0.0 or ::"),
            ("SHUTDOWN_TIMEOUT_SECS", "-1", "a whole number of seconds"),
            ("SHUTDOWN_TIMEOUT_SECS", "5s", "a whole number of seconds"),
        ];
        for (variable, value, expected) in cases {
            let error = config(&[(variable, value)]).unwrap_err();
            assert_eq!(
                error,
                ConfigError {
                    variable,
                    value: value.to_owned(),
                    expected
                }
            );
            assert_eq!(
                error.to_string(),
                format!("{variable}=\"{value}\" is invalid: expected {expected}")
            );
        }
    }
}
