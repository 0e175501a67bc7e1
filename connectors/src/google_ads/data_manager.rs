//! The Data Manager protocol: `POST /v1/events:ingest`, one request per conversion action of the
//! batch (a request's destinations apply to all its events), each event keyed by
//! `transactionId` = the conversion's dedup key.
//!
//! - Dedup and adjustments are Google's: an event whose `transactionId` matches a recorded
//!   conversion of the same action adjusts it (same value: nothing changes), so a resend after
//!   a crash never double-counts and a restatement is the same event with the new value and
//!   `lastUpdatedTimestamp`.
//! - Google fails the whole request for one bad event ("fast fail", no partial failure) and
//!   names it in `google.rpc.BadRequest` field violations (`events[3].…`). Those events become
//!   their items' `Permanent` with Google's words, and the rest is sent again at once (a few
//!   rounds at most), so one bad event never sinks its batch.
//! - Retractions: Google's adjustment guide describes restating values and supplementing user
//!   data only, so a `Retract` is refused per item (and `supports` says so).

use std::collections::BTreeMap;

use reqwest::StatusCode;

use crate::{
    sink::{BatchOutcome, CallError, ItemResult},
    writeback::{Conversion, WritebackAction},
};

use super::{
    GoogleAdsWriteback,
    client::now_ms,
    errors::{self, event_index},
    prepare::{ClickId, Prepared, prepare, rfc3339},
    results::Results,
    wire::{
        AdIdentifiers, Consent, Destination, Event, GOOGLE_ADS_ACCOUNT, HEX, IngestEventsRequest,
        ProductAccount, UserData, UserIdentifier,
    },
};

/// Rounds of "drop the refused events, send the rest" before giving up on a request.
const MAX_ROUNDS: usize = 3;

pub const RETRACT_UNSUPPORTED: &str = "Google's Data Manager API can't retract a conversion (it restates values and adds user data only); retract it in Google Ads (Goals > Conversions > Uploads), or use api = \"google_ads\" if your developer token may still upload";

fn account(id: &str) -> ProductAccount {
    ProductAccount {
        account_type: GOOGLE_ADS_ACCOUNT.to_owned(),
        account_id: id.to_owned(),
    }
}

/// The destination of every event of a request.
pub(super) fn destination(client: &GoogleAdsWriteback, action_id: &str) -> Destination {
    Destination {
        reference: None,
        login_account: client.login_customer_id.as_deref().map(account),
        operating_account: Some(account(&client.customer_id)),
        product_destination_id: action_id.to_owned(),
    }
}

fn consent(granted: Option<bool>) -> Option<Consent> {
    let value = |g: bool| {
        if g {
            "CONSENT_GRANTED"
        } else {
            "CONSENT_DENIED"
        }
    };
    granted.map(|g| Consent {
        ad_user_data: Some(value(g).to_owned()),
        ad_personalization: Some(value(g).to_owned()),
    })
}

/// One conversion as a Data Manager event.
pub(super) fn event(client: &GoogleAdsWriteback, p: &Prepared<'_>) -> Event {
    let c = p.conversion;
    let ad_identifiers = p.click.as_ref().map(|click| {
        let mut ids = AdIdentifiers::default();
        let value = Some(click.value().to_owned());
        match click {
            ClickId::Gclid(_) => ids.gclid = value,
            ClickId::Gbraid(_) => ids.gbraid = value,
            ClickId::Wbraid(_) => ids.wbraid = value,
        }
        ids
    });
    let mut identifiers = Vec::new();
    identifiers.extend(p.hashed_email.clone().map(|h| UserIdentifier {
        email_address: Some(h),
        phone_number: None,
    }));
    identifiers.extend(p.hashed_phone.clone().map(|h| UserIdentifier {
        email_address: None,
        phone_number: Some(h),
    }));
    Event {
        transaction_id: Some(c.key.clone()),
        event_timestamp: Some(rfc3339(p.at_ms)),
        // An adjustment says when the change happened; a send leaves it out.
        last_updated_timestamp: (c.action != WritebackAction::Send).then(|| rfc3339(p.at_ms)),
        user_data: (!identifiers.is_empty()).then_some(UserData {
            user_identifiers: identifiers,
        }),
        consent: consent(c.person.consent),
        ad_identifiers,
        currency: p.value.and(p.currency.clone()),
        conversion_value: p.value,
        event_source: Some(client.event_source.wire().to_owned()),
    }
}

/// The `events:ingest` body for `pending`, all of one conversion action.
pub(super) fn request(
    client: &GoogleAdsWriteback,
    action_id: &str,
    pending: &[Prepared<'_>],
    validate_only: bool,
) -> IngestEventsRequest {
    let events: Vec<Event> = pending.iter().map(|p| event(client, p)).collect();
    let has_user_data = events.iter().any(|e| e.user_data.is_some());
    IngestEventsRequest {
        destinations: vec![destination(client, action_id)],
        events,
        consent: None,
        validate_only,
        encoding: has_user_data.then(|| HEX.to_owned()),
    }
}

/// Sends one conversion action's events, dropping refused events and resending the rest.
async fn ingest_group(
    client: &GoogleAdsWriteback,
    action_id: &str,
    mut pending: Vec<Prepared<'_>>,
    results: &mut Results,
) -> Result<(), CallError> {
    let url = client.ingest_url();
    for _ in 0..MAX_ROUNDS {
        if pending.is_empty() {
            return Ok(());
        }
        let body = request(client, action_id, &pending, false);
        let answer = client.post(&url, &body).await?;
        if answer.status.is_success() {
            results.answered();
            for p in pending {
                results.set(
                    p.index,
                    ItemResult::Done {
                        remote_id: p.conversion.key.clone(),
                        created: p.conversion.action == WritebackAction::Send,
                    },
                );
            }
            return Ok(());
        }
        if answer.status != StatusCode::BAD_REQUEST {
            return Err(errors::classify(
                errors::Api::DataManager,
                answer.status,
                &answer.headers,
                &answer.body,
            ));
        }
        results.answered();
        let violations = errors::parse(&answer.body)
            .map(|e| e.error.field_violations())
            .unwrap_or_default();
        let mut per_event: BTreeMap<usize, Vec<String>> = BTreeMap::new();
        let mut request_level = violations.is_empty();
        for v in &violations {
            match event_index(&v.field) {
                Some(i) if i < pending.len() => {
                    let reason = v.reason.as_deref().unwrap_or("INVALID_ARGUMENT");
                    per_event
                        .entry(i)
                        .or_default()
                        .push(format!("{reason}: {} ({})", v.description, v.field));
                }
                _ => request_level = true,
            }
        }
        if request_level {
            // About the destination or the request itself: every event of it shares the fate.
            let message = errors::describe(errors::Api::DataManager, answer.status, &answer.body);
            for p in pending {
                results.set(
                    p.index,
                    ItemResult::Permanent {
                        message: message.clone(),
                    },
                );
            }
            return Ok(());
        }
        let mut rest = Vec::with_capacity(pending.len());
        for (i, p) in pending.into_iter().enumerate() {
            match per_event.get(&i) {
                Some(why) => results.set(
                    p.index,
                    ItemResult::Permanent {
                        message: format!("Google refused this event: {}", why.join("; ")),
                    },
                ),
                None => rest.push(p),
            }
        }
        pending = rest;
    }
    for p in pending {
        results.set(
            p.index,
            ItemResult::Transient {
                message: "Google kept refusing other events of the same request; this one will be sent again".to_owned(),
            },
        );
    }
    Ok(())
}

pub(super) async fn send(
    client: &GoogleAdsWriteback,
    batch: &[Conversion],
) -> Result<BatchOutcome, CallError> {
    let now = now_ms();
    let mut results = Results::new(batch.len());
    let mut groups: BTreeMap<String, Vec<Prepared<'_>>> = BTreeMap::new();
    for (i, c) in batch.iter().enumerate() {
        if c.action == WritebackAction::Retract {
            results.set(
                i,
                ItemResult::Permanent {
                    message: RETRACT_UNSUPPORTED.to_owned(),
                },
            );
            continue;
        }
        match prepare(i, c, &client.actions, now, true) {
            Ok(p) if c.action == WritebackAction::Restate && p.value.is_none() => results.set(
                i,
                ItemResult::Permanent {
                    message: "a restatement needs the deal's new amount, and this one has none"
                        .to_owned(),
                },
            ),
            Ok(p) => groups.entry(p.action_id.clone()).or_default().push(p),
            Err(message) => results.set(i, ItemResult::Permanent { message }),
        }
    }
    for (action_id, group) in groups {
        let indexes: Vec<usize> = group.iter().map(|p| p.index).collect();
        if let Err(e) = ingest_group(client, &action_id, group, &mut results).await {
            results.call_failed(&indexes, e)?;
        }
    }
    Ok(results.finish())
}
