//! A request's body as it arrives: bounded in time (`CLIENT_BODY_TIMEOUT_SECS`), and counted in
//! `sightline_http_requests_in_flight` only once it is complete, so that clients that send slowly
//! or stall neither hold a connection for ever nor look like load to an autoscaler.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use actix_web::dev::{Payload, ServiceRequest};
use actix_web::error::PayloadError;
use actix_web::http::header::{CONTENT_LENGTH, TRANSFER_ENCODING};
use actix_web::web::Bytes;
use actix_web::HttpMessage;
use futures::Stream;
use prometheus::IntGauge;
use tokio::time::Sleep;

/// The error a body stream ends with when its time is up (see [`timed_out`]).
const TIMED_OUT: &str = "the request body did not arrive within CLIENT_BODY_TIMEOUT_SECS";

/// Whether a body read failed because its time was up (a 408, not a 400).
pub fn timed_out(error: &PayloadError) -> bool {
    matches!(error, PayloadError::Io(e) if e.kind() == std::io::ErrorKind::TimedOut)
}

/// [`timed_out`], for the error of actix's body readers.
pub fn timed_out_error(error: &actix_web::Error) -> bool {
    error.as_error::<PayloadError>().is_some_and(timed_out)
}

/// One request's place in the in-flight gauge: taken when its body is complete (at once for a
/// request without one), given back when the request is answered.
pub struct InFlight {
    gauge: Option<IntGauge>,
    state: Mutex<Counted>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Counted {
    Not,
    Yes,
    /// Answered: a body completing now (never read to its end before) is not counted.
    Done,
}

impl InFlight {
    /// `gauge`: `None` for the routes that are not load (probes, scrapes).
    pub fn new(gauge: Option<IntGauge>) -> Arc<InFlight> {
        Arc::new(InFlight { gauge, state: Mutex::new(Counted::Not) })
    }

    fn count(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let (Counted::Not, Some(gauge)) = (*state, &self.gauge) {
            gauge.inc();
            *state = Counted::Yes;
        }
    }

    /// The request is answered.
    pub fn done(&self) {
        let mut state = self.state.lock().unwrap_or_else(|p| p.into_inner());
        if let (Counted::Yes, Some(gauge)) = (*state, &self.gauge) {
            gauge.dec();
        }
        *state = Counted::Done;
    }
}

/// Gives the request a body stream that fails with a timeout once `limit` has passed, and counts
/// the request in flight when the body is complete.
pub fn arrive_within(req: &mut ServiceRequest, limit: Duration, in_flight: Arc<InFlight>) {
    if !has_body(req) {
        in_flight.count();
        return;
    }
    let inner = req.take_payload();
    let body = ArrivingBody { inner, deadline: Box::pin(tokio::time::sleep(limit)), in_flight, ended: false };
    req.set_payload(Payload::Stream { payload: Box::pin(body) });
}

/// A request with neither a length nor chunks has no body to wait for.
fn has_body(req: &ServiceRequest) -> bool {
    let length = req.headers().get(CONTENT_LENGTH).and_then(|v| v.to_str().ok()?.trim().parse::<u64>().ok());
    req.headers().contains_key(TRANSFER_ENCODING) || length.is_some_and(|n| n > 0)
}

struct ArrivingBody {
    inner: Payload,
    deadline: Pin<Box<Sleep>>,
    in_flight: Arc<InFlight>,
    ended: bool,
}

impl Stream for ArrivingBody {
    type Item = Result<Bytes, PayloadError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if self.ended {
            return Poll::Ready(None);
        }
        match Pin::new(&mut self.inner).poll_next(cx) {
            Poll::Ready(None) => {
                self.ended = true;
                self.in_flight.count();
                Poll::Ready(None)
            }
            Poll::Ready(Some(item)) => Poll::Ready(Some(item)),
            Poll::Pending => match self.deadline.as_mut().poll(cx) {
                Poll::Ready(()) => {
                    self.ended = true;
                    let error = std::io::Error::new(std::io::ErrorKind::TimedOut, TIMED_OUT);
                    Poll::Ready(Some(Err(PayloadError::Io(error))))
                }
                Poll::Pending => Poll::Pending,
            },
        }
    }
}
