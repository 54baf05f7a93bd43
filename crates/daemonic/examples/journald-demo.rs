//! Logs three events to journald through `daemonic::logging` and exits: a line with
//! structured fields, a multi-line message, and one too large for a datagram (sent
//! through a sealed memfd). The systemd end-to-end test reads them back with journalctl.

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let guard = daemonic::logging::Logging::new("journald-demo")
        .context("environment", "e2e")
        .journald()
        .init()?;
    tracing::info!(request_id = 42, "hello from daemonic");
    tracing::warn!("first line\nsecond line");
    tracing::error!(size = 300_000, "{}", "x".repeat(300_000));
    guard.flush()?;
    if let (failed @ 1.., last) = guard.send_errors() {
        return Err(format!("{failed} journald sends failed; last: {last:?}").into());
    }
    Ok(())
}
