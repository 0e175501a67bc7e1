//! Every polled source (LinkedIn Lead Gen, Mailchimp, Brevo, Klaviyo) with the real binary and
//! its sandbox: leads with equal timestamps and late arrivals all reach the CRM, and a SIGKILL
//! while a poll is in flight (fetched, not yet committed) loses nothing and duplicates nothing,
//! because a page and its cursor commit together and event ids dedup the re-poll.

mod common;

use std::{collections::BTreeMap, time::Duration};

use common::process::{TandemProcess, free_port};
use tandem::store::{Store, sqlite::SqliteStore};
use tandem_connectors::{
    hubspot::sandbox::{HubspotSandbox, SandboxOptions},
    sandbox::{CrmFaults, POLLED_KINDS, start_source},
};

async fn survives_a_crash_between_fetch_and_commit(kind: &str) {
    let source = start_source(kind)
        .await
        .expect("sandbox starts")
        .unwrap_or_else(|| panic!("polled kind {kind} has no sandbox"));
    let hubspot = HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default())
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let addr: std::net::SocketAddr = ([127, 0, 0, 1], free_port()).into();
    let state = dir.path().join("tandem.db");
    let config = dir.path().join("tandem.toml");
    std::fs::write(
        &config,
        format!(
            r#"
[daemon]
listen = "{addr}"
state = "sqlite:{state}"
stop_timeout = "5s"

[daemon.delivery]
backoff_base = "50ms"
backoff_max = "300ms"
linger = "10ms"

[connectors.src]
{source_toml}

[connectors.hubspot]
kind = "hubspot"
token = "{token}"
base_url = "{hubspot_url}"

[flows.inbound]
from = ["src"]
to = "hubspot"
[flows.inbound.fields]
email = "{{{{ lead.email }}}}"
firstname = "{{{{ lead.first_name }}}}"
"#,
            state = state.display(),
            source_toml = source.connector_toml(),
            token = common::TOKEN,
            hubspot_url = hubspot.base_url(),
        ),
    )
    .unwrap();
    let log = dir.path().join("tandem.log");
    let now = jiff::Timestamp::now().as_millisecond();
    let mut emails = Vec::new();
    // Five leads sharing one timestamp, then a few more.
    for i in 0..5 {
        emails.push(format!("same{i}@{kind}.example.com"));
        source.add_lead(emails.last().unwrap(), "Same", Some(now - 60_000));
    }
    for i in 0..5 {
        emails.push(format!("early{i}@{kind}.example.com"));
        source.add_lead(
            emails.last().unwrap(),
            "Early",
            Some(now - 50_000 + i * 1000),
        );
    }

    let first = TandemProcess::start(&config, addr, &log).await;
    common::wait_until(
        Duration::from_secs(20),
        "the first leads to arrive",
        || async { (hubspot.contacts().len() >= 10).then_some(()) },
    )
    .await;
    // Slow the platform down so the next poll is in flight when the process dies: fetched by the
    // platform, never committed by tandem.
    source.set_faults(CrmFaults {
        delay_ms: 1_500,
        ..Default::default()
    });
    for i in 0..5 {
        emails.push(format!("during{i}@{kind}.example.com"));
        source.add_lead(emails.last().unwrap(), "During", None);
    }
    tokio::time::sleep(Duration::from_millis(700)).await;
    first.kill_hard();
    source.set_faults(CrmFaults::default());
    // A late arrival: written now, stamped in the past (within the overlap).
    emails.push(format!("late@{kind}.example.com"));
    source.add_lead(emails.last().unwrap(), "Late", Some(now - 30_000));

    let second = TandemProcess::start(&config, addr, &log).await;
    common::wait_until(Duration::from_secs(30), "every lead in the CRM", || async {
        emails
            .iter()
            .all(|e| hubspot.contact_by_email(e).is_some())
            .then_some(())
    })
    .await;
    second.signal("TERM");
    assert_eq!(second.wait_exit(Duration::from_secs(15)).await, Some(0));

    let mut per_email: BTreeMap<String, usize> = BTreeMap::new();
    for c in hubspot.contacts() {
        *per_email
            .entry(c.properties.get("email").cloned().unwrap_or_default())
            .or_default() += 1;
    }
    assert_eq!(per_email.len(), emails.len(), "{kind}: {per_email:?}");
    assert!(per_email.values().all(|n| *n == 1));
    let store = SqliteStore::open_read_only(&state).unwrap();
    let leads = store.leads_since(vec!["src".into()], 0).await.unwrap();
    assert_eq!(
        leads.len(),
        emails.len(),
        "{kind}: one lead per platform record, re-polls deduplicated"
    );
    assert!(
        hubspot.contacts().iter().all(|c| c.writes == 1),
        "{kind}: no lead was delivered twice"
    );
}

macro_rules! polled {
    ($($kind:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $kind() {
                survives_a_crash_between_fetch_and_commit(stringify!($kind)).await
            }
        )*

        #[test]
        fn every_polled_kind_is_covered() {
            let covered: &[&str] = &[$(stringify!($kind)),*];
            for kind in POLLED_KINDS {
                assert!(covered.contains(kind), "polled kind {kind} is not run by this suite");
            }
        }
    };
}

polled!(linkedin_lead_gen, mailchimp, brevo, klaviyo);
