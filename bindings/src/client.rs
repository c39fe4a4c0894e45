//! [`VpnClient`]: the one object an app holds. It owns the tokio runtime and at most one session.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use ikelink::driver::{ReconnectPolicy, Session, SessionEvent, SessionOptions};
use ikelink::ike::State;
use ikelink::platform::PlatformHooks;
use tokio::sync::mpsc;
use tracing::{debug, warn};
use zeroize::Zeroizing;

use crate::error::VpnError;
use crate::options::ConnectOptions;
use crate::platform::{guard, ResolverAdapter, SocketProtector, TunProvider, VpnListener};
#[cfg(unix)]
use crate::platform::{ProtectAdapter, TunAdapter};
use crate::profile;
use crate::types::{SessionDetails, TunnelState, VpnEvent, VpnStatus};

/// How long a command may wait for the session to take it (it normally takes microseconds).
const COMMAND_TIMEOUT: Duration = Duration::from_secs(2);
/// The TUN MTUs we accept: IPv4's minimum datagram size up to jumbo frames.
const MIN_MTU: u16 = 576;
const MAX_MTU: u16 = 9000;
/// How long we wait for the session's task to finish after it reported `Closed`.
const JOIN_TIMEOUT: Duration = Duration::from_secs(5);

/// An IKEv2 VPN client for one app: connect with a profile, hear about it on the listener.
///
/// All methods return at once; progress and results arrive as `VpnEvent`s. Call `disconnect` and wait for
/// `Closed` before dropping the client; dropping it with a session still up disconnects it first (the Delete
/// is sent, and the drop waits at most two seconds for the session to end).
#[derive(uniffi::Object)]
pub struct VpnClient {
    runtime: Option<tokio::runtime::Runtime>,
    listener: Arc<dyn VpnListener>,
    hooks: PlatformHooks,
    /// Ikelink opens its own TUN and sets routes and DNS ([`VpnClient::desktop`]), instead of the OS doing it
    /// through the app's TUN provider.
    manages_network: bool,
    shared: Arc<Mutex<Shared>>,
}

/// State shared between the app's calls and the session task.
struct Shared {
    status: VpnStatus,
    /// Commands to the running session; `None` when there is none.
    commands: Option<mpsc::UnboundedSender<Command>>,
    /// Counts sessions, so a finished one never clears its successor's state.
    generation: u64,
}

enum Command {
    Disconnect,
    NetworkChanged,
    Stats,
}

impl VpnClient {
    fn with_hooks(
        listener: Arc<dyn VpnListener>,
        hooks: PlatformHooks,
        manages_network: bool,
    ) -> Result<Arc<Self>, VpnError> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .thread_name("ikelink")
            .on_thread_start(crate::logging::attach_to_thread)
            .enable_all()
            .build()
            .map_err(|e| VpnError::Platform { reason: format!("cannot start the runtime: {e}") })?;
        let status =
            VpnStatus { state: TunnelState::Disconnected, details: None, stats: Default::default(), last_error: None };
        let shared = Arc::new(Mutex::new(Shared { status, commands: None, generation: 0 }));
        Ok(Arc::new(VpnClient { runtime: Some(runtime), listener, hooks, manages_network, shared }))
    }
}

fn lock(shared: &Mutex<Shared>) -> Result<MutexGuard<'_, Shared>, VpnError> {
    shared.lock().map_err(|_| VpnError::Internal { reason: "client state poisoned".into() })
}

#[uniffi::export]
impl VpnClient {
    /// A client that reports to `listener`, opens its TUN through `tun_provider` and, on Android, protects
    /// its sockets through `socket_protector` (Apple platforms need none: pass null/nil). Android and Apple
    /// platforms; elsewhere use `VpnClient.desktop`.
    #[uniffi::constructor]
    pub fn new(
        listener: Arc<dyn VpnListener>,
        tun_provider: Arc<dyn TunProvider>,
        socket_protector: Option<Arc<dyn SocketProtector>>,
    ) -> Result<Arc<Self>, VpnError> {
        #[cfg(unix)]
        {
            let hooks = PlatformHooks {
                tun: Some(Arc::new(TunAdapter(tun_provider))),
                protect: socket_protector.map(|p| Arc::new(ProtectAdapter(p)) as _),
                resolve: None,
            };
            Self::with_hooks(listener, hooks, false)
        }
        #[cfg(not(unix))]
        {
            let _ = (listener, tun_provider, socket_protector);
            Err(VpnError::Platform {
                reason: "a TUN provider is for Android and Apple platforms: use VpnClient.desktop here".into(),
            })
        }
    }

    /// A client for desktop apps (Linux, macOS, Windows): Ikelink opens its own TUN (Wintun on Windows) and
    /// sets the routes and DNS itself, as the `ikelink` command does, undoing them when the session ends; it
    /// needs the rights for that (root, Administrator).
    #[uniffi::constructor]
    pub fn desktop(listener: Arc<dyn VpnListener>) -> Result<Arc<Self>, VpnError> {
        Self::with_hooks(listener, PlatformHooks::default(), true)
    }

    /// Starts a session with `profile_toml` (the CLI's profile format). Profile and credential errors are
    /// returned here; everything later (gateway unreachable, authentication...) arrives as `Closed`.
    pub fn connect(&self, profile_toml: String, options: ConnectOptions) -> Result<(), VpnError> {
        let runtime = self.runtime.as_ref().ok_or(VpnError::Internal { reason: "no runtime".into() })?;
        let profile_toml = Zeroizing::new(profile_toml);
        if !(MIN_MTU..=MAX_MTU).contains(&options.mtu) {
            let message = format!("mtu {} is not between {MIN_MTU} and {MAX_MTU}", options.mtu);
            return Err(VpnError::InvalidOptions { reason: message });
        }
        let checked = profile::check(
            &profile_toml,
            options.client_identity,
            options.gateway_trust,
            options.secret,
            options.ppk_secret,
        )?;
        profile::check_kill_switch(&checked, options.kill_switch_by_os)?;
        let session_options = SessionOptions {
            data_plane: true,
            tun_name: None,
            mtu: options.mtu,
            // With a TUN provider the OS applies routes and DNS; a desktop client sets them itself, journaled in
            // the platform's state directory so that a crash is undone on the next start.
            configure_network: self.manages_network,
            state_dir: if self.manages_network { ikelink::platform::default_state_dir() } else { std::env::temp_dir() },
            stats_interval: (options.stats_interval_secs > 0)
                .then(|| Duration::from_secs(u64::from(options.stats_interval_secs))),
            reconnect: options.reconnect.then(|| ReconnectPolicy {
                max_delay: Duration::from_secs(u64::from(options.reconnect_max_delay_secs.max(1))),
                ..ReconnectPolicy::default()
            }),
            // A mobile app reports network changes (`network_changed`); a desktop client watches them itself.
            watch_network: self.manages_network.then(|| Duration::from_secs(1)),
        };
        let (tx, rx) = mpsc::unbounded_channel();
        let generation = {
            let mut shared = lock(&self.shared)?;
            if shared.commands.is_some() {
                return Err(VpnError::AlreadyConnected);
            }
            shared.commands = Some(tx);
            shared.generation += 1;
            shared.status = VpnStatus {
                state: TunnelState::Connecting,
                details: None,
                stats: Default::default(),
                last_error: None,
            };
            shared.generation
        };
        let task = Task {
            listener: self.listener.clone(),
            shared: self.shared.clone(),
            generation,
            state: TunnelState::Disconnected,
        };
        let mut hooks = self.hooks.clone();
        hooks.resolve = options.resolver.map(|r| Arc::new(ResolverAdapter(r)) as _);
        runtime.spawn(task.run(checked, session_options, hooks, rx));
        Ok(())
    }

    /// Closes the session (a Delete to the gateway); `Closed` follows.
    pub fn disconnect(&self) -> Result<(), VpnError> {
        self.command(Command::Disconnect)
    }

    /// The device's network changed (Android `ConnectivityManager.NetworkCallback`, Apple `NWPathMonitor`):
    /// move the tunnel to the new path (MOBIKE) or reconnect.
    pub fn network_changed(&self) -> Result<(), VpnError> {
        self.command(Command::NetworkChanged)
    }

    /// Asks for a `Stats` event with fresh counters.
    pub fn request_stats(&self) -> Result<(), VpnError> {
        self.command(Command::Stats)
    }

    /// Where the client stands now (state, what was negotiated, the last counters, the last error).
    pub fn status(&self) -> Result<VpnStatus, VpnError> {
        Ok(lock(&self.shared)?.status.clone())
    }
}

impl VpnClient {
    fn command(&self, c: Command) -> Result<(), VpnError> {
        let shared = lock(&self.shared)?;
        let commands = shared.commands.as_ref().ok_or(VpnError::NotConnected)?;
        commands.send(c).map_err(|_| VpnError::NotConnected)
    }
}

/// How long dropping a [`VpnClient`] waits for the runtime's threads to stop.
const SHUTDOWN_WAIT: std::time::Duration = std::time::Duration::from_secs(3);
/// How long dropping a [`VpnClient`] with a session up waits for that session to close (its Delete is sent at
/// once; this bounds waiting for the gateway's answer). The `VpnClient` docs, which the app reads, say "two
/// seconds".
pub const DROP_DISCONNECT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

impl Drop for VpnClient {
    fn drop(&mut self) {
        let on_runtime = tokio::runtime::Handle::try_current().is_ok();
        // A session still up: tell the gateway (RFC 7296 §1.4.1 Delete), as `disconnect` would, so its SAs do
        // not linger until its DPD notices.
        if self.command(Command::Disconnect).is_ok() && !on_runtime {
            debug!("client dropped with a session up: disconnecting first");
            let deadline = std::time::Instant::now() + DROP_DISCONNECT_WAIT;
            while std::time::Instant::now() < deadline && lock(&self.shared).is_ok_and(|s| s.commands.is_some()) {
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let Some(rt) = self.runtime.take() else { return };
        if on_runtime {
            // Dropped on a runtime thread (from a callback): waiting there is not allowed.
            rt.shutdown_background();
        } else {
            // Wait (bounded) until no runtime thread runs any more: the app may unload the library or, like
            // Python at exit, stop threads that call into it afterwards.
            rt.shutdown_timeout(SHUTDOWN_WAIT);
        }
    }
}

/// One session, from resolving the profile to `Closed`.
struct Task {
    listener: Arc<dyn VpnListener>,
    shared: Arc<Mutex<Shared>>,
    generation: u64,
    /// The last state reported.
    state: TunnelState,
}

impl Task {
    async fn run(
        mut self,
        checked: profile::Checked,
        options: SessionOptions,
        hooks: PlatformHooks,
        mut commands: mpsc::UnboundedReceiver<Command>,
    ) {
        self.set_state(TunnelState::Connecting);
        // Resolving may query DNS: off the runtime's threads, and abandoned if the app disconnects meanwhile.
        let resolver = hooks.resolve.clone();
        let resolving = tokio::task::spawn_blocking(move || checked.resolve(resolver.as_deref()));
        let resolved = tokio::select! {
            r = resolving => match r {
                Ok(Ok(r)) => r,
                Ok(Err(e)) => return self.finish(Some(e)),
                Err(e) => return self.finish(Some(VpnError::Internal { reason: e.to_string() })),
            },
            Some(Command::Disconnect) = commands.recv() => return self.finish(None),
        };
        let gateway = resolved.gateway.ip();
        let (tx, mut events) = mpsc::channel(64);
        let session = match Session::start_with_hooks(resolved, options, hooks, tx).await {
            Ok(s) => s,
            Err(e) => return self.finish(Some(VpnError::from(&e))),
        };
        let mut session = Some(session);
        let mut closing = None;
        let mut commands_open = true;
        loop {
            tokio::select! {
                ev = events.recv() => match ev {
                    Some(SessionEvent::Closed(reason)) => {
                        // The driver's own error (TUN, sockets) says more than the IKE reason it reports.
                        let ended = match (session.take(), closing.take()) {
                            (Some(s), _) => tokio::time::timeout(JOIN_TIMEOUT, s.join()).await.ok(),
                            (None, Some(h)) => tokio::time::timeout(JOIN_TIMEOUT, h).await.ok().and_then(Result::ok),
                            (None, None) => None,
                        };
                        let error = match ended {
                            Some(Err(e)) => Some(VpnError::from(&e)),
                            _ => VpnError::of_close(&reason),
                        };
                        return self.finish(error);
                    }
                    Some(ev) => self.forward(ev, gateway),
                    None => {
                        let message = "the session ended without saying why".into();
                        return self.finish(Some(VpnError::Internal { reason: message }));
                    }
                },
                c = commands.recv(), if commands_open => match (c, session.as_ref()) {
                    (Some(Command::Disconnect), Some(_)) => {
                        if let Some(s) = session.take() {
                            closing = Some(tokio::spawn(s.disconnect()));
                        }
                    }
                    (Some(Command::NetworkChanged), Some(s)) => {
                        if tokio::time::timeout(COMMAND_TIMEOUT, s.network_changed()).await.is_err() {
                            warn!("the session did not take the network change");
                        }
                    }
                    (Some(Command::Stats), Some(s)) => {
                        if tokio::time::timeout(COMMAND_TIMEOUT, s.request_stats()).await.is_err() {
                            warn!("the session did not take the stats request");
                        }
                    }
                    // Disconnecting already.
                    (Some(_), None) => {}
                    (None, _) => commands_open = false,
                },
            }
        }
    }

    /// Turns a session event into what the app hears.
    fn forward(&mut self, ev: SessionEvent, gateway: std::net::IpAddr) {
        match ev {
            SessionEvent::State(s) => match s {
                State::Connecting => self.set_state(TunnelState::Connecting),
                State::Authenticating => self.set_state(TunnelState::Authenticating),
                State::Closing => self.set_state(TunnelState::Disconnecting),
                // `Connected` follows once the first Child SA is up; `Closed` or `Reconnecting` after closing.
                State::Established | State::Closed => {}
            },
            SessionEvent::Connected { info, child } => {
                let details = SessionDetails::of(gateway, &info, &child);
                self.update(|s| s.details = Some(details.clone()));
                self.set_state(TunnelState::Connected);
                self.emit(VpnEvent::Connected { details });
            }
            SessionEvent::TunnelUp { tun, mtu, .. } => self.emit(VpnEvent::TunnelUp { interface: tun, mtu }),
            SessionEvent::ChildSaRekeyed { child, .. } => {
                let esp_suite = child.suite.to_string();
                self.update(|s| {
                    if let Some(d) = s.details.as_mut() {
                        d.esp_suite = esp_suite.clone();
                    }
                });
                self.emit(VpnEvent::Rekeyed { esp_suite });
            }
            SessionEvent::ChildSaDeleted { inbound_spi, .. } => debug!(spi = inbound_spi, "Child SA deleted"),
            SessionEvent::Stats(s) => {
                let stats = s.into();
                self.update(|st| st.stats = stats);
                self.emit(VpnEvent::Stats { stats });
            }
            SessionEvent::Reconnecting { attempt, delay, reason } => {
                self.set_state(TunnelState::Reconnecting);
                let delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX);
                self.emit(VpnEvent::Reconnecting { attempt, delay_ms, reason: VpnError::of_reconnect(&reason) });
            }
            // Handled by `run`.
            SessionEvent::Closed(_) => {}
        }
    }

    /// The session is over: the client is free for the next `connect`, then the app hears `Closed`.
    fn finish(mut self, error: Option<VpnError>) {
        self.update(|s| {
            s.details = None;
            s.last_error = error.clone();
        });
        if let Ok(mut shared) = self.shared.lock() {
            if shared.generation == self.generation {
                shared.commands = None;
            }
        }
        self.set_state(TunnelState::Disconnected);
        self.emit(VpnEvent::Closed { error });
    }

    fn set_state(&mut self, state: TunnelState) {
        if self.state == state {
            return;
        }
        self.state = state;
        self.update(|s| s.state = state);
        self.emit(VpnEvent::StateChanged { state });
    }

    /// Changes the status the app polls, if this session is still the client's current one.
    fn update(&self, f: impl FnOnce(&mut VpnStatus)) {
        if let Ok(mut shared) = self.shared.lock() {
            if shared.generation == self.generation {
                f(&mut shared.status);
            }
        }
    }

    fn emit(&self, event: VpnEvent) {
        if let Err(e) = guard("on_event", || self.listener.on_event(event)) {
            warn!(error = %e, "the listener failed");
        }
    }
}
