//! SIGTERM and SIGINT: the first cancels the process's one [`CancellationToken`]; what
//! a second one does is the mode's choice ([`Repeat`]).

use tokio::signal::unix::{signal, SignalKind};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use crate::exit::ExitStatus;
use crate::Error;

/// What a second SIGTERM/SIGINT does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Repeat {
    /// Exit at once with [`ExitStatus::INTERRUPTED`] (130): the operator insists.
    #[default]
    Exit,
    /// Deliver it to the mode through [`Signals::received`] (the sidecar cuts its
    /// drain wait short and still runs its post-deregister hook).
    Deliver,
}

/// The installed handlers.
#[derive(Debug)]
pub struct Signals {
    /// Cancelled by the first SIGTERM/SIGINT.
    pub shutdown: CancellationToken,
    /// Every SIGTERM/SIGINT by name (`"SIGTERM"`, `"SIGINT"`), the first included, when
    /// the policy is [`Repeat::Deliver`]; `None` otherwise.
    pub received: Option<mpsc::UnboundedReceiver<&'static str>>,
}

/// Installs the SIGTERM and SIGINT handlers (inside a tokio runtime). `shutdown` is the
/// token the first signal cancels.
pub fn install(shutdown: CancellationToken, repeat: Repeat) -> Result<Signals, Error> {
    let mut term = signal(SignalKind::terminate()).map_err(Error::Signals)?;
    let mut int = signal(SignalKind::interrupt()).map_err(Error::Signals)?;
    let (tx, rx) = mpsc::unbounded_channel();
    let token = shutdown.clone();
    tokio::spawn(async move {
        let mut count = 0u32;
        loop {
            let name = tokio::select! {
                Some(()) = term.recv() => "SIGTERM",
                Some(()) = int.recv() => "SIGINT",
                else => return,
            };
            count += 1;
            if count == 1 {
                tracing::info!(signal = name, "signal received; shutting down");
                token.cancel();
            } else if repeat == Repeat::Exit {
                tracing::warn!(signal = name, "second signal: exiting at once");
                std::process::exit(i32::from(ExitStatus::INTERRUPTED.code()));
            }
            if repeat == Repeat::Deliver {
                // The receiver may be gone (the mode stopped listening): keep counting.
                let _ = tx.send(name);
            }
        }
    });
    Ok(Signals {
        shutdown,
        received: (repeat == Repeat::Deliver).then_some(rx),
    })
}
