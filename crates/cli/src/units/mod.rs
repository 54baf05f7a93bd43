//! Service-manager definitions of a configured service, and their install: launchd plists
//! ([`launchd`]) and Windows services ([`windows`]; its service and registration code is
//! Windows-only).
pub mod launchd;
pub mod windows;
