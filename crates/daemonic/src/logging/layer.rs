//! The `tracing` layer: collects an event's fields and its spans' fields, then hands one
//! [`Record`] to every destination.
//!
//! Span fields are recorded once, when the span is created (and on `Span::record`), and kept
//! in the registry's span extensions; an event walks its span scope from the root.

use std::fmt;
use std::time::SystemTime;

use tracing::field::{Field, Visit};
use tracing::span::{Attributes, Id, Record as SpanValues};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::registry::LookupSpan;

use super::format::{Fields, Record, SpanRecord, Value};

/// A destination for rendered events.
pub(crate) trait Sink: Send + Sync + 'static {
    fn emit(&self, rec: &Record<'_>);
}

/// The layer `Logging` installs.
pub(crate) struct LogLayer {
    pub sinks: Vec<Box<dyn Sink>>,
    pub context: Vec<(String, String)>,
}

/// Collects fields; the `message` field is kept apart.
#[derive(Default)]
struct Collect {
    message: Option<String>,
    fields: Fields,
}

impl Collect {
    fn push(&mut self, field: &Field, value: Value) {
        if field.name() == "message" {
            self.message = Some(value.plain());
        } else {
            self.fields.push((field.name(), value));
        }
    }
}

impl Visit for Collect {
    fn record_str(&mut self, field: &Field, value: &str) {
        self.push(field, Value::Str(value.to_owned()));
    }
    fn record_i64(&mut self, field: &Field, value: i64) {
        self.push(field, Value::I64(value));
    }
    fn record_u64(&mut self, field: &Field, value: u64) {
        self.push(field, Value::U64(value));
    }
    fn record_f64(&mut self, field: &Field, value: f64) {
        self.push(field, Value::F64(value));
    }
    fn record_bool(&mut self, field: &Field, value: bool) {
        self.push(field, Value::Bool(value));
    }
    fn record_error(&mut self, field: &Field, value: &(dyn std::error::Error + 'static)) {
        self.push(field, Value::Str(value.to_string()));
    }
    fn record_debug(&mut self, field: &Field, value: &dyn fmt::Debug) {
        self.push(field, Value::Debug(format!("{value:?}")));
    }
}

/// Stored in a span's extensions.
struct SpanFields(Fields);

impl<S> Layer<S> for LogLayer
where
    S: Subscriber + for<'a> LookupSpan<'a>,
{
    fn on_new_span(&self, attrs: &Attributes<'_>, id: &Id, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut c = Collect::default();
        attrs.record(&mut c);
        if let Some(m) = c.message {
            c.fields.push(("message", Value::Str(m)));
        }
        span.extensions_mut().insert(SpanFields(c.fields));
    }

    fn on_record(&self, id: &Id, values: &SpanValues<'_>, ctx: Context<'_, S>) {
        let Some(span) = ctx.span(id) else { return };
        let mut c = Collect::default();
        values.record(&mut c);
        let mut ext = span.extensions_mut();
        if let Some(SpanFields(fields)) = ext.get_mut::<SpanFields>() {
            for (k, v) in c.fields {
                match fields.iter_mut().find(|(name, _)| *name == k) {
                    Some(slot) => slot.1 = v,
                    None => fields.push((k, v)),
                }
            }
        }
    }

    fn on_event(&self, event: &Event<'_>, ctx: Context<'_, S>) {
        let mut c = Collect::default();
        event.record(&mut c);
        let spans = ctx
            .event_scope(event)
            .map(|scope| {
                scope
                    .from_root()
                    .map(|span| SpanRecord {
                        name: span.name(),
                        fields: span
                            .extensions()
                            .get::<SpanFields>()
                            .map(|f| f.0.clone())
                            .unwrap_or_default(),
                    })
                    .collect()
            })
            .unwrap_or_default();
        let meta = event.metadata();
        let rec = Record {
            time: SystemTime::now(),
            level: *meta.level(),
            target: meta.target(),
            message: c.message.unwrap_or_default(),
            fields: c.fields,
            spans,
            context: &self.context,
            file: meta.file(),
            line: meta.line(),
        };
        for sink in &self.sinks {
            sink.emit(&rec);
        }
    }
}
