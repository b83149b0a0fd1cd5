//! A run as the API reports it, and what became of an `errored.tfstate` it left.

use berth_core::plan::runs::{Operation, RunState};

use crate::validate::ClusterSpec;

/// A run, as the API reports it.
#[derive(Debug, Clone)]
pub(crate) struct Run {
    pub(crate) id: String,
    pub(crate) cluster: String,
    pub(crate) operation: Operation,
    pub(crate) spec: ClusterSpec,
    pub(crate) created_at: String,
    pub(crate) state: RunState,
    pub(crate) cancel_requested: bool,
    /// Managed resources in the state after the run, as the runner counted them.
    pub(crate) resources: Option<u64>,
    /// Set when terraform could not write its final state and left `errored.tfstate`:
    /// what the runner did with it.
    pub(crate) errored_state: Option<ErroredState>,
}

impl Run {
    /// What went wrong, for a run that errored or was canceled (and what became of an
    /// `errored.tfstate`, whatever the state).
    pub(crate) fn message(&self) -> Option<String> {
        let ended = match self.state {
            RunState::Errored => Some(format!(
                "{} run {} failed; see its logs",
                self.operation, self.id
            )),
            RunState::Canceled => Some(format!("{} run {} was canceled", self.operation, self.id)),
            _ => None,
        };
        let state = self.errored_state.map(|e| e.message(&self.id));
        match (ended, state) {
            (Some(ended), Some(state)) => Some(format!("{ended}; {state}")),
            (ended, state) => ended.or(state),
        }
    }
}

/// What became of an `errored.tfstate` (the runner's `errored_state` report).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ErroredState {
    /// Pushed to the backend again: the state Secret is complete.
    Pushed,
    /// Kept in the Secret `<run>-errored-tfstate`: push it before anything else.
    SavedInSecret,
    /// Neither could be written: the run's last state changes are lost.
    Lost,
}

impl ErroredState {
    pub(super) fn parse(text: &str) -> Option<Self> {
        match text {
            "pushed" => Some(ErroredState::Pushed),
            "saved-in-secret" => Some(ErroredState::SavedInSecret),
            "lost" => Some(ErroredState::Lost),
            _ => None,
        }
    }

    pub(crate) fn as_str(self) -> &'static str {
        match self {
            ErroredState::Pushed => "pushed",
            ErroredState::SavedInSecret => "saved-in-secret",
            ErroredState::Lost => "lost",
        }
    }

    /// What a user reads about it, naming the file and where it is.
    pub(crate) fn message(self, run: &str) -> String {
        match self {
            ErroredState::Pushed => {
                "terraform could not save its final state and left errored.tfstate, which was pushed to the backend again".to_owned()
            }
            ErroredState::SavedInSecret => format!(
                "terraform could not save its final state: errored.tfstate is kept in Secret {run}-errored-tfstate; push it with `terraform state push` before anything else"
            ),
            ErroredState::Lost => "terraform could not save its final state and errored.tfstate could be neither pushed nor kept: the run's last state changes are lost".to_owned(),
        }
    }
}
