//! The sales side of the sandbox, as a salesperson works it in Zoho's UI: Deals in the default
//! stages (each with its probability; a closing stage sets `Closing_Date` to that day), one
//! Contact per deal (`Contact_Name`), and Lead conversion (a Lead put on a deal becomes a Contact
//! with the same name and email). Stamps are whole seconds, as Zoho's are, and may lie in the past
//! to model a write that becomes visible late.

use std::collections::BTreeMap;

use super::{SandboxState, ZohoRecord, fields::STAGES, state::World};

/// A deal as the salesperson enters it.
#[derive(Debug, Clone, Default)]
pub struct NewDeal<'a> {
    pub stage: &'a str,
    pub amount: Option<&'a str>,
    pub currency: Option<&'a str>,
    /// The first becomes `Contact_Name` (Zoho's deal has one contact).
    pub contact_emails: &'a [String],
    pub at_ms: Option<i64>,
}

/// A stamp at whole seconds: `at_ms`, or now.
fn stamp(at_ms: Option<i64>) -> jiff::Timestamp {
    let ms = at_ms.unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
    jiff::Timestamp::from_millisecond(ms.div_euclid(1000) * 1000)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn date(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d").to_string()
}

fn set_stage(fields: &mut BTreeMap<String, String>, stage: &str, at: jiff::Timestamp) {
    let probability = STAGES
        .iter()
        .find(|(s, _)| *s == stage)
        .map_or(10, |(_, p)| *p);
    fields.insert("Stage".into(), stage.to_owned());
    fields.insert("Probability".into(), probability.to_string());
    if stage.starts_with("Closed") {
        fields.insert("Closing_Date".into(), date(at));
    } else if !fields.contains_key("Closing_Date") {
        let expected = at
            .checked_add(jiff::SignedDuration::from_hours(30 * 24))
            .unwrap_or(at);
        fields.insert("Closing_Date".into(), date(expected));
    }
}

impl World {
    fn insert_at(
        &mut self,
        module: &str,
        fields: BTreeMap<String, String>,
        at: jiff::Timestamp,
    ) -> String {
        let id = self.take_id();
        let r = ZohoRecord {
            id: id.to_string(),
            module: module.to_owned(),
            fields,
            created_time: at,
            modified_time: at,
            writes: 0,
        };
        self.records
            .entry(module.to_owned())
            .or_default()
            .insert(id, r);
        id.to_string()
    }

    fn by_email(&self, module: &str, email: &str) -> Option<ZohoRecord> {
        self.records
            .get(module)?
            .values()
            .find(|r| {
                r.fields
                    .get("Email")
                    .is_some_and(|e| e.trim().eq_ignore_ascii_case(email.trim()))
            })
            .cloned()
    }

    /// The Contact behind `email`: an existing one, or the one a Lead converts into.
    fn contact_for(&mut self, email: &str, at: jiff::Timestamp) -> String {
        if let Some(c) = self.by_email("Contacts", email) {
            return c.id;
        }
        let lead = self
            .by_email("Leads", email)
            .map(|r| r.fields)
            .unwrap_or_default();
        let mut fields = BTreeMap::new();
        for key in ["First_Name", "Last_Name", "Phone", "Mobile"] {
            if let Some(v) = lead.get(key) {
                fields.insert(key.to_owned(), v.clone());
            }
        }
        fields
            .entry("Last_Name".to_owned())
            .or_insert_with(|| email.split('@').next().unwrap_or(email).to_owned());
        fields.insert("Email".into(), email.to_owned());
        self.insert_at("Contacts", fields, at)
    }
}

impl SandboxState {
    /// Creates a Deal (its contact converted from a Lead if need be); returns its id.
    pub fn create_deal(&self, deal: NewDeal<'_>) -> String {
        let at = stamp(deal.at_ms);
        let options = self.options().clone();
        let mut w = self.world();
        let n = w.records.get("Deals").map_or(0, BTreeMap::len) + 1;
        let mut fields = BTreeMap::new();
        fields.insert("Deal_Name".to_owned(), format!("Sandbox deal {n}"));
        if let Some(a) = deal.amount {
            fields.insert("Amount".to_owned(), a.to_owned());
        }
        if options.multi_currency {
            let c = deal.currency.map_or(options.currency, str::to_owned);
            fields.insert("Currency".to_owned(), c);
        }
        set_stage(&mut fields, deal.stage, at);
        if let Some(email) = deal.contact_emails.first() {
            let contact = w.contact_for(email, at);
            fields.insert("Contact_Name".to_owned(), contact);
        }
        w.insert_at("Deals", fields, at)
    }

    /// Moves a Deal to `stage` (and `amount`), stamped `at_ms` (`None` = now).
    pub fn move_deal(&self, id: &str, stage: &str, amount: Option<&str>, at_ms: Option<i64>) {
        let at = stamp(at_ms);
        let Ok(id) = id.parse::<u64>() else {
            return;
        };
        let mut w = self.world();
        if let Some(r) = w.records.get_mut("Deals").and_then(|m| m.get_mut(&id)) {
            set_stage(&mut r.fields, stage, at);
            if let Some(a) = amount {
                r.fields.insert("Amount".into(), a.to_owned());
            }
            r.modified_time = at;
        }
    }

    /// The record of `module` with this id.
    pub fn record(&self, module: &str, id: &str) -> Option<ZohoRecord> {
        let id = id.parse::<u64>().ok()?;
        self.world().records.get(module)?.get(&id).cloned()
    }
}
