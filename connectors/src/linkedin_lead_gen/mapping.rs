//! One `leadFormResponses` element → a [`SourceLead`]. Answers are matched to the form's
//! questions (projected into each element with `form:(…)`): predefined fields (`FIRST_NAME`,
//! `EMAIL`, …) become canonical names, custom questions keep the question's name, hidden fields
//! keep theirs (canonical when they are `utm_*` or click ids). Never panics on any JSON.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use crate::source::SourceLead;

/// LinkedIn predefined fields with a canonical tandem name.
const PREDEFINED: &[(&str, &str)] = &[
    ("FIRST_NAME", "first_name"),
    ("LAST_NAME", "last_name"),
    ("EMAIL", "email"),
    ("PHONE_NUMBER", "phone"),
    ("COMPANY_NAME", "company"),
    ("JOB_TITLE", "job_title"),
    ("COUNTRY", "country"),
];

/// Hidden-field and custom names that are canonical touchpoint fields when spelt so.
const CANONICAL_TRACKING: &[&str] = &[
    "utm_source",
    "utm_medium",
    "utm_campaign",
    "utm_term",
    "utm_content",
    "gclid",
    "gbraid",
    "wbraid",
    "fbclid",
    "li_fat_id",
    "landing_url",
    "referrer",
];

/// A mapped element and its `submittedAt` (unix ms) for the cursor.
#[derive(Debug, Clone, PartialEq)]
pub struct Mapped {
    pub lead: SourceLead,
    pub submitted_at_ms: Option<i64>,
}

/// The last `:`-separated part of a URN (`urn:li:sponsoredCampaign:123` → `123`).
pub fn urn_id(urn: &str) -> &str {
    urn.rsplit(':').next().unwrap_or(urn).trim_end_matches(')')
}

fn text(v: &Value) -> Option<String> {
    match v {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        // A MultiLocaleString: `{"localized":{"en_US":"Yes"}}` → the first locale's text.
        Value::Object(o) => o
            .get("localized")
            .and_then(Value::as_object)
            .and_then(|l| l.values().find_map(Value::as_str))
            .map(str::to_owned),
        _ => None,
    }
}

fn id_key(v: &Value) -> Option<String> {
    match v {
        Value::Number(n) => Some(n.to_string()),
        Value::String(s) => Some(s.clone()),
        _ => None,
    }
}

/// A question of the form: its name or predefined field, and its choice texts by option id.
struct Question<'a> {
    name: Option<&'a str>,
    predefined: Option<&'a str>,
    options: BTreeMap<String, String>,
}

fn questions(form: Option<&Value>) -> BTreeMap<String, Question<'_>> {
    let list = form
        .and_then(|f| f.pointer("/content/questions"))
        .and_then(Value::as_array);
    let mut out = BTreeMap::new();
    for q in list.into_iter().flatten() {
        let Some(id) = q.get("questionId").and_then(id_key) else {
            continue;
        };
        let mut options = BTreeMap::new();
        let choices = q
            .pointer("/questionDetails/multipleChoiceQuestionDetails/options")
            .and_then(Value::as_array);
        for o in choices.into_iter().flatten() {
            if let (Some(oid), Some(t)) = (
                o.get("id").and_then(id_key),
                o.get("text")
                    .and_then(text)
                    .or_else(|| o.get("label").and_then(text)),
            ) {
                options.insert(oid, t);
            }
        }
        out.insert(
            id,
            Question {
                name: q
                    .get("name")
                    .and_then(Value::as_str)
                    .filter(|s| !s.trim().is_empty()),
                predefined: q.get("predefinedField").and_then(Value::as_str),
                options,
            },
        );
    }
    out
}

/// The answer's value: a text answer, or the chosen options' texts.
fn answer_value(answer: &Value, question: Option<&Question<'_>>) -> Option<Value> {
    let details = answer.get("answerDetails")?;
    if let Some(t) = details.pointer("/textQuestionAnswer/answer").and_then(text) {
        return Some(Value::String(t));
    }
    let chosen = details
        .pointer("/multipleChoiceAnswer/options")
        .and_then(Value::as_array)?;
    let texts: Vec<Value> = chosen
        .iter()
        .filter_map(id_key)
        .map(|id| {
            let t = question
                .and_then(|q| q.options.get(&id))
                .cloned()
                .unwrap_or(id);
            Value::String(t)
        })
        .collect();
    Some(match texts.len() {
        1 => texts.into_iter().next().unwrap_or(Value::Null),
        _ => Value::Array(texts),
    })
}

/// The key a predefined field or a custom question is stored under.
fn field_key(question_id: &str, question: Option<&Question<'_>>) -> String {
    if let Some(p) = question.and_then(|q| q.predefined) {
        if let Some((_, canonical)) = PREDEFINED.iter().find(|(li, _)| *li == p) {
            return (*canonical).to_owned();
        }
        return p.to_ascii_lowercase();
    }
    match question.and_then(|q| q.name) {
        Some(name) => {
            let lower = name.trim().to_ascii_lowercase();
            if CANONICAL_TRACKING.contains(&lower.as_str()) {
                lower
            } else {
                name.trim().to_owned()
            }
        }
        None => format!("question_{question_id}"),
    }
}

fn put_if_absent(fields: &mut BTreeMap<String, Value>, key: &str, value: Value) {
    fields.entry(key.to_owned()).or_insert(value);
}

/// Maps one element; `None` when it has no `id` (nothing to dedup a re-read by).
pub fn map_element(element: &Value) -> Option<Mapped> {
    let obj = element.as_object()?;
    let id = obj.get("id").and_then(id_key).filter(|s| !s.is_empty())?;
    let mut fields: BTreeMap<String, Value> = BTreeMap::new();
    let form = obj.get("form");
    let qs = questions(form);

    let answers = element
        .pointer("/formResponse/answers")
        .and_then(Value::as_array);
    for answer in answers.into_iter().flatten() {
        let Some(qid) = answer.get("questionId").and_then(id_key) else {
            continue;
        };
        let q = qs.get(&qid);
        let Some(value) = answer_value(answer, q) else {
            continue;
        };
        fields.insert(field_key(&qid, q), value);
    }
    // Work contact details stand in when the form asked only for those.
    if let Some(v) = fields.get("work_email").cloned() {
        put_if_absent(&mut fields, "email", v);
    }
    if let Some(v) = fields.get("work_phone").cloned() {
        put_if_absent(&mut fields, "phone", v);
    }

    let hidden = form
        .and_then(|f| f.get("hiddenFields"))
        .and_then(Value::as_array);
    for h in hidden.into_iter().flatten() {
        let (Some(name), Some(value)) = (
            h.get("name").and_then(Value::as_str),
            h.get("value").and_then(text),
        ) else {
            continue;
        };
        let lower = name.trim().to_ascii_lowercase();
        let key = if CANONICAL_TRACKING.contains(&lower.as_str()) {
            lower
        } else {
            name.trim().to_owned()
        };
        if !key.is_empty() {
            put_if_absent(&mut fields, &key, Value::String(value));
        }
    }

    let consents = element
        .pointer("/formResponse/consentResponses")
        .and_then(Value::as_array);
    if let Some(consents) = consents.filter(|c| !c.is_empty()) {
        let accepted: Vec<String> = consents
            .iter()
            .filter(|c| c.get("accepted").and_then(Value::as_bool) == Some(true))
            .filter_map(|c| c.get("consentId").and_then(id_key))
            .collect();
        let consent = if accepted.len() == consents.len() {
            "true".to_owned()
        } else if accepted.is_empty() {
            "false".to_owned()
        } else {
            accepted
                .iter()
                .map(|id| format!("consent:{id}"))
                .collect::<Vec<_>>()
                .join(",")
        };
        fields.insert("consent".to_owned(), Value::String(consent));
        fields.insert(
            "consent_responses".to_owned(),
            Value::Array(consents.clone()),
        );
    }

    // The touchpoint: campaign and creative from the lead's metadata, the form by name.
    if let Some(c) = element
        .pointer("/leadMetadata/sponsoredLeadMetadata/campaign")
        .and_then(Value::as_str)
    {
        fields.insert("campaign_id".to_owned(), json!(urn_id(c)));
    }
    if let Some(c) = element
        .pointer("/associatedEntity/associatedCreative")
        .and_then(Value::as_str)
    {
        fields.insert("ad_id".to_owned(), json!(urn_id(c)));
    }
    let form_id = form.and_then(|f| f.get("id")).and_then(id_key).or_else(|| {
        // `urn:li:versionedLeadGenForm:(urn:li:leadGenForm:123,1)` → 123
        let urn = obj.get("versionedLeadGenFormUrn")?.as_str()?;
        let inner = urn.split("leadGenForm:").nth(1)?;
        Some(inner.split([',', ')']).next()?.to_owned())
    });
    let form_name = form
        .and_then(|f| f.get("name"))
        .and_then(Value::as_str)
        .filter(|s| !s.trim().is_empty());
    if let Some(name) = form_name.map(str::to_owned).or(form_id.clone()) {
        fields.insert("form".to_owned(), Value::String(name));
    }
    if let Some(fid) = form_id {
        fields.insert("form_id".to_owned(), Value::String(fid));
    }
    if let Some(urn) = obj.get("versionedLeadGenFormUrn").and_then(Value::as_str) {
        fields.insert("form_urn".to_owned(), json!(urn));
    }
    if let Some(acct) = element
        .pointer("/owner/sponsoredAccount")
        .and_then(Value::as_str)
    {
        fields.insert("ad_account".to_owned(), json!(acct));
    }
    if let Some(t) = obj.get("leadType").and_then(Value::as_str) {
        fields.insert("lead_type".to_owned(), json!(t));
    }

    let submitted_at_ms = obj.get("submittedAt").and_then(|v| {
        v.as_i64()
            .or_else(|| v.as_f64().filter(|f| f.is_finite()).map(|f| f as i64))
    });
    let captured_at = submitted_at_ms
        .and_then(|ms| jiff::Timestamp::from_millisecond(ms).ok())
        .map(|t| t.to_string());
    let is_test = obj.get("testLead").and_then(Value::as_bool) == Some(true);
    Some(Mapped {
        lead: SourceLead {
            fields,
            event_id: Some(id),
            captured_at,
            is_test,
        },
        submitted_at_ms,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A sponsored lead as LinkedIn's Lead Sync documentation shows one, with the form projected.
    fn realistic() -> Value {
        json!({
            "owner": {"sponsoredAccount": "urn:li:sponsoredAccount:11223344"},
            "submitter": "urn:li:person:AbCdEf",
            "leadType": "SPONSORED",
            "leadMetadata": {"sponsoredLeadMetadata": {"campaign": "urn:li:sponsoredCampaign:556677"}},
            "versionedLeadGenFormUrn": "urn:li:versionedLeadGenForm:(urn:li:leadGenForm:7234246,1)",
            "id": "a9a29e52-c0a3-42e3-8af1-2fc83b697003-4",
            "submittedAt": 1_695_739_275_000_i64,
            "testLead": false,
            "associatedEntity": {"associatedCreative": "urn:li:sponsoredCreative:241257736"},
            "formResponse": {
                "answers": [
                    {"answerDetails": {"textQuestionAnswer": {"answer": "Jane"}}, "questionId": 107_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "Doe"}}, "questionId": 207_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "jane@example.com"}}, "questionId": 307_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "+44 20 7946 0958"}}, "questionId": 407_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "Acme Ltd"}}, "questionId": 507_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "Head of Ops"}}, "questionId": 607_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "GB"}}, "questionId": 707_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "Director"}}, "questionId": 807_234_246},
                    {"answerDetails": {"multipleChoiceAnswer": {"options": [2]}}, "questionId": 907_234_246},
                    {"answerDetails": {"textQuestionAnswer": {"answer": "42"}}, "questionId": 1},
                ],
                "consentResponses": [{"accepted": true, "consentId": 1}]
            },
            "form": {
                "name": "Demo request Q3",
                "id": 7_234_246,
                "hiddenFields": [{"name": "utm_source", "value": "linkedin"}, {"name": "crm_campaign", "value": "701xx"}],
                "content": {"questions": [
                    {"questionId": 107_234_246, "name": "First name", "predefinedField": "FIRST_NAME"},
                    {"questionId": 207_234_246, "name": "Last name", "predefinedField": "LAST_NAME"},
                    {"questionId": 307_234_246, "name": "Email", "predefinedField": "EMAIL"},
                    {"questionId": 407_234_246, "name": "Phone", "predefinedField": "PHONE_NUMBER"},
                    {"questionId": 507_234_246, "name": "Company", "predefinedField": "COMPANY_NAME"},
                    {"questionId": 607_234_246, "name": "Title", "predefinedField": "JOB_TITLE"},
                    {"questionId": 707_234_246, "name": "Country", "predefinedField": "COUNTRY"},
                    {"questionId": 807_234_246, "name": "Seniority", "predefinedField": "SENIORITY"},
                    {"questionId": 907_234_246, "name": "Team size",
                     "questionDetails": {"multipleChoiceQuestionDetails": {"options": [
                        {"id": 1, "text": {"localized": {"en_US": "1-10"}}},
                        {"id": 2, "text": {"localized": {"en_US": "11-50"}}}]}}}
                ]}
            }
        })
    }

    #[test]
    fn a_realistic_sponsored_lead_maps_onto_canonical_names_and_the_touchpoint() {
        let m = map_element(&realistic()).expect("maps");
        let f = &m.lead.fields;
        let s = |k: &str| f.get(k).and_then(Value::as_str).unwrap_or("<none>");
        assert_eq!(s("first_name"), "Jane");
        assert_eq!(s("last_name"), "Doe");
        assert_eq!(s("email"), "jane@example.com");
        assert_eq!(s("phone"), "+44 20 7946 0958");
        assert_eq!(s("company"), "Acme Ltd");
        assert_eq!(s("job_title"), "Head of Ops");
        assert_eq!(s("country"), "GB");
        assert_eq!(s("seniority"), "Director");
        assert_eq!(s("Team size"), "11-50");
        assert_eq!(s("question_1"), "42");
        assert_eq!(s("utm_source"), "linkedin");
        assert_eq!(s("crm_campaign"), "701xx");
        assert_eq!(s("campaign_id"), "556677");
        assert_eq!(s("ad_id"), "241257736");
        assert_eq!(s("form"), "Demo request Q3");
        assert_eq!(s("form_id"), "7234246");
        assert_eq!(s("consent"), "true");
        assert_eq!(s("ad_account"), "urn:li:sponsoredAccount:11223344");
        assert_eq!(
            m.lead.event_id.as_deref(),
            Some("a9a29e52-c0a3-42e3-8af1-2fc83b697003-4")
        );
        assert_eq!(m.lead.captured_at.as_deref(), Some("2023-09-26T14:41:15Z"));
        assert_eq!(m.submitted_at_ms, Some(1_695_739_275_000));
        assert!(!m.lead.is_test);
    }

    #[test]
    fn test_leads_missing_forms_and_odd_shapes_degrade_gracefully() {
        let mut v = realistic();
        v["testLead"] = json!(true);
        v.as_object_mut().unwrap().remove("form");
        let m = map_element(&v).unwrap();
        assert!(m.lead.is_test);
        assert_eq!(m.lead.fields["question_307234246"], "jane@example.com");
        assert_eq!(m.lead.fields["form"], "7234246", "form id from the URN");
        assert!(map_element(&json!({"submittedAt": 1})).is_none(), "no id");
        assert!(map_element(&json!([1, 2])).is_none());
        let odd = json!({"id": 5, "submittedAt": "soon", "formResponse": {"answers": [1, {"questionId": null}]}, "form": {"content": {"questions": 3}}});
        let m = map_element(&odd).unwrap();
        assert_eq!(m.lead.event_id.as_deref(), Some("5"));
        assert_eq!(m.lead.captured_at, None);
    }
}
