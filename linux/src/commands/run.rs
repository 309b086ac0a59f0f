//! `embargo run`: bring up a TUN device, route a network namespace (or the whole machine)
//! through it, and drive the tunnel engine until Ctrl-C/SIGTERM; then put routing and DNS back.
//!
//! Three modes:
//! - `--netns NAME`: the TUN device is created here, in the host namespace, opened, then moved
//!   into NAME (created if missing), where it becomes the only default route (IPv4 and IPv6) and
//!   the resolver. Embargo's sockets stay in the host namespace, so they bypass the tunnel with
//!   no marks or rules.
//! - whole machine (no `--netns`): the TUN device is the default route of every packet that
//!   does not carry our fwmark (policy routing, wg-quick style; the main table is not edited).
//! - `--tun NAME --fwmark N --no-routes`: attach to an existing TUN device and only mark our
//!   sockets (the launch command of ../shared/bench/run.sh).
//!
//! Every change is written to a state file before it is made; a start after a crash reverts
//! what the killed instance left.

use std::fs;
use std::net::{IpAddr, SocketAddr};
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::{bail, Context, Result};
use embargo_app::store::{DefaultRules, Store};
use embargo_app::{with_ip_databases, Rules};
use embargo_driver::{
    DnsUpstream, DnsUpstreams, DriverConfig, Framing, FwmarkProtect, HookError, Hooks, Tunnel,
};
use embargo_engine::{EngineConfig, Event};
use embargo_policy::{Policy, Protocol};

use crate::netns;
use crate::procfs::AppResolver;
use crate::routes::{self, Changes, Scope};
use crate::rule_files::{list_set, rules_file_set};
use crate::runtime::RunControl;

/// Default fwmark (and routing table) of whole-machine mode: an arbitrary value unlikely to be
/// used by other software ("emb" in a 16-bit number).
const DEFAULT_FWMARK: u32 = 51871;

/// Arguments of `embargo run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Protect only this network namespace (created if missing; removed on exit if created).
    #[arg(long, value_name = "NAME")]
    pub netns: Option<String>,
    /// TUN device name. With --no-routes: an existing device to attach to.
    #[arg(long, value_name = "NAME")]
    pub tun: Option<String>,
    /// Mark for Embargo's own sockets (SO_MARK), so routing rules keep them out of the tunnel.
    #[arg(long, value_name = "N")]
    pub fwmark: Option<u32>,
    /// Touch no routes, rules or DNS: only attach to --tun and mark sockets.
    #[arg(long)]
    pub no_routes: bool,
    /// Compiled rule sets (`embargo lists compile`) or rule files, in addition to the built-in
    /// default.
    #[arg(long = "rules", value_name = "FILE")]
    pub rules: Vec<PathBuf>,
    /// Rule lists (AdBlock, hosts, domains, Embargo rules, ...), in addition to the built-in
    /// default and the lists added with `embargo lists add`.
    #[arg(long = "list", value_name = "FILE")]
    pub lists: Vec<PathBuf>,
    /// How much of the embargoed companies the built-in default blocks for every app:
    /// `telemetry` (their telemetry, analytics and ad measurement) or `full` (everything they
    /// own and everything in the embargoed countries). Default: `embargo default`'s setting.
    #[arg(long, value_name = "LEVEL", value_parser = embargo_app::store::parse_level)]
    pub embargo: Option<embargo_policy::EmbargoLevel>,
    /// Leave the built-in default out: only --list, --rules and the added lists apply.
    #[arg(long)]
    pub no_default: bool,
    /// Resolver that allowed DNS questions go to, repeatable: the first that answers is used
    /// and a failing one is skipped for 30 s. `ADDR[:PORT]` (plain DNS),
    /// `tls://NAME@ADDR[:PORT]` (DNS-over-TLS, NAME checked against the certificate),
    /// `https://NAME[@ADDR][:PORT]/PATH` (DNS-over-HTTPS, HTTP/2), or `network` (the host's
    /// nameservers, plain). Default: `network`'s first.
    #[arg(long, value_name = "UPSTREAM")]
    pub dns_upstream: Vec<String>,
    /// PEM file of certificate authorities trusted for DNS-over-TLS/HTTPS besides the
    /// Mozilla roots (a private resolver's CA).
    #[arg(long, value_name = "FILE")]
    pub dns_roots: Option<PathBuf>,
    /// Where the history database and the crash-recovery state live.
    #[arg(long, value_name = "DIR", default_value = "/var/lib/embargo")]
    pub state_dir: PathBuf,
    /// IP-to-ASN databases (ip-location-db `start,end,asn,org` CSV or iptoasn TSV, .gz ok),
    /// asked before the bundled ones (repeatable).
    #[arg(long = "asn-db", value_name = "FILE")]
    pub asn_dbs: Vec<PathBuf>,
    /// IP-to-country databases (ip-location-db `start,end,CC` CSV, .gz ok), asked before the
    /// bundled ones (repeatable).
    #[arg(long = "country-db", value_name = "FILE")]
    pub country_dbs: Vec<PathBuf>,
    /// MTU of the TUN device: the largest packet the apps send into the tunnel (1280 to
    /// 65535). Larger moves bulk data with fewer packets; with --offload the engine works on
    /// 64 KiB packets whatever this is.
    #[arg(long, default_value_t = 1500,
          value_parser = clap::value_parser!(u32).range(1280..=65535))]
    pub mtu: u32,
    /// Linux TUN offloads (IFF_VNET_HDR, TUNSETOFFLOAD: checksum, TSO4, TSO6): the kernel
    /// hands over TCP in 64 KiB super-packets and cuts the engine's 64 KiB segments into
    /// --mtu packets itself. On by default (`--offload false`: one packet per MTU); falls
    /// back to plain packets, with a warning, when the kernel refuses.
    #[arg(long, value_name = "BOOL", default_value_t = true, action = clap::ArgAction::Set)]
    pub offload: bool,
    /// How long a new flow may wait for its app's identity (/proc lookup) before it is decided
    /// with the app unknown, in milliseconds. 0 turns app identity off (no per-app rules, and no
    /// lookup delaying a connection's handshake).
    #[arg(long, value_name = "MS", default_value_t = 20)]
    pub app_wait_ms: u64,
    /// How often the run looks for URL lists due for an update (each list has its own
    /// interval, daily by default: `embargo lists add --every`); 0 never.
    #[arg(long, value_name = "DURATION", default_value = "10m",
          value_parser = super::output::parse_duration)]
    pub check_lists_every: std::time::Duration,
    /// Let encrypted DNS through: DNS over TLS (port 853) and the known DNS-over-HTTPS
    /// providers are refused by default, so apps fall back to the plain DNS Embargo answers
    /// and blocks.
    #[arg(long)]
    pub allow_encrypted_dns: bool,
    /// The largest a busy TCP flow's ring grows to, per direction (the window the app sees).
    /// Larger moves bulk data faster over a busy machine at the cost of memory per busy flow;
    /// all flows' growth together may then reach 4 such rings (or the default 4 MiB).
    #[arg(long, value_name = "BYTES")]
    pub tcp_buffer: Option<usize>,
    /// Flows (TCP and UDP) held at once; past it the oldest idle flow gives way. The default
    /// (10,240) keeps the engine's worst case inside a phone's budget; the open-file limit may
    /// lower either.
    #[arg(long, value_name = "N")]
    pub max_flows: Option<usize>,
}

/// The Linux hooks: SO_MARK protection, app identity from /proc, decisions counted for the
/// control socket (the history is recorded by `embargo_app::start`).
struct LinuxHooks {
    mark: FwmarkProtect,
    apps: Option<AppResolver>,
    /// Counts decisions per app for `embargo status` / `embargo apps` (control socket).
    live: Arc<crate::control::Live>,
}

impl Hooks for LinuxHooks {
    fn protect(&self, fd: RawFd) -> Result<(), HookError> {
        self.mark.protect_fd(fd)
    }

    fn app_of_flow(&self, protocol: Protocol, src: SocketAddr, dst: SocketAddr) -> Option<String> {
        self.apps.as_ref()?.app_id(protocol, src, dst)
    }

    fn on_event(&self, event: &Event) {
        if let Event::Decision(d) = event {
            self.live.record(d.app.as_deref(), d.decision.is_block());
            if d.decision.is_block() {
                // Debug, not info: the history keeps every decision; -v shows them live.
                log::debug!(
                    "blocked {} {}:{} ({:?})",
                    d.name.as_deref().unwrap_or("-"),
                    d.addr,
                    d.port,
                    d.app
                );
            }
        }
    }
}

/// Runs `embargo run` until a signal; exits non-zero when setup or the loop failed.
pub fn run(args: RunArgs) -> Result<ExitCode> {
    crate::runtime::tune_allocator();
    let nofile = raise_open_file_limit();
    let mode = Mode::of(&args)?;
    // Owner-only, and checked before anything in it is read: the history and the per-app
    // settings say what this machine's apps did, and the undo log is replayed as root.
    Store::new(&args.state_dir).create()?;
    let control = load_policy(&args, &mode)?;

    let mut changes = match &mode {
        Mode::Attach { .. } => None,
        Mode::Netns(ns) => Some(Changes::recover_and_start(
            &Store::new(&args.state_dir).undo_log(Some(ns)),
            Scope::Netns(ns.clone()),
        )?),
        Mode::Machine => Some(Changes::recover_and_start(
            &Store::new(&args.state_dir).undo_log(None),
            Scope::Machine,
        )?),
    };
    let result = run_with(&args, &mode, control, changes.as_mut(), nofile);
    if let Some(changes) = changes.as_mut() {
        changes.revert_all();
    }
    result
}

enum Mode {
    Netns(String),
    Machine,
    Attach { tun: String },
}

impl Mode {
    fn of(args: &RunArgs) -> Result<Mode> {
        if args.no_routes {
            if args.netns.is_some() {
                bail!("--no-routes and --netns exclude each other");
            }
            let Some(tun) = args.tun.clone() else {
                bail!("--no-routes needs --tun NAME (an existing TUN device)");
            };
            return Ok(Mode::Attach { tun });
        }
        Ok(match &args.netns {
            Some(name) => {
                if !routes::valid_netns_name(name) {
                    bail!(
                        "invalid namespace name {name:?}: 1 to 64 of A-Z a-z 0-9 _ . -, \
                         not starting with . or -"
                    );
                }
                Mode::Netns(name.clone())
            }
            None => Mode::Machine,
        })
    }
}

/// Opens (creating if needed) the TUN device `name` (see [`embargo_driver::tun_linux`]), with
/// offloads when asked for and the kernel takes them (the bool says whether they are on).
fn open_tun(name: &str, offload: bool) -> Result<(std::os::fd::OwnedFd, String, bool)> {
    if !offload {
        let (fd, name) = embargo_driver::tun_linux::open(name)?;
        return Ok((fd, name, false));
    }
    let (fd, name, on) = embargo_driver::tun_linux::open_offload(name)?;
    if let Err(e) = &on {
        log::warn!("{name}: the kernel refused TUN offloads ({e}): plain packets");
    }
    Ok((fd, name, on.is_ok()))
}

fn run_with(
    args: &RunArgs,
    mode: &Mode,
    control: Arc<RunControl>,
    changes: Option<&mut Changes>,
    nofile: OpenFiles,
) -> Result<ExitCode> {
    let mut mtu = args.mtu;
    let (fd, tun_name, fwmark, offload) = match mode {
        Mode::Attach { tun } => {
            let (fd, name, offload) = open_tun(tun, args.offload)?;
            // The device is someone else's: its MTU is what the apps' packets are cut to.
            if offload {
                mtu = embargo_driver::tun_linux::mtu(&name)
                    .with_context(|| format!("read the MTU of {name}"))?;
            }
            (fd, name, args.fwmark.unwrap_or(0), offload)
        }
        Mode::Netns(ns) => {
            let changes = changes.context("netns mode keeps a state file")?;
            // A kernel-chosen name ("emb%d") never collides with another instance's device.
            let (fd, name, offload) =
                open_tun(args.tun.as_deref().unwrap_or("emb%d"), args.offload)?;
            netns::protect(ns, &name, mtu, changes)?;
            (fd, name, args.fwmark.unwrap_or(0), offload)
        }
        Mode::Machine => {
            let changes = changes.context("machine mode keeps a state file")?;
            let (fd, name, offload) =
                open_tun(args.tun.as_deref().unwrap_or("embargo0"), args.offload)?;
            let mark = args.fwmark.unwrap_or(DEFAULT_FWMARK);
            if mark == 0 {
                bail!("whole-machine mode needs a non-zero --fwmark");
            }
            routes::ip(&["addr", "replace", netns::TUN_V4, "dev", &name])?;
            routes::ip(&[
                "-6",
                "addr",
                "replace",
                netns::TUN_V6,
                "dev",
                &name,
                "nodad",
            ])?;
            routes::ip(&["link", "set", &name, "mtu", &mtu.to_string(), "up"])?;
            routes::route_machine(&name, mark, changes)?;
            (fd, name, mark, offload)
        }
    };

    let (dns, dns_upstreams) = dns_upstreams(args, mode)?;
    let mut config = EngineConfig {
        // With offloads the engine's packets are the kernel's super-packets.
        mtu: if offload {
            embargo_driver::virtio_net::OFFLOAD_MTU
        } else {
            mtu as usize
        },
        dns_upstream_v4: dns,
        dns_upstream_v6: Some(dns),
        random_seed: random_seed(),
        ..EngineConfig::default()
    };
    config.app_wait = std::time::Duration::from_millis(args.app_wait_ms);
    let wanted = args.max_flows.unwrap_or(config.max_flows);
    config.max_flows = flow_cap(wanted, nofile.now);
    log::info!(
        "open-file limit {} (was {}, hard {}): up to {} flows",
        nofile.now,
        nofile.at_start,
        nofile.hard,
        config.max_flows
    );
    if config.max_flows < wanted {
        log::warn!(
            "the open-file limit ({}, hard {}) leaves room for {} flows instead of {}: \
             raise the hard limit (ulimit -Hn, LimitNOFILE=) for more",
            nofile.now,
            nofile.hard,
            config.max_flows,
            wanted
        );
    }
    control.set_limits(crate::control::Limits {
        open_files_at_start: nofile.at_start,
        open_files: nofile.now,
        open_files_hard: nofile.hard,
        max_flows: config.max_flows as u64,
    });
    config.block_encrypted_dns = !args.allow_encrypted_dns;
    if let Some(bytes) = args.tcp_buffer {
        let bytes = bytes.clamp(4096, 16 << 20);
        config.tcp_max_rx = bytes;
        config.tcp_max_tx = bytes;
        config.tcp_grow_total = config.tcp_grow_total.max(4 * bytes);
    }
    let apps = match mode {
        _ if args.app_wait_ms == 0 => None,
        Mode::Netns(ns) => AppResolver::in_netns(&Path::new("/run/netns").join(ns))
            .map_err(|e| log::warn!("app identity off: cannot enter namespace {ns}: {e}"))
            .ok(),
        _ => Some(AppResolver::current()),
    }
    .map(AppResolver::ignoring_own_process);
    config.resolve_apps = apps.is_some();
    let store = Store::new(&args.state_dir);
    let history_path = store.history_db();
    let history =
        match embargo_history::History::open(crate::runtime::history_config(&history_path)) {
            Ok(h) => Some(h),
            Err(e) => {
                log::error!("history off: {}: {e}", history_path.display());
                let why = e.to_string();
                control.set_history(Box::new(move || crate::control::HistoryHealth {
                    state: "off".into(),
                    last_error: Some(why.clone()),
                    ..Default::default()
                }));
                None
            }
        };
    if let Some(h) = &history {
        control.set_history(history_health(h));
    }
    let hooks = Arc::new(LinuxHooks {
        mark: FwmarkProtect(fwmark),
        apps,
        live: control.live(),
    });
    // The control socket (embargo status/apps/lists talk to it); without it Embargo still runs.
    let _control_server = match crate::control::Server::bind(&store) {
        Ok(server) => Some(server.spawn(control.clone())?),
        Err(e) => {
            say!("embargo: control socket off: {e:#}");
            None
        }
    };
    if !args.check_lists_every.is_zero() {
        spawn_list_updates(store.clone(), control.clone(), args.check_lists_every)?;
    }
    let tunnel = if offload {
        Tunnel::FramedFd(
            fd,
            Framing::VirtioNet {
                device_mtu: mtu.min(65535) as u16,
            },
        )
    } else {
        Tunnel::Fd(fd)
    };
    let embargo_app::Started { handle, thread } = embargo_app::start(
        tunnel,
        hooks,
        embargo_app::Config {
            engine: config,
            driver: DriverConfig {
                dns: DnsUpstreams {
                    upstreams: dns_upstreams,
                    extra_roots: args.dns_roots.clone(),
                },
                ..DriverConfig::default()
            },
            policy: control.handle(),
            history: history.as_ref().map(|h| h.recorder()),
        },
    )
    .context("start the driver loop")?;
    let stats_handle = handle.clone();
    control.set_counters(Box::new(move || {
        let s = stats_handle.stats();
        std::collections::BTreeMap::from([
            ("tun packets in".to_owned(), s.driver.tun_packets_in),
            ("tun packets out".to_owned(), s.driver.tun_packets_out),
            (
                "tun super-packets in".to_owned(),
                s.driver.tun_super_packets_in,
            ),
            (
                "tun super-packets out".to_owned(),
                s.driver.tun_super_packets_out,
            ),
            (
                "upstream sockets opened".to_owned(),
                s.driver.sockets_opened,
            ),
            ("connect failures".to_owned(), s.driver.connect_failures),
            ("flows blocked".to_owned(), s.engine.flows_blocked),
        ])
    }));

    let mut signals = signal_hook::iterator::Signals::new([
        signal_hook::consts::SIGINT,
        signal_hook::consts::SIGTERM,
        signal_hook::consts::SIGHUP,
    ])
    .context("install signal handlers")?;
    let stopper = handle.clone();
    let signal_handle = signals.handle();
    let signal_thread = std::thread::spawn(move || {
        if signals.forever().next().is_some() {
            stopper.stop();
        }
    });

    match mode {
        Mode::Netns(ns) => say!(
            "embargo: protecting network namespace {ns} (device {tun_name}, DNS via {dns}).\n\
             Try it:  sudo ip netns exec {ns} curl -sI https://example.com\n\
             Stop with Ctrl-C; routes and DNS are restored on exit."
        ),
        Mode::Machine => say!(
            "embargo: protecting this machine (device {tun_name}, fwmark {fwmark}, DNS via {dns}). \
             Stop with Ctrl-C; routing is restored on exit."
        ),
        Mode::Attach { .. } => say!(
            "embargo: attached to {tun_name} (fwmark {fwmark}, DNS via {dns}); routes untouched."
        ),
    }

    let outcome = thread
        .join()
        .map_err(|_| anyhow::anyhow!("driver thread panicked"))?;
    signal_handle.close();
    let _ = signal_thread.join();
    let stats = handle.stats();
    say!(
        "embargo: stopped: {} packets in, {} out ({} and {} super-packets), {} upstream sockets, \
         {} connect failures, {} flows blocked; DNS {} forwarded, {} from cache, {} blocked; \
         {} loop wake-ups",
        stats.driver.tun_packets_in,
        stats.driver.tun_packets_out,
        stats.driver.tun_super_packets_in,
        stats.driver.tun_super_packets_out,
        stats.driver.sockets_opened,
        stats.driver.connect_failures,
        stats.engine.flows_blocked,
        stats.engine.dns_forwarded,
        stats.engine.dns_cached,
        stats.engine.dns_blocked,
        stats.driver.wakeups
    );
    if let Some(history) = &history {
        if let Err(e) = history.recorder().flush() {
            say!("embargo: history flush: {e}");
        }
    }
    outcome.context("driver loop")?;
    Ok(ExitCode::SUCCESS)
}

/// The history's health for `embargo status`: ok or failing, events committed and dropped
/// since start, and the latest problem (kept after writes resume; a damaged file moved aside
/// at open counts as one).
fn history_health(history: &embargo_history::History) -> crate::runtime::HistorySource {
    let watch = embargo_app::HistoryWatch::new(history);
    Box::new(move || {
        let h = watch.health();
        crate::control::HistoryHealth {
            state: if h.ok { "ok" } else { "failing" }.into(),
            committed: h.committed,
            dropped: h.dropped,
            failing_since_ms: h.failing_since_ms,
            last_error: h.last_error,
        }
    })
}

/// The open-file limits: at start, now, hard.
#[derive(Debug, Clone, Copy)]
struct OpenFiles {
    at_start: u64,
    now: u64,
    hard: u64,
}

/// Descriptors kept for everything but flows: the TUN device, the poll and its waker, the
/// DNS sockets and DNS-over-TCP exchanges, the history's files, the control socket and its
/// clients, netlink and /proc reads, the `ip` commands' pipes.
const FD_RESERVE: u64 = 256;

/// Descriptors one flow holds: its upstream socket (TCP stream or connected UDP socket).
const FDS_PER_FLOW: u64 = 1;

/// Fewest flows the cap goes down to, whatever the limit (below it the limit is the problem,
/// and the warning says so).
const MIN_FLOWS: usize = 64;

/// Raises the soft RLIMIT_NOFILE to the hard limit (capped by `fs.nr_open`). With the usual
/// soft limit of 1024, past ~1,000 flows every new upstream socket failed (EMFILE) and each new
/// connection was accepted, then reset.
fn raise_open_file_limit() -> OpenFiles {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one rlimit into the struct we own.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut lim) } != 0 {
        log::warn!(
            "getrlimit(RLIMIT_NOFILE): {}",
            std::io::Error::last_os_error()
        );
        return OpenFiles {
            at_start: 1024,
            now: 1024,
            hard: 1024,
        };
    }
    let at_start: u64 = lim.rlim_cur;
    let mut target = lim.rlim_max;
    if target == libc::RLIM_INFINITY {
        target = fs::read_to_string("/proc/sys/fs/nr_open")
            .ok()
            .and_then(|t| t.trim().parse().ok())
            .unwrap_or(1 << 20);
    }
    let mut now = at_start;
    if target > lim.rlim_cur {
        let raised = libc::rlimit {
            rlim_cur: target,
            rlim_max: lim.rlim_max,
        };
        // SAFETY: setrlimit reads one rlimit we own.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raised) } == 0 {
            now = target;
        } else {
            log::warn!(
                "could not raise the open-file limit from {at_start} to {target}: {}",
                std::io::Error::last_os_error()
            );
        }
    }
    OpenFiles {
        at_start,
        now,
        hard: lim.rlim_max,
    }
}

/// The flow cap: the engine's `default`, or fewer when the open-file limit `nofile` cannot
/// hold a socket for each (after [`FD_RESERVE`]).
fn flow_cap(default: usize, nofile: u64) -> usize {
    let room = nofile.saturating_sub(FD_RESERVE) / FDS_PER_FLOW;
    default
        .min(usize::try_from(room).unwrap_or(usize::MAX))
        .max(MIN_FLOWS)
}

/// The policy: the built-in default (at the level `--embargo` or the state says, unless
/// `--no-default`), the command line's lists and compiled sets, and the state's lists and app
/// settings (`embargo_app::assemble`).
fn load_policy(args: &RunArgs, mode: &Mode) -> Result<Arc<RunControl>> {
    let builtin = Policy::builtin();
    let mut sets = Vec::new();
    for path in &args.rules {
        sets.push(Arc::new(rules_file_set(path)?));
    }
    for path in &args.lists {
        let (set, report) = list_set(path, None)?;
        let binary = embargo_app::list::file_looks_binary(path);
        if let embargo_app::list::ListHealth::Unusable(why) =
            embargo_app::list::judge(&report, binary)
        {
            bail!(
                "--list {}: {why}. Refusing to start: fix the list or leave it out",
                path.display()
            );
        }
        sets.push(Arc::new(set));
    }
    let policy = Policy::new(sets, builtin.ipdb().clone(), Default::default());
    let base = Arc::new(with_ip_databases(
        &policy,
        &args.asn_dbs,
        &args.country_dbs,
    )?);
    let what = match mode {
        Mode::Netns(ns) => format!("netns {ns}"),
        Mode::Machine => "this machine".to_owned(),
        Mode::Attach { tun } => format!("tun {tun}"),
    };
    // Lists added with `embargo lists add` and per-app settings from the state directory.
    let rules = Rules::new(
        Store::new(&args.state_dir),
        base,
        DefaultRules::from_flags(args.embargo, args.no_default),
    );
    let control = Arc::new(RunControl::new(rules, what));
    let report = crate::control::Handler::reload(&*control).map_err(anyhow::Error::msg)?;
    for note in &report.notes {
        log::info!("{note}");
    }
    if let Some(first) = report.unusable.first() {
        bail!(
            "{first}. Refusing to start: fix the list, or `embargo lists remove` it{}",
            if report.unusable.len() > 1 {
                format!(" ({} lists like it)", report.unusable.len())
            } else {
                String::new()
            }
        );
    }
    Ok(control)
}

/// `--dns-upstream` (each in turn; `network` is the host's nameservers), else the host's
/// first usable nameserver: the engine's resolver address and the driver's upstreams
/// ([`embargo_driver::dns_upstream::route`]).
fn dns_upstreams(args: &RunArgs, mode: &Mode) -> Result<(SocketAddr, Vec<DnsUpstream>)> {
    let mut upstreams = Vec::new();
    for text in &args.dns_upstream {
        if text == "network" {
            upstreams.extend(
                network_nameservers(mode)
                    .into_iter()
                    .map(DnsUpstream::Plain),
            );
            continue;
        }
        let upstream: DnsUpstream = text
            .parse()
            .with_context(|| format!("--dns-upstream {text:?}"))?;
        upstreams.push(upstream);
    }
    if args.dns_upstream.is_empty() {
        upstreams.extend(
            network_nameservers(mode)
                .into_iter()
                .take(1)
                .map(DnsUpstream::Plain),
        );
    }
    embargo_driver::dns_upstream::route(upstreams)
        .context("no usable nameserver in /etc/resolv.conf: give --dns-upstream ADDR")
}

/// The host's usable nameservers (the network's own resolvers), on port 53.
fn network_nameservers(mode: &Mode) -> Vec<SocketAddr> {
    let candidates = ["/etc/resolv.conf", "/run/systemd/resolve/resolv.conf"];
    let mut found = Vec::new();
    for path in candidates {
        let Ok(text) = fs::read_to_string(path) else {
            continue;
        };
        for addr in nameservers(&text) {
            // In whole-machine mode a loopback resolver (systemd-resolved) would send its own
            // queries back through the tunnel to us: a loop. Take its upstream instead.
            if addr.is_loopback() && matches!(mode, Mode::Machine) {
                continue;
            }
            found.push(SocketAddr::new(addr, 53));
        }
        if !found.is_empty() {
            break;
        }
    }
    found
}

fn nameservers(resolv_conf: &str) -> Vec<IpAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
                .and_then(|a| a.split('%').next())
                .and_then(|a| a.parse().ok())
        })
        .collect()
}

/// Seed for the engine's sequence numbers and DNS ids: from the kernel's random pool.
fn random_seed() -> u64 {
    let mut bytes = [0u8; 8];
    if let Ok(mut f) = fs::File::open("/dev/urandom") {
        use std::io::Read;
        let _ = f.read_exact(&mut bytes);
    }
    u64::from_ne_bytes(bytes) ^ (std::process::id() as u64) << 32
}

/// Keeps URL lists current while the run lasts: every `every`, the lists due are checked
/// (conditionally) and, when one changed, the running policy is reloaded; a refused download
/// keeps the last good copy and is recorded for `lists show` and `status`.
fn spawn_list_updates(
    store: Store,
    control: Arc<RunControl>,
    every: std::time::Duration,
) -> Result<()> {
    std::thread::Builder::new()
        .name("list-updates".into())
        .spawn(move || loop {
            std::thread::sleep(every);
            let outcomes = match embargo_app::fetch::update_lists(
                &store,
                embargo_app::fetch::Which::Due,
                false,
                &embargo_app::fetch::Quiet,
            ) {
                Ok(o) => o,
                Err(e) => {
                    log::warn!("list updates: {e:#}");
                    continue;
                }
            };
            for (name, outcome) in &outcomes {
                match outcome {
                    embargo_app::fetch::Outcome::Refused(why) => {
                        log::warn!("list {name}: update refused, keeping the last good copy: {why}")
                    }
                    embargo_app::fetch::Outcome::Updated => {
                        log::info!("list {name}: a new version downloaded")
                    }
                    embargo_app::fetch::Outcome::Unchanged => {
                        log::debug!("list {name}: unchanged")
                    }
                }
            }
            if outcomes
                .iter()
                .any(|(_, o)| *o == embargo_app::fetch::Outcome::Updated)
            {
                match crate::control::Handler::reload(&*control) {
                    Ok(report) => log::info!("lists updated: {} rules in force", report.rules),
                    Err(e) => log::warn!("reload after a list update: {e}"),
                }
            }
        })
        .context("start the list-update thread")?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `status` reports the history's health, including a damaged file set aside at open
    /// (otherwise only a log line, easily lost).
    #[test]
    fn history_health_reports_ok_and_a_file_set_aside_at_open() {
        let dir = std::env::temp_dir().join(format!("embargo-run-health-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let db = dir.join("history.db");
        let h = embargo_history::History::open(embargo_history::Config::new(&db)).unwrap();
        let health = history_health(&h)();
        assert_eq!(health.state, "ok");
        assert_eq!((health.dropped, health.last_error), (0, None));
        drop(h);
        for suffix in ["-wal", "-shm"] {
            let _ = fs::remove_file(format!("{}{suffix}", db.display()));
        }
        fs::write(&db, b"not a database ".repeat(500)).unwrap();
        let h = embargo_history::History::open(embargo_history::Config::new(&db)).unwrap();
        let health = history_health(&h)();
        assert_eq!(health.state, "ok");
        let problem = health.last_error.expect("the damaged file is reported");
        assert!(problem.contains("moved to"), "{problem}");
        drop(h);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn the_flow_cap_fits_the_open_file_limit() {
        let default = EngineConfig::default().max_flows;
        assert_eq!(flow_cap(default, 1 << 20), default);
        assert_eq!(flow_cap(default, 1024), 768);
        assert_eq!(flow_cap(default, 100), MIN_FLOWS);
    }

    #[test]
    fn reads_nameservers_and_dns_addresses() {
        let text = "# x\nsearch lan\nnameserver 127.0.0.53\nnameserver fe80::1%eth0\nnameserver 10.0.0.1\n";
        let got = nameservers(text);
        assert_eq!(got.len(), 3);
        assert_eq!(got[2], "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        run: RunArgs,
    }

    fn run_args(upstreams: &[&str]) -> RunArgs {
        let mut argv = vec!["run".to_string()];
        for u in upstreams {
            argv.push(format!("--dns-upstream={u}"));
        }
        <Cli as clap::Parser>::try_parse_from(argv).unwrap().run
    }

    #[test]
    fn dns_upstreams_in_order_with_a_lone_plain_one_left_to_the_engine() {
        let (engine, driver) = dns_upstreams(&run_args(&["10.200.2.1"]), &Mode::Machine).unwrap();
        assert_eq!(engine, "10.200.2.1:53".parse().unwrap());
        assert!(driver.is_empty());
        let (engine, driver) = dns_upstreams(
            &run_args(&[
                "tls://dns.test@10.200.2.1",
                "https://dns.test@10.200.2.2/dns-query",
            ]),
            &Mode::Machine,
        )
        .unwrap();
        assert_eq!(engine, "10.200.2.1:853".parse().unwrap());
        assert_eq!(driver.len(), 2);
        let e = dns_upstreams(&run_args(&["tls://dns.test"]), &Mode::Machine).unwrap_err();
        let text = format!("{e:#}");
        assert!(text.contains("--dns-upstream \"tls://dns.test\""), "{text}");
        assert!(text.contains("NAME@ADDR"), "{text}");
    }
}
