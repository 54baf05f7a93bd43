//! Rendering one event as a line: text or JSON.
//!
//! Text (the form `tracing-subscriber` users know), context fields last:
//!
//! ```text
//! 2025-03-09T14:07:02.123456Z  INFO request{id=7}: web::http: served path=/ status=200 service=web env=prod
//! ```
//!
//! JSON lines, one object per line, keys in this order: `timestamp`, `level`, `target`,
//! `message`, the context fields, the event's fields, then `spans` (outermost first, each
//! with its `name` and fields):
//!
//! ```text
//! {"timestamp":"2025-03-09T14:07:02.123456Z","level":"INFO","target":"web::http","message":"served","service":"web","env":"prod","path":"/","status":200,"spans":[{"name":"request","id":7}]}
//! ```
//!
//! Timestamps are UTC with microseconds. Integers and booleans stay JSON numbers and
//! booleans; `Debug`-recorded values become strings.

use std::fmt::Write;
use std::time::SystemTime;

use tracing::Level;

use super::clock::Utc;

/// How lines are written.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Format {
    /// Human-readable text.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// A recorded field value, kept typed so each destination renders it its own way.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Value {
    Str(String),
    I64(i64),
    U64(u64),
    F64(f64),
    Bool(bool),
    /// Recorded through `Debug`.
    Debug(String),
}

impl Value {
    /// The plain text of the value (strings unquoted), as journald and syslog want it.
    pub fn plain(&self) -> String {
        match self {
            Value::Str(s) | Value::Debug(s) => s.clone(),
            Value::I64(v) => v.to_string(),
            Value::U64(v) => v.to_string(),
            Value::F64(v) => v.to_string(),
            Value::Bool(v) => v.to_string(),
        }
    }

    fn write_text(&self, out: &mut String) {
        match self {
            Value::Str(s) if needs_quotes(s) => {
                let _ = write!(out, "{s:?}");
            }
            Value::Str(s) | Value::Debug(s) => out.push_str(s),
            other => out.push_str(&other.plain()),
        }
    }

    fn write_json(&self, out: &mut String) {
        match self {
            Value::Str(s) | Value::Debug(s) => {
                out.push('"');
                escape_json(s, out);
                out.push('"');
            }
            Value::I64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::U64(v) => {
                let _ = write!(out, "{v}");
            }
            Value::F64(v) if v.is_finite() => {
                let _ = write!(out, "{v}");
            }
            Value::F64(v) => {
                let _ = write!(out, "\"{v}\"");
            }
            Value::Bool(v) => {
                let _ = write!(out, "{v}");
            }
        }
    }
}

fn needs_quotes(s: &str) -> bool {
    s.is_empty()
        || s.chars()
            .any(|c| c.is_whitespace() || c == '"' || c == '=' || c.is_control())
}

/// Fields in recording order.
pub(crate) type Fields = Vec<(&'static str, Value)>;

/// One span of the current context: its name and fields.
#[derive(Debug, Clone)]
pub(crate) struct SpanRecord {
    pub name: &'static str,
    pub fields: Fields,
}

/// Everything a destination needs to write one event.
#[derive(Debug)]
pub(crate) struct Record<'a> {
    pub time: SystemTime,
    pub level: Level,
    pub target: &'a str,
    pub message: String,
    pub fields: Fields,
    /// Outermost first.
    pub spans: Vec<SpanRecord>,
    pub context: &'a [(String, String)],
    pub file: Option<&'a str>,
    pub line: Option<u32>,
}

/// Appends the text form of `rec` to `out`, with the timestamp and level unless `compact`
/// (the form for journald's stderr stream, which stamps lines itself and gets the level
/// from a `<N>` prefix).
pub(crate) fn text(rec: &Record<'_>, compact: bool, out: &mut String) {
    if !compact {
        Utc::from_system_time(rec.time).write_rfc3339(out);
        let _ = write!(out, " {:>5} ", rec.level.as_str());
    }
    for span in &rec.spans {
        out.push_str(span.name);
        if !span.fields.is_empty() {
            out.push('{');
            write_text_fields(&span.fields, out);
            out.push('}');
        }
        out.push(':');
    }
    if !rec.spans.is_empty() {
        out.push(' ');
    }
    let _ = write!(out, "{}: {}", rec.target, rec.message);
    if !rec.fields.is_empty() {
        out.push(' ');
        write_text_fields(&rec.fields, out);
    }
    for (k, v) in rec.context {
        let _ = write!(out, " {k}=");
        Value::Str(v.clone()).write_text(out);
    }
    out.push('\n');
}

fn write_text_fields(fields: &Fields, out: &mut String) {
    for (i, (k, v)) in fields.iter().enumerate() {
        if i > 0 {
            out.push(' ');
        }
        let _ = write!(out, "{k}=");
        v.write_text(out);
    }
}

/// Appends the JSON form of `rec` to `out`.
pub(crate) fn json(rec: &Record<'_>, out: &mut String) {
    out.push_str("{\"timestamp\":\"");
    Utc::from_system_time(rec.time).write_rfc3339(out);
    let _ = write!(out, "\",\"level\":\"{}\",\"target\":", rec.level.as_str());
    Value::Str(rec.target.to_owned()).write_json(out);
    out.push_str(",\"message\":");
    Value::Str(rec.message.clone()).write_json(out);
    for (k, v) in rec.context {
        json_key(k, out);
        Value::Str(v.clone()).write_json(out);
    }
    for (k, v) in &rec.fields {
        json_key(k, out);
        v.write_json(out);
    }
    if !rec.spans.is_empty() {
        out.push_str(",\"spans\":[");
        for (i, span) in rec.spans.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str("{\"name\":");
            Value::Str(span.name.to_owned()).write_json(out);
            for (k, v) in &span.fields {
                json_key(k, out);
                v.write_json(out);
            }
            out.push('}');
        }
        out.push(']');
    }
    out.push_str("}\n");
}

fn json_key(k: &str, out: &mut String) {
    out.push_str(",\"");
    escape_json(k, out);
    out.push_str("\":");
}

/// Escapes `s` for the inside of a JSON string (RFC 8259: quote, backslash, controls),
/// appending to `out`. The one JSON escaper: log lines and `daemonic status --json`.
pub fn escape_json(s: &str, out: &mut String) {
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::{Duration, UNIX_EPOCH};

    fn sample(ctx: &[(String, String)]) -> Record<'_> {
        Record {
            time: UNIX_EPOCH + Duration::from_micros(1_735_689_600_000_123),
            level: Level::WARN,
            target: "web::http",
            message: "slow \"request\"".into(),
            fields: vec![
                ("status", Value::U64(503)),
                ("path", Value::Str("/a b".into())),
            ],
            spans: vec![SpanRecord {
                name: "req",
                fields: vec![("id", Value::I64(-7))],
            }],
            context: ctx,
            file: None,
            line: None,
        }
    }

    #[test]
    fn text_line_has_time_level_spans_target_fields_context() {
        let ctx = [("service".to_owned(), "web".to_owned())];
        let mut s = String::new();
        text(&sample(&ctx), false, &mut s);
        assert_eq!(
            s,
            "2025-01-01T00:00:00.000123Z  WARN req{id=-7}: web::http: slow \"request\" status=503 path=\"/a b\" service=web\n"
        );
        let mut c = String::new();
        text(&sample(&ctx), true, &mut c);
        assert!(c.starts_with("req{id=-7}: web::http: slow"), "{c}");
    }

    #[test]
    fn json_line_keeps_types_and_escapes() {
        let ctx = [("env".to_owned(), "prod".to_owned())];
        let mut s = String::new();
        json(&sample(&ctx), &mut s);
        assert_eq!(
            s,
            "{\"timestamp\":\"2025-01-01T00:00:00.000123Z\",\"level\":\"WARN\",\"target\":\"web::http\",\
             \"message\":\"slow \\\"request\\\"\",\"env\":\"prod\",\"status\":503,\"path\":\"/a b\",\
             \"spans\":[{\"name\":\"req\",\"id\":-7}]}\n"
        );
        let mut e = String::new();
        escape_json("a\u{1}\n\\", &mut e);
        assert_eq!(e, "a\\u0001\\n\\\\");
    }
}
