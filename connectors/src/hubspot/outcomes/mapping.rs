//! A deal as the CRM search returns it → an [`Outcome`] (without its people, which come from the
//! association read). HubSpot sends every property as a string: datetimes as ISO 8601
//! (`2026-05-10T16:50:41.180Z`), sometimes as epoch milliseconds, and `closedate` may be a bare
//! date (midnight UTC); amounts as decimal text; `hs_is_closed_won` / `hs_is_closed` as
//! `"true"` / `"false"`.

use crate::outcome::{DealState, Outcome, to_minor_units};

use crate::hubspot::deals_wire::DealObject;

/// What the poll asks the search for.
pub const PROPERTIES: &[&str] = &[
    "amount",
    "deal_currency_code",
    "dealstage",
    "pipeline",
    "closedate",
    "createdate",
    "hs_lastmodifieddate",
    "hs_is_closed_won",
    "hs_is_closed",
];

/// A HubSpot time value as unix ms: RFC 3339, epoch milliseconds, or a bare `YYYY-MM-DD`.
pub fn parse_ms(text: &str) -> Option<i64> {
    let text = text.trim();
    if !text.is_empty() && text.bytes().all(|b| b.is_ascii_digit()) {
        return text.parse().ok();
    }
    if let Ok(ts) = text.parse::<jiff::Timestamp>() {
        return Some(ts.as_millisecond());
    }
    let date = text.parse::<jiff::civil::Date>().ok()?;
    let ts = date.to_zoned(jiff::tz::TimeZone::UTC).ok()?.timestamp();
    Some(ts.as_millisecond())
}

/// The deal's last-modified stamp (the cursor field), falling back to `updatedAt`.
pub fn modified_ms(deal: &DealObject) -> Option<i64> {
    deal.prop("hs_lastmodifieddate")
        .and_then(parse_ms)
        .or_else(|| parse_ms(&deal.updated_at))
}

fn flag(deal: &DealObject, name: &str) -> bool {
    deal.prop(name)
        .is_some_and(|v| v.eq_ignore_ascii_case("true"))
}

/// The deal as an outcome with no contacts yet; `None` when it has no readable stamp.
pub fn outcome(deal: &DealObject, default_currency: &str) -> Option<Outcome> {
    let modified_at_ms = modified_ms(deal)?;
    let state = if flag(deal, "hs_is_closed_won") {
        DealState::Won
    } else if flag(deal, "hs_is_closed") {
        DealState::Lost
    } else {
        DealState::Open
    };
    let currency = deal
        .prop("deal_currency_code")
        .unwrap_or(default_currency)
        .to_ascii_uppercase();
    let amount_minor = deal
        .prop("amount")
        .and_then(|a| to_minor_units(a, &currency));
    let created_at_ms = deal
        .prop("createdate")
        .and_then(parse_ms)
        .or_else(|| parse_ms(&deal.created_at))
        .unwrap_or(modified_at_ms);
    // An open deal's `closedate` is the forecast, not a close.
    let closed_at_ms = match state {
        DealState::Open => None,
        _ => deal.prop("closedate").and_then(parse_ms),
    };
    Some(Outcome {
        deal_id: deal.id.clone(),
        pipeline: deal.prop("pipeline").map(str::to_owned),
        stage: deal.prop("dealstage").unwrap_or_default().to_owned(),
        state,
        amount_minor,
        currency: Some(currency),
        created_at_ms,
        closed_at_ms,
        modified_at_ms,
        contacts: Vec::new(),
    })
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use super::*;

    fn deal(props: &[(&str, &str)]) -> DealObject {
        DealObject {
            id: "42".into(),
            properties: props
                .iter()
                .map(|(k, v)| ((*k).to_owned(), Some((*v).to_owned())))
                .collect::<BTreeMap<_, _>>(),
            created_at: "2026-01-01T00:00:00Z".into(),
            updated_at: "2026-01-02T00:00:00Z".into(),
            archived: false,
        }
    }

    #[test]
    fn times_in_every_shape_hubspot_uses() {
        assert_eq!(
            parse_ms("2026-05-10T16:50:41.180Z"),
            Some(1_778_431_841_180)
        );
        assert_eq!(parse_ms("1778431841180"), Some(1_778_431_841_180));
        assert_eq!(parse_ms("2026-05-10"), Some(1_778_371_200_000));
        assert_eq!(parse_ms(""), None);
        assert_eq!(parse_ms("soon"), None);
    }

    #[test]
    fn won_lost_and_open_with_exact_amounts() {
        let won = deal(&[
            ("hs_is_closed_won", "true"),
            ("hs_is_closed", "true"),
            ("amount", "1500.5"),
            ("deal_currency_code", "eur"),
            ("dealstage", "closedwon"),
            ("pipeline", "default"),
            ("closedate", "2026-03-01"),
            ("createdate", "2026-02-01T10:00:00Z"),
            ("hs_lastmodifieddate", "2026-03-01T12:00:00.5Z"),
        ]);
        let o = outcome(&won, "USD").unwrap();
        assert_eq!(o.state, DealState::Won);
        assert_eq!(o.amount_minor, Some(150_050));
        assert_eq!(o.currency.as_deref(), Some("EUR"));
        assert_eq!(o.closed_at_ms, Some(1_772_323_200_000));
        assert_eq!(o.created_at_ms, 1_769_940_000_000);
        assert_eq!(o.modified_at_ms, 1_772_366_400_500);
        assert_eq!(o.pipeline.as_deref(), Some("default"));
        assert_eq!(o.stage, "closedwon");

        let lost = deal(&[
            ("hs_is_closed_won", "false"),
            ("hs_is_closed", "true"),
            ("amount", "99"),
            ("closedate", "2026-03-01T00:00:00Z"),
            ("hs_lastmodifieddate", "1772366400000"),
        ]);
        let o = outcome(&lost, "JPY").unwrap();
        assert_eq!((o.state, o.amount_minor), (DealState::Lost, Some(99)));
        assert_eq!(o.currency.as_deref(), Some("JPY"));

        let open = deal(&[("closedate", "2026-09-01"), ("amount", "n/a")]);
        let o = outcome(&open, "USD").unwrap();
        assert_eq!(o.state, DealState::Open);
        assert_eq!(
            o.closed_at_ms, None,
            "an open deal's closedate is a forecast"
        );
        assert_eq!(o.amount_minor, None);
        assert_eq!(o.modified_at_ms, parse_ms("2026-01-02T00:00:00Z").unwrap());
        assert_eq!(o.created_at_ms, parse_ms("2026-01-01T00:00:00Z").unwrap());
    }

    #[test]
    fn a_deal_without_any_stamp_is_unreadable() {
        let mut d = deal(&[]);
        d.updated_at = String::new();
        assert!(outcome(&d, "USD").is_none());
    }
}
