//! Where a built-in class's values can be in a text, found without a regex: the regions a
//! class's pattern is then run on, so that ordinary text costs a few passes over its bytes
//! instead of every pattern's search.
//!
//! Two kinds of class:
//! - classes with a literal (the secrets' prefixes `AKIA`, `ghp_`, `sk-`, `eyJ`,
//!   `-----BEGIN`, the names a secret is assigned to, `@` of an email): one Aho-Corasick pass
//!   (and one `memchr` for `@`) finds the literals, and a region runs from where a match
//!   holding that literal can start to where it must end;
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
    (GuardClass::PrivateKey, true, &["-----BEGIN"]),
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

/// The literal scanner, built once per detector.
#[derive(Debug)]
pub struct Scopes {
    literals: AhoCorasick,
    /// Per literal (pattern id of `literals`): its class, and its text if its case must match.
    meta: Vec<(GuardClass, Option<&'static str>)>,
}

/// Regions per class (index: [`slot`]).
pub type Regions = [Vec<Range<usize>>; CLASSES];

impl Scopes {
    pub fn new() -> Result<Self, aho_corasick::BuildError> {
        let mut texts = Vec::new();
        let mut meta = Vec::new();
        for (class, exact, list) in LITERALS {
            for text in *list {
                texts.push(*text);
                meta.push((*class, exact.then_some(*text)));
            }
        }
        let literals = AhoCorasickBuilder::new()
            .ascii_case_insensitive(true)
            .match_kind(MatchKind::Standard)
            .kind(Some(AhoCorasickKind::DFA))
            .build(&texts)?;
        Ok(Self { literals, meta })
    }

    /// The regions of every class `wanted` (by [`slot`]) in `text`.
    pub fn regions(&self, text: &[u8], wanted: &[bool; CLASSES]) -> Regions {
        let mut out: Regions = Default::default();
        let want = |c: GuardClass| wanted[slot(c)];
        if want(GuardClass::Email) {
            emails(text, &mut out[slot(GuardClass::Email)]);
        }
        let literal_classes = [
            GuardClass::AwsAccessKey,
            GuardClass::GithubToken,
            GuardClass::GitlabToken,
            GuardClass::SlackToken,
            GuardClass::OpenaiKey,
            GuardClass::AnthropicKey,
            GuardClass::PrivateKey,
            GuardClass::Jwt,
            GuardClass::SecretAssignment,
        ];
        if literal_classes.into_iter().any(want) {
            self.literal_regions(text, wanted, &mut out);
        }
        if [GuardClass::Phone, GuardClass::CreditCard, GuardClass::UsSsn]
            .into_iter()
            .chain([GuardClass::Ipv4, GuardClass::Iban])
            .any(want)
        {
            digit_runs(text, wanted, &mut out);
        }
        if want(GuardClass::Ipv6) {
            ipv6(text, &mut out[slot(GuardClass::Ipv6)]);
        }
        for regions in &mut out {
            merge(regions);
        }
        out
    }

    fn literal_regions(&self, text: &[u8], wanted: &[bool; CLASSES], out: &mut Regions) {
        for hit in self.literals.find_overlapping_iter(text) {
            let Some(&(class, exact)) = self.meta.get(hit.pattern().as_usize()) else {
                continue;
            };
            let (at, end) = (hit.start(), hit.end());
            if exact.is_some_and(|e| e.as_bytes() != &text[at..end]) {
                continue;
            }
            let classes: &[GuardClass] = match class {
                GuardClass::OpenaiKey => &[GuardClass::OpenaiKey, GuardClass::AnthropicKey],
                GuardClass::AwsAccessKey => &[GuardClass::AwsAccessKey],
                GuardClass::GithubToken => &[GuardClass::GithubToken],
                GuardClass::GitlabToken => &[GuardClass::GitlabToken],
                GuardClass::SlackToken => &[GuardClass::SlackToken],
                GuardClass::PrivateKey => &[GuardClass::PrivateKey],
                GuardClass::Jwt => &[GuardClass::Jwt],
                _ => &[GuardClass::SecretAssignment],
            };
            for &c in classes {
                if !wanted[slot(c)] {
                    continue;
                }
                let region = match c {
                    // The block runs to its END line or to the end of the text.
                    GuardClass::PrivateKey => at..text.len(),
                    GuardClass::SecretAssignment => assignment(text, at, end),
                    _ => at..run_end(text, end, &TOKEN),
                };
                out[slot(c)].push(region);
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

/// How a run of one digit class is judged.
struct DigitClass {
    class: GuardClass,
    set: ByteSet,
    /// Whether the run can hold a valid value (a necessary condition only).
    keep: fn(&[u8]) -> bool,
}

fn count(run: &[u8], f: impl Fn(u8) -> bool) -> usize {
    run.iter().filter(|b| f(**b)).count()
}

const DIGIT_CLASSES: [DigitClass; 5] = [
    // The number (before an extension) has 8-15 digits.
    DigitClass {
        class: GuardClass::Phone,
        set: PHONE,
        keep: |r| count(r, |b| b.is_ascii_digit()) >= 8,
    },
    DigitClass {
        class: GuardClass::CreditCard,
        set: CARD,
        keep: |r| count(r, |b| b.is_ascii_digit()) >= 12,
    },
    DigitClass {
        class: GuardClass::UsSsn,
        set: SSN,
        keep: |r| r.len() >= 11,
    },
    DigitClass {
        class: GuardClass::Ipv4,
        set: IPV4,
        keep: |r| r.len() >= 7 && count(r, |b| b == b'.') >= 3,
    },
    // Two letters and two digits, then at least 11 more.
    DigitClass {
        class: GuardClass::Iban,
        set: IBAN,
        keep: |r| {
            r.len() >= 15
                && r.windows(4).any(|w| {
                    w[0].is_ascii_uppercase()
                        && w[1].is_ascii_uppercase()
                        && w[2].is_ascii_digit()
                        && w[3].is_ascii_digit()
                })
        },
    },
];

/// The runs of each digit class's alphabet that hold a digit and pass the class's test.
fn digit_runs(text: &[u8], wanted: &[bool; CLASSES], out: &mut Regions) {
    // Per digit class: the end of the last run looked at (a digit before it is in it).
    let mut done = [0usize; DIGIT_CLASSES.len()];
    let mut skip = [true; DIGIT_CLASSES.len()];
    for (s, d) in skip.iter_mut().zip(&DIGIT_CLASSES) {
        *s = !wanted[slot(d.class)];
    }
    for (i, b) in text.iter().enumerate() {
        if !b.is_ascii_digit() {
            continue;
        }
        for (k, d) in DIGIT_CLASSES.iter().enumerate() {
            if skip[k] || i < done[k] {
                continue;
            }
            let run = run_start(text, i, &d.set)..run_end(text, i, &d.set);
            done[k] = run.end;
            if (d.keep)(&text[run.clone()]) {
                out[slot(d.class)].push(run);
            }
        }
    }
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
        let colons = count(r, |b| b == b':');
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
}
