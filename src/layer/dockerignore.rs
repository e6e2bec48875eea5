//! `.dockerignore` matching with Docker's rules.
//!
//! Lines: a UTF-8 BOM on the first line is dropped, lines starting with `#`
//! are comments, surrounding whitespace is trimmed, blank lines are skipped.
//! A leading `!` re-includes. Patterns are cleaned like Go's
//! `filepath.Clean` and a leading `/` is dropped, so every pattern is
//! anchored at the context root. Globs follow Go's `filepath.Match` (`*` and
//! `?` never cross `/`, `[...]` classes, `\` escapes) plus `**`, which
//! matches any number of path components. A path is excluded when the last
//! pattern matching it or one of its parent directories is an exclusion.

use super::LayerError;
use regex::Regex;

/// One compiled pattern.
#[derive(Debug, Clone)]
struct Pattern {
    regex: Regex,
    negated: bool,
}

/// A compiled `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct DockerIgnore {
    patterns: Vec<Pattern>,
}

impl DockerIgnore {
    /// Parses the contents of a `.dockerignore`; `file` names it in errors.
    pub fn parse(text: &str, file: &str) -> Result<Self, LayerError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            if raw.starts_with('#') {
                continue;
            }
            let line = raw.trim();
            if line.is_empty() {
                continue;
            }
            let bad = |reason: String| LayerError::BadPattern {
                file: file.to_string(),
                line: i + 1,
                pattern: line.to_string(),
                reason,
            };
            let (negated, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let mut cleaned = clean(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            if negated && cleaned == "." && body.is_empty() {
                return Err(bad("a lone `!` excludes nothing".into()));
            }
            let regex = compile(&cleaned).map_err(bad)?;
            patterns.push(Pattern { regex, negated });
        }
        Ok(DockerIgnore { patterns })
    }

    /// True if no pattern can re-include a path (so an excluded directory
    /// can be skipped without looking inside).
    pub fn has_reincludes(&self) -> bool {
        self.patterns.iter().any(|p| p.negated)
    }

    /// True if `path` (relative to the context root, `/`-separated) is
    /// excluded.
    pub fn is_excluded(&self, path: &str) -> bool {
        let path = clean(path);
        if path == "." {
            return false;
        }
        let parents: Vec<&str> = match path.rfind('/') {
            Some(i) => ancestors(&path[..i]),
            None => Vec::new(),
        };
        let mut excluded = false;
        for p in &self.patterns {
            if p.negated != excluded {
                continue;
            }
            let hit = p.regex.is_match(&path) || parents.iter().any(|d| p.regex.is_match(d));
            if hit {
                excluded = !p.negated;
            }
        }
        excluded
    }
}

/// `a/b/c` → `["a", "a/b", "a/b/c"]`.
fn ancestors(dir: &str) -> Vec<&str> {
    dir.match_indices('/')
        .map(|(i, _)| &dir[..i])
        .chain(std::iter::once(dir))
        .collect()
}

/// Lexical path cleaning like Go's `filepath.Clean` on Unix.
pub fn clean(path: &str) -> String {
    if path.is_empty() {
        return ".".into();
    }
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|p| *p != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let joined = parts.join("/");
    match (rooted, joined.is_empty()) {
        (true, _) => format!("/{joined}"),
        (false, true) => ".".into(),
        (false, false) => joined,
    }
}

/// Translates a cleaned pattern into an anchored regex.
fn compile(pattern: &str) -> Result<Regex, String> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut re = String::from("^");
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        match c {
            '*' if chars.get(i + 1) == Some(&'*') => {
                i += 1;
                if chars.get(i + 1) == Some(&'/') {
                    i += 1;
                }
                if i + 1 == chars.len() {
                    re.push_str(".*");
                } else {
                    re.push_str("(.*/)?");
                }
            }
            '*' => re.push_str("[^/]*"),
            '?' => re.push_str("[^/]"),
            '\\' => match chars.get(i + 1) {
                Some(next) => {
                    re.push_str(&regex::escape(&next.to_string()));
                    i += 1;
                }
                None => re.push_str("\\\\"),
            },
            '[' => {
                let (class, next) = char_class(&chars, i)?;
                re.push_str(&class);
                i = next;
                continue;
            }
            other => re.push_str(&regex::escape(&other.to_string())),
        }
        i += 1;
    }
    re.push('$');
    Regex::new(&re).map_err(|e| format!("cannot compile: {e}"))
}

/// Translates a Go `filepath.Match` class starting at `start` (`[`); returns
/// the regex class and the index after the closing `]`.
fn char_class(chars: &[char], start: usize) -> Result<(String, usize), String> {
    let mut i = start + 1;
    let mut out = String::from("[");
    if chars.get(i) == Some(&'^') {
        out.push('^');
        i += 1;
    }
    let mut first = true;
    loop {
        let Some(&c) = chars.get(i) else {
            return Err("unterminated character class `[`".into());
        };
        match c {
            ']' if !first => return Ok((out + "]", i + 1)),
            '\\' => {
                let Some(&n) = chars.get(i + 1) else {
                    return Err("escape at end of character class".into());
                };
                out.push_str(&class_char(n));
                i += 2;
            }
            '-' if !first && chars.get(i + 1) != Some(&']') => {
                out.push('-');
                i += 1;
            }
            ']' | '-' => return Err(format!("misplaced `{c}` in character class")),
            other => {
                out.push_str(&class_char(other));
                i += 1;
            }
        }
        first = false;
    }
}

fn class_char(c: char) -> String {
    if c.is_ascii_alphanumeric() {
        c.to_string()
    } else {
        format!("\\{c}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_matches_go() {
        assert_eq!(clean("./a//b/"), "a/b");
        assert_eq!(clean("a/../../b"), "../b");
        assert_eq!(clean("/../a"), "/a");
        assert_eq!(clean(""), ".");
    }

    #[test]
    fn last_match_wins_and_parents_count() {
        let d = DockerIgnore::parse("data\n!data/keep.txt\n", ".dockerignore").unwrap();
        assert!(d.is_excluded("data/x.bin"));
        assert!(!d.is_excluded("data/keep.txt"));
        assert!(!d.is_excluded("other"));
    }

    #[test]
    fn lone_bang_is_an_error_with_line() {
        let err = DockerIgnore::parse("a\n!\n", ".dockerignore")
            .unwrap_err()
            .to_string();
        assert!(err.contains(".dockerignore:2"), "{err}");
    }
}
