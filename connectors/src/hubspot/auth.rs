//! How tandem proves itself to HubSpot: a private app's static access token, or an OAuth app's
//! short-lived access token from the shared [`OAuthClient`] (refreshed 5 minutes before HubSpot's
//! `expires_in`, one refresh at a time, rotated refresh tokens persisted before use).

use std::{fmt, sync::Arc, time::Duration};

use secrecy::{ExposeSecret, SecretString};

use crate::{
    context::TokenSet,
    oauth::{ClientAuth, OAuthClient, OAuthSettings},
    sink::CallError,
};

/// Refresh this long before the access token expires.
pub const REFRESH_AHEAD: Duration = Duration::from_secs(5 * 60);
/// HubSpot's access tokens live 30 minutes (`expires_in: 1800`); assumed if it ever omits it.
pub const TOKEN_LIFETIME: Duration = Duration::from_secs(30 * 60);

/// The OAuth app's credentials, as configured.
#[derive(Clone)]
pub struct OAuthCredentials {
    pub token_url: String,
    pub client_id: String,
    pub client_secret: SecretString,
    pub refresh_token: SecretString,
}

/// One connector's credentials.
#[derive(Clone)]
pub enum Auth {
    PrivateApp(SecretString),
    OAuth(Arc<OAuthClient>),
}

impl fmt::Debug for Auth {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Auth::PrivateApp(_) => f.write_str("PrivateApp([redacted])"),
            Auth::OAuth(_) => f.write_str("OAuth([redacted])"),
        }
    }
}

/// The `Authorization: Bearer` value for one request, and the OAuth token it came from (so a
/// 401 can ask for a newer one).
pub struct Bearer {
    pub value: String,
    pub oauth: Option<TokenSet>,
}

impl Auth {
    pub fn oauth(
        creds: OAuthCredentials,
        http: reqwest::Client,
        state: Arc<dyn crate::ConnectorState>,
    ) -> Auth {
        let settings = OAuthSettings {
            token_url: creds.token_url,
            client_id: creds.client_id,
            client_secret: creds.client_secret,
            refresh_token: creds.refresh_token,
            auth: ClientAuth::Body,
            refresh_ahead: REFRESH_AHEAD,
            assumed_lifetime: Some(TOKEN_LIFETIME),
        };
        Auth::OAuth(Arc::new(OAuthClient::new(settings, http, state)))
    }

    pub fn is_oauth(&self) -> bool {
        matches!(self, Auth::OAuth(_))
    }

    /// The token to send now.
    pub async fn bearer(&self) -> Result<Bearer, CallError> {
        match self {
            Auth::PrivateApp(t) => Ok(Bearer {
                value: t.expose_secret().to_owned(),
                oauth: None,
            }),
            Auth::OAuth(client) => {
                let t = client.token().await?;
                Ok(Bearer {
                    value: t.access_token.clone(),
                    oauth: Some(t),
                })
            }
        }
    }

    /// HubSpot answered 401 to `stale`: a newer OAuth token (refreshing unless another call
    /// already did), or `None` for a private app, whose token can't be refreshed.
    pub async fn after_rejection(&self, stale: &Bearer) -> Result<Option<Bearer>, CallError> {
        match (self, &stale.oauth) {
            (Auth::OAuth(client), Some(stale)) => {
                let t = client.token_after_rejection(stale).await?;
                Ok(Some(Bearer {
                    value: t.access_token.clone(),
                    oauth: Some(t),
                }))
            }
            _ => Ok(None),
        }
    }
}
