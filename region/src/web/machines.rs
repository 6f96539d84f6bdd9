//! The machine list (search, sort, pages, bulk actions) and a machine's page (its forms: actions,
//! power, deploy, release, power settings).

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::web;
use kiln_ui::format;
use kiln_ui::views::{self, BulkResult, Choice, DetailInputs, Facet, FieldErrors};
use region_api_types::{self as api, MachineAction, MachineStatus, PowerAction};

use super::{field_errors, is_user_error, render, see_other, with_notice, Form, Viewer, WebResult};
use crate::api::AppState;
use crate::db::{self, now_ms};
use crate::domain::actions::{self, Action};
use crate::domain::{commissioning, lifecycle, machines, power, search};
use crate::error::{Error, Result};

/// "All that match" acts on at most this many machines at once.
const BULK_MAX: i64 = 10_000;

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/machines", web::get().to(list))
        .route("/machines/bulk", web::post().to(bulk))
        .route("/machines/{id}", web::get().to(detail))
        .route("/machines/{id}/action", web::post().to(action))
        .route("/machines/{id}/power", web::post().to(power_op))
        .route("/machines/{id}/deploy", web::post().to(deploy_form))
        .route("/machines/{id}/release", web::post().to(release_form))
        .route("/machines/{id}/name", web::post().to(name_form))
        .route(
            "/machines/{id}/power-settings",
            web::post().to(power_settings),
        );
}

#[derive(serde::Deserialize)]
struct ListQuery {
    #[serde(default)]
    q: String,
    #[serde(default)]
    sort: String,
    page: Option<i64>,
    notice: Option<String>,
}

/// The filter of a search as `v` may run it (owners resolved, visibility applied).
fn filter_of(
    c: &mut db::DbConn,
    v: &crate::domain::Caller,
    q: &search::Query,
    sort: search::Sort,
) -> Result<db::machines::Filter> {
    Ok(db::machines::Filter {
        visible_to: (!v.is_admin).then(|| v.user_id.clone()),
        search: search::resolve_owners(c, q.clone())?,
        sort,
        ..Default::default()
    })
}

async fn list(state: web::Data<AppState>, v: Viewer, q: web::Query<ListQuery>) -> WebResult {
    let q = q.into_inner();
    let page = q.page.unwrap_or(1).clamp(1, 1_000_000);
    let parsed = search::parse(&q.q);
    let sort = if q.sort.is_empty() {
        Ok(search::Sort::default())
    } else {
        search::Sort::parse(&q.sort)
    };
    let error = parsed.as_ref().err().or(sort.as_ref().err()).cloned();
    let caller = v.caller.clone();
    let query = parsed.clone().unwrap_or_default();
    let sort_v = sort.clone().unwrap_or_default();
    let searchable = error.is_none();
    let (items, total, counts) = state
        .pool
        .run(move |c| {
            let counts = db::machines::count_by_status_visible(
                c,
                (!caller.is_admin).then_some(caller.user_id.as_str()),
            )?;
            if !searchable {
                return Ok((Vec::new(), 0, counts));
            }
            let f = filter_of(c, &caller, &query, sort_v)?;
            let (items, total) =
                db::machines::list(c, &f, views::PAGE_SIZE, (page - 1) * views::PAGE_SIZE)?;
            Ok((items, total, counts))
        })
        .await?;
    let sort_name = if q.sort.is_empty() {
        String::new()
    } else {
        q.sort.clone()
    };
    let facets = facets(&q.q, &counts);
    let view = views::machine_list(views::ListInputs {
        q: &q.q,
        sort: &sort_name,
        error,
        machines: &items,
        total,
        page,
        facets,
        is_admin: v.caller.is_admin,
    });
    render(
        &v,
        StatusCode::OK,
        "machines.html",
        "machines",
        "Machines",
        q.notice,
        Some("/ui/stream".into()),
        view,
    )
}

/// Quick filters: every machine, then one per status that has machines, in lifecycle order.
fn facets(q: &str, counts: &[(String, i64)]) -> Vec<Facet> {
    let total: i64 = counts.iter().map(|(_, n)| n).sum();
    let mut out = vec![Facet {
        label: "All".into(),
        count: total,
        link: "/machines".into(),
        current: q.trim().is_empty(),
    }];
    for st in MachineStatus::ALL {
        if let Some((_, n)) = counts.iter().find(|(s, _)| s == st.as_str()) {
            let term = format!("status:{}", st.as_str());
            out.push(Facet {
                label: st.label().to_string(),
                count: *n,
                link: format::link("/machines", &[("q", &term)]),
                current: q.trim() == term,
            });
        }
    }
    out
}

/// What one bulk action does to one machine; the sentence says what happened.
async fn act_one(
    state: &AppState,
    v: &Viewer,
    id: &str,
    action: &str,
    tag: &str,
) -> Result<String> {
    let caller = v.caller.clone();
    let cfg = state.cfg.clone();
    let id = id.to_string();
    let sb = state.secrets.clone();
    let tag = tag.to_string();
    match action {
        "power-on" | "power-off" => {
            let pa = if action == "power-on" {
                PowerAction::On
            } else {
                PowerAction::Off
            };
            let job = state
                .pool
                .run(move |c| power::request(c, &caller, &id, pa, None, now_ms()))
                .await?;
            Ok(match job {
                Some(_) => format!("power {} queued", pa),
                None => "manual power: the operator is asked in an event".into(),
            })
        }
        "tag" | "untag" => {
            if tag.is_empty() {
                return Err(Error::validation("tag", "Type the tag to add or remove."));
            }
            let add = action == "tag";
            let t = tag.clone();
            let changed = state
                .pool
                .run(move |c| actions::set_tag(c, &sb, &caller, &id, &t, add, now_ms()))
                .await?;
            Ok(match (add, changed) {
                (true, true) => format!("tagged {tag}"),
                (true, false) => format!("had {tag} already"),
                (false, true) => format!("untagged {tag}"),
                (false, false) => format!("did not have {tag}"),
            })
        }
        other => {
            let a = MachineAction::parse(other).ok_or_else(|| {
                Error::validation("action", format!("'{other}' is not an action."))
            })?;
            let act = Action::plain(a);
            let m = state
                .pool
                .run(move |c| actions::perform(c, &sb, &cfg, &caller, &id, &act, now_ms()))
                .await?;
            Ok(match (a, m) {
                (MachineAction::Deploy, _) => "deploying the default image".into(),
                (MachineAction::Release, _) => "releasing".into(),
                (_, Some(m)) => format!("now {}", m.status_label),
                (_, None) => "deleted".into(),
            })
        }
    }
}

async fn bulk(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let action = form.text("action");
    let tag = form.text("tag");
    let q = form.text("q");
    let back = format::link("/machines", &[("q", &q)]);
    // Checked once, before anything is done to any machine.
    let Some(label) = views::bulk_actions(v.caller.is_admin)
        .into_iter()
        .find(|a| a.value == action)
        .map(|a| a.label)
    else {
        return Err(Error::validation(
            "action",
            format!("'{action}' is not an action you may take on machines here."),
        )
        .into());
    };
    if action == "tag" || action == "untag" {
        crate::domain::validate::name("tag", &tag)?;
    }
    let ids: Vec<String> = if form.checked("all") {
        let query = search::parse(&q).map_err(|m| Error::validation("q", m))?;
        let caller = v.caller.clone();
        state
            .pool
            .run(move |c| {
                let f = filter_of(c, &caller, &query, search::Sort::default())?;
                let (items, _) = db::machines::list(c, &f, BULK_MAX, 0)?;
                Ok(items.into_iter().map(|m| m.system_id).collect())
            })
            .await?
    } else {
        form.all("ids")
    };
    let mut results = Vec::with_capacity(ids.len());
    for id in &ids {
        // The name first: a deleted machine has none after.
        let caller = v.caller.clone();
        let sid = id.clone();
        let hostname = state
            .pool
            .run(move |c| Ok(machines::get(c, &caller, &sid).ok().map(|m| m.hostname)))
            .await?
            .unwrap_or_else(|| id.clone());
        let r = act_one(&state, &v, id, &action, &tag).await;
        results.push(BulkResult {
            link: format!("/machines/{id}"),
            system_id: id.clone(),
            hostname,
            ok: r.is_ok(),
            message: match r {
                Ok(m) => m,
                Err(e) if is_user_error(&e) => e.public_message(),
                // One machine's failure does not hide what was done to the others.
                Err(e) => {
                    tracing::error!(machine.id = %id, "bulk {action} of {id} failed: {e}");
                    "Kiln failed on this machine; the region's log says why.".into()
                }
            },
        });
    }
    state.power_wake.notify_waiters();
    let ok = results.iter().filter(|r| r.ok).count();
    let view = views::Bulk {
        action: label.clone(),
        failed: results.len() - ok,
        ok,
        results,
        back,
    };
    render(
        &v,
        StatusCode::OK,
        "bulk.html",
        "machines",
        &format!("{label}: {} machine(s)", view.ok + view.failed),
        None,
        Some("/ui/stream".into()),
        view,
    )
}

#[derive(serde::Deserialize)]
struct DetailQuery {
    notice: Option<String>,
}

async fn detail(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    q: web::Query<DetailQuery>,
) -> WebResult {
    detail_page(
        &state,
        &v,
        &id,
        StatusCode::OK,
        q.into_inner().notice,
        FieldErrors::new(),
        BTreeMap::new(),
    )
    .await
}

/// The actions `caller` may take on `m` in its status (the domain still decides; this only keeps
/// buttons that would be refused off the page).
fn actions_for(m: &api::Machine, caller: &crate::domain::Caller) -> Vec<MachineAction> {
    let mine = m.owner.as_deref() == Some(caller.username.as_str());
    MachineAction::ALL
        .into_iter()
        .filter(|a| lifecycle::allowed_from(*a).contains(&m.status))
        .filter(|a| {
            caller.is_admin
                || match a {
                    MachineAction::Allocate => m.owner.is_none(),
                    MachineAction::Deploy | MachineAction::Release | MachineAction::Abort => {
                        mine || (m.owner.is_none() && *a == MachineAction::Deploy)
                    }
                    _ => false,
                }
        })
        .collect()
}

pub(super) async fn detail_page(
    state: &AppState,
    v: &Viewer,
    id: &str,
    status: StatusCode,
    notice: Option<String>,
    errors: FieldErrors,
    deploy_values: BTreeMap<String, String>,
) -> WebResult {
    let caller = v.caller.clone();
    let sb = state.secrets.clone();
    let sid = id.to_string();
    let (m, events, results, secrets, images, default_domain, domains) = state
        .pool
        .run(move |c| {
            let m = machines::get(c, &caller, &sid)?;
            let events = db::events::list(c, Some(&sid), None, None, 300)?;
            let results = commissioning::results(c, &caller, &sid, None, true)?;
            let secrets = if caller.is_admin {
                // Secrets that no longer open (another key) are what the form replaces: the page
                // still shows, with none marked stored.
                power::secrets_set(c, &sb, &caller, &sid).unwrap_or_else(|e| {
                    tracing::warn!(machine.id = %sid, "power secrets of {sid} do not open: {e}");
                    Vec::new()
                })
            } else {
                Vec::new()
            };
            let images = db::boot::list(c)?;
            let default_domain = db::dns::snapshot_default(c)?;
            let domains: Vec<String> = if caller.is_admin {
                db::dns::domains(c)?.into_iter().map(|d| d.name).collect()
            } else {
                Vec::new()
            };
            Ok((m, events, results, secrets, images, default_domain, domains))
        })
        .await?;
    let mut images: Vec<Choice> = images
        .iter()
        .filter(|r| r.kind == "deploy")
        .map(|r| {
            Choice::new(
                format!("{}/{}", r.os, r.release),
                format!("{}/{} ({})", r.os, r.release, r.arch),
            )
        })
        .collect();
    images.dedup_by(|a, b| a.value == b.value);
    let actions = actions_for(&m, &v.caller);
    let can_power = v.caller.is_admin || m.owner.as_deref() == Some(v.caller.username.as_str());
    let schemas = region_api_types::power_params::registry();
    let view = views::machine_detail(
        &m,
        DetailInputs {
            events: &events,
            scripts: &results,
            schemas,
            secrets_set: &secrets,
            actions: &actions,
            can_power,
            can_edit: v.caller.is_admin,
            images: &images,
            errors,
            deploy_values,
            default_domain: &default_domain,
            domains: &domains,
        },
    );
    let title = m.hostname.clone();
    render(
        v,
        status,
        "machine.html",
        "machines",
        &title,
        notice,
        Some(format!("/ui/stream?machine={}", format::url_encode(id))),
        view,
    )
}

/// After a form: back to the machine with a notice, or the page again with the error beside the
/// control that caused it.
async fn answer(
    state: &AppState,
    v: &Viewer,
    id: &str,
    r: Result<String>,
    known: &[&str],
    values: BTreeMap<String, String>,
) -> WebResult {
    match r {
        Ok(notice) => Ok(see_other(&with_notice(&format!("/machines/{id}"), &notice))),
        Err(e) if is_user_error(&e) => {
            let status = actix_web::ResponseError::status_code(&e);
            detail_page(state, v, id, status, None, field_errors(&e, known), values).await
        }
        Err(e) => Err(e.into()),
    }
}

async fn action(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let action = form.text("action");
    let r = act_one(&state, &v, &id, &action, "").await;
    if action == "delete" && r.is_ok() {
        return Ok(see_other(&with_notice(
            "/machines",
            &format!("Machine {id} deleted."),
        )));
    }
    let r = r.map(|m| {
        format!(
            "{}: {m}.",
            views::action_label(MachineAction::parse(&action).unwrap_or(MachineAction::Commission))
        )
    });
    answer(&state, &v, &id, r, &[], BTreeMap::new()).await
}

async fn power_op(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let op = match form.text("op").as_str() {
        "on" => PowerAction::On,
        "off" => PowerAction::Off,
        "cycle" => PowerAction::Cycle,
        other => {
            return Err(Error::validation(
                "op",
                format!("'{other}' is not a power operation (on, off, cycle)."),
            )
            .into())
        }
    };
    let caller = v.caller.clone();
    let sid = id.to_string();
    let r = state
        .pool
        .run(move |c| power::request(c, &caller, &sid, op, None, now_ms()))
        .await
        .map(|job| match job {
            Some(_) => format!("Power {op} queued; the status updates when the BMC answers."),
            None => "Manual power: an event asks the operator to do it.".into(),
        });
    state.power_wake.notify_waiters();
    answer(&state, &v, &id, r, &[], BTreeMap::new()).await
}

/// "Deploying: now Deploying." from what an action answered.
fn status_notice(what: &str, m: Option<api::Machine>) -> String {
    match m {
        Some(m) => format!("{what}: now {}.", m.status_label),
        None => format!("{what}."),
    }
}

fn opt(s: String) -> Option<String> {
    (!s.is_empty()).then_some(s)
}

async fn deploy_form(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let values = form.values(&[]);
    let image = form.text("image");
    let (os, release) = match image.split_once('/') {
        Some((o, r)) => (Some(o.to_string()), Some(r.to_string())),
        None => (None, None),
    };
    let target = match form.text("target").as_str() {
        "" | "disk" => api::DeployTarget::Disk,
        "memory" => api::DeployTarget::Memory,
        "iscsi" => api::DeployTarget::Iscsi,
        other => {
            let e = Error::validation(
                "target",
                format!("'{other}' is not a target (disk, memory, iscsi)."),
            );
            return answer(&state, &v, &id, Err(e), &["target"], values).await;
        }
    };
    let layout = match form.text("storage_layout").as_str() {
        "" | "flat" => api::StorageLayout::Flat,
        "lvm" => api::StorageLayout::Lvm,
        other => {
            let e = Error::validation(
                "storage_layout",
                format!("'{other}' is not a layout (flat, lvm)."),
            );
            return answer(&state, &v, &id, Err(e), &["storage_layout"], values).await;
        }
    };
    let size = form.text("volume_size_gib");
    let volume_size_gib = if size.is_empty() {
        None
    } else {
        match size.parse::<u32>() {
            Ok(n) => Some(n),
            Err(_) => {
                let e = Error::validation(
                    "volume_size_gib",
                    "The volume size is a whole number of GiB (1 to 16384).",
                );
                return answer(&state, &v, &id, Err(e), &["volume_size_gib"], values).await;
            }
        }
    };
    let user_data = form.get("user_data").unwrap_or("").replace("\r\n", "\n");
    let req = api::DeployRequest {
        os,
        release,
        user_data: (!user_data.trim().is_empty()).then_some(user_data),
        target: Some(target),
        storage_layout: Some(layout),
        boot_disk: opt(form.text("boot_disk")),
        volume_size_gib,
        proxy: Some(!form.checked("no_proxy")),
        comment: None,
    };
    let (caller, sb, cfg, sid) = (
        v.caller.clone(),
        state.secrets.clone(),
        state.cfg.clone(),
        id.to_string(),
    );
    let act = Action::Deploy(req);
    let r = state
        .pool
        .run(move |c| actions::perform(c, &sb, &cfg, &caller, &sid, &act, now_ms()))
        .await
        .map(|m| status_notice("Deploying", m));
    state.power_wake.notify_waiters();
    let known = [
        "os",
        "release",
        "user_data",
        "target",
        "boot_disk",
        "volume_size_gib",
    ];
    let r = r.map_err(|e| match e.field() {
        Some(f) if known.contains(&f) => e,
        // Refusals about the machine or the racks go beside the Deploy button.
        _ => Error::validation("deploy", e.public_message()),
    });
    answer(
        &state,
        &v,
        &id,
        r,
        &known.iter().copied().chain(["deploy"]).collect::<Vec<_>>(),
        values,
    )
    .await
}

async fn release_form(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let erase = form.text("erase");
    let req = api::ReleaseRequest {
        erase: matches!(erase.as_str(), "quick" | "full" | "secure"),
        quick_erase: erase == "quick",
        secure_erase: erase == "secure",
        keep_volume: form.checked("keep_volume"),
        comment: None,
    };
    let (caller, sb, cfg, sid) = (
        v.caller.clone(),
        state.secrets.clone(),
        state.cfg.clone(),
        id.to_string(),
    );
    let act = Action::Release(req);
    let r = state
        .pool
        .run(move |c| actions::perform(c, &sb, &cfg, &caller, &sid, &act, now_ms()))
        .await
        .map(|m| status_notice("Releasing", m))
        .map_err(|e| match e.field() {
            Some(_) | None if is_user_error(&e) => {
                Error::validation("release_form", e.public_message())
            }
            _ => e,
        });
    state.power_wake.notify_waiters();
    answer(&state, &v, &id, r, &["release_form"], BTreeMap::new()).await
}

async fn power_settings(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let power_type = form.text("power_type");
    let Some(schema) = region_api_types::power_params::registry()
        .iter()
        .find(|s| s.name == power_type)
    else {
        let e = Error::validation(
            "power_type",
            format!("'{power_type}' is not a power driver."),
        );
        return answer(&state, &v, &id, Err(e), &["power_type"], BTreeMap::new()).await;
    };
    let mut params = serde_json::Map::new();
    for f in &schema.fields {
        let val = form.text(&format!("p.{}.{}", schema.name, f.name));
        if val.is_empty() {
            // A blank secret keeps the stored one; a blank field (or "(default)") clears it.
            if !f.secret {
                params.insert(f.name.clone(), serde_json::Value::Null);
            }
            continue;
        }
        params.insert(f.name.clone(), serde_json::Value::String(val));
    }
    let patch = api::MachinePatch {
        power_type: Some(power_type),
        power_parameters: Some(params),
        ..Default::default()
    };
    let (caller, sb, sid) = (v.caller.clone(), state.secrets.clone(), id.to_string());
    let r = state
        .pool
        .run(move |c| machines::patch(c, &sb, &caller, &sid, &patch, now_ms()))
        .await
        .map(|_| "Power settings saved.".to_string());
    answer(
        &state,
        &v,
        &id,
        r,
        &["power_type", "power_parameters"],
        BTreeMap::new(),
    )
    .await
}

/// The name form: the machine's hostname and DNS domain (the API's PATCH with both).
async fn name_form(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let values = form.values(&[]);
    let patch = api::MachinePatch {
        hostname: Some(form.text("hostname")),
        domain: Some(form.text("domain")),
        ..Default::default()
    };
    let (caller, sb, sid) = (v.caller.clone(), state.secrets.clone(), id.to_string());
    let r = state
        .pool
        .run(move |c| machines::patch(c, &sb, &caller, &sid, &patch, now_ms()))
        .await
        .map(|m| match m.domain {
            Some(d) => format!("Name saved: {}.{d}.", m.hostname),
            None => format!("Name saved: {} in the default domain.", m.hostname),
        });
    answer(&state, &v, &id, r, &["hostname", "domain"], values).await
}
