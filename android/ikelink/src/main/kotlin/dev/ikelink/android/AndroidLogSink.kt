package dev.ikelink.android

import android.util.Log
import uniffi.ikelink_ffi.LogLevel
import uniffi.ikelink_ffi.LogSink
import uniffi.ikelink_ffi.VpnException
import uniffi.ikelink_ffi.setLogger

/** Ikelink's log lines (never secrets) to logcat, tag "Ikelink". Called on any Ikelink thread. */
class AndroidLogSink : LogSink {
    override fun log(level: LogLevel, target: String, message: String) {
        val priority = when (level) {
            LogLevel.ERROR -> Log.ERROR
            LogLevel.WARN -> Log.WARN
            LogLevel.INFO -> Log.INFO
            LogLevel.DEBUG -> Log.DEBUG
            LogLevel.TRACE -> Log.VERBOSE
            LogLevel.OFF -> return
        }
        Log.println(priority, TAG, "$target: $message")
    }

    companion object {
        private const val TAG = "Ikelink"

        /** Installs the sink for the process at [level] (again to change the level). */
        @JvmStatic
        fun install(level: LogLevel) {
            try {
                setLogger(level, AndroidLogSink())
            } catch (e: VpnException) {
                Log.w(TAG, "cannot install Ikelink's log sink: $e")
            }
        }
    }
}
