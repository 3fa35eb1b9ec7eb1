//! Logging setup for node processes: `tracing` events to stderr, which the harness captures.

/// Send `tracing` output to stderr with timestamps and the node id on every line. The level
/// comes from `RUST_LOG` (default `info`). Does nothing if a subscriber is already installed.
pub fn init_node_logging(node_id: &str) {
    use tracing_subscriber::EnvFilter;
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let result = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .with_target(false)
        .try_init();
    if result.is_ok() {
        tracing::info!(node = node_id, "logging started");
    }
}
