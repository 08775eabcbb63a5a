//! Where a built-in class's values can be in a text, found without a regex: the regions a
//! class's pattern is then run on, so that ordinary text costs a few passes over its bytes
//! instead of every pattern's search.
//!
//! Two kinds of class:
//! - classes with a literal (the secrets' prefixes `AKIA`, `ghp_`, `sk-`, `eyJ`,
//!   `-----BEGIN`, the names a secret is assigned to, `@` of an email): two Aho-Corasick
//!   passes (the prefixes; the names, on the text lowered) and `memchr` for `@` and
//!   `-----BEGIN` find the literals, and a region runs from where a match holding that
//!   literal can start to where it must end;
//! - classes of digits and separators (phone, card, IBAN, SSN, IPv4, IPv6): every byte of a
//!   match belongs to the class's alphabet, so a match lies inside one maximal run of that
//!   alphabet, and a run is kept only if it passes a test every run holding a *valid* value
//!   passes (a phone number has at least 8 digits, an IPv6 address `::` or 7 colons).
//!
//! The guarantee [`super::detect`] relies on: every match of a class's pattern that its
//! validator accepts starts and ends inside one of the class's regions, regions of a class are
//! sorted and disjoint, and no match of the pattern crosses from one region into the next (so
//! searching region by region finds what a search of the whole text finds).

use std::ops::Range;

use aho_corasick::{AhoCorasick, AhoCorasickBuilder, AhoCorasickKind, MatchKind};
use proto::GuardClass;

/// Number of built-in classes.
pub const CLASSES: usize = GuardClass::ALL.len();

/// The position of `class` in [`GuardClass::ALL`] (the index of its regions).
pub fn slot(class: GuardClass) -> usize {
    GuardClass::ALL
        .iter()
        .position(|c| *c == class)
        .unwrap_or_default()
}

/// A set of bytes.
type ByteSet = [bool; 256];

const fn byte_set(ranges: &[(u8, u8)], singles: &[u8]) -> ByteSet {
    let mut set = [false; 256];
    let mut i = 0;
    while i < ranges.len() {
        let (lo, hi) = ranges[i];
        let mut b = lo as usize;
        while b <= hi as usize {
            set[b] = true;
            b += 1;
        }
        i += 1;
    }
    let mut i = 0;
    while i < singles.len() {
        set[singles[i] as usize] = true;
        i += 1;
    }
    set
}

const DIGIT: (u8, u8) = (b'0', b'9');
const UPPER: (u8, u8) = (b'A', b'Z');
const LOWER: (u8, u8) = (b'a', b'z');

/// An email's local part and its domain.
const EMAIL_LOCAL: ByteSet = byte_set(&[DIGIT, UPPER, LOWER], b"._%+-");
const EMAIL_DOMAIN: ByteSet = byte_set(&[DIGIT, UPPER, LOWER], b".-");
/// What follows a secret's prefix (every token class's tail, JWT's dots, Slack hooks' path).
const TOKEN: ByteSet = byte_set(&[DIGIT, UPPER, LOWER], b"_./-");
/// What a name a secret is assigned to is written with (`DB.password_v2`).
const NAME: ByteSet = byte_set(&[DIGIT, UPPER, LOWER], b"_.-");
const PHONE: ByteSet = byte_set(&[DIGIT], b"+(). -xet");
const CARD: ByteSet = byte_set(&[DIGIT], b" -");
const SSN: ByteSet = byte_set(&[DIGIT], b"-");
const IPV4: ByteSet = byte_set(&[DIGIT], b".");
const IPV6: ByteSet = byte_set(&[DIGIT, (b'a', b'f'), (b'A', b'F')], b":");
const IBAN: ByteSet = byte_set(&[DIGIT, UPPER], b" ");

/// The literals, by class, and whether they must appear in this case (the pattern is
/// case-sensitive). The patterns in `detect` begin with these (or, for an assigned secret,
/// hold one of them in the name).
const LITERALS: &[(GuardClass, bool, &[&str])] = &[
    (
        GuardClass::AwsAccessKey,
        true,
        &["AKIA", "ASIA", "ABIA", "ACCA", "A3T"],
    ),
    (
        GuardClass::GithubToken,
        true,
        &["ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"],
    ),
    (
        GuardClass::GitlabToken,
        true,
        &[
            "glpat-", "gldt-", "glrt-", "glptt-", "glft-", "glsoat-", "gloas-",
        ],
    ),
    (
        GuardClass::SlackToken,
        true,
        &[
            "xoxa-",
            "xoxb-",
            "xoxp-",
            "xoxo-",
            "xoxs-",
            "xoxr-",
            "xoxe.xoxp-",
            "https://hooks.slack.com/",
        ],
    ),
    // `sk-ant-` is an `sk-` too: both classes' regions start at every `sk-`.
    (GuardClass::OpenaiKey, true, &["sk-"]),
    (GuardClass::Jwt, true, &["eyJ"]),
    (
        GuardClass::SecretAssignment,
        false,
        &[
            "password",
            "passwd",
            "passwort",
            "pwd",
            "secret",
            "token",
            "api_key",
            "api-key",
            "apikey",
            "access_key",
            "access-key",
            "accesskey",
            "auth_key",
            "auth-key",
            "authkey",
            "credential",
            "private_key",
            "private-key",
            "privatekey",
        ],
    ),
];

/// The literal scanners, built once per detector.
#[derive(Debug)]
pub struct Scopes {
    /// The secrets' prefixes, in their case.
    tokens: AhoCorasick,
    /// Per pattern of `tokens`: its class.
    token_classes: Vec<GuardClass>,
    /// The names a secret is assigned to, in lower case (searched in the text lowered: an
    /// automaton without case runs byte by byte, one with it runs on SIMD prefilters).
    names: AhoCorasick,
}

/// Regions per class (index: [`slot`]).
pub type Regions = [Vec<Range<usize>>; CLASSES];

impl Scopes {
    pub fn new() -> Result<Self, aho_corasick::BuildError> {
        let mut tokens = Vec::new();
        let mut token_classes = Vec::new();
        let mut names = Vec::new();
        for (class, exact, list) in LITERALS {
            for text in *list {
                if *exact {
                    tokens.push(*text);
                    token_classes.push(*class);
                } else {
                    names.push(*text);
                }
            }
        }
        let build = |texts: &[&str]| {
            AhoCorasickBuilder::new()
                .match_kind(MatchKind::LeftmostFirst)
                .kind(Some(AhoCorasickKind::DFA))
                .build(texts)
        };
        Ok(Self {
            tokens: build(&tokens)?,
            token_classes,
            names: build(&names)?,
        })
    }

    /// The regions of every class `wanted` (by [`slot`]) in `text`.
    pub fn regions(&self, text: &[u8], wanted: &[bool; CLASSES]) -> Regions {
        let mut out: Regions = Default::default();
        let want = |c: GuardClass| wanted[slot(c)];
        if want(GuardClass::Email) {
            emails(text, &mut out[slot(GuardClass::Email)]);
        }
        if want(GuardClass::PrivateKey) {
            // The block runs to its END line or to the end of the text.
            if let Some(at) = memchr::memmem::find(text, b"-----BEGIN") {
                out[slot(GuardClass::PrivateKey)].push(at..text.len());
            }
        }
        self.tokens(text, wanted, &mut out);
        if want(GuardClass::SecretAssignment) {
            // Non-overlapping: a name inside another one (`secretoken`) is in its region.
            let regions = &mut out[slot(GuardClass::SecretAssignment)];
            for hit in self.names.find_iter(&text.to_ascii_lowercase()) {
                regions.push(assignment(text, hit.start(), hit.end()));
            }
        }
        digit_runs(text, wanted, &mut out);
        if want(GuardClass::Ipv6) {
            ipv6(text, &mut out[slot(GuardClass::Ipv6)]);
        }
        for regions in &mut out {
            merge(regions);
        }
        out
    }

    /// From each secret prefix to the end of the token run it starts. Non-overlapping: a
    /// prefix starting inside another one is preceded by a word byte, where no token's `\b`
    /// lets a match start.
    fn tokens(&self, text: &[u8], wanted: &[bool; CLASSES], out: &mut Regions) {
        let classes = [
            GuardClass::AwsAccessKey,
            GuardClass::GithubToken,
            GuardClass::GitlabToken,
            GuardClass::SlackToken,
            GuardClass::OpenaiKey,
            GuardClass::AnthropicKey,
            GuardClass::Jwt,
        ];
        if !classes.iter().any(|c| wanted[slot(*c)]) {
            return;
        }
        for hit in self.tokens.find_iter(text) {
            let Some(&class) = self.token_classes.get(hit.pattern().as_usize()) else {
                continue;
            };
            let region = hit.start()..run_end(text, hit.end(), &TOKEN);
            // `sk-ant-` is an `sk-` too.
            let also = (class == GuardClass::OpenaiKey).then_some(GuardClass::AnthropicKey);
            for c in std::iter::once(class).chain(also) {
                if wanted[slot(c)] {
                    out[slot(c)].push(region.clone());
                }
            }
        }
    }
}

/// The end of the run of `set` bytes from `from`.
fn run_end(text: &[u8], from: usize, set: &ByteSet) -> usize {
    let mut end = from.min(text.len());
    while text.get(end).is_some_and(|b| set[usize::from(*b)]) {
        end += 1;
    }
    end
}

/// The start of the run of `set` bytes that ends at `to`.
fn run_start(text: &[u8], to: usize, set: &ByteSet) -> usize {
    let mut start = to;
    while start > 0 && set[usize::from(text[start - 1])] {
        start -= 1;
    }
    start
}

/// Around each `@`: the local part's run before it and the domain's run after it.
fn emails(text: &[u8], out: &mut Vec<Range<usize>>) {
    for at in memchr::memchr_iter(b'@', text) {
        out.push(run_start(text, at, &EMAIL_LOCAL)..run_end(text, at + 1, &EMAIL_DOMAIN));
    }
}

/// An assignment holding a name literal at `name`: from the start of the name's run to past
/// the longest value the pattern takes (quotes, `]`, blanks, the operator, 200 bytes).
fn assignment(text: &[u8], name: usize, name_end: usize) -> Range<usize> {
    let start = run_start(text, name, &NAME);
    let blanks = |from: usize| {
        let mut at = from.min(text.len());
        while matches!(text.get(at), Some(b' ' | b'\t')) {
            at += 1;
        }
        at
    };
    // `\"]` (3 bytes) before the blanks, `:=` or `=>` (2) and `\"` (2) after the operator.
    let end = blanks(run_end(text, name_end, &NAME) + 3);
    let end = blanks(end + 2) + 2 + 200;
    start..end.min(text.len())
}

/// The digit classes whose alphabet is part of a phone number's, with the digits and dots a
/// run of theirs needs at least (a necessary condition only).
const IN_PHONE_RUNS: [(GuardClass, &ByteSet, usize, usize); 3] = [
    (GuardClass::CreditCard, &CARD, 12, 0),
    (GuardClass::UsSsn, &SSN, 9, 0),
    (GuardClass::Ipv4, &IPV4, 4, 3),
];

/// The digits and the dots of `run`.
fn digits_and_dots(run: &[u8]) -> (usize, usize) {
    run.iter().fold((0, 0), |(d, p), b| {
        (
            d + usize::from(b.is_ascii_digit()),
            p + usize::from(*b == b'.'),
        )
    })
}

/// Runs of the digit classes' alphabets long enough to hold a value: a phone number (8
/// digits before an extension), a card (12), an SSN (9), an IPv4 address (4 digits, 3 dots)
/// and an IBAN (two capitals and two digits, 15 bytes).
///
/// One pass over the runs of a phone number's alphabet, which holds the card's, the SSN's and
/// the IPv4's: their runs are looked for only inside a phone run with digits enough. An IBAN
/// starts with two capitals, which no phone run holds, so its first digit starts a phone run.
fn digit_runs(text: &[u8], wanted: &[bool; CLASSES], out: &mut Regions) {
    let phone = wanted[slot(GuardClass::Phone)];
    let iban = wanted[slot(GuardClass::Iban)];
    let inner: Vec<_> = IN_PHONE_RUNS
        .iter()
        .filter(|(c, ..)| wanted[slot(*c)])
        .collect();
    if !phone && !iban && inner.is_empty() {
        return;
    }
    let mut iban_done = 0;
    let mut at = 0;
    while let Some(i) = next_digit(text, at) {
        let run = run_start(text, i, &PHONE)..run_end(text, i, &PHONE);
        at = run.end.max(i + 1);
        let capitals = i >= 2 && text[i - 2..i].iter().all(u8::is_ascii_uppercase);
        if iban && capitals && i >= iban_done && text.get(i + 1).is_some_and(u8::is_ascii_digit) {
            let r = run_start(text, i, &IBAN)..run_end(text, i, &IBAN);
            iban_done = r.end;
            if r.len() >= 15 {
                out[slot(GuardClass::Iban)].push(r);
            }
        }
        let (digits, dots) = digits_and_dots(&text[run.clone()]);
        if phone && digits >= 8 {
            out[slot(GuardClass::Phone)].push(run.clone());
        }
        for &&(class, set, min_digits, min_dots) in &inner {
            if digits < min_digits || dots < min_dots {
                continue;
            }
            // The class's runs inside this one are runs of the text too: the bytes around it
            // are in no digit class's alphabet here.
            let mut from = run.start;
            while from < run.end {
                let start = (from..run.end)
                    .find(|&k| set[usize::from(text[k])])
                    .unwrap_or(run.end);
                let end = run_end(text, start, set).min(run.end);
                let (d, p) = digits_and_dots(&text[start..end]);
                if start < end && d >= min_digits && p >= min_dots {
                    out[slot(class)].push(start..end);
                }
                from = end + 1;
            }
        }
    }
}

/// The position of the first ASCII digit at or after `from`, eight bytes at a time.
fn next_digit(text: &[u8], from: usize) -> Option<usize> {
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let mut at = from;
    while let Some(chunk) = text.get(at..at + 8) {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let x = u64::from_ne_bytes(word);
        // A byte is a digit if it is below 0x80, at least b'0' and at most b'9': on its low 7
        // bits, `+ (0x80 - b'0')` sets the top bit for the first and `(0x80 + b'9') -` for
        // the second, on all eight bytes at once with no carry or borrow crossing a byte.
        let low7 = x & !HIGH;
        let ge0 = low7 + LOW * (0x80 - u64::from(b'0'));
        let le9 = (LOW * (0x80 + u64::from(b'9'))) - low7;
        if ge0 & le9 & !x & HIGH != 0 {
            break;
        }
        at += 8;
    }
    text.get(at..)?
        .iter()
        .position(u8::is_ascii_digit)
        .map(|i| at + i)
}

/// Runs of hex digits and colons that can hold an address with three groups written out:
/// without `::` an address has all eight groups (the pattern takes no embedded IPv4).
fn ipv6(text: &[u8], out: &mut Vec<Range<usize>>) {
    let mut done = 0;
    for at in memchr::memchr_iter(b':', text) {
        if at < done {
            continue;
        }
        let run = run_start(text, at, &IPV6)..run_end(text, at, &IPV6);
        done = run.end;
        let r = &text[run.clone()];
        let colons = r.iter().filter(|b| **b == b':').count();
        let groups = r.split(|b| *b == b':').filter(|g| !g.is_empty()).count();
        if groups >= 3 && (colons >= 7 || memchr::memmem::find(r, b"::").is_some()) {
            out.push(run);
        }
    }
}

/// Sorts `regions` and joins those that overlap or touch.
fn merge(regions: &mut Vec<Range<usize>>) {
    if regions.len() < 2 {
        return;
    }
    regions.sort_unstable_by_key(|r| r.start);
    let mut merged: Vec<Range<usize>> = Vec::with_capacity(regions.len());
    for r in regions.drain(..) {
        match merged.last_mut() {
            Some(last) if r.start <= last.end => last.end = last.end.max(r.end),
            _ => merged.push(r),
        }
    }
    *regions = merged;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn regions_of(class: GuardClass, text: &str) -> Vec<&str> {
        let s = Scopes::new().unwrap();
        let r = s.regions(text.as_bytes(), &[true; CLASSES]);
        r[slot(class)].iter().map(|r| &text[r.clone()]).collect()
    }

    #[test]
    fn ordinary_numbers_leave_no_region_and_candidates_do() {
        let log = "2026-03-01 12:30:45 took 184 ms, v2.14.3, 1,204,553 rows";
        assert_eq!(regions_of(GuardClass::Ipv4, log), Vec::<&str>::new());
        assert_eq!(regions_of(GuardClass::Ipv6, log), Vec::<&str>::new());
        assert_eq!(regions_of(GuardClass::CreditCard, log), Vec::<&str>::new());
        assert_eq!(
            regions_of(GuardClass::Phone, "call +1 555 123 4567."),
            [" +1 555 123 4567."]
        );
        assert_eq!(
            regions_of(GuardClass::Ipv4, "host 10.0.0.12, ok"),
            ["10.0.0.12"]
        );
        assert_eq!(
            regions_of(GuardClass::Ipv6, "at 2001:db8::1 now"),
            ["2001:db8::1"]
        );
        assert_eq!(
            regions_of(GuardClass::Email, "to: a.b@c.example!"),
            ["a.b@c.example"]
        );
        assert_eq!(
            regions_of(GuardClass::AwsAccessKey, "k=AKIAIOSFODNN7EXAMPLE;"),
            ["AKIAIOSFODNN7EXAMPLE"]
        );
        assert_eq!(
            regions_of(GuardClass::AwsAccessKey, "in Asia"),
            Vec::<&str>::new(),
            "case"
        );
        assert_eq!(
            regions_of(GuardClass::AnthropicKey, "x sk-ant-api03-abc"),
            ["sk-ant-api03-abc"]
        );
        assert_eq!(
            regions_of(GuardClass::SecretAssignment, "my.DB_Password = \"x\""),
            ["my.DB_Password = \"x\""]
        );
    }

    #[test]
    fn the_next_digit_is_found_past_other_bytes() {
        let text = b"abcdefgh/:\x7f\xff ijklmnop 7 qrstuvwxyz0";
        assert_eq!(next_digit(text, 0), Some(22));
        assert_eq!(next_digit(text, 23), Some(text.len() - 1));
        assert_eq!(next_digit(b"no digits at all here", 0), None);
        for b in 0..=255u8 {
            let mut t = [b' '; 16];
            t[9] = b;
            assert_eq!(next_digit(&t, 0).is_some(), b.is_ascii_digit(), "{b}");
        }
    }
}
