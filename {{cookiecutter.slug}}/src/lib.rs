//! The service as a library, so tests can start it in-process on any listener.

pub mod config;
pub mod routes;

use std::io;
use std::net::TcpListener;
use std::time::Duration;

use actix_web::dev::{Server, ServerHandle};
use actix_web::middleware::Logger;
use actix_web::{App, HttpServer};

use crate::config::Config;

/// Time the acceptor gets to hand over connections it already accepted before the
/// workers stop: a stopping worker drops connections still queued for it.
const HANDOVER_DELAY: Duration = Duration::from_millis(100);

/// Builds the server on `listener`; the caller awaits (or spawns) the returned [`Server`]
/// and ends it with [`shutdown`]. The server installs no signal handlers of its own.
pub fn run(listener: TcpListener, config: &Config) -> io::Result<Server> {
    let server = HttpServer::new(|| {
        App::new()
            .wrap(Logger::default())
            .configure(routes::configure)
    })
    .shutdown_timeout(config.shutdown_timeout.as_secs())
    .disable_signals()
    .listen(listener)?
    .run();
    Ok(server)
}

/// Graceful stop: stops accepting (new connections wait in the listening socket's
/// backlog, where a process that inherits the socket will find them), lets accepted
/// connections finish within the shutdown timeout, then stops the server.
pub async fn shutdown(handle: ServerHandle) {
    handle.pause().await;
    actix_web::rt::time::sleep(HANDOVER_DELAY).await;
    handle.stop(true).await;
}
