//! Deals polled by cursor: people, verdicts, amounts, equal stamps across pages, crowded
//! milliseconds, late writes, the 10,000-result cap, associations paging, error classification.

use std::{collections::BTreeSet, time::Duration};

use serde_json::json;

use super::*;
use crate::{
    hubspot::sandbox::{Faults, ScriptStep},
    outcome::DealState,
    sink::CallError,
};

fn ids(outcomes: &[Outcome]) -> Vec<String> {
    outcomes.iter().map(|o| o.deal_id.clone()).collect()
}

#[tokio::test]
async fn deals_created_and_moved_are_polled_with_their_people() {
    let sb = sandbox(options()).await;
    let people = contacts(&sb, &["ann@example.com", "bob@example.com"]).await;
    let d1 = sb.create_deal(NewDeal {
        currency: Some("EUR".into()),
        ..deal(
            "qualifiedtobuy",
            Some("1500.50"),
            &["ann@example.com", "bob@example.com"],
            None,
        )
    });
    let d2 = sb.create_deal(deal("appointmentscheduled", None, &[], None));
    let src = source(&sb, json!({}));

    let (first, cursor, _) = drain(&src, None).await;
    assert_eq!(ids(&first), vec![d1.clone(), d2.clone()]);
    let o1 = &first[0];
    assert_eq!(o1.state, DealState::Open);
    assert_eq!(o1.stage, "qualifiedtobuy");
    assert_eq!(o1.pipeline.as_deref(), Some("default"));
    assert_eq!(
        (o1.amount_minor, o1.currency.as_deref()),
        (Some(150_050), Some("EUR"))
    );
    let people_seen: Vec<String> = o1.contacts.iter().map(|c| c.remote_id.clone()).collect();
    assert_eq!(
        people_seen, people,
        "the ids tandem's lead deliveries got back"
    );
    assert!(first[1].contacts.is_empty(), "no contact is not an error");
    assert_eq!(
        first[1].currency.as_deref(),
        Some("USD"),
        "the configured default"
    );

    // The salesperson wins the first deal with a new amount.
    tokio::time::sleep(Duration::from_millis(5)).await;
    assert!(sb.move_deal(&d1, "closedwon", Some("2000"), None));
    let (second, _, _) = drain(&src, Some(cursor)).await;
    let won = second
        .iter()
        .find(|o| o.deal_id == d1)
        .expect("the moved deal is read again");
    assert_eq!(won.state, DealState::Won);
    assert_eq!(won.amount_minor, Some(200_000));
    assert!(won.closed_at_ms.is_some_and(|c| c >= won.created_at_ms));
    assert_eq!(won.modified_at_ms, sb.deal(&d1).unwrap().modified_ms());
    assert_eq!(won.contacts.len(), 2);
    let stats = sb.stats();
    assert!(
        stats.search_calls >= 2 && stats.association_read_calls >= 2,
        "{stats:?}"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn won_lost_and_open_verdicts_with_amounts_in_minor_units() {
    let sb = sandbox(options()).await;
    contacts(&sb, &["c@example.com"]).await;
    let won = sb.create_deal(NewDeal {
        currency: Some("eur".into()),
        ..deal("closedwon", Some("1500.5"), &["c@example.com"], None)
    });
    let lost = sb.create_deal(NewDeal {
        currency: Some("JPY".into()),
        ..deal("closedlost", Some("1500"), &[], None)
    });
    let open = sb.create_deal(deal("contractsent", None, &[], None));
    let src = source(&sb, json!({"currency": "gbp"}));
    let (all, _, _) = drain(&src, None).await;
    let get = |id: &str| all.iter().find(|o| o.deal_id == id).unwrap().clone();
    let (w, l, o) = (get(&won), get(&lost), get(&open));
    assert_eq!(
        (w.state, w.amount_minor, w.currency.as_deref()),
        (DealState::Won, Some(150_050), Some("EUR"))
    );
    assert_eq!(
        (l.state, l.amount_minor, l.currency.as_deref()),
        (DealState::Lost, Some(1500), Some("JPY"))
    );
    assert_eq!(
        (o.state, o.amount_minor, o.currency.as_deref()),
        (DealState::Open, None, Some("GBP"))
    );
    assert!(w.closed_at_ms.is_some() && l.closed_at_ms.is_some());
    assert_eq!(o.closed_at_ms, None);
    sb.shutdown().await;
}

#[tokio::test]
async fn equal_timestamps_across_a_page_boundary_are_all_read_once() {
    let sb = sandbox(options()).await;
    let t = now_ms() - 60_000;
    let mut want = BTreeSet::new();
    for (n, at) in [(150, t - 1000), (250, t), (100, t + 1000)] {
        for _ in 0..n {
            want.insert(sb.create_deal(deal("qualifiedtobuy", None, &[], Some(at))));
        }
    }
    let src = source(&sb, json!({"outcome_overlap": "0s"}));
    let (all, cursor, pages) = drain(&src, None).await;
    let got: Vec<String> = ids(&all);
    assert_eq!(got.len(), 500, "every deal once, none twice");
    assert_eq!(got.iter().cloned().collect::<BTreeSet<_>>(), want);
    assert!(pages >= 3, "{pages} pages");
    // Caught up: an idle poll returns nothing new.
    let (again, _, _) = drain(&src, Some(cursor)).await;
    assert!(again.is_empty(), "{} re-read", again.len());
    sb.shutdown().await;
}

#[tokio::test]
async fn a_crowded_millisecond_is_read_in_id_order_without_a_gap() {
    let sb = sandbox(options()).await;
    let t = now_ms() - 60_000;
    let mut want = BTreeSet::new();
    for _ in 0..750 {
        want.insert(sb.create_deal(deal("qualifiedtobuy", None, &[], Some(t))));
    }
    let after = sb.create_deal(deal("qualifiedtobuy", None, &[], Some(t + 1)));
    want.insert(after.clone());
    let src = source(&sb, json!({"outcome_overlap": "0s"}));
    let (all, _, _) = drain(&src, None).await;
    let got: BTreeSet<String> = ids(&all).into_iter().collect();
    assert_eq!(got, want);
    assert_eq!(all.last().map(|o| o.deal_id.clone()), Some(after));
    sb.shutdown().await;
}

#[tokio::test]
async fn a_late_write_is_found_within_the_overlap() {
    for (overlap, found) in [("2m", true), ("0s", false)] {
        let sb = sandbox(options()).await;
        let t = now_ms();
        sb.create_deal(deal("qualifiedtobuy", None, &[], Some(t)));
        let src = source(&sb, json!({ "outcome_overlap": overlap }));
        let (_, cursor, _) = drain(&src, None).await;
        // Written 30 s ago, visible only now (HubSpot's search index lags behind writes).
        let late = sb.create_deal(deal("presentationscheduled", None, &[], Some(t - 30_000)));
        let (next, _, _) = drain(&src, Some(cursor)).await;
        assert_eq!(
            ids(&next).contains(&late),
            found,
            "overlap {overlap}: {:?}",
            ids(&next)
        );
        sb.shutdown().await;
    }
}

#[tokio::test]
async fn more_deals_than_the_search_can_page_are_all_read() {
    let sb = sandbox(SandboxOptions {
        search_result_cap: 300,
        ..options()
    })
    .await;
    let t = now_ms() - 3_600_000;
    let mut want = BTreeSet::new();
    for i in 0..900 {
        want.insert(sb.create_deal(deal("qualifiedtobuy", None, &[], Some(t + i / 3))));
    }
    // The cap is real: paging past it is refused.
    let r = reqwest::Client::new()
        .post(format!("{}/crm/v3/objects/deals/search", sb.base_url()))
        .bearer_auth(TOKEN)
        .json(&json!({"filterGroups": [], "sorts": [], "properties": [], "limit": 200, "after": "300"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: serde_json::Value = r.json().await.unwrap();
    assert!(
        body["message"].as_str().unwrap().contains("limited to 300"),
        "{body}"
    );

    let src = source(&sb, json!({"outcome_overlap": "0s"}));
    let (all, _, _) = drain(&src, None).await;
    assert_eq!(ids(&all).into_iter().collect::<BTreeSet<_>>(), want);
    assert_eq!(all.len(), 900);
    sb.shutdown().await;
}

#[tokio::test]
async fn a_deal_with_many_contacts_gets_them_all_across_association_pages() {
    let sb = sandbox(SandboxOptions {
        association_page_size: 2,
        ..options()
    })
    .await;
    let emails: Vec<String> = (0..5).map(|i| format!("p{i}@example.com")).collect();
    let refs: Vec<&str> = emails.iter().map(String::as_str).collect();
    let people = contacts(&sb, &refs).await;
    let d = sb.create_deal(deal("qualifiedtobuy", None, &refs, None));
    let (all, _, _) = drain(&source(&sb, json!({})), None).await;
    let got: Vec<String> = all[0]
        .contacts
        .iter()
        .map(|c| c.remote_id.clone())
        .collect();
    assert_eq!((all[0].deal_id.clone(), got), (d, people));
    assert_eq!(
        sb.stats().association_read_calls,
        3,
        "5 contacts in pages of 2"
    );
    sb.shutdown().await;
}

#[tokio::test]
async fn the_first_poll_starts_at_outcomes_since_else_thirty_days_back() {
    let sb = sandbox(options()).await;
    let old = sb.create_deal(deal(
        "qualifiedtobuy",
        None,
        &[],
        Some(now_ms() - 40 * 86_400_000),
    ));
    let recent = sb.create_deal(deal("qualifiedtobuy", None, &[], None));
    let (all, _, _) = drain(&source(&sb, json!({})), None).await;
    assert_eq!(ids(&all), vec![recent.clone()]);
    let since = jiff::Timestamp::from_millisecond(now_ms() - 60 * 86_400_000)
        .unwrap()
        .to_string();
    let (all, _, _) = drain(&source(&sb, json!({ "outcomes_since": since })), None).await;
    assert_eq!(ids(&all), vec![old, recent.clone()]);
    // A cursor this connector didn't write starts over instead of failing forever.
    let (all, _, _) = drain(&source(&sb, json!({})), Some("not ours".into())).await;
    assert_eq!(ids(&all), vec![recent]);
    sb.shutdown().await;
}

#[tokio::test]
async fn throttled_failing_and_unauthorized_polls_are_classified() {
    let sb = sandbox(options()).await;
    sb.create_deal(deal("qualifiedtobuy", None, &[], None));
    let src = source(&sb, json!({}));
    sb.set_faults(Faults {
        search_script: vec![
            ScriptStep::status(429, 1),
            ScriptStep::status(503, 1),
            ScriptStep::status(400, 1),
        ],
        ..Faults::default()
    })
    .unwrap();
    match src.poll_outcomes(None).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert_eq!(
                retry_after,
                Duration::from_secs(1),
                "the search's own window"
            );
            assert!(message.contains("secondly limit"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        src.poll_outcomes(None).await,
        Err(CallError::Transient { .. })
    ));
    match src.poll_outcomes(None).await {
        Err(CallError::Permanent { message }) => {
            assert!(
                message.contains("VALIDATION_ERROR: Invalid input"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
    assert_eq!(src.poll_outcomes(None).await.unwrap().outcomes.len(), 1);

    let wrong = HubspotOutcomes::new(
        &config(&sb, json!({"token": "pat-wrong"})),
        ConnectorContext::in_memory("hubspot"),
    )
    .unwrap();
    match wrong.poll_outcomes(None).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("INVALID_AUTHENTICATION"), "{message}");
            assert!(!message.contains("pat-wrong"));
        }
        other => panic!("{other:?}"),
    }
    sb.shutdown().await;
}

#[tokio::test]
async fn the_search_has_its_own_per_second_limit_and_no_rate_limit_headers() {
    let sb = sandbox(SandboxOptions {
        search_rate_limit: 2,
        ..options()
    })
    .await;
    let http = reqwest::Client::new();
    let search = || {
        http.post(format!("{}/crm/v3/objects/deals/search", sb.base_url()))
            .bearer_auth(TOKEN)
            .json(&json!({"filterGroups": [], "sorts": [], "properties": [], "limit": 10, "after": "0"}))
            .send()
    };
    let ok = search().await.unwrap();
    assert_eq!(ok.status(), 200);
    assert!(
        ok.headers()
            .keys()
            .all(|k| !k.as_str().starts_with("x-hubspot-ratelimit")),
        "{:?}",
        ok.headers()
    );
    assert_eq!(search().await.unwrap().status(), 200);
    let throttled = search().await.unwrap();
    assert_eq!(throttled.status(), 429);
    let body: serde_json::Value = throttled.json().await.unwrap();
    assert_eq!(body["policyName"], "SECONDLY");
    let src = source(&sb, json!({}));
    assert!(matches!(
        src.poll_outcomes(None).await,
        Err(CallError::RateLimited { .. })
    ));
    tokio::time::sleep(Duration::from_millis(1100)).await;
    assert!(src.poll_outcomes(None).await.is_ok());
    assert_eq!(sb.stats().search_rate_limited, 2);
    assert_eq!(src.rate_limit(), crate::hubspot::outcomes::SEARCH_LIMIT);
    assert_eq!(src.interval(), Duration::from_secs(60));
    sb.shutdown().await;
}
