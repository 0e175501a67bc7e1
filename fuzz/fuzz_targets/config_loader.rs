//! Fuzzes the config loader: `Config::from_str_at` on arbitrary text (the fuzz bytes as lossy
//! UTF-8). Asserted: nothing panics; a refusal carries at least one error, each located in the
//! given file, and the whole renders (Display and `tandem check`'s report) without panicking; an
//! accepted config renders its report too.

#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;
use tandem::config::{Config, check_report};

/// Nothing exists here, so relative `${file:…}` references and `state` paths resolve to nothing.
const PATH: &str = "/nonexistent/tandem-fuzz/tandem.toml";

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let path = Path::new(PATH);
    let result = Config::from_str_at(&text, path);
    match &result {
        Ok(config) => {
            let _ = format!("{config:?}");
        }
        Err(errors) => {
            assert!(!errors.0.is_empty(), "refused with no error");
            for e in &errors.0 {
                assert_eq!(e.file, path, "error names another file: {e}");
            }
            let shown = errors.to_string();
            assert!(shown.starts_with(PATH), "error text not located: {shown}");
        }
    }
    let _ = check_report(&result);
});
