//! Release tags in CI: the regular expression a component's `git_tag` format matches, and the `sed`
//! substitution that turns such a tag into the image tag its `image_tag` format gives.
//!
//! Owns translating the catalog's tag formats (validated: letters, digits, `_`, `.`, `-` and the
//! placeholders `{version}`, `{major}`, `{minor}`, `{patch}`) into text the pipeline evaluates (GitLab's
//! RE2 in `rules:`, POSIX ERE in `sed -E`; the expression is valid in both). Must not render templates.

/// A semantic version as four groups: major, minor, patch, and pre-release/build suffix.
const VERSION_GROUPS: &str = r"([0-9]+)\.([0-9]+)\.([0-9]+)([-+][0-9A-Za-z.+-]+)?";
const NUMBER_GROUP: &str = "([0-9]+)";

/// A `git_tag` format that cannot yield the `image_tag` format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("image_tag {image_tag:?} uses {{{missing}}}, which git_tag {git_tag:?} does not carry")]
pub struct TagError {
    /// The git tag format.
    pub git_tag: String,
    /// The image tag format.
    pub image_tag: String,
    /// The placeholder the git tag lacks.
    pub missing: String,
}

/// How a pipeline recognises a release tag and derives its image tag.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TagPattern {
    /// Anchored expression matching the release tags (`^v([0-9]+)…$`).
    pub regex: String,
    /// `s/<regex>/<image tag>/p` for `sed -nE`.
    pub sed: String,
}

enum Segment<'a> {
    Literal(&'a str),
    Placeholder(&'a str),
}

fn segments(format: &str) -> Vec<Segment<'_>> {
    let mut out = Vec::new();
    let mut rest = format;
    while let Some(open) = rest.find('{') {
        let Some(close) = rest[open..].find('}') else { break };
        if open > 0 {
            out.push(Segment::Literal(&rest[..open]));
        }
        out.push(Segment::Placeholder(&rest[open + 1..open + close]));
        rest = &rest[open + close + 1..];
    }
    if !rest.is_empty() {
        out.push(Segment::Literal(rest));
    }
    out
}

fn escape(literal: &str) -> String {
    literal.chars().flat_map(|c| if c == '.' { vec!['\\', '.'] } else { vec![c] }).collect()
}

impl TagPattern {
    /// Builds the pattern of `git_tag` and the image tag substitution of `image_tag`.
    pub fn new(git_tag: &str, image_tag: &str) -> Result<TagPattern, TagError> {
        let mut regex = String::from("^");
        // First group number of each part: major, minor, patch, suffix.
        let mut groups: [Option<usize>; 4] = [None; 4];
        let mut next = 1;
        for segment in segments(git_tag) {
            match segment {
                Segment::Literal(text) => regex.push_str(&escape(text)),
                Segment::Placeholder("version") => {
                    regex.push_str(VERSION_GROUPS);
                    for (i, group) in groups.iter_mut().enumerate() {
                        group.get_or_insert(next + i);
                    }
                    next += 4;
                }
                Segment::Placeholder(part) => {
                    regex.push_str(NUMBER_GROUP);
                    let index = match part {
                        "major" => 0,
                        "minor" => 1,
                        _ => 2,
                    };
                    groups[index].get_or_insert(next);
                    next += 1;
                }
            }
        }
        regex.push('$');
        let missing = |name: &str| TagError {
            git_tag: git_tag.to_owned(),
            image_tag: image_tag.to_owned(),
            missing: name.to_owned(),
        };
        let group = |index: usize, name: &str| match groups[index] {
            Some(n) if n <= 9 => Ok(format!("\\{n}")),
            _ => Err(missing(name)),
        };
        let mut replacement = String::new();
        for segment in segments(image_tag) {
            match segment {
                Segment::Literal(text) => replacement.push_str(text),
                Segment::Placeholder("version") => {
                    replacement.push_str(&group(0, "version")?);
                    replacement.push('.');
                    replacement.push_str(&group(1, "version")?);
                    replacement.push('.');
                    replacement.push_str(&group(2, "version")?);
                    if groups[3].is_some() {
                        replacement.push_str(&group(3, "version")?);
                    }
                }
                Segment::Placeholder(part) => {
                    let index = match part {
                        "major" => 0,
                        "minor" => 1,
                        _ => 2,
                    };
                    replacement.push_str(&group(index, part)?);
                }
            }
        }
        let sed = format!("s/{regex}/{replacement}/p");
        Ok(TagPattern { regex, sed })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_formats() {
        let p = TagPattern::new("v{version}", "{version}").unwrap();
        assert_eq!(p.regex, r"^v([0-9]+)\.([0-9]+)\.([0-9]+)([-+][0-9A-Za-z.+-]+)?$");
        assert_eq!(p.sed, r"s/^v([0-9]+)\.([0-9]+)\.([0-9]+)([-+][0-9A-Za-z.+-]+)?$/\1.\2.\3\4/p");
    }

    #[test]
    fn parts_and_prefixes() {
        let p = TagPattern::new("agent-v{version}", "release-{major}.{minor}").unwrap();
        assert!(p.regex.starts_with("^agent-v("));
        assert!(p.sed.ends_with(r"/release-\1.\2/p"));
        let p = TagPattern::new("r{major}.{minor}.{patch}", "{version}").unwrap();
        assert_eq!(p.regex, r"^r([0-9]+)\.([0-9]+)\.([0-9]+)$");
        assert!(p.sed.ends_with(r"/\1.\2.\3/p"));
    }

    #[test]
    fn image_tag_needing_a_missing_part_is_refused() {
        let e = TagPattern::new("release-{major}.{minor}", "{version}").unwrap_err();
        assert_eq!(e.missing, "version");
        assert!(e.to_string().contains("uses {version}"), "{e}");
    }
}
