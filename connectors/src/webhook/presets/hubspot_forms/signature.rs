//! HubSpot's request signatures. v3 (the one tandem checks): base64 HMAC-SHA256 keyed with the
//! app's client secret over `method + uri + body + timestamp`, with `X-HubSpot-Request-Timestamp`
//! (milliseconds) within 5 minutes. v1 and v2 (plain SHA-256 of secret + …, no timestamp, so no
//! replay protection) are computed only to test against HubSpot's published examples.

#[cfg(any(test, feature = "sandbox"))]
use sha2::{Digest, Sha256};

use super::super::common::{base64, hmac_sha256};

/// `X-HubSpot-Signature-v3` for this request.
pub fn sign_v3(secret: &[u8], method: &str, uri: &str, body: &[u8], timestamp: &str) -> String {
    base64(&hmac_sha256(
        secret,
        &[
            method.as_bytes(),
            uri.as_bytes(),
            body,
            timestamp.as_bytes(),
        ],
    ))
}

/// Legacy v1: hex SHA-256 of `secret + body` (HubSpot still sends it beside v3; tandem never
/// accepts it: no timestamp, so no replay protection). Sandboxes send it as HubSpot does.
#[cfg(any(test, feature = "sandbox"))]
pub fn sign_v1(secret: &[u8], body: &[u8]) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(secret)
            .chain_update(body)
            .finalize(),
    )
}

#[cfg(test)]
/// Legacy v2: hex SHA-256 of `secret + method + uri + body`.
pub fn sign_v2(secret: &[u8], method: &str, uri: &str, body: &[u8]) -> String {
    hex::encode(
        Sha256::new()
            .chain_update(secret)
            .chain_update(method.as_bytes())
            .chain_update(uri.as_bytes())
            .chain_update(body)
            .finalize(),
    )
}

/// HubSpot signs the URI with these percent-escapes decoded (its v3 validation instructions list
/// them); every other escape stays as sent.
pub fn decode_signed_escapes(uri: &str) -> String {
    const TABLE: [(&str, char); 12] = [
        ("%3A", ':'),
        ("%2F", '/'),
        ("%3F", '?'),
        ("%40", '@'),
        ("%21", '!'),
        ("%24", '$'),
        ("%27", '\''),
        ("%28", '('),
        ("%29", ')'),
        ("%2A", '*'),
        ("%2C", ','),
        ("%3B", ';'),
    ];
    let mut out = String::with_capacity(uri.len());
    let mut rest = uri;
    while let Some(pos) = rest.find('%') {
        out.push_str(&rest[..pos]);
        let tail = &rest[pos..];
        let hit = tail
            .get(..3)
            .and_then(|esc| TABLE.iter().find(|(e, _)| e.eq_ignore_ascii_case(esc)));
        match hit {
            Some((_, c)) => {
                out.push(*c);
                rest = &tail[3..];
            }
            None => {
                out.push('%');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The path and query of a URL ("https://h/p?q" → "/p?q"; a bare path is returned as is).
fn path_and_query(url: &str) -> &str {
    match url.find("://") {
        None => url,
        Some(i) => {
            let after = &url[i + 3..];
            match after.find(['/', '?']) {
                Some(j) => &after[j..],
                None => "",
            }
        }
    }
}

/// The URL HubSpot called, as it signed it. `public_url` is either an origin
/// (`https://leads.example.com`): then the request's path and query are appended; or the full URL
/// typed into HubSpot (`https://leads.example.com/hooks/hs`): then it is used as is, plus the
/// request's query if it has none of its own. Without `public_url`, the URL tandem saw.
pub fn signed_url(public_url: Option<&str>, request_url: &str) -> String {
    let Some(public) = public_url.map(str::trim).filter(|p| !p.is_empty()) else {
        return request_url.to_owned();
    };
    let public_path = path_and_query(public);
    let request_pq = path_and_query(request_url);
    if public_path.is_empty() || public_path == "/" {
        let origin = public.trim_end_matches('/');
        let pq = if request_pq.starts_with('/') {
            request_pq.to_owned()
        } else {
            format!("/{request_pq}")
        };
        return format!("{origin}{pq}");
    }
    match (public.contains('?'), request_pq.split_once('?')) {
        (false, Some((_, query))) if !query.is_empty() => format!("{public}?{query}"),
        _ => public.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SECRET: &[u8] = b"yyyyyyyy-yyyy-yyyy-yyyy-yyyyyyyyyyyy";
    const BODY: &str = r#"[{"eventId":1,"subscriptionId":12345,"portalId":62515,"occurredAt":1564113600000,"subscriptionType":"contact.creation","attemptNumber":0,"objectId":123,"changeSource":"CRM","changeFlag":"NEW","appId":54321}]"#;

    #[test]
    fn vendor_notes_vectors_v1_v2_v3() {
        assert_eq!(
            sign_v1(SECRET, BODY.as_bytes()),
            "232db2615f3d666fe21a8ec971ac7b5402d33b9a925784df3ca654d05f4817de"
        );
        assert_eq!(
            sign_v2(SECRET, "GET", "https://www.example.com/webhook_uri", b""),
            "eee2dddcc73c94d699f5e395f4b9d454a069a6855fbfa152e91e88823087200e"
        );
        assert_eq!(
            sign_v3(
                SECRET,
                "POST",
                "https://www.example.com/webhook_uri",
                BODY.as_bytes(),
                "1564113600000"
            ),
            "DxmVAjFNa2xfF3YgQjdZP6TNcok9k1oaH7UXombPtvw="
        );
    }

    #[test]
    fn signed_url_from_origin_or_full_public_url() {
        let seen = "http://127.0.0.1:8080/hooks/hs?portal=1";
        assert_eq!(
            signed_url(Some("https://leads.example.com/"), seen),
            "https://leads.example.com/hooks/hs?portal=1"
        );
        assert_eq!(
            signed_url(Some("https://leads.example.com/tandem/hooks/hs"), seen),
            "https://leads.example.com/tandem/hooks/hs?portal=1"
        );
        assert_eq!(
            signed_url(Some("https://x.co/h?a=1"), seen),
            "https://x.co/h?a=1"
        );
        assert_eq!(signed_url(None, seen), seen);
        assert_eq!(
            signed_url(Some("https://x.co"), "/hooks/hs"),
            "https://x.co/hooks/hs"
        );
    }

    #[test]
    fn listed_escapes_are_decoded_others_kept() {
        assert_eq!(
            decode_signed_escapes("https://x.co/h?r=a%3Ab%2Fc%40d%20e%2a%"),
            "https://x.co/h?r=a:b/c@d%20e*%"
        );
        assert_eq!(decode_signed_escapes("%é%3"), "%é%3");
    }
}
