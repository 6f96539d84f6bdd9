//! Kiln's operator web UI, as a library the region serves: every page is rendered on the server from
//! the tera 2 templates in `ui/templates/`, with small progressive enhancement from htmx (vendored in
//! `ui/static/`, served from the binary) and live updates over Server-Sent Events.
//!
//! # Layout
//! - [`views`]: the view models the templates render, built (purely) from the API's types.
//! - [`format`]: sizes, durations, links: pure helpers the views use.
//! - [`assets`]: the static files (htmx, the stylesheet, the small SSE client), with ETags.
//! - [`Ui`]: the compiled templates; `render` a page.
//!
//! Architecture invariant: this crate does no IO and reads no clock (times come in the views); the
//! region's `web` module fetches, checks access, and calls it.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod assets;
pub mod format;
pub mod views;

use serde::Serialize;

/// The templates, compiled into the binary.
const TEMPLATES: &[(&str, &str)] = &[
    ("base.html", include_str!("../templates/base.html")),
    ("login.html", include_str!("../templates/login.html")),
    ("machines.html", include_str!("../templates/machines.html")),
    ("machine.html", include_str!("../templates/machine.html")),
    ("bulk.html", include_str!("../templates/bulk.html")),
    ("images.html", include_str!("../templates/images.html")),
    ("subnets.html", include_str!("../templates/subnets.html")),
    ("dns.html", include_str!("../templates/dns.html")),
    ("pods.html", include_str!("../templates/pods.html")),
    ("pod.html", include_str!("../templates/pod.html")),
    ("racks.html", include_str!("../templates/racks.html")),
    ("users.html", include_str!("../templates/users.html")),
    ("keys.html", include_str!("../templates/keys.html")),
    ("settings.html", include_str!("../templates/settings.html")),
    ("events.html", include_str!("../templates/events.html")),
    ("error.html", include_str!("../templates/error.html")),
];

/// A template failed to compile or render (a bug in Kiln, never the user's input).
#[derive(Debug, thiserror::Error)]
pub enum UiError {
    #[error("template {name}: {message}")]
    Template { name: String, message: String },
}

/// The compiled templates.
pub struct Ui {
    tera: tera::Tera,
}

impl Ui {
    /// Compiles every template (HTML-escaped by default).
    pub fn new() -> Result<Ui, UiError> {
        let mut tera = tera::Tera::new();
        tera.add_raw_templates(TEMPLATES.iter().copied())
            .map_err(|e| UiError::Template {
                name: "(all)".into(),
                message: full_message(&e),
            })?;
        Ok(Ui { tera })
    }

    /// Renders a whole page.
    pub fn render<T: Serialize>(&self, name: &str, view: &T) -> Result<String, UiError> {
        let ctx = context(name, view)?;
        self.tera.render(name, &ctx).map_err(|e| UiError::Template {
            name: name.into(),
            message: full_message(&e),
        })
    }
}

fn context<T: Serialize>(name: &str, view: &T) -> Result<tera::Context, UiError> {
    tera::Context::from_serialize(view).map_err(|e| UiError::Template {
        name: name.into(),
        message: full_message(&e),
    })
}

fn full_message(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut src = e.source();
    while let Some(c) = src {
        s.push_str(": ");
        s.push_str(&c.to_string());
        src = c.source();
    }
    s
}
