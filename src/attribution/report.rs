//! The attribution report: deal credits grouped by a [`Dimension`] and currency, and its three
//! formats (table, csv, json). Formatting only; the numbers come from [`super::attribute`].

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::str::FromStr;

use serde::{Serialize, Serializer};

use super::{DealCredit, Dimension, GroupKey, Model};

/// Output format of a report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash, serde::Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Format {
    #[default]
    Table,
    Csv,
    Json,
}

impl FromStr for Format {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "table" => Ok(Format::Table),
            "csv" => Ok(Format::Csv),
            "json" => Ok(Format::Json),
            _ => Err(format!(
                "unknown format {s:?}; expected one of table, csv, json"
            )),
        }
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Format::Table => "table",
            Format::Csv => "csv",
            Format::Json => "json",
        })
    }
}

/// One group's share of the attributed deals in one currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttributionRow {
    /// Always set: every grouping includes the source.
    pub source: Option<String>,
    /// `None`: not grouped by medium, or the touchpoints had no medium.
    pub medium: Option<String>,
    /// `None`: not grouped by campaign, or the touchpoints had no campaign.
    pub campaign: Option<String>,
    pub currency: String,
    /// Sum of the credited parts of the deal amounts (exact minor units).
    pub revenue_minor: i128,
    /// Fractional deal count: the sum of the model weights (JSON: decimal string, 4 places).
    #[serde(serialize_with = "decimal4")]
    pub deals: f64,
    /// Distinct touchpoints (leads) in the group that got a positive weight from these deals.
    pub leads: u64,
}

/// Deals without any touchpoint in their window, per currency.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct UnattributedRow {
    pub currency: String,
    pub revenue_minor: i128,
    /// Whole deals, written like `AttributionRow::deals` (JSON: decimal string, 4 places).
    #[serde(serialize_with = "decimal4")]
    pub deals: f64,
}

/// Groups deal credits by `by` and currency. Rows are sorted by currency, then revenue
/// (largest first), then key (missing values first, then by text); unattributed rows by currency.
/// Credits with weight 0 (e.g. the middle touchpoints under `first_touch`) make no row.
pub fn attribution_rows(
    credits: &[DealCredit],
    by: Dimension,
) -> (Vec<AttributionRow>, Vec<UnattributedRow>) {
    #[derive(Default)]
    struct Acc {
        revenue: i128,
        deals: f64,
        leads: BTreeSet<String>,
    }
    let mut deals: Vec<&DealCredit> = credits.iter().collect();
    deals.sort_by(|a, b| a.deal.id.cmp(&b.deal.id));
    let mut groups: BTreeMap<(GroupKey, String), Acc> = BTreeMap::new();
    let mut unattributed: BTreeMap<String, (i128, f64)> = BTreeMap::new();
    for dc in deals {
        if dc.is_unattributed() {
            let e = unattributed.entry(dc.deal.currency.clone()).or_default();
            e.0 += i128::from(dc.deal.amount_minor);
            e.1 += 1.0;
            continue;
        }
        for c in dc.credits.iter().filter(|c| c.weight > 0.0) {
            let acc = groups
                .entry((by.key(&c.touch), dc.deal.currency.clone()))
                .or_default();
            acc.revenue += i128::from(c.amount_minor);
            acc.deals += c.weight;
            acc.leads.insert(c.touch.id.clone());
        }
    }
    let mut rows: Vec<(GroupKey, AttributionRow)> = groups
        .into_iter()
        .map(|((key, currency), acc)| {
            let row = AttributionRow {
                source: key.source.clone(),
                medium: key.medium.clone().flatten(),
                campaign: key.campaign.clone().flatten(),
                currency,
                revenue_minor: acc.revenue,
                deals: acc.deals,
                leads: acc.leads.len() as u64,
            };
            (key, row)
        })
        .collect();
    rows.sort_by(|(ka, a), (kb, b)| {
        a.currency
            .cmp(&b.currency)
            .then(b.revenue_minor.cmp(&a.revenue_minor))
            .then_with(|| ka.cmp(kb))
    });
    let unattributed = unattributed
        .into_iter()
        .map(|(currency, (revenue_minor, deals))| UnattributedRow {
            currency,
            revenue_minor,
            deals,
        })
        .collect();
    (rows.into_iter().map(|(_, r)| r).collect(), unattributed)
}

/// The attribution report (`tandem report attribution`). Serialises to exactly
/// `{"model", "since", "until", "rows": [...], "unattributed": [...]}`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct AttributionReport {
    pub model: Model,
    /// The `--since` bound as the user gave it (`null`: unbounded).
    pub since: Option<String>,
    /// The `--until` bound as the user gave it (`null`: unbounded).
    pub until: Option<String>,
    pub rows: Vec<AttributionRow>,
    pub unattributed: Vec<UnattributedRow>,
    #[serde(skip)]
    pub by: Dimension,
}

impl AttributionReport {
    /// Builds the report over `credits` (the caller picks the deals: won deals closed in the
    /// period, see [`super::Deal::won_in`]).
    pub fn new(
        model: Model,
        since: Option<String>,
        until: Option<String>,
        by: Dimension,
        credits: &[DealCredit],
    ) -> Self {
        let (rows, unattributed) = attribution_rows(credits, by);
        AttributionReport {
            model,
            since,
            until,
            rows,
            unattributed,
            by,
        }
    }

    pub fn render(&self, format: Format) -> String {
        match format {
            Format::Json => self.to_json(),
            Format::Csv => self.to_csv(),
            Format::Table => self.to_table(),
        }
    }

    /// Pretty JSON with a trailing newline.
    pub fn to_json(&self) -> String {
        to_json(self)
    }

    /// Header `source,medium,campaign,currency,revenue_minor,deals,leads`, one line per row,
    /// then one line per unattributed currency with source `(unattributed)` and leads 0.
    pub fn to_csv(&self) -> String {
        let mut out = String::from("source,medium,campaign,currency,revenue_minor,deals,leads\n");
        for r in &self.rows {
            let line = [
                csv_text(r.source.as_deref()),
                csv_text(r.medium.as_deref()),
                csv_text(r.campaign.as_deref()),
                csv_text(Some(&r.currency)),
                r.revenue_minor.to_string(),
                format!("{:.4}", r.deals),
                r.leads.to_string(),
            ];
            out.push_str(&line.join(","));
            out.push('\n');
        }
        for u in &self.unattributed {
            let line = [
                "(unattributed)".to_owned(),
                String::new(),
                String::new(),
                csv_text(Some(&u.currency)),
                u.revenue_minor.to_string(),
                format!("{:.4}", u.deals),
                "0".to_owned(),
            ];
            out.push_str(&line.join(","));
            out.push('\n');
        }
        out
    }

    /// Aligned columns for a terminal: only the grouped columns, missing values as `(none)`.
    pub fn to_table(&self) -> String {
        let mut out = format!(
            "attribution: model {}, since {}, until {}, by {}\n\n",
            self.model,
            self.since.as_deref().unwrap_or("-"),
            self.until.as_deref().unwrap_or("-"),
            self.by
        );
        let mut header = key_headers(self.by);
        header.extend(["currency", "revenue_minor", "deals", "leads"]);
        let body: Vec<Vec<String>> = self
            .rows
            .iter()
            .map(|r| {
                let mut cells = key_cells(self.by, &r.source, &r.medium, &r.campaign);
                cells.extend([
                    r.currency.clone(),
                    r.revenue_minor.to_string(),
                    format!("{:.4}", r.deals),
                    r.leads.to_string(),
                ]);
                cells
            })
            .collect();
        if body.is_empty() {
            out.push_str("(no attributed deals)\n");
        } else {
            out.push_str(&table(&header, &body, header.len() - 3));
        }
        if !self.unattributed.is_empty() {
            out.push_str("\nunattributed (no touchpoint within the lookback)\n");
            let body: Vec<Vec<String>> = self
                .unattributed
                .iter()
                .map(|u| {
                    vec![
                        u.currency.clone(),
                        u.revenue_minor.to_string(),
                        format!("{:.4}", u.deals),
                    ]
                })
                .collect();
            out.push_str(&table(&["currency", "revenue_minor", "deals"], &body, 1));
        }
        out
    }
}

/// Writes an `f64` as a decimal string with 4 places (`0.4` → `"0.4000"`).
pub(crate) fn decimal4<S: Serializer>(x: &f64, s: S) -> Result<S::Ok, S::Error> {
    s.serialize_str(&format!("{x:.4}"))
}

pub(crate) fn to_json<T: Serialize>(value: &T) -> String {
    // Serialising plain structs of strings and numbers cannot fail.
    let mut s = serde_json::to_string_pretty(value).unwrap_or_default();
    s.push('\n');
    s
}

/// Column titles of the grouped columns.
pub(crate) fn key_headers(by: Dimension) -> Vec<&'static str> {
    let mut h = vec!["source"];
    if by >= Dimension::Medium {
        h.push("medium");
    }
    if by >= Dimension::Campaign {
        h.push("campaign");
    }
    h
}

/// Table cells of the grouped columns; a missing value prints as `(none)`.
pub(crate) fn key_cells(
    by: Dimension,
    source: &Option<String>,
    medium: &Option<String>,
    campaign: &Option<String>,
) -> Vec<String> {
    let cell = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".to_owned());
    let mut c = vec![cell(source)];
    if by >= Dimension::Medium {
        c.push(cell(medium));
    }
    if by >= Dimension::Campaign {
        c.push(cell(campaign));
    }
    c
}

/// Left-aligned text columns up to `first_numeric`, right-aligned after; control characters
/// (terminal escapes smuggled in through UTM values) are shown as U+FFFD.
pub(crate) fn table(header: &[&str], rows: &[Vec<String>], first_numeric: usize) -> String {
    let clean = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_control() { '\u{fffd}' } else { c })
            .collect()
    };
    let header: Vec<String> = header.iter().map(|h| (*h).to_owned()).collect();
    let rows: Vec<Vec<String>> = rows
        .iter()
        .map(|r| r.iter().map(|c| clean(c)).collect())
        .collect();
    let mut widths: Vec<usize> = header.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    let mut out = String::new();
    for r in std::iter::once(&header).chain(rows.iter()) {
        let cells: Vec<String> = r
            .iter()
            .zip(&widths)
            .enumerate()
            .map(|(i, (c, &w))| {
                if i >= first_numeric {
                    format!("{c:>w$}")
                } else {
                    format!("{c:<w$}")
                }
            })
            .collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

/// A CSV text cell (RFC 4180): quoted when it holds `,` `"` CR or LF, quotes doubled; a value
/// starting with `=`, `+`, `-`, `@`, tab or CR is prefixed with `'` so spreadsheets do not run
/// it as a formula (UTM values come from the public). `None` is an empty cell.
pub(crate) fn csv_text(value: Option<&str>) -> String {
    let Some(v) = value else {
        return String::new();
    };
    let v = if v.starts_with(['=', '+', '-', '@', '\t', '\r']) {
        format!("'{v}")
    } else {
        v.to_owned()
    };
    if v.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", v.replace('"', "\"\""))
    } else {
        v
    }
}
