//! `/healthz` and `/metrics` (Prometheus text format). Both are unauthenticated, as scrapers and
//! load balancers expect; neither shows anything secret.

use actix_web::{web, HttpResponse};

use super::AppState;
use crate::db;
use crate::error::Result;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/healthz", web::get().to(healthz))
        .route("/metrics", web::get().to(metrics));
}

/// 200 when the region can reach its database.
#[utoipa::path(get, path = "/healthz", tag = "health", security(()),
    responses((status = 200, description = "healthy"), (status = 500, description = "database unreachable")))]
pub async fn healthz(state: web::Data<AppState>) -> Result<HttpResponse> {
    use diesel::connection::SimpleConnection;
    state
        .pool
        .run(|c| c.batch_execute("SELECT 1").map_err(Into::into))
        .await?;
    let backend = match state.pool.backend() {
        db::Backend::Sqlite => "sqlite",
        db::Backend::Postgres => "postgres",
    };
    Ok(HttpResponse::Ok().json(serde_json::json!({"status": "ok", "database": backend})))
}

/// Prometheus metrics: HTTP requests by method and status, machines by status.
#[utoipa::path(get, path = "/metrics", tag = "health", security(()),
    responses((status = 200, description = "Prometheus text", content_type = "text/plain")))]
pub async fn metrics(state: web::Data<AppState>) -> Result<HttpResponse> {
    let counts = state.pool.run(db::machines::count_by_status).await?;
    let text = state.metrics.render(&counts);
    Ok(HttpResponse::Ok()
        .content_type("text/plain; version=0.0.4")
        .body(text))
}
