//! [`GoogleAdsWriteback`]: the [`WritebackSink`] for one Google Ads account. Every call gets an
//! access token from the shared [`OAuthClient`] (Google's token endpoint, client credentials in
//! the form body) and the only retry it makes itself is the one after a 401: refresh
//! (single-flight) and send again. Everything else is classified and handed to the engine.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use async_trait::async_trait;
use reqwest::{StatusCode, Url, header::HeaderMap};
use secrecy::{ExposeSecret, SecretString};

use crate::{
    BuildError, ConnectorContext, TokenSet,
    oauth::{ClientAuth, OAuthClient, OAuthSettings},
    sink::{BatchOutcome, CallError, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{Api, EventSource, GoogleAdsConfig, MAX_BATCH, data_manager, legacy, verify};

/// One HTTP answer, read whole.
pub(super) struct Answer {
    pub status: StatusCode,
    pub headers: HeaderMap,
    pub body: Vec<u8>,
}

/// Writes conversions to one Google Ads account.
pub struct GoogleAdsWriteback {
    http: reqwest::Client,
    oauth: Arc<OAuthClient>,
    pub(super) base: Url,
    pub(super) api: Api,
    pub(super) api_version: String,
    developer_token: Option<SecretString>,
    pub(super) customer_id: String,
    pub(super) login_customer_id: Option<String>,
    pub(super) actions: BTreeMap<Milestone, String>,
    pub(super) event_source: EventSource,
    rate_limit: RateLimit,
    timeout: Duration,
}

impl std::fmt::Debug for GoogleAdsWriteback {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("GoogleAdsWriteback")
            .field("api", &self.api)
            .field("base", &self.base.as_str())
            .field("customer_id", &self.customer_id)
            .field("actions", &self.actions)
            .finish_non_exhaustive()
    }
}

/// A 401 about the developer token (Google Ads API): a fresh access token won't help.
fn names_developer_token(body: &[u8]) -> bool {
    super::errors::parse(body).is_some_and(|e| {
        e.error
            .google_ads_errors()
            .iter()
            .any(|g| g.code().starts_with("DEVELOPER_TOKEN"))
    })
}

fn bad_url(url: &str, reason: String) -> BuildError {
    BuildError::BaseUrl {
        url: url.to_owned(),
        reason,
    }
}

pub(super) fn now_ms() -> i64 {
    jiff::Timestamp::now().as_millisecond()
}

impl GoogleAdsWriteback {
    pub fn new(config: &GoogleAdsConfig, ctx: ConnectorContext) -> Result<Self, BuildError> {
        let base = crate::hubspot::parse_base_url(config.base_url())
            .map_err(|r| bad_url(config.base_url(), r))?;
        crate::hubspot::parse_base_url(&config.token_url)
            .map_err(|r| bad_url(&config.token_url, r))?;
        let http = reqwest::Client::builder()
            .user_agent(concat!("tandem/", env!("CARGO_PKG_VERSION")))
            .timeout(config.timeout.0)
            .connect_timeout(config.timeout.0.min(Duration::from_secs(10)))
            .build()
            .map_err(|e| BuildError::Http(e.to_string()))?;
        let oauth = OAuthClient::new(
            OAuthSettings {
                token_url: config.token_url.trim().to_owned(),
                client_id: config.client_id.trim().to_owned(),
                client_secret: config.client_secret.clone(),
                refresh_token: config.refresh_token.clone(),
                auth: ClientAuth::Body,
                refresh_ahead: Duration::from_secs(300),
                assumed_lifetime: Some(Duration::from_secs(3600)),
            },
            http.clone(),
            ctx.state,
        );
        Ok(GoogleAdsWriteback {
            http,
            oauth: Arc::new(oauth),
            base,
            api: config.api,
            api_version: config.api_version.trim().to_owned(),
            developer_token: config.developer_token.clone(),
            customer_id: config.customer_id.trim().to_owned(),
            login_customer_id: config
                .login_customer_id
                .as_deref()
                .map(|s| s.trim().to_owned()),
            actions: config
                .conversion_actions
                .iter()
                .map(|(m, id)| (*m, id.trim().to_owned()))
                .collect(),
            event_source: config.event_source,
            rate_limit: config.effective_rate_limit(),
            timeout: config.timeout.0,
        })
    }

    /// `{base}v1/events:ingest`.
    pub(super) fn ingest_url(&self) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!("{}v1/events:ingest", self.base.path()));
        url
    }

    /// `{base}{version}/customers/{id}:{method}`.
    pub(super) fn google_ads_url(&self, method: &str) -> Url {
        let mut url = self.base.clone();
        url.set_path(&format!(
            "{}{}/customers/{}:{method}",
            self.base.path(),
            self.api_version,
            self.customer_id
        ));
        url
    }

    fn transport_error(&self, e: &reqwest::Error) -> CallError {
        let message = if e.is_timeout() {
            format!(
                "Google did not answer within {}",
                crate::units::HumanDuration(self.timeout)
            )
        } else if e.is_connect() {
            "could not connect to Google".to_owned()
        } else if e.is_body() || e.is_decode() {
            "the connection to Google broke off mid-answer".to_owned()
        } else {
            "the request to Google failed".to_owned()
        };
        CallError::Transient {
            message,
            retry_after: None,
        }
    }

    async fn send_once(
        &self,
        url: &Url,
        body: &[u8],
        token: &TokenSet,
    ) -> Result<Answer, CallError> {
        let mut req = self
            .http
            .post(url.clone())
            .bearer_auth(&token.access_token)
            .header(reqwest::header::CONTENT_TYPE, "application/json")
            .body(body.to_vec());
        if self.api == Api::GoogleAds {
            if let Some(t) = &self.developer_token {
                req = req.header("developer-token", t.expose_secret());
            }
            if let Some(login) = &self.login_customer_id {
                req = req.header("login-customer-id", login);
            }
        }
        let response = req.send().await.map_err(|e| self.transport_error(&e))?;
        let status = response.status();
        let headers = response.headers().clone();
        // A body cut off mid-way is a dropped connection: the write may have happened, and the
        // resend is deduplicated by Google on transactionId / orderId.
        let body = response
            .bytes()
            .await
            .map_err(|e| self.transport_error(&e))?;
        Ok(Answer {
            status,
            headers,
            body: body.to_vec(),
        })
    }

    /// POSTs `body` as JSON with a valid token; a 401 about the token refreshes it (once,
    /// shared with concurrent callers) and sends again.
    pub(super) async fn post<T: serde::Serialize>(
        &self,
        url: &Url,
        body: &T,
    ) -> Result<Answer, CallError> {
        let bytes = serde_json::to_vec(body).map_err(|e| CallError::Permanent {
            message: format!("could not encode the request: {e}"),
        })?;
        let token = self.oauth.token().await?;
        let answer = self.send_once(url, &bytes, &token).await?;
        if answer.status == StatusCode::UNAUTHORIZED && !names_developer_token(&answer.body) {
            let fresh = self.oauth.token_after_rejection(&token).await?;
            return self.send_once(url, &bytes, &fresh).await;
        }
        Ok(answer)
    }
}

#[async_trait]
impl WritebackSink for GoogleAdsWriteback {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.rate_limit
    }

    fn accepts(&self, milestone: Milestone) -> bool {
        self.actions.contains_key(&milestone)
    }

    /// Data Manager: sends and restatements (same `transactionId`, new value); it documents no
    /// retraction. Google Ads API: all three, through `uploadConversionAdjustments`.
    fn supports(&self, action: WritebackAction) -> bool {
        match self.api {
            Api::DataManager => action != WritebackAction::Retract,
            Api::GoogleAds => true,
        }
    }

    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError> {
        match self.api {
            Api::DataManager => data_manager::send(self, batch).await,
            Api::GoogleAds => legacy::send(self, batch).await,
        }
    }

    async fn verify(&self) -> Vec<String> {
        verify::verify(self).await
    }
}
