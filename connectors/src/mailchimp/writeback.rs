//! [`MailchimpWriteback`]: a deal's milestones as tags on the person's audience member.
//!
//! Per conversion, one request after the other: `PUT /lists/{list_id}/members/{md5(email)}`
//! (creates the member if needed, as `transactional` unless the person consented, and sets
//! FNAME/LNAME), then `POST /lists/{list_id}/members/{md5(email)}/tags` (→ 204). Both are
//! idempotent, so a resend after a crash changes nothing. A retraction only touches tags (it
//! never creates a member to untag). `forget` is `POST …/members/{md5}/actions/delete-permanent`.
//!
//! Mailchimp allows 10 simultaneous connections per user and answers 429 beyond, without
//! `Retry-After`: this sink keeps at most [`MAX_CONNECTIONS`] open (the poll keeps one), paced by
//! the connector's `rate_limit` (per request).

use std::time::Duration;

use async_trait::async_trait;
use reqwest::{StatusCode, Url, header::HeaderMap};
use serde_json::{Map, Value, json};
use tokio::sync::Semaphore;

use crate::{
    BuildError, ConnectorContext,
    sink::{BatchOutcome, CallError, ForgetRecord, ItemResult, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{
    MailchimpConfig,
    client::{Auth, Pacer, base_and_list, classify},
    md5::subscriber_hash,
    tags::{self, TagChange, WritebackTags},
};

/// Conversions per call: each costs two requests, made one after the other.
pub const MAX_BATCH: usize = 10;
/// Connections this sink opens at once, whatever the daemon's concurrency: with the poll's one,
/// well under Mailchimp's 10, leaving room for the account's other integrations.
pub const MAX_CONNECTIONS: usize = 3;
/// Calls per second the daemon may make; the per-request pacing is the connector's `rate_limit`.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    requests: 2,
    per: Duration::from_secs(1),
};

/// One answer, before classification.
struct Answer {
    status: StatusCode,
    headers: HeaderMap,
    body: Vec<u8>,
}

/// `text` with every occurrence of `email` (any ASCII case) replaced: Mailchimp quotes the
/// address in some errors ("… was permanently deleted and cannot be re-imported"), and personal
/// data never goes into an error message.
pub fn redact(text: &str, email: &str) -> String {
    if email.is_empty() {
        return text.to_owned();
    }
    // ASCII lowercasing keeps byte offsets, so matches found in the copy cut the original.
    let hay = text.to_ascii_lowercase();
    let needle = email.to_ascii_lowercase();
    let mut out = String::with_capacity(text.len());
    let mut at = 0;
    while let Some(pos) = hay[at..].find(&needle) {
        out.push_str(&text[at..at + pos]);
        out.push_str("<email>");
        at += pos + needle.len();
    }
    out.push_str(&text[at..]);
    out
}

fn redact_error(e: CallError, email: &str) -> CallError {
    match e {
        CallError::Transient {
            message,
            retry_after,
        } => CallError::Transient {
            message: redact(&message, email),
            retry_after,
        },
        CallError::RateLimited {
            message,
            retry_after,
        } => CallError::RateLimited {
            message: redact(&message, email),
            retry_after,
        },
        CallError::Auth { status, message } => CallError::Auth {
            status,
            message: redact(&message, email),
        },
        CallError::Permanent { message } => CallError::Permanent {
            message: redact(&message, email),
        },
    }
}

/// A call-level failure part-way through a batch: the results so far stand, the rest is
/// `Transient` (nothing was lost: every call is idempotent). A failure on the first item, or of
/// the credentials, is the whole call's.
fn cut_short(
    mut items: Vec<ItemResult>,
    total: usize,
    e: CallError,
) -> Result<BatchOutcome, CallError> {
    if items.is_empty() || matches!(e, CallError::Auth { .. }) {
        return Err(e);
    }
    let pause_for = match &e {
        CallError::RateLimited { retry_after, .. } => Some(*retry_after),
        CallError::Transient { retry_after, .. } => *retry_after,
        _ => None,
    };
    let message = e.to_string();
    while items.len() < total {
        items.push(ItemResult::Transient {
            message: message.clone(),
        });
    }
    Ok(BatchOutcome { items, pause_for })
}

/// The write-back side of one `mailchimp` connector.
pub struct MailchimpWriteback {
    http: reqwest::Client,
    auth: Auth,
    list_url: Url,
    merge_fields_url: Url,
    members_url: Url,
    list_id: String,
    tags: WritebackTags,
    customer_tag: Option<String>,
    status_if_new: String,
    merge_fields: bool,
    skip_merge_validation: bool,
    pacer: Pacer,
    connections: Semaphore,
    timeout: Duration,
}

impl std::fmt::Debug for MailchimpWriteback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("MailchimpWriteback")
            .field("members_url", &self.members_url.as_str())
            .field("auth", &"[redacted]")
            .finish_non_exhaustive()
    }
}

impl MailchimpWriteback {
    pub fn new(config: &MailchimpConfig, _ctx: ConnectorContext) -> Result<Self, BuildError> {
        let (base, list_id) = base_and_list(config)?;
        let bad = |e: reqwest::Error| BuildError::Http(e.to_string());
        let join = |path: String| {
            base.join(&path).map_err(|e| BuildError::BaseUrl {
                url: base.to_string(),
                reason: e.to_string(),
            })
        };
        let list_url = join(format!("lists/{list_id}"))?;
        let merge_fields_url = join(format!("lists/{list_id}/merge-fields"))?;
        let members_url = join(format!("lists/{list_id}/members/"))?;
        let auth = Auth::from_config(config)?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(bad)?;
        Ok(MailchimpWriteback {
            http,
            auth,
            list_url,
            merge_fields_url,
            members_url,
            list_id,
            tags: config.writeback_tags.clone(),
            customer_tag: Some(config.customer_tag.trim().to_owned()).filter(|t| !t.is_empty()),
            status_if_new: config.status_if_new.clone(),
            merge_fields: config.writeback_merge_fields,
            skip_merge_validation: config.skip_merge_validation,
            pacer: Pacer::new(config.effective_rate_limit()),
            connections: Semaphore::new(MAX_CONNECTIONS),
            timeout: config.timeout.0,
        })
    }

    fn transport_error(&self, e: &reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "Mailchimp did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            "could not connect to Mailchimp".to_owned()
        } else if e.is_body() || e.is_decode() {
            "the connection to Mailchimp broke off mid-answer".to_owned()
        } else {
            "the request to Mailchimp failed".to_owned()
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }

    /// One request under the connection cap and the pace; transport failures are `Transient`.
    async fn exchange(&self, request: reqwest::RequestBuilder) -> Result<Answer, CallError> {
        let _slot = self
            .connections
            .acquire()
            .await
            .map_err(|_| CallError::Transient {
                message: "the Mailchimp write-back is shutting down".to_owned(),
                retry_after: None,
            })?;
        self.pacer.wait().await;
        let response = self
            .auth
            .apply(request)
            .send()
            .await
            .map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // Read to the end even for a 204, so a connection dropped mid-answer is noticed.
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?
            .to_vec();
        Ok(Answer {
            status,
            headers,
            body,
        })
    }

    fn member_url(&self, hash: &str, tail: &str) -> Result<Url, CallError> {
        self.members_url
            .join(&format!("{hash}{tail}"))
            .map_err(|e| CallError::Permanent {
                message: format!("could not build the member URL: {e}"),
            })
    }

    /// The status a member created now gets: marketing statuses only with consent.
    fn status_for(&self, consent: Option<bool>) -> &str {
        match self.status_if_new.as_str() {
            "subscribed" | "pending" if consent != Some(true) => "transactional",
            s => s,
        }
    }

    fn upsert_body(&self, c: &Conversion, email: &str) -> Value {
        let mut body = json!({
            "email_address": email,
            "status_if_new": self.status_for(c.person.consent),
        });
        if self.merge_fields {
            let mut merges = Map::new();
            for (tag, value) in [
                ("FNAME", &c.person.first_name),
                ("LNAME", &c.person.last_name),
            ] {
                if let Some(v) = value.as_deref().map(str::trim).filter(|v| !v.is_empty()) {
                    merges.insert(tag.to_owned(), Value::from(v));
                }
            }
            if !merges.is_empty() {
                body["merge_fields"] = Value::Object(merges);
            }
        }
        body
    }

    /// One conversion: the item's result, or a failure of the whole call (throttle, outage,
    /// credentials).
    async fn apply(&self, c: &Conversion) -> Result<ItemResult, CallError> {
        let permanent = |message: String| Ok(ItemResult::Permanent { message });
        if c.action == WritebackAction::Restate {
            return permanent(
                "Mailchimp tags carry no value, so a restatement has nothing to change".to_owned(),
            );
        }
        let changes = tags::plan(
            &self.tags,
            self.customer_tag.as_deref(),
            c.action,
            c.milestone,
        );
        if changes.is_empty() {
            return permanent(format!(
                "no tag is configured for the {} milestone (writeback_tags.{})",
                c.milestone.name(),
                c.milestone.name()
            ));
        }
        let Some(email) = c
            .person
            .email
            .as_deref()
            .map(|e| e.trim().to_lowercase())
            .filter(|e| !e.is_empty())
        else {
            return permanent(
                "the person has no email address; Mailchimp audience members are keyed by email, so nothing was sent"
                    .to_owned(),
            );
        };
        let hash = subscriber_hash(&email);
        if c.action == WritebackAction::Send {
            let mut request = self
                .http
                .put(self.member_url(&hash, "")?)
                .json(&self.upsert_body(c, &email));
            if self.skip_merge_validation {
                request = request.query(&[("skip_merge_validation", "true")]);
            }
            let a = self.exchange(request).await?;
            if !a.status.is_success() {
                return match redact_error(classify(a.status, &a.headers, &a.body), &email) {
                    CallError::Permanent { message } => {
                        permanent(format!("adding or updating the member: {message}"))
                    }
                    e => Err(e),
                };
            }
        }
        let a = self
            .exchange(
                self.http
                    .post(self.member_url(&hash, "/tags")?)
                    .json(&tags_body(&changes)),
            )
            .await?;
        if a.status.is_success()
            // Nothing to withdraw from a member who is no longer in the audience.
            || (a.status == StatusCode::NOT_FOUND && c.action == WritebackAction::Retract)
        {
            return Ok(ItemResult::Done {
                remote_id: hash,
                created: false,
            });
        }
        match redact_error(classify(a.status, &a.headers, &a.body), &email) {
            CallError::Permanent { message } => permanent(format!("setting tags: {message}")),
            e => Err(e),
        }
    }

    async fn forget_one(&self, r: &ForgetRecord) -> Result<ItemResult, CallError> {
        let hash = r.remote_id.trim().to_ascii_lowercase();
        if hash.len() != 32 || !hash.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Ok(ItemResult::Permanent {
                message: format!(
                    "{:?} is not a Mailchimp subscriber hash (32 hex digits); delete the member in Mailchimp by hand",
                    r.remote_id
                ),
            });
        }
        let url = self.member_url(&hash, "/actions/delete-permanent")?;
        let a = self.exchange(self.http.post(url)).await?;
        // 404: already gone, which is what was asked.
        if a.status.is_success() || a.status == StatusCode::NOT_FOUND {
            return Ok(ItemResult::Done {
                remote_id: hash,
                created: false,
            });
        }
        match classify(a.status, &a.headers, &a.body) {
            CallError::Permanent { message } => Ok(ItemResult::Permanent { message }),
            e => Err(e),
        }
    }

    /// `GET /lists/{list_id}/merge-fields`: the problems the write-back's merge fields would
    /// meet.
    async fn verify_merge_fields(&self) -> Vec<String> {
        let request = self
            .http
            .get(self.merge_fields_url.clone())
            .query(&[("count", "1000")]);
        let a = match self.exchange(request).await {
            Ok(a) if a.status.is_success() => a,
            Ok(a) => {
                let e = classify(a.status, &a.headers, &a.body);
                return vec![format!("could not read the audience's merge fields ({e})")];
            }
            Err(e) => return vec![format!("could not read the audience's merge fields ({e})")],
        };
        let fields: Vec<(String, bool)> = serde_json::from_slice::<Value>(&a.body)
            .ok()
            .and_then(|v| v.get("merge_fields").and_then(Value::as_array).cloned())
            .unwrap_or_default()
            .iter()
            .filter_map(|f| {
                let tag = f.get("tag")?.as_str()?.to_owned();
                let required = f.get("required").and_then(Value::as_bool).unwrap_or(false);
                Some((tag, required))
            })
            .collect();
        let mut lines = Vec::new();
        if self.merge_fields {
            for tag in ["FNAME", "LNAME"] {
                if !fields.iter().any(|(t, _)| t == tag) {
                    lines.push(format!(
                        "audience {} has no {tag} merge field; add it (Audience → Settings → Audience fields and *|MERGE|* tags) or set writeback_merge_fields = false",
                        self.list_id
                    ));
                }
            }
        }
        if !self.skip_merge_validation {
            let names = if self.merge_fields {
                &["FNAME", "LNAME"][..]
            } else {
                &[]
            };
            for (tag, _) in fields
                .iter()
                .filter(|(t, required)| *required && !names.contains(&t.as_str()))
            {
                lines.push(format!(
                    "merge field {tag} is required, and tandem can't fill it: Mailchimp would refuse every new member; set skip_merge_validation = true or make {tag} optional"
                ));
            }
        }
        lines
    }
}

/// `{"tags":[{"name","status"}],"is_syncing":false}`: not syncing, so automations triggered by
/// these tags (a customer journey on `deal-won`) run.
fn tags_body(changes: &[TagChange]) -> Value {
    let tags: Vec<Value> = changes
        .iter()
        .map(|t| json!({"name": t.name, "status": if t.active { "active" } else { "inactive" }}))
        .collect();
    json!({ "tags": tags, "is_syncing": false })
}

#[async_trait]
impl WritebackSink for MailchimpWriteback {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        DEFAULT_RATE_LIMIT
    }

    fn accepts(&self, milestone: Milestone) -> bool {
        self.tags.get(milestone).is_some()
    }

    fn supports(&self, action: WritebackAction) -> bool {
        matches!(action, WritebackAction::Send | WritebackAction::Retract)
    }

    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError> {
        let mut items = Vec::with_capacity(batch.len());
        for c in batch {
            match self.apply(c).await {
                Ok(item) => items.push(item),
                Err(e) => return cut_short(items, batch.len(), e),
            }
        }
        Ok(BatchOutcome {
            items,
            pause_for: None,
        })
    }

    async fn verify(&self) -> Vec<String> {
        let request = self
            .http
            .get(self.list_url.clone())
            .query(&[("fields", "id,name")]);
        let id = &self.list_id;
        match self.exchange(request).await {
            Ok(a) if a.status.is_success() => self.verify_merge_fields().await,
            Ok(a) if a.status == StatusCode::NOT_FOUND => vec![format!(
                "audience {id} was not found; check `list_id` (Audience → Settings → Audience name and defaults) and that the key belongs to that account"
            )],
            Ok(a) => match classify(a.status, &a.headers, &a.body) {
                CallError::Auth { message, .. } => vec![format!(
                    "Mailchimp refused the credentials ({message}); check `api_key` (Account → Extras → API keys) or the OAuth `access_token` and `dc`"
                )],
                e => vec![format!("could not check audience {id} ({e}); try again")],
            },
            Err(e) => vec![format!("could not check audience {id} ({e}); try again")],
        }
    }

    fn supports_forget(&self) -> bool {
        true
    }

    async fn forget(&self, batch: &[ForgetRecord]) -> Result<BatchOutcome, CallError> {
        let mut items = Vec::with_capacity(batch.len());
        for r in batch {
            match self.forget_one(r).await {
                Ok(item) => items.push(item),
                Err(e) => return cut_short(items, batch.len(), e),
            }
        }
        Ok(BatchOutcome {
            items,
            pause_for: None,
        })
    }
}

#[cfg(test)]
mod unit_tests {
    use super::*;

    #[test]
    fn emails_are_redacted_in_any_case() {
        assert_eq!(
            redact(
                "Jane.Doe@Example.com was permanently deleted; jane.doe@example.com can't be re-imported",
                "jane.doe@example.com"
            ),
            "<email> was permanently deleted; <email> can't be re-imported"
        );
        assert_eq!(redact("nothing here", "a@b.c"), "nothing here");
        assert_eq!(redact("ünï a@b.c", "A@B.C"), "ünï <email>");
    }

    #[test]
    fn a_call_cut_short_keeps_what_is_done() {
        let done = ItemResult::Done {
            remote_id: "h".into(),
            created: false,
        };
        let throttled = CallError::RateLimited {
            message: "slow down".into(),
            retry_after: Duration::from_secs(10),
        };
        assert_eq!(
            cut_short(vec![], 2, throttled.clone()),
            Err(throttled.clone())
        );
        let out = cut_short(vec![done.clone()], 3, throttled).unwrap();
        assert_eq!(out.items.len(), 3);
        assert_eq!(out.items[0], done);
        assert!(
            matches!(&out.items[2], ItemResult::Transient { message } if message.contains("slow down"))
        );
        assert_eq!(out.pause_for, Some(Duration::from_secs(10)));
        let auth = CallError::Auth {
            status: 401,
            message: "no".into(),
        };
        assert_eq!(cut_short(vec![done], 2, auth.clone()), Err(auth));
    }
}
