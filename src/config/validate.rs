//! Checks that need the whole config: flows against the connectors they name, and daemon values
//! that parse but make no sense (a zero limit, a backoff that shrinks).

use std::collections::{BTreeMap, BTreeSet};

use secrecy::ExposeSecret;
use tandem_connectors::ConnectorKind;
use toml::de::DeTable;

use super::{AttributionConfig, DaemonConfig, FlowConfig, document::span_of, error::Reporter};
use crate::mapping::FieldTemplates;

fn names_hint(names: &BTreeSet<String>, what: &str) -> Option<String> {
    if names.is_empty() {
        Some("no connectors are configured; add a [connectors.NAME] table".into())
    } else {
        let list: Vec<&str> = names.iter().map(String::as_str).collect();
        Some(format!("{what}: {}", list.join(", ")))
    }
}

/// `declared` holds every `[connectors.NAME]`, including ones that failed to parse, so a typo
/// inside a connector doesn't also make every flow that names it "dangling".
pub(crate) fn flows(
    flows: &BTreeMap<String, FlowConfig>,
    connectors: &BTreeMap<String, ConnectorKind>,
    declared: &BTreeSet<String>,
    root: &DeTable<'_>,
    rep: &mut Reporter<'_>,
) {
    let sources: BTreeSet<String> = connectors
        .iter()
        .filter(|(_, k)| k.is_source())
        .map(|(n, _)| n.clone())
        .collect();
    let crms: BTreeSet<String> = connectors
        .iter()
        .filter(|(_, k)| k.is_crm())
        .map(|(n, _)| n.clone())
        .collect();
    for (name, flow) in flows {
        let key = |rest: &str| format!("flows.{name}.{rest}");
        let span = |path: &[&str]| {
            let mut full = vec!["flows", name.as_str()];
            full.extend_from_slice(path);
            span_of(root, &full)
        };
        if flow.from.is_empty() {
            rep.push(
                span(&["from"]),
                key("from"),
                "a flow needs at least one source",
                names_hint(&sources, "lead sources").map(|h| format!("from = [\"NAME\"]; {h}")),
            );
        }
        for (i, src) in flow.from.iter().enumerate() {
            let idx = i.to_string();
            // `from = "x"` is a single string: its span is the whole value.
            let at = span(&["from", &idx]).or_else(|| span(&["from"]));
            if !declared.contains(src) {
                rep.push(
                    at,
                    key("from"),
                    format!("no connector named {src:?}"),
                    names_hint(declared, "configured connectors"),
                );
            } else if let Some(kind) = connectors.get(src)
                && !kind.is_source()
            {
                rep.push(
                    at,
                    key("from"),
                    format!(
                        "connector {src:?} (kind {}) cannot be a lead source",
                        kind.kind_name()
                    ),
                    names_hint(&sources, "lead sources"),
                );
            }
        }
        let to_kind = connectors.get(&flow.to);
        if !declared.contains(&flow.to) {
            rep.push(
                span(&["to"]),
                key("to"),
                format!("no connector named {:?}", flow.to),
                names_hint(declared, "configured connectors"),
            );
        } else if let Some(kind) = to_kind
            && !kind.is_crm()
        {
            rep.push(
                span(&["to"]),
                key("to"),
                format!(
                    "connector {:?} (kind {}) is not a CRM and cannot receive leads",
                    flow.to,
                    kind.kind_name()
                ),
                names_hint(&crms, "CRM connectors"),
            );
        }
        if flow.fields.is_empty() {
            rep.push(
                span(&["fields"]).or_else(|| span(&[])),
                key("fields"),
                "a flow needs field mappings; the CRM needs at least an email or id",
                Some(format!(
                    "add [flows.{name}.fields] with e.g. email = \"{{{{ lead.email }}}}\""
                )),
            );
        }
        if let Err(broken) = FieldTemplates::from_flow(&flow.fields) {
            for (field, message) in broken {
                rep.push(
                    span(&["fields", &field, "value"]).or_else(|| span(&["fields", &field])),
                    key(&format!("fields.{field}")),
                    format!("template does not compile: {message}"),
                    None,
                );
            }
        }
    }
}

/// `[attribution]`: `from` is a CRM, every `to` can take write-backs, the model's weights make
/// sense and no stage is mapped to two milestones.
pub(crate) fn attribution(
    a: &AttributionConfig,
    connectors: &BTreeMap<String, ConnectorKind>,
    declared: &BTreeSet<String>,
    root: &DeTable<'_>,
    rep: &mut Reporter<'_>,
) {
    let span = |path: &[&str]| {
        let mut full = vec!["attribution"];
        full.extend_from_slice(path);
        span_of(root, &full).or_else(|| span_of(root, &["attribution"]))
    };
    let names = |pred: &dyn Fn(&ConnectorKind) -> bool| -> BTreeSet<String> {
        connectors
            .iter()
            .filter(|(_, k)| pred(k))
            .map(|(n, _)| n.clone())
            .collect()
    };
    let crms = names(&|k| k.is_crm());
    if !declared.contains(&a.from) {
        rep.push(
            span(&["from"]),
            "attribution.from",
            format!("no connector named {:?}", a.from),
            names_hint(&crms, "CRM connectors"),
        );
    } else if let Some(kind) = connectors.get(&a.from)
        && !kind.is_crm()
    {
        rep.push(
            span(&["from"]),
            "attribution.from",
            format!(
                "connector {:?} (kind {}) is not a CRM; deal outcomes are read from a CRM",
                a.from,
                kind.kind_name()
            ),
            names_hint(&crms, "CRM connectors"),
        );
    }
    let targets = names(&|k| k.is_writeback());
    let mut seen = BTreeSet::new();
    for (i, to) in a.to.iter().enumerate() {
        let at = span(&["to", &i.to_string()]);
        if !seen.insert(to) {
            rep.push(
                at,
                "attribution.to",
                format!("{to:?} is listed twice"),
                None,
            );
        } else if !declared.contains(to) {
            rep.push(
                at,
                "attribution.to",
                format!("no connector named {to:?}"),
                names_hint(declared, "configured connectors"),
            );
        } else if let Some(kind) = connectors.get(to)
            && !kind.is_writeback()
        {
            rep.push(
                at,
                "attribution.to",
                format!(
                    "connector {to:?} (kind {}) cannot receive write-backs",
                    kind.kind_name()
                ),
                names_hint(&targets, "write-back connectors"),
            );
        }
    }
    if let Err(errors) = a.params().validate() {
        for e in errors {
            let path: Vec<&str> = e.path.split('.').collect();
            let key = if e.path.starts_with("time_decay") {
                "attribution.half_life".to_owned()
            } else {
                format!("attribution.{}", e.path)
            };
            let at = if e.path.starts_with("time_decay") {
                span(&["half_life"])
            } else {
                span(&path)
            };
            rep.push(at, key, e.reason, None);
        }
    }
    if a.lookback.0.is_zero() {
        rep.push(
            span(&["lookback"]),
            "attribution.lookback",
            "lookback must be longer than zero",
            Some("e.g. lookback = \"90d\"".into()),
        );
    }
    for stage in a.milestones.conflicts() {
        rep.push(
            span(&["milestones"]),
            "attribution.milestones",
            format!("stage {stage:?} is mapped to two milestones"),
            Some("list each stage under one of qualified, opportunity, won, lost".into()),
        );
    }
}

pub(crate) fn daemon(d: &DaemonConfig, root: &DeTable<'_>, rep: &mut Reporter<'_>) {
    limits(&d.limits, root, rep);
    let mut check = |ok: bool, path: &[&str], message: &str| {
        if !ok {
            let mut full = vec!["daemon"];
            full.extend_from_slice(path);
            rep.push(span_of(root, &full), full.join("."), message, None);
        }
    };
    if let Some(t) = &d.admin_token {
        check(
            !t.expose_secret().trim().is_empty(),
            &["admin_token"],
            "admin_token is empty; remove the key to disable the admin API",
        );
    }
    let l = &d.limits;
    check(
        l.max_body_bytes > 0,
        &["limits", "max_body_bytes"],
        "must be at least 1 byte",
    );
    check(
        l.max_pending_writes > 0,
        &["limits", "max_pending_writes"],
        "must be at least 1",
    );
    let dl = &d.delivery;
    check(
        dl.max_attempts > 0,
        &["delivery", "max_attempts"],
        "must be at least 1",
    );
    check(
        dl.concurrency > 0,
        &["delivery", "concurrency"],
        "must be at least 1",
    );
    check(
        !dl.lease.0.is_zero(),
        &["delivery", "lease"],
        "must be longer than 0",
    );
    check(
        !dl.backoff_base.0.is_zero(),
        &["delivery", "backoff_base"],
        "must be longer than 0",
    );
    check(
        !dl.call_timeout.0.is_zero() && !dl.probe_interval.0.is_zero(),
        &["delivery", "call_timeout"],
        "call_timeout and probe_interval must be longer than 0",
    );
    check(
        dl.lease.0 > dl.call_timeout.0,
        &["delivery", "lease"],
        "must be longer than call_timeout, or a slow call's rows could be claimed again while it runs",
    );
    check(
        dl.backoff_base.0 <= dl.backoff_max.0,
        &["delivery", "backoff_max"],
        "must not be shorter than backoff_base",
    );
}

/// The connection-level limits: zero would refuse every sender, and a huge value gives a slow or
/// hostile client back the power to pin connections, which is what the limits are for.
fn limits(l: &super::LimitsConfig, root: &DeTable<'_>, rep: &mut Reporter<'_>) {
    use std::time::Duration;
    const MAX_REQUEST_TIMEOUT: Duration = Duration::from_secs(600);
    const MAX_HEADER_TIMEOUT: Duration = Duration::from_secs(120);
    const MAX_CONNECTIONS: usize = 1_000_000;
    let mut check = |ok: bool, key: &str, message: &str, hint: &str| {
        if !ok {
            rep.push(
                span_of(root, &["daemon", "limits", key]),
                format!("daemon.limits.{key}"),
                message,
                Some(hint.to_owned()),
            );
        }
    };
    let t = l.request_timeout.0;
    check(
        !t.is_zero() && t <= MAX_REQUEST_TIMEOUT,
        "request_timeout",
        &format!(
            "{} is out of range; it must be longer than 0 and at most 10m",
            l.request_timeout
        ),
        "the whole request, body included, must arrive and be answered within it; e.g. \"10s\"",
    );
    let t = l.header_timeout.0;
    check(
        t >= Duration::from_millis(100) && t <= MAX_HEADER_TIMEOUT,
        "header_timeout",
        &format!(
            "{} is out of range; it must be between 100ms and 2m",
            l.header_timeout
        ),
        "a sender has this long to send its request line and headers (and an idle kept-alive \
         connection is closed after it); e.g. \"5s\"",
    );
    check(
        (1..=MAX_CONNECTIONS).contains(&l.max_connections),
        "max_connections",
        &format!(
            "{} is out of range; it must be between 1 and 1000000",
            l.max_connections
        ),
        "each connection holds a file descriptor: keep it below the service's LimitNOFILE=; e.g. 1024",
    );
}
