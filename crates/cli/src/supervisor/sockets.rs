//! A unit's sockets (`crate::sockets`: bound in `Unit::new`, passed at every spawn) and
//! its fd store: a notify datagram of a unit's main process with `FDSTORE=1` and
//! `SCM_RIGHTS` descriptors goes to the unit's store (the store's rules are in
//! `crate::sockets::fdstore`). Datagrams of other senders never get here: they are
//! dropped, descriptors and all, before they are parsed (`super::notify`).

use std::os::fd::OwnedFd;
use std::sync::Arc;

use anyhow::Result;
use daemonic::Signal;
use daemonic::systemd::listen::Message;

use super::Unit;
use super::unit::Shared;
use crate::service::sockets::Activation;
use crate::sockets::Bound;
use crate::sockets::fdstore::FdStore;

impl Unit {
    /// The sockets held for the service (`--socket`).
    pub fn sockets(&self) -> &[Arc<Bound>] {
        &self.sockets
    }

    /// The service's fd store (`FDSTORE=1`).
    pub fn fd_store(&self) -> &FdStore {
        &self.fd_store
    }

    /// Whether the child that just became ready may count as ready: with
    /// `--socket-activation required`, only if it took its sockets (see
    /// `crate::sockets::taken`); if not, says why (to the launcher too) and kills it —
    /// the exit that follows is the restart policy's.
    pub(super) fn took_its_sockets(&self, cx: &Shared<'_>) -> Result<bool> {
        if self.service.socket_activation != Activation::Required {
            return Ok(true);
        }
        let Some(pid) = self.pid() else {
            return Ok(true);
        };
        let Some(why) = crate::sockets::taken::not_taken(pid.as_raw(), &self.sockets) else {
            return Ok(true);
        };
        self.note(&why);
        if cx.single {
            let _ = cx.outer.fail(&why, None);
        }
        if let Some(c) = self.child() {
            c.signal_group(Signal::SIGKILL)?;
        }
        Ok(false)
    }

    /// Applies a datagram's `FDSTORE=1`/`FDSTOREREMOVE=1`; what is not stored is closed,
    /// and said once per start of the program.
    pub fn store_fds(&mut self, messages: &[Message], fds: Vec<OwnedFd>) {
        let asked = messages
            .iter()
            .any(|m| matches!(m, Message::FdStore | Message::FdStoreRemove));
        if fds.is_empty() && !asked {
            return;
        }
        let max = self.service.fd_store_max;
        let generation = self.generation();
        let applied = self.fd_store.apply(messages, fds);
        if applied.refused > 0 && self.fd_store.note_refusals_of(generation) {
            let why = if max == 0 {
                "the fd store is off (--fd-store-max 0)".to_string()
            } else if !messages.iter().any(|m| matches!(m, Message::FdStore)) {
                "sent without FDSTORE=1".to_string()
            } else {
                format!("the store is full (--fd-store-max {max}) or the FDNAME is invalid")
            };
            self.note(&format!(
                "closed {} descriptor{} of a notify datagram: {why} (said once per start)",
                applied.refused,
                if applied.refused == 1 { "" } else { "s" }
            ));
        }
    }
}
