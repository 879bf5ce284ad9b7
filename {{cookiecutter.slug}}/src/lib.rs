//! The service as a library, so tests can start it in-process on any listener.

pub mod config;
{%- if cookiecutter.database == 'postgres' %}
pub mod database;
pub mod greetings;
{%- endif %}
pub mod healthcheck;
pub mod json_lines;
pub mod metrics;
pub mod middleware;
pub mod operations;
pub mod routes;
pub mod telemetry;

use std::future::Future;
use std::io;
use std::net::TcpListener;
use std::num::NonZeroUsize;
use std::sync::Arc;
use std::time::Duration;

use actix_web::body::MessageBody;
use actix_web::dev::{Server, ServerHandle, ServiceFactory, ServiceRequest, ServiceResponse};
use actix_web::http::KeepAlive;
use actix_web::{App, HttpServer, web};
use listenfd::ListenFd;

use crate::config::Config;
{%- if cookiecutter.database == 'postgres' %}
use crate::database::Database;
{%- endif %}
use crate::metrics::Metrics;
use crate::middleware::Telemetry;
use crate::operations::Readiness;

/// Time the acceptor gets to hand over connections it already accepted before the
/// workers stop: a stopping worker drops connections still queued for it.
const HANDOVER_DELAY: Duration = Duration::from_millis(100);

/// What every worker's app shares.
#[derive(Clone, Default)]
pub struct AppState {
    pub metrics: Arc<Metrics>,
    pub readiness: Readiness,
    pub max_body_bytes: usize,
{%- if cookiecutter.database == 'postgres' %}
    pub database: Database,
{%- endif %}
}

/// A built server and the switch that takes it out of rotation.
pub struct Application {
    pub server: Server,
    pub readiness: Readiness,
}

/// The application with its middleware, for the server and for `actix_web::test`.
pub fn app(
    state: AppState,
) -> App<
    impl ServiceFactory<
        ServiceRequest,
        Config = (),
        Response = ServiceResponse<impl MessageBody>,
        Error = actix_web::Error,
        InitError = (),
    >,
> {
    App::new()
        .app_data(web::Data::from(Arc::clone(&state.metrics)))
        .app_data(web::Data::new(state.readiness))
{%- if cookiecutter.database == 'postgres' %}
        .app_data(web::Data::new(state.database))
{%- endif %}
        // Limits for extractors that read a body without a Content-Length.
        .app_data(web::PayloadConfig::new(state.max_body_bytes))
        .app_data(web::JsonConfig::default().limit(state.max_body_bytes))
        .wrap(Telemetry::new(
            Arc::clone(&state.metrics),
            state.max_body_bytes,
        ))
        .configure(operations::configure)
{%- if cookiecutter.database == 'postgres' %}
        .configure(greetings::configure)
{%- endif %}
        .configure(routes::configure)
}

/// Builds the server on `listener` with the limits from `config`; the caller awaits
/// (or spawns) `server` and ends it with [`drain_and_stop`] or [`shutdown`]. The
/// server installs no signal handlers of its own.
pub fn run(listener: TcpListener, config: &Config) -> io::Result<Application> {
{%- if cookiecutter.database == 'postgres' %}
    run_with(listener, config, Database::default())
}

/// [`run`] with the database of the greetings and `/readyz` (src/database.rs).
pub fn run_with(
    listener: TcpListener,
    config: &Config,
    database: Database,
) -> io::Result<Application> {
{%- endif %}
    let state = AppState {
        metrics: Arc::new(Metrics::new()),
        readiness: Readiness::default(),
        max_body_bytes: config.max_body_bytes,
{%- if cookiecutter.database == 'postgres' %}
        database,
{%- endif %}
    };
    let readiness = state.readiness.clone();
    let workers = std::thread::available_parallelism().map_or(1, NonZeroUsize::get);
    let keep_alive = if config.keep_alive.is_zero() {
        KeepAlive::Disabled
    } else {
        KeepAlive::Timeout(config.keep_alive)
    };
    let server = HttpServer::new(move || app(state.clone()))
        .workers(workers)
        // actix-web counts connections per worker.
        .max_connections(config.max_connections.div_ceil(workers))
        .client_request_timeout(config.client_request_timeout)
        .keep_alive(keep_alive)
        .shutdown_timeout(config.shutdown_timeout.as_secs())
        .disable_signals()
        .listen(listener)?
        .run();
    Ok(Application { server, readiness })
}

/// The socket passed in by systemfd (listenfd protocol) if there is one, else a new
/// one bound to `HOST:PORT`. The log line says which.
pub fn listener(config: &Config) -> io::Result<TcpListener> {
    if let Some(listener) = ListenFd::from_env().take_tcp_listener(0)? {
        tracing::info!(
            "listening on http://{} (socket taken from listenfd)",
            listener.local_addr()?
        );
        return Ok(listener);
    }
    let address = config.bind_address();
    let listener = TcpListener::bind(address)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot bind {address}: {err}")))?;
    tracing::info!(
        "listening on http://{} (bound HOST:PORT)",
        listener.local_addr()?
    );
    Ok(listener)
}

/// The stop sequence: readiness turns 503 at once, requests are still served for
/// `drain` (or until `cut_short` resolves, e.g. on a second signal), then [`shutdown`].
pub async fn drain_and_stop(
    handle: ServerHandle,
    readiness: Readiness,
    drain: Duration,
    cut_short: impl Future<Output = ()>,
) {
    readiness.start_draining();
    let _ = actix_web::rt::time::timeout(drain, cut_short).await;
    shutdown(handle).await;
}

/// Graceful stop: stops accepting (new connections wait in the listening socket's
/// backlog, where a process that inherits the socket will find them), lets accepted
/// connections finish within the shutdown timeout, then stops the server.
pub async fn shutdown(handle: ServerHandle) {
    handle.pause().await;
    actix_web::rt::time::sleep(HANDOVER_DELAY).await;
    handle.stop(true).await;
}
