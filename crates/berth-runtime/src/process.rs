//! A berth process from `main` to its exit code: parse the command line, start the
//! async runtime, log, install the signal handlers, run the mode, print a failure
//! once, exit with the documented code (see [`crate::exit`]).

use std::future::Future;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::admin::{AdminServer, Endpoints, Readiness, SHUTDOWN_GRACE};
use crate::args::{LogArgs, LogFormat};
use crate::exit::{chain, ExitStatus, Failure};
use crate::metrics::Metrics;
use crate::signals::{self, Repeat};
use crate::{logging, Error};

/// The debug line logged once the SIGTERM/SIGINT handlers are installed: from then on
/// a signal is the mode's to handle (tests wait for it before signalling).
pub const SIGNAL_HANDLERS_INSTALLED: &str = "signal handlers installed";

/// How the async runtime runs the mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Threads {
    /// One thread: small and enough for a sidecar or a one-shot run.
    CurrentThread,
    /// tokio's multi-threaded scheduler (one worker per CPU).
    #[default]
    MultiThread,
}

/// What kind of process this is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// The mode's name (`daemon`, `sidecar`, `lambda`, `bootstrap`...): the `mode` field
    /// of every log line and label of `berth_build_info`.
    pub mode: &'static str,
    /// The async runtime.
    pub threads: Threads,
    /// What a second SIGTERM/SIGINT does.
    pub repeat: Repeat,
}

impl Options {
    /// A multi-threaded process whose second signal exits at once.
    pub fn new(mode: &'static str) -> Self {
        Options {
            mode,
            threads: Threads::default(),
            repeat: Repeat::default(),
        }
    }

    /// On one thread.
    pub fn current_thread(mut self) -> Self {
        self.threads = Threads::CurrentThread;
        self
    }

    /// With this second-signal policy.
    pub fn repeat(mut self, repeat: Repeat) -> Self {
        self.repeat = repeat;
        self
    }
}

/// What a running mode gets from the runtime.
#[derive(Debug)]
pub struct Process {
    /// The mode's name.
    pub mode: &'static str,
    /// Cancelled by the first SIGTERM/SIGINT; shared by everything in the process.
    pub shutdown: CancellationToken,
    /// The process's one registry.
    pub metrics: Metrics,
    /// What `/readyz` answers.
    pub readiness: Readiness,
    signals: Option<mpsc::UnboundedReceiver<&'static str>>,
    background: Background,
    log_format: LogFormat,
}

/// The tasks that live until the mode's `run` returns (the admin server).
#[derive(Debug, Clone, Default)]
struct Background {
    /// Cancelled when the mode's `run` returns.
    finished: CancellationToken,
    tasks: Arc<Mutex<Vec<JoinHandle<()>>>>,
}

impl Background {
    fn push(&self, task: JoinHandle<()>) {
        self.tasks
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(task);
    }

    /// Stops them and waits (at most [`SHUTDOWN_GRACE`] each).
    async fn finish(&self) {
        self.finished.cancel();
        let tasks: Vec<_> =
            std::mem::take(&mut *self.tasks.lock().unwrap_or_else(PoisonError::into_inner));
        for task in tasks {
            let _ = tokio::time::timeout(SHUTDOWN_GRACE, task).await;
        }
    }
}

impl Process {
    /// A process shell without signal handlers or logging, for tests and embedding.
    pub fn detached(mode: &'static str) -> Self {
        Process {
            mode,
            shutdown: CancellationToken::new(),
            metrics: Metrics::new(mode),
            readiness: Readiness::new(),
            signals: None,
            background: Background::default(),
            log_format: LogFormat::Text,
        }
    }

    /// Binds `addr` and serves `/healthz`, `/readyz` and `/metrics` until the mode's
    /// `run` returns — past the shutdown signal, so probes keep answering while the
    /// mode drains. Returns the bound address.
    pub async fn serve_admin(&self, addr: SocketAddr) -> Result<SocketAddr, Error> {
        let server = AdminServer::bind(addr).await?;
        let bound = server.local_addr();
        let task = server.spawn(self.endpoints(), self.background.finished.clone());
        self.background.push(task);
        Ok(bound)
    }

    /// What the admin endpoints report.
    pub fn endpoints(&self) -> Endpoints {
        Endpoints {
            readiness: self.readiness.clone(),
            metrics: self.metrics.clone(),
        }
    }

    /// Every SIGTERM/SIGINT by name, when the mode chose [`Repeat::Deliver`] (once).
    pub fn take_signals(&mut self) -> Option<mpsc::UnboundedReceiver<&'static str>> {
        self.signals.take()
    }

    /// The log format in use.
    pub fn log_format(&self) -> LogFormat {
        self.log_format
    }
}

/// A command line that carries [`LogArgs`].
pub trait Cli: clap::Parser {
    /// The logging flags.
    fn log_args(&self) -> &LogArgs;
}

/// Parses the process's command line: `--help` and `--version` print and give
/// `Err(0)`; a usage error prints clap's message and gives `Err(2)`.
pub fn parse<A: clap::Parser>() -> Result<A, ExitStatus> {
    parse_from(std::env::args_os())
}

/// [`parse`] over `args` (program name first).
pub fn parse_from<A: clap::Parser>(
    args: impl IntoIterator<Item = impl Into<std::ffi::OsString> + Clone>,
) -> Result<A, ExitStatus> {
    A::try_parse_from(args).map_err(|e| {
        // clap writes help and version on stdout, errors on stderr.
        let _ = e.print();
        if e.use_stderr() {
            ExitStatus::USAGE
        } else {
            ExitStatus::SUCCESS
        }
    })
}

/// A binary's whole `main`: parses `A`, then [`start`]s `run` with it.
pub fn main<A, F, Fut>(options: Options, run: F) -> ExitCode
where
    A: Cli,
    F: FnOnce(A, Process) -> Fut,
    Fut: Future<Output = Result<ExitStatus, Failure>>,
{
    let args = match parse::<A>() {
        Ok(args) => args,
        Err(status) => return status.into(),
    };
    let log = args.log_args().clone();
    start(options, &log, move |process| run(args, process))
}

/// Runs a mode whose command line is already parsed: starts the async runtime,
/// logging and signal handlers, runs `run`, prints its failure once and returns the
/// exit code.
pub fn start<F, Fut>(options: Options, log: &LogArgs, run: F) -> ExitCode
where
    F: FnOnce(Process) -> Fut,
    Fut: Future<Output = Result<ExitStatus, Failure>>,
{
    if let Err(e) = logging::init(log, options.mode) {
        eprintln!("error: {}", chain(&e));
        return ExitStatus::USAGE.into();
    }
    let runtime = match options.threads {
        Threads::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Threads::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build();
    let runtime = match runtime {
        Ok(r) => r,
        Err(e) => return report(Failure::from(Error::AsyncRuntime(e)), log.format),
    };
    let status = runtime.block_on(async move {
        let mut process = Process::detached(options.mode);
        process.log_format = log.format;
        // Handlers first, before the mode does anything (configuration, AWS clients):
        // from here on a signal reaches the mode instead of killing the process. Only
        // the exec window before `main` (loading the binary, a few milliseconds) is
        // left to the default action.
        let signals = signals::install(process.shutdown.clone(), options.repeat)?;
        tracing::debug!("{SIGNAL_HANDLERS_INSTALLED}");
        process.signals = signals.received;
        let background = process.background.clone();
        let result = run(process).await;
        background.finish().await;
        result
    });
    match status {
        Ok(status) => status.into(),
        Err(failure) => report(failure, log.format),
    }
}

/// Prints `failure` once — a JSON log line in JSON mode, `error: <chain>` otherwise —
/// and returns its exit code.
pub fn report(failure: Failure, format: LogFormat) -> ExitCode {
    let text = chain(&*failure.error);
    match format {
        LogFormat::Json => {
            tracing::error!(error = %text, exit_code = failure.status.code(), "exiting")
        }
        LogFormat::Text => eprintln!("error: {text}"),
    }
    failure.status.into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn the_admin_server_stops_when_the_run_finishes() {
        let process = Process::detached("test");
        let addr = process
            .serve_admin("127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        // Cancelling the shutdown token does not stop it: probes answer while draining.
        process.shutdown.cancel();
        assert!(tokio::net::TcpStream::connect(addr).await.is_ok());
        process.background.finish().await;
        assert!(tokio::net::TcpStream::connect(addr).await.is_err());
    }
}
