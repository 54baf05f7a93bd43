//! Integration tests of `daemonic::logging`: the rotating writer under load, retention,
//! failures, the real `logrotate` against a running daemon, and the journald/syslog wire
//! formats against sockets bound in a temp dir.

mod logging {
    pub mod destinations;
    pub mod logrotate;
    pub mod support;
    pub mod writer;
}
