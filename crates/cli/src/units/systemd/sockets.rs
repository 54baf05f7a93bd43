//! The `.socket` units of a service with `socket` keys: systemd then holds the sockets, as
//! the daemonic supervisor does, and passes them to the service by the same protocol.
//!
//! systemd names every descriptor of one `.socket` unit with its one
//! `FileDescriptorName=`, so each socket of the service is a unit of its own: `NAME.socket`
//! for a service with one socket, `NAME-SOCKET.socket` each for several. The service lists
//! them in `Sockets=` and `Requires=`/`After=` them, so starting the service starts its
//! sockets; each socket is `WantedBy=sockets.target` and names the service in `Service=`,
//! so a connection to an enabled socket starts the service (systemd's `Accept=no`).
//!
//! The mapping: `tcp:HOST:PORT` → `ListenStream=HOST:PORT`, without a HOST
//! `ListenStream=PORT` (every address, dual-stack as daemonic); `udp:` →
//! `ListenDatagram=`; `unix:PATH` → `ListenStream=PATH` with `SocketMode=` (and
//! `SocketUser=`/`SocketGroup=` for `owner`); `backlog` → `Backlog=`; `reuseport` →
//! `ReusePort=yes`; `ipv6-only` → `BindIPv6Only=ipv6-only`; the service's
//! `fd-store-max` → `FileDescriptorStoreMax=` in the service. A service that runs
//! `daemonic run` (see the module docs of `units`) gets the same sockets from systemd:
//! the supervisor takes an inherited socket of a `--socket`'s name instead of binding it
//! again (`crate::sockets::bind`).

use std::fmt::Write as _;

use super::unit_file::{UnitFile, plain};
use super::{generated, unit_name};
use crate::service::systemd::Section;
use crate::sockets::{Address, SocketSpec};

/// The file name of the unit of socket `spec` of service `service` (`specs` all of them).
pub fn socket_unit_name(service: &str, spec: &SocketSpec, specs: &[SocketSpec]) -> String {
    if specs.len() == 1 {
        format!("{service}.socket")
    } else {
        format!("{service}-{}.socket", spec.name)
    }
}

/// What the service unit says about its sockets.
pub fn service_lines(
    u: &mut UnitFile,
    service: &str,
    specs: &[SocketSpec],
    fd_store_max: Option<u32>,
) {
    if !specs.is_empty() {
        let names: Vec<String> = specs
            .iter()
            .map(|s| socket_unit_name(service, s, specs))
            .collect();
        for n in &names {
            u.add(Section::Unit, "Requires", n.clone());
            u.add(Section::Unit, "After", n.clone());
        }
        u.add(Section::Service, "Sockets", names.join(" "));
    }
    if let Some(n) = fd_store_max {
        u.add(Section::Service, "FileDescriptorStoreMax", n.to_string());
    }
}

/// The text of the `.socket` unit of `spec`.
pub fn socket_unit(service: &str, spec: &SocketSpec, config: &std::path::Path) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {} from {} (socket {} of service {service}).",
        generated(),
        config.display(),
        spec.name
    );
    let _ = writeln!(
        out,
        "\n[Unit]\nDescription={}",
        plain(&format!("{service}: socket {} (daemonic)", spec.name))
    );
    out.push_str("\n[Socket]\n");
    match &spec.address {
        Address::Tcp(a) | Address::Udp(a) => {
            let key = if spec.kind() == "tcp" {
                "ListenStream"
            } else {
                "ListenDatagram"
            };
            let at = if spec.any_host {
                a.port().to_string()
            } else {
                a.to_string()
            };
            let _ = writeln!(out, "{key}={at}");
            if spec.reuseport {
                out.push_str("ReusePort=yes\n");
            }
            if a.is_ipv6() {
                let only = if spec.ipv6_only { "ipv6-only" } else { "both" };
                let _ = writeln!(out, "BindIPv6Only={only}");
            }
        }
        Address::Unix(path) => {
            let _ = writeln!(out, "ListenStream={}", plain(&path.display().to_string()));
            let _ = writeln!(out, "SocketMode={:04o}", spec.mode);
            if let Some(owner) = &spec.owner {
                let (user, group) = match owner.split_once(':') {
                    Some((u, g)) => (u, Some(g)),
                    None => (owner.as_str(), None),
                };
                let _ = writeln!(out, "SocketUser={}", plain(user));
                if let Some(g) = group {
                    let _ = writeln!(out, "SocketGroup={}", plain(g));
                }
            }
        }
    }
    if spec.kind() != "udp" {
        let _ = writeln!(out, "Backlog={}", spec.backlog);
    }
    let _ = writeln!(out, "FileDescriptorName={}", spec.name);
    let _ = writeln!(out, "Service={}", unit_name(service));
    out.push_str("\n[Install]\nWantedBy=sockets.target\n");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(text: &str) -> SocketSpec {
        SocketSpec::parse(text).unwrap()
    }

    #[test]
    fn each_socket_maps_to_its_directives() {
        let config = std::path::Path::new("/srv/app/daemonic.toml");
        let tcp = socket_unit(
            "web",
            &spec("http=tcp:127.0.0.1:8080,backlog=64,reuseport"),
            config,
        );
        assert!(tcp.starts_with(crate::units::MARKER), "{tcp}");
        assert!(tcp.contains("\nListenStream=127.0.0.1:8080\nReusePort=yes\nBacklog=64\nFileDescriptorName=http\nService=web.service\n"), "{tcp}");
        assert!(tcp.ends_with("[Install]\nWantedBy=sockets.target\n"));
        let any = socket_unit("web", &spec("http=tcp:80"), config);
        assert!(
            any.contains("\nListenStream=80\nBindIPv6Only=both\n"),
            "{any}"
        );
        let v6 = socket_unit("dns", &spec("dns=udp:[::1]:53,ipv6-only"), config);
        assert!(
            v6.contains(
                "\nListenDatagram=[::1]:53\nBindIPv6Only=ipv6-only\nFileDescriptorName=dns\n"
            ),
            "{v6}"
        );
        let unix = socket_unit(
            "api",
            &spec("api=unix:/run/api/100%.sock,mode=0660,owner=www:adm"),
            config,
        );
        assert!(unix.contains("\nListenStream=/run/api/100%%.sock\nSocketMode=0660\nSocketUser=www\nSocketGroup=adm\n"), "{unix}");
    }

    #[test]
    fn one_socket_is_the_services_pair_several_are_named_each() {
        let one = [spec("http=tcp:80")];
        assert_eq!(socket_unit_name("web", &one[0], &one), "web.socket");
        let two = [spec("http=tcp:80"), spec("admin=unix:/run/a.sock")];
        assert_eq!(socket_unit_name("web", &two[1], &two), "web-admin.socket");
        let mut u = UnitFile::default();
        service_lines(&mut u, "web", &two, Some(8));
        assert_eq!(
            u.get(Section::Service, "Sockets"),
            ["web-http.socket web-admin.socket"]
        );
        assert_eq!(
            u.get(Section::Unit, "Requires"),
            ["web-http.socket", "web-admin.socket"]
        );
        assert_eq!(u.get(Section::Service, "FileDescriptorStoreMax"), ["8"]);
    }
}
