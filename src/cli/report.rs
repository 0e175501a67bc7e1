//! `tandem report attribution|quality`: read from the state file (read-only, so it is safe while
//! the daemon runs), computed by [`crate::outcomes::report`], printed as table, csv or json.

use anyhow::Context;

use super::ReportArgs;
use crate::{
    attribution::{Model, ModelParams},
    config::{Config, StateLocation},
    outcomes::report::{ReportPeriod, attribution_report, quality_report},
    store::{
        Store,
        sqlite::{SqliteStore, now_ms},
    },
};

/// Which report.
pub enum Which {
    Attribution(Option<Model>),
    Quality,
}

pub async fn run(config: &Config, which: Which, args: ReportArgs) -> anyhow::Result<i32> {
    let now = now_ms();
    let period = ReportPeriod::parse(args.since, args.until, now).map_err(anyhow::Error::msg)?;
    let StateLocation::Sqlite(path) = &config.daemon.state;
    let store = SqliteStore::open_read_only(path)
        .with_context(|| format!("opening the state file {}", path.display()))?;
    let inputs = store.attribution_inputs().await?;
    let text = match which {
        Which::Attribution(model) => {
            let (default_model, params, lookback) = match &config.attribution {
                Some(a) => (a.model, a.params(), a.lookback.0),
                None => (
                    Model::PositionBased,
                    ModelParams::default(),
                    std::time::Duration::from_secs(90 * 86_400),
                ),
            };
            let model = model.unwrap_or(default_model);
            attribution_report(&inputs, model, &params, lookback, &period, args.by, now)
                .render(args.format)
        }
        Which::Quality => quality_report(&inputs, &period, args.by).render(args.format),
    };
    print!("{text}");
    Ok(0)
}
