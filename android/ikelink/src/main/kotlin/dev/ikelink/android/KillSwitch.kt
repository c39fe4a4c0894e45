package dev.ikelink.android

/**
 * `tunnel.kill_switch` on Android. Ikelink cannot block traffic outside the VPN itself here; Android does it
 * with always-on VPN and "Block connections without VPN" (lockdown, Settings > Network > VPN), which also
 * covers the time before the service starts and after it dies. So a profile asking for the kill switch is
 * refused unless lockdown is on (never silently ignored). While the tunnel is up, the kill switch also blocks
 * a family the gateway gave no address for ([UnassignedFamily]).
 */
internal object KillSwitch {
    /** Whether [toml] sets `tunnel.kill_switch = true` (as `[tunnel]` key, dotted key or inline table). */
    fun requested(toml: String): Boolean {
        var table = ""
        for (raw in toml.lineSequence()) {
            val line = raw.substringBefore('#').trim()
            if (line.startsWith("[")) {
                table = line.trim('[', ']', ' ')
                continue
            }
            val key = line.substringBefore('=', "").trim().replace(" ", "").replace("\"", "")
            val value = line.substringAfter('=', "").trim()
            when {
                table == "tunnel" && key == "kill_switch" -> return value == "true"
                table == "" && key == "tunnel.kill_switch" -> return value == "true"
                table == "" && key == "tunnel" ->
                    return Regex("""kill_switch\s*=\s*true""").containsMatchIn(value)
            }
        }
        return false
    }

    /** Why the session may not start, or null: the kill switch needs lockdown (API 29+ to tell). */
    fun refusal(requested: Boolean, sdk: Int, lockdown: Boolean): String? = when {
        !requested -> null
        sdk < 29 -> "tunnel.kill_switch: Android ${sdk} cannot tell whether \"Block connections without VPN\" is on " +
            "(needs Android 10); turn it on in Settings > Network > VPN and set kill_switch = false in the profile"
        !lockdown -> "tunnel.kill_switch needs Android's always-on VPN with \"Block connections without VPN\" " +
            "(Settings > Network > VPN > this app); turn it on, or set kill_switch = false in the profile"
        else -> null
    }
}
