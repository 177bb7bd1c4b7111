//! The errors the catalog reports to people: where, what was expected, what was found.
//!
//! Owns their shape and wording conventions. Must not decide what is valid (see `validate`).

use std::fmt;

use serde::Serialize;

/// One problem: where, what was expected, what was found.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct FieldError {
    /// Dotted path with `[i]` indexes, e.g. `components.api.container.ports[0]`; `(file)` for the
    /// document as a whole.
    pub path: String,
    /// What would have been valid.
    pub expected: String,
    /// What was there: quoted text, a number, `a list`, `nothing`, …
    pub found: String,
}

impl FieldError {
    /// Builds an error.
    pub fn new(path: impl Into<String>, expected: impl Into<String>, found: impl Into<String>) -> FieldError {
        FieldError { path: path.into(), expected: expected.into(), found: found.into() }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: expected {}, found {}", self.path, self.expected, self.found)
    }
}

impl std::error::Error for FieldError {}

/// All problems of a catalog (never empty). Display: one FieldError per line.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct CatalogErrors(pub Vec<FieldError>);

impl fmt::Display for CatalogErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, error) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("\n")?;
            }
            write!(f, "{error}")?;
        }
        Ok(())
    }
}

impl std::error::Error for CatalogErrors {}
