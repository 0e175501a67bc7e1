//! Lead quality, the feedback sales owes marketing: per source / medium / campaign, how many
//! leads came in and how far they got.
//!
//! The unit is the person, counted once, under the group of their **first touchpoint** (the
//! CRM's "original source"): a person whose first touch came from `google / cpc / spring` is one
//! `google / cpc / spring` lead, whatever they clicked later (the attribution report is where
//! later touchpoints get credit).

use std::collections::{BTreeMap, BTreeSet};

use serde::{Serialize, Serializer};

use super::models::DAY_MS;
use super::report::{Format, csv_text, key_cells, key_headers, table, to_json};
use super::touches::{Deal, DealStatus, Period, Touch, in_capture_order};
use super::{Dimension, GroupKey};

/// One person as the quality report needs them.
#[derive(Clone, Debug, PartialEq)]
pub struct PersonRecord {
    pub person_id: String,
    /// All the person's touchpoints (any order); a person without any is ignored.
    pub touches: Vec<Touch>,
    /// The person reached the `qualified` milestone (or a later one) in the CRM's stage history.
    pub qualified: bool,
    /// The deals linked to the person, with their current status.
    pub deals: Vec<Deal>,
}

/// Lead-quality figures for one group.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityRow {
    /// Always set.
    pub source: Option<String>,
    /// `None`: not grouped by medium, or the first touchpoints had none.
    pub medium: Option<String>,
    /// `None`: not grouped by campaign, or the first touchpoints had none.
    pub campaign: Option<String>,
    /// People whose first touchpoint is in this group (and in the period).
    pub leads: u64,
    /// Of those, people that reached `qualified`: the `qualified` flag, or any deal at all (a
    /// deal is the `opportunity` milestone, and a later milestone implies the earlier ones).
    pub qualified: u64,
    /// People with at least one won deal.
    pub won: u64,
    /// People with at least one lost deal and no won deal.
    pub lost: u64,
    /// `won / (won + lost)`; `None` (JSON `null`) while neither happened. JSON: decimal string,
    /// 4 places.
    #[serde(serialize_with = "opt_decimal4")]
    pub win_rate: Option<f64>,
    /// Amounts of the won deals of these people per currency (minor units; a deal shared by two
    /// people of the group counts once).
    pub won_revenue_minor: BTreeMap<String, i128>,
    /// Median over the won people of the days from their first touchpoint to the close of their
    /// first won deal closed at or after it; `None` when there is none. JSON: decimal string, 1
    /// place.
    #[serde(serialize_with = "opt_decimal1")]
    pub median_days_to_won: Option<f64>,
}

/// Computes the quality rows over the people whose first touchpoint was captured in `period`,
/// grouped by `by`, sorted by leads (most first), then key (missing values first, then text).
pub fn quality_rows(people: &[PersonRecord], by: Dimension, period: &Period) -> Vec<QualityRow> {
    #[derive(Default)]
    struct Acc {
        leads: BTreeSet<String>,
        qualified: u64,
        won: u64,
        lost: u64,
        won_deals: BTreeMap<String, (String, i64)>,
        days: Vec<f64>,
    }
    let mut groups: BTreeMap<GroupKey, Acc> = BTreeMap::new();
    for p in people {
        let Some(first) = in_capture_order(p.touches.iter().cloned())
            .into_iter()
            .next()
        else {
            continue;
        };
        if !period.contains(first.captured_at_ms) {
            continue;
        }
        let acc = groups.entry(by.key(&first)).or_default();
        // A person listed twice counts once.
        if !acc.leads.insert(p.person_id.clone()) {
            continue;
        }
        let won: Vec<&Deal> = p
            .deals
            .iter()
            .filter(|d| d.status == DealStatus::Won)
            .collect();
        let any_lost = p.deals.iter().any(|d| d.status == DealStatus::Lost);
        if p.qualified || !p.deals.is_empty() {
            acc.qualified += 1;
        }
        if !won.is_empty() {
            acc.won += 1;
        } else if any_lost {
            acc.lost += 1;
        }
        for d in &won {
            acc.won_deals
                .insert(d.id.clone(), (d.currency.clone(), d.amount_minor));
        }
        let first_won = won
            .iter()
            .filter_map(|d| d.closed_at_ms)
            .filter(|&t| t >= first.captured_at_ms)
            .min();
        if let Some(t) = first_won {
            let ms = i128::from(t) - i128::from(first.captured_at_ms);
            acc.days.push(ms as f64 / DAY_MS as f64);
        }
    }
    let mut rows: Vec<(GroupKey, QualityRow)> = groups
        .into_iter()
        .map(|(key, mut acc)| {
            let mut revenue: BTreeMap<String, i128> = BTreeMap::new();
            for (currency, amount) in acc.won_deals.into_values() {
                *revenue.entry(currency).or_default() += i128::from(amount);
            }
            let decided = acc.won + acc.lost;
            let row = QualityRow {
                source: key.source.clone(),
                medium: key.medium.clone().flatten(),
                campaign: key.campaign.clone().flatten(),
                leads: acc.leads.len() as u64,
                qualified: acc.qualified,
                won: acc.won,
                lost: acc.lost,
                win_rate: (decided > 0).then(|| acc.won as f64 / decided as f64),
                won_revenue_minor: revenue,
                median_days_to_won: median(&mut acc.days),
            };
            (key, row)
        })
        .collect();
    rows.sort_by(|(ka, a), (kb, b)| b.leads.cmp(&a.leads).then_with(|| ka.cmp(kb)));
    rows.into_iter().map(|(_, r)| r).collect()
}

/// The middle value, or the mean of the two middle values for an even count.
fn median(values: &mut [f64]) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let n = values.len();
    match n {
        0 => None,
        _ if n % 2 == 1 => Some(values[n / 2]),
        _ => Some((values[n / 2 - 1] + values[n / 2]) / 2.0),
    }
}

/// The lead-quality report (`tandem report quality`): `{"since", "until", "rows": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct QualityReport {
    pub since: Option<String>,
    pub until: Option<String>,
    pub rows: Vec<QualityRow>,
    #[serde(skip)]
    pub by: Dimension,
}

impl QualityReport {
    /// `since` / `until` are the labels as the user gave them; `period` the same bounds in ms.
    pub fn new(
        since: Option<String>,
        until: Option<String>,
        by: Dimension,
        period: &Period,
        people: &[PersonRecord],
    ) -> Self {
        QualityReport {
            since,
            until,
            rows: quality_rows(people, by, period),
            by,
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => to_json(self),
            Format::Csv => self.to_csv(),
            Format::Table => self.to_table(),
        }
    }

    /// Header `source,medium,campaign,leads,qualified,won,lost,win_rate,won_revenue_minor,
    /// median_days_to_won`; revenue as `EUR 1200;USD 500`; undefined values empty.
    pub fn to_csv(&self) -> String {
        let mut out = String::from(
            "source,medium,campaign,leads,qualified,won,lost,win_rate,won_revenue_minor,median_days_to_won\n",
        );
        for r in &self.rows {
            let line = [
                csv_text(r.source.as_deref()),
                csv_text(r.medium.as_deref()),
                csv_text(r.campaign.as_deref()),
                r.leads.to_string(),
                r.qualified.to_string(),
                r.won.to_string(),
                r.lost.to_string(),
                r.win_rate.map(|x| format!("{x:.4}")).unwrap_or_default(),
                csv_text(Some(&revenue_cell(&r.won_revenue_minor, ";"))),
                r.median_days_to_won
                    .map(|x| format!("{x:.1}"))
                    .unwrap_or_default(),
            ];
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    /// Aligned columns: only the grouped columns, missing values as `(none)`, undefined `-`.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "lead quality: since {}, until {}, by {} (people by first touchpoint)\n\n",
            self.since.as_deref().unwrap_or("-"),
            self.until.as_deref().unwrap_or("-"),
            self.by
        );
        let mut header = key_headers(self.by);
        let first_numeric = header.len();
        header.extend([
            "leads",
            "qualified",
            "won",
            "lost",
            "win_rate",
            "won_revenue_minor",
            "median_days_to_won",
        ]);
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = key_cells(self.by, &r.source, &r.medium, &r.campaign);
                cells.extend([
                    r.leads.to_string(),
                    r.qualified.to_string(),
                    r.won.to_string(),
                    r.lost.to_string(),
                    r.win_rate.map_or_else(|| "-".into(), |x| format!("{x:.4}")),
                    match revenue_cell(&r.won_revenue_minor, "; ") {
                        s if s.is_empty() => "-".into(),
                        s => s,
                    },
                    r.median_days_to_won
                        .map_or_else(|| "-".into(), |x| format!("{x:.1}")),
                ]);
                cells
            })
            .collect();
        if body.is_empty() {
            out.push_str("(no leads)\n");
        } else {
            out.push_str(&table(&header, &body, first_numeric));
        }
        out
    }
}

fn revenue_cell(revenue: &BTreeMap<String, i128>, sep: &str) -> String {
    revenue
        .iter()
        .map(|(c, a)| format!("{c} {a}"))
        .collect::<Vec<_>>()
        .join(sep)
}

fn opt_decimal4<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match x {
        Some(x) => s.serialize_str(&format!("{x:.4}")),
        None => s.serialize_none(),
    }
}

fn opt_decimal1<S: Serializer>(x: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
    match x {
        Some(x) => s.serialize_str(&format!("{x:.1}")),
        None => s.serialize_none(),
    }
}
