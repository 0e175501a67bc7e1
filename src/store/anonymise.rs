//! What a forgotten person's leads keep: the touchpoint's attribution fields (source, form,
//! campaign and ad ids, utm_*, capture time, landing page and referrer without their query) and
//! nothing that identifies a human: no names, emails, phones, company, custom fields, consent
//! text or click ids (a click id is a key into an ad platform's record of that person).

use tandem_connectors::{Lead, Touchpoint};

/// The anonymised form of a stored lead's JSON. A lead that no longer parses keeps only its
/// source and the time tandem received it.
pub fn anonymised_lead_json(lead_json: &str, source: &str, received_at_ms: i64) -> String {
    let received = || {
        jiff::Timestamp::from_millisecond(received_at_ms)
            .map(|t| t.to_string())
            .unwrap_or_default()
    };
    let touchpoint = match serde_json::from_str::<Lead>(lead_json) {
        Ok(lead) => {
            let t = lead.touchpoint;
            Touchpoint {
                source: if t.source.is_empty() {
                    source.to_owned()
                } else {
                    t.source
                },
                form: t.form,
                campaign_id: t.campaign_id,
                campaign_name: t.campaign_name,
                ad_id: t.ad_id,
                adset_id: t.adset_id,
                page_id: t.page_id,
                utm_source: t.utm_source,
                utm_medium: t.utm_medium,
                utm_campaign: t.utm_campaign,
                utm_term: t.utm_term,
                utm_content: t.utm_content,
                landing_url: t.landing_url.as_deref().and_then(without_query),
                referrer: t.referrer.as_deref().and_then(without_query),
                captured_at: if t.captured_at.is_empty() {
                    received()
                } else {
                    t.captured_at
                },
                ..Touchpoint::default()
            }
        }
        Err(_) => Touchpoint {
            source: source.to_owned(),
            captured_at: received(),
            ..Touchpoint::default()
        },
    };
    let mut value = serde_json::to_value(Lead {
        touchpoint,
        ..Lead::default()
    })
    .unwrap_or_default();
    value["forgotten"] = serde_json::Value::Bool(true);
    value.to_string()
}

/// `https://example.com/landing?email=…#x` → `https://example.com/landing`; anything that is not
/// an absolute URL is dropped (it can't be told apart from personal text).
fn without_query(raw: &str) -> Option<String> {
    let mut url = reqwest::Url::parse(raw.trim()).ok()?;
    if url.cannot_be_a_base() {
        return None;
    }
    url.set_query(None);
    url.set_fragment(None);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Some(url.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_attribution_fields_survive() {
        let lead = serde_json::json!({
            "email": "jane@example.com", "phone": "+14155552671", "first_name": "Jane",
            "last_name": "Doe", "company": "Acme", "consent": "yes",
            "custom": {"note": "call Jane"},
            "touchpoint": {"source": "website", "form": "demo", "campaign_id": "c1",
                "utm_source": "google", "utm_campaign": "spring", "gclid": "G-123",
                "fbclid": "F-1", "fbc": "fb.1.1.F-1",
                "landing_url": "https://example.com/demo?email=jane@example.com#top",
                "referrer": "mailto:jane@example.com",
                "captured_at": "2026-11-01T10:00:00Z"}
        });
        let out = anonymised_lead_json(&lead.to_string(), "website", 0);
        for gone in [
            "jane",
            "Jane",
            "Doe",
            "4155552671",
            "Acme",
            "G-123",
            "F-1",
            "yes",
        ] {
            assert!(!out.contains(gone), "{gone} survived: {out}");
        }
        let back: Lead = serde_json::from_str(&out).unwrap();
        let t = back.touchpoint;
        assert_eq!(t.source, "website");
        assert_eq!(t.form.as_deref(), Some("demo"));
        assert_eq!(t.campaign_id.as_deref(), Some("c1"));
        assert_eq!(t.utm_campaign.as_deref(), Some("spring"));
        assert_eq!(t.captured_at, "2026-11-01T10:00:00Z");
        assert_eq!(t.landing_url.as_deref(), Some("https://example.com/demo"));
        assert_eq!(t.referrer, None);
        assert!(out.contains("\"forgotten\":true"));
    }

    #[test]
    fn an_unreadable_lead_keeps_its_source_and_time() {
        let out = anonymised_lead_json("not json jane@example.com", "web", 1_700_000_000_000);
        assert!(!out.contains("jane"));
        let back: Lead = serde_json::from_str(&out).unwrap();
        assert_eq!(back.touchpoint.source, "web");
        assert_eq!(back.touchpoint.captured_at, "2023-11-14T22:13:20Z");
    }
}
