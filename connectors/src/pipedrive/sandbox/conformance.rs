//! The Pipedrive sandbox as a [`CrmSandbox`] and [`DealSandbox`] for the cross-CRM conformance
//! and closed-loop suites. The connector it describes uses OAuth (so token expiry and refreshes
//! are exercised), with `api_domain` pointing back here.
//!
//! Stages of the default pipeline: qualified = `"1"` (Qualified), opportunity = `"3"` (Proposal
//! Made); won and lost are `"won"` / `"lost"`, which set the deal's status and keep its stage.
//! [`DealSandbox::notify`] POSTs a webhooks-v2 `change` event for the deal with the HTTP Basic
//! credentials the webhook was "created" with (`SandboxOptions::webhook_user/-password`).

use std::collections::BTreeMap;

use async_trait::async_trait;
use serde_json::json;

use crate::sandbox::{
    CrmFaults, CrmFieldNames, CrmRecord, CrmSandbox, CrmStats, DealSandbox, DealStages, SandboxDeal,
};

use super::{
    ATTRIBUTION_FIELD_KEY, COMPANY_FIELD_KEY, FIRST_TOUCH_FIELD_KEY, LAST_TOUCH_FIELD_KEY,
    PipedriveSandbox, SandboxOptions,
    deals::{deal_json, flat_deal},
    persons::flat_fields,
};

struct Conformance {
    sandbox: PipedriveSandbox,
}

pub async fn start() -> std::io::Result<Box<dyn CrmSandbox>> {
    let sandbox = PipedriveSandbox::start(
        "127.0.0.1:0".parse().map_err(std::io::Error::other)?,
        SandboxOptions::default(),
    )
    .await?;
    Ok(Box::new(Conformance { sandbox }))
}

#[async_trait]
impl CrmSandbox for Conformance {
    fn kind(&self) -> &'static str {
        "pipedrive"
    }

    fn connector_toml(&self) -> String {
        let o = self.sandbox.state().options();
        format!(
            "kind = \"pipedrive\"\nclient_id = \"{}\"\nclient_secret = \"{}\"\nrefresh_token = \"{}\"\nbase_url = \"{}\"\ntoken_url = \"{}\"\ntimeout = \"2s\"\n",
            o.client_id,
            o.client_secret,
            o.refresh_token,
            self.sandbox.base_url(),
            self.sandbox.token_url()
        )
    }

    fn fields(&self) -> CrmFieldNames {
        CrmFieldNames {
            email: "email",
            first_name: "first_name",
            last_name: "last_name",
            phone: "phone",
            company: COMPANY_FIELD_KEY,
        }
    }

    fn records(&self) -> Vec<CrmRecord> {
        self.sandbox
            .state()
            .persons()
            .iter()
            .map(|p| CrmRecord {
                id: p.id.to_string(),
                fields: flat_fields(p),
                writes: p.writes,
            })
            .collect()
    }

    fn edit(&self, email: &str, field: &str, value: &str) {
        self.sandbox.state().edit(email, field, value);
    }

    fn set_faults(&self, faults: CrmFaults) {
        self.sandbox.state().set_faults(faults);
    }

    fn expire_tokens(&self) {
        self.sandbox.state().expire_tokens();
    }

    fn stats(&self) -> CrmStats {
        let s = self.sandbox.state().stats();
        CrmStats {
            api_calls: s.api_calls,
            rate_limited: s.rate_limited,
            token_refreshes: s.token_refreshes,
        }
    }

    /// Pipedrive writes one person per request (no batch endpoint).
    fn batch_limit(&self) -> usize {
        1
    }

    fn deals(&self) -> Option<&dyn DealSandbox> {
        Some(self)
    }
}

#[async_trait]
impl DealSandbox for Conformance {
    fn create_deal(&self, deal: SandboxDeal) -> String {
        self.sandbox.state().create_deal(&deal).to_string()
    }

    fn move_deal(&self, deal_id: &str, stage: &str, amount: Option<&str>, at_ms: Option<i64>) {
        match deal_id.parse() {
            Ok(id) => self.sandbox.state().move_deal(id, stage, amount, at_ms),
            Err(_) => tracing::warn!(%deal_id, "pipedrive sandbox: deal ids are numbers"),
        }
    }

    fn stages(&self) -> DealStages {
        DealStages {
            qualified: "1".to_owned(),
            opportunity: "3".to_owned(),
            won: "won".to_owned(),
            lost: "lost".to_owned(),
        }
    }

    fn deal_fields(&self, deal_id: &str) -> BTreeMap<String, String> {
        deal_id
            .parse()
            .ok()
            .and_then(|id| self.sandbox.state().deal(id))
            .map(|d| flat_deal(&d))
            .unwrap_or_default()
    }

    fn outcome_toml(&self) -> String {
        let o = self.sandbox.state().options();
        format!(
            "outcome_poll_interval = \"200ms\"\nwebhook_user = \"{}\"\nwebhook_password = \"{}\"\ndeal_fields = {{ first_touch = \"{FIRST_TOUCH_FIELD_KEY}\", last_touch = \"{LAST_TOUCH_FIELD_KEY}\", attribution = \"{ATTRIBUTION_FIELD_KEY}\" }}\n",
            o.webhook_user, o.webhook_password
        )
    }

    async fn notify(&self, hook_url: &str, deal_id: &str) -> Option<u16> {
        let state = self.sandbox.state();
        let o = state.options();
        let deal = deal_id.parse().ok().and_then(|id| state.deal(id));
        let data = deal.as_ref().map(|d| deal_json(d, &[]));
        let now = jiff::Timestamp::now().as_second();
        let body = json!({
            "meta": {
                "action": "change", "entity": "deal", "entity_id": deal_id,
                "id": format!("{:08x}-0000-4000-8000-{:012x}", now, deal.as_ref().map_or(0, |d| d.id)),
                "is_bulk_edit": false, "timestamp": now, "type": "general", "version": "2.0",
                "company_id": "1", "user_id": "1", "host": "sandbox.pipedrive.com", "webhook_id": "1",
                "webhook_owner_id": "1", "permitted_user_ids": ["1"], "attempt": 1,
                "change_source": "app", "correlation_id": format!("{now:x}"),
            },
            "data": data,
            "previous": null,
        });
        // Pipedrive gives up on an answer after 10 s.
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(10))
            .user_agent("Pipedrive-Webhook")
            .build()
            .ok()?;
        let sent = http
            .post(hook_url)
            .basic_auth(&o.webhook_user, Some(&o.webhook_password))
            .json(&body)
            .send()
            .await;
        match sent {
            Ok(r) => Some(r.status().as_u16()),
            Err(e) => {
                tracing::warn!(error = %e.without_url(), "pipedrive sandbox: the webhook could not be delivered");
                None
            }
        }
    }
}
