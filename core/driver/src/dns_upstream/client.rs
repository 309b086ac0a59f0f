//! The DNS client worker: carries the engine's forwarded questions to the configured
//! upstreams and sends the answers back to the loop.
//!
//! Why a worker thread with a current-thread tokio runtime, not the mio loop: DNS-over-HTTPS
//! needs HTTP/2, and the established client (`h2`) runs on tokio IO. DNS-over-TLS and plain
//! upstreams share the worker so that fallback between kinds is one state machine. The loop
//! stays as it was for every other flow; one question costs two channel hops and a wake-up
//! (docs/decisions.md has the figures).
//!
//! Connections are kept and reused: one TLS session per DoT upstream carries every question
//! (pipelined, answers matched by DNS id), one HTTP/2 connection per DoH upstream multiplexes
//! them as streams. Every socket passes the platform's `protect` hook before it connects.

use std::cell::RefCell;
use std::collections::HashMap;
use std::io;
use std::net::SocketAddr;
use std::os::fd::AsRawFd;
use std::path::Path;
use std::rc::Rc;
use std::sync::mpsc as std_mpsc;
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::Bytes;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConfig, RootCertStore};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream, UdpSocket};
use tokio::sync::{mpsc, oneshot, Mutex};
use tokio_rustls::TlsConnector;

use super::fallback::{Fallback, DEFAULT_REST};
use super::{DnsUpstream, DnsUpstreams};
use crate::Hooks;

/// How long one upstream gets for one question (connect and handshake included) before the
/// next one is asked. Below the engine's own 5 s deadline so that a second upstream still
/// has time to answer.
const ATTEMPT_TIMEOUT: Duration = Duration::from_secs(2);

/// How often the reader of a plain upstream's socket checks whether it was given up.
const UDP_IDLE_CHECK: Duration = Duration::from_secs(30);

/// Largest DNS message over TLS or HTTPS (a 2-byte length bounds it).
const MAX_MESSAGE: usize = u16::MAX as usize;

/// One forwarded question: `data` as the engine framed it for `to`.
struct Question {
    to: SocketAddr,
    data: Vec<u8>,
}

/// The loop's end of the worker.
pub(crate) struct DnsClient {
    questions: Option<mpsc::UnboundedSender<Question>>,
    answers: std_mpsc::Receiver<(SocketAddr, Vec<u8>)>,
    worker: Option<JoinHandle<()>>,
}

impl DnsClient {
    /// Starts the worker. Bad settings (an unreadable roots file) fail here, naming the file.
    /// `wake` is called after each answer so the loop picks it up.
    pub(crate) fn start(
        config: &DnsUpstreams,
        hooks: Arc<dyn Hooks>,
        wake: Box<dyn Fn() + Send>,
    ) -> io::Result<Self> {
        let dot = tls_config(config.extra_roots.as_deref(), Vec::new())?;
        let doh = tls_config(config.extra_roots.as_deref(), vec![b"h2".to_vec()])?;
        let upstreams = config.upstreams.clone();
        let (q_tx, q_rx) = mpsc::unbounded_channel();
        let (a_tx, a_rx) = std_mpsc::channel();
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_io()
            .enable_time()
            .build()?;
        let worker = std::thread::Builder::new()
            .name("embargo-dns".into())
            .spawn(move || {
                let local = tokio::task::LocalSet::new();
                let n = upstreams.len();
                let client = Rc::new(Worker {
                    upstreams,
                    conns: (0..n).map(|_| Mutex::new(None)).collect(),
                    fallback: RefCell::new(Fallback::new(n, DEFAULT_REST)),
                    dot: TlsConnector::from(dot),
                    doh: TlsConnector::from(doh),
                    hooks,
                    answers: a_tx,
                    wake,
                });
                local.block_on(&runtime, serve(client, q_rx));
            })?;
        Ok(DnsClient {
            questions: Some(q_tx),
            answers: a_rx,
            worker: Some(worker),
        })
    }

    /// Hands one question (for the engine's resolver `to`) to the worker.
    pub(crate) fn ask(&self, to: SocketAddr, data: Vec<u8>) {
        if let Some(q) = &self.questions {
            let _ = q.send(Question { to, data });
        }
    }

    /// An answer, as if from the engine's resolver `from`.
    pub(crate) fn try_answer(&self) -> Option<(SocketAddr, Vec<u8>)> {
        self.answers.try_recv().ok()
    }
}

impl Drop for DnsClient {
    fn drop(&mut self) {
        // Closing the channel ends the worker's serve loop and with it the runtime.
        self.questions = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

/// The certificate checks: the Mozilla roots, plus the CAs of `extra_roots` (PEM).
fn tls_config(extra_roots: Option<&Path>, alpn: Vec<Vec<u8>>) -> io::Result<Arc<ClientConfig>> {
    let mut roots = RootCertStore::from_iter(webpki_roots::TLS_SERVER_ROOTS.iter().cloned());
    if let Some(path) = extra_roots {
        let bad = |e: String| io::Error::other(format!("DNS roots {}: {e}", path.display()));
        let mut added = 0;
        for cert in CertificateDer::pem_file_iter(path).map_err(|e| bad(e.to_string()))? {
            let cert = cert.map_err(|e| bad(e.to_string()))?;
            roots.add(cert).map_err(|e| bad(e.to_string()))?;
            added += 1;
        }
        if added == 0 {
            return Err(bad("no certificate in the file".into()));
        }
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn;
    Ok(Arc::new(config))
}

struct Worker {
    upstreams: Vec<DnsUpstream>,
    /// One slot per upstream; the lock is held while connecting so concurrent questions wait
    /// for the one connection instead of opening their own.
    conns: Vec<Mutex<Option<Conn>>>,
    fallback: RefCell<Fallback>,
    dot: TlsConnector,
    doh: TlsConnector,
    hooks: Arc<dyn Hooks>,
    answers: std_mpsc::Sender<(SocketAddr, Vec<u8>)>,
    wake: Box<dyn Fn() + Send>,
}

/// A live connection to one upstream.
#[derive(Clone)]
enum Conn {
    /// Plain UDP or DoT: questions written in order, answers matched by DNS id.
    Pipe(Rc<Pipe>),
    /// DoH: one HTTP/2 connection, a stream per question.
    H2 {
        send: h2::client::SendRequest<Bytes>,
        uri: http::Uri,
        dead: Rc<RefCell<bool>>,
    },
}

impl Conn {
    fn is_dead(&self) -> bool {
        match self {
            Conn::Pipe(p) => *p.dead.borrow(),
            Conn::H2 { dead, .. } => *dead.borrow(),
        }
    }

    /// Stops using the connection: the next question makes a new one.
    fn end(&self) {
        match self {
            Conn::Pipe(p) => p.end(),
            Conn::H2 { dead, .. } => *dead.borrow_mut() = true,
        }
    }
}

type Pending = RefCell<HashMap<u16, oneshot::Sender<Vec<u8>>>>;

struct Pipe {
    /// To the writer task; taken at the end, which ends the writer (and for TLS closes the
    /// session, so the server's close ends the reader).
    out: RefCell<Option<mpsc::UnboundedSender<Vec<u8>>>>,
    pending: Pending,
    dead: RefCell<bool>,
}

impl Pipe {
    /// Hands an answer to whoever asked with its id.
    fn answer(&self, message: Vec<u8>) {
        if message.len() < 12 {
            return;
        }
        let id = u16::from_be_bytes([message[0], message[1]]);
        if let Some(tx) = self.pending.borrow_mut().remove(&id) {
            let _ = tx.send(message);
        }
    }

    /// The connection is gone: every waiting question fails (and falls back).
    fn end(&self) {
        *self.dead.borrow_mut() = true;
        self.out.borrow_mut().take();
        self.pending.borrow_mut().clear();
    }

    fn new(out: mpsc::UnboundedSender<Vec<u8>>) -> Rc<Self> {
        Rc::new(Pipe {
            out: RefCell::new(Some(out)),
            pending: RefCell::new(HashMap::new()),
            dead: RefCell::new(false),
        })
    }
}

async fn serve(worker: Rc<Worker>, mut questions: mpsc::UnboundedReceiver<Question>) {
    while let Some(q) = questions.recv().await {
        let worker = worker.clone();
        tokio::task::spawn_local(async move { worker.resolve(q).await });
    }
}

impl Worker {
    /// Asks the upstreams in fallback order until one answers. No answer at all is not
    /// reported: the engine gives the question up at its deadline, as after a lost datagram.
    async fn resolve(&self, q: Question) {
        let order = self.fallback.borrow().order(Instant::now());
        for i in order {
            let outcome = tokio::time::timeout(ATTEMPT_TIMEOUT, self.ask(i, &q.data)).await;
            match outcome {
                Ok(Ok(answer)) => {
                    self.fallback.borrow_mut().answered(i);
                    if self.answers.send((q.to, answer)).is_ok() {
                        (self.wake)();
                    }
                    return;
                }
                Ok(Err(e)) => log::info!("DNS upstream {}: {e}", self.upstreams[i]),
                Err(_) => log::info!("DNS upstream {}: no answer in time", self.upstreams[i]),
            }
            self.fallback.borrow_mut().failed(i, Instant::now());
            // Whatever the connection's state, the next question starts a fresh one.
            if let Ok(slot) = self.conns[i].try_lock() {
                if let Some(c) = slot.as_ref() {
                    c.end();
                }
            }
        }
    }

    async fn ask(&self, i: usize, question: &[u8]) -> io::Result<Vec<u8>> {
        if question.len() < 12 || question.len() > MAX_MESSAGE {
            return Err(io::Error::other("not a DNS message"));
        }
        let (conn, fresh) = self.conn(i).await?;
        match exchange(&conn, question).await {
            // A kept connection the server closed while idle (unbound: after 30 s) is no
            // failure of the upstream: once more on a new one.
            Err(e) if !fresh => {
                log::debug!("DNS upstream {}: {e}; reconnecting", self.upstreams[i]);
                conn.end();
                let (conn, _) = self.conn(i).await?;
                exchange(&conn, question).await
            }
            answered => answered,
        }
    }

    /// Upstream `i`'s live connection, made now if there is none (then `fresh`).
    async fn conn(&self, i: usize) -> io::Result<(Conn, bool)> {
        let mut slot = self.conns[i].lock().await;
        match slot.as_ref() {
            Some(c) if !c.is_dead() => Ok((c.clone(), false)),
            _ => {
                let c = self.connect(&self.upstreams[i]).await?;
                *slot = Some(c.clone());
                Ok((c, true))
            }
        }
    }

    async fn connect(&self, upstream: &DnsUpstream) -> io::Result<Conn> {
        match upstream {
            DnsUpstream::Plain(addr) => self.plain(*addr).await,
            DnsUpstream::Tls { name, addr } => self.dot(name, *addr).await,
            DnsUpstream::Https {
                name,
                addr,
                port,
                path,
            } => {
                let addr = match addr {
                    Some(a) => *a,
                    // Bootstrap: the host's own resolver, once per connection.
                    None => tokio::net::lookup_host((name.as_str(), *port))
                        .await?
                        .next()
                        .ok_or_else(|| io::Error::other(format!("{name}: no address")))?,
                };
                self.doh(name, addr, *port, path).await
            }
        }
    }

    async fn tcp(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let socket = if addr.is_ipv4() {
            TcpSocket::new_v4()?
        } else {
            TcpSocket::new_v6()?
        };
        self.hooks
            .protect(socket.as_raw_fd())
            .map_err(|e| io::Error::other(format!("protect hook: {e}")))?;
        let stream = socket.connect(addr).await?;
        stream.set_nodelay(true)?;
        Ok(stream)
    }

    async fn plain(&self, addr: SocketAddr) -> io::Result<Conn> {
        let any: SocketAddr = if addr.is_ipv4() {
            "0.0.0.0:0".parse().expect("literal")
        } else {
            "[::]:0".parse().expect("literal")
        };
        let std_socket = std::net::UdpSocket::bind(any)?;
        self.hooks
            .protect(std_socket.as_raw_fd())
            .map_err(|e| io::Error::other(format!("protect hook: {e}")))?;
        std_socket.set_nonblocking(true)?;
        let socket = Rc::new(UdpSocket::from_std(std_socket)?);
        socket.connect(addr).await?;
        let (out, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pipe = Pipe::new(out);
        let sender = socket.clone();
        tokio::task::spawn_local(async move {
            while let Some(m) = rx.recv().await {
                let _ = sender.send(&m).await;
            }
        });
        let reader = pipe.clone();
        tokio::task::spawn_local(async move {
            let mut buf = vec![0u8; MAX_MESSAGE];
            // Wakes now and then to notice the end of a socket nothing arrives on any more.
            while !*reader.dead.borrow() {
                match tokio::time::timeout(UDP_IDLE_CHECK, socket.recv(&mut buf)).await {
                    Ok(Ok(n)) => reader.answer(buf[..n].to_vec()),
                    // An ICMP unreachable: this resolver is not there.
                    Ok(Err(_)) => break,
                    Err(_) => {}
                }
            }
            reader.end();
        });
        Ok(Conn::Pipe(pipe))
    }

    async fn dot(&self, name: &str, addr: SocketAddr) -> io::Result<Conn> {
        let server = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
        let tcp = self.tcp(addr).await?;
        let tls = self.dot.connect(server, tcp).await?;
        let (mut read, mut write) = tokio::io::split(tls);
        let (out, mut rx) = mpsc::unbounded_channel::<Vec<u8>>();
        let pipe = Pipe::new(out);
        let writer = pipe.clone();
        tokio::task::spawn_local(async move {
            // Questions that queued up meanwhile go out in one TLS record.
            let mut framed = Vec::new();
            while let Some(m) = rx.recv().await {
                framed.clear();
                frame(&mut framed, &m);
                while let Ok(m) = rx.try_recv() {
                    frame(&mut framed, &m);
                }
                if write.write_all(&framed).await.is_err() || write.flush().await.is_err() {
                    break;
                }
            }
            writer.end();
            let _ = write.shutdown().await;
        });
        let reader = pipe.clone();
        tokio::task::spawn_local(async move {
            let mut len = [0u8; 2];
            let mut message = Vec::new();
            loop {
                if read.read_exact(&mut len).await.is_err() {
                    break;
                }
                message.resize(u16::from_be_bytes(len) as usize, 0);
                if read.read_exact(&mut message).await.is_err() {
                    break;
                }
                reader.answer(std::mem::take(&mut message));
            }
            reader.end();
        });
        Ok(Conn::Pipe(pipe))
    }

    async fn doh(&self, name: &str, addr: SocketAddr, port: u16, path: &str) -> io::Result<Conn> {
        let server = ServerName::try_from(name.to_string()).map_err(io::Error::other)?;
        let tcp = self.tcp(addr).await?;
        let tls = self.doh.connect(server, tcp).await?;
        if tls.get_ref().1.alpn_protocol() != Some(b"h2") {
            return Err(io::Error::other("the server does not speak HTTP/2"));
        }
        let (send, connection) = h2::client::handshake(tls).await.map_err(io::Error::other)?;
        let dead = Rc::new(RefCell::new(false));
        let gone = dead.clone();
        tokio::task::spawn_local(async move {
            if let Err(e) = connection.await {
                log::debug!("DNS-over-HTTPS connection: {e}");
            }
            *gone.borrow_mut() = true;
        });
        let authority = if port == 443 {
            name.to_string()
        } else {
            format!("{name}:{port}")
        };
        let uri = http::Uri::builder()
            .scheme("https")
            .authority(authority)
            .path_and_query(path)
            .build()
            .map_err(io::Error::other)?;
        Ok(Conn::H2 { send, uri, dead })
    }
}

/// One question on one connection.
async fn exchange(conn: &Conn, question: &[u8]) -> io::Result<Vec<u8>> {
    match conn {
        Conn::Pipe(pipe) => {
            let id = u16::from_be_bytes([question[0], question[1]]);
            let (tx, rx) = oneshot::channel();
            pipe.pending.borrow_mut().insert(id, tx);
            let sent = match pipe.out.borrow().as_ref() {
                Some(out) => out.send(question.to_vec()).is_ok(),
                None => false,
            };
            if !sent {
                pipe.pending.borrow_mut().remove(&id);
                return Err(io::Error::other("connection closed"));
            }
            rx.await
                .map_err(|_| io::Error::other("connection closed before the answer"))
        }
        Conn::H2 { send, uri, .. } => post(send.clone(), uri.clone(), question).await,
    }
}

/// A DNS message with its 2-byte length (RFC 7858 §3.3, as RFC 1035 §4.2.2 for TCP).
fn frame(out: &mut Vec<u8>, message: &[u8]) {
    out.extend_from_slice(&(message.len() as u16).to_be_bytes());
    out.extend_from_slice(message);
}

/// One question as an RFC 8484 POST on its own HTTP/2 stream.
async fn post(
    send: h2::client::SendRequest<Bytes>,
    uri: http::Uri,
    question: &[u8],
) -> io::Result<Vec<u8>> {
    let mut send = send.ready().await.map_err(io::Error::other)?;
    let request = http::Request::post(uri)
        .header("content-type", "application/dns-message")
        .header("accept", "application/dns-message")
        .header("content-length", question.len())
        .body(())
        .map_err(io::Error::other)?;
    let (response, mut body_out) = send
        .send_request(request, false)
        .map_err(io::Error::other)?;
    body_out
        .send_data(Bytes::copy_from_slice(question), true)
        .map_err(io::Error::other)?;
    let response = response.await.map_err(io::Error::other)?;
    if response.status() != http::StatusCode::OK {
        return Err(io::Error::other(format!(
            "HTTP status {}",
            response.status()
        )));
    }
    let mut body = response.into_body();
    let mut answer = Vec::new();
    while let Some(chunk) = body.data().await {
        let chunk = chunk.map_err(io::Error::other)?;
        let _ = body.flow_control().release_capacity(chunk.len());
        answer.extend_from_slice(&chunk);
        if answer.len() > MAX_MESSAGE {
            return Err(io::Error::other("answer larger than a DNS message"));
        }
    }
    Ok(answer)
}
