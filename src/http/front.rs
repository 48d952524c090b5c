//! The front door of every connection. A repeat of a URL answered before (see [`super::hot`]) is served
//! here, ahead of the router: no route matching, no middleware futures, and none of the extractors that
//! clone the request's headers and URI. It gets the same access log, metrics, request id and panic guard
//! as the routed path ([`super::RequestLog`]). Everything else goes to the router, with the peer address
//! attached as axum's `ConnectInfo`.

use super::hot::{self, HotAnswer, HotPaths};
use super::RequestLog;
use crate::app::AppState;
use axum::body::Body;
use axum::extract::{ConnectInfo, Request};
use axum::response::{IntoResponse, Response};
use axum::Router;
use futures_util::future::BoxFuture;
use futures_util::FutureExt;
use http::Method;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::task::{Context, Poll};
use tower::Service;

/// Makes one [`Front`] per connection.
#[derive(Clone)]
pub struct MakeFront {
    state: Arc<AppState>,
    router: Router,
}

impl MakeFront {
    pub fn new(state: Arc<AppState>, router: Router) -> Self {
        MakeFront { state, router }
    }
}

impl<'a> Service<axum::serve::IncomingStream<'a, super::conn::Listener>> for MakeFront {
    type Response = Front;
    type Error = Infallible;
    type Future = std::future::Ready<Result<Front, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, conn: axum::serve::IncomingStream<'a, super::conn::Listener>) -> Self::Future {
        let peer = *conn.remote_addr();
        std::future::ready(Ok(Front { state: self.state.clone(), router: self.router.clone(), peer }))
    }
}

/// The per-connection service.
#[derive(Clone)]
pub struct Front {
    state: Arc<AppState>,
    router: Router,
    peer: SocketAddr,
}

impl Service<Request> for Front {
    type Response = Response;
    type Error = Infallible;
    type Future = BoxFuture<'static, Result<Response, Infallible>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, mut req: Request) -> Self::Future {
        let known = matches!(*req.method(), Method::GET | Method::HEAD)
            .then(|| HotPaths::key_for(req.uri(), req.headers()))
            .and_then(|key| self.state.hot.get(&key).map(|hot| (key, hot)));
        let Some((key, hot)) = known else {
            req.extensions_mut().insert(ConnectInfo(self.peer));
            return Box::pin(self.router.call(req));
        };
        let (state, mut router, peer) = (self.state.clone(), self.router.clone(), self.peer);
        Box::pin(async move {
            let log = RequestLog::begin(&req);
            let answer = AssertUnwindSafe(hot::answer(&state, &hot, req.headers())).catch_unwind().await;
            let mut resp = match answer {
                Ok(Ok(HotAnswer::Answer(r))) => r,
                Ok(Ok(HotAnswer::Fallback)) => {
                    // the object changed or the variant left memory: the full path makes it again
                    state.hot.remove(&key);
                    req.extensions_mut().insert(ConnectInfo(peer));
                    return router.call(req).await;
                }
                Ok(Err(e)) => e.into_response(),
                Err(_) => crate::error::Error::Internal("handler panicked".into()).into_response(),
            };
            if req.method() == Method::HEAD {
                *resp.body_mut() = Body::empty();
            }
            log.finish(&mut resp);
            Ok(resp)
        })
    }
}
