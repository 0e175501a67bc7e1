//! Process-wide observability: the tracing subscriber (text or JSON lines) and the Prometheus
//! recorder. Both are global, so they are installed once per process even when tests start many
//! daemons in one process.

use std::sync::OnceLock;

use metrics_exporter_prometheus::{Matcher, PrometheusBuilder, PrometheusHandle};

use crate::config::LogFormat;

static METRICS: OnceLock<PrometheusHandle> = OnceLock::new();
/// How often histogram samples are folded into their buckets.
const UPKEEP_EVERY: std::time::Duration = std::time::Duration::from_secs(5);

/// The process's Prometheus handle, installing the recorder on first use.
pub fn metrics() -> PrometheusHandle {
    METRICS
        .get_or_init(|| {
            const SECONDS: &[f64] = &[
                0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0,
                60.0, 300.0, 1800.0, 3600.0,
            ];
            const SIZES: &[f64] = &[
                1.0, 2.0, 5.0, 10.0, 20.0, 50.0, 100.0, 200.0, 500.0, 1000.0, 2000.0,
            ];
            let builder = PrometheusBuilder::new()
                .set_buckets_for_metric(Matcher::Suffix("_seconds".into()), SECONDS)
                .and_then(|b| {
                    b.set_buckets_for_metric(Matcher::Full("tandem_batch_size".into()), SIZES)
                });
            let recorder = match builder {
                Ok(b) => b.build_recorder(),
                Err(_) => PrometheusBuilder::new().build_recorder(),
            };
            let handle = recorder.handle();
            // Fails only if another recorder was installed first (an embedding program's own);
            // then /metrics shows what this handle sees, which is nothing, rather than crashing.
            let _ = metrics::set_global_recorder(recorder);
            // Histogram samples wait in the recorder until a scrape or an upkeep folds them into
            // buckets: without this, a daemon nobody scrapes grows by every sample it records
            // (~24 bytes a lead; the 600 s soak showed it).
            let upkeep = handle.clone();
            let _ = std::thread::Builder::new()
                .name("tandem-metrics".into())
                .spawn(move || {
                    loop {
                        std::thread::sleep(UPKEEP_EVERY);
                        upkeep.run_upkeep();
                    }
                });
            handle
        })
        .clone()
}

/// Logs to stderr (journald picks it up). `RUST_LOG` overrides the default `info` level.
pub fn init_logging(format: LogFormat) {
    use tracing_subscriber::{EnvFilter, fmt};
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        // Colour codes are noise in the journal and in log files.
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .with_target(false);
    let _ = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
}
