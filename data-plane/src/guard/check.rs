//! Validators run on a pattern's candidate: checksums (Luhn, IBAN mod-97), number plans (US
//! SSN), address parsing (IPv4, IPv6), shape rules (phone numbers) and the entropy of an
//! assigned secret. A regex finds where a value may be; these say whether it is one, which is
//! what keeps ordinary numbers, dates, versions and hashes out.

use std::net::Ipv6Addr;
use std::ops::Range;

/// A candidate `m` inside `hay`.
pub type Check = fn(hay: &[u8], m: Range<usize>) -> bool;

/// Accepts every candidate (the pattern alone is specific enough).
pub fn any(_: &[u8], _: Range<usize>) -> bool {
    true
}

fn digits(s: &[u8]) -> impl Iterator<Item = u8> + '_ {
    s.iter().filter(|b| b.is_ascii_digit()).map(|b| b - b'0')
}

/// The byte before `m` and the byte after it.
fn around(hay: &[u8], m: &Range<usize>) -> (Option<u8>, Option<u8>) {
    let before = m.start.checked_sub(1).and_then(|i| hay.get(i)).copied();
    (before, hay.get(m.end).copied())
}

/// Part of a longer token: a letter, digit or joiner right next to the candidate.
fn glued(b: Option<u8>) -> bool {
    b.is_some_and(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// Luhn checksum over the digits of `s`.
pub fn luhn(s: &[u8]) -> bool {
    let d: Vec<u8> = digits(s).collect();
    let sum: u32 = d
        .iter()
        .rev()
        .enumerate()
        .map(|(i, &x)| {
            let x = u32::from(x);
            if i % 2 == 1 {
                let y = x * 2;
                if y > 9 {
                    y - 9
                } else {
                    y
                }
            } else {
                x
            }
        })
        .sum();
    !d.is_empty() && sum.is_multiple_of(10)
}

/// A card number: 13-19 digits (12 for Maestro), one kind of separator (or none), a card
/// network's prefix and a Luhn checksum that holds.
pub fn credit_card(hay: &[u8], m: Range<usize>) -> bool {
    let (before, after) = around(hay, &m);
    if glued(before) || glued(after) || matches!(before, Some(b'.' | b'-')) {
        return false;
    }
    let s = &hay[m];
    let seps: Vec<u8> = s.iter().copied().filter(|b| !b.is_ascii_digit()).collect();
    if seps.windows(2).any(|w| w[0] != w[1]) {
        return false;
    }
    let d: Vec<u8> = digits(s).collect();
    if !(12..=19).contains(&d.len()) {
        return false;
    }
    let prefix = |n: usize| d[..n].iter().fold(0u32, |a, &x| a * 10 + u32::from(x));
    let maestro = matches!(
        prefix(4),
        5018 | 5020 | 5038 | 6304 | 6759 | 6761 | 6762 | 6763 | 604 | 6390
    ) || (56..=58).contains(&prefix(2));
    let network = match d[0] {
        _ if d.len() == 12 => maestro,
        // JCB's 15-digit numbers.
        1 | 2 if d.len() == 15 => matches!(prefix(4), 1800 | 2131),
        4 => true,
        5 => (50..=59).contains(&prefix(2)),
        2 => (2221..=2720).contains(&prefix(4)),
        3 => matches!(prefix(2), 30 | 34..=39),
        6 => true,
        _ => false,
    };
    network && luhn(s)
}

/// An IBAN: a known length for its country is not required, the mod-97 checksum is.
pub fn iban(hay: &[u8], m: Range<usize>) -> bool {
    let (before, after) = around(hay, &m);
    if glued(before) || glued(after) {
        return false;
    }
    let s: Vec<u8> = hay[m]
        .iter()
        .copied()
        .filter(|b| *b != b' ')
        .map(|b| b.to_ascii_uppercase())
        .collect();
    if !(15..=34).contains(&s.len()) {
        return false;
    }
    let (head, tail) = s.split_at(4);
    let mut rem: u32 = 0;
    for &b in tail.iter().chain(head) {
        let v = match b {
            b'0'..=b'9' => u32::from(b - b'0'),
            b'A'..=b'Z' => u32::from(b - b'A') + 10,
            _ => return false,
        };
        rem = if v >= 10 {
            (rem * 100 + v) % 97
        } else {
            (rem * 10 + v) % 97
        };
    }
    rem == 1
}

/// A US SSN `AAA-GG-SSSS`: area not 000, 666 or 9xx, group not 00, serial not 0000.
pub fn us_ssn(hay: &[u8], m: Range<usize>) -> bool {
    let (before, after) = around(hay, &m);
    if glued(before) || glued(after) || matches!(before, Some(b'-')) || matches!(after, Some(b'-'))
    {
        return false;
    }
    let d: Vec<u8> = digits(&hay[m]).collect();
    if d.len() != 9 {
        return false;
    }
    let area = u32::from(d[0]) * 100 + u32::from(d[1]) * 10 + u32::from(d[2]);
    area != 0 && area != 666 && area < 900 && d[3..5] != [0, 0] && d[5..] != [0, 0, 0, 0]
}

/// A dotted quad with every part at most 255, not part of a longer dotted number (a
/// version such as `1.2.3.4.5`) and not a version (`v1.2.3.4`).
pub fn ipv4(hay: &[u8], m: Range<usize>) -> bool {
    let (before, after) = around(hay, &m);
    if glued(before) || matches!(before, Some(b'.' | b'v' | b'V' | b'-')) {
        return false;
    }
    if matches!(after, Some(b'.')) && hay.get(m.end + 1).is_some_and(u8::is_ascii_digit) {
        return false;
    }
    if glued(after) {
        return false;
    }
    hay[m].split(|b| *b == b'.').all(|part| {
        part.len() <= 3
            && !(part.len() > 1 && part[0] == b'0')
            && part.iter().fold(0u32, |a, b| a * 10 + u32::from(b - b'0')) <= 255
    })
}

/// Text that parses as an IPv6 address and has at least three groups written out (so `a::b`
/// in code is not one).
pub fn ipv6(hay: &[u8], m: Range<usize>) -> bool {
    let (before, after) = around(hay, &m);
    if glued(before) || glued(after) || matches!(before, Some(b':')) {
        return false;
    }
    let Ok(s) = std::str::from_utf8(&hay[m]) else {
        return false;
    };
    let groups = s.split(':').filter(|g| !g.is_empty()).count();
    groups >= 3 && s.parse::<Ipv6Addr>().is_ok()
}

/// A phone number: 8-15 digits (an extension apart), grouped, international (`+`), or
/// parenthesised, and not a date, a time, an IP address or a version.
pub fn phone(hay: &[u8], m: Range<usize>) -> bool {
    let (before, after) = around(hay, &m);
    if glued(before) || glued(after) {
        return false;
    }
    if matches!(before, Some(b'.' | b'-' | b'/' | b':')) {
        return false;
    }
    if matches!(after, Some(b'-' | b'/' | b':'))
        || (matches!(after, Some(b'.' | b','))
            && hay.get(m.end + 1).is_some_and(u8::is_ascii_digit))
    {
        return false;
    }
    let s = &hay[m];
    // The extension is not part of the number.
    let number = match s.iter().position(|b| *b == b'x' || *b == b'e') {
        Some(i) => &s[..i],
        None => s,
    };
    let count = digits(number).count();
    if !(8..=15).contains(&count) {
        return false;
    }
    let international = number.first() == Some(&b'+') || number.starts_with(b"00");
    let parens = number.contains(&b'(');
    let groups: Vec<&[u8]> = number
        .split(|b| !b.is_ascii_digit())
        .filter(|g| !g.is_empty())
        .collect();
    let seps: Vec<u8> = number
        .iter()
        .copied()
        .filter(|b| matches!(b, b' ' | b'.' | b'-'))
        .collect();
    // Dotted numbers are phone numbers only in their usual groupings (`555.123.4567`,
    // `06.12.34.56.78`); anything else dotted is a version, an address or a decimal.
    if seps.contains(&b'.') && !(seps.iter().all(|b| *b == b'.') && dotted_phone(&groups)) {
        return false;
    }
    if !international && date_like(&groups, &seps) {
        return false;
    }
    if groups.len() == 1 {
        // One run of digits: with a `+` or a trunk `0` in front, or ten digits in the North
        // American plan's shape (`NXX NXX XXXX`, N = 2-9: a Unix time in seconds starts
        // with 1). Other runs are timestamps and ids.
        let d = groups[0];
        let nanp = d.len() == 10 && d[0] >= b'2' && d[3] >= b'2';
        return international || (d[0] == b'0' && count >= 10) || nanp;
    }
    international || parens || groups.len() >= 2
}

fn dotted_phone(groups: &[&[u8]]) -> bool {
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    matches!(
        lens.as_slice(),
        [3, 3, 4] | [2, 2, 2, 2, 2] | [1, 3, 3, 4] | [3, 4, 4]
    )
}

/// `2024-01-15`, `15.01.2024`, `2024-01-15 12` (a timestamp's date and hour).
fn date_like(groups: &[&[u8]], seps: &[u8]) -> bool {
    let lens: Vec<usize> = groups.iter().map(|g| g.len()).collect();
    let year = |g: &[u8]| g.starts_with(b"19") || g.starts_with(b"20");
    match lens.as_slice() {
        [4, 2, 2, ..] => year(groups[0]) && seps.first() != Some(&b' '),
        [2, 2, 4, ..] | [1, 2, 4, ..] | [2, 1, 4, ..] => year(groups[2]),
        _ => false,
    }
}

/// Shannon entropy of `s` in bits per byte.
pub fn entropy(s: &[u8]) -> f64 {
    let mut counts = [0u32; 256];
    for &b in s {
        counts[usize::from(b)] += 1;
    }
    let n = s.len() as f64;
    counts
        .iter()
        .filter(|&&c| c > 0)
        .map(|&c| {
            let p = f64::from(c) / n;
            -p * p.log2()
        })
        .sum()
}

/// An assigned secret's value: long and varied enough to be a credential, not a placeholder
/// (`<your-key>`, `${VAR}`, `xxxx`, `changeme`) or an identifier (`self.password`).
pub fn secret_value(v: &[u8]) -> bool {
    if v.len() < 8 {
        return false;
    }
    let lower = v.iter().any(u8::is_ascii_lowercase);
    let upper = v.iter().any(u8::is_ascii_uppercase);
    let digit = v.iter().any(u8::is_ascii_digit);
    let symbol = v.iter().any(|b| !b.is_ascii_alphanumeric());
    let kinds = [lower, upper, digit, symbol].iter().filter(|k| **k).count();
    if !(digit || symbol) || kinds < 3 && !(digit && v.len() >= 16) {
        return false;
    }
    if v.starts_with(b"${") || v.starts_with(b"{{") || v.starts_with(b"<") || v.starts_with(b"%(") {
        return false;
    }
    let threshold = if v.len() >= 16 { 3.0 } else { 2.7 };
    entropy(v) >= threshold
}

#[cfg(test)]
mod tests {
    use super::*;

    fn whole(f: Check, s: &str) -> bool {
        f(s.as_bytes(), 0..s.len())
    }

    #[test]
    fn checksums_and_number_plans() {
        assert!(whole(credit_card, "4111 1111 1111 1111"));
        assert!(whole(credit_card, "378282246310005"));
        assert!(!whole(credit_card, "4111 1111 1111 1112"), "Luhn");
        assert!(
            !whole(credit_card, "4111-1111 1111 1111"),
            "mixed separators"
        );
        assert!(
            !whole(credit_card, "1733389200000"),
            "a millisecond timestamp"
        );
        assert!(whole(iban, "DE89370400440532013000"));
        assert!(whole(iban, "GB82 WEST 1234 5698 7654 32"));
        assert!(!whole(iban, "DE89370400440532013001"));
        assert!(whole(us_ssn, "123-45-6789"));
        assert!(!whole(us_ssn, "666-45-6789") && !whole(us_ssn, "123-00-6789"));
    }

    #[test]
    fn addresses_and_their_look_alikes() {
        assert!(whole(ipv4, "192.168.1.20"));
        assert!(!whole(ipv4, "300.1.1.1"));
        assert!(!ipv4(b"v1.2.3.4", 1..8));
        assert!(!ipv4(b"1.2.3.4.5", 0..7));
        assert!(whole(ipv6, "2001:db8:85a3::8a2e:370:7334"));
        assert!(!whole(ipv6, "12:30:45"));
        assert!(!whole(ipv6, "dead::beef"));
    }

    #[test]
    fn phones_and_what_is_not_one() {
        for p in [
            "+1-555-123-4567",
            "(555) 123-4567",
            "555.123.4567",
            "+44 20 7946 0958",
            "030 12345678",
            "06 12 34 56 78",
            "+33612345678",
            "090-1234-5678",
            "001-555-123-4567x123",
        ] {
            assert!(whole(phone, p), "{p}");
        }
        for n in [
            "2024-01-15",
            "15.01.2024",
            "1733389200",
            "1.2.3.4",
            "3.14159265",
        ] {
            assert!(!whole(phone, n), "{n}");
        }
    }

    #[test]
    fn secrets_need_entropy() {
        assert!(secret_value(b"hX9$kq2Lp!zR"));
        assert!(secret_value(b"wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"));
        for weak in [
            "changeme",
            "password",
            "self.password",
            "${DB_PASSWORD}",
            "xxxxxxxx",
        ] {
            assert!(!secret_value(weak.as_bytes()), "{weak}");
        }
    }
}
