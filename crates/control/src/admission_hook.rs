//! The HTTP client that asks a group's admission hook: a POST of the object's description
//! ([`AdmissionQuestion`] as JSON), answered `{"allow": true|false, "reason": "…"}`. The cache
//! bounds the wait (`admission_timeout`) and decides what silence means.

use std::time::Duration;

use cache::{AdmissionQuestion, HookVerdict};

/// Largest answer read from a hook.
const MAX_HOOK_ANSWER: usize = 64 * 1024;
/// Longest wait for a connection to a hook (the whole call is bounded by `admission_timeout`).
const HOOK_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Asks hooks over HTTP(S).
pub(crate) struct HttpHook {
    client: reqwest::Client,
}

impl HttpHook {
    pub(crate) fn new() -> Result<Self, reqwest::Error> {
        // Straight to the hook, never through an `HTTP_PROXY` from the environment: it is a
        // service of the operator's, and what it is told names what the proxy's clients pull.
        let client = reqwest::Client::builder()
            .connect_timeout(HOOK_CONNECT_TIMEOUT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .build()?;
        Ok(HttpHook { client })
    }
}

impl cache::AdmissionHook for HttpHook {
    fn ask<'a>(
        &'a self,
        url: &'a str,
        question: &'a AdmissionQuestion,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<HookVerdict, String>> + Send + 'a>> {
        Box::pin(async move {
            let mut response = self
                .client
                .post(url)
                .json(question)
                .send()
                .await
                .map_err(|error| format!("cannot reach it: {}", telemetry::error_chain(&error)))?;
            let status = response.status();
            if !status.is_success() {
                return Err(format!("it answered {status}"));
            }
            let mut body = Vec::new();
            while let Some(chunk) = response
                .chunk()
                .await
                .map_err(|error| format!("its answer broke off: {}", telemetry::error_chain(&error)))?
            {
                if body.len() + chunk.len() > MAX_HOOK_ANSWER {
                    return Err(format!("its answer is over {MAX_HOOK_ANSWER} bytes"));
                }
                body.extend_from_slice(&chunk);
            }
            serde_json::from_slice::<HookVerdict>(&body).map_err(|error| {
                format!("its answer is not {{\"allow\": true|false, \"reason\": \"…\"}}: {error}")
            })
        })
    }
}
