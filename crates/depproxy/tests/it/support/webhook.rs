//! A small admission hook for tests (axum on `127.0.0.1:0`): `POST /verdict` answers a verdict
//! per image name — allow unless told otherwise, deny with a reason, or never — once its gate is
//! open, and keeps every question it was asked.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use axum::extract::State;
use tokio::sync::watch;

use super::spawn_server;

/// What the webhook answers for an image name: a verdict, or nothing ever.
#[derive(Clone)]
pub enum Answer {
    Allow,
    Deny(&'static str),
    Never,
}

/// The test's admission hook: answers per image name (allow when not told), once its gate is
/// open; keeps every question it was asked.
#[derive(Clone)]
pub struct Webhook {
    pub url: String,
    state: Arc<WebhookState>,
}

struct WebhookState {
    answers: Mutex<HashMap<String, Answer>>,
    questions: Mutex<Vec<serde_json::Value>>,
    asked: watch::Sender<usize>,
    open: watch::Sender<bool>,
}

impl Webhook {
    pub async fn start() -> Webhook {
        let state = Arc::new(WebhookState {
            answers: Mutex::new(HashMap::new()),
            questions: Mutex::new(Vec::new()),
            asked: watch::channel(0).0,
            open: watch::channel(true).0,
        });
        let router =
            axum::Router::new().route("/verdict", axum::routing::post(verdict)).with_state(state.clone());
        Webhook { url: format!("{}/verdict", spawn_server(router).await), state }
    }

    pub fn answer(&self, name: &str, answer: Answer) {
        self.state.answers.lock().unwrap().insert(name.to_owned(), answer);
    }

    pub fn questions(&self) -> Vec<serde_json::Value> {
        self.state.questions.lock().unwrap().clone()
    }

    /// Holds every answer back until [`Webhook::release_answers`].
    pub fn hold_answers(&self) {
        self.state.open.send_replace(false);
    }

    pub fn release_answers(&self) {
        self.state.open.send_replace(true);
    }

    /// Counts the questions as they arrive.
    pub fn asked(&self) -> watch::Receiver<usize> {
        self.state.asked.subscribe()
    }

    /// Questions about `name` so far.
    pub fn asked_about(&self, name: &str) -> usize {
        self.questions().iter().filter(|question| question["name"] == name).count()
    }
}

async fn verdict(
    State(state): State<Arc<WebhookState>>,
    axum::Json(question): axum::Json<serde_json::Value>,
) -> axum::Json<serde_json::Value> {
    let name = question["name"].as_str().unwrap_or_default().to_owned();
    let asked = {
        let mut questions = state.questions.lock().unwrap();
        questions.push(question);
        questions.len()
    };
    state.asked.send_replace(asked);
    let _ = state.open.subscribe().wait_for(|open| *open).await;
    let answer = state.answers.lock().unwrap().get(&name).cloned().unwrap_or(Answer::Allow);
    match answer {
        Answer::Allow => axum::Json(serde_json::json!({ "allow": true })),
        Answer::Deny(reason) => axum::Json(serde_json::json!({ "allow": false, "reason": reason })),
        Answer::Never => std::future::pending().await,
    }
}
