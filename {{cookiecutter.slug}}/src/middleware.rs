//! One middleware for what every request needs: a request id, a tracing span, one
//! access log line, metrics, the body size limit, a `nosniff` header and a 500 for a
//! handler that panics. One layer instead of five keeps the per-request cost low.

use std::cell::Cell;
use std::collections::hash_map::RandomState;
use std::future::{Future, Ready, ready};
use std::hash::{BuildHasher, Hasher};
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::pin::Pin;
use std::rc::Rc;
use std::sync::{Arc, Mutex, PoisonError};
use std::task::{Context, Poll};
use std::time::Instant;

use actix_web::body::MessageBody;
use actix_web::dev::{Service, ServiceRequest, ServiceResponse, Transform};
use actix_web::error::InternalError;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, HeaderName, HeaderValue};
use actix_web::{Error, HttpMessage, HttpResponse};
use tracing::Instrument;

use crate::metrics::{Metrics, Shard, UNKNOWN, UNMATCHED};

pub const REQUEST_ID: HeaderName = HeaderName::from_static("x-request-id");
/// Longer incoming ids are replaced: they would bloat every log line.
const MAX_REQUEST_ID_LEN: usize = 128;

/// The request's id, in the request's extensions for handlers that pass it on.
#[derive(Clone, Debug)]
pub struct RequestId(HeaderValue);

impl RequestId {
    /// Keeps a valid incoming id (so a trace spans services), else makes one.
    fn for_request(headers: &header::HeaderMap) -> Self {
        match headers.get(REQUEST_ID) {
            Some(value) if is_valid_request_id(value.as_bytes()) => Self(value.clone()),
            _ => Self::generate(),
        }
    }

    /// 128 random bits in hex, from a per-thread generator seeded by the OS.
    fn generate() -> Self {
        thread_local! {
            static STATE: Cell<u64> = Cell::new(RandomState::new().build_hasher().finish());
        }
        let mut bytes = [0_u8; 32];
        for chunk in bytes.chunks_mut(16) {
            let random = STATE.with(|state| {
                let next = state.get().wrapping_add(0x9e37_79b9_7f4a_7c15);
                state.set(next);
                splitmix64(next)
            });
            for (i, byte) in chunk.iter_mut().enumerate() {
                *byte = b"0123456789abcdef"[((random >> (60 - 4 * i)) & 0xf) as usize];
            }
        }
        Self(HeaderValue::from_bytes(&bytes).expect("hex digits are a valid header value"))
    }

    pub fn as_str(&self) -> &str {
        // Only visible ASCII gets in (see is_valid_request_id and generate).
        self.0.to_str().unwrap_or_default()
    }
}

/// Letters, digits and `-_.:=;/+`, as in UUIDs, ULIDs and cloud trace ids.
pub fn is_valid_request_id(value: &[u8]) -> bool {
    (1..=MAX_REQUEST_ID_LEN).contains(&value.len())
        && value
            .iter()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:=;/+".contains(b))
}

fn splitmix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// The middleware factory; `App::wrap` builds one middleware per worker.
pub struct Telemetry {
    metrics: Arc<Metrics>,
    max_body_bytes: u64,
}

impl Telemetry {
    pub fn new(metrics: Arc<Metrics>, max_body_bytes: usize) -> Self {
        Self {
            metrics,
            max_body_bytes: max_body_bytes.try_into().unwrap_or(u64::MAX),
        }
    }
}

impl<S, B> Transform<S, ServiceRequest> for Telemetry
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Transform = TelemetryMiddleware<S>;
    type InitError = ();
    type Future = Ready<Result<Self::Transform, ()>>;

    fn new_transform(&self, service: S) -> Self::Future {
        ready(Ok(TelemetryMiddleware {
            service: Rc::new(service),
            shard: self.metrics.shard(),
            max_body_bytes: self.max_body_bytes,
        }))
    }
}

pub struct TelemetryMiddleware<S> {
    service: Rc<S>,
    shard: Arc<Mutex<Shard>>,
    max_body_bytes: u64,
}

type Answer<B> = Result<ServiceResponse<B>, Error>;

impl<S, B> Service<ServiceRequest> for TelemetryMiddleware<S>
where
    S: Service<ServiceRequest, Response = ServiceResponse<B>, Error = Error> + 'static,
    B: MessageBody + 'static,
{
    type Response = ServiceResponse<B>;
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Answer<B>>>>;

    actix_web::dev::forward_ready!(service);

    fn call(&self, request: ServiceRequest) -> Self::Future {
        let started = Instant::now();
        let request_id = RequestId::for_request(request.headers());
        let span = tracing::info_span!("request", request_id = request_id.as_str());
        let method = request.method().clone();
        let too_large = content_length(&request).is_some_and(|n| n > self.max_body_bytes);
        let inner = if too_large {
            None
        } else {
            request.extensions_mut().insert(request_id.clone());
            // Entered: a handler's synchronous part logs with the request id too.
            let _entered = span.enter();
            Some(self.service.call(request))
        };
        let shard = Arc::clone(&self.shard);
        let answer = async move {
            let outcome = match inner {
                None => Err(answer_with(StatusCode::PAYLOAD_TOO_LARGE, &request_id)),
                Some(inner) => match CatchUnwind(std::pin::pin!(inner)).await {
                    Ok(outcome) => outcome,
                    // The panic hook (src/telemetry.rs) has logged it, with the request id.
                    Err(()) => Err(answer_with(StatusCode::INTERNAL_SERVER_ERROR, &request_id)),
                },
            };
            let (status, route) = match &outcome {
                Ok(response) => (
                    response.status(),
                    response
                        .request()
                        .match_pattern()
                        .unwrap_or_else(|| UNMATCHED.to_owned()),
                ),
                // Answered before routing, or the request was lost in a panic.
                Err(error) => (error.as_response_error().status_code(), UNKNOWN.to_owned()),
            };
            let took = started.elapsed();
            tracing::info!(
                method = method.as_str(),
                route = route.as_str(),
                status = status.as_u16(),
                latency_us = u64::try_from(took.as_micros()).unwrap_or(u64::MAX),
                "request"
            );
            shard
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .record(&method, route, status, took);
            let mut response = outcome?;
            let headers = response.headers_mut();
            headers.insert(REQUEST_ID, request_id.0);
            headers.insert(header::X_CONTENT_TYPE_OPTIONS, NOSNIFF);
            Ok(response)
        };
        Box::pin(answer.instrument(span))
    }
}

const NOSNIFF: HeaderValue = HeaderValue::from_static("nosniff");

/// An answer given without the request (which routing or a panic consumed): actix-web
/// turns the error into this response.
fn answer_with(status: StatusCode, request_id: &RequestId) -> Error {
    let response = HttpResponse::build(status)
        .insert_header((REQUEST_ID, request_id.0.clone()))
        .insert_header((header::X_CONTENT_TYPE_OPTIONS, NOSNIFF))
        .finish();
    InternalError::from_response(status.canonical_reason().unwrap_or("error"), response).into()
}

fn content_length(request: &ServiceRequest) -> Option<u64> {
    request
        .headers()
        .get(header::CONTENT_LENGTH)?
        .to_str()
        .ok()?
        .parse()
        .ok()
}

/// Resolves to `Err(())` if polling `F` panics, so the worker keeps serving.
struct CatchUnwind<F>(F);

impl<F: Future + Unpin> Future for CatchUnwind<F> {
    type Output = Result<F::Output, ()>;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        let inner = &mut self.0;
        match catch_unwind(AssertUnwindSafe(|| Pin::new(inner).poll(cx))) {
            Ok(Poll::Ready(output)) => Poll::Ready(Ok(output)),
            Ok(Poll::Pending) => Poll::Pending,
            Err(_) => Poll::Ready(Err(())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_ids_are_checked() {
        assert!(is_valid_request_id(b"0b1c2d3e-aaaa-4bbb-8ccc-0123456789ab"));
        assert!(is_valid_request_id(
            b"Root=1-67891233-abcdef012345678912345678"
        ));
        assert!(!is_valid_request_id(b""));
        assert!(!is_valid_request_id(b"with space"));
        assert!(!is_valid_request_id(b"quote\"d"));
        assert!(!is_valid_request_id(&[b'a'; MAX_REQUEST_ID_LEN + 1]));
    }

    #[test]
    fn generated_ids_are_valid_and_differ() {
        let (a, b) = (RequestId::generate(), RequestId::generate());
        assert_eq!(a.as_str().len(), 32);
        assert!(is_valid_request_id(a.as_str().as_bytes()));
        assert_ne!(a.as_str(), b.as_str());
    }
}
