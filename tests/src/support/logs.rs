//! Reading the tails of log files for failure output.
//!
//! Nothing here fails: a missing or unreadable log becomes a note in the output, because this
//! runs while a test is already failing and must not hide the original error.

use std::path::Path;

/// How many lines of each log a failing test prints.
pub const TAIL_LINES: usize = 50;

/// The last `lines` lines of the file, or a note saying why there are none.
pub fn tail(path: &Path, lines: usize) -> String {
    match std::fs::read(path) {
        Ok(bytes) => {
            let text = String::from_utf8_lossy(&bytes);
            let all: Vec<&str> = text.lines().collect();
            let start = all.len().saturating_sub(lines);
            let mut out = all[start..].join("\n");
            if !out.is_empty() {
                out.push('\n');
            }
            out
        }
        Err(err) => format!("(cannot read {}: {err})\n", path.display()),
    }
}

/// A headed block with the tail of one log, ready to print.
pub fn tail_section(title: &str, path: &Path, lines: usize) -> String {
    let body = tail(path, lines);
    let body = if body.is_empty() {
        "(empty)\n".to_owned()
    } else {
        body
    };
    format!(
        "----- {title}: last {lines} lines of {} -----\n{body}",
        path.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keeps_the_last_lines_and_survives_missing_files() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.log");
        std::fs::write(&path, "a\nb\nc\n").unwrap();
        assert_eq!(tail(&path, 2), "b\nc\n");
        assert_eq!(tail(&path, 10), "a\nb\nc\n");
        assert!(tail(&dir.path().join("missing"), 2).contains("cannot read"));
    }
}
