//! [`ServiceInfo`] as JSON, for `daemonic status --json`.
//!
//! One object per service with the same field names as [`ServiceInfo`] (stable: scripts
//! depend on them; add fields, never rename), `null` for an absent value (also for a
//! `supervisor_pid` or `since_unix` not known yet, which [`ServiceInfo`] holds as 0), and strings
//! escaped as RFC 8259 requires (`"`, `\`, and control characters). Written by hand: a
//! serializer crate would be the only reason to depend on one.

use super::ServiceInfo;

/// A JSON array of `services`, one object per line.
pub fn services(services: &[ServiceInfo]) -> String {
    if services.is_empty() {
        return "[]".to_string();
    }
    let objects: Vec<String> = services.iter().map(service).collect();
    format!("[\n  {}\n]", objects.join(",\n  "))
}

/// `[{"name":"web","listen":"tcp:127.0.0.1:8080"}, …]`.
fn sockets(list: &[(String, String)]) -> String {
    let items: Vec<String> = list
        .iter()
        .map(|(n, a)| format!("{{\"name\":{},\"listen\":{}}}", string(n), string(a)))
        .collect();
    format!("[{}]", items.join(","))
}

/// One service as a JSON object, on one line.
pub fn service(s: &ServiceInfo) -> String {
    let delays: Vec<String> = s.delays_ms.iter().map(u64::to_string).collect();
    let fields = [
        ("name", string(&s.name)),
        ("state", string(&s.state)),
        ("pid", number(s.pid)),
        (
            "supervisor_pid",
            number(Some(s.supervisor_pid).filter(|&p| p != 0)),
        ),
        ("since_unix", number(Some(s.since_unix).filter(|&t| t != 0))),
        ("restarts", s.restarts.to_string()),
        (
            "last_exit",
            s.last_exit.as_deref().map_or_else(null, string),
        ),
        ("next_delay_ms", number(s.next_delay_ms)),
        ("delays_ms", format!("[{}]", delays.join(","))),
        ("status", string(&s.status)),
        ("cpu_ms", number(s.cpu_ms)),
        ("rss_bytes", number(s.rss_bytes)),
        ("log_file", s.log_file.as_deref().map_or_else(null, string)),
        ("group", s.group.as_deref().map_or_else(null, string)),
        ("health", s.health.as_deref().map_or_else(null, string)),
        ("ready", s.ready.to_string()),
        (
            "containment",
            s.containment.as_deref().map_or_else(null, string),
        ),
        ("tree_processes", number(s.tree_processes)),
        ("tree_memory_bytes", number(s.tree_memory_bytes)),
        ("tree_cpu_ms", number(s.tree_cpu_ms)),
        ("log_lines_dropped", number(s.log_lines_dropped)),
        (
            "log_error",
            s.log_error.as_deref().map_or_else(null, string),
        ),
        ("sockets", sockets(&s.sockets)),
        ("fd_store", number(s.fd_store)),
    ];
    let members: Vec<String> = fields.iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
    format!("{{{}}}", members.join(","))
}

fn null() -> String {
    "null".to_string()
}

fn number<T: ToString>(n: Option<T>) -> String {
    n.map_or_else(null, |n| n.to_string())
}

/// A JSON string literal.
pub fn string(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 2);
    out.push('"');
    daemonic::logging::escape_json(text, &mut out);
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_escape_quotes_backslashes_and_control_characters() {
        assert_eq!(
            string("a \"b\" c:\\ d\ne\tf\u{1}g é"),
            r#""a \"b\" c:\\ d\ne\tf\u0001g é""#
        );
    }

    #[test]
    fn absent_values_are_null_and_present_ones_typed() {
        let s = ServiceInfo {
            name: "web".into(),
            state: "backoff".into(),
            supervisor_pid: 41,
            since_unix: 1700000000,
            restarts: 2,
            last_exit: Some("exited with status 3".into()),
            next_delay_ms: Some(200),
            delays_ms: vec![50, 100],
            status: "warming \"up\"".into(),
            ..ServiceInfo::default()
        };
        assert_eq!(
            service(&s),
            r#"{"name":"web","state":"backoff","pid":null,"supervisor_pid":41,"since_unix":1700000000,"restarts":2,"last_exit":"exited with status 3","next_delay_ms":200,"delays_ms":[50,100],"status":"warming \"up\"","cpu_ms":null,"rss_bytes":null,"log_file":null,"group":null,"health":null,"ready":false,"containment":null,"tree_processes":null,"tree_memory_bytes":null,"tree_cpu_ms":null,"log_lines_dropped":null,"log_error":null,"sockets":[],"fd_store":null}"#
        );
    }

    #[test]
    fn a_list_is_an_array_even_when_empty() {
        assert_eq!(services(&[]), "[]");
        let one = ServiceInfo {
            name: "a".into(),
            ..ServiceInfo::default()
        };
        let text = services(&[one.clone(), one]);
        assert!(text.starts_with("[\n  {\"name\":\"a\""), "{text}");
        assert_eq!(text.matches("\"name\"").count(), 2);
        assert!(text.ends_with("}\n]"), "{text}");
    }
}
