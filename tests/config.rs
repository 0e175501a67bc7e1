//! The config loader as `tandem check` and `tandem run` see it: real files on disk, every problem
//! reported at once with file, line, key path and hint, and secrets never echoed back.
//!
//! No test sets environment variables: they are process-global and tests run in parallel, so a
//! test that sets one races every other test that reads it (and `set_var` is `unsafe` in edition
//! 2024 for that reason). Secrets come from `${file:…}` files with mode 0600 in a temp dir instead,
//! which exercises the same substitution path.

use std::{
    fs,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use secrecy::ExposeSecret;
use tandem::config::{Config, ConfigError, ConfigErrors, OnConflict, StateLocation, check_report};
use tandem_connectors::ConnectorKind;

fn repo_file(rel: &str) -> String {
    fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join(rel)).unwrap()
}

fn write_secret(dir: &Path, name: &str, value: &str, mode: u32) {
    let p = dir.join(name);
    fs::write(&p, format!("{value}\n")).unwrap();
    fs::set_permissions(&p, fs::Permissions::from_mode(mode)).unwrap();
}

fn write_config(dir: &Path, text: &str) -> PathBuf {
    let p = dir.join("tandem.toml");
    fs::write(&p, text).unwrap();
    p
}

fn load_text(text: &str) -> (tempfile::TempDir, Result<Config, ConfigErrors>) {
    let dir = tempfile::tempdir().unwrap();
    let path = write_config(dir.path(), text);
    let result = Config::load(&path);
    (dir, result)
}

fn errors(text: &str) -> Vec<ConfigError> {
    match load_text(text).1 {
        Ok(c) => panic!("expected errors, config loaded: {c:?}"),
        Err(e) => e.0,
    }
}

fn find<'a>(errs: &'a [ConfigError], key: &str) -> &'a ConfigError {
    errs.iter()
        .find(|e| e.key == key)
        .unwrap_or_else(|| panic!("no error for {key}; got:\n{}", ConfigErrors(errs.to_vec())))
}

/// A minimal valid config to which tests add one mistake.
const BASE: &str = r#"
[connectors.website]
kind = "webhook"

[connectors.hubspot]
kind = "hubspot"
token = "pat-na1-test"

[flows.inbound]
from = ["website"]
to = "hubspot"
[flows.inbound.fields]
email = "{{ lead.email }}"
"#;

#[test]
fn reference_config_loads_with_its_secrets_provided() {
    let dir = tempfile::tempdir().unwrap();
    let mut text = repo_file("config/tandem.toml");
    for name in [
        "TANDEM_ADMIN_TOKEN",
        "HUBSPOT_TOKEN",
        "WEBSITE_WEBHOOK_SECRET",
        "SALESFORCE_CLIENT_SECRET",
        "SALESFORCE_REFRESH_TOKEN",
        "PIPEDRIVE_API_TOKEN",
        "ZOHO_CLIENT_SECRET",
        "ZOHO_REFRESH_TOKEN",
        "TYPEFORM_SECRET",
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
        "META_PAGE_TOKEN",
        "GOOGLE_LEAD_FORM_KEY",
        "MAILCHIMP_API_KEY",
        "LINKEDIN_ACCESS_TOKEN",
        "BREVO_API_KEY",
        "KLAVIYO_API_KEY",
        "GOOGLE_CLIENT_SECRET",
        "GOOGLE_REFRESH_TOKEN",
        "META_CAPI_TOKEN",
        "LINKEDIN_CAPI_TOKEN",
    ] {
        let reference = format!("${{env:{name}}}");
        assert!(
            text.contains(&reference),
            "reference config lost {reference}"
        );
        text = text.replace(&reference, &format!("${{file:{name}}}"));
        // Shaped like the real thing where the connector checks the shape.
        let value = match name {
            "MAILCHIMP_API_KEY" => format!("value-of-{name}-us21"),
            "KLAVIYO_API_KEY" => format!("pk_value-of-{name}"),
            _ => format!("value-of-{name}"),
        };
        write_secret(dir.path(), name, &value, 0o600);
    }
    let path = write_config(dir.path(), &text);
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    let attribution = config.attribution.as_ref().expect("[attribution]");
    assert_eq!(
        (attribution.from.as_str(), attribution.to.len()),
        ("hubspot", 5)
    );

    assert_eq!(config.daemon.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(
        config.daemon.state,
        StateLocation::Sqlite("/var/lib/tandem/tandem.db".into())
    );
    assert_eq!(
        config
            .daemon
            .admin_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        Some("value-of-TANDEM_ADMIN_TOKEN".to_owned())
    );
    assert_eq!(config.daemon.limits.max_body_bytes, 1_048_576);
    let Some(ConnectorKind::Hubspot(h)) = config.connectors.get("hubspot") else {
        panic!("hubspot connector missing: {:?}", config.connectors);
    };
    assert_eq!(
        h.token
            .as_ref()
            .map(|t| t.expose_secret().to_owned())
            .as_deref(),
        Some("value-of-HUBSPOT_TOKEN")
    );
    let web = config.connectors["website"].webhook().unwrap();
    assert_eq!(
        web.secret.as_ref().map(|s| s.expose_secret().to_owned()),
        Some("value-of-WEBSITE_WEBHOOK_SECRET".to_owned())
    );
    let flow = &config.flows["inbound"];
    assert_eq!(
        flow.from,
        [
            "website",
            "typeform",
            "facebook",
            "google_ads",
            "mailchimp",
            "linkedin",
            "brevo",
            "klaviyo"
        ]
    );
    for prop in [
        "email",
        "firstname",
        "lastname",
        "phone",
        "company",
        "jobtitle",
        "country",
        "lifecyclestage",
        "hs_lead_status",
    ] {
        assert!(flow.fields.contains_key(prop), "flow does not map {prop}");
    }
    assert_eq!(
        check_report(&Ok(config)),
        "config OK: 15 connectors, 1 flow; attribution from hubspot to 5 destinations"
    );
}

#[test]
fn reference_config_without_its_env_vars_names_each_one() {
    // The variables are never set in the test environment (see the module comment).
    let errs = errors(&repo_file("config/tandem.toml"));
    for name in [
        "TANDEM_ADMIN_TOKEN",
        "HUBSPOT_TOKEN",
        "WEBSITE_WEBHOOK_SECRET",
        "SALESFORCE_CLIENT_SECRET",
        "SALESFORCE_REFRESH_TOKEN",
        "PIPEDRIVE_API_TOKEN",
        "ZOHO_CLIENT_SECRET",
        "ZOHO_REFRESH_TOKEN",
        "TYPEFORM_SECRET",
        "META_APP_SECRET",
        "META_VERIFY_TOKEN",
        "META_PAGE_TOKEN",
        "GOOGLE_LEAD_FORM_KEY",
        "MAILCHIMP_API_KEY",
        "LINKEDIN_ACCESS_TOKEN",
        "BREVO_API_KEY",
        "KLAVIYO_API_KEY",
        "GOOGLE_CLIENT_SECRET",
        "GOOGLE_REFRESH_TOKEN",
        "META_CAPI_TOKEN",
        "LINKEDIN_CAPI_TOKEN",
    ] {
        assert!(
            errs.iter()
                .any(|e| e.message == format!("environment variable {name} is not set")),
            "{}",
            ConfigErrors(errs.clone())
        );
    }
}

#[test]
fn demo_config_loads_after_placeholder_substitution() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("demo.db");
    let text = repo_file("config/demo.toml")
        .replace("@LISTEN@", "127.0.0.1:18080")
        .replace("@STATE@", &state.display().to_string())
        .replace(
            "@HUBSPOT@",
            "kind = \"hubspot\"\ntoken = \"demo-token\"\nbase_url = \"http://127.0.0.1:18081/\"",
        )
        .replace(
            "@GOOGLE_ADS@",
            "kind = \"google_ads\"\ncustomer_id = \"1234567890\"\nclient_id = \"c\"\nclient_secret = \"s\"\nrefresh_token = \"r\"\nconversion_actions = { won = \"1\" }",
        )
        .replace(
            "@META_CAPI@",
            "kind = \"meta_capi\"\ndataset_id = \"1234567890123456\"\naccess_token = \"t\"",
        )
        .replace(
            "@LINKEDIN@",
            "kind = \"linkedin\"\naccess_token = \"t\"\nconversions = { won = \"urn:lla:llaPartnerConversion:1\" }",
        )
        .replace(
            "@MAILCHIMP@",
            "kind = \"mailchimp\"\napi_key = \"k-us21\"\nlist_id = \"a1b2c3d4e5\"",
        );
    assert!(
        !text.contains("= \"@") && !text.contains("\n@"),
        "unsubstituted placeholder left"
    );
    let config = Config::load(&write_config(dir.path(), &text)).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.daemon.listen.port(), 18080);
    assert_eq!(config.daemon.state, StateLocation::Sqlite(state));
    let Some(ConnectorKind::Hubspot(h)) = config.connectors.get("hubspot") else {
        panic!("no hubspot connector");
    };
    assert_eq!(h.base_url, "http://127.0.0.1:18081/");
    assert!(config.connectors["website"].webhook().is_some());
    let a = config.attribution.expect("[attribution]");
    assert_eq!(a.from, "hubspot");
    assert_eq!(a.to.len(), 5);
}

#[test]
fn several_mistakes_are_reported_together_with_lines_and_keys() {
    let text = r#"[daemon]
listen = "127.0.0.1:8080"
stat = "sqlite:/tmp/x.db"

[connectors.hubspot]
kind = "hubspot"
token = "${env:TANDEM_TEST_NEVER_SET_42}"
tokn = "oops"

[connectors.website]
kind = "webhook"

[flows.inbound]
from = ["website"]
to = "hubspott"
[flows.inbound.fields]
email = "{{ lead.email "
"#;
    let errs = errors(text);
    let report = ConfigErrors(errs.clone()).to_string();

    let e = find(&errs, "daemon.stat");
    assert_eq!((e.line, e.column), (Some(3), Some(1)), "{report}");
    assert_eq!(e.message, "unknown key");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .starts_with("did you mean `state`?"),
        "{report}"
    );

    let e = find(&errs, "connectors.hubspot.token");
    assert_eq!(e.line, Some(7), "{report}");
    assert_eq!(
        e.message,
        "environment variable TANDEM_TEST_NEVER_SET_42 is not set"
    );

    let e = find(&errs, "connectors.hubspot.tokn");
    assert_eq!((e.line, e.column), (Some(8), Some(1)), "{report}");
    assert!(
        e.hint.as_deref().unwrap().contains("did you mean `token`?"),
        "{report}"
    );

    let e = find(&errs, "flows.inbound.to");
    assert_eq!(e.line, Some(15), "{report}");
    assert_eq!(e.message, "no connector named \"hubspott\"");
    assert_eq!(
        e.hint.as_deref(),
        Some("configured connectors: hubspot, website")
    );

    let e = find(&errs, "flows.inbound.fields.email");
    assert_eq!(e.line, Some(17), "{report}");
    assert!(
        e.message.starts_with("template does not compile"),
        "{report}"
    );

    assert_eq!(errs.len(), 5, "{report}");
    // Errors read top to bottom, one per line, in the documented format.
    let lines: Vec<&str> = report.lines().collect();
    assert_eq!(lines.len(), 5);
    assert!(
        lines[0].ends_with(
            "tandem.toml:3:1: daemon.stat: unknown key — hint: did you mean `state`? \
         expected one of listen, state, admin_token, stop_timeout, log_format, limits, delivery"
        ),
        "{report}"
    );
}

#[test]
fn a_world_readable_secret_file_is_refused_with_a_chmod_hint() {
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "hubspot.token", "pat-na1-visible", 0o644);
    let text = BASE.replace("pat-na1-test", "${file:hubspot.token}");
    let err = Config::load(&write_config(dir.path(), &text)).unwrap_err();
    let e = find(&err.0, "connectors.hubspot.token");
    assert!(
        e.message.contains("readable or writable by other users"),
        "{err}"
    );
    assert_eq!(e.hint.as_deref(), Some("chmod 600 hubspot.token"));
    assert!(!err.to_string().contains("pat-na1-visible"));

    // The same file, tightened, is accepted.
    fs::set_permissions(
        dir.path().join("hubspot.token"),
        fs::Permissions::from_mode(0o600),
    )
    .unwrap();
    Config::load(&dir.path().join("tandem.toml")).unwrap_or_else(|e| panic!("{e}"));
}

#[test]
fn secret_values_never_appear_in_errors_or_debug_output() {
    let dir = tempfile::tempdir().unwrap();
    write_secret(dir.path(), "token", "pat-na1-SUPERSECRET", 0o600);
    write_secret(dir.path(), "admin", "admin-SUPERSECRET", 0o600);
    // A secret used where it doesn't parse: the error must still not echo it.
    write_secret(dir.path(), "listen", "not-an-address-SUPERSECRET", 0o600);
    let good = format!(
        "[daemon]\nadmin_token = \"${{file:admin}}\"\n{}",
        BASE.replace("pat-na1-test", "${file:token}")
    );
    let config = Config::load(&write_config(dir.path(), &good)).unwrap_or_else(|e| panic!("{e}"));
    let debug = format!("{config:?}");
    assert!(!debug.contains("SUPERSECRET"), "{debug}");

    let bad = good.replace(
        "[daemon]\n",
        "[daemon]\nlisten = \"${file:listen}\"\nstop_timeout = \"${file:token}\"\n",
    );
    let err = Config::load(&write_config(dir.path(), &bad)).unwrap_err();
    let shown = format!("{err}\n{err:?}");
    assert!(err.0.iter().any(|e| e.key == "daemon.listen"), "{shown}");
    assert!(
        err.0.iter().any(|e| e.key == "daemon.stop_timeout"),
        "{shown}"
    );
    assert!(!shown.contains("SUPERSECRET"), "{shown}");
}

#[test]
fn syntax_errors_carry_line_and_column() {
    let errs = errors("[daemon]\nlisten = \"127.0.0.1:8080\"\nstate = = 1\n");
    assert!(!errs.is_empty());
    let e = &errs[0];
    assert_eq!((e.line, e.column), (Some(3), Some(9)), "{e}");
    assert!(e.message.starts_with("syntax error"), "{e}");
    assert!(
        e.to_string().contains("tandem.toml:3:9: syntax error"),
        "{e}"
    );
}

#[test]
fn an_unknown_kind_lists_the_known_kinds() {
    let errs = errors(&format!(
        "{BASE}\n[connectors.crm]\nkind = \"hubspto\"\ntoken = \"x\"\n"
    ));
    let e = find(&errs, "connectors.crm.kind");
    assert_eq!(e.message, "unknown kind \"hubspto\"");
    let hint = e.hint.as_deref().unwrap();
    assert!(hint.contains("did you mean `hubspot`?"), "{hint}");
    assert!(
        hint.contains("webhook") && hint.contains("hubspot"),
        "{hint}"
    );

    let errs = errors("[connectors.x]\ntoken = \"t\"\n");
    let e = find(&errs, "connectors.x.kind");
    assert!(e.hint.as_deref().unwrap().starts_with("known kinds: "));
}

#[test]
fn flows_are_checked_against_connector_roles() {
    let text = BASE
        .replace("from = [\"website\"]", "from = [\"hubspot\", \"nope\"]")
        .replace("to = \"hubspot\"", "to = \"website\"");
    let errs = errors(&text);
    let from: Vec<&ConfigError> = errs
        .iter()
        .filter(|e| e.key == "flows.inbound.from")
        .collect();
    assert_eq!(from.len(), 2, "{}", ConfigErrors(errs.clone()));
    assert!(from[0].message.contains("cannot be a lead source"));
    assert_eq!(from[0].column, Some(9));
    assert_eq!(from[1].message, "no connector named \"nope\"");
    assert_eq!(from[1].column, Some(20));
    let to = find(&errs, "flows.inbound.to");
    assert!(to.message.contains("is not a CRM"), "{to}");
    assert_eq!(to.hint.as_deref(), Some("CRM connectors: hubspot"));
}

#[test]
fn empty_flows_and_unsupported_conflict_rules_are_refused() {
    let errs = errors(
        &BASE
            .replace("from = [\"website\"]", "from = []")
            .replace("email = \"{{ lead.email }}\"", ""),
    );
    assert_eq!(
        find(&errs, "flows.inbound.from").message,
        "a flow needs at least one source"
    );
    let e = find(&errs, "flows.inbound.fields");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .contains("email = \"{{ lead.email }}\""),
        "{e}"
    );

    let text = format!(
        "{BASE}phone = {{ value = \"{{{{ lead.phone }}}}\", on_conflict = \"fill_empty\" }}\n"
    );
    // Every CRM implements the rules, so all three are accepted and carried to the flow.
    let config = load_text(&text).1.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.flows["inbound"].fields["phone"].on_conflict(),
        OnConflict::FillEmpty
    );
    let never = load_text(&text.replace("fill_empty", "never"))
        .1
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        never.flows["inbound"].fields["phone"].on_conflict(),
        OnConflict::Never
    );
    let errs = errors(&text.replace("fill_empty", "sometimes"));
    let e = find(&errs, "flows.inbound.fields.phone.on_conflict");
    assert!(e.message.contains("sometimes"), "{e}");

    // The table form itself parses, and overwrite is accepted.
    let ok = text.replace("fill_empty", "overwrite");
    let config = load_text(&ok).1.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.flows["inbound"].fields["phone"].on_conflict(),
        OnConflict::Overwrite
    );
}

#[test]
fn webhook_fields_must_be_canonical_and_regions_iso() {
    let text = BASE.replace(
        "kind = \"webhook\"\n",
        "kind = \"webhook\"\ndefault_region = \"usa\"\n[connectors.website.fields]\nemial = \"{{ e }}\"\nphone = \"{% if %}\"\n",
    );
    let errs = errors(&text);
    let e = find(&errs, "connectors.website.fields.emial");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .starts_with("did you mean `email`?"),
        "{e}"
    );
    assert!(
        find(&errs, "connectors.website.fields.phone")
            .message
            .starts_with("template does not compile")
    );
    assert_eq!(
        find(&errs, "connectors.website.default_region").line,
        Some(4)
    );
}

#[test]
fn daemon_values_are_typed_and_sane() {
    let text = format!(
        "[daemon]\nlisten = \"localhost\"\nstate = \"postgres://x\"\nlog_format = \"xml\"\n\
         [daemon.limits]\nmax_body_bytes = \"2 parsecs\"\n[daemon.delivery]\nconcurrency = 0\n{BASE}"
    );
    let errs = errors(&text);
    let report = ConfigErrors(errs.clone()).to_string();
    // Every bad value in the section, not only the first one serde meets.
    assert!(
        find(&errs, "daemon.listen")
            .message
            .contains("not a socket address"),
        "{report}"
    );
    assert_eq!(find(&errs, "daemon.listen").line, Some(2));
    assert!(
        find(&errs, "daemon.state").message.contains("sqlite:"),
        "{report}"
    );
    let e = find(&errs, "daemon.log_format");
    assert_eq!(e.message, "unknown value \"xml\"");
    assert_eq!(e.hint.as_deref(), Some("expected one of text, json"));
    assert!(
        find(&errs, "daemon.limits.max_body_bytes")
            .message
            .contains("parsecs")
    );
    assert_eq!(errs.len(), 4, "{report}");
}

#[test]
fn relative_paths_and_byte_sizes_resolve() {
    let (dir, result) = load_text(&format!(
        "[daemon]\nstate = \"sqlite:data/t.db\"\nlog_format = \"json\"\n\
         [daemon.limits]\nmax_body_bytes = \"512KiB\"\n{BASE}"
    ));
    let config = result.unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        config.daemon.state,
        StateLocation::Sqlite(dir.path().join("data/t.db"))
    );
    assert_eq!(config.daemon.limits.max_body_bytes, 512 * 1024);

    let errs = errors(&format!("[daemon.delivery]\nconcurrency = 0\n{BASE}"));
    assert_eq!(find(&errs, "daemon.delivery.concurrency").line, Some(2));
}

#[test]
fn unknown_top_level_tables_and_missing_files_are_reported() {
    let errs = errors(&format!("{BASE}\n[flow.other]\nto = \"hubspot\"\n"));
    let e = find(&errs, "flow");
    assert_eq!(e.message, "unknown top-level key");
    assert!(
        e.hint
            .as_deref()
            .unwrap()
            .starts_with("did you mean [flows]?"),
        "{e}"
    );

    let err = Config::load(Path::new("/nonexistent/tandem.toml")).unwrap_err();
    assert_eq!(err.0.len(), 1);
    assert!(
        err.to_string()
            .starts_with("/nonexistent/tandem.toml: cannot read config file")
    );
}

#[test]
fn the_command_line_path_wins() {
    assert_eq!(
        Config::resolve_path(Some("/tmp/x.toml".into())),
        PathBuf::from("/tmp/x.toml")
    );
}

#[test]
fn a_wrongly_typed_required_key_is_one_error_not_two() {
    let errs = errors(&BASE.replace("to = \"hubspot\"", "to = 5"));
    let report = ConfigErrors(errs.clone()).to_string();
    let e = find(&errs, "flows.inbound.to");
    assert!(e.message.contains("invalid type: integer `5`"), "{report}");
    assert_eq!(errs.len(), 1, "{report}");
}

#[test]
fn attribution_mistakes_are_reported_with_their_lines_and_hints() {
    let text = format!(
        r#"{BASE}
[attribution]
from = "website"
model = "u_shaped"
to = ["hubspot", "nowhere", "website"]
position_based = {{ first = 0.5, last = 0.4, middle = 0.2 }}

[attribution.milestones]
won = ["closedwon"]
lost = ["closedwon"]
"#
    );
    // `model` is refused by serde before the section's cross-checks can run.
    let errs = errors(&text);
    let model = find(&errs, "attribution.model");
    assert!(model.message.contains("u_shaped"), "{}", model.message);
    assert!(model.line.is_some());

    let text = text.replace("model = \"u_shaped\"\n", "");
    let errs = errors(&text);
    let from = find(&errs, "attribution.from");
    assert!(from.message.contains("not a CRM"), "{}", from.message);
    assert!(from.hint.as_deref().unwrap_or("").contains("hubspot"));
    let to: Vec<&ConfigError> = errs.iter().filter(|e| e.key == "attribution.to").collect();
    assert_eq!(to.len(), 2, "{}", ConfigErrors(errs.clone()));
    assert!(
        to.iter()
            .any(|e| e.message.contains("no connector named \"nowhere\""))
    );
    assert!(
        to.iter()
            .any(|e| e.message.contains("cannot receive write-backs"))
    );
    assert!(
        errs.iter()
            .any(|e| e.key.starts_with("attribution.position_based"))
    );
    let dup = find(&errs, "attribution.milestones");
    assert!(dup.message.contains("closedwon"), "{}", dup.message);
    assert!(
        errs.iter().all(|e| e.line.is_some()),
        "{}",
        ConfigErrors(errs.clone())
    );
}
