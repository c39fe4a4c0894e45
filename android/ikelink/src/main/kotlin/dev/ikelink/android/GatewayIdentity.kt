package dev.ikelink.android

import java.net.InetAddress
import java.security.cert.CertificateParsingException
import java.security.cert.X509Certificate

/**
 * Does a gateway certificate name the identity the gateway claims? [gatewayId] is Ikelink's display form of
 * the IKE identity: an IPv4/IPv6 address, an FQDN, an e-mail address (RFC822), a distinguished name as
 * `C=CH, O=Example, CN=vpn` (DER order, as Ikelink prints it), or `TYPE:hex` for other types (never matched).
 */
internal object GatewayIdentity {
    private const val SAN_RFC822 = 1
    private const val SAN_DNS = 2
    private const val SAN_IP = 7
    private val IPV4 = Regex("""^\d{1,3}(\.\d{1,3}){3}$""")
    private val IPV6 = Regex("""^[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*$""")

    fun matches(leaf: X509Certificate, gatewayId: String): Boolean = when {
        IPV4.matches(gatewayId) || IPV6.matches(gatewayId) -> {
            val wanted = literal(gatewayId)
            wanted != null && sans(leaf, SAN_IP).any { literal(it) == wanted }
        }
        '=' in gatewayId -> displayName(leaf.subjectX500Principal.encoded) == gatewayId
        '@' in gatewayId -> sans(leaf, SAN_RFC822).any { it.equals(gatewayId, ignoreCase = true) }
        else -> {
            val host = gatewayId.trimEnd('.')
            sans(leaf, SAN_DNS).any { it.trimEnd('.').equals(host, ignoreCase = true) }
        }
    }

    /** An IP address literal, never a DNS lookup: null unless [text] has an address's shape and parses. */
    private fun literal(text: String): InetAddress? {
        if (!IPV4.matches(text) && !IPV6.matches(text)) return null
        if (IPV4.matches(text) && text.split('.').any { it.toInt() > 255 }) return null
        return try {
            InetAddress.getByName(text)
        } catch (e: Exception) {
            null
        }
    }

    private fun sans(leaf: X509Certificate, type: Int): List<String> = try {
        leaf.subjectAlternativeNames.orEmpty()
            .filter { (it[0] as? Int) == type }
            .mapNotNull { it[1] as? String }
    } catch (e: CertificateParsingException) {
        emptyList()
    }

    /**
     * A DER Name as Ikelink prints it (`ikelink::crypto::display_dn`): every attribute in DER order,
     * `KEY=value` joined by ", "; string values as text, others as `#` + the hex of their whole DER.
     */
    fun displayName(der: ByteArray): String? = try {
        val parts = mutableListOf<String>()
        val rdns = Der(der).single(SEQUENCE)
        while (!rdns.isEmpty()) {
            val set = rdns.expect(SET)
            while (!set.isEmpty()) {
                val atv = set.expect(SEQUENCE)
                val oid = atv.expect(OID).remaining()
                val value = atv.next()
                val key = NAMES[oidString(oid)] ?: oidString(oid)
                val text = when (value.tag) {
                    0x0c, 0x13, 0x14, 0x16 -> String(value.content, Charsets.UTF_8)
                    else -> "#" + value.raw.joinToString("") { "%02x".format(it.toInt() and 0xff) }
                }
                parts += "$key=$text"
            }
        }
        parts.joinToString(", ")
    } catch (e: IllegalArgumentException) {
        null
    }

    private const val SEQUENCE = 0x30
    private const val SET = 0x31
    private const val OID = 0x06
    private val NAMES = mapOf(
        "2.5.4.3" to "CN", "2.5.4.6" to "C", "2.5.4.7" to "L", "2.5.4.8" to "ST", "2.5.4.10" to "O",
        "2.5.4.11" to "OU", "2.5.4.5" to "serialNumber", "1.2.840.113549.1.9.1" to "E",
        "0.9.2342.19200300.100.1.25" to "DC",
    )

    private fun oidString(oid: ByteArray): String {
        val arcs = mutableListOf<Long>()
        var value = 0L
        for (b in oid) {
            value = (value shl 7) or (b.toLong() and 0x7f)
            if (b.toInt() and 0x80 == 0) {
                if (arcs.isEmpty()) {
                    val first = minOf(value / 40, 2)
                    arcs += first
                    arcs += value - first * 40
                } else {
                    arcs += value
                }
                value = 0
            }
        }
        return arcs.joinToString(".")
    }

    /** Just enough DER to walk a Name. Throws IllegalArgumentException on malformed input. */
    private class Der(private val bytes: ByteArray, private var pos: Int = 0, private val end: Int = bytes.size) {
        class Tlv(val tag: Int, val raw: ByteArray, val content: ByteArray)

        fun isEmpty() = pos >= end

        fun remaining(): ByteArray = bytes.copyOfRange(pos, end).also { pos = end }

        fun next(): Tlv {
            require(pos + 2 <= end) { "truncated DER" }
            val start = pos
            val tag = bytes[pos].toInt() and 0xff
            var p = pos + 1
            var length = bytes[p++].toInt() and 0xff
            if (length >= 0x80) {
                val n = length and 0x7f
                require(n in 1..3 && p + n <= end) { "bad DER length" }
                length = 0
                repeat(n) { length = (length shl 8) or (bytes[p++].toInt() and 0xff) }
            }
            require(p + length <= end) { "truncated DER" }
            pos = p + length
            return Tlv(tag, bytes.copyOfRange(start, pos), bytes.copyOfRange(p, pos))
        }

        fun expect(tag: Int): Der {
            val tlv = next()
            require(tlv.tag == tag) { "unexpected DER tag" }
            return Der(tlv.content)
        }

        fun single(tag: Int): Der {
            val inner = expect(tag)
            require(isEmpty()) { "trailing DER" }
            return inner
        }
    }
}
