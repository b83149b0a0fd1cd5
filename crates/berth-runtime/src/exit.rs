//! Exit codes and the one-line printing of an error chain.
//!
//! Every berth binary exits with:
//!
//! | code | meaning                                                           |
//! |------|-------------------------------------------------------------------|
//! | 0    | success (and `--help`, `--version`)                               |
//! | 1    | failure                                                           |
//! | 2    | bad usage: flags, environment or configuration                    |
//! | 130  | a second SIGTERM/SIGINT while shutting down: exited at once       |
//! | 3–125| further codes a mode documents (e.g. berth-bootstrap's)           |

use std::error::Error as StdError;
use std::fmt;

/// A boxed error of any kind, the error type binaries hand over.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// A process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExitStatus(u8);

impl ExitStatus {
    /// 0: success.
    pub const SUCCESS: ExitStatus = ExitStatus(0);
    /// 1: failure.
    pub const FAILURE: ExitStatus = ExitStatus(1);
    /// 2: bad usage (flags, environment, configuration).
    pub const USAGE: ExitStatus = ExitStatus(2);
    /// 130: a second signal while shutting down (128 + SIGINT, as shells report it).
    pub const INTERRUPTED: ExitStatus = ExitStatus(130);

    /// Any other code a mode documents.
    pub const fn new(code: u8) -> Self {
        ExitStatus(code)
    }

    /// The numeric code.
    pub const fn code(self) -> u8 {
        self.0
    }

    /// Whether this is 0.
    pub const fn is_success(self) -> bool {
        self.0 == 0
    }
}

impl From<ExitStatus> for std::process::ExitCode {
    fn from(status: ExitStatus) -> Self {
        std::process::ExitCode::from(status.0)
    }
}

impl fmt::Display for ExitStatus {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

/// How a run failed: an error and the exit code to use (1 unless said otherwise).
///
/// Any error converts into it with `?` (`anyhow::Error` included), exiting 1;
/// [`Failure::usage`] exits 2 and [`Failure::with_status`] any documented code.
#[derive(Debug)]
pub struct Failure {
    /// The exit code.
    pub status: ExitStatus,
    /// What went wrong.
    pub error: BoxError,
}

impl Failure {
    /// Bad usage (a flag, the environment, a configuration file): exit 2.
    pub fn usage(error: impl Into<BoxError>) -> Self {
        Failure::with_status(ExitStatus::USAGE, error)
    }

    /// A failure with a documented exit code.
    pub fn with_status(status: ExitStatus, error: impl Into<BoxError>) -> Self {
        Failure {
            status,
            error: error.into(),
        }
    }
}

impl<E: Into<BoxError>> From<E> for Failure {
    fn from(error: E) -> Self {
        Failure::with_status(ExitStatus::FAILURE, error)
    }
}

/// The error and its sources on one line, `outer: inner: root`, each segment once.
///
/// Kubernetes and SDK errors often repeat their source's text in their own message;
/// a segment whose text the previous segment already contains is left out, and so is
/// an empty one.
pub fn chain(error: &(dyn StdError + 'static)) -> String {
    let mut out = String::new();
    let mut previous = String::new();
    let mut next = Some(error);
    while let Some(e) = next {
        let text = e.to_string();
        let text = text.trim();
        if !text.is_empty() && !previous.contains(text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            out.push_str(text);
        }
        previous = text.to_owned();
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl fmt::Display for Layer {
        fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
            f.write_str(self.0)
        }
    }

    impl StdError for Layer {
        fn source(&self) -> Option<&(dyn StdError + 'static)> {
            self.1.as_deref().map(|l| l as _)
        }
    }

    fn layers(texts: &[&'static str]) -> Layer {
        texts
            .iter()
            .rev()
            .fold(None, |inner, text| Some(Layer(text, inner.map(Box::new))))
            .unwrap()
    }

    #[test]
    fn a_segment_repeated_by_its_parent_is_printed_once() {
        // What kube-client does: every layer embeds the one below.
        let e = layers(&[
            "connecting to the Kubernetes API",
            "failed to infer config: in-cluster: missing KUBERNETES_SERVICE_HOST, kubeconfig: no file",
            "in-cluster: missing KUBERNETES_SERVICE_HOST",
            "missing KUBERNETES_SERVICE_HOST",
        ]);
        assert_eq!(
            chain(&e),
            "connecting to the Kubernetes API: failed to infer config: in-cluster: missing \
             KUBERNETES_SERVICE_HOST, kubeconfig: no file"
        );
    }

    #[test]
    fn distinct_segments_are_all_kept_in_order() {
        let e = layers(&["cannot listen on 0.0.0.0:80", "", "permission denied"]);
        assert_eq!(chain(&e), "cannot listen on 0.0.0.0:80: permission denied");
    }

    #[test]
    fn anything_converts_into_a_failure_exiting_1() {
        fn fails() -> Result<(), Failure> {
            Err(std::io::Error::other("disk on fire"))?
        }
        let failure = fails().unwrap_err();
        assert_eq!(failure.status, ExitStatus::FAILURE);
        assert_eq!(chain(&*failure.error), "disk on fire");
        assert_eq!(Failure::usage("bad flag").status.code(), 2);
    }
}
