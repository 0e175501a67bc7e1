//! The subscriber hash, kept at its old path for callers of the sandbox; it lives in
//! [`crate::mailchimp::md5`] now that the write-back client needs it too.

pub use crate::mailchimp::md5::{md5_hex, subscriber_hash};
