use super::*;

fn person(id: &str, touches: Vec<Touch>, qualified: bool, deals: Vec<Deal>) -> PersonRecord {
    PersonRecord {
        person_id: id.to_owned(),
        touches,
        qualified,
        deals,
    }
}

fn mail(id: &str, at: i64) -> Touch {
    touch(id, at, "newsletter", Some("email"), None)
}

/// The hand-made dataset (period: from day 0 on).
///
/// | person | first touch               | qualified | deals                                  |
/// |--------|---------------------------|-----------|----------------------------------------|
/// | p1     | google/cpc/spring @0d     | flag      | D1 won EUR 1000.00 @10d                |
/// | p2     | google/cpc/spring @1d     | (deal)    | D2 lost @8d                            |
/// | p3     | google/cpc/spring @2d     | flag      | –                                      |
/// | p4     | google/cpc/spring @3d     | no        | –                                      |
/// | p5     | newsletter/email/– @4d    | (deal)    | D3 won USD 50.00 @24d, D4 won EUR 20.00 @6d, D5 lost |
/// | p6     | google/cpc/spring @2d     | no → deal | D6 won EUR 500.00 @32d                 |
/// | p7     | google/cpc/spring @-10d   | flag      | before the period: left out            |
/// | p8     | no touchpoint             | flag      | ignored                                |
/// | p9     | google/display/summer @1d | no        | –                                      |
///
/// p1 also clicked the newsletter at 5d: they stay a google/cpc/spring lead.
fn people() -> Vec<PersonRecord> {
    vec![
        person(
            "p1",
            vec![mail("l1b", 5 * D), t("l1", 0)],
            true,
            vec![won("D1", D, 10 * D, 100_000, "EUR")],
        ),
        person(
            "p2",
            vec![t("l2", D)],
            false,
            vec![deal(
                "D2",
                2 * D,
                Some(8 * D),
                DealStatus::Lost,
                9_999,
                "EUR",
            )],
        ),
        person("p3", vec![t("l3", 2 * D)], true, vec![]),
        person("p4", vec![t("l4", 3 * D)], false, vec![]),
        person(
            "p5",
            vec![mail("l5", 4 * D)],
            false,
            vec![
                won("D3", 5 * D, 24 * D, 5_000, "USD"),
                won("D4", 5 * D, 6 * D, 2_000, "EUR"),
                deal("D5", 5 * D, Some(7 * D), DealStatus::Lost, 1, "EUR"),
            ],
        ),
        person(
            "p6",
            vec![t("l6", 2 * D)],
            false,
            vec![won("D6", 3 * D, 32 * D, 50_000, "EUR")],
        ),
        person("p7", vec![t("l7", -10 * D)], true, vec![]),
        person("p8", vec![], true, vec![won("D8", 0, D, 1, "EUR")]),
        person(
            "p9",
            vec![touch("l9", D, "google", Some("display"), Some("summer"))],
            false,
            vec![],
        ),
    ]
}

const FROM_DAY_0: Period = Period {
    since_ms: Some(0),
    until_ms: None,
};

#[test]
fn quality_by_campaign() {
    let rows = quality_rows(&people(), Dimension::Campaign, &FROM_DAY_0);
    let keys: Vec<(Option<&str>, Option<&str>, Option<&str>)> = rows
        .iter()
        .map(|r| {
            (
                r.source.as_deref(),
                r.medium.as_deref(),
                r.campaign.as_deref(),
            )
        })
        .collect();
    // Most leads first; the 1-lead ties by key: google < newsletter.
    assert_eq!(
        keys,
        [
            (Some("google"), Some("cpc"), Some("spring")),
            (Some("google"), Some("display"), Some("summer")),
            (Some("newsletter"), Some("email"), None),
        ]
    );
    let spring = &rows[0];
    // leads p1 p2 p3 p4 p6 = 5; qualified p1 (flag) p2 (deal) p3 (flag) p6 (deal) = 4;
    // won p1 p6 = 2; lost p2 = 1; win rate 2 / 3; revenue 100000 + 50000 EUR;
    // days to won: p1 10 − 0 = 10, p6 32 − 2 = 30 → median 20.
    assert_eq!(
        (spring.leads, spring.qualified, spring.won, spring.lost),
        (5, 4, 2, 1)
    );
    assert!((spring.win_rate.unwrap() - 2.0 / 3.0).abs() < 1e-12);
    assert_eq!(
        spring.won_revenue_minor,
        [("EUR".to_owned(), 150_000)].into()
    );
    assert_eq!(spring.median_days_to_won, Some(20.0));
    let summer = &rows[1];
    assert_eq!(
        (summer.leads, summer.qualified, summer.won, summer.lost),
        (1, 0, 0, 0)
    );
    assert_eq!((summer.win_rate, summer.median_days_to_won), (None, None));
    assert!(summer.won_revenue_minor.is_empty());
    let mail = &rows[2];
    // p5: won beats lost; revenue per currency; first won deal after the first touch closes at
    // 6d → 6 − 4 = 2 days.
    assert_eq!(
        (mail.leads, mail.qualified, mail.won, mail.lost),
        (1, 1, 1, 0)
    );
    assert_eq!(mail.win_rate, Some(1.0));
    assert_eq!(
        mail.won_revenue_minor,
        [("EUR".to_owned(), 2_000), ("USD".to_owned(), 5_000)].into()
    );
    assert_eq!(mail.median_days_to_won, Some(2.0));
}

#[test]
fn quality_by_source_merges_campaigns() {
    let rows = quality_rows(&people(), Dimension::Source, &FROM_DAY_0);
    assert_eq!(rows.len(), 2);
    let g = &rows[0];
    assert_eq!(
        (
            g.source.as_deref(),
            g.medium.as_deref(),
            g.campaign.as_deref()
        ),
        (Some("google"), None, None)
    );
    // spring + summer: 6 leads, 4 qualified, 2 won, 1 lost.
    assert_eq!((g.leads, g.qualified, g.won, g.lost), (6, 4, 2, 1));
    assert_eq!(rows[1].source.as_deref(), Some("newsletter"));
}

#[test]
fn quality_period_and_odd_median() {
    // From day 1 on: p1 (first touch 0d) drops out; spring keeps p2 p3 p4 p6 → median of [30].
    let rows = quality_rows(
        &people(),
        Dimension::Campaign,
        &Period {
            since_ms: Some(D),
            until_ms: Some(3 * D),
        },
    );
    // until 3d (exclusive) also drops p4 (3d) and p5 (4d).
    let spring = rows
        .iter()
        .find(|r| r.campaign.as_deref() == Some("spring"))
        .unwrap();
    assert_eq!(
        (spring.leads, spring.qualified, spring.won, spring.lost),
        (3, 3, 1, 1)
    );
    assert_eq!(spring.median_days_to_won, Some(30.0));
    assert!(
        rows.iter()
            .all(|r| r.source.as_deref() != Some("newsletter"))
    );
}

#[test]
fn shared_deal_counts_once_per_group() {
    // Two people of one campaign on one won deal: 2 won people, the revenue once.
    let d = won("D", 0, 4 * D, 700, "EUR");
    let people = [
        person("a", vec![t("la", 0)], true, vec![d.clone()]),
        person("b", vec![t("lb", D)], true, vec![d]),
        // A person listed twice counts once.
        person("b", vec![t("lb", D)], true, vec![]),
    ];
    let rows = quality_rows(&people, Dimension::Campaign, &Period::default());
    assert_eq!((rows[0].leads, rows[0].won), (2, 2));
    assert_eq!(rows[0].won_revenue_minor, [("EUR".to_owned(), 700)].into());
    // Days 4 and 3 → median 3.5.
    assert_eq!(rows[0].median_days_to_won, Some(3.5));
}

#[test]
fn quality_json_shape() {
    let report = QualityReport::new(
        Some("2026-01-01".into()),
        None,
        Dimension::Campaign,
        &FROM_DAY_0,
        &people(),
    );
    let v: serde_json::Value = serde_json::from_str(&report.render(Format::Json)).unwrap();
    assert_eq!(
        v["rows"][0],
        serde_json::json!({
            "source": "google", "medium": "cpc", "campaign": "spring",
            "leads": 5, "qualified": 4, "won": 2, "lost": 1, "win_rate": "0.6667",
            "won_revenue_minor": {"EUR": 150000}, "median_days_to_won": "20.0"
        })
    );
    assert_eq!(v["rows"][1]["win_rate"], serde_json::Value::Null);
    assert_eq!(
        (v["since"].as_str(), v["until"].is_null()),
        (Some("2026-01-01"), true)
    );
    let csv = report.render(Format::Csv);
    let lines: Vec<&str> = csv.lines().collect();
    assert_eq!(
        lines[0],
        "source,medium,campaign,leads,qualified,won,lost,win_rate,won_revenue_minor,median_days_to_won"
    );
    assert_eq!(lines[1], "google,cpc,spring,5,4,2,1,0.6667,EUR 150000,20.0");
    assert_eq!(
        lines[3],
        "newsletter,email,,1,1,1,0,1.0000,EUR 2000;USD 5000,2.0"
    );
    let table = report.render(Format::Table);
    assert!(table.contains("newsletter  email    (none)"), "{table}");
}
