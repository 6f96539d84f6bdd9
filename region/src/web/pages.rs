//! Images, subnets, racks, users and tokens, SSH keys, settings and events.

use std::collections::BTreeMap;

use actix_web::http::StatusCode;
use actix_web::web;
use kiln_ui::format;
use kiln_ui::views::{self, Choice, FieldErrors, Setting, SettingGroup};
use region_api_types as api;

use super::{field_errors, is_user_error, render, see_other, with_notice, Form, Viewer, WebResult};
use crate::api::AppState;
use crate::db::{self, now_ms, racks::OFFLINE_AFTER_MS};
use crate::domain::{deploy, images, settings, subnets, users};
use crate::error::{Error, Result};

pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.route("/images", web::get().to(images_page))
        .route("/images/{id}/delete", web::post().to(image_delete))
        .route("/subnets", web::get().to(subnets_page))
        .route("/subnets", web::post().to(subnet_create))
        .route("/subnets/{id}/dhcp", web::post().to(subnet_dhcp))
        .route("/users", web::get().to(users_page))
        .route("/users", web::post().to(user_create))
        .route("/users/{name}/delete", web::post().to(user_delete))
        .route("/tokens", web::post().to(token_create))
        .route("/tokens/{id}/delete", web::post().to(token_delete))
        .route("/keys", web::get().to(keys_page))
        .route("/keys", web::post().to(key_add))
        .route("/keys/{id}/delete", web::post().to(key_delete))
        .route("/settings", web::get().to(settings_page))
        .route("/settings", web::post().to(settings_save))
        .route("/events", web::get().to(events_page));
}

#[derive(serde::Deserialize)]
struct NoticeQuery {
    notice: Option<String>,
}

/// After a form that succeeded: back to `to` with the notice.
fn done(to: &str, notice: &str) -> WebResult {
    Ok(see_other(&with_notice(to, notice)))
}

// --- images ----------------------------------------------------------------------------------

async fn images_page(
    state: web::Data<AppState>,
    v: Viewer,
    q: web::Query<NoticeQuery>,
) -> WebResult {
    let (resources, racks) = state
        .pool
        .run(|c| Ok((db::boot::list(c)?, db::racks::list(c)?)))
        .await?;
    let now = now_ms();
    let racks: Vec<(String, Vec<String>)> = racks
        .iter()
        .map(|r| (r.to_api(now, OFFLINE_AFTER_MS).name, r.cached_files()))
        .collect();
    let view = views::Images {
        images: resources
            .iter()
            .map(|r| views::image_row(r, &racks))
            .collect(),
    };
    render(
        &v,
        StatusCode::OK,
        "images.html",
        "images",
        "Images",
        q.into_inner().notice,
        None,
        view,
    )
}

async fn image_delete(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    v.check(&Form::parse(&body))?;
    let (caller, rid) = (v.caller.clone(), id.to_string());
    let orphans = state
        .pool
        .run(move |c| images::delete(c, &caller, &rid, now_ms()))
        .await;
    match orphans {
        Ok(orphans) => {
            images::remove_unused(&state.pool, &state.store, orphans).await;
            done("/images", "Image deleted.")
        }
        Err(e) if is_user_error(&e) => done("/images", &e.public_message()),
        Err(e) => Err(e.into()),
    }
}

// --- subnets ---------------------------------------------------------------------------------

async fn subnets_list(state: &AppState) -> Result<Vec<views::SubnetRow>> {
    let rows = state.pool.run(db::subnets::list).await?;
    Ok(rows
        .iter()
        .map(|r| views::subnet_row(&r.to_api()))
        .collect())
}

async fn subnets_page(
    state: web::Data<AppState>,
    v: Viewer,
    q: web::Query<NoticeQuery>,
) -> WebResult {
    let view = views::Subnets {
        subnets: subnets_list(&state).await?,
        ..Default::default()
    };
    render(
        &v,
        StatusCode::OK,
        "subnets.html",
        "subnets",
        "Subnets",
        q.into_inner().notice,
        None,
        view,
    )
}

/// `a-b` ranges, comma separated.
fn ranges(s: &str) -> Result<Option<Vec<api::IpRange>>> {
    let parts: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    parts
        .iter()
        .map(|p| {
            let (a, b) = p.split_once('-').ok_or_else(|| {
                Error::validation(
                    "dynamic_ranges",
                    format!("'{p}' is not a range: write START-END, like 10.20.0.100-10.20.0.199."),
                )
            })?;
            Ok(api::IpRange {
                start: a.trim().to_string(),
                end: b.trim().to_string(),
                comment: None,
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

/// `DEST via GW` routes, comma separated.
fn routes(s: &str) -> Result<Option<Vec<api::StaticRoute>>> {
    let parts: Vec<&str> = s
        .split(',')
        .map(str::trim)
        .filter(|p| !p.is_empty())
        .collect();
    if parts.is_empty() {
        return Ok(None);
    }
    parts
        .iter()
        .map(|p| {
            let (d, g) = p.split_once(" via ").ok_or_else(|| {
                Error::validation("static_routes", format!("'{p}' is not a route: write DESTINATION via GATEWAY, like 10.30.0.0/24 via 10.20.0.1."))
            })?;
            Ok(api::StaticRoute {
                destination: d.trim().to_string(),
                gateway: g.trim().to_string(),
            })
        })
        .collect::<Result<Vec<_>>>()
        .map(Some)
}

async fn subnet_create(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let opt = |k: &str| Some(form.text(k)).filter(|s| !s.is_empty());
    let list = |k: &str| {
        opt(k).map(|s| {
            s.split(',')
                .map(|x| x.trim().to_string())
                .filter(|x| !x.is_empty())
                .collect()
        })
    };
    let built = (|| -> Result<api::SubnetCreate> {
        Ok(api::SubnetCreate {
            cidr: form.text("cidr"),
            name: opt("name"),
            gateway: opt("gateway"),
            dns_servers: list("dns_servers"),
            dynamic_ranges: ranges(&form.text("range"))?,
            static_routes: routes(&form.text("routes"))?,
            managed: Some(form.checked("managed")),
            relay_addresses: list("relay_addresses"),
            ..Default::default()
        })
    })();
    let r = match built {
        Ok(req) => {
            let caller = v.caller.clone();
            state
                .pool
                .run(move |c| subnets::create(c, &caller, &req, now_ms()))
                .await
                .map(|s| format!("Subnet {} added.", s.cidr))
        }
        Err(e) => Err(e),
    };
    match r {
        Ok(n) => done("/subnets", &n),
        Err(e) if is_user_error(&e) => {
            let known = [
                "name",
                "cidr",
                "gateway",
                "dns_servers",
                "dynamic_ranges",
                "static_routes",
                "relay_addresses",
            ];
            let view = views::Subnets {
                subnets: subnets_list(&state).await?,
                values: form.values(&[]),
                errors: field_errors(&e, &known),
            };
            let status = actix_web::ResponseError::status_code(&e);
            render(
                &v,
                status,
                "subnets.html",
                "subnets",
                "Subnets",
                None,
                None,
                view,
            )
        }
        Err(e) => Err(e.into()),
    }
}

async fn subnet_dhcp(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let on = form.checked("managed");
    let (caller, sid) = (v.caller.clone(), id.to_string());
    let patch = api::SubnetPatch {
        managed: Some(on),
        ..Default::default()
    };
    let r = state
        .pool
        .run(move |c| subnets::patch(c, &caller, &sid, &patch, now_ms()))
        .await;
    match r {
        Ok(s) => done(
            "/subnets",
            &format!("DHCP {} on {}.", if on { "on" } else { "off" }, s.cidr),
        ),
        Err(e) if is_user_error(&e) => done("/subnets", &e.public_message()),
        Err(e) => Err(e.into()),
    }
}

// --- users and tokens ------------------------------------------------------------------------

async fn users_view(state: &AppState, v: &Viewer) -> Result<views::Users> {
    let caller = v.caller.clone();
    let (users, tokens) = state
        .pool
        .run(move |c| {
            let users = if caller.is_admin {
                db::users::list_users(c)?
                    .iter()
                    .map(|u| u.to_api())
                    .collect()
            } else {
                Vec::new()
            };
            let tokens: Vec<api::Token> =
                db::users::list_tokens(c, (!caller.is_admin).then_some(caller.user_id.as_str()))?
                    .iter()
                    // Login sessions are not API tokens to manage here.
                    .filter(|(t, _, _)| !t.is_session)
                    .map(|(t, name, admin)| t.to_api(name, *admin))
                    .collect();
            Ok((users, tokens))
        })
        .await?;
    Ok(views::Users {
        users: users.iter().map(views::user_row).collect(),
        tokens: tokens.iter().map(views::token_row).collect(),
        ..Default::default()
    })
}

async fn users_page(
    state: web::Data<AppState>,
    v: Viewer,
    q: web::Query<NoticeQuery>,
) -> WebResult {
    let view = users_view(&state, &v).await?;
    let title = if v.caller.is_admin {
        "Users and tokens"
    } else {
        "Tokens"
    };
    render(
        &v,
        StatusCode::OK,
        "users.html",
        "users",
        title,
        q.into_inner().notice,
        None,
        view,
    )
}

async fn users_error(
    state: &AppState,
    v: &Viewer,
    e: Error,
    known: &[&str],
    values: BTreeMap<String, String>,
) -> WebResult {
    if !is_user_error(&e) {
        return Err(e.into());
    }
    let mut view = users_view(state, v).await?;
    view.errors = field_errors(&e, known);
    view.values = values;
    let status = actix_web::ResponseError::status_code(&e);
    render(
        v,
        status,
        "users.html",
        "users",
        "Users and tokens",
        None,
        None,
        view,
    )
}

async fn user_create(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let (caller, name, pass, admin) = (
        v.caller.clone(),
        form.text("username"),
        form.get("password").unwrap_or("").to_string(),
        form.checked("is_admin"),
    );
    let r = state
        .pool
        .run(move |c| users::create_user(c, Some(&caller), &name, &pass, admin, now_ms()))
        .await;
    match r {
        Ok(u) => done("/users", &format!("User {} added.", u.username)),
        Err(e) => {
            users_error(
                &state,
                &v,
                e,
                &["username", "password"],
                form.values(&["password"]),
            )
            .await
        }
    }
}

async fn user_delete(
    state: web::Data<AppState>,
    v: Viewer,
    name: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    v.check(&Form::parse(&body))?;
    let (caller, n) = (v.caller.clone(), name.to_string());
    match state
        .pool
        .run(move |c| users::delete_user(c, &caller, &n, now_ms()))
        .await
    {
        Ok(()) => done("/users", &format!("User {name} deleted.")),
        Err(e) => users_error(&state, &v, e, &[], BTreeMap::new()).await,
    }
}

async fn token_create(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let (caller, name) = (v.caller.clone(), form.text("name"));
    let now = now_ms();
    let spec = token_spec(&form, now);
    match match spec {
        Ok(spec) => {
            state
                .pool
                .run(move |c| users::create_own_token(c, &caller, &name, &spec, now))
                .await
        }
        Err(e) => Err(e),
    } {
        Ok(t) => {
            // Shown on this answer only (never in a URL, never again).
            let mut view = users_view(&state, &v).await?;
            view.new_token = Some(t.secret);
            render(
                &v,
                StatusCode::CREATED,
                "users.html",
                "users",
                "Token created",
                Some(format!("Token {} created.", t.token.name)),
                None,
                view,
            )
        }
        Err(e) => {
            users_error(
                &state,
                &v,
                e,
                &["name", "scope", "expires"],
                form.values(&[]),
            )
            .await
        }
    }
}

/// The token form's scope (empty: all the caller may) and expiry in days (empty: never).
fn token_spec(form: &Form, now: i64) -> crate::error::Result<users::TokenSpec> {
    use crate::error::Error;
    let scope = match form.text("scope").as_str() {
        "" => None,
        s => Some(region_api_types::TokenScope::parse(s).ok_or_else(|| {
            Error::validation(
                "scope",
                format!("'{s}' is not a scope: read, operator or admin."),
            )
        })?),
    };
    let expires_at = match form.text("expires").as_str() {
        "" => None,
        d => match d.parse::<i64>() {
            Ok(n) if (1..=3650).contains(&n) => Some(now + n * 86_400_000),
            _ => {
                return Err(Error::validation(
                    "expires",
                    format!("The token expires after 1 to 3650 days, not '{d}'."),
                ))
            }
        },
    };
    Ok(users::TokenSpec { scope, expires_at })
}

async fn token_delete(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    v.check(&Form::parse(&body))?;
    let (caller, tid) = (v.caller.clone(), id.to_string());
    match state
        .pool
        .run(move |c| users::delete_token(c, &caller, &tid, now_ms()))
        .await
    {
        Ok(()) => done("/users", "Token revoked."),
        Err(e) => users_error(&state, &v, e, &[], BTreeMap::new()).await,
    }
}

// --- SSH keys --------------------------------------------------------------------------------

async fn keys_view(state: &AppState, v: &Viewer) -> Result<views::Keys> {
    let caller = v.caller.clone();
    let keys = state
        .pool
        .run(move |c| deploy::list_keys(c, &caller))
        .await?;
    Ok(views::Keys {
        keys: keys.iter().map(views::key_row).collect(),
        ..Default::default()
    })
}

async fn keys_page(state: web::Data<AppState>, v: Viewer, q: web::Query<NoticeQuery>) -> WebResult {
    let view = keys_view(&state, &v).await?;
    render(
        &v,
        StatusCode::OK,
        "keys.html",
        "keys",
        "SSH keys",
        q.into_inner().notice,
        None,
        view,
    )
}

async fn key_add(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let (caller, key) = (v.caller.clone(), form.text("key"));
    match state
        .pool
        .run(move |c| deploy::add_key(c, &caller, &key, now_ms()))
        .await
    {
        Ok(k) => done("/keys", &format!("Key {} added.", k.fingerprint)),
        Err(e) if is_user_error(&e) => {
            let mut view = keys_view(&state, &v).await?;
            let mut errors = FieldErrors::new();
            errors.insert("key".into(), e.public_message());
            view.errors = errors;
            view.values = form.values(&[]);
            let status = actix_web::ResponseError::status_code(&e);
            render(
                &v,
                status,
                "keys.html",
                "keys",
                "SSH keys",
                None,
                None,
                view,
            )
        }
        Err(e) => Err(e.into()),
    }
}

async fn key_delete(
    state: web::Data<AppState>,
    v: Viewer,
    id: web::Path<String>,
    body: web::Bytes,
) -> WebResult {
    v.check(&Form::parse(&body))?;
    let (caller, kid) = (v.caller.clone(), id.to_string());
    match state
        .pool
        .run(move |c| deploy::delete_key(c, &caller, &kid, now_ms()))
        .await
    {
        Ok(()) => done("/keys", "Key deleted."),
        Err(e) if is_user_error(&e) => done("/keys", &e.public_message()),
        Err(e) => Err(e.into()),
    }
}

// --- settings --------------------------------------------------------------------------------

async fn settings_view(
    state: &AppState,
    typed: &BTreeMap<String, String>,
    errors: &FieldErrors,
) -> Result<views::Settings> {
    let cfg = state.cfg.clone();
    let changeable = state.pool.run(move |c| settings::list(c, &cfg)).await?;
    let c = &state.cfg;
    let of = |prefix: &str| -> Vec<Setting> {
        changeable
            .iter()
            .filter(|s| s.name.starts_with(prefix))
            .map(|s| {
                Setting::from_api(
                    s,
                    typed.get(&s.name).map(String::as_str),
                    errors.get(&s.name).cloned(),
                )
            })
            .collect()
    };
    let mut lifecycle = of("lifecycle.");
    lifecycle.push(Setting::fixed(
        "lifecycle.deadline_check_secs",
        c.lifecycle.deadline_check_secs,
        "How often deadlines are checked.",
    ));
    Ok(views::Settings {
        config_path: "/etc/kiln/region.toml".into(),
        error: errors.get("form").cloned(),
        groups: vec![
            SettingGroup {
                id: "lifecycle".into(),
                title: "Machine lifecycle".into(),
                settings: lifecycle,
            },
            SettingGroup {
                id: "power".into(),
                title: "Power".into(),
                settings: of("power."),
            },
            SettingGroup {
                id: "api".into(),
                title: "API and database".into(),
                settings: vec![
                    Setting::fixed("listen", c.listen, "The API's (and this UI's) address."),
                    Setting::fixed(
                        "api.max_upload_bytes",
                        format::bytes(i64::try_from(c.api.max_upload_bytes).unwrap_or(i64::MAX)),
                        "The largest image file an upload may bring.",
                    ),
                    Setting::fixed(
                        "api.default_page_size",
                        c.api.default_page_size,
                        "Page size of the API's lists.",
                    ),
                    Setting::fixed(
                        "database",
                        match state.pool.backend() {
                            db::Backend::Sqlite => "SQLite",
                            db::Backend::Postgres => "PostgreSQL",
                        },
                        "Where the region keeps its state.",
                    ),
                ],
            },
        ],
    })
}

async fn settings_page(
    state: web::Data<AppState>,
    v: Viewer,
    q: web::Query<NoticeQuery>,
) -> WebResult {
    let view = settings_view(&state, &BTreeMap::new(), &FieldErrors::new()).await?;
    render(
        &v,
        StatusCode::OK,
        "settings.html",
        "settings",
        "Settings",
        q.into_inner().notice,
        None,
        view,
    )
}

/// Saves the settings whose value changed (or resets one); the first refusal comes back beside
/// its field with what was typed, and nothing after it is saved.
async fn settings_save(state: web::Data<AppState>, v: Viewer, body: web::Bytes) -> WebResult {
    let form = Form::parse(&body);
    v.check(&form)?;
    let cfg = state.cfg.clone();
    let caller = v.caller.clone();
    let reset = form.text("reset");
    let typed: Vec<(String, String)> = form
        .0
        .iter()
        .filter(|(k, _)| k.starts_with("lifecycle.") || k.starts_with("power."))
        .map(|(k, v)| (k.clone(), v.trim().to_string()))
        .collect();
    let r = state
        .pool
        .run(move |c| {
            if !reset.is_empty() {
                settings::set(c, &caller, &cfg, &reset, None, now_ms())?;
                return Ok(vec![reset.clone()]);
            }
            // All or nothing: a refusal saves none of the form.
            use diesel::Connection;
            c.transaction::<_, crate::error::Error, _>(|c| {
                let now: Vec<api::Setting> = settings::list(c, &cfg)?;
                let mut saved = Vec::new();
                for (name, val) in &typed {
                    if now.iter().any(|s| &s.name == name && &s.value != val) {
                        settings::set(c, &caller, &cfg, name, Some(val), now_ms())?;
                        saved.push(name.clone());
                    }
                }
                Ok(saved)
            })
        })
        .await;
    match r {
        Ok(saved) if saved.is_empty() => done("/settings", "Nothing changed."),
        Ok(saved) => done("/settings", &format!("Saved: {}.", saved.join(", "))),
        Err(e) if is_user_error(&e) => {
            let mut errors = FieldErrors::new();
            errors.insert(e.field().unwrap_or("form").to_string(), e.public_message());
            let view = settings_view(&state, &form.values(&["reset"]), &errors).await?;
            let status = actix_web::ResponseError::status_code(&e);
            render(
                &v,
                status,
                "settings.html",
                "settings",
                "Settings",
                None,
                None,
                view,
            )
        }
        Err(e) => Err(e.into()),
    }
}

// --- events ----------------------------------------------------------------------------------

#[derive(serde::Deserialize)]
struct EventsQuery {
    #[serde(default)]
    level: String,
    before: Option<i64>,
}

const EVENTS_PAGE: i64 = 100;

async fn events_page(
    state: web::Data<AppState>,
    v: Viewer,
    q: web::Query<EventsQuery>,
) -> WebResult {
    let q = q.into_inner();
    if !v.caller.is_admin {
        return Err(Error::Forbidden(
            "Only administrators read every machine's events; each machine's are on its page."
                .into(),
        )
        .into());
    }
    let level = match q.level.as_str() {
        "" => None,
        l if api::EventLevel::parse(l).is_some() => Some(l.to_string()),
        l => {
            return Err(Error::validation("level", format!("'{l}' is not an event level.")).into())
        }
    };
    let lv = level.clone();
    let (events, names) = state
        .pool
        .run(move |c| {
            let evs = db::events::list(c, None, lv.as_deref(), q.before, EVENTS_PAGE)?;
            let mut names = BTreeMap::new();
            for id in evs.iter().filter_map(|e| e.system_id.clone()) {
                if let std::collections::btree_map::Entry::Vacant(slot) = names.entry(id.clone()) {
                    if let Some(r) = db::machines::get_row(c, &id)? {
                        slot.insert(r.hostname);
                    }
                }
            }
            Ok((evs, names))
        })
        .await?;
    let lvl = level.clone().unwrap_or_default();
    let older_link = (events.len() as i64 == EVENTS_PAGE)
        .then(|| {
            events
                .last()
                .map(|e| format::link("/events", &[("level", &lvl), ("before", &e.id.to_string())]))
        })
        .flatten();
    let mut levels = vec![Choice::new("", "All levels")];
    for l in ["error", "warning", "info", "audit", "debug"] {
        levels.push(Choice::new(l, l));
    }
    let view = views::Events {
        levels,
        level: lvl.clone(),
        events: events
            .iter()
            .map(|e| {
                views::event_row(
                    e,
                    e.system_id
                        .as_ref()
                        .and_then(|s| names.get(s))
                        .map(String::as_str),
                )
            })
            .collect(),
        older_link,
        self_link: format::link("/events", &[("level", &lvl)]),
    };
    render(
        &v,
        StatusCode::OK,
        "events.html",
        "events",
        "Events",
        None,
        Some("/ui/stream".into()),
        view,
    )
}
