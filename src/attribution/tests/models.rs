use super::*;

/// a@1d, b@2d, c@3d, d@4d; the deal is created at 2.5d and won at 5d.
fn four() -> (Deal, Vec<Touch>) {
    let d = won("X", 5 * D / 2, 5 * D, 10_000, "EUR");
    (
        d,
        vec![t("a", D), t("b", 2 * D), t("c", 3 * D), t("d", 4 * D)],
    )
}

#[test]
fn model_names_round_trip() {
    for m in Model::ALL {
        assert_eq!(m.name().parse::<Model>().unwrap(), m);
        assert_eq!(
            serde_json::to_string(&m).unwrap(),
            format!("\"{}\"", m.name())
        );
        assert_eq!(
            serde_json::from_str::<Model>(&format!("\"{m}\"")).unwrap(),
            m
        );
    }
    assert!(
        "u_shaped"
            .parse::<Model>()
            .unwrap_err()
            .to_string()
            .contains("w_shaped")
    );
}

#[test]
fn no_touchpoints_no_credit() {
    let (d, _) = four();
    for m in Model::ALL {
        assert!(credit_default(m, &d, &[], 0).is_empty());
    }
}

#[test]
fn first_and_last_touch() {
    let (d, ts) = four();
    assert_weights(
        &credit_default(Model::FirstTouch, &d, &ts, 0),
        &[("a", 1.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)],
    );
    assert_weights(
        &credit_default(Model::LastTouch, &d, &ts, 0),
        &[("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 1.0)],
    );
}

#[test]
fn linear_equal_shares() {
    let (d, ts) = four();
    // 1/4 each.
    assert_weights(
        &credit_default(Model::Linear, &d, &ts, 0),
        &[("a", 0.25), ("b", 0.25), ("c", 0.25), ("d", 0.25)],
    );
}

#[test]
fn credit_is_in_capture_order_whatever_the_input_order() {
    let (d, mut ts) = four();
    ts.reverse();
    assert_weights(
        &credit_default(Model::FirstTouch, &d, &ts, 0),
        &[("a", 1.0), ("b", 0.0), ("c", 0.0), ("d", 0.0)],
    );
}

#[test]
fn position_based_defaults() {
    let (d, ts) = four();
    let pb = |ts: &[Touch]| credit_default(Model::PositionBased, &d, ts, 0);
    // One touchpoint: 100%.
    assert_weights(&pb(&ts[..1]), &[("a", 1.0)]);
    // Two: 0.4 : 0.4 → 50/50.
    assert_weights(&pb(&ts[..2]), &[("a", 0.5), ("b", 0.5)]);
    // Three: 0.4 first, 0.4 last, the one in the middle 0.2.
    assert_weights(&pb(&ts[..3]), &[("a", 0.4), ("b", 0.2), ("c", 0.4)]);
    // Four: 0.4, 0.2 / 2 = 0.1 each for b and c, 0.4.
    assert_weights(&pb(&ts), &[("a", 0.4), ("b", 0.1), ("c", 0.1), ("d", 0.4)]);
    // Five: 0.2 / 3 each in the middle.
    let mut five = ts.clone();
    five.push(t("e", 4 * D + 1));
    assert_weights(
        &pb(&five),
        &[
            ("a", 0.4),
            ("b", 0.2 / 3.0),
            ("c", 0.2 / 3.0),
            ("d", 0.2 / 3.0),
            ("e", 0.4),
        ],
    );
}

#[test]
fn position_based_configured_weights() {
    let (d, ts) = four();
    let params = ModelParams {
        position_based: PositionWeights {
            first: 0.6,
            last: 0.2,
            middle: 0.2,
        },
        ..ModelParams::default()
    };
    params.validate().unwrap();
    // Two: first : last = 0.6 : 0.2 → 0.75 / 0.25.
    assert_weights(
        &credit(Model::PositionBased, &params, &d, &ts[..2], 0),
        &[("a", 0.75), ("b", 0.25)],
    );
    // Three: 0.6, 0.2, 0.2.
    assert_weights(
        &credit(Model::PositionBased, &params, &d, &ts[..3], 0),
        &[("a", 0.6), ("b", 0.2), ("c", 0.2)],
    );
}

#[test]
fn w_shaped_four_distinct_roles() {
    let (d, ts) = four();
    // first = a; last at or before creation (2.5d) = b; last before close = d; others = {c}.
    // a 0.3, b 0.3, c 0.1, d 0.3.
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts, 0),
        &[("a", 0.3), ("b", 0.3), ("c", 0.1), ("d", 0.3)],
    );
}

#[test]
fn w_shaped_others_split() {
    let (d, mut ts) = four();
    ts.push(t("e", 4 * D + 1));
    // Roles a, b, e; others c, d share 0.1 → 0.05 each.
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts, 0),
        &[("a", 0.3), ("b", 0.3), ("c", 0.05), ("d", 0.05), ("e", 0.3)],
    );
}

#[test]
fn w_shaped_created_before_every_touchpoint_falls_to_the_first() {
    let (_, ts) = four();
    // Created at 0.5d, before a: the creation role falls on the first touchpoint.
    let d = won("X", D / 2, 5 * D, 100, "EUR");
    // a = 0.3 + 0.3 = 0.6; d = 0.3; others b, c: 0.05 each.
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts, 0),
        &[("a", 0.6), ("b", 0.05), ("c", 0.05), ("d", 0.3)],
    );
}

#[test]
fn w_shaped_created_after_every_touchpoint_collides_with_close() {
    let (_, ts) = four();
    // Created at 4.5d: last touchpoint at or before creation is d, which also closes.
    let d = won("X", 9 * D / 2, 5 * D, 100, "EUR");
    // a 0.3; d 0.3 + 0.3 = 0.6; others b, c 0.05 each.
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts, 0),
        &[("a", 0.3), ("b", 0.05), ("c", 0.05), ("d", 0.6)],
    );
    // A touchpoint at exactly the creation time counts as "before creation".
    let d = won("X", 4 * D, 5 * D, 100, "EUR");
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts, 0),
        &[("a", 0.3), ("b", 0.05), ("c", 0.05), ("d", 0.6)],
    );
}

#[test]
fn w_shaped_no_others_spreads_the_rest_over_the_roles() {
    let (d, ts) = four();
    // a, b, c with creation at 2.5d: roles a, b, c, no others: 0.1 / 3 each → 1/3 each.
    let third = 0.3 + 0.1 / 3.0;
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts[..3], 0),
        &[("a", third), ("b", third), ("c", third)],
    );
    // a, b with creation at 1.5d: first = created = a (0.6), close = b (0.3); 0.1 over {a, b}.
    let d2 = won("X", 3 * D / 2, 5 * D, 100, "EUR");
    assert_weights(
        &credit_default(Model::WShaped, &d2, &ts[..2], 0),
        &[("a", 0.65), ("b", 0.35)],
    );
    // a, b with creation at 2.5d: a 0.3, b 0.6, each + 0.05.
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts[..2], 0),
        &[("a", 0.35), ("b", 0.65)],
    );
    // One touchpoint holds every role: 0.3 × 3 + 0.1 = 1.
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts[..1], 0),
        &[("a", 1.0)],
    );
}

#[test]
fn w_shaped_open_deal_closes_at_now() {
    let (_, ts) = four();
    // Open deal created at 1.5d, now = 3.5d: window (lookback 30d) keeps a, b, c; d is in the
    // future. first a, created a, "closed" (last before now) c, others b.
    let d = deal("X", 3 * D / 2, None, DealStatus::Open, 100, "EUR");
    let now = 7 * D / 2;
    let window = touches_for_deal(&d, &ts, std::time::Duration::from_secs(30 * 86_400), now);
    assert_weights(
        &credit_default(Model::WShaped, &d, &window, now),
        &[("a", 0.6), ("b", 0.1), ("c", 0.3)],
    );
    // Unwindowed input: d (after now) is never the closing touchpoint; it is an "other".
    assert_weights(
        &credit_default(Model::WShaped, &d, &ts, now),
        &[("a", 0.6), ("b", 0.05), ("c", 0.3), ("d", 0.05)],
    );
}

#[test]
fn w_shaped_configured_weights() {
    let (d, ts) = four();
    let params = ModelParams {
        w_shaped: WShapedWeights {
            first: 0.2,
            created: 0.2,
            closed: 0.4,
            others: 0.2,
        },
        ..ModelParams::default()
    };
    params.validate().unwrap();
    assert_weights(
        &credit(Model::WShaped, &params, &d, &ts, 0),
        &[("a", 0.2), ("b", 0.2), ("c", 0.2), ("d", 0.4)],
    );
}

#[test]
fn time_decay_default_half_life_seven_days() {
    // Closed at 14d; ages 14d, 7d, 0d → 2^-2, 2^-1, 2^0 = 0.25, 0.5, 1; total 1.75
    // → 1/7, 2/7, 4/7.
    let d = won("X", 0, 14 * D, 1000, "EUR");
    let ts = [t("a", 0), t("b", 7 * D), t("c", 14 * D)];
    assert_weights(
        &credit_default(Model::TimeDecay, &d, &ts, 0),
        &[("a", 1.0 / 7.0), ("b", 2.0 / 7.0), ("c", 4.0 / 7.0)],
    );
}

#[test]
fn time_decay_configured_half_life() {
    // Half-life 1d; ages 2d and 0d → 0.25 and 1 → 0.2 / 0.8.
    let params = ModelParams {
        time_decay: TimeDecay { half_life_ms: D },
        ..ModelParams::default()
    };
    let d = won("X", 0, 3 * D, 1000, "EUR");
    let ts = [t("a", D), t("b", 3 * D)];
    assert_weights(
        &credit(Model::TimeDecay, &params, &d, &ts, 0),
        &[("a", 0.2), ("b", 0.8)],
    );
    // Half-life 3.5d, age 3.5d vs 0 → 0.5 : 1 → 1/3, 2/3.
    let params = ModelParams {
        time_decay: TimeDecay {
            half_life_ms: 7 * D / 2,
        },
        ..ModelParams::default()
    };
    let ts = [t("a", 3 * D - 7 * D / 2), t("b", 3 * D)];
    assert_weights(
        &credit(Model::TimeDecay, &params, &d, &ts, 0),
        &[("a", 1.0 / 3.0), ("b", 2.0 / 3.0)],
    );
}

#[test]
fn time_decay_open_deal_ages_from_now() {
    // Open; now = 10d; ages 7d, 0d, 0d → 0.5, 1, 1; total 2.5 → 0.2, 0.4, 0.4 (equal ages
    // share equally).
    let d = deal("X", 0, None, DealStatus::Open, 0, "EUR");
    let ts = [t("a", 3 * D), t("b", 10 * D), t("c", 10 * D)];
    assert_weights(
        &credit_default(Model::TimeDecay, &d, &ts, 10 * D),
        &[("a", 0.2), ("b", 0.4), ("c", 0.4)],
    );
}

#[test]
fn time_decay_very_old_touchpoints_do_not_vanish() {
    // Ages of ~290 million years: 2^-age/h underflows to 0 for both, yet relative to the
    // youngest the split is still 1/3, 2/3 (ages differ by one half-life).
    let d = won("X", 0, i64::MAX, 1, "EUR");
    let ts = [t("a", i64::MIN), t("b", i64::MIN + 7 * D)];
    assert_weights(
        &credit_default(Model::TimeDecay, &d, &ts, 0),
        &[("a", 1.0 / 3.0), ("b", 2.0 / 3.0)],
    );
}

#[test]
fn params_validation() {
    ModelParams::default().validate().unwrap();
    let bad = ModelParams {
        position_based: PositionWeights {
            first: 0.5,
            last: 0.5,
            middle: 0.5,
        },
        w_shaped: WShapedWeights {
            first: f64::NAN,
            ..WShapedWeights::default()
        },
        time_decay: TimeDecay { half_life_ms: 0 },
    };
    let errors = bad.validate().unwrap_err();
    let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
    assert_eq!(text.len(), 3, "{text:?}");
    assert!(
        text[0].starts_with("position_based: first + last + middle must sum to 1"),
        "{text:?}"
    );
    assert!(
        text[1].starts_with("w_shaped.first: must be a finite number"),
        "{text:?}"
    );
    assert!(
        text[2].starts_with("time_decay.half_life_ms: must be positive"),
        "{text:?}"
    );
    // Parameters come from TOML/JSON with defaults for what is left out.
    let p: ModelParams =
        serde_json::from_str(r#"{"position_based": {"first": 0.5, "last": 0.3}}"#).unwrap();
    assert_eq!(
        p.position_based,
        PositionWeights {
            first: 0.5,
            last: 0.3,
            middle: 0.2
        }
    );
    assert!(serde_json::from_str::<ModelParams>(r#"{"linear": {}}"#).is_err());
}

#[test]
fn invalid_params_still_give_weights_summing_to_one() {
    let (d, ts) = four();
    let params = ModelParams {
        position_based: PositionWeights {
            first: -1.0,
            last: f64::INFINITY,
            middle: 0.0,
        },
        w_shaped: WShapedWeights {
            first: 0.0,
            created: 0.0,
            closed: 0.0,
            others: 0.0,
        },
        time_decay: TimeDecay { half_life_ms: -5 },
    };
    // position_based: first → 0, last → 0 (not finite), middle 0: nothing left → equal shares.
    assert_weights(
        &credit(Model::PositionBased, &params, &d, &ts, 0),
        &[("a", 0.25), ("b", 0.25), ("c", 0.25), ("d", 0.25)],
    );
    assert_weights(
        &credit(Model::WShaped, &params, &d, &ts, 0),
        &[("a", 0.25), ("b", 0.25), ("c", 0.25), ("d", 0.25)],
    );
    // Half-life clamped to 1 ms: everything to the youngest.
    assert_weights(
        &credit(Model::TimeDecay, &params, &d, &ts, 0),
        &[("a", 0.0), ("b", 0.0), ("c", 0.0), ("d", 1.0)],
    );
}

#[test]
fn attribute_rounds_each_deal_exactly() {
    let (d, ts) = four();
    let d = Deal {
        amount_minor: 999,
        ..d
    };
    let dc = attribute(
        Model::WShaped,
        &ModelParams::default(),
        &d,
        &ts,
        std::time::Duration::from_secs(90 * 86_400),
        0,
    );
    // 999 × (0.3, 0.3, 0.1, 0.3) = 299.7, 299.7, 99.9, 299.7; floors 299 + 299 + 99 + 299 = 996;
    // 3 left by remainder .9 (c), then the .7 ties in order (a, b): 300, 300, 100, 299.
    let amounts: Vec<i64> = dc.credits.iter().map(|c| c.amount_minor).collect();
    assert_eq!(amounts, [300, 300, 100, 299]);
    let ids: Vec<&str> = dc.credits.iter().map(|c| c.touch.id.as_str()).collect();
    assert_eq!(ids, ["a", "b", "c", "d"]);
    assert!(!dc.is_unattributed());
    // No touchpoint in the window: unattributed.
    let dc = attribute(
        Model::Linear,
        &ModelParams::default(),
        &d,
        &ts,
        std::time::Duration::ZERO,
        0,
    );
    assert!(dc.is_unattributed());
}
