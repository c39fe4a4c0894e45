package dev.ikelink.example

import android.Manifest
import android.app.Activity
import android.content.Intent
import android.content.pm.PackageManager
import android.net.VpnService
import android.os.Build
import android.os.Bundle
import android.widget.Button
import android.widget.LinearLayout
import android.widget.TextView
import dev.ikelink.android.IkelinkVpnService

/**
 * Pick a profile (a `.toml` file, the CLI's format), connect, disconnect. The profile is kept by the service for
 * always-on VPN; the status line polls IkelinkVpnService.status (an app with coroutines collects it instead).
 */
class MainActivity : Activity() {
    private var profile: String? = null
    private lateinit var statusLine: TextView

    override fun onCreate(savedInstanceState: Bundle?) {
        super.onCreate(savedInstanceState)
        statusLine = TextView(this)
        val pick = Button(this).apply {
            text = "Import profile"
            setOnClickListener {
                val open = Intent(Intent.ACTION_OPEN_DOCUMENT).addCategory(Intent.CATEGORY_OPENABLE).setType("*/*")
                startActivityForResult(open, PICK_PROFILE)
            }
        }
        val connect = Button(this).apply { text = "Connect"; setOnClickListener { connect() } }
        val disconnect = Button(this).apply {
            text = "Disconnect"
            setOnClickListener { IkelinkVpnService.disconnect(this@MainActivity, ExampleVpnService::class.java) }
        }
        setContentView(
            LinearLayout(this).apply {
                orientation = LinearLayout.VERTICAL
                addView(pick)
                addView(connect)
                addView(disconnect)
                addView(statusLine)
            },
        )
        if (Build.VERSION.SDK_INT >= 33 &&
            checkSelfPermission(Manifest.permission.POST_NOTIFICATIONS) != PackageManager.PERMISSION_GRANTED
        ) {
            requestPermissions(arrayOf(Manifest.permission.POST_NOTIFICATIONS), ASK_NOTIFICATIONS)
        }
    }

    override fun onResume() {
        super.onResume()
        val s = IkelinkVpnService.status.value
        statusLine.text = "${s.state}" + (s.lastError?.let { " - $it" } ?: "")
    }

    private fun connect() {
        if (profile == null) {
            statusLine.text = "Import a profile first"
            return
        }
        // The user's consent to the VPN, once; null when already given.
        val consent = VpnService.prepare(this)
        if (consent != null) startActivityForResult(consent, VPN_CONSENT) else start()
    }

    private fun start() {
        IkelinkVpnService.connect(this, ExampleVpnService::class.java, profile ?: return)
    }

    @Deprecated("Activity result API of the platform; androidx.activity's launchers replace it in a real app")
    override fun onActivityResult(requestCode: Int, resultCode: Int, data: Intent?) {
        super.onActivityResult(requestCode, resultCode, data)
        if (resultCode != RESULT_OK) return
        when (requestCode) {
            PICK_PROFILE -> {
                val uri = data?.data ?: return
                profile = contentResolver.openInputStream(uri)?.use { it.readBytes().decodeToString() }
                statusLine.text = if (profile != null) "Profile imported" else "Cannot read the profile"
            }
            VPN_CONSENT -> start()
        }
    }

    private companion object {
        const val PICK_PROFILE = 1
        const val VPN_CONSENT = 2
        const val ASK_NOTIFICATIONS = 3
    }
}
