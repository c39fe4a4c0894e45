package dev.ikelink.example

import android.content.Intent
import dev.ikelink.android.AndroidTrustEvaluator
import dev.ikelink.android.IkelinkVpnService
import uniffi.ikelink_ffi.ConnectOptions
import uniffi.ikelink_ffi.GatewayTrust

/** The app's VPN service: the shell does the work; the gateway is judged by the device's CAs (system + user). */
class ExampleVpnService : IkelinkVpnService() {
    override fun connectOptions(intent: Intent?) = ConnectOptions(
        gatewayTrust = GatewayTrust.Platform(AndroidTrustEvaluator()),
    )
}
