use std::time::Duration;

use serde_json::json;

use super::*;

const LOOKBACK: Duration = Duration::from_secs(90 * 86_400);

/// Linear model over four deals:
/// - X: EUR 100, touchpoints a (google/cpc/spring), b (newsletter/email/–), c (google/cpc/spring)
///   → 34 / 33 / 33 (1/3 each).
/// - Y: EUR 50, touchpoint d (google/cpc/spring) → 50.
/// - Z: USD 70, no touchpoint → unattributed.
/// - W: USD 30, touchpoint e (google/cpc/spring) → 30.
///
/// EUR google/cpc/spring: 34 + 33 + 50 = 117, deals 1/3 + 1/3 + 1 = 1.6667, leads a c d = 3.
/// EUR newsletter/email/–: 33, deals 0.3333, leads 1. USD google/cpc/spring: 30, 1, 1.
fn credits() -> Vec<DealCredit> {
    let p = ModelParams::default();
    let a = |d: &Deal, ts: &[Touch]| attribute(Model::Linear, &p, d, ts, LOOKBACK, 0);
    vec![
        a(&won("Z", 0, 10 * D, 70, "USD"), &[]),
        a(
            &won("X", 0, 10 * D, 100, "EUR"),
            &[
                t("a", D),
                touch("b", 5 * D, "newsletter", Some("email"), None),
                t("c", 8 * D),
            ],
        ),
        a(&won("Y", 0, 10 * D, 50, "EUR"), &[t("d", 9 * D)]),
        a(&won("W", 0, 10 * D, 30, "USD"), &[t("e", 9 * D)]),
    ]
}

fn report(by: Dimension) -> AttributionReport {
    AttributionReport::new(
        Model::Linear,
        Some("2026-01-01".into()),
        Some("2026-02-01".into()),
        by,
        &credits(),
    )
}

#[test]
fn json_shape_exactly() {
    let v: serde_json::Value =
        serde_json::from_str(&report(Dimension::Campaign).render(Format::Json)).unwrap();
    assert_eq!(
        v,
        json!({
            "model": "linear",
            "since": "2026-01-01",
            "until": "2026-02-01",
            "rows": [
                {"source": "google", "medium": "cpc", "campaign": "spring", "currency": "EUR",
                 "revenue_minor": 117, "deals": "1.6667", "leads": 3},
                {"source": "newsletter", "medium": "email", "campaign": null, "currency": "EUR",
                 "revenue_minor": 33, "deals": "0.3333", "leads": 1},
                {"source": "google", "medium": "cpc", "campaign": "spring", "currency": "USD",
                 "revenue_minor": 30, "deals": "1.0000", "leads": 1},
            ],
            "unattributed": [{"currency": "USD", "revenue_minor": 70, "deals": "1.0000"}],
        })
    );
    // Key order in the text follows the documented shape.
    let text = report(Dimension::Campaign).to_json();
    let pos = |k: &str| text.find(&format!("\"{k}\"")).unwrap();
    assert!(
        pos("model") < pos("since")
            && pos("since") < pos("until")
            && pos("until") < pos("rows")
            && pos("rows") < pos("unattributed")
    );
}

#[test]
fn by_source_leaves_the_other_columns_null() {
    let r = report(Dimension::Source);
    // EUR google 117, EUR newsletter 33, USD google 30: as above, medium/campaign not grouped.
    let v: serde_json::Value = serde_json::from_str(&r.to_json()).unwrap();
    assert_eq!(
        v["rows"][0],
        json!({"source": "google", "medium": null, "campaign": null, "currency": "EUR", "revenue_minor": 117, "deals": "1.6667", "leads": 3})
    );
    assert_eq!(r.rows.len(), 3);
    assert_eq!(r.rows[1].source.as_deref(), Some("newsletter"));
}

#[test]
fn rows_sort_by_currency_then_revenue_then_key() {
    let p = ModelParams::default();
    let credits: Vec<DealCredit> = [
        ("m", "meta", 10),
        ("g", "google", 10),
        ("n", "newsletter", 20),
    ]
    .iter()
    .map(|(id, src, amount)| {
        attribute(
            Model::Linear,
            &p,
            &won(id, 0, D, *amount, "EUR"),
            &[touch(id, 0, src, None, None)],
            LOOKBACK,
            0,
        )
    })
    .collect();
    let r = AttributionReport::new(Model::Linear, None, None, Dimension::Source, &credits);
    let order: Vec<&str> = r
        .rows
        .iter()
        .map(|r| r.source.as_deref().unwrap())
        .collect();
    assert_eq!(order, ["newsletter", "google", "meta"]);
}

#[test]
fn csv_format() {
    let csv = report(Dimension::Campaign).render(Format::Csv);
    assert_eq!(
        csv,
        "source,medium,campaign,currency,revenue_minor,deals,leads\n\
         google,cpc,spring,EUR,117,1.6667,3\n\
         newsletter,email,,EUR,33,0.3333,1\n\
         google,cpc,spring,USD,30,1.0000,1\n\
         (unattributed),,,USD,70,1.0000,0\n"
    );
}

#[test]
fn csv_quotes_and_defuses_formulas() {
    use crate::attribution::report::csv_text;
    assert_eq!(csv_text(Some("a,b")), "\"a,b\"");
    assert_eq!(csv_text(Some("say \"hi\"")), "\"say \"\"hi\"\"\"");
    assert_eq!(csv_text(Some("=HYPERLINK(1)")), "'=HYPERLINK(1)");
    assert_eq!(csv_text(Some("-1,2")), "\"'-1,2\"");
    assert_eq!(csv_text(None), "");
}

#[test]
fn table_format() {
    let table = report(Dimension::Medium).render(Format::Table);
    assert_eq!(
        table,
        "attribution: model linear, since 2026-01-01, until 2026-02-01, by medium\n\
         \n\
         source      medium  currency  revenue_minor   deals  leads\n\
         google      cpc     EUR                 117  1.6667      3\n\
         newsletter  email   EUR                  33  0.3333      1\n\
         google      cpc     USD                  30  1.0000      1\n\
         \n\
         unattributed (no touchpoint within the lookback)\n\
         currency  revenue_minor   deals\n\
         USD                  70  1.0000\n"
    );
    // Terminal escapes in UTM values are neutralised.
    let p = ModelParams::default();
    let c = [attribute(
        Model::Linear,
        &p,
        &won("X", 0, D, 1, "EUR"),
        &[touch("x", 0, "evil\u{1b}[2J", None, None)],
        LOOKBACK,
        0,
    )];
    let t = AttributionReport::new(Model::Linear, None, None, Dimension::Source, &c).to_table();
    assert!(!t.contains('\u{1b}') && t.contains("evil\u{fffd}[2J"));
    let empty =
        AttributionReport::new(Model::Linear, None, None, Dimension::Source, &[]).to_table();
    assert!(empty.contains("(no attributed deals)"));
}

#[test]
fn dimension_and_format_names() {
    for (s, d) in [
        ("source", Dimension::Source),
        ("medium", Dimension::Medium),
        ("campaign", Dimension::Campaign),
    ] {
        assert_eq!(s.parse::<Dimension>().unwrap(), d);
        assert_eq!(d.to_string(), s);
    }
    for (s, f) in [
        ("table", Format::Table),
        ("csv", Format::Csv),
        ("json", Format::Json),
    ] {
        assert_eq!(s.parse::<Format>().unwrap(), f);
        assert_eq!(f.to_string(), s);
    }
    assert!("week".parse::<Dimension>().is_err() && "xml".parse::<Format>().is_err());
}
