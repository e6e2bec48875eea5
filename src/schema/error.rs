//! Errors of schema generation: cog's message, where it happened, and a hint.

use std::fmt;

/// Classes of schema errors (mirrors cog's error kinds).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// cog.yaml names neither `predict` nor `train`.
    NoReference,
    /// A reference is not `file.py:Name`.
    InvalidReference,
    /// A file could not be read.
    Io,
    /// The source could not be parsed.
    Parse,
    /// The class or function is not in the file.
    PredictorNotFound,
    /// The class lacks the required method.
    MethodNotFound,
    /// The target has no return annotation.
    MissingReturnType,
    /// A parameter has no annotation.
    MissingTypeAnnotation,
    /// A type is not supported.
    UnsupportedType,
    /// `default_factory=` was used.
    DefaultFactoryNotSupported,
    /// `choices=` cannot be evaluated statically.
    ChoicesNotResolvable,
    /// A default cannot be evaluated statically.
    DefaultNotResolvable,
    /// A type name cannot be resolved.
    UnresolvableType,
    /// `accept=` on a non-file input.
    AcceptOnNonFileType,
    /// The document failed OpenAPI validation.
    InvalidSchema,
    /// The pinned cog SDK predates static schemas.
    UnsupportedSdk,
}

impl ErrorKind {
    /// Classifies a type-resolution message.
    pub fn classify(message: &str) -> ErrorKind {
        if message.contains("cannot resolve type") {
            ErrorKind::UnresolvableType
        } else {
            ErrorKind::UnsupportedType
        }
    }

    fn hint(self) -> &'static str {
        match self {
            ErrorKind::NoReference => {
                "add `predict: \"predict.py:Predictor\"` (or `train:`) to cog.yaml"
            }
            ErrorKind::InvalidReference => {
                "write the reference as `file.py:ClassName` or `file.py:function_name`"
            }
            ErrorKind::Io => "check that the file named in cog.yaml exists and is readable",
            ErrorKind::Parse => {
                "check the Python source near this line; cog reads it without running it"
            }
            ErrorKind::PredictorNotFound => {
                "check the name after the `:` in cog.yaml; it must be a top-level class or function of that file"
            }
            ErrorKind::MethodNotFound => {
                "define the method on the class (or on one of its base classes)"
            }
            ErrorKind::MissingReturnType => "add a return annotation, e.g. `-> str`",
            ErrorKind::MissingTypeAnnotation => {
                "annotate the parameter, e.g. `x: str = Input(...)`"
            }
            ErrorKind::UnsupportedType => {
                "use one of the types cog supports (str, int, float, bool, Path, File, Secret, list[...], Optional[...], BaseModel outputs, Iterator[...])"
            }
            ErrorKind::DefaultFactoryNotSupported => {
                "use a literal `default=` instead of `default_factory=`"
            }
            ErrorKind::ChoicesNotResolvable => "use a literal list, e.g. choices=[\"a\", \"b\"]",
            ErrorKind::DefaultNotResolvable => "use a literal default or an Input(...) call",
            ErrorKind::UnresolvableType => {
                "define the type in a local .py module of the project (package __init__.py exports are not followed) or mark it opaque"
            }
            ErrorKind::AcceptOnNonFileType => {
                "remove `accept=` or change the parameter type to Path/File"
            }
            ErrorKind::UnsupportedSdk => {
                "raise build.sdk_version in cog.yaml (or COG_SDK_WHEEL) to 0.17.0 or newer"
            }
            ErrorKind::InvalidSchema => {
                "make every default satisfy its own constraints (ge/le/min_length/max_length/regex/choices)"
            }
        }
    }
}

/// A schema generation failure.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SchemaError {
    /// What went wrong, by class.
    pub kind: ErrorKind,
    /// The message in cog's words.
    pub message: String,
    /// Project-relative file the error is in, if known.
    pub file: Option<String>,
    /// 1-based line, if known.
    pub line: Option<usize>,
    /// Extra context (e.g. a syntax error found while parsing).
    pub note: Option<String>,
}

impl SchemaError {
    /// A new error without location.
    pub fn new(kind: ErrorKind, message: String) -> Self {
        SchemaError {
            kind,
            message,
            file: None,
            line: None,
            note: None,
        }
    }

    /// Adds a location.
    pub fn at(mut self, file: &str, line: Option<usize>) -> Self {
        self.file = Some(file.to_string());
        self.line = line;
        self
    }

    /// Adds a note that the file has a syntax error at `line`.
    pub fn with_syntax_note(mut self, file: &str, line: usize) -> Self {
        self.note = Some(format!(
            "{file}:{line}: syntax error (tree-sitter could not parse this part)"
        ));
        self
    }

    /// Prefixes the message (e.g. `predict schema: `), like cog's wrapping.
    pub fn prefixed(mut self, prefix: &str) -> Self {
        self.message = format!("{prefix}{}", self.message);
        self
    }

    /// The hint shown after the message.
    pub fn hint(&self) -> &'static str {
        self.kind.hint()
    }
}

impl fmt::Display for SchemaError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: ")?,
            (Some(file), None) => write!(f, "{file}: ")?,
            _ => {}
        }
        write!(f, "{}", self.message)?;
        if let Some(note) = &self.note {
            write!(f, "\n  note: {note}")?;
        }
        write!(f, "\n  hint: {}", self.hint())
    }
}

impl std::error::Error for SchemaError {}
