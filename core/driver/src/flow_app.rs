//! App identity off the packet path: a worker thread asks the platform's `app_of_flow` hook
//! (a /proc walk on Linux, a binder call on Android: both slow) and sends the answer back to
//! the loop through a channel, waking it with a `mio::Waker`. Answers are cached.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{self, Receiver, Sender};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use embargo_policy::Protocol;

use crate::Hooks;

/// How long an answer stays cached. Android peers cache `getConnectionOwnerUid` for 300 s;
/// a flow tuple is reused only when a source port is, so a minute is plenty and keeps stale
/// answers rare.
const CACHE_TTL: Duration = Duration::from_secs(60);

/// Bound on cached answers (a few hundred bytes each): past it the cache starts over.
const CACHE_CAP: usize = 4096;

type Key = (Protocol, SocketAddr, SocketAddr);

/// One question to the worker.
struct Ask<F> {
    flow: F,
    key: Key,
    asked: Instant,
    /// The engine holds traffic for this answer: wake the loop for it. Other answers only
    /// name events and are taken at the loop's next pass: a wake-up per flow (a loop pass
    /// and two context switches on the cores the app needs) bought nothing for them.
    urgent: bool,
}

/// Questions older than this are dropped unanswered: the engine decided those flows without
/// the app long ago (it waits `app_wait`, 20 ms by default), and under a burst of new flows
/// (wrk -c1000) answering stale questions would only delay the fresh ones behind them.
const MAX_ASK_AGE: Duration = Duration::from_millis(500);

/// Puts the calling (worker) thread in `SCHED_BATCH`: same CPU share as before, but its
/// wake-up no longer preempts the thread running on that core. A question is asked at the
/// app's SYN, and a lookup that preempts the app delays the request it is about to send. The
/// answer is still wanted within the engine's app wait (20 ms), which a fair share gives; less
/// than a fair share would lose short-lived processes before their lookup runs, and naming who
/// sent what is the point (docs/decisions.md). Failure (a platform that refuses the policy)
/// leaves the thread as it was.
fn yield_to_the_traffic() {
    #[cfg(any(target_os = "linux", target_os = "android"))]
    {
        let param = libc::sched_param { sched_priority: 0 };
        // SAFETY: pid 0 is the calling thread; `param` is a valid sched_param for the call.
        let _ = unsafe { libc::sched_setscheduler(0, libc::SCHED_BATCH, &param) };
    }
}

/// The next question to answer: the oldest one the engine holds traffic for, else the oldest.
fn next_ask<F>(pending: &mut VecDeque<Ask<F>>) -> Option<Ask<F>> {
    match pending.iter().position(|a| a.urgent) {
        Some(i) => pending.remove(i),
        None => pending.pop_front(),
    }
}

/// The loop's end of the worker: send questions, take answers.
pub struct FlowAppResolver<F> {
    asks: Option<Sender<Ask<F>>>,
    /// Set on drop: the worker quits without working through a backlog.
    stop: Arc<AtomicBool>,
    answers: Receiver<(F, Option<String>)>,
    worker: Option<JoinHandle<()>>,
}

impl<F: Send + 'static> FlowAppResolver<F> {
    /// Starts the worker. `wake` is called after each answer so the loop picks it up.
    pub fn start(hooks: Arc<dyn Hooks>, wake: Box<dyn Fn() + Send>) -> std::io::Result<Self> {
        let (ask_tx, ask_rx) = mpsc::channel::<Ask<F>>();
        let (ans_tx, ans_rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stop_flag = stop.clone();
        let worker = std::thread::Builder::new()
            .name("embargo-flow-app".into())
            .spawn(move || {
                yield_to_the_traffic();
                let mut cache: HashMap<Key, (Option<String>, Instant)> = HashMap::new();
                let mut pending: VecDeque<Ask<F>> = VecDeque::new();
                loop {
                    if pending.is_empty() {
                        match ask_rx.recv() {
                            Ok(ask) => pending.push_back(ask),
                            Err(_) => break,
                        }
                    }
                    // Everything queued so far, so a held flow's question overtakes the
                    // record-only ones before it.
                    pending.extend(ask_rx.try_iter());
                    let Some(ask) = next_ask(&mut pending) else {
                        continue;
                    };
                    if stop.load(Ordering::Relaxed) {
                        break;
                    }
                    let now = Instant::now();
                    if now.duration_since(ask.asked) > MAX_ASK_AGE {
                        continue;
                    }
                    let answer = match cache.get(&ask.key) {
                        Some((app, at)) if now.duration_since(*at) < CACHE_TTL => app.clone(),
                        _ => {
                            let (proto, src, dst) = ask.key;
                            let app = hooks.app_of_flow(proto, src, dst);
                            if cache.len() >= CACHE_CAP {
                                cache.clear();
                            }
                            cache.insert(ask.key, (app.clone(), now));
                            app
                        }
                    };
                    if ans_tx.send((ask.flow, answer)).is_err() {
                        break;
                    }
                    if ask.urgent {
                        wake();
                    }
                }
            })?;
        Ok(FlowAppResolver {
            stop: stop_flag,
            asks: Some(ask_tx),
            answers: ans_rx,
            worker: Some(worker),
        })
    }

    /// Queues a question; never blocks. `urgent`: wake the loop with the answer (the engine
    /// holds traffic for it); otherwise the answer waits for the loop's next pass.
    pub fn ask(&self, flow: F, proto: Protocol, src: SocketAddr, dst: SocketAddr, urgent: bool) {
        if let Some(tx) = &self.asks {
            // The worker only stops when we drop the sender: a send error cannot happen
            // while `self` lives, and losing one answer only leaves a flow unattributed.
            let _ = tx.send(Ask {
                flow,
                key: (proto, src, dst),
                asked: Instant::now(),
                urgent,
            });
        }
    }

    /// Takes one answer, if any arrived.
    pub fn try_answer(&self) -> Option<(F, Option<String>)> {
        self.answers.try_recv().ok()
    }
}

impl<F> Drop for FlowAppResolver<F> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        self.asks = None;
        if let Some(w) = self.worker.take() {
            let _ = w.join();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::HookError;
    use std::os::fd::RawFd;
    use std::sync::atomic::{AtomicUsize, Ordering};

    struct Counting(AtomicUsize);
    impl Hooks for Counting {
        fn protect(&self, _fd: RawFd) -> Result<(), HookError> {
            Ok(())
        }
        fn app_of_flow(&self, _p: Protocol, src: SocketAddr, _d: SocketAddr) -> Option<String> {
            self.0.fetch_add(1, Ordering::SeqCst);
            Some(format!("app-{}", src.port()))
        }
    }

    /// Answers every question, holding the first one (after saying so on `entered`) until
    /// `gate` is dropped, so that others queue behind it.
    struct Gated {
        entered: std::sync::Mutex<Option<mpsc::Sender<()>>>,
        gate: std::sync::Mutex<Option<mpsc::Receiver<()>>>,
    }
    impl Hooks for Gated {
        fn protect(&self, _fd: RawFd) -> Result<(), HookError> {
            Ok(())
        }
        fn app_of_flow(&self, _p: Protocol, src: SocketAddr, _d: SocketAddr) -> Option<String> {
            if let Some(gate) = self.gate.lock().unwrap().take() {
                if let Some(entered) = self.entered.lock().unwrap().take() {
                    let _ = entered.send(());
                }
                let _ = gate.recv();
            }
            Some(format!("app-{}", src.port()))
        }
    }

    fn answers_in_order(r: &FlowAppResolver<u32>, n: usize) -> Vec<(u32, String)> {
        let mut out = Vec::new();
        for _ in 0..400 {
            while let Some((flow, app)) = r.try_answer() {
                out.push((flow, app.unwrap_or_default()));
            }
            if out.len() == n {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        out
    }

    #[test]
    fn held_questions_overtake_record_only_ones() {
        let (open, gate) = mpsc::channel();
        let (entered_tx, entered) = mpsc::channel();
        let hooks = Arc::new(Gated {
            entered: std::sync::Mutex::new(Some(entered_tx)),
            gate: std::sync::Mutex::new(Some(gate)),
        });
        let r: FlowAppResolver<u32> = FlowAppResolver::start(hooks, Box::new(|| {})).unwrap();
        let dst: SocketAddr = "10.0.0.1:443".parse().unwrap();
        let src = |port: u16| SocketAddr::from(([10, 0, 0, 2], port));
        // The first question blocks the worker; three more queue behind it.
        r.ask(1, Protocol::Tcp, src(5001), dst, false);
        entered.recv().unwrap();
        r.ask(2, Protocol::Tcp, src(5002), dst, false);
        r.ask(3, Protocol::Tcp, src(5003), dst, false);
        r.ask(4, Protocol::Tcp, src(5004), dst, true);
        drop(open);
        let answers = answers_in_order(&r, 4);
        let order: Vec<u32> = answers.iter().map(|a| a.0).collect();
        assert_eq!(
            order,
            vec![1, 4, 2, 3],
            "the held flow's question waited: {answers:?}"
        );
    }

    #[test]
    fn answers_come_back_and_repeats_hit_the_cache() {
        let hooks = Arc::new(Counting(AtomicUsize::new(0)));
        let (wake_tx, wake_rx) = mpsc::channel();
        let r: FlowAppResolver<u32> = FlowAppResolver::start(
            hooks.clone(),
            Box::new(move || {
                let _ = wake_tx.send(());
            }),
        )
        .unwrap();
        let src: SocketAddr = "10.0.0.2:4000".parse().unwrap();
        let dst: SocketAddr = "10.0.0.1:443".parse().unwrap();
        r.ask(1, Protocol::Tcp, src, dst, true);
        r.ask(2, Protocol::Tcp, src, dst, true);
        wake_rx.recv().unwrap();
        wake_rx.recv().unwrap();
        assert_eq!(r.try_answer(), Some((1, Some("app-4000".into()))));
        assert_eq!(r.try_answer(), Some((2, Some("app-4000".into()))));
        assert_eq!(hooks.0.load(Ordering::SeqCst), 1);
    }

    #[test]
    fn answers_nobody_waits_for_do_not_wake_the_loop() {
        let hooks = Arc::new(Counting(AtomicUsize::new(0)));
        let (wake_tx, wake_rx) = mpsc::channel();
        let r: FlowAppResolver<u32> = FlowAppResolver::start(
            hooks,
            Box::new(move || {
                let _ = wake_tx.send(());
            }),
        )
        .unwrap();
        let src: SocketAddr = "10.0.0.2:4001".parse().unwrap();
        let dst: SocketAddr = "10.0.0.1:443".parse().unwrap();
        r.ask(7, Protocol::Tcp, src, dst, false);
        let mut answer = None;
        for _ in 0..200 {
            answer = r.try_answer();
            if answer.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(5));
        }
        assert_eq!(answer, Some((7, Some("app-4001".into()))));
        assert!(
            wake_rx.try_recv().is_err(),
            "a naming-only answer woke the loop"
        );
    }
}
