//! JSON string literals read straight from a body's bytes: where one ends, and its text
//! decoded exactly (escapes, `\u` and surrogate pairs included), so a value hidden behind an
//! escape (`\u0040` for `@`) is seen as the provider would see it.

/// The position of the closing quote of the literal whose opening quote is at `open`, and
/// whether the literal has escapes; `None` if it is not closed.
pub fn literal_end(json: &[u8], open: usize) -> Option<(usize, bool)> {
    let mut at = open + 1;
    let mut escaped = false;
    loop {
        let i = memchr::memchr2(b'"', b'\\', json.get(at..)?)? + at;
        if json[i] == b'"' {
            return Some((i, escaped));
        }
        escaped = true;
        at = i + 2;
    }
}

/// Decodes the inside of a string literal with escapes into `out`; `None` on a bad escape.
pub fn decode(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
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

    fn decoded(literal: &str) -> String {
        let json = literal.as_bytes();
        let (close, escaped) = literal_end(json, 0).unwrap();
        assert_eq!(close, json.len() - 1);
        let mut out = Vec::new();
        if escaped {
            decode(&json[1..close], &mut out).unwrap();
        } else {
            out.extend_from_slice(&json[1..close]);
        }
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn literals_end_at_their_quote_and_decode_exactly() {
        assert_eq!(
            decoded(r#""x\u0040y.example\n\"q\"""#),
            "x@y.example\n\"q\""
        );
        assert_eq!(decoded(r#""\ud83d\ude00 \/ \\""#), "\u{1f600} / \\");
        assert_eq!(decoded(r#""plain""#), "plain");
        assert_eq!(literal_end(br#""unterminated\""#, 0), None);
        assert_eq!(decode(br"\q", &mut Vec::new()), None);
    }
}
