//! Runs a validator of the core against its reference on generated inputs: counts agreements,
//! disagreements and panics (caught per input) and keeps the first examples of each.

use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;
use std::panic::{self, AssertUnwindSafe, PanicHookInfo};
use std::time::Instant;

/// How many disagreeing (and panicking) inputs are kept to be shown.
pub const KEEP: usize = 20;

/// A validator under test and its reference.
pub struct Subject {
    pub name: &'static str,
    /// The core's boolean entry point: the function under test.
    pub core: fn(&str) -> bool,
    /// The core's reason for rejecting an input (`None` when it accepts), shown for
    /// disagreements only.
    pub core_reason: fn(&str) -> Option<String>,
    /// The reference: `Err(why)` when the input breaks the documented policy.
    pub reference: fn(&str) -> Result<(), &'static str>,
}

/// An input on which the core and the reference disagree, with what each says.
pub struct Disagreement {
    pub input: String,
    pub core: String,
    pub reference: String,
}

/// The counts of one validator's run.
pub struct Outcome {
    pub name: &'static str,
    pub inputs: u64,
    /// Inputs the reference accepts, to show the mix has both kinds.
    pub valid: u64,
    pub agree: u64,
    pub disagree: u64,
    pub panics: u64,
    pub seconds: f64,
    pub examples: Vec<Disagreement>,
    /// (input, panic message) of the first panics.
    pub panicked: Vec<(String, String)>,
    /// Disagreements counted by (core's verdict, reference's verdict).
    pub by_reason: BTreeMap<(String, String), u64>,
}

thread_local! {
    static QUIET: Cell<bool> = const { Cell::new(false) };
    static LAST_PANIC: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Installs a panic hook that keeps the message of a panic caught by `quietly` instead of
/// printing it, and reports any other panic as usual.
pub fn install_panic_hook() {
    let default = panic::take_hook();
    panic::set_hook(Box::new(move |info: &PanicHookInfo<'_>| {
        if QUIET.with(Cell::get) {
            LAST_PANIC.with(|last| *last.borrow_mut() = info.to_string());
        } else {
            default(info);
        }
    }));
}

/// Runs `f`, turning a panic into `Err(message)`.
fn quietly<R>(f: impl FnOnce() -> R) -> Result<R, String> {
    QUIET.with(|q| q.set(true));
    let result = panic::catch_unwind(AssertUnwindSafe(f));
    QUIET.with(|q| q.set(false));
    result.map_err(|_| LAST_PANIC.with(RefCell::take))
}

/// Compares the core with the reference on `n` inputs drawn from `next_input`.
pub fn run(subject: &Subject, n: u64, mut next_input: impl FnMut() -> String) -> Outcome {
    let mut out = Outcome::new(subject.name);
    let start = Instant::now();
    let step = (n / 10).max(1);
    for i in 1..=n {
        let input = next_input();
        let expected = (subject.reference)(&input);
        out.inputs += 1;
        out.valid += expected.is_ok() as u64;
        match quietly(|| (subject.core)(&input)) {
            Err(message) => out.panic(input, message),
            Ok(got) if got == expected.is_ok() => out.agree += 1,
            Ok(got) => out.disagreement(subject, input, got, expected),
        }
        if i % step == 0 {
            eprintln!(
                "fuzz: {} {i}/{n}, {} disagreements, {} panics",
                subject.name, out.disagree, out.panics
            );
        }
    }
    out.seconds = start.elapsed().as_secs_f64();
    out
}

impl Outcome {
    fn new(name: &'static str) -> Self {
        Outcome {
            name,
            inputs: 0,
            valid: 0,
            agree: 0,
            disagree: 0,
            panics: 0,
            seconds: 0.0,
            examples: Vec::new(),
            panicked: Vec::new(),
            by_reason: BTreeMap::new(),
        }
    }

    fn panic(&mut self, input: String, message: String) {
        self.panics += 1;
        if self.panicked.len() < KEEP {
            self.panicked.push((input, message));
        }
    }

    fn disagreement(
        &mut self,
        subject: &Subject,
        input: String,
        core: bool,
        reference: Result<(), &'static str>,
    ) {
        self.disagree += 1;
        let reason =
            quietly(|| (subject.core_reason)(&input)).unwrap_or_else(|m| Some(format!("panicked: {m}")));
        let core = match reason {
            Some(why) => format!("{}: {why}", if core { "valid" } else { "invalid" }),
            None => (if core { "valid" } else { "invalid" }).to_string(),
        };
        let reference = match reference {
            Ok(()) => "valid".to_string(),
            Err(why) => format!("invalid: {why}"),
        };
        *self.by_reason.entry((core.clone(), reference.clone())).or_insert(0) += 1;
        if self.examples.len() < KEEP {
            self.examples.push(Disagreement { input, core, reference });
        }
    }
}
