//! The service's behaviour: handlers in-process with `actix_web::test`, then the real
//! server on a random loopback port, started through the same code as `main`.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::{Duration, Instant};

use actix_web::dev::ServerHandle;
use actix_web::http::StatusCode;
use actix_web::{test as actix_test, web};

// The crate under test.
use {{ cookiecutter.slug|replace('-', '_') }}::config::Config;
use {{ cookiecutter.slug|replace('-', '_') }}::operations::Readiness;
use {{ cookiecutter.slug|replace('-', '_') }}::{AppState, Application, app};
use {{ cookiecutter.slug|replace('-', '_') }}::{drain_and_stop, listener, run};

// ---------------------------------------------------------------- in-process

/// Sends `request` through the full app (middleware included).
async fn call(
    state: AppState,
    request: actix_test::TestRequest,
) -> (StatusCode, Vec<(String, String)>, String) {
    let app = actix_test::init_service(app(state)).await;
    let response = actix_test::try_call_service(&app, request.to_request()).await;
    // The server turns an error into its response, as here.
    let response = match response {
        Ok(response) => response.map_into_boxed_body(),
        Err(error) => actix_web::dev::ServiceResponse::new(
            actix_test::TestRequest::default().to_http_request(),
            error.error_response(),
        ),
    };
    let status = response.status();
    let headers = response
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), value.to_str().unwrap().to_owned()))
        .collect();
    let body = actix_test::read_body(response).await;
    (status, headers, String::from_utf8(body.to_vec()).unwrap())
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers
        .iter()
        .find(|(key, _)| key == name)
        .map(|(_, value)| value.as_str())
}

#[actix_web::test]
async fn a_name_is_greeted() {
    let (status, headers, body) = call(
        AppState::default(),
        actix_test::TestRequest::get().uri("/Pete"),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body, "Hello Pete!");
    assert_eq!(
        header(&headers, "content-type"),
        Some("text/plain; charset=utf-8")
    );
    assert_eq!(header(&headers, "x-content-type-options"), Some("nosniff"));
    assert_eq!(header(&headers, "server"), None, "no framework banner");
}

#[actix_web::test]
async fn root_health_and_percent_encoding() {
    let get =
        |uri: &'static str| call(AppState::default(), actix_test::TestRequest::get().uri(uri));
    assert_eq!(get("/").await.2, "Hello World!");
    assert_eq!(get("/Ada%20Lovelace").await.2, "Hello Ada Lovelace!");
    let (status, headers, body) = get("/health").await;
    assert_eq!(
        (status.as_u16(), body.as_str()),
        (200, r#"{"status":"ok"}"#)
    );
    assert_eq!(header(&headers, "content-type"), Some("application/json"));
    assert_eq!(get("/Pete/and/friends").await.0, 404);
}

#[actix_web::test]
async fn a_valid_request_id_is_kept_and_a_bad_one_replaced() {
    let with_id = |id: &'static str| {
        actix_test::TestRequest::get()
            .uri("/")
            .insert_header(("x-request-id", id))
    };
    let (_, headers, _) = call(AppState::default(), with_id("trace-42")).await;
    assert_eq!(header(&headers, "x-request-id"), Some("trace-42"));

    for request in [
        with_id("bad id with spaces"),
        actix_test::TestRequest::get().uri("/"),
    ] {
        let (_, headers, _) = call(AppState::default(), request).await;
        let id = header(&headers, "x-request-id").expect("an id is generated");
        assert_eq!(id.len(), 32);
        assert!(id.bytes().all(|b| b.is_ascii_hexdigit()), "{id}");
    }
}

async fn panicking() -> &'static str {
    panic!("handler failed")
}

#[actix_web::test]
async fn a_panicking_handler_answers_500_and_the_app_keeps_serving() {
    let app = actix_test::init_service(
        app(AppState::default()).route("/panic/now", web::get().to(panicking)),
    )
    .await;
    let request = actix_test::TestRequest::get()
        .uri("/panic/now")
        .insert_header(("x-request-id", "panic-1"))
        .to_request();
    let Err(error) = actix_test::try_call_service(&app, request).await else {
        panic!("a panic is answered by an error response");
    };
    let response = error.error_response();
    assert_eq!(response.status(), 500);
    assert_eq!(response.headers().get("x-request-id").unwrap(), "panic-1");
    let after = actix_test::call_service(
        &app,
        actix_test::TestRequest::get().uri("/Pete").to_request(),
    )
    .await;
    assert_eq!(after.status(), 200);
}

#[actix_web::test]
async fn an_oversized_body_gets_413() {
    let state = AppState {
        max_body_bytes: 10,
        ..AppState::default()
    };
    let request = actix_test::TestRequest::post()
        .uri("/Pete")
        .set_payload("x".repeat(11));
    let (status, headers, _) = call(state, request).await;
    assert_eq!(status, 413);
    assert!(header(&headers, "x-request-id").is_some());
}

#[actix_web::test]
async fn readiness_turns_503_when_draining_while_liveness_stays_200() {
    let state = AppState::default();
    let get = |uri: &'static str| call(state.clone(), actix_test::TestRequest::get().uri(uri));
    assert_eq!(get("/readyz").await.0, 200);
    state.readiness.start_draining();
    assert_eq!(get("/readyz").await.0, 503);
    assert_eq!(get("/livez").await.0, 200);
    assert_eq!(get("/Pete").await.0, 200);
}

#[actix_web::test]
async fn metrics_count_by_route_template_never_by_raw_path() {
    let state = AppState::default();
    for name in ["/Pete", "/Paul", "/Pete/and/friends"] {
        call(state.clone(), actix_test::TestRequest::get().uri(name)).await;
    }
    let (status, headers, body) = call(state, actix_test::TestRequest::get().uri("/metrics")).await;
    assert_eq!(status, 200);
    assert!(
        header(&headers, "content-type")
            .unwrap()
            .starts_with("text/plain; version=0.0.4")
    );
    assert!(
        body.contains(r#"http_requests_total{method="GET",route="/{name}",status="200"} 2"#),
        "{body}"
    );
    assert!(
        body.contains(r#"http_requests_total{method="GET",route="unmatched",status="404"} 1"#),
        "{body}"
    );
    assert!(!body.contains("Pete") && !body.contains("Paul"), "{body}");
    assert!(
        body.contains("http_request_duration_seconds_bucket{"),
        "{body}"
    );
}

// ---------------------------------------------------------------- real socket

/// The real server on its own thread; dropping it stops the server.
struct TestApp {
    address: SocketAddr,
    handle: ServerHandle,
    readiness: Readiness,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestApp {
    fn spawn(config: Config) -> Self {
        let config = Config {
            host: Ipv4Addr::LOCALHOST.into(),
            port: 0,
            ..config
        };
        let listener = listener(&config).expect("bind a random loopback port");
        let address = listener.local_addr().unwrap();
        let (sender, receiver) = mpsc::channel();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let Application { server, readiness } = run(listener, &config)?;
                sender.send((server.handle(), readiness)).unwrap();
                server.await
            })
        });
        let (handle, readiness) = receiver.recv().expect("the server starts");
        Self {
            address,
            handle,
            readiness,
            thread: Some(thread),
        }
    }

    /// Sends `GET path` and returns the status code and the body.
    fn get(&self, path: &str) -> (u16, String) {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: test\r\nConnection: close\r\n\r\n"
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
        let status = head.split(' ').nth(1).unwrap().parse().unwrap();
        (status, body.to_owned())
    }

    fn stop(mut self) -> io::Result<()> {
        self.thread.take().unwrap().join().unwrap()
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        if let Some(thread) = self.thread.take() {
            actix_web::rt::System::new().block_on(self.handle.stop(true));
            thread.join().unwrap().unwrap();
        }
    }
}

#[test]
fn the_real_server_answers_on_its_socket() {
    let app = TestApp::spawn(Config::default());
    assert_eq!(app.get("/Pete"), (200, "Hello Pete!".to_owned()));
    assert_eq!(app.get("/livez").0, 200);
}

#[test]
fn a_slow_client_is_cut_off() {
    let app = TestApp::spawn(Config {
        client_request_timeout: Duration::from_secs(1),
        ..Config::default()
    });
    let mut stream = TcpStream::connect(app.address).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let started = Instant::now();
    // Half a request head, then nothing.
    stream.write_all(b"GET /Pete HTTP/1.1\r\nHost: te").unwrap();
    let mut answer = Vec::new();
    let _ = stream.read_to_end(&mut answer);
    let waited = started.elapsed();
    assert!(waited < Duration::from_secs(5), "cut off after {waited:?}");
    let answer = String::from_utf8_lossy(&answer);
    assert!(
        answer.is_empty() || answer.starts_with("HTTP/1.1 408"),
        "{answer}"
    );
    // Other clients are still served.
    assert_eq!(app.get("/Pete").0, 200);
}

#[test]
fn drain_keeps_serving_with_readiness_503_then_stops() {
    let app = TestApp::spawn(Config::default());
    let (handle, readiness) = (app.handle.clone(), app.readiness.clone());
    let stopper = thread::spawn(move || {
        actix_web::rt::System::new().block_on(drain_and_stop(
            handle,
            readiness,
            Duration::from_millis(800),
            std::future::pending(),
        ));
    });
    thread::sleep(Duration::from_millis(200));
    assert_eq!(app.get("/readyz").0, 503);
    assert_eq!(
        app.get("/Pete").0,
        200,
        "requests are still served while draining"
    );
    stopper.join().unwrap();
    app.stop().expect("the server stops cleanly");
}

/// One `GET path` on an open connection, HTTP/1.1 keep-alive (the default): the status,
/// the head (lowercase) and the body, read exactly so that the connection can be reused.
fn keep_alive_get(stream: &mut TcpStream, path: &str) -> io::Result<(u16, String, String)> {
    write!(stream, "GET {path} HTTP/1.1\r\nHost: test\r\n\r\n")?;
    let mut raw = Vec::new();
    let mut byte = [0; 1];
    while !raw.ends_with(b"\r\n\r\n") {
        if stream.read(&mut byte)? == 0 {
            return Err(io::ErrorKind::UnexpectedEof.into());
        }
        raw.push(byte[0]);
    }
    let head = String::from_utf8(raw).unwrap().to_ascii_lowercase();
    let status = head.split(' ').nth(1).unwrap().parse().unwrap();
    let length: usize = head
        .lines()
        .find_map(|line| line.strip_prefix("content-length: "))
        .expect("a content-length")
        .parse()
        .unwrap();
    let mut body = vec![0; length];
    stream.read_exact(&mut body)?;
    Ok((status, head, String::from_utf8(body).unwrap()))
}

fn connect(app: &TestApp, read_timeout: Duration) -> TcpStream {
    let stream = TcpStream::connect(app.address).unwrap();
    stream.set_read_timeout(Some(read_timeout)).unwrap();
    stream
}

#[test]
fn keep_alive_reuses_a_connection_then_closes_it_when_idle() {
    let app = TestApp::spawn(Config {
        keep_alive: Duration::from_secs(1),
        ..Config::default()
    });
    let mut stream = connect(&app, Duration::from_secs(10));
    for _ in 0..3 {
        let (status, head, body) = keep_alive_get(&mut stream, "/Pete").unwrap();
        assert_eq!((status, body.as_str()), (200, "Hello Pete!"));
        assert!(!head.contains("connection: close"), "{head}");
    }
    // Idle past KEEP_ALIVE_SECS: the server closes the connection by itself.
    let started = Instant::now();
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    let waited = started.elapsed();
    assert!(rest.is_empty(), "{}", String::from_utf8_lossy(&rest));
    assert!(
        waited > Duration::from_millis(500) && waited < Duration::from_secs(5),
        "closed after {waited:?}"
    );
}

#[test]
fn keep_alive_zero_closes_the_connection_after_each_response() {
    let app = TestApp::spawn(Config {
        keep_alive: Duration::ZERO,
        ..Config::default()
    });
    let mut stream = connect(&app, Duration::from_secs(10));
    let (status, head, _) = keep_alive_get(&mut stream, "/Pete").unwrap();
    assert_eq!(status, 200);
    assert!(head.contains("connection: close"), "{head}");
    let mut rest = Vec::new();
    let _ = stream.read_to_end(&mut rest);
    assert!(rest.is_empty());
}

#[test]
fn max_connections_holds_further_clients_until_a_connection_closes() {
    // src/lib.rs gives every worker MAX_CONNECTIONS / workers: one connection each here.
    let workers = thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get);
    let app = TestApp::spawn(Config {
        max_connections: workers,
        keep_alive: Duration::from_secs(30),
        ..Config::default()
    });
    // Open keep-alive connections, one answered request each: every worker is full.
    let mut held: Vec<TcpStream> = (0..workers)
        .map(|_| {
            let mut stream = connect(&app, Duration::from_secs(10));
            assert_eq!(keep_alive_get(&mut stream, "/Pete").unwrap().0, 200);
            stream
        })
        .collect();
    // One more client: the kernel completes its handshake, but nobody serves it.
    let mut waiting = connect(&app, Duration::from_millis(700));
    let unanswered = keep_alive_get(&mut waiting, "/Paul");
    let kind = unanswered.as_ref().map_err(io::Error::kind);
    assert!(
        matches!(
            kind,
            Err(io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut)
        ),
        "served beyond MAX_CONNECTIONS: {unanswered:?}"
    );
    // A held connection closes: the waiting client is accepted and answered.
    drop(held.pop());
    waiting
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut answer = Vec::new();
    let mut buffer = [0; 1024];
    while !answer.ends_with(b"Hello Paul!") {
        let read = waiting
            .read(&mut buffer)
            .expect("answered once a slot is free");
        assert!(read > 0, "{}", String::from_utf8_lossy(&answer));
        answer.extend_from_slice(&buffer[..read]);
    }
    assert!(answer.starts_with(b"HTTP/1.1 200"));
}
