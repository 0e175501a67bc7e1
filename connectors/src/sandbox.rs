//! The conformance suite's view of any CRM sandbox: start it, point a connector at it, play
//! salesperson in it, inject faults, expire tokens, and count what it saw. Every CRM's sandbox
//! implements [`CrmSandbox`]; [`start_crm`] is the list the suite runs over.

use std::collections::BTreeMap;

use async_trait::async_trait;

/// The CRM's own names for the canonical fields the suite maps.
#[derive(Debug, Clone, Copy)]
pub struct CrmFieldNames {
    pub email: &'static str,
    pub first_name: &'static str,
    pub last_name: &'static str,
    pub phone: &'static str,
    pub company: &'static str,
}

/// One person/lead/contact record as the sandbox holds it (CRM field names).
#[derive(Debug, Clone, PartialEq)]
pub struct CrmRecord {
    pub id: String,
    pub fields: BTreeMap<String, String>,
    /// Creates and updates applied; 1 = created and never touched again.
    pub writes: u32,
}

/// Faults every CRM sandbox can inject, in the vendor's own shapes.
#[derive(Debug, Clone, Default)]
pub struct CrmFaults {
    /// Probability (0..1) that a write call answers the vendor's 5xx.
    pub server_error_rate: f64,
    /// The next N write calls answer the vendor's 429 (or its own throttle shape).
    pub rate_limit_next: u32,
    /// The next N write calls answer 5xx.
    pub server_error_next: u32,
    /// The next N write calls apply the write, then drop the connection before answering.
    pub drop_after_write_next: u32,
    /// Added latency per call, in ms.
    pub delay_ms: u64,
    /// Probability (0..1) that one record of a batch is refused with the vendor's validation error.
    pub item_failure_rate: f64,
    pub seed: Option<u64>,
}

/// What the sandbox saw.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct CrmStats {
    /// API calls other than token refreshes (searches and reads included).
    pub api_calls: u64,
    pub rate_limited: u64,
    pub token_refreshes: u64,
}

#[async_trait]
pub trait CrmSandbox: Send + Sync {
    /// The `kind = "…"` this sandbox fakes.
    fn kind(&self) -> &'static str;
    /// Body lines of a `[connectors.NAME]` table (kind, credentials, base_url, …) pointing here.
    fn connector_toml(&self) -> String;
    fn fields(&self) -> CrmFieldNames;
    /// Every person record.
    fn records(&self) -> Vec<CrmRecord>;
    /// The record whose email is `email` (case-insensitive).
    fn record_by_email(&self, email: &str) -> Option<CrmRecord> {
        let f = self.fields().email;
        self.records().into_iter().find(|r| {
            r.fields
                .get(f)
                .is_some_and(|e| e.eq_ignore_ascii_case(email))
        })
    }
    /// Writes a field directly, as a salesperson would in the CRM's UI.
    fn edit(&self, email: &str, field: &str, value: &str);
    fn set_faults(&self, faults: CrmFaults);
    /// Invalidates every access token issued so far, as the vendor does when one expires.
    fn expire_tokens(&self);
    fn stats(&self) -> CrmStats;
    /// The most records one write call may carry (the vendor's batch limit).
    fn batch_limit(&self) -> usize;
    /// The deal side of this CRM's sandbox (closed-loop suite).
    fn deals(&self) -> Option<&dyn DealSandbox> {
        None
    }
}

/// A deal as a salesperson creates it in the CRM's UI.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct SandboxDeal {
    /// `None`: the CRM's default pipeline.
    pub pipeline: Option<String>,
    /// The CRM's own stage id / name (see [`DealStages`]).
    pub stage: String,
    /// Decimal text as typed in the CRM ("1500.00"); `None`: no amount.
    pub amount: Option<String>,
    /// ISO 4217; `None`: the account's currency.
    pub currency: Option<String>,
    /// The deal's people, by email; each must already be a person record in the sandbox.
    pub contact_emails: Vec<String>,
    /// Unix ms stamped as the deal's creation and last-modified time; `None` = now. A past value
    /// models a late write: visible now, stamped in the past.
    pub at_ms: Option<i64>,
}

/// The stage ids this sandbox's default pipeline uses for tandem's milestones.
#[derive(Debug, Clone, PartialEq)]
pub struct DealStages {
    pub qualified: String,
    pub opportunity: String,
    pub won: String,
    pub lost: String,
}

/// The deal side of a CRM sandbox: play salesperson, read what tandem wrote on a deal.
#[async_trait]
pub trait DealSandbox: Send + Sync {
    /// Creates a deal associated with its people; returns the CRM's id for it.
    fn create_deal(&self, deal: SandboxDeal) -> String;
    /// Moves a deal to `stage`, optionally changing its amount, stamped `at_ms` (`None` = now; a
    /// past value models a late write). Won/lost stages set the close date.
    fn move_deal(&self, deal_id: &str, stage: &str, amount: Option<&str>, at_ms: Option<i64>);
    /// The default pipeline's stages for each milestone.
    fn stages(&self) -> DealStages;
    /// The deal's current properties (CRM names), including what tandem wrote back.
    fn deal_fields(&self, deal_id: &str) -> BTreeMap<String, String>;
    /// Extra lines for the `[connectors.NAME]` table that turn on the deal side (outcome poll
    /// interval, webhook secret, deal field names…); may be empty.
    fn outcome_toml(&self) -> String;
    /// Calls tandem's CRM webhook at `hook_url` about a change to `deal_id`, authenticated as
    /// the vendor does it; `false` when this CRM has no deal webhooks. Returns the HTTP status
    /// tandem answered in `Ok`.
    async fn notify(&self, hook_url: &str, deal_id: &str) -> Option<u16>;
}

/// One conversion / tag / field change as a write-back sandbox accepted it (after the vendor's
/// own dedup).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ReceivedWriteback {
    /// The vendor-side dedup key as sent (`transactionId`, `order_id`, `event_id`, `eventId`,
    /// or `email:tag` for Mailchimp tags).
    pub key: String,
    /// What it reports: conversion action / event name / tag.
    pub name: String,
    /// Decimal text of the value, when one was sent.
    pub value: Option<String>,
    pub currency: Option<String>,
    /// `None` for a conversion; `Some("RETRACTION")`, `Some("RESTATEMENT")` for adjustments;
    /// `Some("inactive")` for a removed tag.
    pub adjustment: Option<String>,
    /// The match keys it carried (`gclid`, `hashed_email`, `lead_id`, `SHA256_EMAIL`, …).
    pub identifiers: Vec<String>,
}

/// The closed-loop suite's view of a write-back destination's sandbox.
pub trait WritebackSandbox: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Body lines of a `[connectors.NAME]` table pointing here, with every milestone configured.
    fn connector_toml(&self) -> String;
    /// Everything accepted so far, in arrival order.
    fn received(&self) -> Vec<ReceivedWriteback>;
    fn set_faults(&self, faults: CrmFaults);
    fn stats(&self) -> CrmStats;
}

/// Starts the write-back sandbox of `kind`; `None` for kinds without one.
pub async fn start_writeback(kind: &str) -> std::io::Result<Option<Box<dyn WritebackSandbox>>> {
    Ok(match kind {
        "google_ads" => Some(crate::google_ads::sandbox::writeback::start().await?),
        "linkedin" => Some(crate::linkedin::sandbox::writeback::start().await?),
        "meta_capi" => Some(crate::meta_capi::sandbox::writeback::start().await?),
        "mailchimp" => Some(crate::mailchimp::sandbox::writeback::start().await?),
        _ => None,
    })
}

/// Every write-back kind the closed-loop suite runs against.
pub const WRITEBACK_KINDS: &[&str] = &["google_ads", "meta_capi", "linkedin", "mailchimp"];

/// Starts the sandbox of `kind` on a loopback port; `None` for kinds without one.
pub async fn start_crm(kind: &str) -> std::io::Result<Option<Box<dyn CrmSandbox>>> {
    Ok(match kind {
        "hubspot" => Some(crate::hubspot::sandbox::conformance::start().await?),
        "salesforce" => Some(crate::salesforce::sandbox::conformance::start().await?),
        "pipedrive" => Some(crate::pipedrive::sandbox::conformance::start().await?),
        "zoho" => Some(crate::zoho::sandbox::conformance::start().await?),
        _ => None,
    })
}

/// Every CRM kind the conformance suite runs against.
pub const CRM_KINDS: &[&str] = &["hubspot", "salesforce", "pipedrive", "zoho"];

/// The source suite's view of a polled source's sandbox (LinkedIn, Mailchimp, Brevo, Klaviyo…).
#[async_trait]
pub trait SourceSandbox: Send + Sync {
    fn kind(&self) -> &'static str;
    /// Body lines of a `[connectors.NAME]` table (kind, credentials, base_url, a short poll
    /// interval such as `poll_interval = "200ms"`, …) pointing here.
    fn connector_toml(&self) -> String;
    /// A person fills in the platform's form (or joins the list) at `at_ms` (unix ms; `None` =
    /// now). Several leads may share one timestamp; a past `at_ms` models a late-arriving write
    /// (it becomes visible now, stamped in the past). Returns the platform's id for it.
    fn add_lead(&self, email: &str, first_name: &str, at_ms: Option<i64>) -> String;
    fn set_faults(&self, faults: CrmFaults);
    fn stats(&self) -> CrmStats;
}

/// Starts the sandbox of a polled source `kind`; `None` for kinds without one.
pub async fn start_source(kind: &str) -> std::io::Result<Option<Box<dyn SourceSandbox>>> {
    Ok(match kind {
        "linkedin_lead_gen" => Some(crate::linkedin_lead_gen::sandbox::source::start().await?),
        "mailchimp" => Some(crate::mailchimp::sandbox::source::start().await?),
        "brevo" => Some(crate::brevo::sandbox::source::start().await?),
        "klaviyo" => Some(crate::klaviyo::sandbox::source::start().await?),
        _ => None,
    })
}

/// Every polled source kind the source suite runs against.
pub const POLLED_KINDS: &[&str] = &["linkedin_lead_gen", "mailchimp", "brevo", "klaviyo"];
