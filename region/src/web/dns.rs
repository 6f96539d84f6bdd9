//! The DNS page: Kiln's domains and operators' records (through `domain::dns`, as the API does).

use actix_web::http::StatusCode;
use actix_web::web;
use kiln_ui::views;
use region_api_types as api;

use super::{field_errors, is_user_error, render, see_other, with_notice, Form, Viewer, WebResult};
use crate::api::AppState;
use crate::db::now_ms;
use crate::domain::dns;
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/dns", web::get().to(dns_page))
        .route("/dns/records", web::post().to(record_add))
        .route("/dns/records/{id}/delete", web::post().to(record_delete))
        .route("/dns/domains", web::post().to(domain_add))
        .route("/dns/domains/{id}/default", web::post().to(domain_default))
        .route("/dns/domains/{id}/delete", web::post().to(domain_delete));
}

#[derive(serde::Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn view(state: &AppState) -> Result<views::Dns> {
    let (domains, records) = state
        .pool
        .run(|c| Ok((dns::list_domains(c)?, dns::list_records(c)?)))
        .await?;
    Ok(views::Dns {
        domains,
        records,
        types: dns::TYPES.to_vec(),
        ..Default::default()
    })
}

fn page(v: &Viewer, status: StatusCode, notice: Option<String>, view: views::Dns) -> WebResult {
    render(v, status, "dns.html", "dns", "DNS", notice, None, view)
}

async fn dns_page(state: web::Data<AppState>, v: Viewer, q: web::Query<NoticeQuery>) -> WebResult {
    let view = view(&state).await?;
    page(&v, StatusCode::OK, q.into_inner().notice, view)
}

/// The page again with the error beside the control (of `form`) that caused it.
async fn again(
    state: &AppState,
    v: &Viewer,
    form_name: &str,
    form: &Form,
    e: Error,
    known: &[&str],
) -> WebResult {
    let mut view = view(state).await?;
    view.form = form_name.to_string();
    view.values = form.values(&[]);
    view.errors = field_errors(&e, known);
    let status = actix_web::ResponseError::status_code(&e);
    page(v, status, None, view)
}

/// Back to the DNS page with what a one-button form did (or, for the user's mistake, why not).
fn back(r: Result<String>) -> WebResult {
    match r {
        Ok(notice) => Ok(see_other(&with_notice("/dns", &notice))),
        Err(e) if is_user_error(&e) => Ok(see_other(&with_notice("/dns", &e.public_message()))),
        Err(e) => Err(e.into()),
    }
}

fn ttl(form: &Form) -> Result<Option<u32>> {
    let t = form.text("ttl");
    if t.is_empty() {
        return Ok(None);
    }
    t.parse::<u32>()
        .map(Some)
        .map_err(|_| Error::validation("ttl", format!("'{t}' is not a number of seconds.")))
}

async fn record_add(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let r = match ttl(&form) {
        Ok(ttl) => {
            let req = api::DnsRecordCreate {
                name: form.text("name"),
                rtype: form.text("type"),
                data: form.text("data"),
                ttl,
            };
            let caller = v.caller.clone();
            state
                .pool
                .run(move |c| dns::add_record(c, &caller, &req, now_ms()))
                .await
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(r) => Ok(see_other(&with_notice(
            "/dns",
            &format!("{} record {} added.", r.rtype, r.name),
        ))),
        Err(e) if is_user_error(&e) => {
            again(
                &state,
                &v,
                "record",
                &form,
                e,
                &["name", "type", "data", "ttl"],
            )
            .await
        }
        Err(e) => Err(e.into()),
    }
}

async fn record_delete(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let (caller, id) = (v.caller.clone(), id.into_inner());
    let r = state
        .pool
        .run(move |c| dns::delete_record(c, &caller, &id))
        .await;
    back(r.map(|_| "Record deleted.".to_string()))
}

async fn domain_add(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let r = match ttl(&form) {
        Ok(ttl) => {
            let req = api::DnsDomainCreate {
                name: form.text("name"),
                ttl,
                is_default: form.checked("is_default"),
            };
            let caller = v.caller.clone();
            state
                .pool
                .run(move |c| dns::add_domain(c, &caller, &req, now_ms()))
                .await
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(d) => Ok(see_other(&with_notice(
            "/dns",
            &format!("Domain {} added.", d.name),
        ))),
        Err(e) if is_user_error(&e) => {
            again(&state, &v, "domain", &form, e, &["name", "ttl"]).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn domain_default(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let (caller, id) = (v.caller.clone(), id.into_inner());
    let patch = api::DnsDomainPatch {
        ttl: None,
        is_default: Some(true),
    };
    let r = state
        .pool
        .run(move |c| dns::patch_domain(c, &caller, &id, &patch, now_ms()))
        .await;
    back(r.map(|d| format!("{} is the default domain now.", d.name)))
}

async fn domain_delete(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let (caller, id) = (v.caller.clone(), id.into_inner());
    let r = state
        .pool
        .run(move |c| dns::delete_domain(c, &caller, &id))
        .await;
    back(r.map(|_| "Domain deleted.".to_string()))
}
