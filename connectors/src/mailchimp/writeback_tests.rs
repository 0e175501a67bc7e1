//! The Mailchimp write-back against its sandbox over real loopback HTTP: the upsert and tag
//! calls exactly as Mailchimp documents them, consent and `status_if_new`, a resend after a
//! dropped answer, the won → lost retraction, per-item refusals with Mailchimp's words (and no
//! email in them), throttles part-way through a batch, the connection cap, forget, verify, and
//! the polled source still working beside it.

use std::{sync::Arc, time::Duration};

use serde_json::{Value, json};

use crate::{
    ConnectorContext,
    sandbox::{CrmFaults, WritebackSandbox},
    sink::{CallError, ForgetRecord, ItemResult},
    source::PolledSource,
    writeback::{
        ClickIds, Conversion, ConversionPerson, Milestone, WritebackAction, WritebackSink,
    },
};

use super::{
    MailchimpConfig, MailchimpSource, MailchimpWriteback,
    client::THROTTLE_WAIT,
    sandbox::{API_KEY, LIST_ID, MailchimpSandbox, WriteCall, writeback},
    writeback::MAX_CONNECTIONS,
};

/// md5("jane.doe@example.com"), computed outside this code (VENDOR-NOTES §15).
const JANE: &str = "0cba00ca3da1b283a57287bcceb17e35";
/// md5("max@example.org"), computed outside this code.
const MAX: &str = "9a6031918844c040b59ab343a88341ff";

async fn sandbox() -> MailchimpSandbox {
    MailchimpSandbox::start("127.0.0.1:0".parse().unwrap())
        .await
        .expect("sandbox binds")
}

fn config(sb: &MailchimpSandbox, extra: Value) -> MailchimpConfig {
    let mut cfg = json!({
        "api_key": API_KEY, "list_id": LIST_ID, "base_url": sb.base_url(), "timeout": "2s",
        "rate_limit": "10/1s"
    });
    if let (Some(c), Some(e)) = (cfg.as_object_mut(), extra.as_object()) {
        c.extend(e.clone());
    }
    let cfg: MailchimpConfig = serde_json::from_value(cfg).expect("config");
    assert!(cfg.validate().is_empty(), "{:?}", cfg.validate());
    cfg
}

fn sink(sb: &MailchimpSandbox, extra: Value) -> MailchimpWriteback {
    MailchimpWriteback::new(&config(sb, extra), ConnectorContext::in_memory("mc")).expect("builds")
}

fn person(email: &str) -> ConversionPerson {
    ConversionPerson {
        email: Some(email.into()),
        phone: Some("+4915112345678".into()),
        first_name: Some("Jane".into()),
        last_name: Some("Doe".into()),
        ..Default::default()
    }
}

fn conversion(
    deal: &str,
    milestone: Milestone,
    action: WritebackAction,
    p: ConversionPerson,
) -> Conversion {
    let key = format!("crm:{deal}:{}", milestone.name());
    Conversion {
        delivery_id: 1,
        request_key: match action {
            WritebackAction::Send => key.clone(),
            WritebackAction::Retract => format!("{key}:retract:1"),
            WritebackAction::Restate => format!("{key}:restate:1"),
        },
        key,
        action,
        milestone,
        crm: "crm".into(),
        crm_kind: "hubspot".into(),
        deal_id: deal.into(),
        occurred_at_ms: jiff::Timestamp::now().as_millisecond(),
        value_minor: Some(100_000),
        currency: Some("EUR".into()),
        person: p,
        clicks: ClickIds::default(),
        attribution: Default::default(),
    }
}

fn send(deal: &str, m: Milestone, email: &str) -> Conversion {
    conversion(deal, m, WritebackAction::Send, person(email))
}

fn done(hash: &str) -> ItemResult {
    ItemResult::Done {
        remote_id: hash.into(),
        created: false,
    }
}

fn tags_of(sb: &MailchimpSandbox, email: &str) -> Vec<String> {
    sb.member(email).map(|m| m.tags).unwrap_or_default()
}

fn received(sb: &MailchimpSandbox) -> Vec<(String, Option<String>)> {
    sb.received()
        .into_iter()
        .map(|r| (r.key, r.adjustment))
        .collect()
}

#[tokio::test]
async fn a_won_deal_upserts_the_member_then_tags_it_as_mailchimp_documents() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    let out = s
        .send(&[send("7", Milestone::Won, "jane.doe@example.com")])
        .await
        .expect("sent");
    assert_eq!(out.items, [done(JANE)]);
    assert_eq!(
        sb.writes(),
        [
            WriteCall {
                method: "PUT".into(),
                path: format!("/lists/{LIST_ID}/members/{JANE}"),
                query: "skip_merge_validation=true".into(),
                body: json!({
                    "email_address": "jane.doe@example.com",
                    "status_if_new": "transactional",
                    "merge_fields": {"FNAME": "Jane", "LNAME": "Doe"}
                }),
            },
            WriteCall {
                method: "POST".into(),
                path: format!("/lists/{LIST_ID}/members/{JANE}/tags"),
                query: String::new(),
                body: json!({
                    "tags": [
                        {"name": "deal-won", "status": "active"},
                        {"name": "customer", "status": "active"}
                    ],
                    "is_syncing": false
                }),
            },
        ]
    );
    let m = sb.member("jane.doe@example.com").expect("member created");
    assert_eq!(m.id, JANE);
    assert_eq!(
        m.status, "transactional",
        "never subscribed without consent"
    );
    assert_eq!(
        (m.first_name.as_str(), m.last_name.as_str()),
        ("Jane", "Doe")
    );
    assert_eq!(m.tags, ["deal-won", "customer"]);
    let got = sb.received();
    assert_eq!(got.len(), 2);
    assert_eq!(got[0].key, format!("{JANE}:deal-won"));
    assert_eq!(got[0].name, "deal-won");
    assert_eq!(got[0].adjustment, None);
    assert_eq!(got[0].identifiers, ["subscriber_hash"]);
    assert_eq!(got[1].name, "customer");
}

#[tokio::test]
async fn marketing_statuses_need_consent_and_merge_fields_can_be_left_alone() {
    let sb = sandbox().await;
    let s = sink(
        &sb,
        json!({"status_if_new": "subscribed", "writeback_merge_fields": false,
                              "skip_merge_validation": false}),
    );
    let mut yes = send("1", Milestone::Qualified, "jane.doe@example.com");
    yes.person.consent = Some(true);
    let mut no = send("2", Milestone::Qualified, "max@example.org");
    no.person.consent = Some(false);
    let out = s.send(&[yes, no]).await.expect("sent");
    assert_eq!(out.items, [done(JANE), done(MAX)]);
    assert_eq!(
        sb.member("jane.doe@example.com").unwrap().status,
        "subscribed"
    );
    assert_eq!(
        sb.member("max@example.org").unwrap().status,
        "transactional"
    );
    let puts: Vec<WriteCall> = sb
        .writes()
        .into_iter()
        .filter(|w| w.method == "PUT")
        .collect();
    assert_eq!(puts[0].query, "");
    assert_eq!(
        puts[0].body,
        json!({"email_address": "jane.doe@example.com", "status_if_new": "subscribed"})
    );
    // An existing member keeps the status Mailchimp has (status_if_new only creates).
    let existing = sandbox().await;
    existing.subscribe("max@example.org", "Max", None, "unsubscribed");
    let s = sink(&existing, json!({}));
    s.send(&[send("3", Milestone::Opportunity, "MAX@example.org")])
        .await
        .expect("sent");
    let m = existing.member("max@example.org").unwrap();
    assert_eq!(m.status, "unsubscribed");
    assert_eq!(m.tags, ["signup-form", "opportunity"]);
}

#[tokio::test]
async fn a_resend_after_a_dropped_answer_changes_nothing() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    let batch = [send("7", Milestone::Won, "jane.doe@example.com")];
    // The PUT is applied, then its answer is lost.
    sb.set_faults(CrmFaults {
        drop_after_write_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        s.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    assert!(sb.member("jane.doe@example.com").is_some());
    assert!(sb.received().is_empty());
    // Now the PUT goes through and the tags call is applied, then its answer is lost.
    sb.set_faults_after(
        1,
        CrmFaults {
            drop_after_write_next: 1,
            ..Default::default()
        },
    );
    assert!(matches!(
        s.send(&batch).await,
        Err(CallError::Transient { .. })
    ));
    assert_eq!(
        tags_of(&sb, "jane.doe@example.com"),
        ["deal-won", "customer"]
    );
    for _ in 0..2 {
        let out = s.send(&batch).await.expect("resent");
        assert_eq!(out.items, [done(JANE)]);
    }
    assert_eq!(
        received(&sb),
        [
            (format!("{JANE}:deal-won"), None),
            (format!("{JANE}:customer"), None)
        ],
        "each tag was set once, however often it was sent"
    );
    assert_eq!(sb.members().len(), 1);
}

#[tokio::test]
async fn a_won_deal_that_is_lost_drops_won_and_customer_and_takes_lost() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    s.send(&[send("7", Milestone::Won, "jane.doe@example.com")])
        .await
        .expect("sent");
    let writes_before = sb.writes().len();
    let retract = conversion(
        "7",
        Milestone::Won,
        WritebackAction::Retract,
        person("jane.doe@example.com"),
    );
    let out = s.send(&[retract]).await.expect("retracted");
    assert_eq!(out.items, [done(JANE)]);
    let writes = sb.writes();
    assert_eq!(
        writes.len(),
        writes_before + 1,
        "a retraction only touches tags"
    );
    assert_eq!(
        writes[writes_before].body,
        json!({"tags": [
            {"name": "deal-won", "status": "inactive"},
            {"name": "customer", "status": "inactive"},
            {"name": "deal-lost", "status": "active"}
        ], "is_syncing": false})
    );
    assert_eq!(tags_of(&sb, "jane.doe@example.com"), ["deal-lost"]);
    assert_eq!(
        received(&sb)[2..],
        [
            (format!("{JANE}:deal-won"), Some("inactive".to_owned())),
            (format!("{JANE}:customer"), Some("inactive".to_owned())),
            (format!("{JANE}:deal-lost"), None)
        ]
    );
    // Retracting for someone who is not in the audience creates nobody.
    let out = s
        .send(&[conversion(
            "8",
            Milestone::Opportunity,
            WritebackAction::Retract,
            person("max@example.org"),
        )])
        .await
        .expect("nothing to withdraw");
    assert_eq!(out.items, [done(MAX)]);
    assert!(sb.member("max@example.org").is_none());
}

#[tokio::test]
async fn refusals_map_to_their_item_with_mailchimp_s_words_and_no_email() {
    let sb = sandbox().await;
    sb.subscribe("max@example.org", "Max", None, "subscribed");
    let s = sink(&sb, json!({}));
    assert_eq!(
        s.forget(&[ForgetRecord {
            delivery_id: 1,
            remote_id: MAX.into()
        }])
        .await
        .expect("forgotten")
        .items,
        [done(MAX)]
    );
    let mut nobody = send("3", Milestone::Won, "x@example.org");
    nobody.person.email = None;
    let out = s
        .send(&[
            send("1", Milestone::Won, "jane.doe@example.com"),
            send("2", Milestone::Won, "Max@Example.org"),
            nobody,
            send("4", Milestone::Won, "broken@nowhere"),
        ])
        .await
        .expect("answered per item");
    assert_eq!(out.items[0], done(JANE));
    match &out.items[1] {
        ItemResult::Permanent { message } => {
            assert!(
                message.starts_with("adding or updating the member: Mailchimp 400: Forgotten Email Not Subscribed: <email> was permanently deleted"),
                "{message}"
            );
            assert!(
                !message.to_ascii_lowercase().contains("max@example.org"),
                "{message}"
            );
        }
        other => panic!("{other:?}"),
    }
    assert!(
        matches!(&out.items[2], ItemResult::Permanent { message } if message.contains("no email address")),
        "{:?}",
        out.items[2]
    );
    match &out.items[3] {
        ItemResult::Permanent { message } => {
            assert!(
                message.contains("Invalid Resource: <email> looks fake"),
                "{message}"
            );
            assert!(!message.contains("broken@nowhere"), "{message}");
        }
        other => panic!("{other:?}"),
    }

    // A required merge field tandem can't fill, when merge validation is kept.
    let strict = sink(&sb, json!({"skip_merge_validation": false}));
    sb.require_merge_field("PHONE");
    let out = strict
        .send(&[send("5", Milestone::Qualified, "new@example.org")])
        .await
        .expect("answered");
    assert_eq!(
        out.items,
        [ItemResult::Permanent {
            message: "adding or updating the member: Mailchimp 400: Invalid Resource: Your merge fields were invalid. (PHONE: Please enter a value)".into()
        }]
    );
    // …and the default skips that validation, as documented.
    let out = s
        .send(&[send("5", Milestone::Qualified, "new@example.org")])
        .await
        .expect("sent");
    assert!(matches!(out.items[0], ItemResult::Done { .. }));
}

#[tokio::test]
async fn throttles_outages_and_bad_keys_are_classified_even_part_way_through() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    let one = [send("1", Milestone::Won, "jane.doe@example.com")];
    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    match s.send(&one).await {
        Err(CallError::RateLimited { retry_after, .. }) => assert_eq!(retry_after, THROTTLE_WAIT),
        other => panic!("{other:?}"),
    }
    sb.set_faults(CrmFaults {
        server_error_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        s.send(&one).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults {
        server_error_rate: 1.0,
        ..Default::default()
    });
    assert!(matches!(
        s.send(&one).await,
        Err(CallError::Transient { .. })
    ));
    sb.set_faults(CrmFaults::default());

    // The first conversion's two calls go through, the second's upsert is throttled.
    sb.set_faults_after(
        2,
        CrmFaults {
            rate_limit_next: 1,
            ..Default::default()
        },
    );
    let out = s
        .send(&[
            send("1", Milestone::Won, "jane.doe@example.com"),
            send("2", Milestone::Won, "max@example.org"),
            send("3", Milestone::Won, "third@example.org"),
        ])
        .await
        .expect("the done item stands");
    assert_eq!(out.items[0], done(JANE));
    assert!(matches!(&out.items[1], ItemResult::Transient { message } if message.contains("429")));
    assert!(matches!(out.items[2], ItemResult::Transient { .. }));
    assert_eq!(out.pause_for, Some(THROTTLE_WAIT));
    assert!(sb.member("third@example.org").is_none());

    let wrong = sink(
        &sb,
        json!({"api_key": "ffffffffffffffffffffffffffffffff-us1"}),
    );
    match wrong.send(&one).await {
        Err(CallError::Auth {
            status: 401,
            message,
        }) => {
            assert!(message.contains("API Key Invalid") && !message.contains("ffffffff"));
        }
        other => panic!("{other:?}"),
    }
}

#[tokio::test]
async fn concurrent_calls_keep_to_the_connection_cap() {
    let sb = sandbox().await;
    sb.set_faults(CrmFaults {
        delay_ms: 100,
        ..Default::default()
    });
    let s = Arc::new(sink(&sb, json!({"rate_limit": "10/1s"})));
    let mut tasks = Vec::new();
    for i in 0..6 {
        let s = Arc::clone(&s);
        tasks.push(tokio::spawn(async move {
            s.send(&[send(
                &i.to_string(),
                Milestone::Won,
                &format!("p{i}@example.org"),
            )])
            .await
        }));
    }
    for t in tasks {
        let out = t.await.expect("task").expect("sent");
        assert!(matches!(out.items[0], ItemResult::Done { .. }));
    }
    let peak = sb.peak_connections();
    assert!(
        (2..=MAX_CONNECTIONS as u32).contains(&peak),
        "peak {peak} connections"
    );
    assert_eq!(sb.stats().rate_limited, 0);
}

#[tokio::test]
async fn forget_deletes_permanently_and_a_member_already_gone_counts_as_deleted() {
    let sb = sandbox().await;
    let s = sink(&sb, json!({}));
    assert!(s.supports_forget());
    s.send(&[send("1", Milestone::Won, "jane.doe@example.com")])
        .await
        .expect("sent");
    let records = [
        ForgetRecord {
            delivery_id: 1,
            remote_id: JANE.into(),
        },
        ForgetRecord {
            delivery_id: 2,
            remote_id: MAX.into(),
        },
        ForgetRecord {
            delivery_id: 3,
            remote_id: "not-a-hash".into(),
        },
    ];
    let out = s.forget(&records).await.expect("answered");
    assert_eq!(out.items[0], done(JANE));
    assert_eq!(out.items[1], done(MAX), "404: already gone");
    assert!(
        matches!(&out.items[2], ItemResult::Permanent { message } if message.contains("subscriber hash"))
    );
    assert!(sb.member("jane.doe@example.com").is_none());
    assert_eq!(sb.forgotten(), [JANE]);
    let w = sb.writes();
    assert_eq!(
        w.iter()
            .filter(|c| c.path.ends_with("/actions/delete-permanent"))
            .count(),
        2
    );
    assert_eq!(
        w.last().unwrap().path,
        format!("/lists/{LIST_ID}/members/{MAX}/actions/delete-permanent")
    );
    sb.set_faults(CrmFaults {
        rate_limit_next: 1,
        ..Default::default()
    });
    assert!(matches!(
        s.forget(&records[..1]).await,
        Err(CallError::RateLimited { .. })
    ));
}

#[tokio::test]
async fn verify_checks_credentials_audience_and_merge_fields_without_writing() {
    let sb = sandbox().await;
    assert_eq!(sink(&sb, json!({})).verify().await, Vec::<String>::new());
    let lines = sink(&sb, json!({"list_id": "ffffffffff"})).verify().await;
    assert!(
        lines.len() == 1 && lines[0].contains("audience ffffffffff was not found"),
        "{lines:?}"
    );
    let lines = sink(&sb, json!({"api_key": "0000-us1"})).verify().await;
    assert!(
        lines.len() == 1 && lines[0].contains("refused the credentials"),
        "{lines:?}"
    );
    sb.require_merge_field("PHONE");
    assert_eq!(sink(&sb, json!({})).verify().await, Vec::<String>::new());
    let lines = sink(&sb, json!({"skip_merge_validation": false}))
        .verify()
        .await;
    assert!(
        lines.len() == 1 && lines[0].contains("merge field PHONE is required"),
        "{lines:?}"
    );
    assert!(sb.writes().is_empty());
}

#[tokio::test]
async fn only_configured_milestones_are_taken_and_restatements_are_refused() {
    let sb = sandbox().await;
    let s = sink(
        &sb,
        json!({"writeback_tags": {"qualified": "", "won": "Kunde gewonnen"},
                              "customer_tag": ""}),
    );
    assert_eq!(s.max_batch(), 10);
    assert!(!s.accepts(Milestone::Qualified));
    assert!(
        s.accepts(Milestone::Opportunity)
            && s.accepts(Milestone::Won)
            && s.accepts(Milestone::Lost)
    );
    assert!(s.supports(WritebackAction::Send) && s.supports(WritebackAction::Retract));
    assert!(!s.supports(WritebackAction::Restate));
    let restate = conversion(
        "1",
        Milestone::Won,
        WritebackAction::Restate,
        person("jane.doe@example.com"),
    );
    let out = s
        .send(&[restate, send("2", Milestone::Won, "jane.doe@example.com")])
        .await
        .expect("answered");
    assert!(
        matches!(&out.items[0], ItemResult::Permanent { message } if message.contains("restatement"))
    );
    assert_eq!(out.items[1], done(JANE));
    assert_eq!(tags_of(&sb, "jane.doe@example.com"), ["Kunde gewonnen"]);
}

#[tokio::test]
async fn the_source_role_keeps_working_beside_the_write_back() {
    let sb = sandbox().await;
    let cfg = config(&sb, json!({"start_from": "1d", "overlap": "5m"}));
    let subscribed = sb.subscribe("max@example.org", "Max", None, "subscribed");
    let s = MailchimpWriteback::new(&cfg, ConnectorContext::in_memory("mc")).unwrap();
    s.send(&[
        send("1", Milestone::Won, "jane.doe@example.com"),
        send("2", Milestone::Qualified, "max@example.org"),
    ])
    .await
    .expect("sent");
    // The poll reads up to a full second behind now; let the upserts' second pass.
    tokio::time::sleep(Duration::from_millis(2100)).await;
    let src = MailchimpSource::new(&cfg, ConnectorContext::in_memory("mc")).unwrap();
    let page = src.poll(None).await.expect("polled");
    let ids: Vec<String> = page
        .leads
        .iter()
        .filter_map(|l| l.event_id.clone())
        .collect();
    // The transactional member tandem created is no lead; the subscriber it tagged is the same
    // member (same id, the daemon's dedup key) as before.
    assert_eq!(ids, [subscribed]);
    assert_eq!(page.leads[0].fields["tags"], json!(["signup-form", "sql"]));
}

#[tokio::test]
async fn the_closed_loop_suite_s_view_of_the_sandbox() {
    let wb: Box<dyn WritebackSandbox> = writeback::start().await.expect("starts");
    assert_eq!(wb.kind(), "mailchimp");
    let toml = wb.connector_toml();
    assert!(toml.starts_with("kind = \"mailchimp\"\n"), "{toml}");
    assert!(toml.contains("lost = \"deal-lost\""), "{toml}");
    let base = toml
        .lines()
        .find_map(|l| l.strip_prefix("base_url = \""))
        .and_then(|l| l.strip_suffix('"'))
        .expect("base_url line")
        .to_owned();
    let cfg: MailchimpConfig = serde_json::from_value(json!({
        "api_key": API_KEY, "list_id": LIST_ID, "base_url": base
    }))
    .unwrap();
    let s = MailchimpWriteback::new(&cfg, ConnectorContext::in_memory("mc")).unwrap();
    s.send(&[send("1", Milestone::Lost, "jane.doe@example.com")])
        .await
        .expect("sent");
    let got = wb.received();
    assert_eq!(got.len(), 1);
    assert_eq!(
        (got[0].key.as_str(), got[0].name.as_str()),
        (format!("{JANE}:deal-lost").as_str(), "deal-lost")
    );
    assert_eq!(wb.stats().api_calls, 2);
}

#[test]
fn write_back_keys_are_validated_with_a_hint() {
    let base = json!({"api_key": "k-us1", "list_id": "abc"});
    let with = |extra: Value| {
        let mut v = base.clone();
        v.as_object_mut()
            .unwrap()
            .extend(extra.as_object().unwrap().clone());
        serde_json::from_value::<MailchimpConfig>(v).expect("parses")
    };
    let c = with(json!({}));
    assert!(c.validate().is_empty(), "{:?}", c.validate());
    assert_eq!(c.status_if_new, "transactional");
    assert_eq!(c.customer_tag, "customer");
    assert!(c.writeback_merge_fields && c.skip_merge_validation);
    let c = with(json!({
        "writeback_tags": {"opportunity": "SQL", "won": " won "},
        "customer_tag": "x".repeat(101),
        "status_if_new": "cleaned"
    }));
    let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
    assert_eq!(
        keys,
        [
            "writeback_tags.opportunity",
            "writeback_tags.won",
            "customer_tag",
            "status_if_new"
        ]
    );
    assert!(
        serde_json::from_value::<MailchimpConfig>(json!({
            "api_key": "k-us1", "list_id": "abc", "writeback_tags": {"closed": "x"}
        }))
        .is_err()
    );
}
