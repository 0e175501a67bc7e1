//! The HubSpot sandbox as a [`CrmSandbox`] (and its [`DealSandbox`]) for the cross-CRM
//! conformance and closed-loop suites. The connector it describes uses OAuth (so
//! `expire_tokens` means something); faults map onto [`Faults`]: counted 429s, 5xxs and dropped
//! answers become script steps for write calls (contact upserts, deal updates; in that order),
//! rates become dice.

use std::collections::BTreeMap;

use async_trait::async_trait;

use crate::sandbox::{
    CrmFaults, CrmFieldNames, CrmRecord, CrmSandbox, CrmStats, DealSandbox, DealStages, SandboxDeal,
};

use super::{Faults, HubspotSandbox, NewDeal, SandboxOptions, ScriptStep, Signing};

/// A started HubSpot sandbox behind the conformance suite's trait.
pub struct HubspotCrm {
    sandbox: HubspotSandbox,
}

impl HubspotCrm {
    pub fn sandbox(&self) -> &HubspotSandbox {
        &self.sandbox
    }
}

pub async fn start() -> std::io::Result<Box<dyn CrmSandbox>> {
    let sandbox =
        HubspotSandbox::start(([127, 0, 0, 1], 0).into(), SandboxOptions::default()).await?;
    Ok(Box::new(HubspotCrm { sandbox }))
}

/// The suite's faults in this sandbox's terms.
pub fn faults(f: &CrmFaults) -> Faults {
    let mut script = Vec::new();
    if f.rate_limit_next > 0 {
        // HubSpot's Retry-After is unconfirmed; a short one keeps the suite quick, and the
        // interval header still says 10 s to clients that ignore it.
        script.push(ScriptStep {
            retry_after: Some(1),
            ..ScriptStep::status(429, f.rate_limit_next)
        });
    }
    if f.server_error_next > 0 {
        script.push(ScriptStep::status(503, f.server_error_next));
    }
    if f.drop_after_write_next > 0 {
        script.push(ScriptStep::drop_after_write(f.drop_after_write_next));
    }
    Faults {
        error_rate: f.server_error_rate.clamp(0.0, 1.0),
        error_status: None,
        rate_limit_rate: 0.0,
        delay_ms: f.delay_ms,
        drop_rate: 0.0,
        item_failure_rate: f.item_failure_rate.clamp(0.0, 1.0),
        script,
        search_script: Vec::new(),
        seed: f.seed,
    }
}

#[async_trait]
impl CrmSandbox for HubspotCrm {
    fn kind(&self) -> &'static str {
        "hubspot"
    }

    fn connector_toml(&self) -> String {
        let o = self.sandbox.state().options();
        format!(
            "kind = \"hubspot\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\ntimeout = \"2s\"\n",
            o.client_id,
            o.client_secret,
            o.refresh_token,
            self.sandbox.base_url(),
            self.sandbox.token_url(),
        )
    }

    fn fields(&self) -> CrmFieldNames {
        CrmFieldNames {
            email: "email",
            first_name: "firstname",
            last_name: "lastname",
            phone: "phone",
            company: "company",
        }
    }

    fn records(&self) -> Vec<CrmRecord> {
        self.sandbox
            .contacts()
            .into_iter()
            .map(|c| CrmRecord {
                id: c.id,
                fields: c.properties,
                writes: c.writes,
            })
            .collect()
    }

    fn edit(&self, email: &str, field: &str, value: &str) {
        self.sandbox.edit(email, field, value);
    }

    fn set_faults(&self, faults: CrmFaults) {
        // `faults()` clamps every probability, so the check can't fail.
        let _ = self.sandbox.set_faults(self::faults(&faults));
    }

    fn expire_tokens(&self) {
        self.sandbox.expire_tokens();
    }

    fn stats(&self) -> CrmStats {
        let s = self.sandbox.stats();
        CrmStats {
            api_calls: s.requests,
            rate_limited: s.rate_limited,
            token_refreshes: s.token_refreshes,
        }
    }

    fn batch_limit(&self) -> usize {
        crate::hubspot::MAX_BATCH
    }

    fn deals(&self) -> Option<&dyn DealSandbox> {
        Some(self)
    }
}

#[async_trait]
impl DealSandbox for HubspotCrm {
    fn create_deal(&self, deal: SandboxDeal) -> String {
        self.sandbox.create_deal(NewDeal {
            name: String::new(),
            pipeline: deal.pipeline,
            stage: deal.stage,
            amount: deal.amount,
            currency: deal.currency,
            contact_emails: deal.contact_emails,
            at_ms: deal.at_ms,
        })
    }

    fn move_deal(&self, deal_id: &str, stage: &str, amount: Option<&str>, at_ms: Option<i64>) {
        self.sandbox.move_deal(deal_id, stage, amount, at_ms);
    }

    fn stages(&self) -> DealStages {
        DealStages {
            qualified: "qualifiedtobuy".to_owned(),
            opportunity: "presentationscheduled".to_owned(),
            won: "closedwon".to_owned(),
            lost: "closedlost".to_owned(),
        }
    }

    fn deal_fields(&self, deal_id: &str) -> BTreeMap<String, String> {
        self.sandbox
            .deal(deal_id)
            .map(|d| d.properties)
            .unwrap_or_default()
    }

    fn outcome_toml(&self) -> String {
        // HubSpot signs webhooks with the app's client secret: the OAuth app's own.
        format!(
            "outcome_poll_interval = \"200ms\"\nwebhook_secret = \"{}\"\n",
            self.sandbox.state().options().client_secret
        )
    }

    async fn notify(&self, hook_url: &str, deal_id: &str) -> Option<u16> {
        self.sandbox
            .notify(hook_url, deal_id, Signing::Genuine)
            .await
    }
}
