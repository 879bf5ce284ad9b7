//! Request handlers.

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, get, web};

/// Registers every route. Fixed paths come before `/{name}`, which matches any segment.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(index).service(health).service(greet);
}

#[get("/")]
async fn index() -> &'static str {
    "Hello World!"
}

/// Kept for existing checks; new probes should use `/livez` and `/readyz`
/// (src/operations.rs).
#[get("/health")]
async fn health() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(r#"{"status":"ok"}"#)
}

#[get("/{name}")]
async fn greet(name: web::Path<String>) -> String {
    format!("Hello {name}!")
}
