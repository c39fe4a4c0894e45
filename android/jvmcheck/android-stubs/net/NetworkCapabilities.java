package android.net;
public final class NetworkCapabilities {
    public static final int NET_CAPABILITY_INTERNET = 12;
    public static final int NET_CAPABILITY_NOT_VPN = 15;
}
