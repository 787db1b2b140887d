//! Byte encodings on the wire: hex digests, percent-encoding, form bodies.

/// Lowercase hex, as digests and ids are written.
pub fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// RFC 3986 percent-encoding of everything but the unreserved characters,
/// for form values and URL path or query parts.
pub fn percent_encode(text: &str) -> String {
    text.bytes()
        .map(|byte| match byte {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                char::from(byte).to_string()
            }
            _ => format!("%{byte:02X}"),
        })
        .collect()
}

/// Encodes `application/x-www-form-urlencoded` text, names and values
/// percent-encoded as by [`percent_encode`] (so `+`, `&`, `=` and non-ASCII
/// survive [`form_pairs`]), in the order given; a name may repeat.
pub fn form_encode<'a>(pairs: impl IntoIterator<Item = (&'a str, &'a str)>) -> String {
    pairs
        .into_iter()
        .map(|(name, value)| format!("{}={}", percent_encode(name), percent_encode(value)))
        .collect::<Vec<_>>()
        .join("&")
}

/// Decodes `application/x-www-form-urlencoded` text (also a query string):
/// `+` is a space and `%XX` a byte; invalid escapes are kept literally.
pub fn form_pairs(text: &str) -> Vec<(String, String)> {
    text.split('&')
        .filter(|pair| !pair.is_empty())
        .map(|pair| {
            let (name, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let bytes = text.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && hex_pair(bytes[i + 1], bytes[i + 2]).is_some() => {
                out.extend(hex_pair(bytes[i + 1], bytes[i + 2]));
                i += 2;
            }
            byte => out.push(byte),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn hex_pair(high: u8, low: u8) -> Option<u8> {
    let digit = |b: u8| (b as char).to_digit(16);
    Some((digit(high)? * 16 + digit(low)?) as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percent_encoding_round_trips_through_form_decoding() {
        assert_eq!(
            percent_encode("aZ09-._~ /+=:Ͽ"),
            "aZ09-._~%20%2F%2B%3D%3A%CF%BF"
        );
        let text = "a b+c=d&é%";
        let pairs = form_pairs(&format!("k={}&flag", percent_encode(text)));
        assert_eq!(
            pairs,
            vec![("k".into(), text.into()), ("flag".into(), String::new())]
        );
        assert_eq!(form_pairs("x=%zz+1"), vec![("x".into(), "%zz 1".into())]);
    }

    #[test]
    fn form_encoding_keeps_order_and_repeats_and_round_trips() {
        let pairs = [
            ("Body", "1+1=2 & more: é 👋"),
            ("MediaUrl", "https://x/a?b=c&d=e"),
            ("MediaUrl", ""),
            ("a b", "%"),
        ];
        let encoded = form_encode(pairs);
        assert_eq!(
            encoded,
            "Body=1%2B1%3D2%20%26%20more%3A%20%C3%A9%20%F0%9F%91%8B\
             &MediaUrl=https%3A%2F%2Fx%2Fa%3Fb%3Dc%26d%3De&MediaUrl=&a%20b=%25"
        );
        let decoded = form_pairs(&encoded);
        let expected: Vec<(String, String)> = pairs
            .iter()
            .map(|(name, value)| (name.to_string(), value.to_string()))
            .collect();
        assert_eq!(decoded, expected);
        assert_eq!(form_encode([]), "");
    }
}
