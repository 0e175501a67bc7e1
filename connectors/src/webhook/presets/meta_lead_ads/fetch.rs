//! [`GraphFetcher`]: reads one lead, `GET {api_base_url}/{leadgen_id}?fields=…`, with the Page
//! access token as `Authorization: Bearer` (kept out of URLs, hence out of proxy logs and error
//! messages) and `appsecret_proof` when the app secret is known. One call per lead, no retries:
//! the engine owns those. Page tokens can't be refreshed, so an invalid or expired token is an
//! auth error that pauses the connector.

use std::time::Duration;

use async_trait::async_trait;
use secrecy::{ExposeSecret, SecretString};
use serde_json::Value;

use super::{appsecret_proof, lead::map_lead};
use crate::meta_graph as graph;
use crate::{
    BuildError, ConnectorContext, RateLimit,
    sink::CallError,
    source::{FetchRequest, LeadFetcher, SourceLead},
    webhook::WebhookConfig,
};

/// Graph's production base, with the version this connector was written against. Graph routes
/// calls to a retired version to the oldest available one; pin a newer one in `api_base_url`.
pub const DEFAULT_API_BASE_URL: &str = "https://graph.facebook.com/v21.0";

/// The Lead fields requested.
pub const LEAD_FIELDS: &str = "id,created_time,field_data,ad_id,ad_name,adset_id,adset_name,campaign_id,campaign_name,form_id,platform,is_organic";

/// One fetch per lead, and a Page's lead-retrieval allowance is 200 × 24 calls a day per lead it
/// received in the last 90 days, so the allowance always outgrows the leads. This default only
/// keeps bursts (a backlog after an outage) polite: 60 a minute.
pub const DEFAULT_RATE_LIMIT: RateLimit = RateLimit {
    requests: 60,
    per: Duration::from_secs(60),
};

const TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// A lead is a few kilobytes; anything far larger is not a lead.
const MAX_BODY: usize = 1 << 20;

/// Fetches announced leads from the Graph API.
pub struct GraphFetcher {
    http: reqwest::Client,
    base: reqwest::Url,
    access_token: SecretString,
    proof: Option<String>,
    connector: String,
}

impl std::fmt::Debug for GraphFetcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GraphFetcher")
            .field("base", &self.base.as_str())
            .field("connector", &self.connector)
            .finish_non_exhaustive()
    }
}

/// `api_base_url` (or the default) as a base URL that ids can be appended to.
pub(crate) fn base_url(config: &WebhookConfig) -> Result<reqwest::Url, BuildError> {
    let raw = config
        .api_base_url
        .as_deref()
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .unwrap_or(DEFAULT_API_BASE_URL);
    let err = |reason: String| BuildError::BaseUrl {
        url: raw.to_owned(),
        reason,
    };
    let mut url = reqwest::Url::parse(raw).map_err(|e| err(e.to_string()))?;
    if !matches!(url.scheme(), "http" | "https") || url.host_str().is_none() {
        return Err(err("must be an http(s) URL with a host".to_owned()));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(err("must not carry a query or fragment".to_owned()));
    }
    if !url.path().ends_with('/') {
        let path = format!("{}/", url.path());
        url.set_path(&path);
    }
    Ok(url)
}

impl GraphFetcher {
    pub fn new(config: &WebhookConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let base = base_url(config)?;
        let access_token = config.access_token.clone().ok_or_else(|| {
            BuildError::Http(
                "meta_lead_ads needs `access_token`: a Page access token with leads_retrieval"
                    .to_owned(),
            )
        })?;
        let proof = config.secret.as_ref().map(|secret| {
            appsecret_proof(
                secret.expose_secret().as_bytes(),
                access_token.expose_secret().as_bytes(),
            )
        });
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(TIMEOUT)
            .connect_timeout(CONNECT_TIMEOUT)
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        Ok(GraphFetcher {
            http,
            base,
            access_token,
            proof,
            connector: ctx.name,
        })
    }

    fn lead_url(&self, leadgen_id: &str) -> Result<reqwest::Url, CallError> {
        // Notification ids were checked by the preset, but the outbox row could come from
        // anywhere (replay, an older version): never let an id change the path.
        let ok = !leadgen_id.is_empty()
            && leadgen_id.len() <= 64
            && leadgen_id
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-');
        if !ok {
            return Err(CallError::Permanent {
                message: "the leadgen id is not a Graph id (letters and digits only)".to_owned(),
            });
        }
        let mut url = self
            .base
            .join(leadgen_id)
            .map_err(|e| CallError::Permanent {
                message: format!("cannot build the lead URL: {e}"),
            })?;
        {
            let mut q = url.query_pairs_mut();
            q.append_pair("fields", LEAD_FIELDS);
            if let Some(proof) = &self.proof {
                q.append_pair("appsecret_proof", proof);
            }
        }
        Ok(url)
    }
}

fn send_error(e: &reqwest::Error) -> CallError {
    let message = if e.is_timeout() {
        format!(
            "Graph API did not answer within {}",
            crate::units::HumanDuration(TIMEOUT)
        )
    } else if e.is_connect() {
        "cannot connect to the Graph API".to_owned()
    } else {
        // The caller strips the URL first: it carries the appsecret_proof.
        format!("Graph API request failed: {e}")
    };
    CallError::Transient {
        message,
        retry_after: None,
    }
}

#[async_trait]
impl LeadFetcher for GraphFetcher {
    async fn fetch(&self, request: &FetchRequest) -> Result<SourceLead, CallError> {
        let url = self.lead_url(&request.event_id)?;
        let mut response = self
            .http
            .get(url)
            .bearer_auth(self.access_token.expose_secret())
            .send()
            .await
            .map_err(|e| send_error(&e.without_url()))?;
        let status = response.status();
        let headers = response.headers().clone();
        let mut body = Vec::new();
        loop {
            match response.chunk().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return Err(CallError::Transient {
                            message: format!("Graph API answer is larger than {MAX_BODY} bytes"),
                            retry_after: None,
                        });
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(e) => return Err(send_error(&e.without_url())),
            }
        }
        let usage = graph::usage_percent(&headers);
        if usage >= 90 {
            tracing::warn!(
                connector = %self.connector,
                usage_percent = usage,
                "Graph API usage is close to its limit"
            );
        }
        if !status.is_success() {
            return Err(graph::classify(status, &headers, &body));
        }
        let lead: Value = match serde_json::from_slice(&body) {
            Ok(v @ Value::Object(_)) => v,
            _ => {
                return Err(CallError::Transient {
                    message: format!("Graph API answered {status} with a body that is not a lead"),
                    retry_after: None,
                });
            }
        };
        // Graph answers some failures with 200 and an error object.
        if lead.get("error").is_some() {
            return Err(graph::classify(status, &headers, &body));
        }
        Ok(map_lead(request, &lead))
    }

    fn rate_limit(&self) -> RateLimit {
        DEFAULT_RATE_LIMIT
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(base: Option<&str>) -> WebhookConfig {
        let mut c = serde_json::json!({
            "preset": "meta_lead_ads", "secret": "s", "verify_token": "v", "access_token": "t",
        });
        if let Some(b) = base {
            c["api_base_url"] = b.into();
        }
        serde_json::from_value(c).unwrap()
    }

    #[test]
    fn lead_urls_keep_the_version_and_refuse_path_tricks() {
        let f = GraphFetcher::new(&config(None), ConnectorContext::in_memory("fb")).unwrap();
        let url = f.lead_url("444444444").unwrap();
        assert!(
            url.as_str()
                .starts_with("https://graph.facebook.com/v21.0/444444444?fields=")
        );
        assert!(url.as_str().contains("appsecret_proof="));
        assert!(!url.as_str().contains("access_token"));
        assert!(f.lead_url("../me").is_err());
        assert!(f.lead_url("").is_err());
        assert!(base_url(&config(Some("ftp://x"))).is_err());
        assert!(base_url(&config(Some("http://127.0.0.1:9/v21.0?x=1"))).is_err());
        assert_eq!(
            base_url(&config(Some("http://127.0.0.1:9/v21.0")))
                .unwrap()
                .as_str(),
            "http://127.0.0.1:9/v21.0/"
        );
    }

    #[test]
    fn debug_output_has_no_secrets() {
        let f = GraphFetcher::new(&config(None), ConnectorContext::in_memory("fb")).unwrap();
        let d = format!("{f:?}");
        assert!(!d.contains("\"t\"") && !d.contains("appsecret"));
    }
}
