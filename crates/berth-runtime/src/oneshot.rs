//! Run once: a future under a deadline, cancellable by the shutdown token, one JSON
//! summary on stdout, an exit code (berth-bootstrap's shape).
//!
//! The summary is one line:
//!
//! ```json
//! {"outcome":"done","exit_code":0,"elapsed_seconds":1.2,"summary":{...},"error":null}
//! ```
//!
//! | outcome             | exit code       | when                                         |
//! |---------------------|-----------------|----------------------------------------------|
//! | `done`              | 0               | [`Finished::Done`]                           |
//! | `failed`            | 1               | [`Finished::Failed`]                         |
//! | `timed_out`         | 1               | the deadline passed (summary `null`)         |
//! | `bad_configuration` | 2               | [`Finished::BadConfiguration`]               |
//! | `cancelled`         | 130             | SIGTERM/SIGINT (summary `null`)              |
//! | the caller's name   | the caller's    | [`Finished::Other`] (e.g. "AMI build, nothing done") |

use std::future::Future;
use std::io::Write;
use std::time::Duration;

use serde::Serialize;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::exit::{chain, BoxError, ExitStatus};

/// How the work ended, with the caller's summary.
#[derive(Debug)]
pub enum Finished<S> {
    /// Done: exit 0.
    Done(S),
    /// Failed: exit 1.
    Failed {
        /// What was done before the failure, if known.
        summary: Option<S>,
        /// Why.
        error: BoxError,
    },
    /// The configuration is unusable: exit 2.
    BadConfiguration(BoxError),
    /// A distinct outcome the mode documents, with its own exit code (3–125).
    Other {
        /// The `outcome` field, e.g. `ami_build`.
        outcome: &'static str,
        /// The exit code.
        status: ExitStatus,
        /// The summary.
        summary: S,
    },
}

/// The one line written on stdout.
#[derive(Debug, Serialize)]
pub struct Report<S> {
    /// `done`, `failed`, `timed_out`, `bad_configuration`, `cancelled` or the mode's own.
    pub outcome: &'static str,
    /// The process exit code.
    pub exit_code: u8,
    /// How long the work ran.
    pub elapsed_seconds: f64,
    /// The caller's summary (`null` when the work did not finish).
    pub summary: Option<S>,
    /// The error chain, on one line.
    pub error: Option<String>,
}

/// Runs `work` once, at most `deadline`, stopped by `shutdown`; writes the report on
/// stdout and returns the exit code.
pub async fn run_once<S, Fut>(
    deadline: Duration,
    shutdown: &CancellationToken,
    work: Fut,
) -> ExitStatus
where
    S: Serialize,
    Fut: Future<Output = Finished<S>>,
{
    let report = run(deadline, shutdown, work).await;
    let status = ExitStatus::new(report.exit_code);
    let mut stdout = std::io::stdout().lock();
    match serde_json::to_string(&report) {
        Ok(line) => {
            if writeln!(stdout, "{line}")
                .and_then(|()| stdout.flush())
                .is_err()
            {
                tracing::error!("cannot write the summary on stdout");
            }
        }
        Err(e) => tracing::error!(error = %e, "cannot serialise the summary"),
    }
    status
}

/// Runs `work` once and returns its report, without writing it.
pub async fn run<S, Fut>(deadline: Duration, shutdown: &CancellationToken, work: Fut) -> Report<S>
where
    Fut: Future<Output = Finished<S>>,
{
    let started = Instant::now();
    let finished = tokio::select! {
        biased;
        () = shutdown.cancelled() => None,
        outcome = tokio::time::timeout(deadline, work) => Some(outcome),
    };
    let elapsed_seconds = started.elapsed().as_secs_f64();
    let report = |outcome, status: ExitStatus, summary, error: Option<String>| Report {
        outcome,
        exit_code: status.code(),
        elapsed_seconds,
        summary,
        error,
    };
    let r = match finished {
        None => report(
            "cancelled",
            ExitStatus::INTERRUPTED,
            None,
            Some("cancelled by a signal".to_owned()),
        ),
        Some(Err(_)) => report(
            "timed_out",
            ExitStatus::FAILURE,
            None,
            Some(format!("not done within {deadline:?}")),
        ),
        Some(Ok(Finished::Done(summary))) => {
            report("done", ExitStatus::SUCCESS, Some(summary), None)
        }
        Some(Ok(Finished::Failed { summary, error })) => {
            report("failed", ExitStatus::FAILURE, summary, Some(chain(&*error)))
        }
        Some(Ok(Finished::BadConfiguration(error))) => report(
            "bad_configuration",
            ExitStatus::USAGE,
            None,
            Some(chain(&*error)),
        ),
        Some(Ok(Finished::Other {
            outcome,
            status,
            summary,
        })) => report(outcome, status, Some(summary), None),
    };
    match &r.error {
        Some(error) => {
            tracing::error!(outcome = r.outcome, exit_code = r.exit_code, %error, "finished")
        }
        None => tracing::info!(outcome = r.outcome, exit_code = r.exit_code, "finished"),
    }
    r
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, PartialEq)]
    struct Summary {
        joined: bool,
    }

    #[tokio::test(start_paused = true)]
    async fn each_ending_has_its_outcome_and_code() {
        let token = CancellationToken::new();
        let d = Duration::from_secs(10);
        let done = run(d, &token, async {
            Finished::Done(Summary { joined: true })
        })
        .await;
        assert_eq!((done.outcome, done.exit_code), ("done", 0));
        assert_eq!(done.summary, Some(Summary { joined: true }));

        let failed = run(d, &token, async {
            Finished::Failed {
                summary: Some(Summary { joined: false }),
                error: "etcd refused".into(),
            }
        })
        .await;
        assert_eq!((failed.outcome, failed.exit_code), ("failed", 1));
        assert_eq!(failed.error.as_deref(), Some("etcd refused"));

        let bad = run(d, &token, async {
            Finished::<Summary>::BadConfiguration("no cluster name".into())
        })
        .await;
        assert_eq!((bad.outcome, bad.exit_code), ("bad_configuration", 2));

        let ami = run(d, &token, async {
            Finished::Other {
                outcome: "ami_build",
                status: ExitStatus::new(3),
                summary: Summary { joined: false },
            }
        })
        .await;
        assert_eq!((ami.outcome, ami.exit_code), ("ami_build", 3));

        let slow = run(d, &token, async {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            Finished::Done(Summary { joined: true })
        })
        .await;
        assert_eq!((slow.outcome, slow.exit_code), ("timed_out", 1));
        assert_eq!(slow.elapsed_seconds, 10.0);

        token.cancel();
        let cancelled = run(d, &token, std::future::pending::<Finished<Summary>>()).await;
        assert_eq!((cancelled.outcome, cancelled.exit_code), ("cancelled", 130));
    }
}
