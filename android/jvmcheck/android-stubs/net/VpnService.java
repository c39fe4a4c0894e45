package android.net;
public class VpnService extends android.app.Service {
    public static android.content.Intent prepare(android.content.Context context) { return null; }
    public boolean protect(int socket) { return true; }
    public void onRevoke() {}
    public class Builder {
        public Builder() {}
        public Builder setSession(String session) { return this; }
        public Builder setMtu(int mtu) { return this; }
        public Builder setBlocking(boolean blocking) { return this; }
        public Builder addAddress(String address, int prefixLength) { return this; }
        public Builder addRoute(String address, int prefixLength) { return this; }
        public Builder excludeRoute(IpPrefix prefix) { return this; }
        public Builder addDnsServer(String address) { return this; }
        public Builder addSearchDomain(String domain) { return this; }
        public android.os.ParcelFileDescriptor establish() { return null; }
    }
}
