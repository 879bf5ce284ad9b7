//! The service as a library, so tests can start it in-process on any listener.

pub mod config;
pub mod routes;

use std::io;
use std::net::TcpListener;

use actix_web::dev::Server;
use actix_web::middleware::Logger;
use actix_web::{App, HttpServer};

use crate::config::Config;

/// Builds the server on `listener`; the caller awaits (or spawns) the returned [`Server`].
///
/// On SIGTERM the server stops accepting connections and gives in-flight requests
/// `config.shutdown_timeout` to finish; SIGINT and SIGQUIT stop it at once.
pub fn run(listener: TcpListener, config: &Config) -> io::Result<Server> {
    let server = HttpServer::new(|| {
        App::new()
            .wrap(Logger::default())
            .configure(routes::configure)
    })
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .listen(listener)?
    .run();
    Ok(server)
}
