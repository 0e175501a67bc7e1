//! The reports over what the store holds: the attribution of won deals and the lead quality per
//! source / medium / campaign, computed by the pure [`crate::attribution`] layer from
//! [`AttributionInputs`].

use std::collections::BTreeMap;
use std::time::Duration;

use tandem_connectors::writeback::Milestone;

use crate::attribution::{
    AttributionReport, DealCredit, Dimension, Model, ModelParams, Period, PersonRecord,
    QualityReport, attribute,
};
use crate::store::AttributionInputs;

/// The period as given on the command line (labels) and in ms.
#[derive(Debug, Clone, Default)]
pub struct ReportPeriod {
    pub since: Option<String>,
    pub until: Option<String>,
    pub period: Period,
}

/// Parses `--since` / `--until`: an RFC 3339 time, a date (`2026-11-01`, midnight UTC), or a
/// duration back from `now_ms` (`30d`).
pub fn parse_bound(s: &str, now_ms: i64) -> Result<i64, String> {
    if let Ok(ts) = s.parse::<jiff::Timestamp>() {
        return Ok(ts.as_millisecond());
    }
    if let Ok(date) = s.parse::<jiff::civil::Date>()
        && let Ok(ts) = date.to_zoned(jiff::tz::TimeZone::UTC)
    {
        return Ok(ts.timestamp().as_millisecond());
    }
    match s.parse::<tandem_connectors::units::HumanDuration>() {
        Ok(d) => Ok(now_ms.saturating_sub(i64::try_from(d.0.as_millis()).unwrap_or(i64::MAX))),
        Err(_) => Err(format!(
            "{s:?} is not a time: write an RFC 3339 time (2026-11-01T00:00:00Z), a date (2026-11-01) or a duration back from now (30d)"
        )),
    }
}

impl ReportPeriod {
    pub fn parse(
        since: Option<String>,
        until: Option<String>,
        now_ms: i64,
    ) -> Result<Self, String> {
        let since_ms = since
            .as_deref()
            .map(|s| parse_bound(s, now_ms))
            .transpose()?;
        let until_ms = until
            .as_deref()
            .map(|s| parse_bound(s, now_ms))
            .transpose()?;
        if let (Some(a), Some(b)) = (since_ms, until_ms)
            && a >= b
        {
            return Err("--since must be before --until".into());
        }
        Ok(ReportPeriod {
            since,
            until,
            period: Period { since_ms, until_ms },
        })
    }
}

/// Credits every deal won in the period (by close time) to its people's touchpoints; won deals
/// without any touchpoint in their lookback window are reported as unattributed.
pub fn attribution_report(
    inputs: &AttributionInputs,
    model: Model,
    params: &ModelParams,
    lookback: Duration,
    period: &ReportPeriod,
    by: Dimension,
    now_ms: i64,
) -> AttributionReport {
    let no_touches = Vec::new();
    let credits: Vec<DealCredit> = inputs
        .deals
        .iter()
        .filter(|d| d.deal.won_in(&period.period))
        .map(|d| {
            let touches: Vec<_> = d
                .people
                .iter()
                .flat_map(|p| inputs.touches.get(p).unwrap_or(&no_touches).iter().cloned())
                .collect();
            attribute(model, params, &d.deal, &touches, lookback, now_ms)
        })
        .collect();
    AttributionReport::new(
        model,
        period.since.clone(),
        period.until.clone(),
        by,
        &credits,
    )
}

/// Lead quality: every person with a touchpoint, their deals, and whether any of their deals
/// reached `qualified`.
pub fn quality_report(
    inputs: &AttributionInputs,
    period: &ReportPeriod,
    by: Dimension,
) -> QualityReport {
    let mut deals_of: BTreeMap<i64, Vec<usize>> = BTreeMap::new();
    for (i, d) in inputs.deals.iter().enumerate() {
        for p in &d.people {
            deals_of.entry(*p).or_default().push(i);
        }
    }
    let people: Vec<PersonRecord> = inputs
        .touches
        .iter()
        .map(|(person, touches)| {
            let deals = deals_of.get(person).map(Vec::as_slice).unwrap_or(&[]);
            PersonRecord {
                person_id: person.to_string(),
                touches: touches.clone(),
                qualified: deals.iter().any(|i| {
                    let reached = &inputs.deals[*i].reached;
                    reached.contains_key(&Milestone::Qualified)
                        || reached.contains_key(&Milestone::Won)
                }),
                deals: deals
                    .iter()
                    .map(|i| inputs.deals[*i].deal.clone())
                    .collect(),
            }
        })
        .collect();
    QualityReport::new(
        period.since.clone(),
        period.until.clone(),
        by,
        &period.period,
        &people,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bounds_read_as_times_dates_or_durations_back() {
        let now = 1_767_312_000_000; // 2026-01-02T00:00:00Z
        assert_eq!(
            parse_bound("2026-01-01T00:00:00Z", now),
            Ok(1_767_225_600_000)
        );
        assert_eq!(parse_bound("2026-01-01", now), Ok(1_767_225_600_000));
        assert_eq!(parse_bound("1d", now), Ok(1_767_225_600_000));
        assert!(
            parse_bound("yesterday", now)
                .unwrap_err()
                .contains("RFC 3339")
        );
        assert!(ReportPeriod::parse(Some("1d".into()), Some("2d".into()), now).is_err());
    }
}
