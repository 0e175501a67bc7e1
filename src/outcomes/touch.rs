//! Reading stored leads back as attribution inputs: each lead is one touchpoint (where and when a
//! person was captured), and the person's most recent click ids and identifiers are what the ad
//! platforms match a conversion on.

use serde::Deserialize;
use tandem_connectors::writeback::{ClickIds, ConversionPerson, TouchSummary};

use crate::attribution::Touch;

/// A lead as the store returns it for attribution.
#[derive(Debug, Clone, PartialEq)]
pub struct LeadRow {
    pub lead_id: String,
    pub source: String,
    pub received_at_ms: i64,
    pub lead_json: String,
    /// The platform's event id the lead was deduplicated by (a Meta `leadgen_id`, …).
    pub event_id: Option<String>,
}

/// Only the parts of a stored canonical lead attribution reads (cheaper than the whole `Lead`
/// when a report walks a million of them).
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct LeadView {
    email: Option<String>,
    phone: Option<String>,
    first_name: Option<String>,
    last_name: Option<String>,
    country: Option<String>,
    consent: Option<String>,
    touchpoint: TouchView,
}

#[derive(Debug, Default, Deserialize)]
#[serde(default)]
struct TouchView {
    campaign_name: Option<String>,
    utm_source: Option<String>,
    utm_medium: Option<String>,
    utm_campaign: Option<String>,
    gclid: Option<String>,
    gbraid: Option<String>,
    wbraid: Option<String>,
    fbc: Option<String>,
    li_fat_id: Option<String>,
    captured_at: String,
}

/// A lead read back: its touchpoint and what it says about the person.
#[derive(Debug, Clone, PartialEq)]
pub struct ReadLead {
    pub touch: Touch,
    view_person: ConversionPerson,
    clicks: ClickIds,
}

fn nonempty(v: Option<String>) -> Option<String> {
    v.map(|s| s.trim().to_owned()).filter(|s| !s.is_empty())
}

/// Reads one stored lead. The touchpoint's source is `utm_source`, else the connector that
/// delivered the lead; its campaign `utm_campaign`, else the ad platform's campaign name; its time
/// the platform's capture time, else when tandem received it.
pub fn read_lead(row: &LeadRow, meta_sources: &[String]) -> ReadLead {
    let view: LeadView = serde_json::from_str(&row.lead_json).unwrap_or_default();
    let t = view.touchpoint;
    let captured_at_ms = t
        .captured_at
        .parse::<jiff::Timestamp>()
        .map(|ts| ts.as_millisecond())
        .unwrap_or(row.received_at_ms);
    let touch = Touch {
        id: row.lead_id.clone(),
        captured_at_ms,
        source: nonempty(t.utm_source).unwrap_or_else(|| row.source.clone()),
        medium: nonempty(t.utm_medium),
        campaign: nonempty(t.utm_campaign).or_else(|| nonempty(t.campaign_name)),
    };
    let google = nonempty(t.gclid.clone())
        .or(nonempty(t.gbraid.clone()))
        .or(nonempty(t.wbraid.clone()))
        .is_some();
    ReadLead {
        touch,
        view_person: ConversionPerson {
            email: nonempty(view.email),
            phone: nonempty(view.phone),
            first_name: nonempty(view.first_name),
            last_name: nonempty(view.last_name),
            country: nonempty(view.country),
            remote_id: None,
            consent: view.consent.as_deref().and_then(consent_flag),
        },
        clicks: ClickIds {
            gclid: nonempty(t.gclid),
            gbraid: nonempty(t.gbraid),
            wbraid: nonempty(t.wbraid),
            fbc: nonempty(t.fbc),
            meta_lead_id: meta_sources
                .contains(&row.source)
                .then(|| row.event_id.clone())
                .flatten(),
            li_fat_id: nonempty(t.li_fat_id),
            google_click_at_ms: google.then_some(captured_at_ms),
        },
    }
}

/// A form's consent answer as yes / no, when it reads as one.
fn consent_flag(v: &str) -> Option<bool> {
    match v.trim().to_ascii_lowercase().as_str() {
        "" => None,
        "false" | "no" | "0" | "off" | "denied" | "n" => Some(false),
        _ => Some(true),
    }
}

/// The person as the conversion describes them, from their leads (any order): each field from
/// the most recent lead that has it; each click id likewise, from the most recent touchpoint
/// carrying one.
pub fn merge_person(leads: &[ReadLead]) -> (ConversionPerson, ClickIds) {
    let mut by_time: Vec<&ReadLead> = leads.iter().collect();
    by_time.sort_by(|a, b| {
        b.touch
            .captured_at_ms
            .cmp(&a.touch.captured_at_ms)
            .then_with(|| b.touch.id.cmp(&a.touch.id))
    });
    let mut person = ConversionPerson::default();
    let mut clicks = ClickIds::default();
    for l in by_time {
        let p = &l.view_person;
        fill(&mut person.email, &p.email);
        fill(&mut person.phone, &p.phone);
        fill(&mut person.first_name, &p.first_name);
        fill(&mut person.last_name, &p.last_name);
        fill(&mut person.country, &p.country);
        if person.consent.is_none() {
            person.consent = p.consent;
        }
        let c = &l.clicks;
        // The Google ids travel together: the newest touchpoint with any of them wins whole.
        if clicks.google_click_at_ms.is_none() && c.google_click_at_ms.is_some() {
            clicks.gclid = c.gclid.clone();
            clicks.gbraid = c.gbraid.clone();
            clicks.wbraid = c.wbraid.clone();
            clicks.google_click_at_ms = c.google_click_at_ms;
        }
        fill(&mut clicks.fbc, &c.fbc);
        fill(&mut clicks.meta_lead_id, &c.meta_lead_id);
        fill(&mut clicks.li_fat_id, &c.li_fat_id);
    }
    (person, clicks)
}

fn fill(slot: &mut Option<String>, value: &Option<String>) {
    if slot.is_none() {
        slot.clone_from(value);
    }
}

/// The CRM-facing summary of a touchpoint.
pub fn summary(t: &Touch) -> TouchSummary {
    TouchSummary {
        source: t.source.clone(),
        medium: t.medium.clone(),
        campaign: t.campaign.clone(),
        captured_at_ms: t.captured_at_ms,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(id: &str, source: &str, received: i64, json: &str, event: Option<&str>) -> LeadRow {
        LeadRow {
            lead_id: id.into(),
            source: source.into(),
            received_at_ms: received,
            lead_json: json.into(),
            event_id: event.map(str::to_owned),
        }
    }

    #[test]
    fn a_lead_becomes_a_touchpoint_and_the_newest_values_describe_the_person() {
        let meta = vec!["fb".to_owned()];
        let old = read_lead(
            &row(
                "a",
                "website",
                5,
                r#"{"email":"ann@example.com","first_name":"Ann","consent":"yes","touchpoint":{"utm_source":"google","utm_medium":"cpc","utm_campaign":"spring","gclid":"G-OLD","captured_at":"2026-01-01T00:00:00Z"}}"#,
                None,
            ),
            &meta,
        );
        assert_eq!(old.touch.source, "google");
        assert_eq!(old.touch.captured_at_ms, 1_767_225_600_000);
        let new = read_lead(
            &row(
                "b",
                "fb",
                1_767_312_000_000,
                r#"{"email":"ann@example.com","phone":"+33612345678","touchpoint":{"campaign_name":"Retarget","wbraid":"W1","fbc":"fb.1.1.x","captured_at":"bad"}}"#,
                Some("1234567890123456"),
            ),
            &meta,
        );
        // No utm_source: the delivering connector; no capture time: received time.
        assert_eq!(new.touch.source, "fb");
        assert_eq!(new.touch.campaign.as_deref(), Some("Retarget"));
        assert_eq!(new.touch.captured_at_ms, 1_767_312_000_000);
        let (person, clicks) = merge_person(&[new, old]);
        assert_eq!(person.email.as_deref(), Some("ann@example.com"));
        assert_eq!(person.phone.as_deref(), Some("+33612345678"));
        assert_eq!(person.first_name.as_deref(), Some("Ann"));
        assert_eq!(person.consent, Some(true));
        // The newest Google click wins whole: wbraid, not the older gclid beside it.
        assert_eq!(clicks.wbraid.as_deref(), Some("W1"));
        assert_eq!(clicks.gclid, None);
        assert_eq!(clicks.meta_lead_id.as_deref(), Some("1234567890123456"));
        assert_eq!(clicks.fbc.as_deref(), Some("fb.1.1.x"));
    }

    #[test]
    fn an_anonymised_or_unreadable_lead_still_counts_as_a_touchpoint() {
        let r = read_lead(&row("x", "website", 42, "not json", None), &[]);
        assert_eq!(r.touch.source, "website");
        assert_eq!(r.touch.captured_at_ms, 42);
        let (person, _) = merge_person(&[r]);
        assert_eq!(person, ConversionPerson::default());
    }
}
