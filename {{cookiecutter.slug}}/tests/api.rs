//! Starts the real server on a random loopback port and talks HTTP/1.1 to it.

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use actix_web::dev::ServerHandle;

// The crate under test.
use {{ cookiecutter.slug|replace('-', '_') }}::config::Config;
use {{ cookiecutter.slug|replace('-', '_') }}::run;

/// The server running on its own thread; dropping it stops the server.
struct TestApp {
    address: SocketAddr,
    handle: ServerHandle,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl TestApp {
    fn spawn() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a random port");
        let address = listener.local_addr().unwrap();
        let (sender, receiver) = mpsc::channel();
        let thread = thread::spawn(move || {
            actix_web::rt::System::new().block_on(async move {
                let server = run(listener, &Config::default())?;
                sender.send(server.handle()).unwrap();
                server.await
            })
        });
        let handle = receiver.recv().expect("the server starts");
        Self {
            address,
            handle,
            thread: Some(thread),
        }
    }

    /// Sends `GET path` and returns the status code, the headers and the body.
    fn get(&self, path: &str) -> Response {
        let mut stream = TcpStream::connect(self.address).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        write!(
            stream,
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.address
        )
        .unwrap();
        let mut raw = String::new();
        stream.read_to_string(&mut raw).unwrap();
        let (head, body) = raw.split_once("\r\n\r\n").expect("a complete response");
        let mut lines = head.lines();
        let status = lines
            .next()
            .unwrap()
            .split(' ')
            .nth(1)
            .unwrap()
            .parse()
            .unwrap();
        let headers = lines.map(str::to_ascii_lowercase).collect();
        Response {
            status,
            headers,
            body: body.to_owned(),
        }
    }
}

impl Drop for TestApp {
    fn drop(&mut self) {
        actix_web::rt::System::new().block_on(self.handle.stop(true));
        if let Some(thread) = self.thread.take() {
            thread.join().unwrap().unwrap();
        }
    }
}

struct Response {
    status: u16,
    headers: Vec<String>,
    body: String,
}

impl Response {
    fn has_header(&self, line: &str) -> bool {
        self.headers.iter().any(|header| header == line)
    }
}

#[test]
fn root_greets_the_world() {
    let app = TestApp::spawn();
    let response = app.get("/");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "Hello World!");
    assert!(response.has_header("content-type: text/plain; charset=utf-8"));
}

#[test]
fn a_name_is_greeted() {
    let app = TestApp::spawn();
    let response = app.get("/Pete");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, "Hello Pete!");
}

#[test]
fn a_percent_encoded_name_is_decoded() {
    let app = TestApp::spawn();
    assert_eq!(app.get("/Ada%20Lovelace").body, "Hello Ada Lovelace!");
}

#[test]
fn health_reports_ok_as_json() {
    let app = TestApp::spawn();
    let response = app.get("/health");
    assert_eq!(response.status, 200);
    assert_eq!(response.body, r#"{"status":"ok"}"#);
    assert!(response.has_header("content-type: application/json"));
}

#[test]
fn deeper_paths_are_not_found() {
    let app = TestApp::spawn();
    assert_eq!(app.get("/Pete/and/friends").status, 404);
}
