//! The log's own rules: the few library events whose level says more than they mean.
//!
//! actix-http logs every request it cannot parse (a malformed header, a bad `Content-Length`) at
//! ERROR as a "stream error", although the client got its 400 and nothing on the server is wrong:
//! anyone who can reach the port could fill an operator's error log, one line a packet. [`Demote`]
//! wraps the log's output layer and hands it those events at DEBUG instead (shown only when the
//! log filter asks for debug there, e.g. `KILN_LOG=info,actix_http=debug`); every other event
//! passes unchanged.

use tracing::field::{Field, Visit};
use tracing::metadata::Kind;
use tracing::{Event, Level, Metadata, Subscriber};
use tracing_core::callsite::Callsite;
use tracing_core::subscriber::Interest;
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::EnvFilter;

/// actix-http's target for the events [`is_clients_fault`] looks at.
const ACTIX_DISPATCHER: &str = "actix_http::h1::dispatcher";

/// Whether an event reports a client's malformed request rather than a fault of the server (pure).
pub fn is_clients_fault(target: &str, level: Level, message: &str) -> bool {
    target == ACTIX_DISPATCHER
        && level < Level::DEBUG
        && message.starts_with("stream error: request parse error")
}

struct DemotedCallsite;
static DEMOTED_CALLSITE: DemotedCallsite = DemotedCallsite;
static DEMOTED: Metadata<'static> = tracing_core::metadata! {
    name: "malformed request",
    target: ACTIX_DISPATCHER,
    level: Level::DEBUG,
    fields: &["message"],
    callsite: &DEMOTED_CALLSITE,
    kind: Kind::EVENT,
};

impl Callsite for DemotedCallsite {
    fn set_interest(&self, _: Interest) {}
    fn metadata(&self) -> &Metadata<'_> {
        &DEMOTED
    }
}

/// An event's `message` field, as text.
#[derive(Default)]
struct Message(String);

impl Visit for Message {
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.0 = format!("{value:?}");
        }
    }
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.0 = value.to_string();
        }
    }
}

/// The output layer `inner`, given a client's malformed request at DEBUG (see the module).
pub struct Demote<L> {
    inner: L,
    /// The same filter the log has, asked whether the DEBUG event is wanted.
    filter: EnvFilter,
}

impl<L> Demote<L> {
    pub fn new(inner: L, filter: EnvFilter) -> Demote<L> {
        Demote { inner, filter }
    }
}

impl<S, L> Layer<S> for Demote<L>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    L: Layer<S>,
{
    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let meta = event.metadata();
        if meta.target() != ACTIX_DISPATCHER || *meta.level() >= Level::DEBUG {
            return self.inner.on_event(event, ctx);
        }
        let mut m = Message::default();
        event.record(&mut m);
        if !is_clients_fault(meta.target(), *meta.level(), &m.0) {
            return self.inner.on_event(event, ctx);
        }
        if !Layer::<S>::enabled(&self.filter, &DEMOTED, ctx.clone()) {
            return;
        }
        let fields = DEMOTED.fields();
        let Some(field) = fields.field("message") else {
            return;
        };
        let text = m.0.as_str();
        let values = [(&field, Some(&text as &dyn tracing::Value))];
        let values = fields.value_set(&values);
        self.inner
            .on_event(&Event::new_child_of(None, &DEMOTED, &values), ctx);
    }

    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        self.inner.on_register_dispatch(subscriber)
    }
    fn on_layer(&mut self, subscriber: &mut S) {
        self.inner.on_layer(subscriber)
    }
    fn register_callsite(&self, metadata: &'static Metadata<'static>) -> Interest {
        self.inner.register_callsite(metadata)
    }
    fn enabled(&self, metadata: &Metadata<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.enabled(metadata, ctx)
    }
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        self.inner.on_new_span(attrs, id, ctx)
    }
    fn on_record(
        &self,
        span: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: Context<'_, S>,
    ) {
        self.inner.on_record(span, values, ctx)
    }
    fn on_follows_from(
        &self,
        span: &tracing::span::Id,
        follows: &tracing::span::Id,
        ctx: Context<'_, S>,
    ) {
        self.inner.on_follows_from(span, follows, ctx)
    }
    fn event_enabled(&self, event: &Event<'_>, ctx: Context<'_, S>) -> bool {
        self.inner.event_enabled(event, ctx)
    }
    fn on_enter(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        self.inner.on_enter(id, ctx)
    }
    fn on_exit(&self, id: &tracing::span::Id, ctx: Context<'_, S>) {
        self.inner.on_exit(id, ctx)
    }
    fn on_close(&self, id: tracing::span::Id, ctx: Context<'_, S>) {
        self.inner.on_close(id, ctx)
    }
    fn on_id_change(&self, old: &tracing::span::Id, new: &tracing::span::Id, ctx: Context<'_, S>) {
        self.inner.on_id_change(old, new, ctx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_clients_malformed_request_is_its_fault() {
        for m in [
            "stream error: request parse error: invalid Header provided",
            "stream error: request parse error: Content-Length header is invalid",
        ] {
            assert!(is_clients_fault(ACTIX_DISPATCHER, Level::ERROR, m));
        }
    }

    #[test]
    fn everything_else_is_left_alone() {
        assert!(!is_clients_fault(
            ACTIX_DISPATCHER,
            Level::ERROR,
            "Response payload stream error: x"
        ));
        assert!(!is_clients_fault(
            "r2d2",
            Level::ERROR,
            "stream error: request parse error"
        ));
        assert!(!is_clients_fault(
            ACTIX_DISPATCHER,
            Level::TRACE,
            "stream error: request parse error: x"
        ));
    }
}
