//! The KVM pods pages: the list with the add form, and one pod with its capacity, VMs, machines
//! and the compose form (through the same functions as the API, waits included).

use actix_web::http::StatusCode;
use actix_web::web;
use kiln_ui::views;
use region_api_types as api;

use super::{field_errors, is_user_error, render, see_other, with_notice, Form, Viewer, WebResult};
use crate::api::pods as apods;
use crate::api::AppState;
use crate::domain::pods;
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/pods", web::get().to(list_page))
        .route("/pods", web::post().to(add))
        .route("/pods/{id}", web::get().to(pod_page))
        .route("/pods/{id}/compose", web::post().to(compose))
        .route("/pods/{id}/refresh", web::post().to(refresh))
        .route("/pods/{id}/delete", web::post().to(delete));
}

#[derive(serde::Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

async fn list_view(state: &AppState, v: &Viewer) -> Result<views::Pods> {
    let caller = v.caller.clone();
    let all = state.pool.run(move |c| pods::list(c, &caller)).await?;
    Ok(views::Pods {
        pods: all.iter().map(views::pod_view).collect(),
        ..Default::default()
    })
}

async fn list_page(state: web::Data<AppState>, v: Viewer, q: web::Query<NoticeQuery>) -> WebResult {
    let view = list_view(&state, &v).await?;
    render(
        &v,
        StatusCode::OK,
        "pods.html",
        "pods",
        "KVM pods",
        q.into_inner().notice,
        None,
        view,
    )
}

fn ratio(form: &Form, k: &str) -> Result<Option<f64>> {
    let t = form.text(k);
    if t.is_empty() {
        return Ok(None);
    }
    t.parse()
        .map(Some)
        .map_err(|_| Error::validation(k, format!("'{t}' is not a number.")))
}

fn opt(form: &Form, k: &str) -> Option<String> {
    Some(form.text(k)).filter(|t| !t.is_empty())
}

async fn add(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let req = (|| -> Result<api::PodCreate> {
        Ok(api::PodCreate {
            name: form.text("name"),
            pod_type: Some("virsh".into()),
            power_address: form.text("power_address"),
            power_pass: opt(&form, "power_pass"),
            cpu_over_commit_ratio: ratio(&form, "cpu_over_commit_ratio")?,
            memory_over_commit_ratio: ratio(&form, "memory_over_commit_ratio")?,
            default_storage_pool: opt(&form, "default_storage_pool"),
            default_network: opt(&form, "default_network"),
            tags: opt(&form, "tags").map(|t| {
                t.split(',')
                    .map(|s| s.trim().to_string())
                    .filter(|s| !s.is_empty())
                    .collect()
            }),
            zone: None,
            pool: None,
            wait_secs: None,
        })
    })();
    let r = match req {
        Ok(req) => apods::add(&state, v.caller.clone(), req).await,
        Err(e) => Err(e),
    };
    match r {
        Ok(p) => Ok(see_other(&with_notice(
            &format!("/pods/{}", p.id),
            &format!("Pod {} added.", p.name),
        ))),
        Err(e) if is_user_error(&e) => {
            let mut view = list_view(&state, &v).await?;
            view.values = form.values(&["csrf", "power_pass"]);
            view.errors = field_errors(
                &e,
                &[
                    "name",
                    "power_address",
                    "cpu_over_commit_ratio",
                    "memory_over_commit_ratio",
                    "default_storage_pool",
                    "default_network",
                    "tags",
                ],
            );
            let status = actix_web::ResponseError::status_code(&e);
            render(
                &v,
                status,
                "pods.html",
                "pods",
                "KVM pods",
                None,
                None,
                view,
            )
        }
        Err(e) => Err(e.into()),
    }
}

async fn pod_view(state: &web::Data<AppState>, v: &Viewer, id: &str) -> Result<views::PodPage> {
    let p = apods::pod(state, v.caller.clone(), id.to_string()).await?;
    Ok(views::PodPage {
        p: views::pod_view(&p),
        values: Default::default(),
        errors: Default::default(),
    })
}

async fn pod_page(
    state: web::Data<AppState>,
    v: Viewer,
    path: web::Path<String>,
    q: web::Query<NoticeQuery>,
) -> WebResult {
    let view = pod_view(&state, &v, &path.into_inner()).await?;
    let title = format!("Pod {}", view.p.pod.name);
    render(
        &v,
        StatusCode::OK,
        "pod.html",
        "pods",
        &title,
        q.into_inner().notice,
        None,
        view,
    )
}

async fn compose(
    state: web::Data<AppState>,
    v: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let id = path.into_inner();
    let form = Form::parse(&body);
    v.check(&form)?;
    let num = |k: &str| -> Result<Option<i64>> {
        let t = form.text(k);
        if t.is_empty() {
            return Ok(None);
        }
        t.parse()
            .map(Some)
            .map_err(|_| Error::validation(k, format!("'{t}' is not a whole number.")))
    };
    let req = (|| -> Result<api::ComposeRequest> {
        let disk = num("disk_gib")?.unwrap_or(8);
        let iface = opt(&form, "bridge").map(|b| api::ComposeInterface {
            network: None,
            bridge: Some(b),
        });
        Ok(api::ComposeRequest {
            cores: num("cores")?.map(|c| u32::try_from(c).unwrap_or(0)),
            memory_mib: num("memory_mib")?,
            disks: Some(vec![api::ComposeDisk {
                size_gib: u32::try_from(disk).unwrap_or(0),
                pool: opt(&form, "pool"),
            }]),
            interfaces: iface.map(|i| vec![i]),
            hostname: opt(&form, "hostname"),
            firmware: opt(&form, "firmware"),
            secure_boot: Some(form.checked("secure_boot")),
            wait_secs: None,
        })
    })();
    let r = match req {
        Ok(req) => apods::compose_and_wait(&state, v.caller.clone(), id.clone(), req).await,
        Err(e) => Err(e),
    };
    match r {
        Ok((m, _)) => Ok(see_other(&with_notice(
            &format!("/machines/{}", m.system_id),
            &format!("{} composed; it commissions by itself.", m.hostname),
        ))),
        Err(e) if is_user_error(&e) => {
            let mut view = pod_view(&state, &v, &id).await?;
            view.values = form.values(&["csrf"]);
            // The request's field names are the API's: map them to this form's controls.
            let mut errors = field_errors(
                &e,
                &[
                    "hostname",
                    "cores",
                    "memory_mib",
                    "disk_gib",
                    "firmware",
                    "secure_boot",
                ],
            );
            if let Some(f) = e.field() {
                if f.starts_with("disks[") {
                    errors = [("disk_gib".to_string(), e.public_message())]
                        .into_iter()
                        .collect();
                } else if f.starts_with("interfaces[") {
                    errors = [("bridge".to_string(), e.public_message())]
                        .into_iter()
                        .collect();
                }
            }
            view.errors = errors;
            let title = format!("Pod {}", view.p.pod.name);
            render(
                &v,
                actix_web::ResponseError::status_code(&e),
                "pod.html",
                "pods",
                &title,
                None,
                None,
                view,
            )
        }
        Err(e) => Err(e.into()),
    }
}

async fn refresh(
    state: web::Data<AppState>,
    v: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let id = path.into_inner();
    v.check(&Form::parse(&body))?;
    let back = format!("/pods/{id}");
    match apods::refresh_and_wait(&state, v.caller.clone(), id, 60).await {
        Ok(true) => Ok(see_other(&with_notice(&back, "Discovered again."))),
        Ok(false) => Ok(see_other(&with_notice(
            &back,
            "The host has not answered yet; the page shows the last discovery.",
        ))),
        Err(e) if is_user_error(&e) => Ok(see_other(&with_notice(&back, &e.public_message()))),
        Err(e) => Err(e.into()),
    }
}

async fn delete(
    state: web::Data<AppState>,
    v: Viewer,
    path: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let id = path.into_inner();
    let form = Form::parse(&body);
    v.check(&form)?;
    match apods::delete_and_wait(
        &state,
        v.caller.clone(),
        id.clone(),
        form.checked("force"),
        120,
    )
    .await
    {
        Ok(out) => {
            let mut notice = format!(
                "Pod deleted; {} machine(s) decomposed.",
                out.decomposed.len()
            );
            for l in &out.left_on_host {
                notice.push_str(&format!(
                    " {} was removed but its VM is still on the host ({}).",
                    l.hostname, l.reason
                ));
            }
            Ok(see_other(&with_notice("/pods", &notice)))
        }
        Err(e) if is_user_error(&e) => Ok(see_other(&with_notice(
            &format!("/pods/{id}"),
            &e.public_message(),
        ))),
        Err(e) => Err(e.into()),
    }
}
