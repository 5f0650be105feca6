//! Each session's events run in a span naming its server, scope and generation.

mod common;

use std::sync::{Arc, Mutex};

use mcp_session_pool::{OwnerRuntime, SessionPool};
use tracing::{
    Subscriber,
    field::{Field, Visit},
    span::{Attributes, Id},
};
use tracing_subscriber::{Layer, layer::Context, prelude::*};

/// A span's name and its recorded fields.
type SpanRecord = (String, Vec<(String, String)>);

#[derive(Clone, Default)]
struct Spans(Arc<Mutex<Vec<SpanRecord>>>);

impl<S: Subscriber> Layer<S> for Spans {
    fn on_new_span(&self, attrs: &Attributes<'_>, _: &Id, _: Context<'_, S>) {
        struct Fields(Vec<(String, String)>);
        impl Visit for Fields {
            fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
                self.0.push((field.name().to_owned(), format!("{value:?}")));
            }
        }
        let mut fields = Fields(Vec::new());
        attrs.record(&mut fields);
        self.0
            .lock()
            .unwrap()
            .push((attrs.metadata().name().to_owned(), fields.0));
    }
}

#[tokio::test]
async fn session_span_carries_server_scope_and_generation() {
    let spans = Spans::default();
    let _guard = tracing_subscriber::registry()
        .with(spans.clone())
        .set_default();
    // Owners on this thread, so the thread-local subscriber sees them.
    let pool = SessionPool::builder()
        .owner_runtime(OwnerRuntime::Caller)
        .build()
        .unwrap();
    let (cfg, _) = common::in_process();
    let session = pool
        .get_session("browser", "thread-42", &cfg)
        .await
        .unwrap();
    let generation = session.generation();
    drop(session);
    pool.close_all().await;

    let spans = spans.0.lock().unwrap();
    let (_, fields) = spans
        .iter()
        .find(|(name, _)| name == "mcp_session")
        .expect("an mcp_session span");
    let field = |n: &str| fields.iter().find(|(k, _)| k == n).map(|(_, v)| v.as_str());
    assert_eq!(field("server"), Some("browser"));
    assert_eq!(field("scope"), Some("thread-42"));
    assert_eq!(field("generation"), Some(generation.to_string().as_str()));
}
