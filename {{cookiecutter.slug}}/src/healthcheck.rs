//! The `healthcheck` subcommand: the binary probes its own server, so images without
//! a shell or curl (distroless, scratch) can still have health checks.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream, ToSocketAddrs};
use std::time::Duration;

use crate::config::Config;

const TIMEOUT: Duration = Duration::from_secs(2);

/// What to probe: `live`, `ready` (the default), or a URL such as
/// `http://name:5000/readyz`, whose host name is resolved as any client would.
pub fn target(argument: Option<&str>, config: &Config) -> io::Result<(Vec<SocketAddr>, String)> {
    let local = |path: &str| Ok((vec![config.probe_address()], path.to_owned()));
    match argument {
        None | Some("ready") => local("/readyz"),
        Some("live") => local("/livez"),
        Some(url) => {
            let rest = url.strip_prefix("http://").ok_or_else(|| {
                invalid(format!(
                    "expected live, ready or an http:// URL, not {url:?}"
                ))
            })?;
            let (authority, path) = rest.find('/').map_or((rest, "/"), |i| rest.split_at(i));
            let addresses = authority.to_socket_addrs()?.collect();
            Ok((addresses, path.to_owned()))
        }
    }
}

/// Sends `GET path` to the first address that connects; returns the status code.
pub fn probe(addresses: &[SocketAddr], path: &str) -> io::Result<u16> {
    let mut last_error = invalid("no address to probe".to_owned());
    for address in addresses {
        match TcpStream::connect_timeout(address, TIMEOUT) {
            Ok(stream) => return status(stream, path),
            Err(err) => last_error = err,
        }
    }
    Err(last_error)
}

fn status(mut stream: TcpStream, path: &str) -> io::Result<u16> {
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
    )?;
    let mut head = [0_u8; 12];
    stream.read_exact(&mut head)?;
    // "HTTP/1.1 200"
    std::str::from_utf8(&head[9..12])
        .ok()
        .and_then(|code| code.parse().ok())
        .ok_or_else(|| invalid("not an HTTP response".to_owned()))
}

fn invalid(message: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, message)
}
