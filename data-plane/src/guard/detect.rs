//! The detector: every built-in class's pattern and validator, and the policies' custom
//! patterns, compiled once per snapshot into one `Regex` per pattern.
//!
//! A built-in pattern is not run over a whole text: [`scope`] first finds, without a regex,
//! the few regions where a value of its class can be (around a literal such as `AKIA` or `@`,
//! or a run of digits and separators long enough for the class), and the pattern runs on
//! those only. Ordinary text (code, logs, prose, numbers, dates, versions) mostly has no
//! region at all, so finding nothing costs a few passes over the bytes. Custom patterns run
//! over the whole text.
//!
//! Patterns are ASCII-only (`(?-u)`): they read bytes, and a match is the same whether the
//! text is valid UTF-8 or not.

use std::ops::Range;

use proto::GuardClass;
use regex::bytes::{Regex, RegexBuilder};

use super::check::{self, Check};
use super::scope::{self, Scopes, CLASSES};

/// What a pattern finds: a built-in class, or a policy's custom pattern (by its index in
/// [`Detector::custom_names`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Kind {
    Builtin(GuardClass),
    Custom(usize),
}

/// One pattern: its class, what part of a match is the value (capture group), and its
/// validator.
#[derive(Debug)]
struct Pattern {
    kind: Kind,
    regex: Regex,
    group: usize,
    check: Check,
}

/// A detected value: its class and its byte range in the text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Found {
    pub kind: Kind,
    pub span: Range<usize>,
}

/// The compiled patterns of one snapshot.
#[derive(Debug)]
pub struct Detector {
    scopes: Scopes,
    /// The built-in classes' patterns in [`GuardClass::ALL`] order, then the custom ones.
    patterns: Vec<Pattern>,
    /// Each custom pattern's class name.
    pub custom_names: Vec<String>,
}

/// Names a secret may be assigned to (`password = …`, `"api_key": "…"`, `GITHUB_TOKEN=…`).
const SECRET_NAMES: &str = r"(?:password|passwd|passwort|pwd|secret|token|api[_-]?key|apikey|access[_-]?key|auth[_-]?key|credentials?|private[_-]?key)";

/// The pattern, the capture group holding the value, and the validator of a built-in class.
fn builtin(class: GuardClass) -> (String, usize, Check) {
    let (pattern, group, check): (String, usize, Check) = match class {
        GuardClass::Email => (
            r"[A-Za-z0-9][A-Za-z0-9._%+-]{0,63}@[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,62}[A-Za-z0-9])?)*\.[A-Za-z]{2,24}\b".into(),
            0,
            email,
        ),
        GuardClass::Phone => (
            r"(?:\+|\b00)?(?:\(\d{1,5}\)[ .-]?|\b)\d{1,12}(?:(?:[ .-]|[ ]?\(\d{1,5}\)[ ]?)\d{1,10}){0,6}(?:[ ]?(?:x|ext\.?)[ ]?\d{1,6})?\b".into(),
            0,
            check::phone,
        ),
        GuardClass::CreditCard => (r"\b\d(?:[ -]?\d){11,18}\b".into(), 0, check::credit_card),
        GuardClass::Iban => (
            r"\b[A-Z]{2}\d{2}(?:[A-Z0-9]{11,30}|(?: [A-Z0-9]{4}){2,7}(?: [A-Z0-9]{1,4})?)\b".into(),
            0,
            check::iban,
        ),
        GuardClass::UsSsn => (r"\b\d{3}-\d{2}-\d{4}\b".into(), 0, check::us_ssn),
        GuardClass::Ipv4 => (
            r"\b\d{1,3}\.\d{1,3}\.\d{1,3}\.\d{1,3}\b".into(),
            0,
            check::ipv4,
        ),
        GuardClass::Ipv6 => (
            r"(?i)(?:[0-9a-f]{1,4}:){1,7}(?:(?::[0-9a-f]{1,4}){1,6}|[0-9a-f]{1,4}|:)|::(?:[0-9a-f]{1,4}:){0,5}[0-9a-f]{1,4}".into(),
            0,
            check::ipv6,
        ),
        GuardClass::AwsAccessKey => (
            r"\b(?:AKIA|ASIA|ABIA|ACCA|A3T[A-Z0-9])[A-Z0-9]{16}\b".into(),
            0,
            check::any,
        ),
        GuardClass::GithubToken => (
            r"\b(?:gh[pousr]_[A-Za-z0-9]{36,251}|github_pat_[A-Za-z0-9_]{22,255})\b".into(),
            0,
            check::any,
        ),
        GuardClass::GitlabToken => (
            r"\b(?:glpat|gldt|glrt|glptt|glft|glsoat|gloas)-[A-Za-z0-9_-]{20,64}".into(),
            0,
            check::any,
        ),
        GuardClass::SlackToken => (
            r"\bxox(?:[abposr]|e\.xoxp)-[A-Za-z0-9-]{10,250}|https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9/_-]{20,}".into(),
            0,
            check::any,
        ),
        GuardClass::OpenaiKey => (
            r"\bsk-(?:(?:proj|svcacct|admin|None)-[A-Za-z0-9_-]{20,}|[A-Za-z0-9]{20}T3BlbkFJ[A-Za-z0-9]{20}|[A-Za-z0-9]{32,})".into(),
            0,
            check::any,
        ),
        GuardClass::AnthropicKey => (
            r"\bsk-ant-(?:api|admin|oat|sid)\d{2}-[A-Za-z0-9_-]{32,}".into(),
            0,
            check::any,
        ),
        GuardClass::PrivateKey => (
            r"-----BEGIN[ A-Z0-9]{0,30} PRIVATE KEY(?: BLOCK)?-----(?s:.*?)(?:-----END[ A-Z0-9]{0,30} PRIVATE KEY(?: BLOCK)?-----|\z)".into(),
            0,
            check::any,
        ),
        GuardClass::Jwt => (
            r"\beyJ[A-Za-z0-9_-]{5,}\.eyJ[A-Za-z0-9_-]{5,}\.[A-Za-z0-9_-]{10,}".into(),
            0,
            check::any,
        ),
        GuardClass::SecretAssignment => (
            format!(
                r#"(?i)[A-Za-z0-9_.-]*{SECRET_NAMES}[A-Za-z0-9_.-]*(?:\\?["'])?\]?[ \t]*(?:=|:=|:|=>)[ \t]*(?:\\?["'])?([^\s"'`,;\\<>\[\]{{}}]{{8,200}})"#
            ),
            1,
            secret,
        ),
    };
    (format!("(?-u){pattern}"), group, check)
}

fn email(hay: &[u8], m: Range<usize>) -> bool {
    let before = m.start.checked_sub(1).and_then(|i| hay.get(i)).copied();
    // `user@host:path` (a git remote) and `@scope/pkg` are not addresses.
    !matches!(before, Some(b'.' | b'-' | b'+' | b'%' | b'_'))
        && !hay[m.clone()].contains(&b'/')
        && hay.get(m.end) != Some(&b'@')
}

fn secret(hay: &[u8], m: Range<usize>) -> bool {
    check::secret_value(&hay[m])
}

/// Whether `name` (an object member's name) names a secret.
pub fn secret_name(name: &str) -> bool {
    let lower = name.to_ascii_lowercase();
    [
        "password",
        "passwd",
        "passwort",
        "pwd",
        "secret",
        "token",
        "api_key",
        "apikey",
        "api-key",
        "access_key",
        "auth_key",
        "credential",
        "private_key",
    ]
    .iter()
    .any(|n| lower.contains(n))
}

/// A pattern that does not compile (a custom one, in practice).
#[derive(Debug, thiserror::Error)]
pub enum BadPattern {
    #[error("custom pattern `{name}`: {source}")]
    Regex {
        name: String,
        #[source]
        source: regex::Error,
    },
    #[error("guardrail literals: {0}")]
    Literals(#[from] aho_corasick::BuildError),
}

impl Detector {
    /// Compiles every built-in class and the custom patterns `(name, regex)`.
    pub fn new(custom: &[(String, String)]) -> Result<Self, BadPattern> {
        let mut patterns = Vec::new();
        let size = 1 << 22;
        for class in GuardClass::ALL {
            let (source, group, check) = builtin(class);
            let regex = RegexBuilder::new(&source)
                .size_limit(size)
                .build()
                .map_err(|source| BadPattern::Regex {
                    name: class.name().to_owned(),
                    source,
                })?;
            patterns.push(Pattern {
                kind: Kind::Builtin(class),
                regex,
                group,
                check,
            });
        }
        for (i, (name, source)) in custom.iter().enumerate() {
            let bad = |source| BadPattern::Regex {
                name: name.clone(),
                source,
            };
            let regex = RegexBuilder::new(source)
                .size_limit(size)
                .build()
                .map_err(bad)?;
            patterns.push(Pattern {
                kind: Kind::Custom(i),
                regex,
                group: 0,
                check: check::any,
            });
        }
        Ok(Self {
            scopes: Scopes::new()?,
            patterns,
            custom_names: custom.iter().map(|(n, _)| n.clone()).collect(),
        })
    }

    /// Whether `text` holds a value of a `wanted` kind (stops at the first).
    pub fn any(&self, text: &[u8], wanted: impl Fn(Kind) -> bool) -> bool {
        !self.search(text, wanted, true).is_empty()
    }

    /// Every value of a `wanted` kind in `text`, validated, without overlaps (where two
    /// overlap, the class listed first in [`GuardClass::ALL`] keeps it, then custom ones), in
    /// text order.
    pub fn find(&self, text: &[u8], wanted: impl Fn(Kind) -> bool) -> Vec<Found> {
        let mut found = self.search(text, wanted, false);
        found.sort_by_key(|f| f.span.start);
        found
    }

    fn search(&self, text: &[u8], wanted: impl Fn(Kind) -> bool, first: bool) -> Vec<Found> {
        let mut builtin = [false; CLASSES];
        for class in GuardClass::ALL {
            builtin[scope::slot(class)] = wanted(Kind::Builtin(class));
        }
        let regions = self.scopes.regions(text, &builtin);
        let mut found: Vec<Found> = Vec::new();
        for p in &self.patterns {
            match p.kind {
                Kind::Builtin(class) => {
                    if !builtin[scope::slot(class)] {
                        continue;
                    }
                    let mut at = 0;
                    for region in &regions[scope::slot(class)] {
                        at = p.each_in(text, region, at, &mut found, first);
                    }
                }
                Kind::Custom(_) if wanted(p.kind) => {
                    p.each_in(text, &(0..text.len()), 0, &mut found, first);
                }
                Kind::Custom(_) => {}
            }
            if first && !found.is_empty() {
                break;
            }
        }
        found
    }
}

impl Pattern {
    /// Adds to `found` every validated value whose match starts in `region` (at `from` or
    /// after) and overlaps nothing found before, the search seeing one byte past the region
    /// (a word boundary's context), and returns where the next search starts. With `first`,
    /// stops at the first value.
    fn each_in(
        &self,
        text: &[u8],
        region: &Range<usize>,
        from: usize,
        found: &mut Vec<Found>,
        first: bool,
    ) -> usize {
        let hay = &text[..(region.end + 1).min(text.len())];
        let mut at = from.max(region.start);
        while at <= region.end {
            let span = if self.group == 0 {
                let Some(m) = self.regex.find_at(hay, at) else {
                    break;
                };
                if m.start() >= region.end {
                    break;
                }
                at = if m.is_empty() { m.end() + 1 } else { m.end() };
                m.range()
            } else {
                let Some(caps) = self.regex.captures_at(hay, at) else {
                    break;
                };
                let Some(whole) = caps.get(0) else { break };
                if whole.start() >= region.end {
                    break;
                }
                at = if whole.is_empty() {
                    whole.end() + 1
                } else {
                    whole.end()
                };
                let Some(m) = caps.get(self.group) else {
                    continue;
                };
                m.range()
            };
            if span.is_empty() || !(self.check)(text, span.clone()) {
                continue;
            }
            if found
                .iter()
                .all(|f| f.span.end <= span.start || span.end <= f.span.start)
            {
                found.push(Found {
                    kind: self.kind,
                    span,
                });
                if first {
                    break;
                }
            }
        }
        at
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn classes(d: &Detector, text: &str) -> Vec<(String, String)> {
        d.find(text.as_bytes(), |_| true)
            .into_iter()
            .map(|f| {
                let name = match f.kind {
                    Kind::Builtin(c) => c.name().to_owned(),
                    Kind::Custom(i) => d.custom_names[i].clone(),
                };
                (name, text[f.span].to_owned())
            })
            .collect()
    }

    #[test]
    fn each_class_is_found_and_ordinary_text_is_not() {
        let d = Detector::new(&[("employee".into(), r"\bEMP-\d{6}\b".into())]).unwrap();
        let text = "mail jane.doe@example.org or call +1-555-123-4567; card 4111 1111 1111 1111, \
            IBAN DE89370400440532013000, SSN 123-45-6789, host 10.0.0.12 / 2001:db8::8a2e:370:7334, \
            AKIAIOSFODNN7EXAMPLE ghp_abcdefghijklmnopqrstuvwxyz0123456789 \
            glpat-abcdefghij0123456789 xoxb-123456789012-abcdefghijkl \
            sk-proj-abcdefghijklmnopqrstuvwxyz0123456789 \
            sk-ant-api03-abcdefghijklmnopqrstuvwxyz0123456789ABCDEF \
            eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxMjM0NTY3ODkwIn0.dozjgNryP4J3jVmNHl0w5N_XgL0n3I9PlFUP0THsR8U \
            password = \"hX9$kq2Lp!zR\" EMP-123456";
        let got = classes(&d, text);
        let names: Vec<&str> = got.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(
            names,
            [
                "email",
                "phone",
                "credit_card",
                "iban",
                "us_ssn",
                "ipv4",
                "ipv6",
                "aws_access_key",
                "github_token",
                "gitlab_token",
                "slack_token",
                "openai_key",
                "anthropic_key",
                "jwt",
                "secret_assignment",
                "employee"
            ],
            "{got:?}"
        );
        assert_eq!(got[14].1, "hX9$kq2Lp!zR", "only the value");
        let pem = "key:\n-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA\n-----END RSA PRIVATE KEY-----\nend";
        assert_eq!(classes(&d, pem)[0].0, "private_key");
        let plain = "Release v1.2.3 on 2024-01-15 12:30:45, id 550e8400-e29b-41d4-a716-446655440000, \
            sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08, total 1234567 of 98765, \
            took 1733389200 ms, std::vector<int> a::b, token = get_token()";
        assert_eq!(classes(&d, plain), Vec::<(String, String)>::new());
    }
}
