//! The deal side against HubSpot's published OpenAPI specs (`shared/specs/hubspot/deals.json`,
//! `associations.json`): what the connector sends (strictly: no key the spec lacks) and what the
//! sandbox answers (leniently: HubSpot's documented extras are allowed). Two known divergences
//! of the spec from the live API are checked on their own: `sorts` items are objects, and an
//! association error's `subCategory` is a string.

use std::sync::{Arc, Mutex};

use serde_json::json;

use super::*;
use crate::{
    hubspot::{deal_writeback::HubspotDealFields, outcomes::cursor::PAGE_SIZE},
    writeback::WritebackSink,
};

fn spec(name: &str) -> Value {
    crate::hubspot::sandbox::spec::load(name)
        .unwrap_or_else(|e| panic!("required for this test: {e}"))
}

fn request_schema<'a>(spec: &'a Value, path: &str) -> &'a str {
    spec["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]["$ref"]
        .as_str()
        .unwrap_or_else(|| panic!("the spec documents POST {path}"))
}

type Seen = Arc<Mutex<Vec<(String, Value)>>>;

/// A recording HubSpot answering every deal-side call with a small valid body.
async fn recorder() -> (String, Seen) {
    let seen: Seen = Arc::default();
    let record = seen.clone();
    let app = axum::Router::new().fallback(
        move |uri: axum::http::Uri, body: axum::body::Bytes| {
            let record = record.clone();
            async move {
                let path = uri.path().to_owned();
                let value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                record.lock().unwrap().push((path.clone(), value));
                let at = "2026-01-01T00:00:00.000Z";
                let answer = if path.ends_with("/search") {
                    json!({"total": 1, "results": [{"id": "31", "archived": false, "createdAt": at, "updatedAt": at,
                        "properties": {"hs_lastmodifieddate": at, "createdate": at, "dealstage": "closedwon",
                                       "hs_is_closed_won": "true", "hs_is_closed": "true", "amount": "5"}}]})
                } else if path.ends_with("/batch/read") {
                    json!({"status": "COMPLETE", "results": [{"from": {"id": "31"},
                        "to": [{"toObjectId": 1001, "associationTypes": [{"category": "HUBSPOT_DEFINED", "typeId": 3}]}]}],
                        "startedAt": at, "completedAt": at})
                } else {
                    json!({"status": "COMPLETE", "results": [{"id": "31", "properties": {}, "createdAt": at,
                        "updatedAt": at, "archived": false}], "startedAt": at, "completedAt": at})
                };
                axum::Json(answer)
            }
        },
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, app).await.ok() });
    (base, seen)
}

#[tokio::test]
async fn the_connectors_requests_match_the_spec_schemas() {
    let deals = spec("deals.json");
    let assoc = spec("associations.json");
    assert_eq!(
        request_schema(&deals, "/crm/v3/objects/0-3/search"),
        "#/components/schemas/PublicObjectSearchRequest"
    );
    assert_eq!(
        request_schema(&deals, "/crm/v3/objects/0-3/batch/update"),
        "#/components/schemas/BatchInputSimplePublicObjectBatchInput"
    );
    assert_eq!(
        request_schema(
            &assoc,
            "/crm/v4/associations/{fromObjectType}/{toObjectType}/batch/read"
        ),
        "#/components/schemas/BatchInputPublicFetchAssociationsBatchRequest"
    );

    let (base, seen) = recorder().await;
    let cfg: HubspotConfig =
        serde_json::from_value(json!({"token": TOKEN, "base_url": base, "outcome_overlap": "0s"}))
            .unwrap();
    let src = HubspotOutcomes::new(&cfg, ConnectorContext::in_memory("hubspot")).unwrap();
    let page = src.poll_outcomes(None).await.unwrap();
    assert_eq!(
        page.outcomes[0].contacts[0].remote_id, "1001",
        "a numeric toObjectId is read"
    );
    src.poll_outcomes(Some(&page.next_cursor)).await.unwrap();
    HubspotDealFields::new(&cfg, ConnectorContext::in_memory("hubspot"))
        .unwrap()
        .send(&[crate::hubspot::deal_writeback::tests::conversion(9, "31")])
        .await
        .unwrap();

    let seen = seen.lock().unwrap().clone();
    let paths: Vec<&str> = seen.iter().map(|(p, _)| p.as_str()).collect();
    assert_eq!(
        paths,
        [
            "/crm/v3/objects/deals/search",
            "/crm/v4/associations/deals/contacts/batch/read",
            "/crm/v3/objects/deals/search",
            "/crm/v4/associations/deals/contacts/batch/read",
            "/crm/v3/objects/deals/batch/update",
        ]
    );
    for (i, (_, body)) in seen.iter().enumerate() {
        match i {
            0 | 2 => {
                let mut body = body.clone();
                let sorts = body["sorts"].take();
                assert_eq!(
                    sorts,
                    json!([{"propertyName": "hs_lastmodifieddate", "direction": "ASCENDING"}])
                );
                body["sorts"] = json!([]);
                assert_schema(&deals, "PublicObjectSearchRequest", &body, true);
                assert_eq!(body["limit"], PAGE_SIZE);
            }
            1 | 3 => assert_schema(
                &assoc,
                "BatchInputPublicFetchAssociationsBatchRequest",
                body,
                true,
            ),
            _ => assert_schema(&deals, "BatchInputSimplePublicObjectBatchInput", body, true),
        }
    }
    // The follow-up search excludes the deal it already returned at that stamp.
    assert_eq!(seen[2].1["filterGroups"].as_array().unwrap().len(), 2);
    assert_eq!(
        seen[2].1["filterGroups"][1]["filters"][1]["values"],
        json!(["31"])
    );
}

#[tokio::test]
async fn the_sandboxs_answers_match_the_spec_schemas() {
    let deals = spec("deals.json");
    let assoc = spec("associations.json");
    let sb = sandbox(options()).await;
    contacts(&sb, &["s@example.com"]).await;
    let with = sb.create_deal(deal("closedwon", Some("3"), &["s@example.com"], None));
    let without = sb.create_deal(deal("qualifiedtobuy", None, &[], None));
    let http = reqwest::Client::new();
    let post = |path: &str, body: Value| {
        http.post(format!("{}{path}", sb.base_url()))
            .bearer_auth(TOKEN)
            .json(&body)
            .send()
    };
    let search = json!({"filterGroups": [{"filters": [{"propertyName": "hs_lastmodifieddate", "operator": "GTE", "value": "0"}]}],
                        "sorts": ["hs_lastmodifieddate"], "properties": ["amount", "dealstage"], "limit": 1, "after": "0"});
    for path in [
        "/crm/v3/objects/deals/search",
        "/crm/v3/objects/0-3/search",
        "/crm/objects/2026-03/deals/search",
    ] {
        let r = post(path, search.clone()).await.unwrap();
        assert_eq!(r.status(), 200, "{path}");
        let body: Value = r.json().await.unwrap();
        assert_schema(
            &deals,
            "CollectionResponseWithTotalSimplePublicObject",
            &body,
            false,
        );
        assert_eq!(
            (
                body["total"].as_u64(),
                body["paging"]["next"]["after"].as_str()
            ),
            (Some(2), Some("1"))
        );
    }
    let bad = post("/crm/v3/objects/deals/search", json!({"limit": 500}))
        .await
        .unwrap();
    assert_eq!(bad.status(), 400);
    assert_schema(&deals, "Error", &bad.json().await.unwrap(), false);

    let update = |ids: &[&str]| json!({"inputs": ids.iter().map(|id| json!({"id": id, "properties": {"tandem_attribution": "x"}})).collect::<Vec<_>>()});
    let ok = post("/crm/v3/objects/0-3/batch/update", update(&[&with]))
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);
    assert_schema(
        &deals,
        "BatchResponseSimplePublicObject",
        &ok.json().await.unwrap(),
        false,
    );
    let partial = post(
        "/crm/v3/objects/deals/batch/update",
        update(&[&with, "404404"]),
    )
    .await
    .unwrap();
    assert_eq!(partial.status(), 207);
    let partial: Value = partial.json().await.unwrap();
    assert_schema(
        &deals,
        "BatchResponseSimplePublicObjectWithErrors",
        &partial,
        false,
    );
    assert_eq!(partial["errors"][0]["context"]["ids"], json!(["404404"]));
    let unknown = post(
        "/crm/v3/objects/deals/batch/update",
        json!({"inputs": [{"id": with, "properties": {"nope": "1"}}]}),
    )
    .await
    .unwrap();
    assert_eq!(unknown.status(), 400);
    assert_schema(&deals, "Error", &unknown.json().await.unwrap(), false);
    let too_many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = too_many.iter().map(String::as_str).collect();
    assert_eq!(
        post("/crm/v3/objects/deals/batch/update", update(&refs))
            .await
            .unwrap()
            .status(),
        400
    );

    let read = |ids: &[&str]| json!({"inputs": ids.iter().map(|id| json!({"id": id})).collect::<Vec<_>>()});
    let ok = post(
        "/crm/v4/associations/deals/contacts/batch/read",
        read(&[&with]),
    )
    .await
    .unwrap();
    assert_eq!(ok.status(), 200);
    let ok: Value = ok.json().await.unwrap();
    assert_schema(
        &assoc,
        "BatchResponsePublicAssociationMultiWithLabel",
        &ok,
        false,
    );
    assert_eq!(
        ok["results"][0]["to"][0]["associationTypes"][0]["typeId"],
        3
    );
    let partial = post(
        "/crm/v4/associations/0-3/0-1/batch/read",
        read(&[&with, &without]),
    )
    .await
    .unwrap();
    assert_eq!(partial.status(), 207);
    let mut partial: Value = partial.json().await.unwrap();
    let error = &mut partial["errors"][0];
    assert_eq!(
        error["subCategory"], "crm.associations.NO_ASSOCIATIONS_FOUND",
        "a string, unlike the spec's object"
    );
    assert_eq!(
        error["message"],
        format!("No contact is associated with deal {without}.")
    );
    error.as_object_mut().unwrap().remove("subCategory");
    assert_schema(
        &assoc,
        "BatchResponsePublicAssociationMultiWithLabelWithErrors",
        &partial,
        false,
    );
    let big: Vec<String> = (0..1001).map(|i| i.to_string()).collect();
    let refs: Vec<&str> = big.iter().map(String::as_str).collect();
    assert_eq!(
        post(
            "/crm/v4/associations/deals/contacts/batch/read",
            read(&refs)
        )
        .await
        .unwrap()
        .status(),
        400
    );
    sb.shutdown().await;
}
