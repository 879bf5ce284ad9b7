use std::io;
use std::net::TcpListener;
use std::process::ExitCode;

use listenfd::ListenFd;
use log::{error, info};

use {{ cookiecutter.slug|replace('-', '_') }}::config::Config;
use {{ cookiecutter.slug|replace('-', '_') }}::{run, shutdown};

#[actix_web::main]
async fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    env_logger::Builder::new()
        .parse_filters(&config.log_filter)
        .target(env_logger::Target::Stdout)
        .init();

    match serve(&config).await {
        Ok(()) => {
            info!("stopped");
            ExitCode::SUCCESS
        }
        Err(err) => {
            error!("{err}");
            ExitCode::FAILURE
        }
    }
}

async fn serve(config: &Config) -> io::Result<()> {
    let listener = listener(config)?;
    let server = run(listener, config)?;
    let handle = server.handle();
    let timeout = config.shutdown_timeout;
    actix_web::rt::spawn(async move {
        match stop_signal().await {
            Ok(signal) => info!(
                "{signal} received: finishing in-flight requests (at most {}s)",
                timeout.as_secs()
            ),
            Err(err) => {
                error!("cannot listen for stop signals: {err}");
                return;
            }
        }
        shutdown(handle).await;
    });
    server.await
}

/// Waits for SIGTERM (container runtimes, watchers) or SIGINT (Ctrl-C).
#[cfg(unix)]
async fn stop_signal() -> io::Result<&'static str> {
    use actix_web::rt::signal::unix::{SignalKind, signal};
    use std::task::Poll;

    let mut term = signal(SignalKind::terminate())?;
    let mut int = signal(SignalKind::interrupt())?;
    Ok(std::future::poll_fn(|cx| {
        if term.poll_recv(cx).is_ready() {
            Poll::Ready("SIGTERM")
        } else if int.poll_recv(cx).is_ready() {
            Poll::Ready("SIGINT")
        } else {
            Poll::Pending
        }
    })
    .await)
}

#[cfg(not(unix))]
async fn stop_signal() -> io::Result<&'static str> {
    actix_web::rt::signal::ctrl_c().await.map(|()| "Ctrl-C")
}

/// The socket passed in by systemfd (listenfd protocol) if there is one, else `HOST:PORT`.
fn listener(config: &Config) -> io::Result<TcpListener> {
    if let Some(listener) = ListenFd::from_env().take_tcp_listener(0)? {
        info!(
            "listening on http://{} (socket taken from listenfd)",
            listener.local_addr()?
        );
        return Ok(listener);
    }
    let address = config.bind_address();
    let listener = TcpListener::bind(address)
        .map_err(|err| io::Error::new(err.kind(), format!("cannot bind {address}: {err}")))?;
    info!(
        "listening on http://{} (bound HOST:PORT)",
        listener.local_addr()?
    );
    Ok(listener)
}
