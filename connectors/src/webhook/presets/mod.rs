//! One module per platform preset, each implementing [`WebhookPreset`]; this file maps the
//! config's `preset` to its implementation and its required keys.

pub(crate) mod common;
mod generic;
mod google_lead_form;
pub(crate) mod hubspot_forms;
pub mod meta_lead_ads;
mod typeform;
mod webflow;

use std::sync::Arc;

use super::{Preset, WebhookConfig};
use crate::{
    BuildError, ConnectorContext,
    source::{LeadFetcher, WebhookPreset},
};

pub(super) fn build(config: &WebhookConfig) -> Box<dyn WebhookPreset> {
    match config.preset {
        Preset::Generic => Box::new(generic::Generic::new(config)),
        Preset::Typeform => Box::new(typeform::Typeform::new(config)),
        Preset::Webflow => Box::new(webflow::Webflow::new(config)),
        Preset::MetaLeadAds => Box::new(meta_lead_ads::MetaLeadAds::new(config)),
        Preset::GoogleLeadForm => Box::new(google_lead_form::GoogleLeadForm::new(config)),
        Preset::HubspotForms => Box::new(hubspot_forms::HubspotForms::new(config)),
    }
}

pub(super) fn lead_fetcher(
    config: &WebhookConfig,
    ctx: ConnectorContext,
) -> Result<Option<Arc<dyn LeadFetcher>>, BuildError> {
    match config.preset {
        Preset::MetaLeadAds => Ok(Some(Arc::new(meta_lead_ads::GraphFetcher::new(
            config, ctx,
        )?))),
        _ => Ok(None),
    }
}

/// Keys the chosen preset needs, as (key, message with hint).
pub(super) fn validate(config: &WebhookConfig) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let need = |key: &str, present: bool, what: &str, problems: &mut Vec<(String, String)>| {
        if !present {
            problems.push((
                key.to_owned(),
                format!("preset {:?} needs `{key}`: {what}", config.preset),
            ));
        }
    };
    match config.preset {
        Preset::Generic => {}
        Preset::Typeform => need(
            "secret",
            config.secret.is_some(),
            "the webhook's secret from Typeform's Connect → Webhooks",
            &mut problems,
        ),
        Preset::Webflow => need(
            "secret",
            config.secret.is_some(),
            "the site's webhook signing secret",
            &mut problems,
        ),
        Preset::MetaLeadAds => {
            need(
                "secret",
                config.secret.is_some(),
                "the Meta app secret (signs X-Hub-Signature-256)",
                &mut problems,
            );
            need(
                "verify_token",
                config.verify_token.is_some(),
                "the token you typed in the webhook subscription",
                &mut problems,
            );
            need(
                "access_token",
                config.access_token.is_some(),
                "a Page access token with leads_retrieval",
                &mut problems,
            );
        }
        Preset::GoogleLeadForm => need(
            "secret",
            config.secret.is_some(),
            "the key you set as the lead form's webhook key (google_key)",
            &mut problems,
        ),
        Preset::HubspotForms => {
            need(
                "secret",
                config.secret.is_some(),
                "the HubSpot app's client secret",
                &mut problems,
            );
            need(
                "public_url",
                config.public_url.is_some(),
                "the https URL HubSpot calls (it is part of the signature)",
                &mut problems,
            );
        }
    }
    problems
}
