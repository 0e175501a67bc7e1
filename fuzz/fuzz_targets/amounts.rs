//! Fuzzes deal amounts: `to_minor_units(text, currency)` on arbitrary text. Asserted: nothing
//! panics, and every amount it accepts survives the trip back through `minor_units_text` (the
//! text write-back sends) to the same minor units.
//!
//! Input layout: byte 0 picks the currency (one per ISO 4217 exponent class, or, for 0xF0 and up,
//! the next 3 bytes as a raw code); the rest is the amount text, as lossy UTF-8.

#![no_main]

use libfuzzer_sys::fuzz_target;
use tandem_connectors::outcome::{currency_exponent, minor_units_text, to_minor_units};

/// Exponent 2, 0 and 3, in either case, and codes the table does not know.
const CURRENCIES: [&str; 10] = [
    "EUR", "usd", "JPY", "krw", "KWD", "bhd", "XXX", "", "EURO", "€",
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let (currency, amount) = if selector >= 0xF0 {
        let (code, amount) = rest.split_at(rest.len().min(3));
        (String::from_utf8_lossy(code).into_owned(), amount)
    } else {
        (
            CURRENCIES[usize::from(selector) % CURRENCIES.len()].to_owned(),
            rest,
        )
    };
    let amount = String::from_utf8_lossy(amount);
    let Some(minor) = to_minor_units(&amount, &currency) else {
        return;
    };
    let text = minor_units_text(minor, &currency);
    assert_eq!(
        to_minor_units(&text, &currency),
        Some(minor),
        "{amount:?} {currency:?} -> {minor} -> {text:?} does not parse back"
    );
    // The text carries exactly the currency's number of decimals.
    let decimals = text.split_once('.').map_or(0, |(_, f)| f.len());
    assert_eq!(
        decimals,
        currency_exponent(&currency) as usize,
        "{minor} {currency:?} rendered as {text:?}"
    );
});
