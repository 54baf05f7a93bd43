//! Service-manager definitions of a configured service, and their install: launchd plists
//! ([`launchd`]).
pub mod launchd;
