//! The deal side over loopback HTTP against the sandbox: the Deals poll (contact, verdicts by
//! stage, amounts, keyset paging over equal stamps, late writes), the attribution fields written
//! back (partial failures, cut values), and how refusals classify.

use std::collections::BTreeMap;
use std::time::Duration;

use crate::{
    ConnectorContext, LeadSink,
    model::SinkRecord,
    outcome::{DealState, Outcome, OutcomePage, OutcomeSource},
    sink::{CallError, ItemResult},
    writeback::{
        AttributionSummary, Conversion, CreditSummary, Milestone, TouchSummary, WritebackAction,
        WritebackSink,
    },
};

use super::{
    ZohoClient, ZohoConfig, ZohoDealFields, ZohoOutcomes,
    sandbox::{SandboxOptions, ZohoSandbox, deals::NewDeal},
};

struct Org {
    sandbox: ZohoSandbox,
}

async fn org(options: SandboxOptions) -> Org {
    let sandbox = ZohoSandbox::start("127.0.0.1:0".parse().unwrap(), options)
        .await
        .unwrap();
    Org { sandbox }
}

impl Org {
    fn config(&self, extra: serde_json::Value) -> ZohoConfig {
        let o = self.sandbox.options();
        let base = self.sandbox.base_url();
        let mut c = serde_json::json!({
            "client_id": o.client_id,
            "client_secret": o.client_secret,
            "refresh_token": o.refresh_token,
            "accounts_url": base,
            "base_url": base,
            "timeout": "2s",
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let config: ZohoConfig = serde_json::from_value(c).unwrap();
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        config
    }

    fn outcomes(&self, extra: serde_json::Value) -> ZohoOutcomes {
        ZohoOutcomes::new(&self.config(extra), ConnectorContext::in_memory("zoho")).unwrap()
    }

    fn fields_sink(&self, extra: serde_json::Value) -> ZohoDealFields {
        ZohoDealFields::new(&self.config(extra), ConnectorContext::in_memory("zoho")).unwrap()
    }

    /// Delivers leads the way the daemon does; returns the Lead id each got.
    async fn deliver(&self, emails: &[&str]) -> Vec<String> {
        let sink = ZohoClient::new(
            &self.config(serde_json::json!({})),
            ConnectorContext::in_memory("zoho"),
        )
        .unwrap();
        let batch: Vec<SinkRecord> = emails
            .iter()
            .enumerate()
            .map(|(i, e)| SinkRecord {
                delivery_id: i as i64 + 1,
                properties: BTreeMap::from([
                    ("Email".to_owned(), (*e).to_owned()),
                    ("Last_Name".to_owned(), format!("Person{i}")),
                ]),
                conflict: BTreeMap::new(),
                remote_id: None,
            })
            .collect();
        sink.upsert_people(&batch)
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|r| match r {
                ItemResult::Done { remote_id, .. } => remote_id,
                other => panic!("{other:?}"),
            })
            .collect()
    }

    fn deal(
        &self,
        stage: &str,
        amount: Option<&str>,
        emails: &[&str],
        at_ms: Option<i64>,
    ) -> String {
        let emails: Vec<String> = emails.iter().map(|e| (*e).to_owned()).collect();
        self.sandbox.state().create_deal(NewDeal {
            stage,
            amount,
            currency: None,
            contact_emails: &emails,
            at_ms,
        })
    }
}

/// The `key = value` lines of a sandbox's connector table as JSON (strings, booleans), enough to
/// check that the lines the closed-loop suite uses parse into this connector's config.
fn table_lines(text: &str) -> serde_json::Value {
    let mut map = serde_json::Map::new();
    for line in text.lines().map(str::trim).filter(|l| !l.is_empty()) {
        let (k, v) = line.split_once('=').expect("key = value");
        let (k, v) = (k.trim(), v.trim());
        if k == "kind" {
            continue;
        }
        let v = match v {
            "true" => serde_json::Value::Bool(true),
            "false" => serde_json::Value::Bool(false),
            quoted => serde_json::Value::String(quoted.trim_matches('"').to_owned()),
        };
        map.insert(k.to_owned(), v);
    }
    serde_json::Value::Object(map)
}

fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

fn ids(outcomes: &[Outcome]) -> Vec<&str> {
    outcomes.iter().map(|o| o.deal_id.as_str()).collect()
}

/// Polls until a pass ends; every page's outcomes, in order.
async fn drain(source: &impl OutcomeSource, cursor: &mut Option<String>) -> Vec<Vec<Outcome>> {
    let mut pages = Vec::new();
    for _ in 0..50 {
        let OutcomePage {
            outcomes,
            next_cursor,
            more,
        } = source.poll_outcomes(cursor.as_deref()).await.unwrap();
        pages.push(outcomes);
        *cursor = Some(next_cursor);
        if !more {
            return pages;
        }
    }
    panic!("the poll never finished a pass");
}

#[tokio::test]
async fn deals_are_polled_with_their_contact_and_the_verdict_of_their_stage() {
    let org = org(SandboxOptions::default()).await;
    let leads = org.deliver(&["ann@example.com", "bob@example.com"]).await;
    let open = org.deal("Qualification", Some("1500.50"), &["ann@example.com"], None);
    let won = org.deal("Closed Won", Some("2000"), &["bob@example.com"], None);
    let lost = org.deal("Closed-Lost to Competition", None, &[], None);
    let source = org.outcomes(serde_json::json!({}));
    assert_eq!(source.interval(), Duration::from_secs(60));
    assert_eq!(source.rate_limit().to_string(), "10/1s");

    let page = source.poll_outcomes(None).await.unwrap();
    assert!(!page.more);
    assert_eq!(
        ids(&page.outcomes),
        [open.as_str(), won.as_str(), lost.as_str()]
    );
    let o = &page.outcomes[0];
    assert_eq!(
        (o.stage.as_str(), o.state),
        ("Qualification", DealState::Open)
    );
    assert_eq!(
        (o.amount_minor, o.currency.as_deref()),
        (Some(150_050), Some("USD"))
    );
    assert_eq!(o.closed_at_ms, None);
    // The Lead was converted into a Contact: its id is new, its email links it to the lead.
    assert_eq!(o.contacts.len(), 1);
    assert_ne!(o.contacts[0].remote_id, leads[0]);
    assert_eq!(o.contacts[0].email.as_deref(), Some("ann@example.com"));
    let contact = org
        .sandbox
        .state()
        .record("Contacts", &o.contacts[0].remote_id)
        .expect("Contact_Name is a Contact id");
    assert_eq!(contact.fields["Last_Name"], "Person0");
    let w = &page.outcomes[1];
    assert_eq!((w.state, w.amount_minor), (DealState::Won, Some(200_000)));
    assert_eq!(
        w.closed_at_ms,
        Some(w.modified_at_ms + 999),
        "Closing_Date is a date: a deal closed today closes at its last change"
    );
    let l = &page.outcomes[2];
    assert_eq!((l.state, l.amount_minor), (DealState::Lost, None));
    assert!(l.contacts.is_empty());
    let q = org.sandbox.stats().queries.last().cloned().unwrap();
    assert!(
        q.contains("from Deals where Modified_Time >= '") && q.ends_with("limit 200"),
        "{q}"
    );

    // Moved in the UI: the next pass reports the new verdict.
    org.sandbox
        .state()
        .move_deal(&open, "Closed Won", Some("1800"), Some(now_ms() + 2_000));
    let again = source.poll_outcomes(Some(&page.next_cursor)).await.unwrap();
    let moved = again.outcomes.iter().find(|o| o.deal_id == open).unwrap();
    assert_eq!(
        (moved.state, moved.amount_minor),
        (DealState::Won, Some(180_000))
    );

    // A custom closed stage, configured.
    org.sandbox
        .state()
        .move_deal(&open, "Negotiation/Review", None, Some(now_ms() + 3_000));
    let custom = org.outcomes(serde_json::json!({"lost_stages": ["negotiation/review"]}));
    let page = custom.poll_outcomes(None).await.unwrap();
    let o = page.outcomes.iter().find(|o| o.deal_id == open).unwrap();
    assert_eq!(o.state, DealState::Lost);
}

#[tokio::test]
async fn equal_stamps_across_pages_are_read_by_keyset_and_late_writes_within_the_overlap() {
    let org = org(SandboxOptions::default()).await;
    let at = now_ms() - 10_000;
    let deals: Vec<String> = (0..450)
        .map(|_| org.deal("Qualification", Some("1"), &[], Some(at)))
        .collect();
    let source = org.outcomes(serde_json::json!({}));
    let mut cursor = None;
    let pages = drain(&source, &mut cursor).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [200, 200, 50]);
    let seen: Vec<&str> = pages.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(
        seen,
        deals.iter().map(String::as_str).collect::<Vec<_>>(),
        "all, once, in order"
    );
    let queries = org.sandbox.stats().queries;
    assert!(
        queries[1].contains("(Modified_Time = '")
            && queries[1].contains(&format!("(id > {}))", deals[199])),
        "{}",
        queries[1]
    );

    // A deal written 60 s ago by a slow transaction, visible only now.
    let late = org.deal(
        "Proposal/Price Quote",
        Some("5"),
        &[],
        Some(now_ms() - 60_000),
    );
    let again = drain(&source, &mut cursor).await;
    assert!(again.iter().flatten().any(|o| o.deal_id == late));

    // The first poll starts 30 days back unless told otherwise.
    let old = org.deal("Qualification", None, &[], Some(now_ms() - 40 * 86_400_000));
    let mut fresh = None;
    let all = drain(&source, &mut fresh).await;
    assert!(!all.iter().flatten().any(|o| o.deal_id == old));
    let since = jiff::Timestamp::from_millisecond(now_ms() - 50 * 86_400_000).unwrap();
    let from_since = org.outcomes(serde_json::json!({"outcomes_since": since.to_string()}));
    assert_eq!(
        ids(&from_since.poll_outcomes(None).await.unwrap().outcomes)[0],
        old
    );
}

#[tokio::test]
async fn amounts_are_minor_units_of_the_deals_or_the_configured_currency() {
    let org = org(SandboxOptions {
        multi_currency: true,
        ..SandboxOptions::default()
    })
    .await;
    let jpy = org.sandbox.state().create_deal(NewDeal {
        stage: "Closed Won",
        amount: Some("1500"),
        currency: Some("JPY"),
        ..NewDeal::default()
    });
    let usd = org.deal("Closed Won", Some("10.505"), &[], None);
    let source = org.outcomes(serde_json::json!({"multi_currency": true}));
    let page = source.poll_outcomes(None).await.unwrap();
    let by_id = |id: &str| {
        page.outcomes
            .iter()
            .find(|o| o.deal_id == id)
            .unwrap()
            .clone()
    };
    assert_eq!(
        (by_id(&jpy).amount_minor, by_id(&jpy).currency),
        (Some(1500), Some("JPY".into()))
    );
    assert_eq!(
        (by_id(&usd).amount_minor, by_id(&usd).currency),
        (Some(1051), Some("USD".into()))
    );

    let single = self::org(SandboxOptions::default()).await;
    single.deal("Closed Won", Some("99.99"), &[], None);
    let eur = single.outcomes(serde_json::json!({"currency": "EUR"}));
    let o = &eur.poll_outcomes(None).await.unwrap().outcomes[0];
    assert_eq!(
        (o.amount_minor, o.currency.as_deref()),
        (Some(9999), Some("EUR"))
    );
    // multi_currency against an org without it: Zoho's own words, for good.
    let wrong = single.outcomes(serde_json::json!({"multi_currency": true}));
    match wrong.poll_outcomes(None).await {
        Err(CallError::Permanent { message }) => {
            assert!(message.contains("INVALID_QUERY"), "{message}")
        }
        other => panic!("{other:?}"),
    }
    // An empty org answers 204: an empty page, and the pass ends.
    let empty = self::org(SandboxOptions::default()).await;
    let page = empty
        .outcomes(serde_json::json!({}))
        .poll_outcomes(None)
        .await
        .unwrap();
    assert!(page.outcomes.is_empty() && !page.more);
}

fn touch(source: &str, medium: Option<&str>) -> TouchSummary {
    TouchSummary {
        source: source.to_owned(),
        medium: medium.map(str::to_owned),
        campaign: None,
        captured_at_ms: 0,
    }
}

fn attributed() -> AttributionSummary {
    let first = touch("google", Some("cpc"));
    let last = touch("newsletter", Some("email"));
    AttributionSummary {
        model: "position_based".to_owned(),
        first_touch: Some(first.clone()),
        last_touch: Some(last.clone()),
        credits: vec![
            CreditSummary {
                touch: first,
                weight: 0.5,
                amount_minor: 50,
            },
            CreditSummary {
                touch: last,
                weight: 0.5,
                amount_minor: 50,
            },
        ],
    }
}

fn conversion(deal: &str, action: WritebackAction, attribution: AttributionSummary) -> Conversion {
    Conversion {
        delivery_id: 9,
        key: format!("zoho:{deal}:won"),
        request_key: format!("zoho:{deal}:won"),
        action,
        milestone: Milestone::Won,
        crm: "zoho".to_owned(),
        crm_kind: "zoho".to_owned(),
        deal_id: deal.to_owned(),
        occurred_at_ms: 0,
        value_minor: Some(100),
        currency: Some("USD".to_owned()),
        person: Default::default(),
        clicks: Default::default(),
        attribution,
    }
}

#[tokio::test]
async fn deal_fields_are_written_per_deal_with_partial_failures_mapped_to_their_item() {
    let org = org(SandboxOptions::default()).await;
    let d1 = org.deal("Closed Won", Some("100"), &[], None);
    let d2 = org.deal("Qualification", None, &[], None);
    let sink = org.fields_sink(serde_json::json!({}));
    assert_eq!(sink.max_batch(), 100);
    assert!(Milestone::ALL.iter().all(|m| sink.accepts(*m)));
    assert!(sink.supports(WritebackAction::Retract) && sink.supports(WritebackAction::Restate));
    let batch = [
        conversion(&d1, WritebackAction::Send, attributed()),
        conversion("5725767000000999999", WritebackAction::Send, attributed()),
        conversion(&d2, WritebackAction::Send, attributed()),
        conversion("006Dn00000000001AAA", WritebackAction::Send, attributed()),
    ];
    let out = sink.send(&batch).await.unwrap();
    assert_eq!(
        out.items[0],
        ItemResult::Done {
            remote_id: d1.clone(),
            created: false
        }
    );
    assert_eq!(
        out.items[1],
        ItemResult::Permanent {
            message: "INVALID_DATA: the id given seems to be invalid (field id)".into()
        }
    );
    assert!(matches!(&out.items[2], ItemResult::Done { remote_id, .. } if *remote_id == d2));
    assert!(
        matches!(&out.items[3], ItemResult::Permanent { message } if message.contains("not a Zoho Deal id"))
    );
    let f = org.sandbox.state().record("Deals", &d1).unwrap().fields;
    assert_eq!(f["Tandem_First_Touch"], "google / cpc");
    assert_eq!(f["Tandem_Last_Touch"], "newsletter / email");
    assert_eq!(
        f["Tandem_Attribution"],
        "position_based: 50% google / cpc; 50% newsletter / email"
    );
    assert_eq!(f["Stage"], "Closed Won", "nothing else touched");
    let stats = org.sandbox.stats();
    assert_eq!(
        (stats.update_calls, stats.batch_sizes.last().copied()),
        (1, Some(3))
    );

    // All refused (400 with one answer each) is still per record; a retraction clears the
    // touches; a long label is cut to the field's 255 characters.
    let out = sink
        .send(&[conversion(
            "5725767000000999998",
            WritebackAction::Send,
            attributed(),
        )])
        .await
        .unwrap();
    assert!(
        matches!(&out.items[0], ItemResult::Permanent { message } if message.contains("INVALID_DATA"))
    );
    let retract = AttributionSummary {
        model: "linear".to_owned(),
        ..AttributionSummary::default()
    };
    let long = AttributionSummary {
        last_touch: Some(touch(&"y".repeat(400), None)),
        ..attributed()
    };
    let out = sink
        .send(&[
            conversion(&d1, WritebackAction::Retract, retract),
            conversion(&d2, WritebackAction::Restate, long),
        ])
        .await
        .unwrap();
    assert!(
        out.items
            .iter()
            .all(|i| matches!(i, ItemResult::Done { .. })),
        "{out:?}"
    );
    let f = org.sandbox.state().record("Deals", &d1).unwrap().fields;
    assert!(!f.contains_key("Tandem_First_Touch") && !f.contains_key("Tandem_Last_Touch"));
    assert_eq!(f["Tandem_Attribution"], "linear: unattributed");
    let cut = &org.sandbox.state().record("Deals", &d2).unwrap().fields["Tandem_Last_Touch"];
    assert_eq!(cut.chars().count(), 255);
    assert!(cut.ends_with('…'));
}

#[tokio::test]
async fn throttles_outages_and_dead_credentials_are_classified() {
    let org = org(SandboxOptions::default()).await;
    let d1 = org.deal("Closed Won", Some("100"), &[], None);
    let sink = org.fields_sink(serde_json::json!({}));
    let one = [conversion(&d1, WritebackAction::Send, attributed())];
    org.sandbox.set_faults(crate::sandbox::CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        sink.send(&one).await,
        Err(CallError::RateLimited { message, .. }) if message.contains("TOO_MANY_REQUESTS")
    ));
    org.sandbox.set_faults(crate::sandbox::CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(
        matches!(sink.send(&one).await, Err(CallError::Transient { message, .. }) if message.contains("INTERNAL_ERROR"))
    );
    assert!(sink.send(&one).await.is_ok(), "the fault was one call");

    // The day's credits are spent: the poll waits until the oldest frees up.
    let tight = self::org(SandboxOptions {
        daily_credits: 1,
        ..SandboxOptions::default()
    })
    .await;
    let source = tight.outcomes(serde_json::json!({}));
    assert!(source.poll_outcomes(None).await.is_ok(), "one credit");
    match source.poll_outcomes(None).await {
        Err(CallError::RateLimited {
            retry_after,
            message,
        }) => {
            assert!(message.contains("TOO_MANY_REQUESTS"), "{message}");
            assert!(
                retry_after > Duration::from_secs(23 * 3600),
                "{retry_after:?}"
            );
        }
        other => panic!("{other:?}"),
    }

    // The grant is revoked: every call pauses the connector.
    let source = org.outcomes(serde_json::json!({}));
    assert!(source.poll_outcomes(None).await.is_ok());
    org.sandbox.revoke_refresh_token();
    assert!(matches!(
        source.poll_outcomes(None).await,
        Err(CallError::Auth { .. })
    ));
    assert!(matches!(sink.send(&one).await, Err(CallError::Auth { .. })));
}

#[tokio::test]
async fn verify_checks_the_deal_fields_the_currency_mode_and_the_stages() {
    let org = org(SandboxOptions::default()).await;
    assert_eq!(
        org.fields_sink(serde_json::json!({})).verify().await,
        Vec::<String>::new()
    );
    let problems = org
        .fields_sink(serde_json::json!({
            "deal_fields": {"first_touch": "tandem_first_touch", "last_touch": "Amount", "attribution": "Modified_Time"},
            "multi_currency": true,
            "won_stages": ["Closed Won", "Signed"]
        }))
        .verify()
        .await;
    assert_eq!(problems.len(), 5, "{problems:?}");
    assert!(
        problems[0].contains("did you mean \"Tandem_First_Touch\""),
        "{problems:?}"
    );
    assert!(problems[1].contains("has type currency"), "{problems:?}");
    assert!(problems[2].contains("read-only"), "{problems:?}");
    assert!(problems[3].contains("multi_currency"), "{problems:?}");
    assert!(
        problems[4].contains("\"Signed\"") && problems[4].contains("Closed Won"),
        "{problems:?}"
    );
    org.sandbox.revoke_refresh_token();
    let dead = org.fields_sink(serde_json::json!({})).verify().await;
    assert!(
        dead[0].contains("could not list the Deals fields") && dead[0].contains("scopes"),
        "{dead:?}"
    );
}

#[tokio::test]
async fn the_conformance_handle_plays_salesperson_and_has_no_webhook() {
    let crm = super::sandbox::conformance::start().await.unwrap();
    let deals = crm.deals().expect("zoho has a deal side");
    assert_eq!(deals.stages().lost, "Closed Lost");
    assert!(
        deals
            .outcome_toml()
            .contains("outcome_poll_interval = \"200ms\"")
    );
    let id = deals.create_deal(crate::sandbox::SandboxDeal {
        stage: deals.stages().opportunity,
        amount: Some("12.00".to_owned()),
        ..Default::default()
    });
    deals.move_deal(&id, &deals.stages().won, None, None);
    let f = deals.deal_fields(&id);
    assert_eq!(
        (f["Stage"].as_str(), f["Probability"].as_str()),
        ("Closed Won", "100")
    );
    assert!(f.contains_key("Closing_Date"));
    // The lines the closed-loop suite puts in its config parse, and a deal's own currency and
    // people reach the outcome.
    let lines = format!("{}{}", crm.connector_toml(), deals.outcome_toml());
    let config: ZohoConfig = serde_json::from_value(table_lines(&lines)).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    assert_eq!(config.outcome_poll_interval.0, Duration::from_millis(200));
    let eur = deals.create_deal(crate::sandbox::SandboxDeal {
        stage: deals.stages().won,
        amount: Some("1500.00".to_owned()),
        currency: Some("EUR".to_owned()),
        contact_emails: vec!["eur@example.com".to_owned()],
        ..Default::default()
    });
    let source = ZohoOutcomes::new(&config, ConnectorContext::in_memory("crm")).unwrap();
    let page = source.poll_outcomes(None).await.unwrap();
    let o = page.outcomes.iter().find(|o| o.deal_id == eur).unwrap();
    assert_eq!(
        (o.amount_minor, o.currency.as_deref(), o.state),
        (Some(150_000), Some("EUR"), DealState::Won)
    );
    assert_eq!(o.contacts[0].email.as_deref(), Some("eur@example.com"));
    assert_eq!(
        deals.notify("http://127.0.0.1:9/hooks/zoho", &id).await,
        None
    );
}

#[tokio::test]
async fn forget_deletes_people_by_id_and_counts_missing_ones_as_deleted() {
    let org = org(SandboxOptions::default()).await;
    let leads = org.deliver(&["gone@example.com", "also@example.com"]).await;
    let sink = ZohoClient::new(
        &org.config(serde_json::json!({})),
        ConnectorContext::in_memory("zoho"),
    )
    .unwrap();
    assert!(sink.supports_forget());
    let record = |id: &str| crate::ForgetRecord {
        delivery_id: 1,
        remote_id: id.to_owned(),
    };
    let missing = "5725767000000999999";
    let out = sink
        .forget(&[
            record(&leads[0]),
            record(missing),
            record("12,34"),
            record(&leads[1]),
        ])
        .await
        .unwrap();
    let done = |id: &str| ItemResult::Done {
        remote_id: id.to_owned(),
        created: false,
    };
    assert_eq!(out.items[0], done(&leads[0]));
    assert_eq!(
        out.items[1],
        done(missing),
        "no such record: already deleted"
    );
    assert!(
        matches!(&out.items[2], ItemResult::Permanent { message } if message.contains("not a Zoho record id"))
    );
    assert_eq!(out.items[3], done(&leads[1]));
    assert!(org.sandbox.records("Leads").is_empty());
    let stats = org.sandbox.stats();
    assert_eq!((stats.delete_calls, stats.deleted), (1, 2));
    // All missing: Zoho answers 400 with one entry each, still per record.
    let again = sink.forget(&[record(&leads[0])]).await.unwrap();
    assert_eq!(again.items[0], done(&leads[0]));
    org.sandbox.set_faults(crate::sandbox::CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        sink.forget(&[record(&leads[0])]).await,
        Err(CallError::RateLimited { .. })
    ));
    org.sandbox.revoke_refresh_token();
    assert!(matches!(
        sink.forget(&[record(&leads[0])]).await,
        Err(CallError::Auth { .. })
    ));
}
