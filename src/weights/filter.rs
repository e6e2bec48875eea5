//! include / exclude matching (§8.4) with the semantics of the gitignore
//! library cog uses: each pattern becomes one regular expression matched
//! against the forward-slash relative path.

use regex::Regex;

/// A compiled list of gitignore-style patterns.
#[derive(Debug, Clone)]
pub struct PatternSet {
    patterns: Vec<Regex>,
}

impl PatternSet {
    /// Compiles patterns; an error names the pattern that does not compile.
    pub fn new(patterns: &[String]) -> Result<Self, String> {
        let patterns = patterns
            .iter()
            .map(|p| p.trim())
            .filter(|p| !p.is_empty() && !p.starts_with('#'))
            .map(|p| {
                Regex::new(&pattern_to_regex(p))
                    .map_err(|e| format!("pattern {p:?} is not valid: {e}"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(PatternSet { patterns })
    }

    /// True if no pattern was given.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// True if any pattern matches the path.
    pub fn matches(&self, path: &str) -> bool {
        self.patterns.iter().any(|re| re.is_match(path))
    }
}

/// Translates one gitignore line into the library's regular expression, step
/// by step in the library's order.
fn pattern_to_regex(pattern: &str) -> String {
    const MAGIC_STAR: &str = "#$~";
    let mut line = pattern.to_string();
    if line.contains('/') && !line.starts_with('/') {
        line = format!("/{line}");
    }
    line = line.replace('.', "\\.");
    if line.starts_with("/**/") {
        line = line[1..].to_string();
    }
    line = line.replace("/**/", "(/|/.+/)");
    line = line.replace("**/", &format!("(|.{MAGIC_STAR}/)"));
    line = line.replace("/**", &format!("(|/.{MAGIC_STAR})"));
    line = line.replace("\\*", &format!("\\{MAGIC_STAR}"));
    line = line.replace('*', "([^/]*)");
    line = line.replace('?', "\\?");
    line = line.replace(MAGIC_STAR, "*");
    let expr = if line.ends_with('/') {
        format!("{line}(|.*)$")
    } else {
        format!("{line}(|/.*)$")
    };
    match expr.strip_prefix('/') {
        Some(rest) => format!("^(|/){rest}"),
        None => format!("^(|.*/){expr}"),
    }
}

/// The include/exclude filter of one source.
#[derive(Debug, Clone)]
pub struct SourceFilter {
    include: PatternSet,
    exclude: PatternSet,
}

impl SourceFilter {
    /// Compiles a filter.
    pub fn new(include: &[String], exclude: &[String]) -> Result<Self, String> {
        Ok(SourceFilter {
            include: PatternSet::new(include)?,
            exclude: PatternSet::new(exclude)?,
        })
    }

    /// A file is kept iff it matches no exclude and (no include or ≥1 include).
    pub fn keeps(&self, path: &str) -> bool {
        !self.exclude.matches(path) && (self.include.is_empty() || self.include.matches(path))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(p: &[&str]) -> PatternSet {
        PatternSet::new(&p.iter().map(|s| s.to_string()).collect::<Vec<_>>()).unwrap()
    }

    #[test]
    fn bare_patterns_match_at_any_depth() {
        let s = set(&["*.bin"]);
        assert!(s.matches("a.bin"));
        assert!(s.matches("x/y/a.bin"));
        assert!(!s.matches("a.binx"));
    }

    #[test]
    fn slash_patterns_are_anchored() {
        let s = set(&["onnx/"]);
        assert!(s.matches("onnx/model.onnx"));
        assert!(!s.matches("sub/onnx/model.onnx"));
        let s = set(&["a/*.json"]);
        assert!(s.matches("a/x.json"));
        assert!(!s.matches("b/a/x.json"));
    }

    #[test]
    fn double_star_spans_segments() {
        let s = set(&["**/config.json"]);
        assert!(s.matches("config.json"));
        assert!(s.matches("a/b/config.json"));
        let s = set(&["a/**/z"]);
        assert!(s.matches("a/z"));
        assert!(s.matches("a/b/c/z"));
    }

    #[test]
    fn exact_names_match_files_and_directories() {
        let s = set(&["README.md"]);
        assert!(s.matches("README.md"));
        assert!(s.matches("d/README.md"));
        assert!(!s.matches("README.mdx"));
    }
}
