//! The deal side over loopback HTTP against the sandbox org: the Opportunity poll (people,
//! verdicts, amounts, paging, equal stamps, late writes, expired query locators), the
//! attribution fields written back (partial failures, cut values), and how refusals classify.

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
    SalesforceConfig, SalesforceDealFields, SalesforceOutcomes,
    limits::CONCURRENT_WAIT,
    sandbox::{NewDeal, SalesforceSandbox, SandboxOptions},
};

struct Org {
    sandbox: SalesforceSandbox,
    options: SandboxOptions,
}

async fn org(options: SandboxOptions) -> Org {
    let sandbox = SalesforceSandbox::start("127.0.0.1:0".parse().unwrap(), options.clone())
        .await
        .unwrap();
    Org { sandbox, options }
}

impl Org {
    fn config(&self, extra: serde_json::Value) -> SalesforceConfig {
        let mut c = serde_json::json!({
            "login_url": self.sandbox.base_url(),
            "client_id": self.options.client_id,
            "client_secret": self.options.client_secret,
            "refresh_token": self.options.refresh_token,
            "object": "Lead",
            "match": "external_id",
            "external_id_field": "Tandem_Email__c",
            "timeout": "2s",
        });
        c.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        let config: SalesforceConfig = serde_json::from_value(c).unwrap();
        assert!(config.validate().is_empty(), "{:?}", config.validate());
        config
    }

    fn outcomes(&self, extra: serde_json::Value) -> SalesforceOutcomes {
        SalesforceOutcomes::new(&self.config(extra), ConnectorContext::in_memory("sf")).unwrap()
    }

    fn fields_sink(&self, extra: serde_json::Value) -> SalesforceDealFields {
        SalesforceDealFields::new(&self.config(extra), ConnectorContext::in_memory("sf")).unwrap()
    }

    /// Delivers leads the way the daemon does; returns the Lead id each got.
    async fn deliver(&self, emails: &[&str]) -> Vec<String> {
        let sink = super::SalesforceClient::new(
            &self.config(serde_json::json!({})),
            ConnectorContext::in_memory("sf"),
        )
        .unwrap();
        let batch: Vec<SinkRecord> = emails
            .iter()
            .enumerate()
            .map(|(i, e)| SinkRecord {
                delivery_id: i as i64 + 1,
                properties: BTreeMap::from([
                    ("Email".to_owned(), (*e).to_owned()),
                    ("LastName".to_owned(), format!("Person{i}")),
                ]),
                conflict: BTreeMap::new(),
                remote_id: None,
            })
            .collect();
        let out = sink.upsert_people(&batch).await.unwrap();
        out.items
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
        self.sandbox.state().create_opportunity(NewDeal {
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

fn ids(outcomes: &[Outcome]) -> Vec<&str> {
    outcomes.iter().map(|o| o.deal_id.as_str()).collect()
}

#[tokio::test]
async fn deals_are_polled_with_their_people_and_the_crms_verdict() {
    let org = org(SandboxOptions::default()).await;
    let leads = org.deliver(&["ann@example.com", "bob@example.com"]).await;
    let open = org.deal(
        "Qualification",
        Some("1500.50"),
        &["ann@example.com", "bob@example.com"],
        None,
    );
    let won = org.deal("Closed Won", Some("2000"), &["bob@example.com"], None);
    let lost = org.deal("Closed Lost", None, &[], None);
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
    assert_eq!(o.pipeline, None);
    // The Contacts are converted Leads: the ids are the ones the deliveries got back.
    let people: Vec<(&str, Option<&str>)> = o
        .contacts
        .iter()
        .map(|c| (c.remote_id.as_str(), c.email.as_deref()))
        .collect();
    assert_eq!(
        people,
        [
            (leads[0].as_str(), Some("ann@example.com")),
            (leads[1].as_str(), Some("bob@example.com"))
        ]
    );
    let w = &page.outcomes[1];
    assert_eq!(w.state, DealState::Won);
    assert_eq!(w.amount_minor, Some(200_000));
    assert_eq!(
        w.closed_at_ms,
        Some(w.modified_at_ms + 999),
        "CloseDate is a date: a deal closed today closes at its last change"
    );
    assert_eq!(w.contacts.len(), 1);
    assert_eq!(w.contacts[0].remote_id, leads[1]);
    let l = &page.outcomes[2];
    assert_eq!((l.state, l.amount_minor), (DealState::Lost, None));
    assert!(l.contacts.is_empty());
    // One request for the deals and their people, one mapping Contacts back to Leads.
    let queries: Vec<String> = org
        .sandbox
        .stats()
        .log
        .iter()
        .filter(|r| r.path.ends_with("/query"))
        .filter_map(|r| r.query.clone())
        .skip_while(|q| !q.contains("Opportunity"))
        .collect();
    assert_eq!(queries.len(), 2, "{queries:?}");
    assert!(
        queries[0].contains("OpportunityContactRoles"),
        "{queries:?}"
    );
    assert!(queries[1].contains("ConvertedContactId"), "{queries:?}");

    // A salesperson wins the open deal: the next pass reports it.
    org.sandbox
        .state()
        .move_opportunity(&open, "Closed Won", Some("1800"), Some(now_ms() + 2_000));
    let again = source.poll_outcomes(Some(&page.next_cursor)).await.unwrap();
    let moved = again
        .outcomes
        .iter()
        .find(|o| o.deal_id == open)
        .expect("the moved deal is read again");
    assert_eq!(
        (moved.state, moved.amount_minor, moved.stage.as_str()),
        (DealState::Won, Some(180_000), "Closed Won")
    );

    // Contacts: the Contact ids themselves when the connector writes Contacts.
    let contacts = org.outcomes(serde_json::json!({"object": "Contact"}));
    let page = contacts.poll_outcomes(None).await.unwrap();
    let o = page.outcomes.iter().find(|o| o.deal_id == won).unwrap();
    assert!(
        o.contacts[0].remote_id.starts_with("003"),
        "{:?}",
        o.contacts
    );
    assert_eq!(o.contacts[0].email.as_deref(), Some("bob@example.com"));
}

#[tokio::test]
async fn equal_stamps_across_pages_and_expired_locators_lose_nothing() {
    let org = org(SandboxOptions {
        query_page_size: 2,
        ..SandboxOptions::default()
    })
    .await;
    let at = now_ms() - 10_000;
    let deals: Vec<String> = (0..5)
        .map(|_| org.deal("Qualification", Some("10"), &[], Some(at)))
        .collect();
    let source = org.outcomes(serde_json::json!({}));
    let mut cursor = None;
    let pages = drain(&source, &mut cursor).await;
    let sizes: Vec<usize> = pages.iter().map(Vec::len).collect();
    assert_eq!(sizes, [2, 2, 1], "three pages of one query");
    let seen: Vec<&str> = pages.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(seen, deals.iter().map(String::as_str).collect::<Vec<_>>());
    assert!(
        pages
            .iter()
            .flatten()
            .all(|o| o.modified_at_ms == at - at.rem_euclid(1000))
    );

    // Next pass (the overlap re-reads them): one page, then the locator expires before the
    // next poll, as after a crash or a long pause. The poll re-queries after the last row.
    let first = source.poll_outcomes(cursor.as_deref()).await.unwrap();
    assert!(first.more);
    assert_eq!(ids(&first.outcomes), [deals[0].as_str(), deals[1].as_str()]);
    org.sandbox.state().expire_query_locators();
    let mut cursor = Some(first.next_cursor);
    let rest = drain(&source, &mut cursor).await;
    let seen: Vec<&str> = rest.iter().flat_map(|p| ids(p)).collect();
    assert_eq!(
        seen,
        [deals[2].as_str(), deals[3].as_str(), deals[4].as_str()]
    );
    let last_query = org
        .sandbox
        .stats()
        .log
        .iter()
        .rev()
        .find(|r| r.path.ends_with("/query"))
        .and_then(|r| r.query.clone())
        .unwrap();
    assert!(
        last_query.contains("Id+%3E+") || last_query.contains("Id%20%3E"),
        "{last_query}"
    );
}

#[tokio::test]
async fn a_late_write_is_found_within_the_overlap_and_the_first_poll_starts_where_configured() {
    let org = org(SandboxOptions::default()).await;
    let old = org.deal("Qualification", None, &[], Some(now_ms() - 40 * 86_400_000));
    let first = org.deal("Qualification", None, &[], None);
    let source = org.outcomes(serde_json::json!({}));
    let page = source.poll_outcomes(None).await.unwrap();
    assert_eq!(
        ids(&page.outcomes),
        [first.as_str()],
        "30 days back by default"
    );

    // Written a minute ago by a slow transaction, visible only now: before the cursor.
    let late = org.deal(
        "Proposal/Price Quote",
        Some("5"),
        &[],
        Some(now_ms() - 60_000),
    );
    let next = source.poll_outcomes(Some(&page.next_cursor)).await.unwrap();
    assert!(
        ids(&next.outcomes).contains(&late.as_str()),
        "{:?}",
        ids(&next.outcomes)
    );

    let since = jiff::Timestamp::from_millisecond(now_ms() - 50 * 86_400_000).unwrap();
    let from_since = org.outcomes(serde_json::json!({"outcomes_since": since.to_string()}));
    let page = from_since.poll_outcomes(None).await.unwrap();
    assert_eq!(ids(&page.outcomes)[0], old);
}

#[tokio::test]
async fn amounts_are_minor_units_of_the_deals_or_the_configured_currency() {
    let org = org(SandboxOptions {
        multi_currency: true,
        ..SandboxOptions::default()
    })
    .await;
    let jpy = org.sandbox.state().create_opportunity(NewDeal {
        stage: "Closed Won",
        amount: Some("1500"),
        currency: Some("JPY"),
        contact_emails: &[],
        at_ms: None,
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
    let eur = single.outcomes(serde_json::json!({"currency": "eur"}));
    let o = &eur.poll_outcomes(None).await.unwrap().outcomes[0];
    assert_eq!(
        (o.amount_minor, o.currency.as_deref()),
        (Some(9999), Some("EUR"))
    );
    // multi_currency against an org without it: Salesforce's own words, for good.
    let wrong = single.outcomes(serde_json::json!({"multi_currency": true}));
    match wrong.poll_outcomes(None).await {
        Err(CallError::Permanent { message }) => {
            assert!(
                message.contains("INVALID_FIELD") && message.contains("CurrencyIsoCode"),
                "{message}"
            )
        }
        other => panic!("{other:?}"),
    }
}

fn touch(source: &str, medium: Option<&str>, campaign: Option<&str>) -> TouchSummary {
    TouchSummary {
        source: source.to_owned(),
        medium: medium.map(str::to_owned),
        campaign: campaign.map(str::to_owned),
        captured_at_ms: 0,
    }
}

fn conversion(deal: &str, action: WritebackAction, attribution: AttributionSummary) -> Conversion {
    Conversion {
        delivery_id: 7,
        key: format!("sf:{deal}:won"),
        request_key: format!("sf:{deal}:won"),
        action,
        milestone: Milestone::Won,
        crm: "sf".to_owned(),
        crm_kind: "salesforce".to_owned(),
        deal_id: deal.to_owned(),
        occurred_at_ms: 0,
        value_minor: Some(100),
        currency: Some("USD".to_owned()),
        person: Default::default(),
        clicks: Default::default(),
        attribution,
    }
}

fn attributed() -> AttributionSummary {
    let first = touch("google", Some("cpc"), Some("spring"));
    let last = touch("newsletter", Some("email"), None);
    AttributionSummary {
        model: "linear".to_owned(),
        first_touch: Some(first.clone()),
        last_touch: Some(last.clone()),
        credits: vec![
            CreditSummary {
                touch: first,
                weight: 0.4,
                amount_minor: 40,
            },
            CreditSummary {
                touch: last,
                weight: 0.6,
                amount_minor: 60,
            },
        ],
    }
}

#[tokio::test]
async fn deal_fields_are_written_per_deal_with_partial_failures_mapped_to_their_item() {
    let org = org(SandboxOptions::default()).await;
    let d1 = org.deal("Closed Won", Some("100"), &[], None);
    let d2 = org.deal("Qualification", None, &[], None);
    let sink = org.fields_sink(serde_json::json!({}));
    assert_eq!(sink.max_batch(), 200);
    assert!(Milestone::ALL.iter().all(|m| sink.accepts(*m)));
    assert!(sink.supports(WritebackAction::Retract) && sink.supports(WritebackAction::Restate));
    let missing = "006Dn0000099999AAA";
    let batch = [
        conversion(&d1, WritebackAction::Send, attributed()),
        conversion(missing, WritebackAction::Send, attributed()),
        conversion(&d2, WritebackAction::Send, attributed()),
        conversion("not-an-id", WritebackAction::Send, attributed()),
        conversion(&d2, WritebackAction::Restate, attributed()),
    ];
    let out = sink.send(&batch).await.unwrap();
    assert_eq!(
        out.items[0],
        ItemResult::Done {
            remote_id: d1.clone(),
            created: false
        }
    );
    match &out.items[1] {
        ItemResult::Permanent { message } => {
            assert_eq!(message, "ENTITY_IS_DELETED: entity is deleted")
        }
        other => panic!("{other:?}"),
    }
    assert!(matches!(&out.items[2], ItemResult::Done { remote_id, .. } if *remote_id == d2));
    assert!(
        matches!(&out.items[3], ItemResult::Permanent { message } if message.contains("not a Salesforce Opportunity id"))
    );
    assert_eq!(
        out.items[4], out.items[2],
        "the same deal twice: written once"
    );
    let f = org.sandbox.state().record(&d1).unwrap().fields;
    assert_eq!(f["Tandem_First_Touch__c"], "google / cpc / spring");
    assert_eq!(f["Tandem_Last_Touch__c"], "newsletter / email");
    assert_eq!(
        f["Tandem_Attribution__c"],
        "linear: 40% google / cpc / spring; 60% newsletter / email"
    );
    assert_eq!(f["StageName"], "Closed Won", "nothing else touched");
    let patch = org
        .sandbox
        .stats()
        .log
        .into_iter()
        .rev()
        .find(|r| r.method == "PATCH")
        .unwrap();
    let body = patch.body.unwrap();
    assert_eq!(body["allOrNone"], false);
    assert_eq!(body["records"].as_array().unwrap().len(), 3);
    assert_eq!(body["records"][0]["attributes"]["type"], "Opportunity");
    assert_eq!(
        org.sandbox.stats().batch_sizes,
        [3],
        "one call, one record per deal"
    );

    // A retraction with nothing attributed clears the touches; a long label is cut to fit.
    let retract = AttributionSummary {
        model: "linear".to_owned(),
        ..AttributionSummary::default()
    };
    let long = AttributionSummary {
        first_touch: Some(touch(&"x".repeat(300), None, None)),
        ..attributed()
    };
    let out = sink
        .send(&[
            conversion(&d1, WritebackAction::Retract, retract),
            conversion(&d2, WritebackAction::Send, long),
        ])
        .await
        .unwrap();
    assert!(
        out.items
            .iter()
            .all(|i| matches!(i, ItemResult::Done { .. })),
        "{out:?}"
    );
    let f = org.sandbox.state().record(&d1).unwrap().fields;
    assert!(!f.contains_key("Tandem_First_Touch__c") && !f.contains_key("Tandem_Last_Touch__c"));
    assert_eq!(f["Tandem_Attribution__c"], "linear: unattributed");
    let cut = &org.sandbox.state().record(&d2).unwrap().fields["Tandem_First_Touch__c"];
    assert_eq!(cut.chars().count(), 255);
    assert!(cut.ends_with('…'));
}

#[tokio::test]
async fn throttles_outages_and_dead_credentials_are_classified() {
    let org = org(SandboxOptions::default()).await;
    let d1 = org.deal("Closed Won", Some("100"), &[], None);
    let sink = org.fields_sink(serde_json::json!({}));
    let one = [conversion(&d1, WritebackAction::Send, attributed())];
    org.sandbox.state().set_faults(crate::sandbox::CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match sink.send(&one).await {
        Err(CallError::RateLimited {
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, CONCURRENT_WAIT);
            assert!(message.contains("ConcurrentRequests"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    org.sandbox.state().set_faults(crate::sandbox::CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(
        matches!(sink.send(&one).await, Err(CallError::Transient { message, .. }) if message.contains("SERVER_UNAVAILABLE"))
    );
    assert!(sink.send(&one).await.is_ok(), "the fault was one call");

    // The daily budget is spent: the poll waits out the configured pause.
    let source = org.outcomes(serde_json::json!({"limit_pause": "20m"}));
    org.sandbox.state().set_daily_used(org.options.daily_limit);
    match source.poll_outcomes(None).await {
        Err(CallError::RateLimited {
            retry_after,
            message,
        }) => {
            assert_eq!(retry_after, Duration::from_secs(1200));
            assert!(message.contains("REQUEST_LIMIT_EXCEEDED"), "{message}");
        }
        other => panic!("{other:?}"),
    }
    org.sandbox.state().set_daily_used(0);

    // A dead session with no way to refresh, and a revoked grant: the connector pauses.
    let stale = org.outcomes(serde_json::json!({
        "client_id": null, "client_secret": null, "refresh_token": null,
        "access_token": "00Dbogus", "base_url": org.sandbox.base_url()
    }));
    assert!(
        matches!(stale.poll_outcomes(None).await, Err(CallError::Auth { status: 401, message }) if message.contains("INVALID_SESSION_ID"))
    );
    let fresh = org.outcomes(serde_json::json!({}));
    assert!(fresh.poll_outcomes(None).await.is_ok());
    org.sandbox.state().revoke_refresh_tokens();
    assert!(matches!(
        fresh.poll_outcomes(None).await,
        Err(CallError::Auth { .. })
    ));
    assert!(matches!(sink.send(&one).await, Err(CallError::Auth { .. })));
}

#[tokio::test]
async fn verify_checks_the_deal_fields_and_the_currency_mode() {
    let org = org(SandboxOptions::default()).await;
    assert_eq!(
        org.fields_sink(serde_json::json!({})).verify().await,
        Vec::<String>::new()
    );
    let problems = org
        .fields_sink(serde_json::json!({
            "deal_fields": {"first_touch": "Tandem_First_Tuch__c", "last_touch": "Amount", "attribution": "IsWon"},
            "multi_currency": true
        }))
        .verify()
        .await;
    assert_eq!(problems.len(), 4, "{problems:?}");
    assert!(
        problems[0].contains("did you mean Tandem_First_Touch__c"),
        "{problems:?}"
    );
    assert!(problems[1].contains("type currency"), "{problems:?}");
    assert!(problems[2].contains("type boolean"), "{problems:?}");
    assert!(problems[3].contains("multi_currency"), "{problems:?}");
    org.sandbox.state().revoke_refresh_tokens();
    let dead = org.fields_sink(serde_json::json!({})).verify().await;
    assert!(
        dead[0].starts_with("could not read the Opportunity fields"),
        "{dead:?}"
    );
}

#[tokio::test]
async fn the_conformance_handle_plays_salesperson_and_has_no_webhook() {
    let crm = super::sandbox::conformance::start().await.unwrap();
    let deals = crm.deals().expect("salesforce has a deal side");
    assert_eq!(deals.stages().won, "Closed Won");
    assert!(
        deals
            .outcome_toml()
            .contains("outcome_poll_interval = \"200ms\"")
    );
    let id = deals.create_deal(crate::sandbox::SandboxDeal {
        stage: deals.stages().qualified,
        amount: Some("12.00".to_owned()),
        contact_emails: vec!["walk-in@example.com".to_owned()],
        ..Default::default()
    });
    deals.move_deal(&id, &deals.stages().lost, None, None);
    // The deal's Contact, the Opportunity and its role are not people records of the suite.
    assert!(crm.records().is_empty(), "{:?}", crm.records());
    assert!(crm.record_by_email("walk-in@example.com").is_none());
    let f = deals.deal_fields(&id);
    assert_eq!(
        (
            f["StageName"].as_str(),
            f["IsClosed"].as_str(),
            f["IsWon"].as_str()
        ),
        ("Closed Lost", "true", "false")
    );
    // The lines the closed-loop suite puts in its config parse, and a deal's own currency and
    // people reach the outcome.
    let lines = format!("{}{}", crm.connector_toml(), deals.outcome_toml());
    let config: SalesforceConfig = serde_json::from_value(table_lines(&lines)).unwrap();
    assert!(config.validate().is_empty(), "{:?}", config.validate());
    assert_eq!(config.outcome_poll_interval.0, Duration::from_millis(200));
    let eur = deals.create_deal(crate::sandbox::SandboxDeal {
        stage: deals.stages().won,
        amount: Some("1500.00".to_owned()),
        currency: Some("EUR".to_owned()),
        contact_emails: vec!["eur@example.com".to_owned()],
        ..Default::default()
    });
    let source = SalesforceOutcomes::new(&config, ConnectorContext::in_memory("crm")).unwrap();
    let page = source.poll_outcomes(None).await.unwrap();
    let o = page.outcomes.iter().find(|o| o.deal_id == eur).unwrap();
    assert_eq!(
        (o.amount_minor, o.currency.as_deref(), o.state),
        (Some(150_000), Some("EUR"), DealState::Won)
    );
    assert_eq!(o.contacts[0].email.as_deref(), Some("eur@example.com"));
    assert_eq!(deals.notify("http://127.0.0.1:9/hooks/sf", &id).await, None);
    assert_eq!(crm.kind(), "salesforce");
}

#[tokio::test]
async fn forget_deletes_people_by_id_and_counts_missing_ones_as_deleted() {
    let org = org(SandboxOptions::default()).await;
    let leads = org.deliver(&["gone@example.com", "also@example.com"]).await;
    let sink = super::SalesforceClient::new(
        &org.config(serde_json::json!({})),
        ConnectorContext::in_memory("sf"),
    )
    .unwrap();
    assert!(sink.supports_forget());
    let record = |id: &str| crate::ForgetRecord {
        delivery_id: 1,
        remote_id: id.to_owned(),
    };
    let out = sink
        .forget(&[
            record(&leads[0]),
            record("00QDn0000099999AAA"),
            record("00Q'; x"),
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
        done("00QDn0000099999AAA"),
        "no such record: already deleted"
    );
    assert!(
        matches!(&out.items[2], ItemResult::Permanent { message } if message.contains("not a Salesforce record id"))
    );
    assert_eq!(out.items[3], done(&leads[1]));
    assert!(org.sandbox.records().iter().all(|r| !leads.contains(&r.id)));
    assert_eq!(org.sandbox.stats().deleted, 2);
    let call = org
        .sandbox
        .stats()
        .log
        .into_iter()
        .rev()
        .find(|r| r.method == "DELETE")
        .unwrap();
    assert_eq!(
        call.query.as_deref(),
        Some(
            format!(
                "ids={}%2C00QDn0000099999AAA%2C{}&allOrNone=false",
                leads[0], leads[1]
            )
            .as_str()
        )
    );
    // Forgetting again is harmless; throttles and outages are the call's.
    assert_eq!(
        sink.forget(&[record(&leads[0])]).await.unwrap().items[0],
        done(&leads[0])
    );
    org.sandbox.state().set_faults(crate::sandbox::CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        sink.forget(&[record(&leads[0])]).await,
        Err(CallError::RateLimited { .. })
    ));
    org.sandbox.state().set_faults(crate::sandbox::CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        sink.forget(&[record(&leads[0])]).await,
        Err(CallError::Transient { .. })
    ));
}
