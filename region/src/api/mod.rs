//! The REST API under `/api/v1` (actix-web). Handlers are thin: extract, call `domain::*` on a pooled
//! connection (off the async threads, via [`crate::db::Pool::run`]), map the result to JSON.
//!
//! Layout: one file per resource; [`configure`] mounts them all; [`ApiDoc`] is the OpenAPI document
//! generated from the handlers' `#[utoipa::path]` annotations, served at `/api/v1/openapi.json` with
//! Swagger UI (vendored in the binary) at `/api/docs/`.

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use actix_web::dev::Payload;
use actix_web::{web, FromRequest, HttpRequest};
use utoipa::OpenApi;

use crate::config::Config;
use crate::db::{now_ms, Pool};
use crate::domain::{users, Caller};
use crate::error::Error;
use crate::metrics::Metrics;
use crate::store::Store;

pub mod boot_resources;
pub mod credential;
pub mod deploy;
pub mod dns;
pub mod events;
pub mod health;
pub mod machines;
pub mod metadata;
pub mod pods;
pub mod power;
pub mod rack_api;
pub mod racks;
pub mod settings;
pub mod subnets;
pub mod users_tokens;
pub mod volumes;

/// Shared state of every handler.
#[derive(Clone)]
pub struct AppState {
    pub pool: Pool,
    pub cfg: Arc<Config>,
    pub store: Store,
    pub metrics: Arc<Metrics>,
    /// Seals power secrets at rest.
    pub secrets: Arc<crate::domain::secrets::SecretBox>,
    /// Wakes racks waiting for power jobs.
    pub power_wake: Arc<tokio::sync::Notify>,
    /// Wakes API calls waiting for a power job's answer.
    pub power_done: Arc<tokio::sync::Notify>,
    /// Wakes racks waiting for pod jobs.
    pub pod_wake: Arc<tokio::sync::Notify>,
    /// Wakes API calls waiting for a pod job's answer.
    pub pod_done: Arc<tokio::sync::Notify>,
    /// Cancelled when the region stops (ends the UI's event streams).
    pub shutdown: tokio_util::sync::CancellationToken,
    /// Failed logins per address and per user (`domain::login`).
    pub logins: Arc<crate::domain::login::Limiter>,
}

/// Name of the UI's session cookie.
pub const SESSION_COOKIE: &str = "kiln_session";

/// The `kiln_session` cookie of a new UI session: HttpOnly, SameSite=Strict, for the session's life.
pub fn session_cookie(secret: String) -> actix_web::cookie::Cookie<'static> {
    actix_web::cookie::Cookie::build(SESSION_COOKIE, secret)
        .path("/")
        .http_only(true)
        .same_site(actix_web::cookie::SameSite::Strict)
        .max_age(actix_web::cookie::time::Duration::milliseconds(
            crate::domain::users::SESSION_MS,
        ))
        .finish()
}

/// The header carrying a UI session's CSRF token ([`crate::domain::auth::csrf_token`]).
pub const CSRF_HEADER: &str = "X-CSRF-Token";

/// The authenticated caller: from `Authorization: Bearer <token>` (automation) or the
/// `kiln_session` cookie (the UI).
pub struct Auth(pub Caller);

impl FromRequest for Auth {
    type Error = Error;
    type Future = Pin<Box<dyn Future<Output = Result<Auth, Error>>>>;

    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        // Checked already, before the request was read (`credential`): taken at once.
        if let Some(c) = credential::checked(req) {
            return Box::pin(async move {
                match c {
                    credential::Checked::User(c) => Ok(Auth(c)),
                    other => Err(credential::wrong_kind(
                        "users (API tokens, sessions)",
                        &other,
                    )),
                }
            });
        }
        let state = req.app_data::<web::Data<AppState>>().cloned();
        let header = req
            .headers()
            .get(actix_web::http::header::AUTHORIZATION)
            .map(|h| h.to_str().map(str::to_string));
        let cookie = req.cookie(SESSION_COOKIE).map(|c| c.value().to_string());
        let unsafe_method = !matches!(
            *req.method(),
            actix_web::http::Method::GET
                | actix_web::http::Method::HEAD
                | actix_web::http::Method::OPTIONS
        );
        let csrf = req
            .headers()
            .get(CSRF_HEADER)
            .and_then(|h| h.to_str().ok())
            .map(str::to_string);
        Box::pin(async move {
            let state = state.ok_or_else(|| Error::Internal("app state missing".into()))?;
            let token = match header {
                Some(Ok(h)) => match h.strip_prefix("Bearer ") {
                    Some(t) => t.trim().to_string(),
                    None => {
                        return Err(Error::Unauthorized(
                            "The Authorization header must be 'Bearer <token>'.".into(),
                        ))
                    }
                },
                Some(Err(_)) => {
                    return Err(Error::Unauthorized(
                        "The Authorization header is not valid text.".into(),
                    ))
                }
                None => match cookie {
                    // A cookie rides along with any request the browser makes, also those another
                    // site makes it send: changes need the session's CSRF token as well.
                    Some(c)
                        if unsafe_method
                            && !csrf.as_deref().is_some_and(|t| {
                                crate::domain::auth::same_token(t, &crate::domain::auth::csrf_token(&c))
                            }) =>
                    {
                        return Err(Error::Forbidden(format!(
                            "A change made with the session cookie needs the {CSRF_HEADER} header of the page it came from; reload the page and try again."
                        )))
                    }
                    Some(c) => c,
                    None => return Err(Error::Unauthorized(
                        "No credentials: send 'Authorization: Bearer <token>' (create a token with `kiln admin create-token USER`)."
                            .into(),
                    )),
                },
            };
            let caller = state
                .pool
                .run(move |c| users::authenticate(c, &token, now_ms()))
                .await?;
            match caller {
                // A read-scoped credential changes nothing: refused before any handler runs.
                Some(c) if unsafe_method && c.scope == region_api_types::TokenScope::Read => {
                    Err(Error::Forbidden(
                        "This token's scope is read: it may look but not change anything. Use a token with the operator or admin scope."
                            .into(),
                    ))
                }
                Some(c) => Ok(Auth(c)),
                None => Err(Error::Unauthorized(
                    "That token is not valid (revoked, expired or mistyped); create a new one with `kiln admin create-token USER`."
                        .into(),
                )),
            }
        })
    }
}

/// The token of an `Authorization: Bearer <token>` header, if the request has one.
pub fn bearer_token(req: &HttpRequest) -> Option<String> {
    req.headers()
        .get(actix_web::http::header::AUTHORIZATION)
        .and_then(|h| h.to_str().ok())
        .and_then(|h| h.strip_prefix("Bearer "))
        .map(|t| t.trim().to_string())
}

/// JSON bodies: size limit and errors in Kiln's error shape.
pub fn json_config(max: usize) -> web::JsonConfig {
    web::JsonConfig::default()
        .limit(max)
        .error_handler(move |err, _req| {
            use actix_web::error::JsonPayloadError as J;
            let e = match &err {
                J::Overflow { .. } | J::OverflowKnownLength { .. } => {
                    Error::TooLarge(format!("The body is larger than {max} bytes; send less."))
                }
                J::ContentType => Error::BadRequest(
                    "Send the body as JSON with 'Content-Type: application/json'.".into(),
                ),
                J::Deserialize(de) => {
                    Error::BadRequest(format!("The JSON body is not valid: {de}."))
                }
                other => Error::BadRequest(format!("The body could not be read: {other}.")),
            };
            e.into()
        })
}

/// Query strings: errors in Kiln's error shape.
pub fn query_config() -> web::QueryConfig {
    web::QueryConfig::default().error_handler(|err, _req| {
        Error::BadRequest(format!("The query string is not valid: {err}.")).into()
    })
}

/// Mounts every route.
pub fn configure(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/api/v1")
            .wrap(actix_web::middleware::from_fn(
                credential::authenticate_first,
            ))
            .configure(power::configure)
            .configure(deploy::configure)
            .configure(machines::configure)
            .configure(subnets::configure)
            .configure(boot_resources::configure)
            .configure(racks::configure)
            .configure(rack_api::configure)
            .configure(events::configure)
            .configure(users_tokens::configure)
            .configure(metadata::configure)
            .configure(volumes::configure)
            .configure(settings::configure)
            .configure(dns::configure)
            .configure(pods::configure)
            .route("/openapi.json", web::get().to(openapi_json)),
    )
    .configure(health::configure)
    .service(
        utoipa_swagger_ui::SwaggerUi::new("/api/docs/{_:.*}")
            .url("/api/v1/openapi.json", ApiDoc::openapi()),
    );
}

async fn openapi_json() -> actix_web::HttpResponse {
    actix_web::HttpResponse::Ok().json(ApiDoc::openapi())
}

/// The OpenAPI 3.1 document of `/api/v1`.
#[derive(OpenApi)]
#[openapi(
    info(title = "Kiln region API", description = "Bare-metal provisioning: machines, subnets, boot resources, racks, events, users and tokens. Authenticate with `Authorization: Bearer <token>`.", license(name = "Apache-2.0")),
    paths(
        machines::list, machines::create, machines::get, machines::patch, machines::delete,
        machines::action, machines::events, machines::set_interface,
        power::power_on, power::power_off, power::power_cycle, power::query, power::power_types,
        power::get_job, power::rack_jobs, power::rack_result, metadata::bmc,
        subnets::list, subnets::create, subnets::get, subnets::patch, subnets::delete,
        boot_resources::list, boot_resources::create, boot_resources::get, boot_resources::delete,
        boot_resources::upload, boot_resources::download,
        racks::list, racks::get, racks::delete, racks::approve, racks::create_token, racks::update,
        rack_api::register, rack_api::heartbeat, rack_api::snapshot, rack_api::events, rack_api::file, rack_api::boot, rack_api::claim,
        rack_api::volumes, rack_api::volume_report, volumes::list, settings::list, settings::set,
        metadata::meta, metadata::scripts_for_runner, metadata::report, metadata::start, metadata::result,
        metadata::done, metadata::list_scripts, metadata::create_script, metadata::get_script,
        metadata::update_script, metadata::delete_script, metadata::results,
        events::list,
        users_tokens::list_users, users_tokens::create_user, users_tokens::delete_user,
        users_tokens::list_tokens, users_tokens::create_token, users_tokens::delete_token,
        users_tokens::login, users_tokens::logout, users_tokens::whoami, users_tokens::audit,
        health::healthz, health::metrics,
        deploy::list_keys, deploy::add_key, deploy::delete_key, deploy::allocate, deploy::deployment,
        deploy::installed, deploy::failed, deploy::erase_done, deploy::seed, deploy::phone_home,
        dns::list_domains, dns::add_domain, dns::get_domain, dns::patch_domain, dns::delete_domain,
        dns::list_records, dns::add_record, dns::delete_record,
        pods::list, pods::create, pods::get, pods::update, pods::delete, pods::refresh, pods::compose,
        pods::decompose, pods::rack_jobs, pods::rack_result,
    ),
    components(schemas(
        region_api_types::Machine, region_api_types::MachineStatus, region_api_types::MachineAction,
        region_api_types::Interface, region_api_types::InterfaceCreate, region_api_types::MachineCreate,
        region_api_types::MachinePatch, region_api_types::ActionRequest, region_api_types::InterfaceUpdate, region_api_types::Event,
        region_api_types::EventLevel, region_api_types::Subnet, region_api_types::SubnetCreate,
        region_api_types::SubnetPatch, region_api_types::IpRange, region_api_types::StaticRoute,
        region_api_types::BootResource, region_api_types::BootResourceFile,
        region_api_types::BootResourceCreate, region_api_types::Rack, region_api_types::User,
        region_api_types::UserCreate, region_api_types::Token, region_api_types::TokenCreate,
        region_api_types::TokenCreated, region_api_types::LoginRequest, region_api_types::WhoAmI,
        region_api_types::ErrorBody, machines::MachinePage,
        region_api_types::RackInterface, region_api_types::RackRegister, region_api_types::RackRegistered,
        region_api_types::RackTokenCreate, region_api_types::RackTokenCreated, region_api_types::RackUpdate,
        region_api_types::RackHeartbeat, region_api_types::RackSnapshot, region_api_types::SnapshotMachine,
        region_api_types::SnapshotFile, region_api_types::RackEvent,
        region_api_types::Hardware, region_api_types::Disk, region_api_types::Nic,
        region_api_types::ScriptResult, region_api_types::Script, region_api_types::ScriptWrite,
        region_api_types::RunnerScript, region_api_types::MachineReport,
        region_api_types::CommissioningOutcome, region_api_types::RackBootRequest,
        region_api_types::RackBootAnswer, region_api_types::RackClaimRequest,
        region_api_types::RackClaimAnswer, metadata::Meta,
        region_api_types::RackIscsi, region_api_types::BootVolume, region_api_types::Volume,
        region_api_types::RackVolume, region_api_types::RackVolumes, region_api_types::RackVolumeReport,
        region_api_types::PowerState, region_api_types::PowerAction, region_api_types::BootDevice,
        region_api_types::PowerFieldKind, region_api_types::PowerField, region_api_types::PowerTypeSchema,
        region_api_types::PowerRequest, region_api_types::PowerJobStatus, region_api_types::PowerJob,
        region_api_types::PowerStatus, region_api_types::RackPowerJob, region_api_types::RackPowerResult,
        region_api_types::BmcReport,
        region_api_types::Pod, region_api_types::PodCreate, region_api_types::PodUpdate, region_api_types::PodResource,
        region_api_types::PodStoragePool, region_api_types::PodNetwork, region_api_types::PodVm, region_api_types::PodState,
        region_api_types::PodMachine, region_api_types::PodDeleted, region_api_types::PodVmLeft, region_api_types::ComposeDisk,
        region_api_types::ComposeInterface, region_api_types::ComposeRequest, region_api_types::PodJobKind, region_api_types::VmDisk,
        region_api_types::VmNic, region_api_types::VmSpec, region_api_types::RackPodJob, region_api_types::HostPool,
        region_api_types::HostDisk, region_api_types::HostVm, region_api_types::PodDiscovery, region_api_types::RackPodResult,
        region_api_types::MachinePod,
        region_api_types::SshKey, region_api_types::SshKeyCreate, region_api_types::AllocateRequest,
        region_api_types::DeployTarget, region_api_types::StorageLayout, region_api_types::DeployRequest,
        region_api_types::ReleaseRequest, region_api_types::Deployment, region_api_types::DeployPlan,
        region_api_types::ErasePlan, region_api_types::InstallReport, region_api_types::StepReport,
        deploy::DeploymentDetail, region_api_types::Setting, region_api_types::SettingUpdate,
        region_api_types::DnsDomain, region_api_types::DnsDomainCreate, region_api_types::DnsDomainPatch,
        region_api_types::DnsRecord, region_api_types::DnsRecordCreate, region_api_types::SnapshotDns,
        region_api_types::SnapshotDnsDomain, region_api_types::SnapshotDnsRecord,
    )),
    modifiers(&BearerAuth, &UniqueOperationIds),
    security(("bearer" = []))
)]
pub struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(HttpBuilder::new().scheme(HttpAuthScheme::Bearer).build()),
        );
    }
}

/// Operation ids are the handlers' names, which repeat across resources (`list`, `get`, …); an
/// OpenAPI document needs them unique. Each repeated one gets the path's fixed segments appended
/// (`list` on `/api/v1/boot-resources` → `list_boot_resources`); unique ones stay as they are.
struct UniqueOperationIds;

/// The id an operation named `name` on `path` gets when `name` is not unique (pure).
fn qualified_id(name: &str, path: &str) -> String {
    let segments: Vec<String> = path
        .trim_start_matches("/api/v1/")
        .split('/')
        .filter(|s| !s.is_empty() && !s.starts_with('{'))
        .map(|s| s.replace('-', "_"))
        .collect();
    format!("{name}_{}", segments.join("_"))
}

impl utoipa::Modify for UniqueOperationIds {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        fn ops(
            item: &mut utoipa::openapi::PathItem,
        ) -> impl Iterator<Item = &mut utoipa::openapi::path::Operation> {
            [
                &mut item.get,
                &mut item.put,
                &mut item.post,
                &mut item.delete,
                &mut item.patch,
                &mut item.head,
                &mut item.options,
                &mut item.trace,
            ]
            .into_iter()
            .flatten()
        }
        let mut count = std::collections::HashMap::<String, usize>::new();
        for item in openapi.paths.paths.values_mut() {
            for op in ops(item) {
                if let Some(id) = &op.operation_id {
                    *count.entry(id.clone()).or_default() += 1;
                }
            }
        }
        for (path, item) in openapi.paths.paths.iter_mut() {
            for op in ops(item) {
                if let Some(id) = op.operation_id.clone() {
                    if count.get(&id).copied().unwrap_or(0) > 1 {
                        op.operation_id = Some(qualified_id(&id, path));
                    }
                }
            }
        }
    }
}

/// Clamps `limit`/`offset` query values to the configured page sizes.
pub fn page_bounds(
    cfg: &Config,
    limit: Option<i64>,
    offset: Option<i64>,
) -> Result<(i64, i64), Error> {
    let limit = limit.unwrap_or(cfg.api.default_page_size);
    if limit < 1 || limit > cfg.api.max_page_size {
        return Err(Error::validation(
            "limit",
            format!("limit must be between 1 and {}.", cfg.api.max_page_size),
        ));
    }
    let offset = offset.unwrap_or(0);
    if offset < 0 {
        return Err(Error::validation("offset", "offset must be zero or more."));
    }
    Ok((limit, offset))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_operation_id_is_unique() {
        let doc = ApiDoc::openapi();
        let mut seen = std::collections::HashSet::new();
        let mut n = 0;
        for (path, item) in &doc.paths.paths {
            for op in [&item.get, &item.put, &item.post, &item.delete, &item.patch]
                .into_iter()
                .flatten()
            {
                let id = op.operation_id.clone().unwrap_or_default();
                assert!(!id.is_empty(), "{path}: no operation id");
                assert!(seen.insert(id.clone()), "{path}: operation id {id} repeats");
                n += 1;
            }
        }
        assert!(n > 80, "{n}");
        assert_eq!(
            qualified_id("list", "/api/v1/boot-resources"),
            "list_boot_resources"
        );
        assert_eq!(
            qualified_id("events", "/api/v1/machines/{system_id}/events"),
            "events_machines_events"
        );
    }
}
