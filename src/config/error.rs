//! Config errors as the operator sees them: `file:line:col: key.path: message — hint: …`, every
//! problem in the file collected into one [`ConfigErrors`] so a single `tandem check` shows them all.

use std::{fmt, ops::Range, path::PathBuf};

/// One problem in the config file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The config file, as it was given (not canonicalised, so messages match what the user typed).
    pub file: PathBuf,
    /// 1-based line, when the problem has a place in the file.
    pub line: Option<usize>,
    /// 1-based column (in characters), when the problem has a place in the file.
    pub column: Option<usize>,
    /// Dotted key path, e.g. `connectors.hubspot.tokn`; empty for whole-file problems.
    pub key: String,
    pub message: String,
    pub hint: Option<String>,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
            if let Some(column) = self.column {
                write!(f, ":{column}")?;
            }
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)?;
        if let Some(hint) = &self.hint {
            write!(f, " — hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in one config file, in file order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

/// 1-based (line, column) of a byte offset; columns count characters so editors agree.
pub(crate) fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(text, offset.min(text.len()));
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

fn floor_char_boundary(text: &str, mut i: usize) -> usize {
    while i > 0 && !text.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Builds located errors for one source text.
pub(crate) struct Reporter<'a> {
    pub file: PathBuf,
    pub text: &'a str,
    pub errors: Vec<ConfigError>,
    /// Span starts of values already reported (a broken secret reference), so the type error
    /// the unresolved `${…}` text would cause next is not reported as a second problem.
    muted: Vec<usize>,
}

impl<'a> Reporter<'a> {
    pub fn new(file: PathBuf, text: &'a str) -> Self {
        Reporter {
            file,
            text,
            errors: Vec::new(),
            muted: Vec::new(),
        }
    }

    pub fn mute(&mut self, span_start: usize) {
        self.muted.push(span_start);
    }

    pub fn push(
        &mut self,
        span: Option<Range<usize>>,
        key: impl Into<String>,
        message: impl Into<String>,
        hint: Option<String>,
    ) {
        if let Some(s) = &span
            && self.muted.contains(&s.start)
        {
            return;
        }
        let (line, column) = match span {
            Some(s) => {
                let (l, c) = line_col(self.text, s.start);
                (Some(l), Some(c))
            }
            None => (None, None),
        };
        self.errors.push(ConfigError {
            file: self.file.clone(),
            line,
            column,
            key: key.into(),
            message: message.into(),
            hint,
        });
    }

    /// Errors sorted by position so the output reads top to bottom like the file.
    pub fn finish(mut self) -> Vec<ConfigError> {
        self.errors
            .sort_by_key(|e| (e.line.unwrap_or(usize::MAX), e.column.unwrap_or(0)));
        self.errors.dedup();
        self.errors
    }
}

/// The closest candidate to `word`, if it is close enough to be a plausible typo.
pub(crate) fn did_you_mean<'c>(
    word: &str,
    candidates: impl IntoIterator<Item = &'c str>,
) -> Option<&'c str> {
    let limit = (word.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(word, c), c))
        .filter(|(d, _)| *d <= limit)
        .min_by_key(|(d, _)| *d)
        .map(|(_, c)| c)
}

/// Edit distance counting a swap of neighbours as one edit (`emial` → `email`), the commonest typo.
fn edit_distance(a: &str, b: &str) -> usize {
    let a: Vec<char> = a.chars().collect();
    let b: Vec<char> = b.chars().collect();
    let mut d = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for (i, row) in d.iter_mut().enumerate() {
        row[0] = i;
    }
    d[0] = (0..=b.len()).collect();
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            let cost = usize::from(a[i - 1] != b[j - 1]);
            let mut best = (d[i - 1][j] + 1)
                .min(d[i][j - 1] + 1)
                .min(d[i - 1][j - 1] + cost);
            if i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] {
                best = best.min(d[i - 2][j - 2] + 1);
            }
            d[i][j] = best;
        }
    }
    d[a.len()][b.len()]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based_and_count_characters() {
        let text = "a = 1\nbé = 2\n";
        assert_eq!(line_col(text, 0), (1, 1));
        assert_eq!(line_col(text, 6), (2, 1));
        // "bé " is 4 bytes but 3 characters.
        assert_eq!(line_col(text, 10), (2, 4));
        assert_eq!(line_col(text, 999), (3, 1));
    }

    #[test]
    fn display_matches_the_documented_format() {
        let e = ConfigError {
            file: "tandem.toml".into(),
            line: Some(12),
            column: Some(1),
            key: "connectors.hubspot.tokn".into(),
            message: "unknown key".into(),
            hint: Some("did you mean `token`?".into()),
        };
        assert_eq!(
            e.to_string(),
            "tandem.toml:12:1: connectors.hubspot.tokn: unknown key — hint: did you mean `token`?"
        );
    }

    #[test]
    fn suggestions_only_for_close_matches() {
        assert_eq!(did_you_mean("tokn", ["token", "base_url"]), Some("token"));
        assert_eq!(did_you_mean("emial", ["email", "phone"]), Some("email"));
        assert_eq!(did_you_mean("zzzzzz", ["token", "base_url"]), None);
    }
}
