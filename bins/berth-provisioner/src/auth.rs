//! Bearer-token authentication. Tokens come from a file (one per line, mounted from a
//! Secret) that is re-read whenever it changes, so tokens rotate without a restart.
//! Only SHA-256 digests are kept, and a presented token's digest is compared with
//! every one in constant time (tower-http's bearer layer compares with `==`).

use std::path::PathBuf;
use std::sync::Mutex;
use std::time::SystemTime;

use axum::extract::{Request, State};
use axum::http::header;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use crate::problem::Problem;

/// The tokens file and the digests read from it.
pub(crate) struct TokenFile {
    path: PathBuf,
    cached: Mutex<Cached>,
}

#[derive(Default)]
struct Cached {
    /// (modified time, length) when read.
    seen: Option<(SystemTime, u64)>,
    digests: Vec<[u8; 32]>,
}

impl std::fmt::Debug for TokenFile {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the digests.
        f.debug_struct("TokenFile")
            .field("path", &self.path)
            .finish()
    }
}

impl TokenFile {
    /// Reads the file once; an unreadable or empty file is an error at start.
    pub(crate) fn open(path: PathBuf) -> anyhow::Result<Self> {
        let file = TokenFile {
            path,
            cached: Mutex::new(Cached::default()),
        };
        file.refresh()?;
        let count = file.lock().digests.len();
        anyhow::ensure!(
            count > 0,
            "the token file {} holds no token",
            file.path.display()
        );
        Ok(file)
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Cached> {
        self.cached.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Re-reads the file if its modification time or length changed. When it cannot
    /// be read (a Secret volume swaps its symlink), the last tokens stay.
    fn refresh(&self) -> anyhow::Result<()> {
        let meta = std::fs::metadata(&self.path)?;
        let stamp = (meta.modified()?, meta.len());
        if self.lock().seen == Some(stamp) {
            return Ok(());
        }
        let text = std::fs::read_to_string(&self.path)?;
        let digests: Vec<[u8; 32]> = text
            .lines()
            .map(str::trim)
            .filter(|l| !l.is_empty() && !l.starts_with('#'))
            .map(digest)
            .collect();
        let mut cached = self.lock();
        if digests.len() != cached.digests.len() || cached.seen.is_some() {
            tracing::info!(path = %self.path.display(), tokens = digests.len(), "read the token file");
        }
        *cached = Cached {
            seen: Some(stamp),
            digests,
        };
        Ok(())
    }

    /// Whether `token` is one of the file's tokens.
    pub(crate) fn accepts(&self, token: &str) -> bool {
        if let Err(e) = self.refresh() {
            tracing::warn!(path = %self.path.display(), error = %e, "cannot re-read the token file; keeping the last tokens");
        }
        let presented = digest(token);
        let cached = self.lock();
        // Look at every digest, so timing does not tell which one matched.
        cached
            .digests
            .iter()
            .fold(subtle::Choice::from(0), |found, d| {
                found | d.ct_eq(&presented)
            })
            .into()
    }
}

fn digest(token: &str) -> [u8; 32] {
    Sha256::digest(token.as_bytes()).into()
}

/// The middleware: `/health` and `/openapi.json` are open, everything else needs a
/// bearer token from the file.
pub(crate) async fn require_bearer(
    State(tokens): State<std::sync::Arc<TokenFile>>,
    request: Request,
    next: Next,
) -> Response {
    let path = request.uri().path();
    if path == "/health" || path == "/openapi.json" {
        return next.run(request).await;
    }
    let presented = request
        .headers()
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| {
            let (scheme, token) = v.split_once(' ')?;
            scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
        });
    match presented {
        Some(token) if !token.is_empty() && tokens.accepts(token) => next.run(request).await,
        _ => Problem::unauthorized().into_response(),
    }
}
