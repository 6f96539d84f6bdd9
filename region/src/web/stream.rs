//! `GET /ui/stream`: Server-Sent Events telling a page that what it shows changed.
//!
//! A list page (no `machine=`) hears `changed` after any machine changed, at most every 100 ms; a
//! machine's page (`?machine=ID`) only for that machine. The events carry no data: the page
//! refetches what it shows, with the viewer's own access, so nothing leaks through the stream. Each
//! connection starts with `hello` (a page that hears a second one reconnected, and refetches what it
//! missed), followed at once by `changed` when the page's `since=` mark shows that what it shows
//! changed between its rendering and this connection, and is kept alive with a comment every 15 s, when the session (and, for a machine's page,
//! the viewer's right to see it) is checked again: the stream ends when either is gone.

use std::time::Duration;

use actix_web::http::header;
use actix_web::{web, HttpResponse};
use futures_util::stream;
use tokio::sync::broadcast::error::RecvError;

use super::{Viewer, WebResult};
use crate::api::AppState;
use crate::changes::Change;
use crate::domain::machines;

#[derive(serde::Deserialize)]
pub struct StreamQuery {
    machine: Option<String>,
    /// The change bus's mark when the page was rendered.
    since: Option<String>,
}

/// What one connection waits on.
struct Conn {
    rx: tokio::sync::broadcast::Receiver<Change>,
    stop: tokio_util::sync::CancellationToken,
    machine: Option<String>,
    hello: bool,
    /// A change the page missed before this connection: `changed` right after `hello`.
    missed: bool,
    /// Checked again at every keep-alive: a session that ended (logout, expiry, user deleted) or a
    /// machine the viewer may no longer see ends the stream. `None` in unit tests.
    access: Option<Access>,
}

struct Access {
    pool: crate::db::Pool,
    session: String,
}

impl Access {
    async fn still(&self, machine: Option<String>) -> bool {
        let session = self.session.clone();
        self.pool
            .run(move |c| {
                let Some(caller) =
                    crate::domain::users::authenticate(c, &session, crate::db::now_ms())?
                else {
                    return Ok(false);
                };
                Ok(match &machine {
                    Some(id) => machines::get(c, &caller, id).is_ok(),
                    None => true,
                })
            })
            .await
            .unwrap_or(false)
    }
}

const COALESCE: Duration = Duration::from_millis(100);
const KEEPALIVE: Duration = Duration::from_secs(15);

impl Conn {
    fn wants(&self, c: &Change) -> bool {
        Conn::shows(self.machine.as_deref(), c)
    }

    /// Whether a page showing `machine` (or, with `None`, a list) shows change `c`.
    fn shows(machine: Option<&str>, c: &Change) -> bool {
        match (machine, c) {
            (_, Change::All) | (None, _) => true,
            (Some(m), Change::Machine(id)) => m == id,
        }
    }

    /// The next chunk to send: `changed` (after gathering what else arrives within 100 ms), or a
    /// keep-alive; `None` when the bus is gone.
    async fn next(&mut self) -> Option<&'static str> {
        if self.hello {
            self.hello = false;
            return Some("retry: 1000\nevent: hello\ndata: \n\n");
        }
        if self.missed {
            self.missed = false;
            return Some("event: changed\ndata: \n\n");
        }
        let deadline = tokio::time::sleep(KEEPALIVE);
        tokio::pin!(deadline);
        loop {
            tokio::select! {
                r = self.rx.recv() => match r {
                    Ok(c) if self.wants(&c) => break,
                    Ok(_) => continue,
                    Err(RecvError::Lagged(_)) => break,
                    Err(RecvError::Closed) => return None,
                },
                _ = &mut deadline => {
                    if let Some(a) = &self.access {
                        if !a.still(self.machine.clone()).await {
                            return None;
                        }
                    }
                    return Some(": keep-alive\n\n");
                }
                _ = self.stop.cancelled() => return None,
            }
        }
        // Coalesce a burst (a boot storm changes many machines at once) into one refetch.
        let until = tokio::time::Instant::now() + COALESCE;
        while let Ok(r) = tokio::time::timeout_at(until, self.rx.recv()).await {
            if let Err(RecvError::Closed) = r {
                break;
            }
        }
        Some("event: changed\ndata: \n\n")
    }
}

pub async fn stream(
    state: web::Data<AppState>,
    req: actix_web::HttpRequest,
    v: Viewer,
    q: web::Query<StreamQuery>,
) -> WebResult {
    let session = req
        .cookie(crate::api::SESSION_COOKIE)
        .map(|c| c.value().to_string())
        .unwrap_or_default();
    let StreamQuery { machine, since } = q.into_inner();
    if let Some(id) = &machine {
        // Only a machine the viewer may see can be listened to.
        let (caller, id) = (v.caller.clone(), id.clone());
        state
            .pool
            .run(move |c| machines::get(c, &caller, &id))
            .await?;
    }
    let wants = |c: &Change| Conn::shows(machine.as_deref(), c);
    let (rx, missed) = match &since {
        Some(mark) => state.pool.changes().subscribe_since(mark, wants),
        None => (state.pool.changes().subscribe(), false),
    };
    let conn = Conn {
        rx,
        stop: state.shutdown.clone(),
        machine,
        hello: true,
        missed,
        access: Some(Access {
            pool: state.pool.clone(),
            session,
        }),
    };
    let body = stream::unfold(conn, |mut c| async move {
        c.next().await.map(|chunk| {
            (
                Ok::<_, actix_web::Error>(web::Bytes::from_static(chunk.as_bytes())),
                c,
            )
        })
    });
    Ok(HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .insert_header(("X-Accel-Buffering", "no"))
        .streaming(body))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::changes::Bus;

    #[tokio::test]
    async fn a_change_between_rendering_and_connecting_is_not_missed() {
        let bus = Bus::new();
        let mark = bus.mark();
        bus.publish(&[Change::Machine("m1".into())]);
        let (rx, missed) = bus.subscribe_since(&mark, |c| Conn::shows(Some("m1"), c));
        let mut c = Conn {
            rx,
            stop: Default::default(),
            machine: Some("m1".into()),
            hello: true,
            missed,
            access: None,
        };
        assert!(c.next().await.unwrap().contains("event: hello"));
        assert!(c.next().await.unwrap().contains("event: changed"));
        // Another machine's change before connecting is not this page's business.
        let (rx, missed) = bus.subscribe_since(&mark, |c| Conn::shows(Some("m2"), c));
        assert!(!missed);
        drop(rx);
    }

    #[tokio::test]
    async fn a_machine_page_hears_only_its_machine_and_bursts_coalesce() {
        let bus = Bus::new();
        let mut c = Conn {
            rx: bus.subscribe(),
            stop: Default::default(),
            machine: Some("m1".into()),
            hello: true,
            missed: false,
            access: None,
        };
        assert!(c.next().await.unwrap().contains("event: hello"));
        bus.publish(&[Change::Machine("m2".into()), Change::Machine("m1".into())]);
        for _ in 0..50 {
            bus.publish(&[Change::Machine("m1".into())]);
        }
        assert!(c.next().await.unwrap().contains("event: changed"));
        // The burst was one refetch: nothing is pending now but the next keep-alive.
        bus.publish(&[Change::Machine("m2".into())]);
        let r = tokio::time::timeout(Duration::from_millis(300), c.next()).await;
        assert!(r.is_err(), "m2 is not this page's machine");
    }
}
