//! Payloads: requests and responses as `key=value` lines.
//!
//! Values escape a backslash as `\\` and a newline as `\n`, so any text survives a round
//! trip and a line is always one field. Keys are fixed ASCII words. The first line names
//! the message (`op=…` for a request, `response=…` for a response); a `services` response
//! is a list of records, each starting at its `name=` line. Optional fields are left out
//! when absent.
//!
//! Requests are strict (an unknown or repeated field is an error); responses ignore
//! unknown fields, so a newer supervisor can say more to an older client.

use std::str::FromStr;

use super::wire::{self, WireError};
use super::{Request, Response, ServiceInfo};

impl Request {
    /// The request's op, as written on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Status { .. } => "status",
            Request::List => "list",
            Request::Stop { .. } => "stop",
            Request::Restart { .. } => "restart",
            Request::Reload { .. } => "reload",
            Request::Reopen { .. } => "reopen",
            Request::Signal { .. } => "signal",
            Request::Up { .. } => "up",
            Request::Down { .. } => "down",
        }
    }

    /// The payload (without the frame header).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        put(&mut out, "op", self.op());
        match self {
            Request::Status { name } => put_opt(&mut out, "name", name.as_deref()),
            Request::List => {}
            Request::Stop { name } | Request::Restart { name } | Request::Reopen { name } => {
                put(&mut out, "name", name)
            }
            Request::Reload { name, wait } => {
                put(&mut out, "name", name);
                // Only when asked: a supervisor older than `wait` still understands the rest.
                if *wait {
                    put(&mut out, "wait", "1");
                }
            }
            Request::Signal { name, signal } => {
                put(&mut out, "name", name);
                put(&mut out, "signal", signal.as_str());
            }
            Request::Up { names, rerun } => {
                put(&mut out, "names", &names.join(","));
                // Only when given: a supervisor older than `rerun` still understands the
                // rest.
                if !rerun.is_empty() {
                    put(&mut out, "rerun", &rerun.join(","));
                }
            }
            Request::Down { names } => put(&mut out, "names", &names.join(",")),
        }
        out
    }

    /// Decodes a payload strictly: anything unexpected is an error.
    pub fn decode(payload: &[u8]) -> Result<Request, WireError> {
        let mut fields = Fields::parse(utf8(payload)?)?;
        fields.no_duplicates()?;
        let op = fields.kind("op")?;
        let request = match op.as_str() {
            "status" => Request::Status {
                name: fields.take("name"),
            },
            "list" => Request::List,
            "stop" => Request::Stop {
                name: fields.require("name")?,
            },
            "restart" => Request::Restart {
                name: fields.require("name")?,
            },
            "reload" => Request::Reload {
                name: fields.require("name")?,
                wait: fields.take("wait").is_some_and(|w| w == "1"),
            },
            "reopen" => Request::Reopen {
                name: fields.require("name")?,
            },
            "signal" => Request::Signal {
                name: fields.require("name")?,
                signal: parse_field(&mut fields, "signal", "a signal name such as SIGHUP")?,
            },
            "up" => Request::Up {
                names: names(fields.require("names")?),
                rerun: fields.take("rerun").map(names).unwrap_or_default(),
            },
            "down" => Request::Down {
                names: names(fields.require("names")?),
            },
            _ => return Err(WireError::UnknownOp(op)),
        };
        fields.finish()?;
        Ok(request)
    }

    /// The complete frame. A request's fields are short (names are at most 64 bytes), so
    /// it always fits.
    pub fn to_frame(&self) -> Vec<u8> {
        wire::frame(self.encode().as_bytes()).expect("a request is far below the cap")
    }
}

impl Response {
    /// The payload (without the frame header).
    pub fn encode(&self) -> String {
        let mut out = String::new();
        match self {
            Response::Services(list) => {
                put(&mut out, "response", "services");
                for s in list {
                    encode_service(&mut out, s);
                }
            }
            Response::Done(text) => {
                put(&mut out, "response", "done");
                put(&mut out, "message", text);
            }
            Response::Error(text) => {
                put(&mut out, "response", "error");
                put(&mut out, "message", text);
            }
        }
        out
    }

    /// Decodes a payload; unknown fields are ignored (see the module docs).
    pub fn decode(payload: &[u8]) -> Result<Response, WireError> {
        let mut fields = Fields::parse(utf8(payload)?)?;
        let kind = fields.kind("response")?;
        match kind.as_str() {
            "services" => {
                let mut list = Vec::new();
                for record in fields.records("name")? {
                    list.push(decode_service(record)?);
                }
                Ok(Response::Services(list))
            }
            "done" => Ok(Response::Done(fields.require("message")?)),
            "error" => Ok(Response::Error(fields.require("message")?)),
            _ => Err(WireError::UnknownResponse(kind)),
        }
    }

    /// The complete frame, or an error frame saying so if the payload is over the cap
    /// ([`wire::MAX_RESPONSE`], tens of thousands of services' worth).
    pub fn to_frame(&self) -> Vec<u8> {
        let payload = self.encode();
        wire::frame_within(payload.as_bytes(), wire::MAX_RESPONSE).unwrap_or_else(|e| {
            let error = Response::Error(format!("response too large: {e}"));
            wire::frame(error.encode().as_bytes()).expect("a short error fits")
        })
    }
}

fn encode_service(out: &mut String, s: &ServiceInfo) {
    put(out, "name", &s.name);
    put(out, "state", &s.state);
    put_opt(out, "pid", s.pid.map(|p| p.to_string()).as_deref());
    put(out, "supervisor_pid", &s.supervisor_pid.to_string());
    put(out, "since_unix", &s.since_unix.to_string());
    put(out, "restarts", &s.restarts.to_string());
    put_opt(out, "last_exit", s.last_exit.as_deref());
    put_opt(
        out,
        "next_delay_ms",
        s.next_delay_ms.map(|n| n.to_string()).as_deref(),
    );
    let delays: Vec<String> = s.delays_ms.iter().map(u64::to_string).collect();
    put(out, "delays_ms", &delays.join(","));
    put(out, "status", &s.status);
    put_opt(out, "cpu_ms", s.cpu_ms.map(|n| n.to_string()).as_deref());
    put_opt(
        out,
        "rss_bytes",
        s.rss_bytes.map(|n| n.to_string()).as_deref(),
    );
    put_opt(out, "log_file", s.log_file.as_deref());
    put_opt(out, "group", s.group.as_deref());
    put_opt(out, "health", s.health.as_deref());
    put(out, "ready", if s.ready { "true" } else { "false" });
    put_opt(out, "containment", s.containment.as_deref());
    for (key, n) in [
        ("tree_processes", s.tree_processes),
        ("tree_memory_bytes", s.tree_memory_bytes),
        ("tree_cpu_ms", s.tree_cpu_ms),
        ("log_lines_dropped", s.log_lines_dropped),
    ] {
        put_opt(out, key, n.map(|n| n.to_string()).as_deref());
    }
    put_opt(out, "log_error", s.log_error.as_deref());
    // One socket per line, `NAME WHERE` (a name holds no space).
    let sockets: Vec<String> = s.sockets.iter().map(|(n, a)| format!("{n} {a}")).collect();
    put_opt(
        out,
        "sockets",
        (!sockets.is_empty()).then(|| sockets.join("\n")).as_deref(),
    );
    put_opt(
        out,
        "fd_store",
        s.fd_store.map(|n| n.to_string()).as_deref(),
    );
}

fn decode_service(mut f: Fields) -> Result<ServiceInfo, WireError> {
    const UINT: &str = "an unsigned integer";
    Ok(ServiceInfo {
        name: f.require("name")?,
        state: f.require("state")?,
        pid: parse_opt(&mut f, "pid", "a pid")?,
        supervisor_pid: parse_field(&mut f, "supervisor_pid", "a pid")?,
        since_unix: parse_field(&mut f, "since_unix", UINT)?,
        restarts: parse_field(&mut f, "restarts", UINT)?,
        last_exit: f.take("last_exit"),
        next_delay_ms: parse_opt(&mut f, "next_delay_ms", UINT)?,
        delays_ms: parse_list(&mut f, "delays_ms")?,
        status: f.require("status")?,
        cpu_ms: parse_opt(&mut f, "cpu_ms", UINT)?,
        rss_bytes: parse_opt(&mut f, "rss_bytes", UINT)?,
        log_file: f.take("log_file"),
        group: f.take("group"),
        health: f.take("health"),
        ready: parse_opt(&mut f, "ready", "true or false")?.unwrap_or(false),
        containment: f.take("containment"),
        tree_processes: parse_opt(&mut f, "tree_processes", UINT)?,
        tree_memory_bytes: parse_opt(&mut f, "tree_memory_bytes", UINT)?,
        tree_cpu_ms: parse_opt(&mut f, "tree_cpu_ms", UINT)?,
        log_lines_dropped: parse_opt(&mut f, "log_lines_dropped", UINT)?,
        log_error: f.take("log_error"),
        sockets: f
            .take("sockets")
            .map(|text| {
                text.lines()
                    .map(|l| match l.split_once(' ') {
                        Some((n, a)) => (n.to_string(), a.to_string()),
                        None => (l.to_string(), String::new()),
                    })
                    .collect()
            })
            .unwrap_or_default(),
        fd_store: parse_opt(&mut f, "fd_store", UINT)?,
    })
}

/// Service names, comma-separated (a name holds no comma); empty: none.
fn names(list: String) -> Vec<String> {
    list.split(',')
        .filter(|n| !n.is_empty())
        .map(str::to_string)
        .collect()
}

fn put(out: &mut String, key: &str, value: &str) {
    out.push_str(key);
    out.push('=');
    for c in value.chars() {
        match c {
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('\n');
}

fn put_opt(out: &mut String, key: &str, value: Option<&str>) {
    if let Some(v) = value {
        put(out, key, v);
    }
}

fn utf8(payload: &[u8]) -> Result<&str, WireError> {
    std::str::from_utf8(payload).map_err(|e| WireError::NotUtf8 {
        at: e.valid_up_to(),
    })
}

fn unescape(field: &str, raw: &str) -> Result<String, WireError> {
    let mut out = String::with_capacity(raw.len());
    let mut chars = raw.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next() {
            Some('\\') => out.push('\\'),
            Some('n') => out.push('\n'),
            _ => {
                return Err(WireError::BadEscape {
                    field: field.to_string(),
                });
            }
        }
    }
    Ok(out)
}

/// A payload's fields in order; taken one by one as a message is decoded.
struct Fields {
    items: Vec<(String, String)>,
}

impl Fields {
    fn parse(text: &str) -> Result<Fields, WireError> {
        let body = text.strip_suffix('\n').unwrap_or(text);
        let mut items = Vec::new();
        if body.is_empty() {
            return Ok(Fields { items });
        }
        for (i, line) in body.split('\n').enumerate() {
            let (key, raw) = line
                .split_once('=')
                .filter(|(k, _)| !k.is_empty())
                .ok_or(WireError::BadLine { line: i + 1 })?;
            items.push((key.to_string(), unescape(key, raw)?));
        }
        Ok(Fields { items })
    }

    /// The first field, which must be `key` (`op` or `response`); it says what follows.
    fn kind(&mut self, key: &'static str) -> Result<String, WireError> {
        match self.items.first() {
            Some((k, _)) if k == key => Ok(self.items.remove(0).1),
            _ => Err(WireError::MissingKind { expected: key }),
        }
    }

    /// Removes and returns `key`'s value.
    fn take(&mut self, key: &str) -> Option<String> {
        let at = self.items.iter().position(|(k, _)| k == key)?;
        Some(self.items.remove(at).1)
    }

    fn require(&mut self, key: &'static str) -> Result<String, WireError> {
        self.take(key).ok_or(WireError::MissingField(key))
    }

    /// Requests name each field once.
    fn no_duplicates(&self) -> Result<(), WireError> {
        for (i, (k, _)) in self.items.iter().enumerate() {
            if self.items[..i].iter().any(|(seen, _)| seen == k) {
                return Err(WireError::DuplicateField(k.clone()));
            }
        }
        Ok(())
    }

    /// Strict end of a request: nothing may be left over.
    fn finish(self) -> Result<(), WireError> {
        match self.items.into_iter().next() {
            None => Ok(()),
            Some((k, _)) => Err(WireError::UnknownField(k)),
        }
    }

    /// Splits into records, each starting at a `start` field; fields before the first
    /// record, and a field repeated within a record, are errors.
    fn records(self, start: &'static str) -> Result<Vec<Fields>, WireError> {
        let mut records: Vec<Fields> = Vec::new();
        for (k, v) in self.items {
            if k == start {
                records.push(Fields { items: Vec::new() });
            }
            let Some(record) = records.last_mut() else {
                return Err(WireError::MissingField(start));
            };
            if record.items.iter().any(|(seen, _)| *seen == k) {
                return Err(WireError::DuplicateField(k));
            }
            record.items.push((k, v));
        }
        Ok(records)
    }
}

fn parse_field<T: FromStr>(
    f: &mut Fields,
    field: &'static str,
    expected: &'static str,
) -> Result<T, WireError> {
    let value = f.require(field)?;
    value.parse().map_err(|_| WireError::BadField {
        field,
        value,
        expected,
    })
}

fn parse_opt<T: FromStr>(
    f: &mut Fields,
    field: &'static str,
    expected: &'static str,
) -> Result<Option<T>, WireError> {
    match f.take(field) {
        None => Ok(None),
        Some(value) => value.parse().map(Some).map_err(|_| WireError::BadField {
            field,
            value,
            expected,
        }),
    }
}

fn parse_list(f: &mut Fields, field: &'static str) -> Result<Vec<u64>, WireError> {
    let value = f.take(field).unwrap_or_default();
    if value.is_empty() {
        return Ok(Vec::new());
    }
    value
        .split(',')
        .map(|n| n.parse())
        .collect::<Result<_, _>>()
        .map_err(|_| WireError::BadField {
            field,
            value: value.clone(),
            expected: "comma-separated unsigned integers",
        })
}
