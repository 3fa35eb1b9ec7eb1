//! Running a node as a process: logging to stderr, a runtime of its own, and a clean exit on
//! SIGTERM or SIGINT. Shared by every reference node's `run`.

use std::future::Future;
use std::pin::Pin;

/// Resolves when the process receives SIGTERM or SIGINT.
pub type Shutdown = Pin<Box<dyn Future<Output = ()> + Send>>;

/// Set up logging for `node_id`, build a 2-worker runtime, and run `serve(shutdown)` on it,
/// where `shutdown` resolves on SIGTERM or SIGINT. Blocking; returns what `serve` returns, or
/// the error building the runtime.
pub fn run_until_signal<T, Fut>(
    node_id: &str,
    serve: impl FnOnce(Shutdown) -> Fut,
) -> std::io::Result<T>
where
    Fut: Future<Output = T>,
{
    crate::init_node_logging(node_id);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    Ok(runtime.block_on(async move {
        let shutdown: Shutdown = Box::pin(async {
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(mut term) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = tokio::signal::ctrl_c() => {}
                    }
                }
                Err(_) => {
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
            tracing::info!("shutting down on signal");
        });
        serve(shutdown).await
    }))
}
