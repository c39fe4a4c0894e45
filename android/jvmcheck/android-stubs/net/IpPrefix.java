package android.net;
public final class IpPrefix {
    public IpPrefix(java.net.InetAddress address, int prefixLength) {}
}
