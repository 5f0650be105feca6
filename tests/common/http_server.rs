//! The test server over streamable HTTP, on 127.0.0.1, with hooks a test
//! drives: it counts session DELETEs, records request headers, and can
//! "forget" its sessions (answer 404 to any request that names one).

use std::{
    convert::Infallible,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
};

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, combinators::BoxBody};
use hyper::{
    Request, Response, StatusCode, body::Incoming, server::conn::http1, service::service_fn,
};
use hyper_util::rt::TokioIo;
use rmcp::transport::streamable_http_server::{
    StreamableHttpServerConfig, StreamableHttpService, session::local::LocalSessionManager,
};

use super::test_server::TestServer;

pub struct HttpServer {
    pub url: String,
    pub deletes: Arc<AtomicUsize>,
    pub forget: Arc<AtomicBool>,
    /// `(name, value)` of every request header named here.
    pub seen_headers: Arc<Mutex<Vec<(String, String)>>>,
    accept: tokio::task::JoinHandle<()>,
}

const WATCHED: &[&str] = &["authorization", "x-tenant"];

impl HttpServer {
    pub async fn start() -> Self {
        let service = StreamableHttpService::new(
            || Ok(TestServer::new()),
            Arc::new(LocalSessionManager::default()),
            StreamableHttpServerConfig::default(),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/mcp", listener.local_addr().unwrap());
        let deletes = Arc::new(AtomicUsize::new(0));
        let forget = Arc::new(AtomicBool::new(false));
        let seen_headers = Arc::new(Mutex::new(Vec::new()));
        let (d, f, h) = (deletes.clone(), forget.clone(), seen_headers.clone());
        let accept = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (service, d, f, h) = (service.clone(), d.clone(), f.clone(), h.clone());
                let handler = service_fn(move |req: Request<Incoming>| {
                    let (service, d, f, h) = (service.clone(), d.clone(), f.clone(), h.clone());
                    async move {
                        for (name, value) in req.headers() {
                            if WATCHED.contains(&name.as_str()) {
                                h.lock().unwrap().push((
                                    name.to_string(),
                                    value.to_str().unwrap_or("").to_owned(),
                                ));
                            }
                        }
                        if req.method() == hyper::Method::DELETE {
                            d.fetch_add(1, Ordering::SeqCst);
                        }
                        if f.load(Ordering::SeqCst) && req.headers().contains_key("mcp-session-id")
                        {
                            let body: BoxBody<Bytes, Infallible> = Empty::new().boxed();
                            let mut not_found = Response::new(body);
                            *not_found.status_mut() = StatusCode::NOT_FOUND;
                            return Ok::<_, Infallible>(not_found);
                        }
                        Ok(service.handle(req).await)
                    }
                });
                tokio::spawn(async move {
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), handler)
                        .await;
                });
            }
        });
        Self {
            url,
            deletes,
            forget,
            seen_headers,
            accept,
        }
    }
}

impl Drop for HttpServer {
    fn drop(&mut self) {
        self.accept.abort();
    }
}
