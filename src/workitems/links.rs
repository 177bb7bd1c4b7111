//! References to work items in text people write: MR titles, branch names and commit messages.
//!
//! Pure and table-tested. Recognised forms (ASCII around the reference; any other text, Chinese
//! included, may surround it):
//!
//! - `--story=1007`, `--bug=1007`, `--task=1007`: TAPD's source-code keywords (kind known);
//! - `story-1007`, `bug_1007`, `task/1007` (case-insensitive), as in branch names `feature/story-1007-login`;
//! - `#1007`: a short id of any kind (not after a letter or digit, so `group/p#12` and `&#123;` are not);
//! - a TAPD long id, 19 digits starting with `1` (`1151234567001000101`), bare or in a TAPD URL.
//!
//! A number is a reference only when no ASCII letter or digit touches it (`#12a` and `story-12x` are not).
//! Short ids have at most 10 digits; more is a long id or nothing.

use super::Kind;

/// Digits of a TAPD long id.
pub const LONG_ID_LEN: usize = 19;

/// A reference found in text.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Reference {
    /// A short id (`1007`), of a known kind when the text said so.
    Short {
        /// Story, bug or task, when the text said.
        kind: Option<Kind>,
        /// The digits, without leading zeros.
        id: String,
    },
    /// A TAPD long id (19 digits), unique across TAPD.
    Long(String),
}

/// Every reference in `text`, in order of appearance, each once.
pub fn extract(text: &str) -> Vec<Reference> {
    let b = text.as_bytes();
    let mut out: Vec<Reference> = Vec::new();
    let mut push = |r: Reference| {
        if !out.contains(&r) {
            out.push(r);
        }
    };
    let mut i = 0;
    while i < b.len() {
        let at_boundary = i == 0 || !b[i - 1].is_ascii_alphanumeric();
        if let Some((r, next)) = keyword_at(b, i, at_boundary) {
            push(r);
            i = next;
            continue;
        }
        if b[i] == b'#' && (i == 0 || !(b[i - 1].is_ascii_alphanumeric() || b[i - 1] == b'&')) {
            if let Some((digits, next)) = number_at(b, i + 1) {
                if let Some(r) = number_ref(digits, None) {
                    push(r);
                }
                i = next;
                continue;
            }
        }
        if b[i].is_ascii_digit() && at_boundary {
            let (digits, next) = digit_run(b, i);
            if digits.len() == LONG_ID_LEN && digits.starts_with('1') && !touches_alnum(b, next) {
                push(Reference::Long(digits.to_owned()));
            }
            i = next;
            continue;
        }
        i += 1;
    }
    out
}

/// The short id of a long id of `workspace` (`11` or `10`, the workspace id, then the padded short id).
pub fn short_of_long(long: &str, workspace: &str) -> Option<String> {
    if long.len() != LONG_ID_LEN || !long.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    let rest = long.get(2..)?.strip_prefix(workspace)?;
    let n: u64 = rest.parse().ok()?;
    Some(n.to_string())
}

const KEYWORDS: [(&str, Kind); 3] = [("story", Kind::Story), ("bug", Kind::Bug), ("task", Kind::Task)];

/// `--story=N` anywhere, or `story-N` / `story_N` / `story/N` at a word boundary.
fn keyword_at(b: &[u8], i: usize, at_boundary: bool) -> Option<(Reference, usize)> {
    let (start, dashed) = match b.get(i..i + 2) {
        Some(b"--") => (i + 2, true),
        _ if at_boundary => (i, false),
        _ => return None,
    };
    for (word, kind) in KEYWORDS {
        let end = start + word.len();
        if !b.get(start..end).is_some_and(|w| w.eq_ignore_ascii_case(word.as_bytes())) {
            continue;
        }
        let sep_ok = match b.get(end) {
            Some(b'=') => dashed,
            Some(b'-' | b'_' | b'/') => !dashed,
            _ => false,
        };
        if !sep_ok {
            continue;
        }
        let (digits, next) = number_at(b, end + 1)?;
        return number_ref(digits, Some(kind)).map(|r| (r, next));
    }
    None
}

/// A run of digits at `i` that no ASCII letter or digit follows.
fn number_at(b: &[u8], i: usize) -> Option<(&str, usize)> {
    if !b.get(i).is_some_and(u8::is_ascii_digit) {
        return None;
    }
    let (digits, next) = digit_run(b, i);
    (!touches_alnum(b, next)).then_some((digits, next))
}

fn digit_run(b: &[u8], i: usize) -> (&str, usize) {
    let end = b[i..].iter().position(|c| !c.is_ascii_digit()).map_or(b.len(), |n| i + n);
    // Only ASCII digits between i and end: always valid UTF-8.
    (std::str::from_utf8(&b[i..end]).unwrap_or_default(), end)
}

fn touches_alnum(b: &[u8], next: usize) -> bool {
    b.get(next).is_some_and(u8::is_ascii_alphabetic)
}

fn number_ref(digits: &str, kind: Option<Kind>) -> Option<Reference> {
    if digits.len() == LONG_ID_LEN && digits.starts_with('1') {
        return Some(Reference::Long(digits.to_owned()));
    }
    if digits.len() > 10 {
        return None;
    }
    let id = digits.trim_start_matches('0');
    (!id.is_empty()).then(|| Reference::Short { kind, id: id.to_owned() })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn short(kind: Option<Kind>, id: &str) -> Reference {
        Reference::Short { kind, id: id.into() }
    }
    fn long(id: &str) -> Reference {
        Reference::Long(id.into())
    }

    #[test]
    fn finds_references_in_titles_branches_and_messages() {
        let story = Some(Kind::Story);
        let bug = Some(Kind::Bug);
        #[rustfmt::skip]
        let cases: Vec<(&str, Vec<Reference>)> = vec![
            ("Fix login redirect #1007", vec![short(None, "1007")]),
            ("#1007: fix login", vec![short(None, "1007")]),
            ("修复登录跳转问题 #1007", vec![short(None, "1007")]),
            ("修复登录跳转问题#1007并补充测试", vec![short(None, "1007")]),
            ("【需求】--story=1007 --user=张三 登录页支持企业微信扫码", vec![short(story, "1007")]),
            ("fix: 导出报表超时 --bug=1000321 --user=lisi", vec![short(bug, "1000321")]),
            ("feat: --story=1151234567001000101 扫码登录", vec![long("1151234567001000101")]),
            ("feature/story-1007-wecom-login", vec![short(story, "1007")]),
            ("bugfix/BUG_1000321", vec![short(bug, "1000321")]),
            ("hotfix/task/88", vec![short(Some(Kind::Task), "88")]),
            ("关联需求 1151234567001000101，见 https://www.tapd.cn/51234567/prong/stories/view/1151234567001000102",
             vec![long("1151234567001000101"), long("1151234567001000102")]),
            ("Merge branch 'feature/story-1007' into 'main'\n\n修复 #1007 and #1008\n\nSee merge request g/api!42",
             vec![short(story, "1007"), short(None, "1007"), short(None, "1008")]),
            ("#0012 padded", vec![short(None, "12")]),
        ];
        for (text, expected) in cases {
            assert_eq!(extract(text), expected, "{text:?}");
        }
    }

    #[test]
    fn ignores_what_only_looks_like_a_reference() {
        for text in [
            "group/project#12 is a GitLab issue elsewhere",
            "HTML entity &#1007; in a description",
            "#12abc is not a number",
            "bump version to 1.10.7",
            "release/1.1",
            "storyline-12 is a word",
            "mystory-12",
            "--story 1007 without equals",
            "commit 3f2a9c1e7b5d4e0f8a6b2c9d1e3f5a7b12345678",
            "a 20-digit number 11512345670010001011",
            "an 18-digit number 115123456700100010",
            "#",
            "--bug=",
            "#0",
        ] {
            assert_eq!(extract(text), Vec::<Reference>::new(), "{text:?}");
        }
    }

    #[test]
    fn long_ids_give_short_ids_of_their_workspace() {
        assert_eq!(short_of_long("1151234567001000101", "51234567").as_deref(), Some("1000101"));
        assert_eq!(short_of_long("1010104801124922063", "10104801").as_deref(), Some("124922063"));
        assert_eq!(short_of_long("1151234567001000101", "20003271"), None);
        assert_eq!(short_of_long("115123456700100010", "51234567"), None);
    }
}
