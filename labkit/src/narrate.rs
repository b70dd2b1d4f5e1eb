//! Narrated output: every line says who speaks, every syscall is a numbered step.
//!
//! ```text
//! [host]    1. unshare(CLONE_NEWUTS)
//! [host]       /proc/self/ns/uts -> uts:[4026532291]
//! [child]   2. sethostname("nslab-demo")
//! ```
//!
//! Colour is used only when stdout is a terminal and `NO_COLOR` is unset (<https://no-color.org>),
//! so snapshots and pipes always get plain text.

use std::fmt::Display;
use std::io::{IsTerminal, Write};

/// Width of the `[who]` column, so that steps line up.
const WHO_WIDTH: usize = 14;

/// A fault-injection hook for tests: with `NSLAB_PAUSE_AT_STEP=N` in the environment, a program
/// stops for good right after its step N (saying so on stderr), so that a test can `SIGKILL` it
/// there and check that `gc` (or the kernel) removes whatever was half made.
fn pause_if_asked(step: u32) {
    static AT: std::sync::OnceLock<Option<u32>> = std::sync::OnceLock::new();
    let at = AT.get_or_init(|| {
        std::env::var("NSLAB_PAUSE_AT_STEP")
            .ok()
            .and_then(|v| v.parse().ok())
    });
    if *at == Some(step) {
        let _ = std::io::stdout().flush();
        eprintln!("nslab: paused after step {step} (NSLAB_PAUSE_AT_STEP)");
        loop {
            std::thread::park();
        }
    }
}

/// Prints numbered steps and their results, one speaker per line.
#[derive(Debug)]
pub struct Narrator {
    color: bool,
    step: u32,
    /// Print nothing (a program whose steps are shown only on request, like `--explain`).
    quiet: bool,
    /// When timing: the previous step's instant, and each step's (number, who, text, time
    /// since the step before).
    timing: Option<(std::time::Instant, Vec<Timed>)>,
}

/// One step's share of the time: from the step before it to this one.
#[derive(Debug, Clone)]
struct Timed {
    step: u32,
    who: String,
    text: String,
    took: std::time::Duration,
}

impl Default for Narrator {
    fn default() -> Self {
        Self::new()
    }
}

impl Narrator {
    /// A narrator for stdout: colour only on a terminal without `NO_COLOR`.
    pub fn new() -> Self {
        let no_color = std::env::var_os("NO_COLOR").is_some_and(|v| !v.is_empty());
        Self {
            color: std::io::stdout().is_terminal() && !no_color,
            step: 0,
            quiet: false,
            timing: None,
        }
    }

    /// A narrator that never uses colour (for tests).
    pub fn plain() -> Self {
        Self {
            color: false,
            step: 0,
            quiet: false,
            timing: None,
        }
    }

    fn who(&self, who: &str) -> String {
        let tag = format!("[{who}]");
        let padded = format!("{tag:<WHO_WIDTH$}");
        if !self.color {
            return padded;
        }
        // One colour per speaker, so a reader follows who is talking.
        let code = match who {
            "host" | "parent" => "36",      // cyan
            "child" | "grandchild" => "33", // yellow
            "container" | "joined" => "32", // green
            "nslab" => "35",                // magenta
            _ => "34",                      // blue
        };
        format!(
            "\x1b[{code}m{tag}\x1b[0m{}",
            " ".repeat(WHO_WIDTH - tag.len().min(WHO_WIDTH))
        )
    }

    /// Print nothing from now on (steps are still counted).
    pub fn set_quiet(&mut self, quiet: bool) {
        self.quiet = quiet;
    }

    /// Measure from now on how long each step took (the time since the step before it, as
    /// this process saw the step: a child's step when its report arrived).
    pub fn start_timing(&mut self) {
        self.timing = Some((std::time::Instant::now(), Vec::new()));
    }

    /// The timings so far as a table (step, who, milliseconds, share, the step's text), with a
    /// total; `None` unless [`Narrator::start_timing`] was called.
    pub fn timings(&self) -> Option<String> {
        let (_, timed) = self.timing.as_ref()?;
        let total: std::time::Duration = timed.iter().map(|t| t.took).sum();
        let mut rows = vec![vec![
            "step".to_string(),
            "who".into(),
            "ms".into(),
            "share".into(),
            "what".into(),
        ]];
        for t in timed {
            let mut text: String = t.text.chars().take(60).collect();
            if text.len() < t.text.len() {
                text.push('…');
            }
            rows.push(vec![
                t.step.to_string(),
                t.who.clone(),
                format!("{:.2}", t.took.as_secs_f64() * 1000.0),
                format!(
                    "{:.0}%",
                    100.0 * t.took.as_secs_f64() / total.as_secs_f64().max(f64::EPSILON)
                ),
                text,
            ]);
        }
        rows.push(vec![
            String::new(),
            "total".into(),
            format!("{:.2}", total.as_secs_f64() * 1000.0),
            String::new(),
            String::new(),
        ]);
        Some(table(&rows))
    }

    /// Format a numbered step (a syscall or an action) without printing it.
    pub fn format_step(&mut self, who: &str, text: impl Display) -> String {
        self.step += 1;
        let text = text.to_string();
        if let Some((last, timed)) = self.timing.as_mut() {
            let now = std::time::Instant::now();
            timed.push(Timed {
                step: self.step,
                who: who.to_string(),
                text: text.clone(),
                took: now - *last,
            });
            *last = now;
        }
        let number = format!("{:>2}.", self.step);
        let number = if self.color {
            format!("\x1b[1m{number}\x1b[0m")
        } else {
            number
        };
        format!("{}{number} {text}", self.who(who))
    }

    /// Print a numbered step (a syscall or an action).
    pub fn step(&mut self, who: &str, text: impl Display) {
        let line = self.format_step(who, text);
        if !self.quiet {
            emit(&line);
        }
        pause_if_asked(self.step);
    }

    /// Print what the kernel answered, indented under the steps.
    pub fn say(&self, who: &str, text: impl Display) {
        if self.quiet {
            return;
        }
        emit(&format!("{}    {text}", self.who(who)));
    }

    /// Print a line that belongs to no speaker (tables, pictures, blank lines).
    pub fn raw(&self, text: impl Display) {
        if self.quiet {
            return;
        }
        emit(&text.to_string());
    }

    /// Print a heading for a part of a demo.
    pub fn heading(&self, text: impl Display) {
        if self.color {
            emit(&format!("\x1b[1m== {text} ==\x1b[0m"));
        } else {
            emit(&format!("== {text} =="));
        }
    }

    /// Flush stdout: needed before `fork`/`clone`, or the child inherits (and prints again) what
    /// is still buffered.
    pub fn flush(&self) {
        let _ = std::io::stdout().flush();
    }
}

/// Set once stdout's reader has gone (a closed pipe): nothing more is printed.
static OUTPUT_CLOSED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

/// Whether the reader of stdout went away (`uts-demo clone | head -3`). [`crate::errors::run_main`]
/// then ends the program with status 141 (128 + SIGPIPE), as the shell reports for a classic tool
/// killed by SIGPIPE: but only after the demo has finished and removed what it made.
pub fn output_closed() -> bool {
    OUTPUT_CLOSED.load(std::sync::atomic::Ordering::Relaxed)
}

/// Write one line to stdout. When the reader has gone, stop printing and let the demo finish
/// (and clean up) quietly, instead of panicking as `println!` does on EPIPE or exiting before
/// the cleanup.
fn emit(line: &str) {
    if output_closed() {
        return;
    }
    let mut stdout = std::io::stdout().lock();
    if let Err(err) = writeln!(stdout, "{line}") {
        if err.kind() == std::io::ErrorKind::BrokenPipe {
            OUTPUT_CLOSED.store(true, std::sync::atomic::Ordering::Relaxed);
            return;
        }
        panic!("writing to stdout: {err}");
    }
}

/// Render rows as a table with aligned columns (the first row is the header).
pub fn table(rows: &[Vec<String>]) -> String {
    let columns = rows.iter().map(Vec::len).max().unwrap_or(0);
    let widths: Vec<usize> = (0..columns)
        .map(|c| {
            rows.iter()
                .filter_map(|r| r.get(c))
                .map(|s| s.chars().count())
                .max()
                .unwrap_or(0)
        })
        .collect();
    let mut out = String::new();
    for row in rows {
        let mut line = String::new();
        for (c, cell) in row.iter().enumerate() {
            if c + 1 == row.len() {
                line.push_str(cell);
            } else {
                line.push_str(cell);
                line.push_str(&" ".repeat(widths[c] - cell.chars().count() + 2));
            }
        }
        out.push_str(line.trim_end());
        out.push('\n');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_are_numbered_and_aligned() {
        let mut n = Narrator::plain();
        assert_eq!(
            n.format_step("host", "uname()"),
            "[host]         1. uname()"
        );
        assert_eq!(n.format_step("child", "x"), "[child]        2. x");
    }

    #[test]
    fn tables_align_columns() {
        let t = table(&[
            vec!["TYPE".into(), "PID 1".into()],
            vec!["uts".into(), "42".into()],
        ]);
        assert_eq!(t, "TYPE  PID 1\nuts   42\n");
    }
}
