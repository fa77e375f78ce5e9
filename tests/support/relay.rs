//! A TCP relay on 127.0.0.1 in front of a server, to cut the connections that pass through it:
//! the chaos suite's S3 and SQS outages and the reconnection tests. While cut, every connection
//! open through it is shut down and new ones are accepted and closed at once (as a server that
//! went away behind a load balancer).
//!
//! Use it from a test file with `mod support { pub mod relay; }`.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::{Ipv4Addr, Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A running relay; it stops accepting when dropped.
#[derive(Debug)]
pub struct Relay {
    /// The relay's own port on 127.0.0.1: point clients here.
    pub port: u16,
    state: Arc<State>,
}

#[derive(Debug)]
struct State {
    target: SocketAddr,
    cut: AtomicBool,
    stopped: AtomicBool,
    /// The sockets of the connections open now (both sides), to shut them down on a cut.
    open: Mutex<Vec<(u64, TcpStream)>>,
    next_id: AtomicU64,
    /// Connections the relay passed on since it started.
    accepted: AtomicU64,
}

impl Relay {
    /// Starts a relay to `target` (`127.0.0.1:PORT`) on a free port.
    pub fn start(target: SocketAddr) -> Relay {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let port = listener.local_addr().unwrap().port();
        let state = Arc::new(State {
            target,
            cut: AtomicBool::new(false),
            stopped: AtomicBool::new(false),
            open: Mutex::new(Vec::new()),
            next_id: AtomicU64::new(0),
            accepted: AtomicU64::new(0),
        });
        let accepting = state.clone();
        std::thread::spawn(move || accept_loop(&listener, &accepting));
        Relay { port, state }
    }

    /// `http://127.0.0.1:PORT` (for HTTP servers such as S3 and SQS endpoints).
    pub fn http_endpoint(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    /// Cuts every open connection and refuses new ones until [`Relay::restore`].
    pub fn cut(&self) {
        self.state.cut.store(true, Ordering::SeqCst);
        self.state.shut_all();
    }

    /// Lets connections through again.
    pub fn restore(&self) {
        self.state.cut.store(false, Ordering::SeqCst);
    }

    /// Shuts down the connections open now, once, and keeps relaying new ones.
    pub fn reset_connections(&self) {
        self.state.shut_all();
    }

    /// Connections relayed so far (a reconnection shows as a new one).
    pub fn connections(&self) -> u64 {
        self.state.accepted.load(Ordering::SeqCst)
    }

    /// Connections open now.
    pub fn open_connections(&self) -> usize {
        self.state.open.lock().unwrap().len() / 2
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.state.stopped.store(true, Ordering::SeqCst);
        self.state.shut_all();
        // Wakes the accept loop so that it sees `stopped`.
        let _ = TcpStream::connect((Ipv4Addr::LOCALHOST, self.port));
    }
}

impl State {
    fn shut_all(&self) {
        for (_, socket) in self.open.lock().unwrap().drain(..) {
            let _ = socket.shutdown(Shutdown::Both);
        }
    }

    fn forget(&self, id: u64) {
        self.open.lock().unwrap().retain(|(i, _)| *i != id);
    }
}

fn accept_loop(listener: &TcpListener, state: &Arc<State>) {
    for incoming in listener.incoming() {
        if state.stopped.load(Ordering::SeqCst) {
            return;
        }
        let Ok(client) = incoming else { continue };
        if state.cut.load(Ordering::SeqCst) {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        }
        let Ok(server) = TcpStream::connect_timeout(&state.target, Duration::from_secs(5)) else {
            let _ = client.shutdown(Shutdown::Both);
            continue;
        };
        let _ = (client.set_nodelay(true), server.set_nodelay(true));
        let id = state.next_id.fetch_add(1, Ordering::SeqCst);
        {
            let mut open = state.open.lock().unwrap();
            open.push((id, client.try_clone().unwrap()));
            open.push((id, server.try_clone().unwrap()));
        }
        state.accepted.fetch_add(1, Ordering::SeqCst);
        let (client_read, server_write) = (client.try_clone().unwrap(), server.try_clone().unwrap());
        let up = state.clone();
        std::thread::spawn(move || {
            pipe(client_read, server_write);
            up.forget(id);
        });
        let down = state.clone();
        std::thread::spawn(move || {
            pipe(server, client);
            down.forget(id);
        });
    }
}

/// Copies one direction until either side closes, then closes both.
fn pipe(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = from.shutdown(Shutdown::Both);
    let _ = to.shutdown(Shutdown::Both);
}
