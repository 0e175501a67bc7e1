//! Mailchimp (`kind = "mailchimp"`) as a polled lead source and as a write-back destination.
//!
//! As a source: the members of one audience that changed since the cursor, `GET /3.0/lists/{list_id}/members?since_last_changed=…
//! &before_last_changed=…&sort_field=last_changed&sort_dir=ASC&count=…&offset=…`, authenticated
//! with an API key (HTTP Basic `anystring:KEY`, data centre from the key's `-us21` suffix) or an
//! OAuth access token (Bearer; Mailchimp's don't expire, `dc` must be given).
//!
//! - [`client`]: the [`crate::source::PolledSource`] and its error classification.
//! - [`cursor`]: a `last_changed` window with overlap (never skips, re-reads harmlessly).
//! - [`mapping`]: a member → a [`crate::source::SourceLead`] (`event_id` = member id).
//! - [`wire`]: Mailchimp's JSON bodies, shared with the sandbox.
//! - [`writeback`]: the [`crate::writeback::WritebackSink`]: a deal's milestones become tags on
//!   the person's member (`PUT …/members/{md5}` then `POST …/members/{md5}/tags`), and
//!   `tandem forget` deletes members permanently; [`tags`] decides which tags.
//! - [`md5`]: the subscriber hash.
//! - `sandbox` (feature `sandbox`): a faithful fake of the members, tags and delete APIs.
//!
//! See docs/sources/mailchimp.md and docs/writeback/mailchimp.md.
//!
//! ```toml
//! [connectors.mailchimp]
//! kind = "mailchimp"
//! api_key = "${env:MAILCHIMP_API_KEY}"      # "…-us21": the suffix is the data centre
//! # …or an OAuth token: access_token = "${env:MAILCHIMP_TOKEN}" with dc = "us21"
//! list_id = "a1b2c3d4e5"                     # Audience → Settings → Audience name and defaults
//! # statuses = ["subscribed", "pending"]     # which members count as leads
//! # poll_interval = "5m"
//! # start_from = "7d"                        # "now", a duration back, or an RFC 3339 instant
//! # overlap = "5m"
//! # page_size = 1000
//! # rate_limit = "10/1s"
//! # timeout = "30s"
//! # base_url = "https://us21.api.mailchimp.com/3.0"
//! # write-back (`[attribution] to = ["mailchimp"]`):
//! # writeback_tags = { qualified = "sql", opportunity = "opportunity", won = "deal-won", lost = "deal-lost" }
//! # customer_tag = "customer"                # set on won, removed when the win is retracted
//! # status_if_new = "transactional"          # never subscribes anyone to marketing by itself
//! # writeback_merge_fields = true            # FNAME / LNAME from the person
//! # skip_merge_validation = true
//! ```

pub mod client;
pub mod cursor;
pub mod mapping;
pub mod md5;
#[cfg(feature = "sandbox")]
pub mod sandbox;
pub mod tags;
pub mod wire;
pub mod writeback;
#[cfg(all(test, feature = "sandbox"))]
mod writeback_tests;

use std::time::Duration;

use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;

use crate::{linkedin_lead_gen::StartFrom, sink::RateLimit, units::HumanDuration};

pub use client::MailchimpSource;
pub use tags::WritebackTags;
pub use writeback::MailchimpWriteback;

/// Member statuses Mailchimp knows.
pub const STATUSES: &[&str] = &[
    "subscribed",
    "unsubscribed",
    "cleaned",
    "pending",
    "transactional",
    "archived",
];
/// Mailchimp's documented cap on `count`.
pub const MAX_PAGE_SIZE: u32 = 1000;
/// Mailchimp limits each user to 10 simultaneous connections (no per-second number, no
/// rate-limit headers). tandem's poller makes one request at a time; this ceiling keeps a user
/// override in the same spirit.
pub const MAX_RATE_LIMIT: RateLimit = RateLimit {
    requests: 10,
    per: Duration::from_secs(1),
};

/// `[connectors.NAME]` with `kind = "mailchimp"`.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MailchimpConfig {
    /// An API key (Account → Extras → API keys), `…-us21`.
    #[serde(default)]
    pub api_key: Option<SecretString>,
    /// An OAuth access token instead of `api_key` (needs `dc` or `base_url`).
    #[serde(default)]
    pub access_token: Option<SecretString>,
    /// The data centre (`us21`); default: the API key's suffix.
    #[serde(default)]
    pub dc: Option<String>,
    /// The audience (list) id.
    #[serde(default)]
    pub list_id: String,
    /// Member statuses that count as leads.
    #[serde(default = "default_statuses")]
    pub statuses: Vec<String>,
    /// Default `https://{dc}.api.mailchimp.com/3.0`.
    #[serde(default)]
    pub base_url: Option<String>,
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    #[serde(default = "default_start_from")]
    pub start_from: StartFrom,
    #[serde(default = "default_overlap")]
    pub overlap: HumanDuration,
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    #[serde(default)]
    pub rate_limit: Option<RateLimit>,
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Write-back: the tag each milestone sets (`""` turns a milestone off).
    #[serde(default)]
    pub writeback_tags: WritebackTags,
    /// Write-back: the tag a won deal adds and its retraction removes (`""`: none).
    #[serde(default = "default_customer_tag")]
    pub customer_tag: String,
    /// Write-back: the status of a member tandem has to create. `subscribed` and `pending` are
    /// used only for people whose latest lead gave consent; everyone else is `transactional`.
    #[serde(default = "default_status_if_new")]
    pub status_if_new: String,
    /// Write-back: send the person's first and last name as FNAME / LNAME.
    #[serde(default = "default_true")]
    pub writeback_merge_fields: bool,
    /// Write-back: create members even when the audience has required merge fields tandem
    /// can't fill (`?skip_merge_validation=true`).
    #[serde(default = "default_true")]
    pub skip_merge_validation: bool,
}

/// What `status_if_new` may be (Mailchimp also knows `cleaned`, which no new member should get).
pub const NEW_STATUSES: &[&str] = &["transactional", "subscribed", "pending", "unsubscribed"];

fn default_statuses() -> Vec<String> {
    vec!["subscribed".to_owned(), "pending".to_owned()]
}
fn default_poll_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_start_from() -> StartFrom {
    StartFrom::Ago(Duration::from_secs(7 * 86_400))
}
fn default_overlap() -> HumanDuration {
    HumanDuration(Duration::from_secs(300))
}
fn default_page_size() -> u32 {
    MAX_PAGE_SIZE
}
fn default_timeout() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_customer_tag() -> String {
    "customer".to_owned()
}
fn default_status_if_new() -> String {
    "transactional".to_owned()
}
fn default_true() -> bool {
    true
}

/// `us21` from `…-us21`, if the key ends in a data centre.
pub fn dc_of_key(key: &str) -> Option<&str> {
    let (_, dc) = key.trim().rsplit_once('-')?;
    valid_dc(dc).then_some(dc)
}

fn valid_dc(dc: &str) -> bool {
    let letters = dc.bytes().take_while(u8::is_ascii_lowercase).count();
    letters > 0 && letters < dc.len() && dc.bytes().skip(letters).all(|b| b.is_ascii_digit())
}

impl MailchimpConfig {
    /// The data centre: `dc`, else the API key's suffix.
    pub fn effective_dc(&self) -> Option<String> {
        if let Some(dc) = &self.dc {
            return valid_dc(dc.trim()).then(|| dc.trim().to_owned());
        }
        self.api_key
            .as_ref()
            .and_then(|k| dc_of_key(k.expose_secret()).map(str::to_owned))
    }

    /// `base_url`, else `https://{dc}.api.mailchimp.com/3.0`.
    pub fn effective_base_url(&self) -> Option<String> {
        match &self.base_url {
            Some(u) => Some(u.trim().to_owned()),
            None => self
                .effective_dc()
                .map(|dc| format!("https://{dc}.api.mailchimp.com/3.0")),
        }
    }

    pub fn effective_rate_limit(&self) -> RateLimit {
        self.rate_limit.unwrap_or(MAX_RATE_LIMIT)
    }

    pub fn validate(&self) -> Vec<(String, String)> {
        let mut p: Vec<(String, String)> = Vec::new();
        let mut push = |k: &str, m: String| p.push((k.to_owned(), m));
        let set = |s: &Option<SecretString>| {
            s.as_ref()
                .is_some_and(|s| !s.expose_secret().trim().is_empty())
        };
        match (&self.api_key, &self.access_token) {
            (Some(_), Some(_)) => push(
                "api_key",
                "both `api_key` and `access_token` are set; keep one".to_owned(),
            ),
            (None, None) => push(
                "api_key",
                "no Mailchimp credentials: set `api_key` (Account → Extras → API keys) or an OAuth `access_token` with `dc`".to_owned(),
            ),
            (Some(_), None) if !set(&self.api_key) => {
                push("api_key", "the API key is empty".to_owned())
            }
            (None, Some(_)) if !set(&self.access_token) => {
                push("access_token", "the access token is empty".to_owned())
            }
            _ => {}
        }
        if let Some(dc) = &self.dc
            && !valid_dc(dc.trim())
        {
            push(
                "dc",
                format!(
                    "{dc:?} is not a data centre; write e.g. \"us21\" (the part after the dash of an API key, or `dc` of OAuth metadata)"
                ),
            );
        }
        if self.base_url.is_none() && self.dc.is_none() && self.effective_dc().is_none() {
            if self.access_token.is_some() {
                push(
                    "dc",
                    "an OAuth token doesn't say its data centre: set `dc` (from https://login.mailchimp.com/oauth2/metadata), e.g. \"us21\"".to_owned(),
                );
            } else if set(&self.api_key) {
                push(
                    "api_key",
                    "the API key doesn't end in a data centre (\"…-us21\"); copy the whole key, or set `dc`".to_owned(),
                );
            }
        }
        if let Some(u) = &self.base_url
            && let Err(reason) = crate::hubspot::parse_base_url(u)
        {
            push(
                "base_url",
                format!(
                    "{u:?} is not a usable URL ({reason}); write e.g. \"https://us21.api.mailchimp.com/3.0\""
                ),
            );
        }
        let id = self.list_id.trim();
        if id.is_empty() || !id.bytes().all(|b| b.is_ascii_alphanumeric()) {
            push(
                "list_id",
                format!(
                    "{:?} is not an audience id; find it under Audience → Settings → Audience name and defaults (e.g. \"a1b2c3d4e5\")",
                    self.list_id
                ),
            );
        }
        if self.statuses.is_empty() {
            push(
                "statuses",
                "name at least one member status, e.g. [\"subscribed\", \"pending\"]".to_owned(),
            );
        }
        for (i, s) in self.statuses.iter().enumerate() {
            if !STATUSES.contains(&s.as_str()) {
                push(
                    &format!("statuses[{i}]"),
                    format!(
                        "{s:?} is not a Mailchimp member status; use {}",
                        STATUSES.join(", ")
                    ),
                );
            }
        }
        if self.poll_interval.0 < Duration::from_millis(100) {
            push(
                "poll_interval",
                "poll at most every 100ms; write e.g. \"5m\"".to_owned(),
            );
        }
        if self.overlap.0 < Duration::from_secs(1) {
            push(
                "overlap",
                "overlap must be at least 1s (timestamps have whole seconds; equal ones must be read again); write e.g. \"5m\"".to_owned(),
            );
        }
        if !(1..=MAX_PAGE_SIZE).contains(&self.page_size) {
            push(
                "page_size",
                format!(
                    "page_size must be between 1 and {MAX_PAGE_SIZE} (Mailchimp's cap on `count`)"
                ),
            );
        }
        if let Some(r) = self.rate_limit
            && crate::linkedin_lead_gen::rate_exceeds(r, MAX_RATE_LIMIT)
        {
            push(
                "rate_limit",
                format!(
                    "{r} exceeds {MAX_RATE_LIMIT}; Mailchimp allows 10 simultaneous connections per user and answers 429 beyond; lower it"
                ),
            );
        }
        if self.timeout.0.is_zero() {
            push(
                "timeout",
                "a zero timeout fails every call; write e.g. \"30s\"".to_owned(),
            );
        }
        self.validate_writeback(&mut push);
        p
    }

    fn validate_writeback(&self, push: &mut impl FnMut(&str, String)) {
        use crate::writeback::Milestone;
        let mut seen: Vec<(String, String)> = Vec::new();
        let mut check = |key: String, raw: &str, push: &mut dyn FnMut(&str, String)| {
            let tag = raw.trim();
            if tag.is_empty() {
                return;
            }
            if tag.chars().count() > tags::MAX_TAG_LEN {
                push(
                    &key,
                    format!(
                        "Mailchimp tags have at most {} characters; shorten it",
                        tags::MAX_TAG_LEN
                    ),
                );
            } else if tag != raw {
                push(&key, format!("{raw:?} has spaces around it; write {tag:?}"));
            }
            if let Some((other, _)) = seen.iter().find(|(_, t)| t.eq_ignore_ascii_case(tag)) {
                push(
                    &key,
                    format!(
                        "{tag:?} is also the tag of `{other}`; a retraction of one would remove the other, so give each its own tag"
                    ),
                );
            }
            seen.push((key, tag.to_owned()));
        };
        for m in Milestone::ALL {
            check(
                format!("writeback_tags.{}", m.name()),
                self.writeback_tags.raw(m),
                push,
            );
        }
        check("customer_tag".to_owned(), &self.customer_tag, push);
        if !NEW_STATUSES.contains(&self.status_if_new.as_str()) {
            push(
                "status_if_new",
                format!(
                    "{:?} is not a status for a new member; use {} (\"transactional\" never subscribes anyone to marketing)",
                    self.status_if_new,
                    NEW_STATUSES.join(", ")
                ),
            );
        }
    }
}

impl crate::Connector for MailchimpConfig {
    fn validate(&self) -> Vec<(String, String)> {
        MailchimpConfig::validate(self)
    }

    fn is_source(&self) -> bool {
        true
    }

    fn polled_source(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::source::PolledSource>>, crate::BuildError> {
        Ok(Some(std::sync::Arc::new(MailchimpSource::new(self, ctx)?)))
    }

    fn writeback_sink(
        &self,
        ctx: crate::ConnectorContext,
    ) -> Result<Option<std::sync::Arc<dyn crate::writeback::WritebackSink>>, crate::BuildError>
    {
        Ok(Some(std::sync::Arc::new(MailchimpWriteback::new(
            self, ctx,
        )?)))
    }

    fn is_writeback(&self) -> bool {
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(v: serde_json::Value) -> MailchimpConfig {
        serde_json::from_value(v).expect("config parses")
    }

    #[test]
    fn defaults_dc_and_redaction() {
        let c = config(serde_json::json!({"api_key": "0123abcd-us21", "list_id": "a1b2c3d4e5"}));
        assert!(c.validate().is_empty(), "{:?}", c.validate());
        assert_eq!(
            c.effective_base_url().as_deref(),
            Some("https://us21.api.mailchimp.com/3.0")
        );
        assert_eq!(c.statuses, ["subscribed", "pending"]);
        assert_eq!(c.page_size, 1000);
        assert_eq!(c.effective_rate_limit().to_string(), "10/1s");
        assert!(!format!("{c:?}").contains("0123abcd"));
    }

    #[test]
    fn bad_values_are_named_with_a_hint() {
        assert!(
            serde_json::from_value::<MailchimpConfig>(
                serde_json::json!({"api_key": "k-us1", "list_id": "x", "lists": []})
            )
            .is_err()
        );
        let c = config(serde_json::json!({
            "api_key": "nodc", "list_id": "", "statuses": ["subscribed", "vip"],
            "page_size": 5000, "rate_limit": "20/1s"
        }));
        let keys: Vec<String> = c.validate().into_iter().map(|(k, _)| k).collect();
        assert_eq!(
            keys,
            [
                "api_key",
                "list_id",
                "statuses[1]",
                "page_size",
                "rate_limit"
            ]
        );
        let c = config(serde_json::json!({"access_token": "t", "list_id": "abc"}));
        assert_eq!(c.validate()[0].0, "dc");
        let c = config(serde_json::json!({"access_token": "t", "dc": "us3", "list_id": "abc"}));
        assert!(c.validate().is_empty());
        assert_eq!(dc_of_key("abc-def-us21"), Some("us21"));
        assert_eq!(dc_of_key("abc-21"), None);
    }
}
