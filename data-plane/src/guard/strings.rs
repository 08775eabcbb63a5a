//! The strings of a JSON text, found and decoded without building its value: what the
//! redaction pass reads first, so that a body with nothing to find is left alone without being
//! parsed. Decoding is exact (escapes, `\u` and surrogate pairs included), so a value hidden
//! behind an escape (`\u0040` for `@`) is seen as the provider would see it.

/// Calls `f` with every string of `json`, decoded, and whether it is an object member's name,
/// until `f` says stop (`true`). Returns whether it stopped, or `None` if a string is not
/// well formed (the text is not JSON; the caller decides the slow way).
pub fn any(json: &[u8], mut f: impl FnMut(&[u8], bool) -> bool) -> Option<bool> {
    let mut decoded = Vec::new();
    let mut at = 0;
    while let Some(open) = memchr::memchr(b'"', &json[at..]).map(|i| at + i) {
        let mut close = open + 1;
        let mut escaped = false;
        loop {
            let i = memchr::memchr2(b'"', b'\\', json.get(close..)?)? + close;
            if json[i] == b'"' {
                close = i;
                break;
            }
            escaped = true;
            close = i + 2;
        }
        let raw = &json[open + 1..close];
        let text = if escaped {
            decode(raw, &mut decoded)?;
            decoded.as_slice()
        } else {
            raw
        };
        let rest = json.get(close + 1..).unwrap_or_default();
        let key = rest.iter().find(|b| !b.is_ascii_whitespace()) == Some(&b':');
        if f(text, key) {
            return Some(true);
        }
        at = close + 1;
    }
    Some(false)
}

/// Decodes the inside of a string literal with escapes into `out`.
fn decode(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    out.clear();
    let mut i = 0;
    while i < raw.len() {
        let Some(n) = memchr::memchr(b'\\', &raw[i..]) else {
            out.extend_from_slice(&raw[i..]);
            break;
        };
        out.extend_from_slice(&raw[i..i + n]);
        i += n + 1;
        let b = match *raw.get(i)? {
            b'n' => b'\n',
            b't' => b'\t',
            b'r' => b'\r',
            b'b' => 0x08,
            b'f' => 0x0c,
            b'u' => {
                let (c, used) = unicode(&raw[i + 1..])?;
                let mut buf = [0; 4];
                out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                i += 1 + used;
                continue;
            }
            other @ (b'"' | b'\\' | b'/') => other,
            _ => return None,
        };
        out.push(b);
        i += 1;
    }
    Some(())
}

/// The character of a `\u` escape (its four hex digits at the start of `s`, and a low
/// surrogate's escape after a high one), and how many bytes it took. A lone surrogate
/// becomes U+FFFD, as in a lossy decoder.
fn unicode(s: &[u8]) -> Option<(char, usize)> {
    let hex = |s: &[u8]| -> Option<u32> {
        let s = std::str::from_utf8(s.get(..4)?).ok()?;
        u32::from_str_radix(s, 16).ok()
    };
    let high = hex(s)?;
    if (0xD800..0xDC00).contains(&high) && s.get(4..6) == Some(b"\\u") {
        if let Some(low) = hex(&s[6..]).filter(|l| (0xDC00..0xE000).contains(l)) {
            let c = 0x10000 + ((high - 0xD800) << 10) + (low - 0xDC00);
            return Some((char::from_u32(c)?, 10));
        }
    }
    Some((char::from_u32(high).unwrap_or('\u{FFFD}'), 4))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn strings(json: &str) -> Vec<(String, bool)> {
        let mut out = Vec::new();
        let done = any(json.as_bytes(), |s, key| {
            out.push((String::from_utf8_lossy(s).into_owned(), key));
            false
        });
        assert_eq!(done, Some(false));
        out
    }

    #[test]
    fn strings_are_decoded_and_names_told_apart() {
        let got = strings(r#"{"a" : "x\u0040y.example\n\"q\"", "b": ["\ud83d\ude00 \/", 5]}"#);
        assert_eq!(
            got,
            [
                ("a".into(), true),
                ("x@y.example\n\"q\"".into(), false),
                ("b".into(), true),
                ("\u{1f600} /".into(), false)
            ]
        );
        assert_eq!(any(br#"{"a": "unterminated"#, |_, _| false), None);
        assert_eq!(
            any(br#"{"a": "x", "b": "y"}"#, |s, _| s == b"x"),
            Some(true)
        );
    }
}
