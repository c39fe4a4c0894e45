package dev.ikelink.android

import android.app.Notification
import android.app.NotificationChannel
import android.app.NotificationManager
import android.app.PendingIntent
import android.content.Context
import android.content.Intent
import android.content.pm.ServiceInfo
import android.net.VpnService
import android.net.IpPrefix
import android.os.Build
import android.os.Handler
import android.os.Looper
import android.os.ParcelFileDescriptor
import android.system.OsConstants
import android.util.Log
import java.net.InetAddress
import java.util.concurrent.CountDownLatch
import java.util.concurrent.ExecutorService
import java.util.concurrent.Executors
import java.util.concurrent.RejectedExecutionException
import java.util.concurrent.TimeUnit
import kotlinx.coroutines.flow.MutableStateFlow
import kotlinx.coroutines.flow.StateFlow
import kotlinx.coroutines.flow.asStateFlow
import kotlinx.coroutines.flow.update
import uniffi.ikelink_ffi.CallbackException
import uniffi.ikelink_ffi.ConnectOptions
import uniffi.ikelink_ffi.LogLevel
import uniffi.ikelink_ffi.profileFacts
import uniffi.ikelink_ffi.SocketProtector
import uniffi.ikelink_ffi.TunProvider
import uniffi.ikelink_ffi.TunnelSettings
import uniffi.ikelink_ffi.TunnelState
import uniffi.ikelink_ffi.VpnClient
import uniffi.ikelink_ffi.VpnEvent
import uniffi.ikelink_ffi.VpnException
import uniffi.ikelink_ffi.VpnListener

/**
 * A [VpnService] that owns one Ikelink [VpnClient]: it opens the TUN through [VpnService.Builder], keeps
 * Ikelink's sockets out of the tunnel with [protect], reports network changes and publishes every
 * [VpnEvent] as [status] for the app's UI. No protocol logic lives here.
 *
 * Start it with [connect] (after [VpnService.prepare] got the user's consent) and stop it with [disconnect].
 * Subclass it to supply credentials ([connectOptions]), a saved profile for always-on VPN ([profileToml]),
 * builder tweaks ([configure]), a foreground notification ([startForegroundNotification]) or to hear events
 * ([onVpnEvent]).
 *
 * Threads: Ikelink calls [VpnListener], [TunProvider] and [SocketProtector] on its own runtime threads; every
 * call into the [VpnClient] runs on one background "control" thread; [onVpnEvent] runs on the main thread.
 */
open class IkelinkVpnService : VpnService() {

    companion object {
        const val ACTION_CONNECT = "dev.ikelink.android.action.CONNECT"
        const val ACTION_DISCONNECT = "dev.ikelink.android.action.DISCONNECT"
        /** The profile TOML (the CLI's format) for [ACTION_CONNECT]. */
        const val EXTRA_PROFILE = "dev.ikelink.android.extra.PROFILE"
        private const val TAG = "Ikelink"
        /** How long [onDestroy] waits for the gateway to acknowledge our Delete. */
        private const val CLOSE_WAIT_MS = 3000L
        private const val NOTIFICATION_ID = 0x1ce
        private const val CHANNEL_ID = "ikelink-vpn"
        /** Where the last connected profile is kept for always-on VPN (app-private, not backed up). */
        private const val SAVED_PROFILE = "ikelink-profile.toml"

        private val mutableStatus = MutableStateFlow(IkelinkStatus())

        /** The tunnel as the UI shows it (one VPN per app process). */
        @JvmStatic
        val status: StateFlow<IkelinkStatus> = mutableStatus.asStateFlow()

        /** Starts [service] with [profileToml]. Call [VpnService.prepare] first and get the user's consent. */
        @JvmStatic
        fun connect(context: Context, service: Class<out IkelinkVpnService>, profileToml: String) {
            val intent = Intent(context, service).setAction(ACTION_CONNECT).putExtra(EXTRA_PROFILE, profileToml)
            // From Android 8 a service started for long work must be a foreground service (it calls
            // startForeground at once, see startForegroundNotification).
            if (Build.VERSION.SDK_INT >= 26) context.startForegroundService(intent) else context.startService(intent)
        }

        /** Closes the session (a Delete to the gateway); the service stops once it is closed. */
        @JvmStatic
        fun disconnect(context: Context, service: Class<out IkelinkVpnService>) {
            context.startService(Intent(context, service).setAction(ACTION_DISCONNECT))
        }
    }

    private val control: ExecutorService = Executors.newSingleThreadExecutor { r -> Thread(r, "ikelink-control") }
    private val main = Handler(Looper.getMainLooper())
    private val lock = Any()

    /** Control thread only. */
    private var client: VpnClient? = null

    /** The descriptor [VpnService.Builder.establish] gave us; Ikelink works on its own duplicate. */
    private var tun: ParcelFileDescriptor? = null // guarded by lock

    /** Counted down when the current session reports `Closed`. */
    private var closed: CountDownLatch? = null // guarded by lock

    /** Control thread only. */
    private var networks: UnderlyingNetworkMonitor? = null

    /** Ikelink's name lookups, on the underlying network (see [UnderlyingResolver]). */
    private val resolver = UnderlyingResolver(underlying = { networks?.current() }, onNetwork = { n, host -> n.getAllByName(host) })

    /** The current profile's `tunnel.kill_switch` (read by [Tun] on a runtime thread). */
    @Volatile
    private var killSwitch = false

    /** Ikelink's log level for [android.util.Log]; [LogLevel.OFF] installs no log sink. */
    protected open val logLevel: LogLevel = LogLevel.INFO

    override fun onCreate() {
        super.onCreate()
        if (logLevel != LogLevel.OFF) onControl { AndroidLogSink.install(logLevel) }
    }

    override fun onStartCommand(intent: Intent?, flags: Int, startId: Int): Int {
        // Started with startForegroundService: startForeground must follow within seconds, whatever we do next.
        startForegroundNotification()
        if (intent?.action == ACTION_DISCONNECT) {
            onControl { if (!stopSession()) main.post { stopIfIdle() } }
            return START_NOT_STICKY
        }
        // ACTION_CONNECT, or the system starting an always-on VPN (action android.net.VpnService, or a restart
        // with a null intent): then there are no extras and profileToml loads the saved profile.
        val profile = profileToml(intent)
        if (profile == null) {
            Log.w(TAG, "no profile to connect with (action ${intent?.action})")
            if (status.value.state == TunnelState.DISCONNECTED) stopIfIdle()
            return START_NOT_STICKY
        }
        if (intent?.action == ACTION_CONNECT && rememberProfile) onControl { saveProfile(profile) }
        onControl { startSession(profile, intent) }
        return START_NOT_STICKY
    }

    /** The user revoked the VPN or another VPN app took over: the system has already torn the interface down. */
    override fun onRevoke() {
        onControl { stopSession() }
    }

    override fun onDestroy() {
        onControl {
            val waitFor = synchronized(lock) { closed }
            if (stopSession() && waitFor != null) waitFor.await(CLOSE_WAIT_MS, TimeUnit.MILLISECONDS)
            networks?.stop()
            networks = null
            // Dropping the client stops its runtime (bounded wait): never on the main thread nor a runtime thread.
            client?.destroy()
            client = null
            closeTun()
        }
        control.shutdown()
        super.onDestroy()
    }

    // ---- hooks for the app ------------------------------------------------------------------------------------

    /**
     * The profile TOML to connect with: [EXTRA_PROFILE] by default. Override to load a saved profile when the
     * system starts the service on its own (always-on VPN, `intent` without extras or null). Main thread.
     */
    protected open fun profileToml(intent: Intent?): String? =
        intent?.getStringExtra(EXTRA_PROFILE) ?: if (startedBySystem(intent)) savedProfile() else null

    /** Whether the system (always-on VPN) started us rather than [connect]. */
    protected fun startedBySystem(intent: Intent?): Boolean =
        intent == null || intent.action == VpnService.SERVICE_INTERFACE

    /**
     * Keep the last profile given to [connect] (in `noBackupFilesDir`, app-private) so always-on VPN can start
     * it without the app. A profile may hold secrets (a PSK): set false and override [profileToml] to keep it
     * elsewhere (e.g. encrypted with an AndroidKeyStore key).
     */
    protected open val rememberProfile: Boolean = true

    /** The profile [rememberProfile] kept, or null. */
    protected open fun savedProfile(): String? =
        java.io.File(noBackupFilesDir, SAVED_PROFILE).takeIf { it.isFile }?.readText()

    /** Control thread. */
    protected open fun saveProfile(profile: String) {
        try {
            java.io.File(noBackupFilesDir, SAVED_PROFILE).writeText(profile)
        } catch (e: Exception) {
            Log.w(TAG, "cannot save the profile for always-on VPN: $e")
        }
    }

    /** Android's always-on VPN is set for this app (API 29+; false before). */
    protected fun alwaysOn(): Boolean = Build.VERSION.SDK_INT >= 29 && isAlwaysOn

    /** "Block connections without VPN" (lockdown) is on for this app (API 29+; false before). */
    protected fun lockdown(): Boolean = Build.VERSION.SDK_INT >= 29 && isLockdownEnabled

    /**
     * Options for `connect`: credentials from the key store ([AndroidKeystoreSigner.fromKeyChain]), the
     * gateway's trust ([AndroidTrustEvaluator]), the PSK/EAP password and the postquantum PPK (`secret`,
     * `ppkSecret`, for profiles without them: see `profileFacts`), MTU, reconnects. Called on the control thread (it may block,
     * e.g. in `KeyChain.getPrivateKey`).
     */
    protected open fun connectOptions(intent: Intent?): ConnectOptions = ConnectOptions()

    /**
     * Adjusts the builder before `establish()`: allowed or disallowed apps, `setConfigureIntent`,
     * `setMetered`, `setUnderlyingNetworks`... Called on an Ikelink runtime thread.
     */
    protected open fun configure(builder: Builder, settings: TunnelSettings) {}

    /**
     * A family the gateway assigned no address for (usually IPv6): [UnassignedFamily.AUTO] blocks it in a full
     * tunnel and lets it bypass the VPN in a split tunnel, as strongSwan's app does; `tunnel.kill_switch` always
     * blocks it. Read on an Ikelink runtime thread.
     */
    protected open val unassignedFamily: UnassignedFamily = UnassignedFamily.AUTO

    /**
     * Called on the main thread each time the service is started ([connect], [disconnect], always-on): puts the
     * service in the foreground with [notification], as type `systemExempted` on Android 14+ (the type the
     * manifest declares for a VPN). Override to use your own notification id or type.
     */
    protected open fun startForegroundNotification() {
        val n = notification(status.value)
        if (Build.VERSION.SDK_INT >= 34) {
            startForeground(NOTIFICATION_ID, n, ServiceInfo.FOREGROUND_SERVICE_TYPE_SYSTEM_EXEMPTED)
        } else {
            startForeground(NOTIFICATION_ID, n)
        }
    }

    /** The small icon of the default notification; override with your app's own. */
    protected open val notificationIcon: Int = android.R.drawable.ic_lock_lock

    /** The text of the default notification for [status]. */
    protected open fun notificationText(status: IkelinkStatus): String = when (status.state) {
        TunnelState.CONNECTED -> "Connected" + (status.details?.virtualIpv4?.let { " ($it)" } ?: "")
        TunnelState.RECONNECTING -> "Reconnecting"
        TunnelState.DISCONNECTED -> "Disconnected"
        TunnelState.DISCONNECTING -> "Disconnecting"
        else -> "Connecting"
    }

    /**
     * The foreground notification (channel "VPN", low importance, on Android 8+). Tapping it opens the app's
     * launcher activity. Main thread. Android 13+ shows it only if the app holds POST_NOTIFICATIONS (the
     * service runs either way).
     */
    protected open fun notification(status: IkelinkStatus): Notification {
        val builder = if (Build.VERSION.SDK_INT >= 26) {
            val manager = getSystemService(NotificationManager::class.java)
            if (manager?.getNotificationChannel(CHANNEL_ID) == null) {
                manager?.createNotificationChannel(NotificationChannel(CHANNEL_ID, "VPN", NotificationManager.IMPORTANCE_LOW))
            }
            Notification.Builder(this, CHANNEL_ID)
        } else {
            @Suppress("DEPRECATION")
            Notification.Builder(this)
        }
        builder.setSmallIcon(notificationIcon)
            .setContentTitle(applicationInfo.loadLabel(packageManager))
            .setContentText(notificationText(status))
            .setOngoing(true)
        packageManager.getLaunchIntentForPackage(packageName)?.let {
            builder.setContentIntent(PendingIntent.getActivity(this, 0, it, PendingIntent.FLAG_IMMUTABLE))
        }
        return builder.build()
    }

    /** Every event, in order, on the main thread ([status] is already updated). */
    protected open fun onVpnEvent(event: VpnEvent) {}

    // ---- session ----------------------------------------------------------------------------------------------

    /** Control thread. */
    private fun startSession(profile: String, intent: Intent?) {
        try {
            // `tunnel.kill_switch` is read by the core's profile parser; Android enforces it only with always-on
            // VPN and "Block connections without VPN" (lockdown), so the core refuses such a profile unless
            // lockdown is on (it cannot be checked before Android 10): never silently ignored.
            killSwitch = profileFacts(profile).killSwitch
            val options = connectOptions(intent).also {
                it.killSwitchByOs = lockdown()
                if (it.resolver == null) it.resolver = resolver
            }
            val c = client ?: VpnClient(Listener(), Tun(), Protector()).also { client = it }
            val latch = CountDownLatch(1)
            synchronized(lock) { closed = latch }
            c.connect(profile, options)
            if (networks == null) {
                networks = UnderlyingNetworkMonitor(this) { onControl { networkChanged() } }.also { it.start() }
            }
        } catch (e: VpnException.AlreadyConnected) {
            Log.i(TAG, "a session is already running")
        } catch (e: VpnException) {
            // Profile, options or credentials refused before anything touched the network.
            refused(e)
        } catch (e: Exception) {
            // The app's connectOptions failed (KeyChainException, no key store entry...).
            refused(VpnException.InvalidCredentials("connectOptions: $e"))
        }
    }

    private fun refused(e: VpnException) {
        Log.w(TAG, "connect refused: $e")
        mutableStatus.value = IkelinkStatus(state = TunnelState.DISCONNECTED, lastError = e)
        main.post { stopIfIdle() }
    }

    /** Control thread. Returns whether a session was running (then `Closed` follows). */
    private fun stopSession(): Boolean {
        val c = client ?: return false
        return try {
            c.disconnect()
            true
        } catch (e: VpnException.NotConnected) {
            main.post { stopIfIdle() }
            false
        } catch (e: VpnException) {
            Log.w(TAG, "disconnect failed: $e")
            false
        }
    }

    /** Control thread. */
    private fun networkChanged() {
        try {
            client?.networkChanged()
        } catch (e: VpnException.NotConnected) {
            // Between sessions: nothing to move.
        } catch (e: VpnException) {
            Log.w(TAG, "networkChanged failed: $e")
        }
    }

    /** Runs [task] on the control thread; dropped once the service is destroyed. */
    private fun onControl(task: () -> Unit) {
        try {
            control.execute {
                try {
                    task()
                } catch (e: Exception) {
                    // Never let an app hook's exception take the process down from the control thread.
                    Log.e(TAG, "control task failed", e)
                }
            }
        } catch (e: RejectedExecutionException) {
            Log.d(TAG, "service destroyed, dropping a control task")
        }
    }

    private fun closeTun() {
        val old = synchronized(lock) { tun.also { tun = null } }
        try {
            old?.close()
        } catch (e: Exception) {
            Log.w(TAG, "closing the TUN descriptor: $e")
        }
    }

    /** Main thread: the foreground notification follows the state. */
    private fun updateNotification() {
        if (status.value.state == TunnelState.DISCONNECTED) return
        try {
            getSystemService(NotificationManager::class.java)?.notify(NOTIFICATION_ID, notification(status.value))
        } catch (e: Exception) {
            Log.w(TAG, "cannot update the notification: $e")
        }
    }

    /** Main thread. */
    private fun stopIfIdle() {
        if (status.value.state != TunnelState.DISCONNECTED) return
        stopForeground(STOP_FOREGROUND_REMOVE)
        stopSelf()
    }

    /** Ikelink's events: update [status] at once, then tell the app on the main thread. */
    private inner class Listener : VpnListener {
        override fun onEvent(event: VpnEvent) {
            mutableStatus.update { it.after(event) }
            if (event is VpnEvent.Closed) {
                // The session is over and Ikelink closed its duplicate: close ours (the interface goes away).
                closeTun()
                onControl {
                    networks?.stop()
                    networks = null
                }
                synchronized(lock) { closed }?.countDown()
                if (event.error != null) Log.w(TAG, "session closed: ${event.error}")
            }
            main.post {
                if (event is VpnEvent.StateChanged || event is VpnEvent.Connected) updateNotification()
                onVpnEvent(event)
                if (event is VpnEvent.Closed) stopIfIdle()
            }
        }
    }

    /** `VpnService.Builder` ... `establish()` for the negotiated settings. */
    private inner class Tun : TunProvider {
        override fun openTun(settings: TunnelSettings): Int {
            val fd = try {
                val builder = Builder()
                    .setSession(settings.gateway)
                    .setMtu(settings.mtu.toInt())
                    .setBlocking(false)
                val plan = TunnelPlan.of(settings, Build.VERSION.SDK_INT, unassignedFamily, killSwitch)
                for (a in plan.addresses) builder.addAddress(a.address, a.prefixLength.toInt())
                // Before Android 13 the profile's `tunnel.exclude` is subtracted from these routes; from 13 on
                // Builder.excludeRoute takes it as is.
                for (route in plan.routes) builder.addRoute(route.address, route.prefixLength.toInt())
                if (Build.VERSION.SDK_INT >= 33) {
                    for (route in plan.excludeRoutes) {
                        builder.excludeRoute(IpPrefix(InetAddress.getByName(route.address), route.prefixLength.toInt()))
                    }
                }
                if (plan.allowIpv4) builder.allowFamily(OsConstants.AF_INET)
                if (plan.allowIpv6) builder.allowFamily(OsConstants.AF_INET6)
                // From Android 10 a VPN counts as metered unless told otherwise: follow the networks under it.
                if (Build.VERSION.SDK_INT >= 29 && plan.notMetered) builder.setMetered(false)
                for (dns in settings.dnsServers) builder.addDnsServer(dns)
                for (domain in settings.searchDomains) builder.addSearchDomain(domain)
                configure(builder, settings)
                builder.establish()
            } catch (e: CallbackException) {
                throw e
            } catch (e: Exception) {
                // IllegalArgumentException (a bad address or route), IllegalStateException, SecurityException.
                throw CallbackException.Failed("VpnService.Builder: $e")
            } ?: throw CallbackException.Failed("VPN permission missing or revoked: establish() returned null")
            // Ikelink duplicates fd before this call returns; we keep the original until `Closed` or the next
            // `establish()` (settings changed on reconnect), then close it.
            val old = synchronized(lock) { tun.also { tun = fd } }
            try {
                old?.close()
            } catch (e: Exception) {
                Log.w(TAG, "closing the previous TUN descriptor: $e")
            }
            return fd.fd
        }
    }

    /** Keeps Ikelink's UDP sockets out of the tunnel. */
    private inner class Protector : SocketProtector {
        override fun protect(fd: Int) {
            if (!this@IkelinkVpnService.protect(fd)) {
                throw CallbackException.Failed("VpnService.protect($fd) refused (is the VPN still prepared?)")
            }
        }
    }
}
