//! Mutating the committed corpus: a seed picked from it and one or more edits applied in order — bit flips,
//! byte overwrites, truncations, deletions, repeats, splices with another seed, inserted fragments
//! (unicode, control characters and the target's own tokens) and deeply nested blocks. Edits are
//! proptest values, so a failing input shrinks to fewer, smaller edits of a smaller seed.

use std::sync::Arc;

use proptest::prelude::*;
use proptest::sample::Index;

/// Fragments worth inserting anywhere: unicode whitespace and line breaks, control characters,
/// invisible and right-to-left marks, non-BMP characters, a lone continuation byte, a replacement mark.
pub const NASTY: &[&str] = &[
    "\u{0}",
    "\u{7}",
    "\u{1b}[31m",
    "\r",
    "\n",
    "\r\n",
    "\t",
    "\u{b}",
    "\u{c}",
    "\u{85}",
    "\u{a0}",
    "\u{2028}",
    "\u{2029}",
    "\u{3000}",
    "\u{200b}",
    "\u{200d}",
    "\u{202e}",
    "\u{feff}",
    "\u{fffd}",
    "\u{10ffff}",
    "é",
    "e\u{301}",
    "ß",
    "İ",
    "🦀",
    "👩\u{200d}👩\u{200d}👧",
    "\\",
    "\"",
    "'",
    "`",
    "%",
    "%00",
    "{",
    "}",
    "[",
    "]",
    ":",
    "#",
    "&",
    "*",
    "!",
    "|",
    ">",
    "-",
    ",",
    "=",
    "/",
    "..",
    "\u{80}",
];

/// One edit of an input.
#[derive(Clone, Debug)]
enum Edit {
    /// Flips one bit of one byte.
    Flip(Index, u8),
    /// Overwrites one byte.
    Set(Index, u8),
    /// Cuts the input at a point.
    Truncate(Index),
    /// Removes up to `n` bytes at a point.
    Delete(Index, u8),
    /// Repeats up to `n` bytes at a point `times` times.
    Repeat(Index, u8, u8),
    /// Keeps the input up to a point and continues with another seed from a point of it.
    Splice(Index, Index, Index),
    /// Inserts a fragment: one of [`NASTY`] or of the target's tokens, or arbitrary characters.
    Insert(Index, Vec<u8>),
    /// Inserts a block nested `depth` deep (one of the target's nesting shapes).
    Nest(Index, Index, u16),
}

/// A way to nest a value `depth` deep in the target's format: returns the text of the block.
pub type Nester = fn(usize) -> String;

fn fragment(tokens: &'static [&'static str]) -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        3 => proptest::sample::select(NASTY).prop_map(|s| s.as_bytes().to_vec()),
        3 => proptest::sample::select(tokens).prop_map(|s| s.as_bytes().to_vec()),
        1 => proptest::collection::vec(any::<char>(), 1..6).prop_map(|c| String::from_iter(c).into_bytes()),
        1 => proptest::collection::vec(any::<u8>(), 1..4),
    ]
}

fn edit(tokens: &'static [&'static str]) -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => (any::<Index>(), 0u8..8).prop_map(|(at, bit)| Edit::Flip(at, bit)),
        2 => (any::<Index>(), any::<u8>()).prop_map(|(at, b)| Edit::Set(at, b)),
        1 => any::<Index>().prop_map(Edit::Truncate),
        2 => (any::<Index>(), 1u8..32).prop_map(|(at, n)| Edit::Delete(at, n)),
        1 => (any::<Index>(), 1u8..32, 1u8..8).prop_map(|(at, n, times)| Edit::Repeat(at, n, times)),
        2 => (any::<Index>(), any::<Index>(), any::<Index>()).prop_map(|(at, other, from)| Edit::Splice(at, other, from)),
        6 => (any::<Index>(), fragment(tokens)).prop_map(|(at, text)| Edit::Insert(at, text)),
        1 => (any::<Index>(), any::<Index>(), 1u16..400).prop_map(|(at, shape, depth)| Edit::Nest(at, shape, depth)),
    ]
}

/// A point of `input` (0..=len).
fn point(at: &Index, input: &[u8]) -> usize {
    at.index(input.len() + 1)
}

fn apply(mut input: Vec<u8>, edit: &Edit, corpus: &[Vec<u8>], nesters: &[Nester]) -> Vec<u8> {
    match edit {
        Edit::Flip(at, bit) if !input.is_empty() => {
            let i = at.index(input.len());
            input[i] ^= 1 << bit;
        }
        Edit::Set(at, byte) if !input.is_empty() => {
            let i = at.index(input.len());
            input[i] = *byte;
        }
        Edit::Truncate(at) => input.truncate(point(at, &input)),
        Edit::Delete(at, n) => {
            let i = point(at, &input);
            let end = (i + usize::from(*n)).min(input.len());
            input.drain(i..end);
        }
        Edit::Repeat(at, n, times) => {
            let i = point(at, &input);
            let end = (i + usize::from(*n)).min(input.len());
            let piece = input[i..end].to_vec();
            for _ in 0..*times {
                input.splice(end..end, piece.iter().copied());
            }
        }
        Edit::Splice(at, other, from) => {
            let i = point(at, &input);
            let other = &corpus[other.index(corpus.len())];
            let j = point(from, other);
            input.truncate(i);
            input.extend_from_slice(&other[j..]);
        }
        Edit::Insert(at, text) => {
            let i = point(at, &input);
            input.splice(i..i, text.iter().copied());
        }
        Edit::Nest(at, shape, depth) if !nesters.is_empty() => {
            let i = point(at, &input);
            let block = nesters[shape.index(nesters.len())](usize::from(*depth));
            input.splice(i..i, block.into_bytes());
        }
        Edit::Flip(..) | Edit::Set(..) | Edit::Nest(..) => {}
    }
    input
}

/// Inputs made from `corpus` (never empty) by one to nine edits; `tokens` are the target's own words,
/// `nesters` its ways of nesting deeply (none for formats that do not nest).
pub fn mutations(
    corpus: Vec<Vec<u8>>,
    tokens: &'static [&'static str],
    nesters: &'static [Nester],
) -> impl Strategy<Value = Vec<u8>> {
    assert!(!corpus.is_empty(), "a mutation target needs seeds");
    let corpus = Arc::new(corpus);
    // Mostly one or two edits (the result stays close to a seed and reaches deep checks), now and then
    // many.
    let edits = prop_oneof![
        3 => proptest::collection::vec(edit(tokens), 1..3),
        1 => proptest::collection::vec(edit(tokens), 3..10),
    ];
    (any::<Index>(), edits).prop_map(move |(seed, edits)| {
        let start = corpus[seed.index(corpus.len())].clone();
        edits.iter().fold(start, |input, edit| apply(input, edit, &corpus, nesters))
    })
}

/// `open` `depth` times, then `close` `depth` times.
pub fn nested(open: &str, middle: &str, close: &str, depth: usize) -> String {
    let mut out = open.repeat(depth);
    out.push_str(middle);
    out.push_str(&close.repeat(depth));
    out
}
