//! Linting CI YAML against GitLab's `.gitlab-ci.yml` JSON schema (draft-07, from GitLab's pipeline
//! editor; embedded from `tests/fixtures/gitlab/ci.schema.json`, see its README for provenance).
//!
//! Owns parsing the YAML into JSON and listing every schema violation with its path. The schema is
//! permissive: passing it means GitLab will not reject the file's shape, not that its jobs are right.

use std::sync::OnceLock;

/// GitLab's CI schema.
const SCHEMA: &str = include_str!("../../tests/fixtures/gitlab/ci.schema.json");

/// Why a CI file could not be checked at all.
#[derive(Debug, thiserror::Error)]
pub enum LintError {
    /// Not YAML.
    #[error("not valid YAML: {0}")]
    Yaml(String),
}

fn validator() -> &'static jsonschema::Validator {
    static VALIDATOR: OnceLock<jsonschema::Validator> = OnceLock::new();
    VALIDATOR.get_or_init(|| {
        let schema: serde_json::Value = serde_json::from_str(SCHEMA).expect("the embedded CI schema is JSON");
        jsonschema::draft7::new(&schema).expect("the embedded CI schema compiles")
    })
}

/// Every violation of GitLab's CI schema in `yaml`, as `path: message` (empty when valid).
pub fn lint(yaml: &str) -> Result<Vec<String>, LintError> {
    let mut value: serde_yaml_ng::Value = serde_yaml_ng::from_str(yaml).map_err(|e| LintError::Yaml(e.to_string()))?;
    value.apply_merge().map_err(|e| LintError::Yaml(e.to_string()))?;
    let json = serde_json::to_value(&value).map_err(|e| LintError::Yaml(e.to_string()))?;
    Ok(validator()
        .iter_errors(&json)
        .map(|e| {
            let path = e.instance_path().to_string();
            format!("{}: {e}", if path.is_empty() { "(root)" } else { path.as_str() })
        })
        .collect())
}
