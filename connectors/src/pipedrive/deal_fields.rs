//! [`DealFieldWriter`]: the [`WritebackSink`] that writes attribution onto Pipedrive deals.
//!
//! Each conversion becomes one `PATCH /api/v2/deals/{id}` with `custom_fields` holding the
//! three configured fields (first touch, last touch, the model's credit line). Pipedrive has no
//! batch update, so the requests go one by one through the connector's pacer. Every action
//! (send, restate, retract) writes the conversion's current attribution, so all three are
//! idempotent; conversions of one deal with the same values in a batch share one request.
//!
//! `deal_fields` may name fields by API key (40 hex characters) or by name; names are resolved
//! through `GET /api/v1/dealFields` (read at most once per [`FIELDS_TTL`]), which also gives each
//! field's type, so a value longer than a `varchar` field holds is cut to fit rather than
//! refused.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use async_trait::async_trait;
use reqwest::{Method, StatusCode};
use serde_json::Value;
use tokio::sync::Mutex;

use crate::{
    sink::{BatchOutcome, CallError, ItemResult, RateLimit},
    writeback::{Conversion, Milestone, WritebackAction, WritebackSink},
};

use super::{
    DealFieldNames, PipedriveClient, PipedriveConfig,
    client::{classify, decode},
    is_field_key,
    limits::{self, Lane},
    wire::{DealField, DealFieldsBody},
};

/// Conversions per engine call: one request each.
pub const MAX_BATCH: usize = 20;
/// How long a read of the deal fields is trusted.
pub const FIELDS_TTL: Duration = Duration::from_secs(3600);
/// Characters a `varchar` field holds.
pub const VARCHAR_MAX: usize = 255;
/// Field types a line of text can be written to.
pub const TEXT_TYPES: &[&str] = &["varchar", "varchar_auto", "text"];

/// One configured field, resolved: its key and, when Pipedrive listed it, its type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub key: String,
    pub field_type: Option<String>,
}

/// Writes attribution fields onto deals of one Pipedrive company.
pub struct DealFieldWriter {
    client: Arc<PipedriveClient>,
    names: DealFieldNames,
    fields: Mutex<Option<(Instant, Vec<DealField>)>>,
}

impl std::fmt::Debug for DealFieldWriter {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DealFieldWriter")
            .field("client", &self.client)
            .field("names", &self.names)
            .finish_non_exhaustive()
    }
}

impl DealFieldWriter {
    pub fn new(config: &PipedriveConfig, client: Arc<PipedriveClient>) -> Self {
        DealFieldWriter {
            client,
            names: config.deal_fields.clone(),
            fields: Mutex::new(None),
        }
    }

    /// Every deal field (paged), as `GET /api/v1/dealFields` lists them.
    async fn read_fields(&self) -> Result<Vec<DealField>, CallError> {
        let mut out = Vec::new();
        let mut start = 0u64;
        loop {
            let query = [("start", start.to_string()), ("limit", "500".to_owned())];
            let a = self
                .client
                .request::<()>(
                    Method::GET,
                    "api/v1/dealFields",
                    &query,
                    None,
                    Lane::General,
                )
                .await?;
            if !a.status.is_success() {
                return Err(classify(&a));
            }
            let page = decode::<Vec<DealField>>(&a)?;
            out.extend(page.data.unwrap_or_default());
            match page.additional_data.and_then(|d| d.pagination) {
                Some(p) if p.more_items_in_collection => {
                    start = p.next_start.unwrap_or(start + 500)
                }
                _ => return Ok(out),
            }
        }
    }

    /// The deal fields, from the cache while it is fresh.
    async fn fields(&self) -> Result<Vec<DealField>, CallError> {
        let mut cached = self.fields.lock().await;
        if let Some((at, fields)) = cached.as_ref()
            && at.elapsed() < FIELDS_TTL
        {
            return Ok(fields.clone());
        }
        let fresh = self.read_fields().await?;
        *cached = Some((Instant::now(), fresh.clone()));
        Ok(fresh)
    }

    /// The three configured fields as keys (and types), in `entries()` order.
    async fn targets(&self) -> Result<Vec<Target>, CallError> {
        let fields = self.fields().await?;
        self.names
            .named()
            .iter()
            .map(|(role, wanted)| resolve(role, wanted, &fields))
            .collect::<Result<_, _>>()
            .map_err(|message| CallError::Permanent { message })
    }

    /// One PATCH; `Ok(item)` for a per-deal verdict (with the pause the answer's headers ask
    /// for), `Err` when the call as a whole failed.
    async fn write(
        &self,
        deal_id: u64,
        body: &DealFieldsBody,
    ) -> Result<(ItemResult, Option<Duration>), CallError> {
        let a = self
            .client
            .request(
                Method::PATCH,
                &format!("api/v2/deals/{deal_id}"),
                &[],
                Some(body),
                Lane::General,
            )
            .await?;
        let pause = limits::pause_after_success(&a.headers);
        if a.status.is_success() {
            let done = ItemResult::Done {
                remote_id: deal_id.to_string(),
                created: false,
            };
            return Ok((done, pause));
        }
        let item = match (a.status, classify(&a)) {
            // The deal was deleted or merged: Pipedrive's own words, for good.
            (StatusCode::NOT_FOUND | StatusCode::GONE, e) => ItemResult::Permanent {
                message: match e {
                    CallError::Permanent { message } => message,
                    other => other.to_string(),
                },
            },
            (_, CallError::Permanent { message }) => ItemResult::Permanent { message },
            (_, other) => return Err(other),
        };
        Ok((item, pause))
    }
}

/// A configured field (key or name) against Pipedrive's list; `Err` says what to fix.
pub fn resolve(role: &str, wanted: &str, fields: &[DealField]) -> Result<Target, String> {
    let wanted = wanted.trim();
    if is_field_key(wanted) {
        let field_type = fields
            .iter()
            .find(|f| f.key.eq_ignore_ascii_case(wanted))
            .map(|f| f.field_type.clone());
        return Ok(Target {
            key: wanted.to_ascii_lowercase(),
            field_type,
        });
    }
    let named: Vec<&DealField> = fields
        .iter()
        .filter(|f| f.name.trim().eq_ignore_ascii_case(wanted) || f.key == wanted)
        .collect();
    match named.as_slice() {
        [] => Err(format!(
            "deal_fields.{role}: Pipedrive has no deal field named {wanted:?}; create a custom deal field of type Large text with that name (Settings → Data fields → Deal), or put an existing field's API key here"
        )),
        [f] if !is_field_key(&f.key) => Err(format!(
            "deal_fields.{role}: {wanted:?} is Pipedrive's own deal field {:?}; tandem writes custom fields only, create one for it",
            f.key
        )),
        [f] => Ok(Target {
            key: f.key.clone(),
            field_type: Some(f.field_type.clone()),
        }),
        several => Err(format!(
            "deal_fields.{role}: {} deal fields are named {wanted:?}; put the API key of the one to use ({})",
            several.len(),
            several
                .iter()
                .map(|f| f.key.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

/// What a conversion writes into the three fields (`null` clears a field).
pub fn body(conversion: &Conversion, targets: &[Target]) -> DealFieldsBody {
    let a = &conversion.attribution;
    let values = [
        a.first_touch.as_ref().map(|t| t.label()),
        a.last_touch.as_ref().map(|t| t.label()),
        Some(format!("{}: {}", a.model, a.credit_line())),
    ];
    let custom_fields = targets
        .iter()
        .zip(values)
        .map(|(t, v)| {
            let v = match v {
                Some(text) => Value::String(fit(&text, t.field_type.as_deref())),
                None => Value::Null,
            };
            (t.key.clone(), v)
        })
        .collect();
    DealFieldsBody { custom_fields }
}

/// `text` cut to what a field of `field_type` holds (a `varchar` holds 255 characters).
fn fit(text: &str, field_type: Option<&str>) -> String {
    let short = matches!(field_type, Some("varchar" | "varchar_auto"));
    if !short || text.chars().count() <= VARCHAR_MAX {
        return text.to_owned();
    }
    let mut cut: String = text.chars().take(VARCHAR_MAX - 1).collect();
    cut.push('…');
    cut
}

#[async_trait]
impl WritebackSink for DealFieldWriter {
    fn max_batch(&self) -> usize {
        MAX_BATCH
    }

    fn default_rate_limit(&self) -> RateLimit {
        self.client.rate_limit
    }

    fn accepts(&self, _milestone: Milestone) -> bool {
        true
    }

    fn supports(&self, action: WritebackAction) -> bool {
        matches!(
            action,
            WritebackAction::Send | WritebackAction::Restate | WritebackAction::Retract
        )
    }

    /// One PATCH per deal, in order. A throttle or outage before anything was written fails
    /// the call; after that, what was written keeps its result and the rest is handed back as
    /// transient. 401/403 always fail the call.
    async fn send(&self, batch: &[Conversion]) -> Result<BatchOutcome, CallError> {
        let targets = self.targets().await?;
        let mut items: Vec<ItemResult> = Vec::with_capacity(batch.len());
        let mut written: Vec<(u64, DealFieldsBody, ItemResult)> = Vec::new();
        let mut pause_for = None;
        for (i, conversion) in batch.iter().enumerate() {
            let Ok(deal_id) = conversion.deal_id.trim().parse::<u64>() else {
                items.push(ItemResult::Permanent {
                    message: format!(
                        "deal id {:?} is not a Pipedrive deal id (a number)",
                        conversion.deal_id
                    ),
                });
                continue;
            };
            let body = body(conversion, &targets);
            if let Some((_, _, result)) = written
                .iter()
                .find(|(id, b, _)| *id == deal_id && *b == body)
            {
                items.push(result.clone());
                continue;
            }
            match self.write(deal_id, &body).await {
                Ok((result, pause)) => {
                    pause_for = pause;
                    written.push((deal_id, body, result.clone()));
                    items.push(result);
                }
                Err(e @ CallError::Auth { .. }) => return Err(e),
                Err(e) if items.is_empty() => return Err(e),
                Err(e) => {
                    let pause = match &e {
                        CallError::RateLimited { retry_after, .. } => Some(*retry_after),
                        CallError::Transient { retry_after, .. } => *retry_after,
                        _ => None,
                    };
                    let message = format!("not written in this call: {e}");
                    items.extend(batch[i..].iter().map(|_| ItemResult::Transient {
                        message: message.clone(),
                    }));
                    return Ok(BatchOutcome {
                        items,
                        pause_for: pause.or(pause_for),
                    });
                }
            }
        }
        Ok(BatchOutcome { items, pause_for })
    }

    /// Credentials (deal fields need deal access), then each configured field: it exists, is a
    /// custom field, takes text, and is not used for two roles.
    async fn verify(&self) -> Vec<String> {
        let fields = match self.read_fields().await {
            Ok(f) => f,
            Err(e) => {
                return vec![match e {
                    CallError::Auth { status: 401, .. } => format!(
                        "Pipedrive refused the credentials ({e}); check api_token, or re-authorize the OAuth app"
                    ),
                    CallError::Auth { .. } => format!(
                        "Pipedrive refused access to deal fields ({e}); the user or app needs deal access (OAuth scope deals:full)"
                    ),
                    other => format!("could not read Pipedrive's deal fields: {other}"),
                }];
            }
        };
        *self.fields.lock().await = Some((Instant::now(), fields.clone()));
        let mut problems = Vec::new();
        let mut keys: Vec<(&str, String)> = Vec::new();
        for (role, wanted) in self.names.named() {
            match resolve(role, wanted, &fields) {
                Err(m) => problems.push(m),
                Ok(Target {
                    key,
                    field_type: None,
                }) => problems.push(format!(
                    "deal_fields.{role}: Pipedrive has no deal field with the key {key:?}; copy the API key from Settings → Data fields → Deal → the field"
                )),
                Ok(Target {
                    key,
                    field_type: Some(t),
                }) => {
                    if !TEXT_TYPES.contains(&t.as_str()) {
                        problems.push(format!(
                            "deal_fields.{role}: the deal field {wanted:?} is of type {t}, which does not take text; use a Text or Large text field"
                        ));
                    }
                    if let Some((other, _)) = keys.iter().find(|(_, k)| *k == key) {
                        problems.push(format!(
                            "deal_fields.{role} and deal_fields.{other} are the same Pipedrive field ({key}); give each its own"
                        ));
                    }
                    keys.push((role, key));
                }
            }
        }
        problems
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::writeback::{AttributionSummary, CreditSummary, TouchSummary};

    fn field(key: &str, name: &str, t: &str) -> DealField {
        DealField {
            id: 1,
            key: key.into(),
            name: name.into(),
            field_type: t.into(),
            edit_flag: true,
            bulk_edit_allowed: true,
        }
    }

    const K1: &str = "1111111111111111111111111111111111111111";
    const K2: &str = "2222222222222222222222222222222222222222";

    #[test]
    fn names_and_keys_resolve_and_mistakes_say_how_to_fix_them() {
        let all = [
            field(K1, "tandem first touch", "varchar"),
            field(K2, "Dup", "text"),
            field("3333333333333333333333333333333333333333", "dup", "text"),
            field("title", "Title", "varchar"),
        ];
        assert_eq!(
            resolve("first_touch", "Tandem First Touch", &all),
            Ok(Target {
                key: K1.into(),
                field_type: Some("varchar".into())
            })
        );
        assert_eq!(resolve("x", &K2.to_uppercase(), &all).unwrap().key, K2);
        let unknown_key = resolve("x", "abcdefabcdefabcdefabcdefabcdefabcdefabcd", &all).unwrap();
        assert_eq!(unknown_key.field_type, None);
        assert!(
            resolve("x", "nope", &all)
                .unwrap_err()
                .contains("no deal field named \"nope\"")
        );
        assert!(
            resolve("x", "Title", &all)
                .unwrap_err()
                .contains("Pipedrive's own deal field")
        );
        assert!(
            resolve("x", "dup", &all)
                .unwrap_err()
                .contains("2 deal fields are named")
        );
    }

    #[test]
    fn the_body_carries_the_three_lines_and_fits_short_fields() {
        let touch = |s: &str| TouchSummary {
            source: s.into(),
            medium: Some("cpc".into()),
            campaign: None,
            captured_at_ms: 0,
        };
        let mut c = Conversion {
            delivery_id: 1,
            key: "pd:1:won".into(),
            request_key: "pd:1:won".into(),
            action: WritebackAction::Send,
            milestone: Milestone::Won,
            crm: "pd".into(),
            crm_kind: "pipedrive".into(),
            deal_id: "1".into(),
            occurred_at_ms: 0,
            value_minor: None,
            currency: None,
            person: Default::default(),
            clicks: Default::default(),
            attribution: AttributionSummary {
                model: "linear".into(),
                first_touch: Some(touch("google")),
                last_touch: None,
                credits: vec![CreditSummary {
                    touch: touch("google"),
                    weight: 1.0,
                    amount_minor: 0,
                }],
            },
        };
        let targets = [
            Target {
                key: "a".into(),
                field_type: Some("varchar".into()),
            },
            Target {
                key: "b".into(),
                field_type: None,
            },
            Target {
                key: "c".into(),
                field_type: Some("varchar".into()),
            },
        ];
        let b = body(&c, &targets);
        assert_eq!(b.custom_fields["a"], Value::String("google / cpc".into()));
        assert_eq!(b.custom_fields["b"], Value::Null);
        assert_eq!(
            b.custom_fields["c"],
            Value::String("linear: 100% google / cpc".into())
        );
        c.attribution.model = "x".repeat(400);
        let long = body(&c, &targets);
        let text = long.custom_fields["c"].as_str().unwrap();
        assert_eq!(text.chars().count(), VARCHAR_MAX);
        assert!(text.ends_with('…'));
        assert_eq!(fit(&"y".repeat(300), Some("text")).len(), 300);
    }
}
