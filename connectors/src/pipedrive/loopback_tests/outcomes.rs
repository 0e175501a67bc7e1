//! Deals polled by cursor: people, verdicts, amounts, paging, equal timestamps, late writes,
//! deals changed while paging, and the call errors.

use std::time::Duration;

use serde_json::json;

use crate::{
    CallError,
    outcome::{DealContact, DealState, OutcomeSource},
};

use super::{deal, drain, ids, now_ms, options, poller, sandbox, sandbox_with};

#[tokio::test]
async fn deals_come_with_their_people_verdicts_amounts_and_close_times() {
    let sb = sandbox().await;
    let st = sb.state();
    let ana = st.add_person("Ana", "ana@example.com");
    let ben = st.add_person("Ben", "ben@example.com");
    let cy = st.add_person("Cy", "cy@example.com");
    let mut open = deal("1", Some("1500.50"), &["ana@example.com"], None);
    open.currency = Some("EUR".into());
    let d1 = st.create_deal(&open);
    let d2 = st.create_deal(&deal(
        "3",
        None,
        &["ben@example.com", "cy@example.com"],
        None,
    ));
    let d3 = st.create_deal(&deal("3", Some("99"), &["ana@example.com"], None));
    st.move_deal(d3, "won", None, None);

    let p = poller(&sb, json!({}));
    let (first, cursor, _) = drain(&p, None).await;
    assert_eq!(
        ids(&first),
        [d1.to_string(), d2.to_string(), d3.to_string()]
    );
    let o1 = &first[0];
    assert_eq!((o1.stage.as_str(), o1.state), ("1", DealState::Open));
    assert_eq!(
        (o1.amount_minor, o1.currency.as_deref()),
        (Some(150_050), Some("EUR"))
    );
    assert_eq!(o1.pipeline.as_deref(), Some("1"));
    assert_eq!(o1.closed_at_ms, None);
    assert_eq!(
        o1.contacts,
        [DealContact {
            remote_id: ana.to_string(),
            email: None
        }]
    );
    // Participants beyond the main person are read (with their emails), and only for that deal.
    let o2 = &first[1];
    assert_eq!(o2.amount_minor, None, "no value is Pipedrive's 0");
    assert_eq!(o2.currency.as_deref(), Some("USD"));
    assert_eq!(
        o2.contacts,
        [
            DealContact {
                remote_id: ben.to_string(),
                email: Some("ben@example.com".into())
            },
            DealContact {
                remote_id: cy.to_string(),
                email: Some("cy@example.com".into())
            },
        ]
    );
    assert_eq!(st.stats().participant_reads, 1);
    // Won is a status: the stage reported is "won", the close time the end of the won second.
    let o3 = &first[2];
    assert_eq!((o3.stage.as_str(), o3.state), ("won", DealState::Won));
    assert_eq!(o3.amount_minor, Some(9_900));
    let won_at = st
        .deal(d3)
        .and_then(|d| d.won_time)
        .map(|t| t.as_millisecond() - t.as_millisecond().rem_euclid(1000) + 999);
    assert_eq!(o3.closed_at_ms, won_at);
    assert!(o3.created_at_ms <= o3.modified_at_ms);

    // A re-poll reports nothing that did not change; a change is reported once.
    let (again, cursor, _) = drain(&p, Some(cursor)).await;
    assert!(again.is_empty(), "{again:?}");
    st.move_deal(d1, "lost", Some("1200"), None);
    let (moved, cursor, _) = drain(&p, Some(cursor)).await;
    assert_eq!(ids(&moved), [d1.to_string()]);
    assert_eq!(
        (moved[0].stage.as_str(), moved[0].state),
        ("lost", DealState::Lost)
    );
    assert_eq!(moved[0].amount_minor, Some(120_000));
    assert!(moved[0].closed_at_ms.is_some());
    st.move_deal(d1, "4", None, None);
    let (reopened, _, _) = drain(&p, Some(cursor)).await;
    assert_eq!(
        (
            reopened[0].stage.as_str(),
            reopened[0].state,
            reopened[0].closed_at_ms
        ),
        ("4", DealState::Open, None)
    );
}

#[tokio::test]
async fn equal_timestamps_across_page_boundaries_are_all_read_once() {
    let sb = sandbox().await;
    let st = sb.state();
    st.add_person("Ana", "ana@example.com");
    let t = now_ms() - 30_000;
    let made: Vec<String> = (0..7)
        .map(|_| {
            st.create_deal(&deal("1", None, &["ana@example.com"], Some(t)))
                .to_string()
        })
        .collect();
    let p = poller(&sb, json!({})).with_page_size(3);
    let (got, cursor, pages) = drain(&p, None).await;
    assert_eq!(ids(&got), made, "every deal once, in order");
    assert!(pages >= 3, "{pages} pages");
    // One more at the very same second, written later: still found.
    let late = st
        .create_deal(&deal("1", None, &["ana@example.com"], Some(t)))
        .to_string();
    let (got, _, _) = drain(&p, Some(cursor)).await;
    assert_eq!(ids(&got), [late]);
}

#[tokio::test]
async fn a_late_write_within_the_overlap_is_found_and_the_overlap_is_configurable() {
    let sb = sandbox().await;
    let st = sb.state();
    st.add_person("Ana", "ana@example.com");
    st.create_deal(&deal("1", None, &["ana@example.com"], None));
    let p = poller(&sb, json!({"outcome_overlap": "2m"}));
    let (_, cursor, _) = drain(&p, None).await;
    // Stamped a minute before the newest change already read, visible only now.
    let late = st.create_deal(&deal(
        "3",
        None,
        &["ana@example.com"],
        Some(now_ms() - 60_000),
    ));
    let (got, cursor, _) = drain(&p, Some(cursor)).await;
    assert_eq!(ids(&got), [late.to_string()]);
    // Ten minutes late is beyond a 2-minute overlap, and within a 15-minute one.
    let later = st.create_deal(&deal(
        "3",
        None,
        &["ana@example.com"],
        Some(now_ms() - 600_000),
    ));
    let (got, _, _) = drain(&p, Some(cursor.clone())).await;
    assert!(got.is_empty());
    let wide = poller(&sb, json!({"outcome_overlap": "15m"}));
    let (got, _, _) = drain(&wide, Some(cursor)).await;
    assert_eq!(ids(&got), [later.to_string()]);
}

#[tokio::test]
async fn pages_say_more_and_every_cursor_is_safe_to_commit() {
    let sb = sandbox().await;
    let st = sb.state();
    st.add_person("Ana", "ana@example.com");
    let t0 = now_ms() - 100_000;
    let made: Vec<String> = (0..10)
        .map(|i| {
            st.create_deal(&deal("1", None, &["ana@example.com"], Some(t0 + i * 1000)))
                .to_string()
        })
        .collect();
    let p = poller(&sb, json!({"outcomes_since": "2020-01-01T00:00:00Z"})).with_page_size(4);
    let page1 = p.poll_outcomes(None).await.unwrap();
    assert!(page1.more);
    assert_eq!(ids(&page1.outcomes), made[..4]);
    let page2 = p.poll_outcomes(Some(&page1.next_cursor)).await.unwrap();
    assert!(page2.more);
    assert_eq!(ids(&page2.outcomes), made[4..7]);
    // A crash before page 2 was committed: the same cursor reads the same deals again.
    let replay = p.poll_outcomes(Some(&page1.next_cursor)).await.unwrap();
    assert_eq!(ids(&replay.outcomes), ids(&page2.outcomes));
    let page3 = p.poll_outcomes(Some(&page2.next_cursor)).await.unwrap();
    assert!(!page3.more);
    assert_eq!(ids(&page3.outcomes), made[7..]);
    // outcomes_since bounds the first poll.
    let recent = poller(
        &sb,
        json!({"outcomes_since": jiff::Timestamp::from_millisecond(t0 + 8_000).unwrap().to_string()}),
    );
    let (got, _, _) = drain(&recent, None).await;
    assert_eq!(ids(&got), made[8..]);
}

#[tokio::test]
async fn a_deal_changed_while_paging_shifts_no_other_deal_out() {
    let sb = sandbox().await;
    let st = sb.state();
    st.add_person("Ana", "ana@example.com");
    let t0 = now_ms() - 100_000;
    let made: Vec<u64> = (0..6)
        .map(|i| st.create_deal(&deal("1", None, &["ana@example.com"], Some(t0 + i * 1000))))
        .collect();
    let p = poller(&sb, json!({})).with_page_size(2);
    let page1 = p.poll_outcomes(None).await.unwrap();
    assert_eq!(
        ids(&page1.outcomes),
        [made[0].to_string(), made[1].to_string()]
    );
    // The first deal moves to the end of the list; an offset cursor would now skip deal 3.
    st.move_deal(made[0], "2", None, None);
    let (rest, _, _) = drain(&p, Some(page1.next_cursor)).await;
    let expected: Vec<String> = made[2..]
        .iter()
        .chain(&made[..1])
        .map(u64::to_string)
        .collect();
    assert_eq!(ids(&rest), expected);
    assert_eq!(rest.last().map(|o| o.stage.as_str()), Some("2"));
}

#[tokio::test]
async fn amounts_are_exact_minor_units_of_each_deals_currency() {
    let sb = sandbox().await;
    let st = sb.state();
    st.add_person("Ana", "ana@example.com");
    for (amount, currency) in [
        ("1500", "JPY"),
        ("12.345", "KWD"),
        ("99.99", "EUR"),
        ("0", "EUR"),
    ] {
        let mut d = deal("1", Some(amount), &["ana@example.com"], None);
        d.currency = Some(currency.into());
        st.create_deal(&d);
    }
    let (got, _, _) = drain(&poller(&sb, json!({"currency": "CHF"})), None).await;
    let amounts: Vec<_> = got
        .iter()
        .map(|o| (o.amount_minor, o.currency.clone().unwrap_or_default()))
        .collect();
    assert_eq!(
        amounts,
        [
            (Some(1500), "JPY".to_owned()),
            (Some(12_345), "KWD".to_owned()),
            (Some(9_999), "EUR".to_owned()),
            (None, "EUR".to_owned()),
        ]
    );
}

#[tokio::test]
async fn throttling_and_bad_credentials_are_classified() {
    // Another app on the same token spent the burst window: Pipedrive's 429 with its wait.
    let sb = sandbox_with(crate::pipedrive::sandbox::SandboxOptions {
        rate_limit: 1,
        ..options()
    })
    .await;
    poller(&sb, json!({}))
        .poll_outcomes(None)
        .await
        .expect("the other app's poll");
    let p = poller(&sb, json!({}));
    match p.poll_outcomes(None).await {
        Err(CallError::RateLimited {
            message,
            retry_after,
        }) => {
            assert!(
                message.contains("Pipedrive 429: Request over limit"),
                "{message}"
            );
            assert!(
                retry_after >= Duration::from_secs(1) && retry_after <= Duration::from_secs(2),
                "{retry_after:?}"
            );
        }
        other => panic!("{other:?}"),
    }
    let sb = sandbox().await;
    let bad = poller(&sb, json!({"api_token": "not-the-token"}));
    match bad.poll_outcomes(None).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("unauthorized access"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // An unreadable stored cursor starts over rather than wedging the source.
    sb.state().add_person("Ana", "ana@example.com");
    sb.state()
        .create_deal(&deal("1", None, &["ana@example.com"], None));
    let page = poller(&sb, json!({}))
        .poll_outcomes(Some("garbage"))
        .await
        .unwrap();
    assert_eq!(page.outcomes.len(), 1);
}
