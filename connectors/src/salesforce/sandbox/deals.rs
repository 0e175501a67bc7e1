//! The sales side of the sandbox org, as a salesperson works it in the UI: Opportunities with
//! the standard stages (each with its probability and its IsClosed/IsWon verdict), Contact Roles,
//! and Lead conversion (a Lead put on a deal becomes a Contact; the Lead keeps
//! `ConvertedContactId`). Opportunity stamps are whole seconds, as Salesforce's are, and may be
//! set in the past to model a write that becomes visible late.

use std::collections::BTreeMap;

use super::{SandboxState, SfRecord, state::World};

/// (stage, probability, IsClosed, IsWon): Salesforce's default sales process.
pub const STAGES: &[(&str, u32, bool, bool)] = &[
    ("Prospecting", 10, false, false),
    ("Qualification", 10, false, false),
    ("Needs Analysis", 20, false, false),
    ("Value Proposition", 50, false, false),
    ("Id. Decision Makers", 60, false, false),
    ("Perception Analysis", 70, false, false),
    ("Proposal/Price Quote", 75, false, false),
    ("Negotiation/Review", 90, false, false),
    ("Closed Won", 100, true, true),
    ("Closed Lost", 0, true, false),
];

/// A stamp at whole seconds: `at_ms`, or now.
pub(super) fn stamp(at_ms: Option<i64>) -> jiff::Timestamp {
    let ms = at_ms.unwrap_or_else(|| jiff::Timestamp::now().as_millisecond());
    jiff::Timestamp::from_millisecond(ms.div_euclid(1000) * 1000)
        .unwrap_or(jiff::Timestamp::UNIX_EPOCH)
}

fn date(ts: jiff::Timestamp) -> String {
    ts.strftime("%Y-%m-%d").to_string()
}

/// Sets StageName and what follows from it; a closing stage sets CloseDate to the day of `at`.
fn set_stage(fields: &mut BTreeMap<String, String>, stage: &str, at: jiff::Timestamp) {
    let (probability, closed, won) = STAGES
        .iter()
        .find(|(s, ..)| *s == stage)
        .map_or((10, false, false), |&(_, p, c, w)| (p, c, w));
    fields.insert("StageName".into(), stage.to_owned());
    fields.insert("Probability".into(), probability.to_string());
    fields.insert("IsClosed".into(), closed.to_string());
    fields.insert("IsWon".into(), won.to_string());
    if closed {
        fields.insert("CloseDate".into(), date(at));
    } else if !fields.contains_key("CloseDate") {
        let expected = at
            .checked_add(jiff::SignedDuration::from_hours(30 * 24))
            .unwrap_or(at);
        fields.insert("CloseDate".into(), date(expected));
    }
}

impl World {
    /// A record as created in the UI: no API write counted, stamped `at`.
    fn insert_at(
        &mut self,
        object: &str,
        fields: BTreeMap<String, String>,
        at: jiff::Timestamp,
    ) -> String {
        let id = self.create(object, fields);
        if let Some(r) = self.records.get_mut(&id) {
            r.created_at = at;
            r.modified_at = at;
            r.writes = 0;
        }
        id
    }

    /// The Contact behind `email`: an existing Contact, or the Contact a Lead converts into.
    fn contact_for(&mut self, email: &str, opportunity: &str, at: jiff::Timestamp) -> String {
        let mut contacts = self.find("Contact", "Email", email);
        contacts.sort();
        if let Some(id) = contacts.first() {
            return id.clone();
        }
        let lead = self.find("Lead", "Email", email).into_iter().min();
        let lead_fields = lead
            .as_ref()
            .and_then(|id| self.records.get(id))
            .map(|r| r.fields.clone())
            .unwrap_or_default();
        if let Some(converted) = lead_fields.get("ConvertedContactId") {
            return converted.clone();
        }
        let mut fields = BTreeMap::new();
        for key in ["FirstName", "LastName", "Phone", "MobilePhone", "Title"] {
            if let Some(v) = lead_fields.get(key) {
                fields.insert(key.to_owned(), v.clone());
            }
        }
        fields
            .entry("LastName".to_owned())
            .or_insert_with(|| email.split('@').next().unwrap_or(email).to_owned());
        fields.insert("Email".into(), email.to_owned());
        let contact = self.insert_at("Contact", fields, at);
        if let Some(lead) = lead
            && let Some(r) = self.records.get_mut(&lead)
        {
            r.fields.insert("IsConverted".into(), "true".into());
            r.fields
                .insert("ConvertedContactId".into(), contact.clone());
            r.fields
                .insert("ConvertedOpportunityId".into(), opportunity.to_owned());
            r.fields.insert("ConvertedDate".into(), date(at));
            r.modified_at = at;
        }
        contact
    }
}

/// A deal as the salesperson enters it.
pub struct NewDeal<'a> {
    pub stage: &'a str,
    pub amount: Option<&'a str>,
    pub currency: Option<&'a str>,
    pub contact_emails: &'a [String],
    pub at_ms: Option<i64>,
}

impl SandboxState {
    /// Creates an Opportunity with a Contact Role per email (converting Leads); returns its id.
    pub fn create_opportunity(&self, deal: NewDeal<'_>) -> String {
        let at = stamp(deal.at_ms);
        let multi_currency = self.options().multi_currency;
        let org_currency = self.options().currency.clone();
        let mut w = self.world();
        let n = w
            .records
            .values()
            .filter(|r| r.object == "Opportunity")
            .count()
            + 1;
        let mut fields = BTreeMap::new();
        fields.insert("Name".to_owned(), format!("Sandbox deal {n}"));
        if let Some(a) = deal.amount {
            fields.insert("Amount".to_owned(), a.to_owned());
        }
        if multi_currency {
            let c = deal.currency.map_or(org_currency, str::to_owned);
            fields.insert("CurrencyIsoCode".to_owned(), c);
        }
        set_stage(&mut fields, deal.stage, at);
        let id = w.insert_at("Opportunity", fields, at);
        for (i, email) in deal.contact_emails.iter().enumerate() {
            let contact = w.contact_for(email, &id, at);
            let role = BTreeMap::from([
                ("OpportunityId".to_owned(), id.clone()),
                ("ContactId".to_owned(), contact),
                ("Role".to_owned(), "Decision Maker".to_owned()),
                ("IsPrimary".to_owned(), (i == 0).to_string()),
            ]);
            w.insert_at("OpportunityContactRole", role, at);
        }
        id
    }

    /// Moves an Opportunity to `stage` (and `amount`), stamped `at_ms` (`None` = now).
    pub fn move_opportunity(
        &self,
        id: &str,
        stage: &str,
        amount: Option<&str>,
        at_ms: Option<i64>,
    ) {
        let at = stamp(at_ms);
        let mut w = self.world();
        if let Some(r) = w.records.get_mut(id).filter(|r| r.object == "Opportunity") {
            set_stage(&mut r.fields, stage, at);
            if let Some(a) = amount {
                r.fields.insert("Amount".into(), a.to_owned());
            }
            r.modified_at = at;
        }
    }

    /// The record with this id, whatever its object.
    pub fn record(&self, id: &str) -> Option<SfRecord> {
        self.world().records.get(id).cloned()
    }

    /// Every query locator handed out stops working (Salesforce drops them after 15 idle minutes).
    pub fn expire_query_locators(&self) {
        self.world().cursors.clear();
    }
}
