//! The delivery engine against the HubSpot sandbox over real loopback HTTP, one test per class of
//! failure the vendor can produce: what the user relies on is that every lead ends as exactly one
//! contact (or as a dead letter carrying the vendor's reason), that throttling and auth failures
//! never spend the retry budget, and that tandem never exceeds the vendor's rate limit.

mod common;

use std::{collections::BTreeSet, time::Duration};

use common::{Harness, set_key, wait_until};
use serde_json::{Value, json};
use tandem::store::{DeadLetter, Store};
use tandem_connectors::hubspot::sandbox::{Faults, SandboxOptions, ScriptStep};

const LONG: Duration = Duration::from_secs(30);

fn lead(email: &str, first_name: &str) -> Value {
    json!({"email": email, "first_name": first_name})
}

fn people(prefix: &str, n: usize) -> Vec<Value> {
    (0..n)
        .map(|i| lead(&format!("{prefix}{i}@example.com"), &format!("P{i}")))
        .collect()
}

async fn dead_letters(h: &Harness) -> Vec<DeadLetter> {
    h.daemon()
        .store()
        .dead_letters(None, 1000)
        .await
        .expect("dead letters")
}

/// Every email in `bodies` is exactly one contact, written exactly `writes` times.
fn assert_one_contact_each(h: &Harness, bodies: &[Value], writes: u32) {
    let emails: BTreeSet<String> = bodies
        .iter()
        .map(|b| b["email"].as_str().unwrap().to_lowercase())
        .collect();
    let contacts = h.sandbox.contacts();
    let stored: Vec<String> = contacts
        .iter()
        .filter_map(|c| c.properties.get("email").cloned())
        .collect();
    assert_eq!(
        stored.len(),
        stored.iter().collect::<BTreeSet<_>>().len(),
        "no two contacts share an email"
    );
    for email in &emails {
        let c = h
            .sandbox
            .contact_by_email(email)
            .unwrap_or_else(|| panic!("{email} never reached HubSpot"));
        assert_eq!(c.writes, writes, "{email} written {} times", c.writes);
    }
}

fn scripted(steps: Vec<ScriptStep>) -> Faults {
    Faults {
        script: steps,
        ..Default::default()
    }
}

// 1. A 5xx storm: half of all calls fail, every lead still arrives exactly once.
#[tokio::test]
async fn a_5xx_storm_delays_but_never_loses_or_duplicates_a_lead() {
    // Half the calls fail and the batch is retried whole, so give the budget room: with 6
    // attempts one batch in 64 would be dead-lettered by pure luck; with 12, one in 4096.
    let h = Harness::start_edited(SandboxOptions::default(), |t| {
        set_key(&t, "daemon.delivery", "max_attempts", "12")
    })
    .await;
    h.sandbox
        .set_faults(Faults {
            error_rate: 0.5,
            error_status: Some(502),
            seed: Some(7),
            ..Default::default()
        })
        .unwrap();
    let leads = people("storm", 40);
    assert!(h.post_all(leads.clone()).await.iter().all(|s| *s == 202));
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (40, 0));
    assert!(dead_letters(&h).await.is_empty());
    assert_eq!(h.sandbox.contacts().len(), 40);
    // A 5xx is answered before the write, so every contact is written exactly once.
    assert_one_contact_each(&h, &leads, 1);
    let stats = h.sandbox.stats();
    assert!(
        stats.server_errors > 0,
        "the storm really happened: {stats:?}"
    );
}

// 2a. 429s (scripted, then the vendor's real rolling window): retried, never dead-lettered.
#[tokio::test]
async fn throttling_429s_spend_no_retry_budget() {
    let h = Harness::start_with(
        SandboxOptions {
            rate_limit: 4,
            rate_window: Duration::from_secs(1),
            ..Default::default()
        },
        "",
        "",
    )
    .await;
    // More 429s than max_attempts (6), all on the one lead in the queue.
    h.sandbox
        .set_faults(scripted(vec![ScriptStep {
            times: 7,
            status: 429,
            drop: false,
            retry_after: Some(0),
        }]))
        .unwrap();
    let (status, _) = h.post_lead(lead("throttled@example.com", "First")).await;
    assert_eq!(status, 202);
    h.drain(LONG).await;
    let stats = h.sandbox.stats();
    assert!(
        stats.rate_limited >= 7,
        "the lone lead met every scripted 429: {stats:?}"
    );
    assert!(
        dead_letters(&h).await.is_empty(),
        "a 429 is not the lead's fault"
    );
    assert!(
        h.sandbox
            .contact_by_email("throttled@example.com")
            .is_some()
    );

    // Then 50 more against a 4-per-second window: the vendor throttles, nobody is lost.
    let leads = people("window", 50);
    assert!(h.post_all(leads.clone()).await.iter().all(|s| *s == 202));
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (51, 0));
    assert!(dead_letters(&h).await.is_empty());
    assert_eq!(h.sandbox.contacts().len(), 51);
    // A 429 is answered before the write: each contact written exactly once.
    assert_one_contact_each(&h, &leads, 1);
}

// 2b. Without Retry-After the client waits for the interval HubSpot's headers report (here
// 500 ms), not its 10 s fallback: the queue drains well within the limit.
#[tokio::test]
async fn without_retry_after_the_interval_header_paces_the_retry() {
    let h = Harness::start_with(
        SandboxOptions {
            rate_limit: 3,
            rate_window: Duration::from_millis(500),
            retry_after_header: false,
            ..Default::default()
        },
        "",
        "",
    )
    .await;
    h.sandbox
        .set_faults(scripted(vec![ScriptStep::status(429, 3)]))
        .unwrap();
    let leads = people("nora", 20);
    assert!(h.post_all(leads.clone()).await.iter().all(|s| *s == 202));
    // Three 429s at the 10 s fallback would take 30 s; at the reported 500 ms interval, ~2 s.
    let status = h.drain(Duration::from_secs(20)).await;
    assert_eq!((status[0].done, status[0].dead), (20, 0));
    assert!(h.sandbox.stats().rate_limited >= 3);
    assert_one_contact_each(&h, &leads, 1);
}

// 3. The write happened but the answer was lost: the retry updates, it doesn't duplicate.
#[tokio::test]
async fn a_connection_dropped_after_the_write_ends_as_one_contact() {
    let h = Harness::start().await;
    h.sandbox
        .set_faults(scripted(vec![ScriptStep::drop_after_write(1)]))
        .unwrap();
    let (status, body) = h.post_lead(lead("dropped@example.com", "Dee")).await;
    assert_eq!(status, 202, "{body}");
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (1, 0));
    let stats = h.sandbox.stats();
    assert_eq!(stats.drops, 1, "{stats:?}");
    assert!(stats.upsert_calls >= 2, "the lead was retried: {stats:?}");
    assert_eq!(h.sandbox.contacts().len(), 1, "no duplicate contact");
    let c = h.sandbox.contact_by_email("dropped@example.com").unwrap();
    assert!(c.writes >= 2, "the retry was an update: {c:?}");
    assert_eq!(c.properties["firstname"], "Dee");
    // tandem knows the person's HubSpot id.
    let store = h.daemon().store();
    let stored = store.leads_since(vec!["website".into()], 0).await.unwrap();
    let remote = store
        .remote_id(stored[0].person_id, "hubspot")
        .await
        .unwrap();
    assert_eq!(remote.as_deref(), Some(c.id.as_str()));
    assert!(dead_letters(&h).await.is_empty());
}

// 3b. The same, at random, over many leads.
#[tokio::test]
async fn random_drops_never_duplicate_contacts() {
    let h = Harness::start_edited(SandboxOptions::default(), |t| {
        set_key(&t, "daemon.delivery", "max_attempts", "12")
    })
    .await;
    h.sandbox
        .set_faults(Faults {
            drop_rate: 0.4,
            seed: Some(5),
            ..Default::default()
        })
        .unwrap();
    let leads = people("drop", 30);
    assert!(h.post_all(leads.clone()).await.iter().all(|s| *s == 202));
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (30, 0));
    assert!(h.sandbox.stats().drops > 0);
    assert_eq!(h.sandbox.contacts().len(), 30, "one contact per email");
    for l in &leads {
        let email = l["email"].as_str().unwrap();
        assert!(h.sandbox.contact_by_email(email).is_some(), "{email}");
    }
}

// 4. A 207: the refused inputs become dead letters with HubSpot's own message; the rest arrive.
#[tokio::test]
async fn per_input_failures_dead_letter_only_those_leads_with_the_vendor_message() {
    let h = Harness::start().await;
    h.sandbox
        .set_faults(Faults {
            item_failure_rate: 0.3,
            seed: Some(11),
            ..Default::default()
        })
        .unwrap();
    let leads = people("partial", 30);
    assert!(h.post_all(leads.clone()).await.iter().all(|s| *s == 202));
    let status = h.drain(LONG).await;
    let (done, dead) = (status[0].done, status[0].dead);
    assert_eq!(done + dead, 30);
    assert!(
        done > 0 && dead > 0,
        "the dice gave a real partial failure: {done} done, {dead} dead"
    );
    let letters = dead_letters(&h).await;
    assert_eq!(letters.len() as u64, dead);
    let store = h.daemon().store();
    let stored = store.leads_since(vec!["website".into()], 0).await.unwrap();
    for letter in &letters {
        // The sandbox's 207 error for the input, as HubSpot words it.
        assert!(
            letter.error.contains(
                "Property values were not valid (sandbox: injected failure for this input)"
            ),
            "{}",
            letter.error
        );
        assert!(
            letter.error.contains("VALIDATION_ERROR"),
            "{}",
            letter.error
        );
        assert_eq!(letter.attempts, 1, "a refusal is not retried");
        let lead = stored.iter().find(|l| l.id == letter.lead_id).unwrap();
        let email = serde_json::from_str::<Value>(&lead.lead_json).unwrap()["email"]
            .as_str()
            .unwrap()
            .to_owned();
        assert!(
            h.sandbox.contact_by_email(&email).is_none(),
            "{email} is dead, not in HubSpot"
        );
    }
    assert_eq!(h.sandbox.contacts().len() as u64, done);
    assert_eq!(
        h.sandbox.stats().inputs_received,
        30,
        "good leads are not resent because a neighbour failed"
    );
}

// 5. A batch refused as a whole (400): retried record by record, so nobody is sunk by a neighbour.
#[tokio::test]
async fn a_batch_refused_whole_is_retried_one_by_one() {
    // One worker and a long linger make the first call carry every lead.
    let h = Harness::start_edited(SandboxOptions::default(), |t| {
        let t = set_key(&t, "daemon.delivery", "linger", "\"400ms\"");
        set_key(&t, "daemon.delivery", "concurrency", "1")
    })
    .await;
    h.sandbox
        .set_faults(scripted(vec![ScriptStep::status(400, 1)]))
        .unwrap();
    let leads = people("split", 10);
    assert!(h.post_all(leads.clone()).await.iter().all(|s| *s == 202));
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (10, 0));
    assert!(dead_letters(&h).await.is_empty());
    assert_eq!(h.sandbox.contacts().len(), 10);
    assert_one_contact_each(&h, &leads, 1);
    // A scripted 400 is answered before the sandbox counts inputs, so the refused call is not in
    // `batch_sizes`: it shows up as the one upsert call more than the sizes listed. Every call
    // after it carried a single record, and those singles are all ten leads: the refused call
    // carried all ten (the linger gathered them).
    let stats = h.sandbox.stats();
    assert_eq!(stats.batch_sizes, vec![1; 10], "{stats:?}");
    assert_eq!(
        stats.upsert_calls, 11,
        "one refused call, then ten singles: {stats:?}"
    );
}

// 6. 401: the destination pauses loudly, nothing is dead-lettered, a reload resumes it.
#[tokio::test]
async fn an_auth_failure_pauses_the_destination_and_a_reload_resumes_it() {
    // Metrics are process-wide and every test's daemon calls its CRM "hubspot"; a name of its own
    // keeps this test's gauge from being reset by a daemon another test starts meanwhile.
    let rename = |t: String| {
        t.replace("[connectors.hubspot]", "[connectors.hubspot_auth]")
            .replace("to = \"hubspot\"", "to = \"hubspot_auth\"")
    };
    let h = Harness::start_edited(SandboxOptions::default(), rename).await;
    h.sandbox
        .set_faults(scripted(vec![ScriptStep::status(401, 10)]))
        .unwrap();
    let (status, _) = h.post_lead(lead("locked@example.com", "Lou")).await;
    assert_eq!(status, 202);
    let store = h.daemon().store();
    let paused = wait_until(LONG, "the destination to pause", || async {
        let p = store.paused().await.unwrap();
        (!p.is_empty()).then_some(p)
    })
    .await;
    assert_eq!(paused.len(), 1);
    assert_eq!(paused[0].0, "hubspot_auth");
    assert!(paused[0].1.contains("401"), "{}", paused[0].1);
    let metrics = h.metrics_text().await;
    assert!(
        metrics.contains("tandem_connector_paused{connector=\"hubspot_auth\"} 1"),
        "{metrics}"
    );
    // The admin status says so too.
    let v: Value = h
        .http
        .get(h.url("/api/status"))
        .bearer_auth("admin-secret")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(v["paused"][0]["connector"], json!("hubspot_auth"), "{v}");
    // While paused, new leads are accepted and wait; nothing is dead-lettered.
    let leads = people("waiting", 5);
    assert!(h.post_all(leads.clone()).await.iter().all(|s| *s == 202));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(dead_letters(&h).await.is_empty());
    let calls_while_paused = h.sandbox.stats().upsert_calls;
    assert_eq!(
        calls_while_paused, 1,
        "a paused destination is not hammered"
    );

    // The credentials are fixed (the script's remaining 401s are dropped) and the config reloaded.
    h.sandbox.set_faults(Faults::default()).unwrap();
    h.daemon().reload(h.fresh_config(rename)).await.unwrap();
    wait_until(LONG, "the waiting leads to arrive", || async {
        leads
            .iter()
            .all(|l| {
                h.sandbox
                    .contact_by_email(l["email"].as_str().unwrap())
                    .is_some()
            })
            .then_some(())
    })
    .await;
    assert!(store.paused().await.unwrap().is_empty());
    let metrics = h.metrics_text().await;
    assert!(
        metrics.contains("tandem_connector_paused{connector=\"hubspot_auth\"} 0"),
        "{metrics}"
    );
    assert!(dead_letters(&h).await.is_empty());
}

// 6b. More 401s than max_attempts on one lead, each followed by a reload: the lead still arrives
// promptly once access is back.
#[tokio::test]
async fn auth_failures_spend_no_attempts_and_the_paused_lead_flows_right_after_a_reload() {
    let rename = |t: String| {
        t.replace("[connectors.hubspot]", "[connectors.hubspot_auth2]")
            .replace("to = \"hubspot\"", "to = \"hubspot_auth2\"")
    };
    let h = Harness::start_edited(SandboxOptions::default(), rename).await;
    h.sandbox
        .set_faults(scripted(vec![ScriptStep::status(401, 7)]))
        .unwrap();
    let (status, _) = h.post_lead(lead("patient@example.com", "Pat")).await;
    assert_eq!(status, 202);
    let store = h.daemon().store();
    for cycle in 1..=7u64 {
        wait_until(
            Duration::from_secs(10),
            &format!("401 number {cycle} and the pause"),
            || async {
                let calls = h.sandbox.stats().upsert_calls;
                let paused = !store.paused().await.unwrap().is_empty();
                (calls >= cycle && paused).then_some(())
            },
        )
        .await;
        assert!(dead_letters(&h).await.is_empty(), "cycle {cycle}");
        h.daemon().reload(h.fresh_config(rename)).await.unwrap();
    }
    // The script is spent: access is back. The lead that met 7 401s (> max_attempts 6) arrives.
    let status = h.drain(Duration::from_secs(10)).await;
    assert_eq!((status[0].done, status[0].dead), (1, 0));
    assert!(h.sandbox.contact_by_email("patient@example.com").is_some());
    assert!(store.paused().await.unwrap().is_empty());
}

// 7. A budget that runs out: dead letter with the reason, and a retry from the admin API.
#[tokio::test]
async fn an_exhausted_retry_budget_dead_letters_and_the_admin_api_retries_it() {
    let h = Harness::start().await;
    h.sandbox
        .set_faults(Faults {
            error_rate: 1.0,
            error_status: Some(503),
            ..Default::default()
        })
        .unwrap();
    let (status, _) = h.post_lead(lead("doomed@example.com", "Dora")).await;
    assert_eq!(status, 202);
    let letters = wait_until(LONG, "the dead letter", || async {
        let d = dead_letters(&h).await;
        (!d.is_empty()).then_some(d)
    })
    .await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].error.contains("gave up after 6 attempts"),
        "{}",
        letters[0].error
    );
    assert!(letters[0].error.contains("503"), "{}", letters[0].error);
    assert_eq!(letters[0].attempts, 6);
    assert_eq!(
        h.sandbox.stats().server_errors,
        6,
        "exactly max_attempts calls"
    );
    assert!(h.sandbox.contacts().is_empty());

    h.sandbox.set_faults(Faults::default()).unwrap();
    let r = h
        .http
        .post(h.url("/api/dlq/retry"))
        .bearer_auth("admin-secret")
        .json(&json!({"all": true}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    assert_eq!(r.json::<Value>().await.unwrap()["retried"], json!(1));
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (1, 0));
    assert!(dead_letters(&h).await.is_empty());
    let c = h.sandbox.contact_by_email("doomed@example.com").unwrap();
    assert_eq!(c.properties["firstname"], "Dora");
}

// 8. No email and no id_property: HubSpot cannot be asked, the lead is dead at once with the reason.
#[tokio::test]
async fn a_lead_without_email_and_no_id_property_is_dead_lettered_once() {
    let h = Harness::start().await;
    let (status, body) = h
        .post_lead(json!({"phone": "+1 415 555 2671", "first_name": "Phoebe"}))
        .await;
    assert_eq!(status, 202, "{body}");
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (0, 1));
    let letters = dead_letters(&h).await;
    assert_eq!(letters.len(), 1);
    assert!(
        letters[0].error.contains("no email"),
        "{}",
        letters[0].error
    );
    assert!(
        letters[0].error.contains("id_property"),
        "{}",
        letters[0].error
    );
    assert_eq!(letters[0].attempts, 1, "not retried");
    assert_eq!(
        h.sandbox.stats().upsert_calls,
        0,
        "nothing HubSpot could accept was sent"
    );
}

// 9. One person's leads arrive in order, one per batch; HubSpot never sees duplicate ids.
#[tokio::test]
async fn one_persons_leads_arrive_in_order_and_never_share_a_batch() {
    let h = Harness::start().await;
    let others = people("crowd", 20);
    let crowd = {
        let (http, url) = (h.http.clone(), h.url("/hooks/website"));
        tokio::spawn(async move {
            for body in others {
                let s = http.post(&url).json(&body).send().await.unwrap().status();
                assert_eq!(s, 202);
            }
        })
    };
    for name in ["Ann", "Bea", "Cat", "Dot", "Eve"] {
        let (status, _) = h.post_lead(lead("same@example.com", name)).await;
        assert_eq!(status, 202);
    }
    crowd.await.unwrap();
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (25, 0));
    let c = h.sandbox.contact_by_email("same@example.com").unwrap();
    assert_eq!(c.properties["firstname"], "Eve", "the last lead wins");
    assert_eq!(c.writes, 5);
    assert_eq!(h.sandbox.contacts().len(), 21);
    assert!(dead_letters(&h).await.is_empty());
    // No batch was refused for duplicate ids (which would have resent its records one by one).
    assert_eq!(h.sandbox.stats().inputs_received, 25);
}

// 10. tandem paces itself under the vendor's window: no 429 although calls could go much faster.
#[tokio::test]
async fn the_engine_never_exceeds_the_vendor_rate_limit() {
    let h = Harness::start_edited(
        SandboxOptions {
            rate_limit: 10,
            rate_window: Duration::from_secs(1),
            ..Default::default()
        },
        |t| set_key(&t, "connectors.hubspot", "rate_limit", "\"10/1s\""),
    )
    .await;
    // One person's 20 leads need 20 calls (never two in a batch): unpaced, they would take a
    // fraction of a second and blow through 10 per second.
    let others = people("bulk", 40);
    let background = {
        let (http, url) = (h.http.clone(), h.url("/hooks/website"));
        tokio::spawn(async move {
            for body in others {
                let s = http.post(&url).json(&body).send().await.unwrap().status();
                assert_eq!(s, 202);
            }
        })
    };
    for i in 0..20 {
        let (status, _) = h
            .post_lead(lead("busy@example.com", &format!("N{i}")))
            .await;
        assert_eq!(status, 202);
    }
    background.await.unwrap();
    let status = h.drain(LONG).await;
    assert_eq!((status[0].done, status[0].dead), (60, 0));
    let stats = h.sandbox.stats();
    assert!(stats.upsert_calls >= 20, "{stats:?}");
    assert_eq!(stats.rate_limited, 0, "never throttled: {stats:?}");
    let c = h.sandbox.contact_by_email("busy@example.com").unwrap();
    assert_eq!((c.writes, c.properties["firstname"].as_str()), (20, "N19"));
}

#[tokio::test]
async fn a_retry_after_longer_than_the_lease_never_causes_double_sends() {
    let h = Harness::start_edited(SandboxOptions::default(), |t| {
        let t = common::set_key(&t, "daemon.delivery", "lease", "\"1s\"");
        common::set_key(&t, "daemon.delivery", "call_timeout", "\"500ms\"")
    })
    .await;
    // One 429 that asks for 3 s: three leases' worth. Workers must wait it out before
    // claiming, or expired leases would hand the same rows to a second worker.
    h.sandbox
        .set_faults(scripted(vec![ScriptStep {
            times: 1,
            status: 429,
            drop: false,
            retry_after: Some(3),
        }]))
        .unwrap();
    let batch = |from: usize| -> Vec<_> {
        (from..from + 10)
            .map(|i| lead(&format!("wait{i}@example.com"), "W"))
            .collect()
    };
    assert!(h.post_all(batch(0)).await.iter().all(|s| *s == 202));
    common::wait_until(LONG, "the 429", || async {
        (h.sandbox.stats().rate_limited == 1).then_some(())
    })
    .await;
    // Leads arriving during the hold-off are due at once: the ones at risk.
    assert!(h.post_all(batch(10)).await.iter().all(|s| *s == 202));
    h.drain(LONG).await;
    let stats = h.sandbox.stats();
    assert_eq!(stats.rate_limited, 1);
    assert_eq!(
        stats.inputs_received, 20,
        "every lead sent once after the 429: {stats:?}"
    );
    assert!(h.sandbox.contacts().iter().all(|c| c.writes == 1));
}
