//! Secret references inside config strings: `${env:NAME}`, `${file:PATH}` and `${cred:NAME}`
//! (systemd `LoadCredential=`). They are replaced in the parsed document before typed
//! deserialization, so every typed field can take a secret and errors keep their file position.
//! Write `$${` for a literal `${`.

use std::{
    io::ErrorKind,
    ops::Range,
    path::{Path, PathBuf},
};

use toml::de::{DeString, DeTable, DeValue};

use super::error::Reporter;

/// Resolved secret values, kept only to scrub them from error messages.
#[derive(Default)]
pub(crate) struct Redactor {
    values: Vec<String>,
}

impl std::fmt::Debug for Redactor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    /// Replaces every resolved secret in `text`. Values under 3 characters are left alone: they
    /// cannot be meaningful secrets and scrubbing them would shred ordinary words.
    pub fn scrub(&self, text: &str) -> String {
        let mut out = text.to_string();
        for v in &self.values {
            if v.chars().count() >= 3 && out.contains(v.as_str()) {
                out = out.replace(v.as_str(), "<redacted>");
            }
        }
        out
    }
}

/// Replaces secret references in every string value of the document.
pub(crate) fn resolve_all(
    root: &mut DeTable<'_>,
    base_dir: &Path,
    rep: &mut Reporter<'_>,
) -> Redactor {
    let mut redactor = Redactor::default();
    for (k, v) in root.iter_mut() {
        let path = k.get_ref().to_string();
        let span = v.span();
        walk(v.get_mut(), span, &path, base_dir, rep, &mut redactor);
    }
    redactor
}

fn walk(
    value: &mut DeValue<'_>,
    span: Range<usize>,
    path: &str,
    base_dir: &Path,
    rep: &mut Reporter<'_>,
    redactor: &mut Redactor,
) {
    match value {
        DeValue::String(s) if s.contains("${") => {
            match substitute(s, base_dir, &mut redactor.values) {
                Ok(resolved) => *s = DeString::Owned(resolved),
                Err(problems) => {
                    for (message, hint) in problems {
                        rep.push(Some(span.clone()), path, message, hint);
                    }
                    rep.mute(span.start);
                }
            }
        }
        // A secret written literally (no ${…}) is still a secret: if the same text is pasted into
        // a key of the wrong type, the error about that key must not print it.
        DeValue::String(s) if is_secret_key(path) => redactor.values.push(s.to_string()),
        DeValue::Table(t) => {
            for (k, v) in t.iter_mut() {
                let child = format!("{path}.{}", k.get_ref());
                let span = v.span();
                walk(v.get_mut(), span, &child, base_dir, rep, redactor);
            }
        }
        DeValue::Array(items) => {
            for (i, item) in items.iter_mut().enumerate() {
                let child = format!("{path}.{i}");
                let span = item.span();
                walk(item.get_mut(), span, &child, base_dir, rep, redactor);
            }
        }
        _ => {}
    }
}

/// Keys whose values are credentials, by their last path segment (`admin_token`, `token`,
/// `secret`, `client_secret`, `refresh_token`, `api_token`, `access_token`, `password`, …).
fn is_secret_key(path: &str) -> bool {
    let last = path.rsplit('.').next().unwrap_or(path).to_ascii_lowercase();
    ["token", "secret", "password", "api_key", "apikey"]
        .iter()
        .any(|w| last.contains(w))
}

type Problem = (String, Option<String>);

/// Expands every reference in `s`; reports every broken reference, never a secret's value.
fn substitute(s: &str, base_dir: &Path, found: &mut Vec<String>) -> Result<String, Vec<Problem>> {
    let mut out = String::with_capacity(s.len());
    let mut problems = Vec::new();
    let mut rest = s;
    while let Some(i) = rest.find('$') {
        out.push_str(&rest[..i]);
        let tail = &rest[i..];
        if let Some(after) = tail.strip_prefix("$${") {
            out.push_str("${");
            rest = after;
        } else if let Some(after) = tail.strip_prefix("${") {
            let Some(end) = after.find('}') else {
                problems.push((
                    "unterminated secret reference: `${` without a closing `}`".into(),
                    Some("write `$${` for a literal `${`".into()),
                ));
                return Err(problems);
            };
            match lookup(&after[..end], base_dir) {
                Ok(value) => {
                    found.push(value.clone());
                    out.push_str(&value);
                }
                Err(p) => problems.push(p),
            }
            rest = &after[end + 1..];
        } else {
            out.push('$');
            rest = &tail[1..];
        }
    }
    out.push_str(rest);
    if problems.is_empty() {
        Ok(out)
    } else {
        Err(problems)
    }
}

fn lookup(reference: &str, base_dir: &Path) -> Result<String, Problem> {
    let (scheme, arg) = reference.split_once(':').unwrap_or((reference, ""));
    let arg = arg.trim();
    match scheme.trim() {
        "env" => env_secret(arg),
        "file" => {
            let path = base_dir.join(arg);
            file_secret(&path, arg)
        }
        "cred" => cred_secret(arg),
        other => Err((
            format!("unknown secret reference `${{{other}:…}}`"),
            Some("use ${env:NAME}, ${file:PATH} or ${cred:NAME}".into()),
        )),
    }
}

fn env_secret(name: &str) -> Result<String, Problem> {
    if name.is_empty() {
        return Err(("`${env:}` names no variable".into(), None));
    }
    match std::env::var(name) {
        Ok(v) if !v.is_empty() => Ok(v),
        Ok(_) | Err(std::env::VarError::NotPresent) => Err((
            format!("environment variable {name} is not set"),
            Some(format!(
                "export {name}=… or set it in the service's Environment=/EnvironmentFile="
            )),
        )),
        Err(std::env::VarError::NotUnicode(_)) => Err((
            format!("environment variable {name} is not valid UTF-8"),
            None,
        )),
    }
}

fn cred_secret(name: &str) -> Result<String, Problem> {
    if name.is_empty() || name.contains('/') || name == "." || name == ".." {
        return Err((
            format!("invalid credential name {name:?}"),
            Some("a credential name is a plain file name, as in LoadCredential=NAME:…".into()),
        ));
    }
    let Some(dir) = std::env::var_os("CREDENTIALS_DIRECTORY").filter(|d| !d.is_empty()) else {
        return Err((
            format!("credential {name}: $CREDENTIALS_DIRECTORY is not set"),
            Some(format!(
                "run tandem under systemd with LoadCredential={name}:/path/to/secret, \
                 or use ${{env:…}} / ${{file:…}} instead"
            )),
        ));
    };
    let path = PathBuf::from(dir).join(name);
    let shown = path.display().to_string();
    file_secret(&path, &shown)
}

/// Reads a secret file; `shown` is the path as the user wrote it (for messages and the hint).
fn file_secret(path: &Path, shown: &str) -> Result<String, Problem> {
    if shown.is_empty() {
        return Err(("`${file:}` names no file".into(), None));
    }
    let meta = std::fs::metadata(path).map_err(|e| match e.kind() {
        ErrorKind::NotFound => (format!("secret file {shown} does not exist"), None),
        _ => (format!("cannot read secret file {shown}: {e}"), None),
    })?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        if meta.permissions().mode() & 0o006 != 0 {
            return Err((
                format!(
                    "secret file {shown} is readable or writable by other users; refusing to use it"
                ),
                Some(format!("chmod 600 {shown}")),
            ));
        }
    }
    if !meta.is_file() {
        return Err((format!("secret file {shown} is not a regular file"), None));
    }
    let text = std::fs::read_to_string(path).map_err(|e| match e.kind() {
        ErrorKind::InvalidData => (format!("secret file {shown} is not valid UTF-8"), None),
        _ => (format!("cannot read secret file {shown}: {e}"), None),
    })?;
    // Editors and `echo` add a final newline that is never part of the secret.
    let value = text.trim_end_matches(['\n', '\r']);
    if value.is_empty() {
        return Err((format!("secret file {shown} is empty"), None));
    }
    Ok(value.to_string())
}

#[cfg(test)]
mod tests {
    use std::{fs, os::unix::fs::PermissionsExt};

    use super::*;

    fn sub(s: &str, dir: &Path) -> Result<String, Vec<Problem>> {
        substitute(s, dir, &mut Vec::new())
    }

    #[test]
    fn plain_strings_and_escapes_pass_through() {
        let dir = Path::new("/nonexistent");
        assert_eq!(sub("no refs $5", dir).unwrap(), "no refs $5");
        assert_eq!(sub("literal $${env:X}", dir).unwrap(), "literal ${env:X}");
    }

    #[test]
    fn env_references_resolve_or_name_the_variable() {
        let dir = Path::new("/");
        // PATH is set in every test environment; setting our own would race other tests.
        let path = std::env::var("PATH").unwrap();
        assert_eq!(sub("${env:PATH}", dir).unwrap(), path);
        let errs = sub(
            "a ${env:TANDEM_TEST_SURELY_UNSET_1} b ${env:TANDEM_TEST_SURELY_UNSET_2}",
            dir,
        )
        .unwrap_err();
        assert_eq!(errs.len(), 2);
        assert_eq!(
            errs[0].0,
            "environment variable TANDEM_TEST_SURELY_UNSET_1 is not set"
        );
    }

    #[test]
    fn file_references_trim_newline_and_refuse_loose_permissions() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("token");
        fs::write(&p, "s3cr3t-value\n").unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(0o600)).unwrap();
        assert_eq!(
            sub("Bearer ${file:token}", dir.path()).unwrap(),
            "Bearer s3cr3t-value"
        );

        fs::set_permissions(&p, fs::Permissions::from_mode(0o644)).unwrap();
        let errs = sub("${file:token}", dir.path()).unwrap_err();
        assert_eq!(errs[0].1.as_deref(), Some("chmod 600 token"));
        assert!(!errs[0].0.contains("s3cr3t"));

        let errs = sub("${file:missing}", dir.path()).unwrap_err();
        assert!(errs[0].0.contains("does not exist"), "{:?}", errs);
    }

    #[test]
    fn unknown_schemes_and_unterminated_references_are_errors() {
        let dir = Path::new("/");
        assert!(
            sub("${vault:x}", dir).unwrap_err()[0]
                .0
                .contains("unknown secret reference")
        );
        assert!(
            sub("${env:X", dir).unwrap_err()[0]
                .0
                .contains("unterminated")
        );
    }

    #[test]
    fn redactor_scrubs_resolved_values() {
        let r = Redactor {
            values: vec!["hunter22".into(), "ab".into()],
        };
        assert_eq!(
            r.scrub("bad value hunter22 about"),
            "bad value <redacted> about"
        );
    }
}
