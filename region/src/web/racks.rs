//! The Racks page: rack controllers, their approval, services and health; admins approve and
//! revoke racks and make enrolment tokens (shown once).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::web;
use kiln_ui::views;

use super::{field_errors, is_user_error, render, see_other, with_notice, Form, Viewer, WebResult};
use crate::api::AppState;
use crate::db::{self, now_ms, racks::OFFLINE_AFTER_MS};
use crate::domain::racks;
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/racks", web::get().to(racks_page))
        .route("/racks/tokens", web::post().to(token_create))
        .route("/racks/{id}/approve", web::post().to(approve))
        .route("/racks/{id}/delete", web::post().to(revoke))
        .route("/racks/{id}/power-networks", web::post().to(power_networks));
}

async fn racks_view(state: &AppState) -> Result<views::Racks> {
    let rows = state.pool.run(db::racks::list).await?;
    let now = now_ms();
    Ok(views::Racks {
        racks: rows
            .iter()
            .map(|r| views::rack_row(&r.to_api(now, OFFLINE_AFTER_MS)))
            .collect(),
        ..Default::default()
    })
}

fn page(v: &Viewer, status: StatusCode, notice: Option<String>, view: views::Racks) -> WebResult {
    render(
        v,
        status,
        "racks.html",
        "racks",
        "Racks",
        notice,
        None,
        view,
    )
}

async fn racks_page(state: web::Data<AppState>, v: Viewer) -> WebResult {
    page(&v, StatusCode::OK, None, racks_view(&state).await?)
}

fn admin(v: &Viewer) -> Result<()> {
    if v.caller.is_admin {
        Ok(())
    } else {
        Err(Error::Forbidden(
            "Only administrators may enrol, approve or revoke racks.".into(),
        ))
    }
}

async fn failed(
    state: &AppState,
    v: &Viewer,
    e: Error,
    values: BTreeMap<String, String>,
) -> WebResult {
    if !is_user_error(&e) {
        return Err(e.into());
    }
    let mut view = racks_view(state).await?;
    view.errors = field_errors(&e, &["ttl_secs", "power_networks"]);
    view.values = values;
    let status = actix_web::ResponseError::status_code(&e);
    page(v, status, None, view)
}

async fn token_create(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    admin(&v)?;
    let hours = form.text("ttl_hours");
    let auto = form.checked("auto_approve");
    let ttl = match hours.parse::<u64>() {
        Ok(h) => h.saturating_mul(3600),
        Err(_) => 0,
    };
    let pin = crate::tls::enrolment_pin(&state.cfg)?;
    let nets = split_networks(&form.text("power_networks"));
    let by = v.caller.username.clone();
    let r = state
        .pool
        .run(move |c| racks::create_token(c, &by, ttl, auto, &nets, pin.clone(), now_ms()))
        .await;
    match r {
        Ok(t) => {
            // Shown on this answer only (never in a URL, never again).
            let mut view = racks_view(&state).await?;
            view.new_token = Some(t.token);
            page(
                &v,
                StatusCode::CREATED,
                Some(format!(
                    "Enrolment token made; it may be used until {}.",
                    t.expires_at
                )),
                view,
            )
        }
        Err(e) => {
            let e = match e {
                Error::Validation { ref field, .. } if field.as_deref() == Some("ttl_secs") => {
                    Error::validation(
                        "ttl_secs",
                        "An enrolment token is valid for 1 to 168 hours (7 days).",
                    )
                }
                other => other,
            };
            failed(
                &state,
                &v,
                e,
                BTreeMap::from([
                    ("ttl_hours".to_string(), hours),
                    ("power_networks".to_string(), form.text("power_networks")),
                ]),
            )
            .await
        }
    }
}

async fn approve(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    v.check(&Form::parse(&body))?;
    admin(&v)?;
    let (by, rid) = (v.caller.username.clone(), id.to_string());
    match state
        .pool
        .run(move |c| racks::approve(c, &rid, &by, now_ms()))
        .await
    {
        Ok(r) => Ok(see_other(&with_notice(
            "/racks",
            &format!(
                "Rack {} approved: it gets its snapshot and jobs now.",
                r.name
            ),
        ))),
        Err(e) => failed(&state, &v, e, BTreeMap::new()).await,
    }
}

async fn revoke(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    v.check(&Form::parse(&body))?;
    admin(&v)?;
    let (by, rid) = (v.caller.username.clone(), id.to_string());
    match state
        .pool
        .run(move |c| racks::revoke(c, &rid, &by, now_ms()))
        .await
    {
        Ok(()) => Ok(see_other(&with_notice(
            "/racks",
            &format!("Rack {id} revoked: its credential no longer works."),
        ))),
        Err(e) => failed(&state, &v, e, BTreeMap::new()).await,
    }
}

/// A form's "10.0.0.0/24, 10.1.0.0/24" as a list.
fn split_networks(text: &str) -> Vec<String> {
    text.split([',', ' ', '\n'])
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

async fn power_networks(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    admin(&v)?;
    let text = form.text("power_networks");
    let nets = split_networks(&text);
    let (by, rid) = (v.caller.username.clone(), id.to_string());
    match state
        .pool
        .run(move |c| racks::set_power_networks(c, &rid, &nets, &by, now_ms()))
        .await
    {
        Ok(r) => Ok(see_other(&with_notice(
            "/racks",
            &format!("Rack {} drives the BMCs of: {}.", r.name, {
                let n = r.power_nets();
                if n.is_empty() {
                    "no network".to_string()
                } else {
                    n.iter()
                        .map(|n| n.to_string())
                        .collect::<Vec<_>>()
                        .join(", ")
                }
            }),
        ))),
        Err(e) => {
            let mut values = BTreeMap::from([("power_networks".to_string(), text)]);
            values.insert("rack".into(), id.to_string());
            failed(&state, &v, e, values).await
        }
    }
}
