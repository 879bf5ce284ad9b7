//! Configuration from environment variables (every one is listed in README.md).
//!
//! An empty variable counts as unset; a value that is not valid UTF-8 or does not
//! parse is an error naming the variable. A socket passed in by `systemfd`/`listenfd`
//! takes precedence over `HOST` and `PORT`.

use std::ffi::OsString;
use std::fmt;
use std::io::IsTerminal;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::num::NonZeroU16;
use std::str::FromStr;
use std::time::Duration;

/// The port the service listens on when `PORT` is unset.
pub const DEFAULT_PORT: u16 = {{ cookiecutter.port }};
/// Every interface, so the service is reachable from outside its container.
pub const DEFAULT_HOST: IpAddr = IpAddr::V4(Ipv4Addr::UNSPECIFIED);
/// Drain plus shutdown timeout stay below the 10 s Docker waits before it kills.
pub const DEFAULT_DRAIN: Duration = Duration::from_secs(3);
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);
/// Log filter when `RUST_LOG` is unset.
pub const DEFAULT_LOG_FILTER: &str = "info";
/// actix-web's own default: time a client has to send the request head.
pub const DEFAULT_CLIENT_REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
pub const DEFAULT_KEEP_ALIVE: Duration = Duration::from_secs(5);
/// 256 KiB, actix-web's default for a body read into memory.
pub const DEFAULT_MAX_BODY_BYTES: usize = 256 * 1024;
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// One JSON object per line, for log collectors.
    Json,
    /// Readable lines, for people.
    Text,
}

impl FromStr for LogFormat {
    type Err = ();

    fn from_str(value: &str) -> Result<Self, ()> {
        match value {
            "json" => Ok(Self::Json),
            "text" => Ok(Self::Text),
            _ => Err(()),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    pub host: IpAddr,
    pub port: u16,
    /// After SIGTERM: how long readiness answers 503 while requests are still served.
    pub drain: Duration,
    /// After the drain: how long in-flight requests may take to finish.
    pub shutdown_timeout: Duration,
    /// A `tracing` filter (the syntax of `RUST_LOG`).
    pub log_filter: String,
    /// `None`: text on a terminal, JSON otherwise.
    pub log_format: Option<LogFormat>,
    /// Time to receive a request's head; zero disables it.
    pub client_request_timeout: Duration,
    /// Idle time allowed between requests on one connection; zero disables keep-alive.
    pub keep_alive: Duration,
    /// Larger request bodies are refused with 413.
    pub max_body_bytes: usize,
    /// Open connections for the whole process, shared evenly by the workers.
    pub max_connections: usize,
}

impl Default for Config {
    fn default() -> Self {
        Self {
            host: DEFAULT_HOST,
            port: DEFAULT_PORT,
            drain: DEFAULT_DRAIN,
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            log_filter: DEFAULT_LOG_FILTER.to_owned(),
            log_format: None,
            client_request_timeout: DEFAULT_CLIENT_REQUEST_TIMEOUT,
            keep_alive: DEFAULT_KEEP_ALIVE,
            max_body_bytes: DEFAULT_MAX_BODY_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
        }
    }
}

/// A variable that is set but cannot be used.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    pub variable: &'static str,
    /// The value as set (invalid UTF-8 shown with replacement characters).
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

const SECONDS: &str = "a whole number of seconds";
const COUNT: &str = "a whole number greater than 0";

impl Config {
    /// Reads the process environment.
    pub fn from_env() -> Result<Self, ConfigError> {
        Self::from_lookup(|name| std::env::var_os(name))
    }

    /// Reads configuration through `lookup`, which returns a variable's value if set.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<OsString>) -> Result<Self, ConfigError> {
        let get = |variable: &'static str| -> Result<Option<String>, ConfigError> {
            match lookup(variable) {
                None => Ok(None),
                Some(value) => match value.into_string() {
                    Ok(text) if text.trim().is_empty() => Ok(None),
                    Ok(text) => Ok(Some(text)),
                    // Never altered into something else: the operator must fix it.
                    Err(raw) => Err(ConfigError {
                        variable,
                        value: raw.to_string_lossy().into_owned(),
                        expected: "valid UTF-8",
                    }),
                },
            }
        };
        let seconds = |variable, default| -> Result<Duration, ConfigError> {
            Ok(parse(get(variable)?, variable, SECONDS)?.map_or(default, Duration::from_secs))
        };
        let count = |variable, default: usize| -> Result<usize, ConfigError> {
            let value: Option<usize> = parse(get(variable)?, variable, COUNT)?;
            match value {
                Some(0) => Err(ConfigError {
                    variable,
                    value: "0".to_owned(),
                    expected: COUNT,
                }),
                value => Ok(value.unwrap_or(default)),
            }
        };
        let defaults = Self::default();
        Ok(Self {
            host: parse(get("HOST")?, "HOST", "an IP address such as 0.0.0.0 or ::")?
                .unwrap_or(defaults.host),
            port: parse(get("PORT")?, "PORT", "a port number from 1 to 65535")?
                .map_or(defaults.port, NonZeroU16::get),
            drain: seconds("DRAIN_SECS", defaults.drain)?,
            shutdown_timeout: seconds("SHUTDOWN_TIMEOUT_SECS", defaults.shutdown_timeout)?,
            log_filter: get("RUST_LOG")?.unwrap_or(defaults.log_filter),
            log_format: parse(get("LOG_FORMAT")?, "LOG_FORMAT", "json or text")?,
            client_request_timeout: seconds(
                "CLIENT_REQUEST_TIMEOUT_SECS",
                defaults.client_request_timeout,
            )?,
            keep_alive: seconds("KEEP_ALIVE_SECS", defaults.keep_alive)?,
            max_body_bytes: count("MAX_BODY_BYTES", defaults.max_body_bytes)?,
            max_connections: count("MAX_CONNECTIONS", defaults.max_connections)?,
        })
    }

    /// Where to bind when no socket is passed in.
    pub fn bind_address(&self) -> SocketAddr {
        SocketAddr::new(self.host, self.port)
    }

    /// Where the `healthcheck` subcommand finds the service: loopback when it binds
    /// every interface.
    pub fn probe_address(&self) -> SocketAddr {
        let host = match self.host {
            IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
            IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
            ip => ip,
        };
        SocketAddr::new(host, self.port)
    }

    /// The format to log in, resolving "unset" by whether stdout is a terminal.
    pub fn effective_log_format(&self) -> LogFormat {
        self.log_format.unwrap_or_else(|| {
            if std::io::stdout().is_terminal() {
                LogFormat::Text
            } else {
                LogFormat::Json
            }
        })
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
                .map(|(_, value)| OsString::from(*value))
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
        assert_eq!(
            config.probe_address().to_string(),
            format!("127.0.0.1:{DEFAULT_PORT}")
        );
        assert!(config.drain + config.shutdown_timeout < Duration::from_secs(10));
    }

    #[test]
    fn empty_values_count_as_unset() {
        let names = [
            "HOST",
            "PORT",
            "DRAIN_SECS",
            "SHUTDOWN_TIMEOUT_SECS",
            "RUST_LOG",
            "LOG_FORMAT",
            "CLIENT_REQUEST_TIMEOUT_SECS",
            "KEEP_ALIVE_SECS",
            "MAX_BODY_BYTES",
            "MAX_CONNECTIONS",
        ];
        let empty: Vec<_> = names.iter().map(|name| (*name, " ")).collect();
        assert_eq!(config(&empty).unwrap(), Config::default());
    }

    #[test]
    fn every_variable_is_read() {
        let config = config(&[
            ("HOST", "127.0.0.1"),
            ("PORT", "8080"),
            ("DRAIN_SECS", "0"),
            ("SHUTDOWN_TIMEOUT_SECS", "2"),
            ("RUST_LOG", "debug"),
            ("LOG_FORMAT", "text"),
            ("CLIENT_REQUEST_TIMEOUT_SECS", "1"),
            ("KEEP_ALIVE_SECS", "0"),
            ("MAX_BODY_BYTES", "10"),
            ("MAX_CONNECTIONS", "7"),
        ])
        .unwrap();
        assert_eq!(config.bind_address().to_string(), "127.0.0.1:8080");
        assert_eq!(config.probe_address().to_string(), "127.0.0.1:8080");
        assert_eq!(config.drain, Duration::ZERO);
        assert_eq!(config.shutdown_timeout, Duration::from_secs(2));
        assert_eq!(config.log_filter, "debug");
        assert_eq!(config.log_format, Some(LogFormat::Text));
        assert_eq!(config.effective_log_format(), LogFormat::Text);
        assert_eq!(config.client_request_timeout, Duration::from_secs(1));
        assert_eq!(config.keep_alive, Duration::ZERO);
        assert_eq!(config.max_body_bytes, 10);
        assert_eq!(config.max_connections, 7);
    }

    #[test]
    fn ipv6_hosts_are_accepted() {
        let config = config(&[("HOST", "::"), ("PORT", "8080")]).unwrap();
        assert_eq!(config.bind_address().to_string(), "[::]:8080");
        assert_eq!(config.probe_address().to_string(), "[::1]:8080");
    }

    #[test]
    fn bad_values_name_the_variable_and_the_rule() {
        let cases = [
            ("PORT", "http", "a port number from 1 to 65535"),
            ("PORT", "0", "a port number from 1 to 65535"),
            ("PORT", "65536", "a port number from 1 to 65535"),
            ("HOST", "localhost", "an IP address such as 0.0.0.0 or ::"),
            ("SHUTDOWN_TIMEOUT_SECS", "-1", SECONDS),
            ("DRAIN_SECS", "5s", SECONDS),
            ("LOG_FORMAT", "xml", "json or text"),
            ("MAX_BODY_BYTES", "0", COUNT),
            ("MAX_CONNECTIONS", "many", COUNT),
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

    #[cfg(unix)]
    #[test]
    fn non_utf8_values_are_refused_not_altered() {
        use std::os::unix::ffi::OsStringExt;

        let error = Config::from_lookup(|name| {
            (name == "RUST_LOG").then(|| OsString::from_vec(b"info,\xff".to_vec()))
        })
        .unwrap_err();
        assert_eq!(error.variable, "RUST_LOG");
        assert_eq!(error.expected, "valid UTF-8");
        assert!(error.to_string().starts_with("RUST_LOG="), "{error}");
    }
}
