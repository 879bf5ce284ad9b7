//! Endpoints for the platform rather than for users: probes and metrics.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use actix_web::http::header::ContentType;
use actix_web::{HttpResponse, get, web};

{% if cookiecutter.database == 'postgres' %}use crate::database::Database;
{% endif %}use crate::metrics::Metrics;

/// Registers the probes and `/metrics`; before the user routes, whose `/{name}`
/// would match these paths.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(livez).service(readyz).service(metrics);
}

/// Whether the service wants new traffic: false from the stop signal on.
#[derive(Clone, Debug)]
pub struct Readiness(Arc<AtomicBool>);

impl Default for Readiness {
    fn default() -> Self {
        Self(Arc::new(AtomicBool::new(true)))
    }
}

impl Readiness {
    pub fn is_ready(&self) -> bool {
        self.0.load(Ordering::Relaxed)
    }

    /// From now on `/readyz` answers 503: load balancers stop sending traffic.
    pub fn start_draining(&self) {
        self.0.store(false, Ordering::Relaxed);
    }
}

/// Liveness: the process serves requests. Failing it gets the process restarted.
#[get("/livez")]
async fn livez() -> HttpResponse {
    HttpResponse::Ok()
        .content_type(ContentType::json())
        .body(r#"{"status":"ok"}"#)
}

/// Readiness: 503 while draining before a stop, so no new traffic is routed here.
#[get("/readyz")]
async fn readyz(readiness: web::Data<Readiness>{% if cookiecutter.database == 'postgres' %}, database: web::Data<Database>{% endif %}) -> HttpResponse {
    if readiness.is_ready() {
{%- if cookiecutter.database == 'postgres' %}
        // Also 503 until the migrations are applied and while the database does not
        // answer a ping (src/database.rs).
        if let Some(body) = database.unready_reason().await {
            return HttpResponse::ServiceUnavailable()
                .content_type(ContentType::json())
                .body(body);
        }
{%- endif %}
        HttpResponse::Ok()
            .content_type(ContentType::json())
            .body(r#"{"status":"ready"}"#)
    } else {
        HttpResponse::ServiceUnavailable()
            .content_type(ContentType::json())
            .body(r#"{"status":"draining"}"#)
    }
}

#[get("/metrics")]
async fn metrics(metrics: web::Data<Metrics>) -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4; charset=utf-8")
        .body(metrics.render())
}
