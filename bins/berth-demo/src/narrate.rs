//! The narration on stdout: a line per step, a live progress line while a step waits
//! (on a terminal), plain lines otherwise (one per change of what is seen).

use std::io::{IsTerminal as _, Write as _};
use std::time::{Duration, Instant};

use crate::cli::Progress;

const SPINNER: [char; 10] = ['⠋', '⠙', '⠹', '⠸', '⠼', '⠴', '⠦', '⠧', '⠇', '⠏'];

/// Writes the narration.
pub(crate) struct Narrator {
    live: bool,
    /// A live line is on screen (to be cleared before anything else is printed).
    drawn: bool,
    last_detail: String,
    step_started: Instant,
    ticks: usize,
}

impl Narrator {
    /// A narrator for `progress`; `auto` is live only when stdout is a terminal.
    pub(crate) fn new(progress: Progress) -> Self {
        let live = match progress {
            Progress::Auto => std::io::stdout().is_terminal(),
            Progress::Live => true,
            Progress::Plain => false,
        };
        Narrator {
            live,
            drawn: false,
            last_detail: String::new(),
            step_started: Instant::now(),
            ticks: 0,
        }
    }

    /// A line of narration.
    pub(crate) fn say(&mut self, text: &str) {
        self.clear();
        line(format_args!("{text}"));
    }

    /// A step begins.
    pub(crate) fn step(&mut self, number: usize, total: usize, title: &str) {
        self.clear();
        line(format_args!("[{number}/{total}] {title}"));
        self.last_detail.clear();
        self.step_started = Instant::now();
    }

    /// What the step sees while it waits.
    pub(crate) fn progress(&mut self, detail: &str) {
        if self.live {
            self.ticks += 1;
            let spinner = SPINNER[self.ticks % SPINNER.len()];
            let elapsed = self.step_started.elapsed();
            let mut out = std::io::stdout().lock();
            let _ = write!(
                out,
                "\r\x1b[2K      {spinner} {detail} ({})",
                seconds(elapsed)
            );
            let _ = out.flush();
            self.drawn = true;
        } else if detail != self.last_detail {
            line(format_args!("      … {detail}"));
        }
        self.last_detail = detail.to_owned();
    }

    /// The step is done: what was observed, and how long it took.
    pub(crate) fn done(&mut self, summary: &str, took: Duration) {
        self.clear();
        line(format_args!("      ✓ {summary} ({})", seconds(took)));
    }

    fn clear(&mut self) {
        if self.drawn {
            let mut out = std::io::stdout().lock();
            let _ = write!(out, "\r\x1b[2K");
            let _ = out.flush();
            self.drawn = false;
        }
    }
}

/// Writes one line on stdout. A closed stdout (`berth-demo | head`) does not stop
/// the scenario: the daemon is still stopped cleanly.
fn line(text: std::fmt::Arguments<'_>) {
    let _ = writeln!(std::io::stdout().lock(), "{text}");
}

/// `1.23s`.
pub(crate) fn seconds(d: Duration) -> String {
    format!("{:.2}s", d.as_secs_f64())
}
