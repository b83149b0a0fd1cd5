//! The pre-register and post-deregister commands: `/bin/sh -c COMMAND` with a timeout,
//! their output captured for the error message and the logs.

use std::process::Stdio;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt};

/// Output kept per hook run (the tail: the end of a script says why it failed).
const OUTPUT_LIMIT: usize = 4096;

/// A command and how long it may run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Hook {
    /// Shell command, run with `/bin/sh -c`.
    pub(crate) command: String,
    /// Killed after this long.
    pub(crate) timeout: Duration,
}

/// How a hook run ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum HookEnd {
    /// It exited with this code (`None`: killed by a signal).
    Exited(Option<i32>),
    /// It ran past its timeout and was killed.
    TimedOut,
    /// It could not be started.
    NotStarted(String),
}

/// A finished hook run.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct HookRun {
    /// How it ended.
    pub(crate) end: HookEnd,
    /// The tail of its stdout and stderr, interleaved as read.
    pub(crate) output: String,
}

impl HookRun {
    /// Exit code 0.
    pub(crate) fn succeeded(&self) -> bool {
        self.end == HookEnd::Exited(Some(0))
    }

    /// The process exit code that reflects this run: its own non-zero code, else 1
    /// for any other failure, 0 for success.
    pub(crate) fn exit_code(&self) -> u8 {
        match self.end {
            HookEnd::Exited(Some(0)) => 0,
            HookEnd::Exited(Some(code)) => u8::try_from(code).ok().filter(|c| *c != 0).unwrap_or(1),
            _ => 1,
        }
    }

    /// One line for errors and logs: how it ended and what it printed.
    pub(crate) fn describe(&self, hook: &Hook) -> String {
        let how = match &self.end {
            HookEnd::Exited(Some(code)) => format!("exited with code {code}"),
            HookEnd::Exited(None) => "was killed by a signal".to_owned(),
            HookEnd::TimedOut => format!(
                "timed out after {}",
                crate::duration::format_go_duration(hook.timeout)
            ),
            HookEnd::NotStarted(why) => format!("could not be started: {why}"),
        };
        let output = self.output.trim();
        if output.is_empty() {
            format!("{:?} {how} (no output)", hook.command)
        } else {
            format!("{:?} {how}; output: {output}", hook.command)
        }
    }
}

/// Runs the hook to completion or timeout. The environment is passed on, plus
/// `BERTH_TARGET_ID` so a script knows the target.
pub(crate) async fn run(hook: &Hook, target_id: &str) -> HookRun {
    let spawned = tokio::process::Command::new("/bin/sh")
        .arg("-c")
        .arg(&hook.command)
        .env("BERTH_TARGET_ID", target_id)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn();
    let mut child = match spawned {
        Ok(child) => child,
        Err(e) => {
            return HookRun {
                end: HookEnd::NotStarted(e.to_string()),
                output: String::new(),
            }
        }
    };
    let output = Arc::new(Mutex::new(Vec::new()));
    let readers = [
        child.stdout.take().map(|s| collect(s, output.clone())),
        child.stderr.take().map(|s| collect(s, output.clone())),
    ];
    let end = match tokio::time::timeout(hook.timeout, child.wait()).await {
        Ok(Ok(status)) => HookEnd::Exited(status.code()),
        Ok(Err(e)) => HookEnd::NotStarted(e.to_string()),
        Err(_) => {
            let _ = child.kill().await;
            HookEnd::TimedOut
        }
    };
    // A background grandchild may keep the pipes open: wait briefly, not forever.
    for reader in readers.into_iter().flatten() {
        let _ = tokio::time::timeout(Duration::from_millis(200), reader).await;
    }
    let bytes = output
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    HookRun {
        end,
        output: String::from_utf8_lossy(&bytes).into_owned(),
    }
}

fn collect(
    mut source: impl AsyncRead + Unpin + Send + 'static,
    into: Arc<Mutex<Vec<u8>>>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        let mut buf = [0u8; 1024];
        while let Ok(n) = source.read(&mut buf).await {
            if n == 0 {
                break;
            }
            let mut out = into.lock().unwrap_or_else(PoisonError::into_inner);
            out.extend_from_slice(&buf[..n]);
            let excess = out.len().saturating_sub(OUTPUT_LIMIT);
            out.drain(..excess);
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn hook(command: &str, timeout_ms: u64) -> Hook {
        Hook {
            command: command.to_owned(),
            timeout: Duration::from_millis(timeout_ms),
        }
    }

    #[tokio::test]
    async fn success_and_output() {
        let run = run(
            &hook("echo hello; echo oops >&2; echo $BERTH_TARGET_ID", 5_000),
            "10.0.0.9",
        )
        .await;
        assert!(run.succeeded(), "{run:?}");
        assert_eq!(run.exit_code(), 0);
        assert!(run.output.contains("hello") && run.output.contains("oops"));
        assert!(run.output.contains("10.0.0.9"));
    }

    #[tokio::test]
    async fn failure_keeps_the_code_and_the_output() {
        let h = hook("echo 'db not ready'; exit 3", 5_000);
        let run = run(&h, "x").await;
        assert!(!run.succeeded());
        assert_eq!(run.end, HookEnd::Exited(Some(3)));
        assert_eq!(run.exit_code(), 3);
        let text = run.describe(&h);
        assert!(
            text.contains("exited with code 3") && text.contains("db not ready"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn timeout_kills_it() {
        let h = hook("echo started; exec sleep 30", 300);
        let started = std::time::Instant::now();
        let run = run(&h, "x").await;
        assert!(started.elapsed() < Duration::from_secs(5));
        assert_eq!(run.end, HookEnd::TimedOut);
        assert_eq!(run.exit_code(), 1);
        assert!(run.describe(&h).contains("timed out after 300ms"));
        assert!(run.output.contains("started"));
    }

    #[test]
    fn exit_codes_reflect_the_hook() {
        let end = |end| HookRun {
            end,
            output: String::new(),
        };
        assert_eq!(end(HookEnd::Exited(Some(256 + 7))).exit_code(), 1);
        assert_eq!(end(HookEnd::Exited(None)).exit_code(), 1);
        assert_eq!(end(HookEnd::NotStarted("x".into())).exit_code(), 1);
        assert_eq!(end(HookEnd::Exited(Some(42))).exit_code(), 42);
    }
}
