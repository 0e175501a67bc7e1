//! A small client for the daemon's admin API, used by the CLI commands that change state so the
//! state file is only ever written by the daemon.

use anyhow::Context;
use secrecy::ExposeSecret;
use serde_json::Value;

use crate::config::Config;

pub struct AdminClient {
    base: String,
    token: Option<String>,
    http: reqwest::Client,
}

/// Why a call did not get an answer from the daemon.
#[derive(Debug, thiserror::Error)]
pub enum AdminError {
    #[error("the daemon is not running at {0}")]
    NotRunning(String),
    #[error(transparent)]
    Other(#[from] anyhow::Error),
}

impl AdminClient {
    pub fn new(config: &Config) -> anyhow::Result<AdminClient> {
        let mut addr = config.daemon.listen;
        if addr.ip().is_unspecified() {
            addr.set_ip(if addr.is_ipv4() {
                [127, 0, 0, 1].into()
            } else {
                std::net::Ipv6Addr::LOCALHOST.into()
            });
        }
        Ok(AdminClient {
            base: format!("http://{addr}"),
            token: config
                .daemon
                .admin_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            http: reqwest::Client::builder()
                .timeout(std::time::Duration::from_secs(30))
                .build()?,
        })
    }

    pub async fn get(&self, path: &str) -> Result<Value, AdminError> {
        self.send(self.http.get(format!("{}{path}", self.base)))
            .await
    }

    pub async fn post(&self, path: &str, body: &Value) -> Result<Value, AdminError> {
        self.send(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    /// Like [`AdminClient::post`], but a refusal is an answer too: (HTTP status, body).
    pub async fn post_answer(&self, path: &str, body: &Value) -> Result<(u16, Value), AdminError> {
        self.exchange(self.http.post(format!("{}{path}", self.base)).json(body))
            .await
    }

    async fn send(&self, req: reqwest::RequestBuilder) -> Result<Value, AdminError> {
        let (status, body) = self.exchange(req).await?;
        if !(200..300).contains(&status) {
            let msg = body
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("no message");
            let status = reqwest::StatusCode::from_u16(status)
                .map_or_else(|_| status.to_string(), |s| s.to_string());
            return Err(AdminError::Other(anyhow::anyhow!(
                "the daemon answered {status}: {msg}"
            )));
        }
        Ok(body)
    }

    async fn exchange(&self, req: reqwest::RequestBuilder) -> Result<(u16, Value), AdminError> {
        let Some(token) = &self.token else {
            return Err(AdminError::Other(anyhow::anyhow!(
                "daemon.admin_token is not set in the config, so the admin API is off"
            )));
        };
        let resp = match req.bearer_auth(token).send().await {
            Ok(r) => r,
            Err(e) if e.is_connect() => return Err(AdminError::NotRunning(self.base.clone())),
            Err(e) => {
                return Err(AdminError::Other(
                    anyhow::Error::new(e).context("calling the admin API"),
                ));
            }
        };
        let status = resp.status().as_u16();
        let body: Value = resp
            .json()
            .await
            .context("reading the admin API's answer")?;
        Ok((status, body))
    }
}
