//! Receiving the fd store's descriptors: a notify datagram of a unit's main process with
//! `FDSTORE=1` and `SCM_RIGHTS` descriptors goes to the unit's store (the store's rules are
//! in `crate::sockets::fdstore`). Datagrams of other senders never get here: they are
//! dropped, descriptors and all, before they are parsed (`super::notify`).

use std::os::fd::OwnedFd;

use daemonic::systemd::listen::Message;

use super::Unit;

impl Unit {
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
        let applied = self.fd_store_mut().apply(messages, fds);
        if applied.refused > 0 && self.fd_store_mut().note_refusals_of(generation) {
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
