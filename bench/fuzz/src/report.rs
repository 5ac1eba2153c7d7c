//! The markdown report: one table for both validators, what went wrong, and how the
//! references read the README.

use crate::harness::Outcome;
use std::fmt::Write;

/// Characters of an input shown before it is cut.
const SHOWN: usize = 160;

/// Prints the whole report to stdout.
pub fn print(seed: u64, outcomes: &[Outcome], notes: &[(&str, &[&str])]) {
    println!("| validator | inputs | valid (reference) | agree | disagree | panics | seconds |");
    println!("|---|---|---|---|---|---|---|");
    for o in outcomes {
        println!(
            "| {} | {} | {} | {} | **{}** | **{}** | {:.1} |",
            o.name, o.inputs, o.valid, o.agree, o.disagree, o.panics, o.seconds
        );
    }
    println!();
    println!("Seed {seed}: `--seed {seed}` generates the same inputs again.");
    for o in outcomes {
        print_disagreements(o);
        print_panics(o);
    }
    println!();
    println!("### How the references read the README, and where they depart from the core");
    for (title, items) in notes {
        println!();
        println!("{title}:");
        println!();
        for item in *items {
            println!("- {item}");
        }
    }
}

fn print_disagreements(o: &Outcome) {
    if o.disagree == 0 {
        return;
    }
    println!();
    println!("### Disagreements: {} ({} inputs)", o.name, o.disagree);
    println!();
    println!("| core | reference | inputs |");
    println!("|---|---|---|");
    for ((core, reference), count) in &o.by_reason {
        println!("| {core} | {reference} | {count} |");
    }
    println!();
    println!("The first {} (non-printable and non-ASCII characters as `\\u{{…}}`):", o.examples.len());
    println!();
    println!("```text");
    for d in &o.examples {
        println!("{}", escape(&d.input));
        println!("    core: {}; reference: {}", d.core, d.reference);
    }
    println!("```");
}

fn print_panics(o: &Outcome) {
    if o.panics == 0 {
        return;
    }
    println!();
    println!("### Panics: {} ({} inputs)", o.name, o.panics);
    println!();
    println!("```text");
    for (input, message) in &o.panicked {
        println!("{}", escape(input));
        for line in message.lines() {
            println!("    {line}");
        }
    }
    println!("```");
}

/// `input` as a Rust string literal: printable ASCII as is (but the backtick, which would
/// end a markdown code span), everything else as `\u{…}`; cut after `SHOWN` characters.
pub fn escape(input: &str) -> String {
    let mut out = String::from("\"");
    for (i, c) in input.chars().enumerate() {
        if i == SHOWN {
            let _ = write!(out, "\"… ({} octets in all)", input.len());
            return out;
        }
        match c {
            '"' | '\\' => {
                out.push('\\');
                out.push(c);
            }
            ' '..='~' if c != '`' => out.push(c),
            _ => {
                let _ = write!(out, "\\u{{{:x}}}", c as u32);
            }
        }
    }
    out.push('"');
    out
}
