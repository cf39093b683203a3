//! Asking several upstreams in order (a group with `upstreams = [...]`): every failure moves on to
//! the next upstream; an outage (5xx, 429, timeout, no connection, token service down) is also
//! counted against the upstream it came from. When every upstream failed, the answer is the first
//! failure that was not a 404 — a 404 only when every upstream said 404 — so "down" is never
//! hidden behind another upstream's "not here".

use crate::error::UpstreamError;

/// The failures met so far while asking upstreams in order, and which one the client gets.
#[derive(Debug)]
pub struct Attempts<E> {
    reported: Option<E>,
    /// Whether `reported` is a "not found".
    reported_not_found: bool,
}

impl<E> Default for Attempts<E> {
    fn default() -> Self {
        Attempts { reported: None, reported_not_found: false }
    }
}

impl<E> Attempts<E> {
    /// Notes a failure; `not_found` says it was a 404 (the upstream has no such object).
    pub fn failed(&mut self, error: E, not_found: bool) {
        let replace = match &self.reported {
            None => true,
            Some(_) => self.reported_not_found && !not_found,
        };
        if replace {
            self.reported = Some(error);
            self.reported_not_found = not_found;
        }
    }

    /// The failure the client gets; `None` when nothing failed (no upstream was asked).
    pub fn into_error(self) -> Option<E> {
        self.reported
    }
}

impl Attempts<UpstreamError> {
    /// Notes an upstream's failure.
    pub fn upstream_failed(&mut self, error: UpstreamError) {
        let not_found = matches!(error, UpstreamError::NotFound(_));
        self.failed(error, not_found);
    }
}

impl UpstreamError {
    /// Whether moving past the upstream on this failure counts against its health: an outage, not
    /// an answer (a 404, or a 401/403 — registries answer so for repositories they do not have).
    pub fn counts_against_health(&self) -> bool {
        self.is_outage()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use oci::ObjectKind;

    #[test]
    fn the_first_failure_that_is_not_a_404_is_the_answer() {
        let mut attempts = Attempts::default();
        attempts.upstream_failed(UpstreamError::NotFound(ObjectKind::Blob));
        attempts.upstream_failed(UpstreamError::Timeout("t".into()));
        attempts.upstream_failed(UpstreamError::Connect("c".into()));
        assert!(matches!(attempts.into_error(), Some(UpstreamError::Timeout(_))));

        let mut attempts = Attempts::default();
        attempts.upstream_failed(UpstreamError::NotFound(ObjectKind::Manifest));
        attempts.upstream_failed(UpstreamError::NotFound(ObjectKind::Manifest));
        assert!(matches!(attempts.into_error(), Some(UpstreamError::NotFound(_))));
        assert!(Attempts::<UpstreamError>::default().into_error().is_none());

        assert!(UpstreamError::RateLimited { retry_after: None }.counts_against_health());
        assert!(UpstreamError::Status { status: http::StatusCode::BAD_GATEWAY }.counts_against_health());
        assert!(!UpstreamError::NotFound(ObjectKind::Blob).counts_against_health());
        let refused =
            UpstreamError::Refused { status: http::StatusCode::UNAUTHORIZED, message: String::new() };
        assert!(!refused.counts_against_health());
    }
}
