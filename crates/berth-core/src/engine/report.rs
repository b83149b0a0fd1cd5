//! What the engine did, batch by batch.

use std::fmt;

use super::Tally;
use crate::plan::{Change, Skip};
use crate::Error;

/// The fate of one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Status {
    /// Applied.
    Done,
    /// Dry-run: would have been applied.
    Planned,
    /// Failed after `attempts` tries.
    Failed(Error),
}

/// One batch and what became of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outcome<C> {
    /// The batch.
    pub change: C,
    /// Done, planned or failed.
    pub status: Status,
    /// Calls spent on it: retries and ownership writes included.
    pub attempts: u32,
    /// The part of a done batch that was already in effect (targets a deregistration
    /// found absent): nothing changed for it.
    pub already: Option<C>,
}

/// The engine's report: done, skipped, failed with the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report<C> {
    /// Every batch.
    pub outcomes: Vec<Outcome<C>>,
    /// What planning left alone, and why.
    pub skipped: Vec<Skip>,
    /// Whether this was a dry run.
    pub dry_run: bool,
    /// Calls, attempts and failures per API operation while applying.
    pub calls: Tally,
}

impl<C> Default for Report<C> {
    fn default() -> Self {
        Report {
            outcomes: Vec::new(),
            skipped: Vec::new(),
            dry_run: false,
            calls: Tally::default(),
        }
    }
}

impl<C: Change> Report<C> {
    /// Whether every batch was applied (or planned, in a dry run).
    pub fn is_success(&self) -> bool {
        self.outcomes
            .iter()
            .all(|o| !matches!(o.status, Status::Failed(_)))
    }

    /// Items applied.
    pub fn done(&self) -> usize {
        self.count(|s| matches!(s, Status::Done))
    }

    /// Items of done batches that were already in effect (nothing changed for them).
    pub fn already(&self) -> usize {
        self.outcomes
            .iter()
            .filter_map(|o| o.already.as_ref())
            .map(Change::len)
            .sum()
    }

    /// Items that failed.
    pub fn failed(&self) -> usize {
        self.count(|s| matches!(s, Status::Failed(_)))
    }

    /// The failures.
    pub fn errors(&self) -> impl Iterator<Item = (&C, &Error)> {
        self.outcomes.iter().filter_map(|o| match &o.status {
            Status::Failed(e) => Some((&o.change, e)),
            _ => None,
        })
    }

    /// API attempts in all.
    pub fn attempts(&self) -> u32 {
        self.outcomes.iter().map(|o| o.attempts).sum()
    }

    fn count(&self, pred: impl Fn(&Status) -> bool) -> usize {
        self.outcomes
            .iter()
            .filter(|o| pred(&o.status))
            .map(|o| o.change.len())
            .sum()
    }
}

impl<C: Change> fmt::Display for Report<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for o in &self.outcomes {
            match &o.status {
                Status::Done => match &o.already {
                    Some(already) => writeln!(
                        f,
                        "done     {} ({} call(s)); already in effect: {already}",
                        o.change, o.attempts
                    )?,
                    None => writeln!(f, "done     {} ({} call(s))", o.change, o.attempts)?,
                },
                Status::Planned => writeln!(f, "planned  {}", o.change)?,
                Status::Failed(e) => {
                    writeln!(f, "FAILED   {}: {e} ({} attempt(s))", o.change, o.attempts)?
                }
            }
        }
        for s in &self.skipped {
            writeln!(f, "skipped  {}: {}", s.subject, s.reason)?;
        }
        let verb = if self.dry_run { "planned" } else { "done" };
        let n = if self.dry_run {
            self.count(|s| matches!(s, Status::Planned))
        } else {
            self.done()
        };
        write!(
            f,
            "{n} {verb}, {} skipped, {} failed",
            self.skipped.len(),
            self.failed()
        )?;
        match self.already() {
            0 => Ok(()),
            already => write!(f, " ({already} of the done already in effect)"),
        }
    }
}
