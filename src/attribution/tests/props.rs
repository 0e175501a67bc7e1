use std::time::Duration;

use proptest::prelude::*;

use super::*;

fn any_model() -> impl Strategy<Value = Model> {
    prop::sample::select(Model::ALL.to_vec())
}

/// Times near each other (so every model has work to do) or anywhere in i64.
fn any_time() -> impl Strategy<Value = i64> {
    prop_oneof![3 => 0..60 * D, 1 => any::<i64>(), 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

/// Up to 12 touchpoints with distinct ids and colliding times, sources and campaigns.
fn any_touches() -> impl Strategy<Value = Vec<Touch>> {
    prop::collection::vec(
        (
            any_time(),
            prop::sample::select(vec!["google", "meta", "newsletter"]),
            prop::option::of("[ab]"),
        ),
        0..12,
    )
    .prop_map(|v| {
        v.into_iter()
            .enumerate()
            .map(|(i, (at, source, campaign))| {
                touch(
                    &format!("t{i:02}"),
                    at,
                    source,
                    Some("cpc"),
                    campaign.as_deref(),
                )
            })
            .collect()
    })
}

fn any_deal() -> impl Strategy<Value = Deal> {
    (
        any_time(),
        prop::option::of(any_time()),
        prop::sample::select(vec![DealStatus::Open, DealStatus::Won, DealStatus::Lost]),
        prop_oneof![
            any::<i64>(),
            -1000i64..1000,
            Just(i64::MIN),
            Just(i64::MAX),
            Just(0)
        ],
    )
        .prop_map(|(created, closed, status, amount)| {
            deal("X", created, closed, status, amount, "EUR")
        })
}

/// Weights anywhere, including invalid ones (the computation must not care).
fn any_weight() -> impl Strategy<Value = f64> {
    prop_oneof![4 => 0.0..1.0f64, 1 => any::<f64>(), 1 => Just(0.0), 1 => Just(f64::NAN), 1 => Just(f64::INFINITY)]
}

fn any_params() -> impl Strategy<Value = ModelParams> {
    prop_oneof![
        2 => Just(ModelParams::default()),
        1 => (any_weight(), any_weight(), any_weight(), any_weight(), any_weight(), any_weight(), any_weight(), any::<i64>())
            .prop_map(|(a, b, c, d, e, f, g, h)| ModelParams {
                position_based: PositionWeights { first: a, last: b, middle: c },
                w_shaped: WShapedWeights { first: d, created: e, closed: f, others: g },
                time_decay: TimeDecay { half_life_ms: h },
            }),
    ]
}

fn any_lookback() -> impl Strategy<Value = Duration> {
    prop_oneof![
        Just(Duration::from_secs(90 * 86_400)),
        Just(Duration::ZERO),
        Just(Duration::MAX),
        (0u64..u64::MAX).prop_map(Duration::from_millis)
    ]
}

proptest! {
    #[test]
    fn credits_sum_exactly_to_the_amount(
        model in any_model(), params in any_params(), deal in any_deal(),
        touches in any_touches(), lookback in any_lookback(), now in any_time(),
    ) {
        let dc = attribute(model, &params, &deal, &touches, lookback, now);
        if dc.is_unattributed() {
            prop_assert!(touches_for_deal(&deal, &touches, lookback, now).is_empty());
        } else {
            let sum: i128 = dc.credits.iter().map(|c| i128::from(c.amount_minor)).sum();
            prop_assert_eq!(sum, i128::from(deal.amount_minor));
            let weights: f64 = dc.credits.iter().map(|c| c.weight).sum();
            prop_assert!((weights - 1.0).abs() < 1e-9, "weights sum to {}", weights);
            prop_assert!(dc.credits.iter().all(|c| c.weight >= 0.0 && c.weight.is_finite()));
        }
    }

    #[test]
    fn input_order_does_not_matter(
        model in any_model(), params in any_params(), deal in any_deal(),
        touches in any_touches(), now in any_time(), rotate in 0usize..12,
    ) {
        let lookback = Duration::from_secs(90 * 86_400);
        let a = attribute(model, &params, &deal, &touches, lookback, now);
        let mut shuffled = touches.clone();
        shuffled.reverse();
        let k = rotate % shuffled.len().max(1);
        shuffled.rotate_left(k);
        let b = attribute(model, &params, &deal, &shuffled, lookback, now);
        prop_assert_eq!(&a, &b);
        // credit alone, on unwindowed input, too.
        prop_assert_eq!(credit(model, &params, &deal, &touches, now), credit(model, &params, &deal, &shuffled, now));
    }

    #[test]
    fn allocate_is_exact_and_close_to_the_quota(
        amount in prop_oneof![any::<i64>(), -10_000i64..10_000],
        weights in prop::collection::vec(any_weight(), 1..20),
    ) {
        let parts = allocate(amount, &weights);
        prop_assert_eq!(parts.len(), weights.len());
        prop_assert_eq!(parts.iter().map(|&p| i128::from(p)).sum::<i128>(), i128::from(amount));
        // Every part has the amount's sign (or is zero).
        prop_assert!(parts.iter().all(|&p| p == 0 || (p < 0) == (amount < 0)));
        if amount != i64::MIN {
            let neg: Vec<i64> = allocate(-amount, &weights).into_iter().map(|p| -p).collect();
            prop_assert_eq!(neg, parts);
        }
    }

    #[test]
    fn allocate_stays_within_one_unit_of_the_quota(
        amount in -1_000_000i64..1_000_000,
        weights in prop::collection::vec(0.0..1.0f64, 1..20),
    ) {
        let parts = allocate(amount, &weights);
        let total: f64 = weights.iter().sum();
        for (p, w) in parts.iter().zip(&weights) {
            let quota = if total > 0.0 { amount as f64 * w / total } else { amount as f64 / weights.len() as f64 };
            prop_assert!((*p as f64 - quota).abs() < 1.0 + 1e-3, "part {} quota {}", p, quota);
        }
    }

    #[test]
    fn reports_never_panic(
        model in any_model(), deals in prop::collection::vec((any_deal(), any_touches()), 0..6),
        by in prop::sample::select(vec![Dimension::Source, Dimension::Medium, Dimension::Campaign]),
    ) {
        let credits: Vec<DealCredit> = deals.iter()
            .map(|(d, ts)| attribute(model, &ModelParams::default(), d, ts, Duration::MAX, 0))
            .collect();
        let report = AttributionReport::new(model, None, None, by, &credits);
        for f in [Format::Table, Format::Csv, Format::Json] {
            prop_assert!(!report.render(f).is_empty());
        }
        // Revenue is conserved: rows + unattributed = the sum of the amounts, per currency.
        let rows: i128 = report.rows.iter().map(|r| r.revenue_minor).sum::<i128>()
            + report.unattributed.iter().map(|u| u.revenue_minor).sum::<i128>();
        prop_assert_eq!(rows, deals.iter().map(|(d, _)| i128::from(d.amount_minor)).sum::<i128>());
        let people: Vec<PersonRecord> = deals.iter().enumerate()
            .map(|(i, (d, ts))| PersonRecord { person_id: format!("p{i}"), touches: ts.clone(), qualified: i % 2 == 0, deals: vec![d.clone()] })
            .collect();
        let q = QualityReport::new(None, None, by, &Period::default(), &people);
        for f in [Format::Table, Format::Csv, Format::Json] {
            prop_assert!(!q.render(f).is_empty());
        }
    }
}
