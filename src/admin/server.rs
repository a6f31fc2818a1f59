//! The admin endpoint as a Pingora service (so its listener is handed over
//! in a graceful upgrade like the proxy's): reads the request, calls
//! [`AdminApi::handle`], writes the answer.

use super::{AdminApi, AdminRequest};
use async_trait::async_trait;
use bytes::BytesMut;
use pingora::apps::http_app::ServeHttp;
use pingora::protocols::http::ServerSession;
use std::sync::Arc;

/// Largest request body the admin API reads.
const MAX_BODY: usize = 1024 * 1024;

/// Pingora adapter for [`AdminApi`].
pub(crate) struct AdminServer {
    api: Arc<AdminApi>,
}

impl AdminServer {
    /// Serve `api`.
    pub(crate) fn new(api: Arc<AdminApi>) -> AdminServer {
        AdminServer { api }
    }
}

fn plain(status: u16, text: &str) -> http::Response<Vec<u8>> {
    let mut r = http::Response::new(text.as_bytes().to_vec());
    *r.status_mut() = http::StatusCode::from_u16(status).unwrap_or(http::StatusCode::BAD_REQUEST);
    r.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain"),
    );
    r.headers_mut().insert(
        http::header::CONTENT_LENGTH,
        http::HeaderValue::from(text.len()),
    );
    r
}

#[async_trait]
impl ServeHttp for AdminServer {
    async fn response(&self, session: &mut ServerSession) -> http::Response<Vec<u8>> {
        let req = session.req_header();
        let method = req.method.clone();
        let path = req.uri.path().to_string();
        let authorization = req
            .headers
            .get(http::header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string);
        let mut body = BytesMut::new();
        loop {
            match session.read_request_body().await {
                Ok(Some(chunk)) => {
                    if body.len() + chunk.len() > MAX_BODY {
                        return plain(413, "request body too large\n");
                    }
                    body.extend_from_slice(&chunk);
                }
                Ok(None) => break,
                Err(_) => return plain(400, "cannot read the request body\n"),
            }
        }
        let answer = self
            .api
            .handle(AdminRequest {
                method: method.clone(),
                path,
                authorization,
                body: body.freeze(),
            })
            .await;
        let len = answer.body.len();
        let body = if method == http::Method::HEAD {
            Vec::new()
        } else {
            answer.body
        };
        let mut r = http::Response::new(body);
        *r.status_mut() = http::StatusCode::from_u16(answer.status)
            .unwrap_or(http::StatusCode::INTERNAL_SERVER_ERROR);
        let h = r.headers_mut();
        h.insert(
            http::header::CONTENT_TYPE,
            http::HeaderValue::from_static(answer.content_type),
        );
        h.insert(http::header::CONTENT_LENGTH, http::HeaderValue::from(len));
        h.insert(
            http::header::CACHE_CONTROL,
            http::HeaderValue::from_static("no-store"),
        );
        for (name, value) in answer.headers {
            if let Ok(v) = http::HeaderValue::from_str(&value) {
                h.insert(name, v);
            }
        }
        r
    }
}
