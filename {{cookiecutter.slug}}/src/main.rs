use std::io;
use std::process::ExitCode;

use tracing::{error, info};

use {{ cookiecutter.slug|replace('-', '_') }}::config::Config;
{%- if cookiecutter.database == 'postgres' %}
use {{ cookiecutter.slug|replace('-', '_') }}::database::{self, Database, Settings};
use {{ cookiecutter.slug|replace('-', '_') }}::{Application, drain_and_stop, listener, run_with};
{%- else %}
use {{ cookiecutter.slug|replace('-', '_') }}::{Application, drain_and_stop, listener, run};
{%- endif %}
use {{ cookiecutter.slug|replace('-', '_') }}::{healthcheck, telemetry};

fn main() -> ExitCode {
    let config = match Config::from_env() {
        Ok(config) => config,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    let mut args = std::env::args().skip(1);
    match args.next().as_deref() {
        None => serve(&config),
        Some("healthcheck") => check_health(args.next().as_deref(), &config),
{%- if cookiecutter.database == 'postgres' %}
        Some("migrate") => migrate(),
        Some(other) => {
            eprintln!(
                "error: unknown subcommand {other:?}; usage: [healthcheck [live|ready|URL] | migrate]"
            );
{%- else %}
        Some(other) => {
            eprintln!("error: unknown subcommand {other:?}; usage: [healthcheck [live|ready|URL]]");
{%- endif %}
            ExitCode::from(2)
        }
    }
}

/// Exit 0 if the probed endpoint answers 200 (see src/healthcheck.rs).
fn check_health(argument: Option<&str>, config: &Config) -> ExitCode {
    let result = healthcheck::target(argument, config)
        .and_then(|(addresses, path)| healthcheck::probe(&addresses, &path));
    match result {
        Ok(200) => ExitCode::SUCCESS,
        Ok(status) => {
            eprintln!("unhealthy: status {status}");
            ExitCode::FAILURE
        }
        Err(err) => {
            eprintln!("unhealthy: {err}");
            ExitCode::FAILURE
        }
    }
}

{% if cookiecutter.database == 'postgres' %}/// The database settings, or the exit code after one line naming the variable.
fn database_settings() -> Result<Settings, ExitCode> {
    Settings::from_env().map_err(|err| {
        eprintln!("error: {err}");
        ExitCode::from(2)
    })
}

/// Applies the pending migrations and exits: for a pipeline job before a deploy, and
/// for ci/sqlx-metadata.sh. The service also applies them at start.
fn migrate() -> ExitCode {
    let settings = match database_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
    match actix_web::rt::System::new().block_on(database::migrate(&settings)) {
        Ok(()) => {
            eprintln!("migrations applied");
            ExitCode::SUCCESS
        }
        Err(err) => {
            eprintln!("error: migrations not applied: {err}");
            ExitCode::FAILURE
        }
    }
}

{% endif %}fn serve(config: &Config) -> ExitCode {
{%- if cookiecutter.database == 'postgres' %}
    let settings = match database_settings() {
        Ok(settings) => settings,
        Err(code) => return code,
    };
{%- endif %}
    let _log_guard = match telemetry::init(config) {
        Ok(guard) => guard,
        Err(err) => {
            eprintln!("error: {err}");
            return ExitCode::from(2);
        }
    };
    match actix_web::rt::System::new().block_on(serve_until_stopped(config{% if cookiecutter.database == 'postgres' %}, &settings{% endif %})) {
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

async fn serve_until_stopped(config: &Config{% if cookiecutter.database == 'postgres' %}, settings: &Settings{% endif %}) -> io::Result<()> {
    let listener = listener(config)?;
{%- if cookiecutter.database == 'postgres' %}
    let database = Database::start(settings);
    let Application { server, readiness } = run_with(listener, config, database)?;
{%- else %}
    let Application { server, readiness } = run(listener, config)?;
{%- endif %}
    let handle = server.handle();
    let mut signals = StopSignals::new()?;
    let (drain, timeout) = (config.drain, config.shutdown_timeout);
    actix_web::rt::spawn(async move {
        let signal = signals.next().await;
        info!(
            "{signal} received: readiness 503, draining for {}s, then graceful shutdown \
             (in-flight requests get {}s)",
            drain.as_secs(),
            timeout.as_secs()
        );
        let second = async {
            let signal = signals.next().await;
            info!("{signal} received again: drain cut short");
        };
        drain_and_stop(handle, readiness, drain, second).await;
    });
    server.await
}

/// SIGTERM (container runtimes, watchers) and SIGINT (Ctrl-C).
#[cfg(unix)]
struct StopSignals {
    term: actix_web::rt::signal::unix::Signal,
    int: actix_web::rt::signal::unix::Signal,
}

#[cfg(unix)]
impl StopSignals {
    fn new() -> io::Result<Self> {
        use actix_web::rt::signal::unix::{SignalKind, signal};
        Ok(Self {
            term: signal(SignalKind::terminate())?,
            int: signal(SignalKind::interrupt())?,
        })
    }

    async fn next(&mut self) -> &'static str {
        use std::task::Poll;
        std::future::poll_fn(|cx| {
            if self.term.poll_recv(cx).is_ready() {
                Poll::Ready("SIGTERM")
            } else if self.int.poll_recv(cx).is_ready() {
                Poll::Ready("SIGINT")
            } else {
                Poll::Pending
            }
        })
        .await
    }
}

#[cfg(not(unix))]
struct StopSignals;

#[cfg(not(unix))]
impl StopSignals {
    fn new() -> io::Result<Self> {
        Ok(Self)
    }

    async fn next(&mut self) -> &'static str {
        let _ = actix_web::rt::signal::ctrl_c().await;
        "Ctrl-C"
    }
}
