//! The fuzz engine: a target's committed inputs (`tests/fixtures/fuzz/<target>/`: seeds, and under
//! `regressions/` every input that ever failed), the time budget (`TAO_FUZZ_SECONDS`), the loop that
//! replays regressions and seeds first and then draws cases from a proptest strategy until the budget is
//! spent, and the shrinking of a failure (proptest's, then cutting bytes) to a small input written out
//! for `regressions/`.
//!
//! A check returns `Err` when a property fails; a panic inside it (the parser's or an assertion's) is
//! caught and is a failure too. Nothing here knows a parser.

use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use proptest::strategy::{Strategy, ValueTree};
use proptest::test_runner::{Config, RngAlgorithm, TestRng, TestRunner};

/// What a target checks on one input: `Err` names the property that failed.
pub type Check<'a> = &'a dyn Fn(&[u8]) -> Result<(), String>;

/// An input with its name (the file it was read from).
pub type Named = (String, Vec<u8>);

/// How long a target draws new cases when `TAO_FUZZ_SECONDS` is not set.
const DEFAULT_SECONDS: u64 = 10;

/// How long each of the two steps of shrinking a failure (proptest's, then cutting bytes) may take.
const SHRINK_TIME: Duration = Duration::from_secs(15);

/// How long one case may run past the budget and shrinking before the target fails as hung.
const HANG_GRACE: Duration = Duration::from_secs(60);

/// How long each target draws new cases: `TAO_FUZZ_SECONDS` (CI may raise it), 10 s by default.
pub fn budget() -> Duration {
    let secs = std::env::var("TAO_FUZZ_SECONDS").ok().and_then(|s| s.trim().parse().ok()).unwrap_or(DEFAULT_SECONDS);
    Duration::from_secs(secs)
}

/// When a target still running has hung: its budget, shrinking, and a minute's grace.
pub fn watchdog() -> Duration {
    budget() + 2 * SHRINK_TIME + HANG_GRACE
}

/// The harness time limit of a fuzz test: the [`watchdog`] and a minute for setting up (a Tao to
/// talk to).
pub fn time_limit() -> Duration {
    watchdog() + Duration::from_secs(60)
}

/// The random seed of this run: `TAO_FUZZ_SEED` to repeat one (every run prints its own), else fresh.
pub fn seed() -> u64 {
    match std::env::var("TAO_FUZZ_SEED") {
        Ok(s) => s.trim().parse().unwrap_or_else(|_| panic!("TAO_FUZZ_SEED: expected a number, found {s:?}")),
        Err(_) => rand::random(),
    }
}

/// `tests/fixtures/fuzz/<target>`.
pub fn fixture_dir(target: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/fuzz").join(target)
}

/// The files of `dir` (not its subdirectories, not `README.md`), by name; none when it does not exist.
fn files(dir: &Path) -> Vec<Named> {
    let Ok(entries) = std::fs::read_dir(dir) else { return Vec::new() };
    let mut out: Vec<Named> = entries
        .map(|e| e.expect("fuzz fixture entry").path())
        .filter(|p| p.is_file() && p.file_name().is_some_and(|n| n != "README.md"))
        .map(|p| {
            let bytes = std::fs::read(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display()));
            (p.file_name().unwrap_or_default().to_string_lossy().into_owned(), bytes)
        })
        .collect();
    out.sort();
    out
}

/// The seed corpus of a target: the files of its fixture directory.
pub fn seeds(target: &str) -> Vec<Named> {
    files(&fixture_dir(target))
}

/// The inputs that once failed a target: the files of its `regressions/` directory.
pub fn regressions(target: &str) -> Vec<Named> {
    files(&fixture_dir(target).join("regressions"))
}

/// The input a target is checking now, for the watchdog to name when a case never ends.
#[derive(Clone, Default)]
pub struct Watch(Arc<Mutex<Vec<u8>>>);

impl Watch {
    fn set(&self, input: &[u8]) {
        let mut current = self.0.lock().unwrap_or_else(|e| e.into_inner());
        current.clear();
        current.extend_from_slice(input);
    }

    /// The input being checked (or last checked).
    pub fn current(&self) -> Vec<u8> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }
}

/// What one target's run did.
#[derive(Debug, Default)]
pub struct Report {
    /// Every input checked: regressions, seeds and generated cases.
    pub cases: u64,
    /// Regressions replayed.
    pub regressions: usize,
    /// Seeds checked as they are.
    pub seeds: usize,
    /// The slowest case.
    pub slowest: Duration,
    /// How long the slowest case's input is, in bytes.
    pub slowest_len: usize,
    /// Each failure: the input (shrunk for generated cases), what failed, where the input was written.
    pub failures: Vec<String>,
}

/// An input as people read it: text when it is UTF-8 (escaped), else hex; long inputs cut.
pub fn show(input: &[u8]) -> String {
    const MAX: usize = 1500;
    let shown = match std::str::from_utf8(input) {
        Ok(text) => format!("{text:?}"),
        Err(_) => format!("hex {}", hex::encode(input)),
    };
    if shown.len() > MAX {
        let cut = (0..=MAX).rev().find(|i| shown.is_char_boundary(*i)).unwrap_or(0);
        format!("{}… ({} bytes)", &shown[..cut], input.len())
    } else {
        shown
    }
}

fn panic_message(payload: &(dyn std::any::Any + Send)) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| (*s).to_owned())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_owned())
}

/// Checks one input; a panic is a failure like a broken property.
fn outcome(check: Check<'_>, watch: &Watch, input: &[u8]) -> Result<(), String> {
    watch.set(input);
    match catch_unwind(AssertUnwindSafe(|| check(input))) {
        Ok(Ok(())) => Ok(()),
        Ok(Err(property)) => Err(format!("property failed: {property}")),
        Err(payload) => Err(format!("panicked: {}", panic_message(payload.as_ref()))),
    }
}

/// Writes a failing input where a developer copies it from into `regressions/`.
fn save_crash(target: &str, input: &[u8]) -> PathBuf {
    use std::hash::{Hash, Hasher};
    let mut hasher = std::collections::hash_map::DefaultHasher::new();
    input.hash(&mut hasher);
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("fuzz-crashes").join(target);
    let path = dir.join(format!("crash-{:016x}", hasher.finish()));
    let written = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, input));
    if let Err(e) = written {
        eprintln!("fuzz {target}: cannot write {}: {e}", path.display());
    }
    path
}

/// Simplifies a failing generated case while it keeps failing (proptest's shrinking), within
/// [`SHRINK_TIME`]; returns the smallest failing input found and its failure.
fn shrink(
    tree: &mut impl ValueTree<Value = Vec<u8>>,
    first: (Vec<u8>, String),
    check: Check<'_>,
    watch: &Watch,
) -> (Vec<u8>, String) {
    let deadline = Instant::now() + SHRINK_TIME;
    let mut best = first;
    if !tree.simplify() {
        return best;
    }
    while Instant::now() < deadline {
        let input = tree.current();
        match outcome(check, watch, &input) {
            Err(failure) => {
                best = (input, failure);
                if !tree.simplify() {
                    break;
                }
            }
            Ok(()) => {
                if !tree.complicate() {
                    break;
                }
            }
        }
    }
    best
}

/// Cuts bytes out of a failing input while it fails the same way (a panic stays a panic, a broken
/// property a broken property): halves, quarters, … down to single bytes, until `deadline`.
fn minimize(first: (Vec<u8>, String), check: Check<'_>, watch: &Watch, deadline: Instant) -> (Vec<u8>, String) {
    let kind = |failure: &str| failure.split(':').next().unwrap_or_default().to_owned();
    let want = kind(&first.1);
    let (mut input, mut failure) = first;
    let mut chunk = input.len().div_ceil(2);
    while chunk > 0 && Instant::now() < deadline {
        let mut at = 0;
        while at < input.len() && Instant::now() < deadline {
            let end = (at + chunk).min(input.len());
            let mut candidate = input.clone();
            candidate.drain(at..end);
            match outcome(check, watch, &candidate) {
                Err(f) if kind(&f) == want => (input, failure) = (candidate, f),
                _ => at += chunk,
            }
        }
        chunk /= 2;
    }
    (input, failure)
}

fn describe_failure(target: &str, origin: &str, input: &[u8], failure: &str, saved: Option<&Path>) -> String {
    let mut text = format!("{target}: {origin}: {failure}\n  input: {}", show(input));
    if let Some(path) = saved {
        text.push_str(&format!(
            "\n  written to {} — copy it into tests/fixtures/fuzz/{target}/regressions/ to keep it as a test",
            path.display()
        ));
    }
    text
}

/// Runs a target: its regressions, then `seeds` as they are, then cases from `strategy` until the
/// budget is spent or one fails (shrunk, written out). Prints how many cases ran.
pub fn run<S>(target: &str, seeds: &[Named], strategy: S, check: Check<'_>, watch: &Watch) -> Report
where
    S: Strategy<Value = Vec<u8>>,
{
    let started = Instant::now();
    let budget = budget();
    let seed = seed();
    let mut report = Report::default();
    let timed = |report: &mut Report, input: &[u8]| {
        let at = Instant::now();
        let result = outcome(check, watch, input);
        let took = at.elapsed();
        report.cases += 1;
        if took > report.slowest {
            report.slowest = took;
            report.slowest_len = input.len();
        }
        result
    };
    for (name, input) in regressions(target) {
        report.regressions += 1;
        if let Err(failure) = timed(&mut report, &input) {
            report.failures.push(describe_failure(target, &format!("regression {name}"), &input, &failure, None));
        }
    }
    for (name, input) in seeds {
        report.seeds += 1;
        if let Err(failure) = timed(&mut report, input) {
            let saved = save_crash(target, input);
            report.failures.push(describe_failure(target, &format!("seed {name}"), input, &failure, Some(&saved)));
        }
    }
    let config = Config { failure_persistence: None, ..Config::default() };
    let mut key = [0u8; 32];
    for chunk in key.chunks_mut(8) {
        chunk.copy_from_slice(&seed.to_le_bytes());
    }
    let mut runner = TestRunner::new_with_rng(config, TestRng::from_seed(RngAlgorithm::ChaCha, &key));
    let mut generated = 0u64;
    while started.elapsed() < budget {
        let Ok(mut tree) = strategy.new_tree(&mut runner) else { continue };
        let input = tree.current();
        generated += 1;
        if let Err(failure) = timed(&mut report, &input) {
            let (input, failure) = shrink(&mut tree, (input, failure), check, watch);
            let (input, failure) = minimize((input, failure), check, watch, Instant::now() + SHRINK_TIME);
            let saved = save_crash(target, &input);
            let origin = format!("generated case {generated} (TAO_FUZZ_SEED={seed})");
            report.failures.push(describe_failure(target, &origin, &input, &failure, Some(&saved)));
            break;
        }
    }
    println!(
        "fuzz {target}: {} cases in {:.1} s ({} regressions, {} seeds, {generated} generated; TAO_FUZZ_SEED={seed}); \
         slowest case {:.1} ms ({} bytes)",
        report.cases,
        started.elapsed().as_secs_f64(),
        report.regressions,
        report.seeds,
        report.slowest.as_secs_f64() * 1000.0,
        report.slowest_len,
    );
    report
}
