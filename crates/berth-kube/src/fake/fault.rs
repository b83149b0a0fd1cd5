//! Injected faults: requests matching a [`Fault`] are answered with an error `Status`
//! instead of being served, so a test can show what its client does when the API
//! server refuses one write (a lost state push, an RBAC gap, an etcd timeout).

use super::store::Failure;

/// Refuses requests with this method and path (without the query): with 500
/// `InternalError` unless [`Fault::status`] says otherwise, every time unless
/// [`Fault::times`] bounds it, from the first one unless [`Fault::after`] lets some
/// through. Install with [`super::FakeApiServer::inject`].
#[derive(Debug, Clone)]
pub struct Fault {
    method: String,
    path: String,
    code: u16,
    /// Matching requests still served before the fault starts refusing.
    skip: usize,
    remaining: Option<usize>,
}

impl Fault {
    /// Refuses every `method` request to `path` (e.g.
    /// `PUT /api/v1/namespaces/ns/secrets/name`) until cleared.
    pub fn new(method: &str, path: &str) -> Self {
        Fault {
            method: method.to_ascii_uppercase(),
            path: path.to_owned(),
            code: 500,
            skip: 0,
            remaining: None,
        }
    }

    /// Refuses every request, whatever its method and path: an API server outage
    /// (503 with [`Fault::status`]).
    pub fn everything() -> Self {
        Fault::new(ANY, ANY)
    }

    /// Serves the first `n` matching requests, then refuses (e.g. a client's second
    /// write of an object, when its first one creates it).
    pub fn after(mut self, n: usize) -> Self {
        self.skip = n;
        self
    }

    /// Refuses only the next `n` matching requests; later ones are served.
    pub fn times(mut self, n: usize) -> Self {
        self.remaining = Some(n);
        self
    }

    /// Answers with this HTTP status (403, 409, 500, 503...).
    pub fn status(mut self, code: u16) -> Self {
        self.code = code;
        self
    }
}

/// Matches any method or path.
const ANY: &str = "*";

/// The faults installed in one server, and the requests they refused.
#[derive(Debug, Default)]
pub(crate) struct Faults {
    installed: Vec<Fault>,
    /// `METHOD path` of every refused request.
    pub(crate) refused: Vec<String>,
}

impl Faults {
    pub(crate) fn install(&mut self, fault: Fault) {
        self.installed.push(fault);
    }

    pub(crate) fn clear(&mut self) {
        self.installed.clear();
    }

    /// The failure to answer instead of serving `method path`, if a fault matches
    /// (and uses up one of its times).
    pub(crate) fn check(&mut self, method: &str, path: &str) -> Option<Failure> {
        let fault = self.installed.iter_mut().find(|f| {
            (f.method == ANY || f.method == method)
                && (f.path == ANY || f.path == path)
                && f.remaining != Some(0)
        })?;
        if fault.skip > 0 {
            fault.skip -= 1;
            return None;
        }
        if let Some(n) = &mut fault.remaining {
            *n -= 1;
        }
        self.refused.push(format!("{method} {path}"));
        let reason = match fault.code {
            403 => "Forbidden",
            409 => "Conflict",
            429 => "TooManyRequests",
            503 => "ServiceUnavailable",
            _ => "InternalError",
        };
        Some(Failure::new(
            fault.code,
            reason,
            format!("injected fault: {method} {path} refused"),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bounded_fault_refuses_only_its_times_and_only_its_requests() {
        let mut faults = Faults::default();
        faults.install(Fault::new("put", "/api/v1/namespaces/n/secrets/s").times(2));
        assert!(faults
            .check("GET", "/api/v1/namespaces/n/secrets/s")
            .is_none());
        assert!(faults
            .check("PUT", "/api/v1/namespaces/n/secrets/t")
            .is_none());
        let failure = faults
            .check("PUT", "/api/v1/namespaces/n/secrets/s")
            .unwrap();
        assert_eq!((failure.code, failure.reason), (500, "InternalError"));
        assert!(faults
            .check("PUT", "/api/v1/namespaces/n/secrets/s")
            .is_some());
        assert!(faults
            .check("PUT", "/api/v1/namespaces/n/secrets/s")
            .is_none());
        assert_eq!(faults.refused.len(), 2);
        faults.install(Fault::new("PUT", "/x").status(403).after(1));
        assert!(faults.check("PUT", "/x").is_none());
        assert_eq!(faults.check("PUT", "/x").unwrap().reason, "Forbidden");
        faults.clear();
        assert!(faults.check("PUT", "/x").is_none());
    }

    #[test]
    fn everything_refuses_any_method_and_path() {
        let mut faults = Faults::default();
        faults.install(Fault::everything().status(503));
        assert_eq!(faults.check("GET", "/api/v1/nodes").unwrap().code, 503);
        assert_eq!(faults.check("POST", "/apis/x").unwrap().code, 503);
    }
}
